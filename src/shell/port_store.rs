//! The shell side of published ports: each app's blocks in its kata state
//! (`state/apps/<app>/ports.json`, gone with `kata rm`), the host-wide cursor
//! (`state/ports.json`), and what Docker publishes now.

use crate::docker::{self, DockerError};
use crate::paths::Paths;
use crate::ports::{self, AppPorts, Block, PortError, PortRange, Published};
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {source}")]
    Damaged {
        path: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Full(#[from] PortError),
}

fn app_file(paths: &Paths, app: &str) -> PathBuf {
    paths.state(app).join("ports.json")
}

fn cursor_file(paths: &Paths) -> PathBuf {
    paths.root().join("state").join("ports.json")
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Cursor {
    cursor: u16,
}

fn read_json<T: serde::de::DeserializeOwned + Default>(
    path: &std::path::Path,
) -> Result<T, StoreError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| StoreError::Damaged {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(StoreError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write_json(path: &std::path::Path, v: &impl serde::Serialize) -> Result<(), StoreError> {
    let mut json = serde_json::to_vec_pretty(v).expect("ports serialise");
    json.push(b'\n');
    crate::fsutil::write_atomic(path, &json).map_err(|source| StoreError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The app's blocks (none for an app deployed before kata published ports).
pub fn load(paths: &Paths, app: &str) -> Result<AppPorts, StoreError> {
    read_json(&app_file(paths, app))
}

/// Gives the app a block for each wanted dial (see [`ports::allocate`]) under
/// a host-wide lock, records it in the app's state and moves the cursor.
pub fn reserve(
    paths: &Paths,
    range: PortRange,
    app: &str,
    wanted: &[(String, u16)],
) -> Result<AppPorts, StoreError> {
    let lock_path = paths.host_lock("ports");
    let _lock = crate::lock::exclusive(&lock_path, || {}).map_err(|source| StoreError::Io {
        path: lock_path.display().to_string(),
        source,
    })?;
    let current = load(paths, app)?;
    let fits = |k: &String, len: u16| {
        current
            .blocks
            .get(k)
            .is_some_and(|b| b.len >= len && b.first >= range.first && b.last() <= range.last)
    };
    let mut taken: Vec<Block> = vec![];
    if !wanted.iter().all(|(k, len)| fits(k, *len)) {
        for other in crate::apps::names(paths).into_iter().filter(|a| a != app) {
            // a damaged record of another app must not hand its ports out again
            taken.extend(load(paths, &other)?.blocks.into_values());
        }
    }
    let cursor: Cursor = read_json(&cursor_file(paths))?;
    let a = ports::allocate(range, cursor.cursor, &taken, &current, wanted)?;
    if a.ports != current {
        write_json(&app_file(paths, app), &a.ports)?;
    }
    if a.cursor != cursor.cursor {
        write_json(&cursor_file(paths), &Cursor { cursor: a.cursor })?;
    }
    Ok(a.ports)
}

/// What `docker inspect` says about these containers (one call).
pub fn inspect(ids: &[&str]) -> Result<Vec<Published>, DockerError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut args = vec!["inspect", "--format", ports::INSPECT_FORMAT];
    args.extend(ids);
    match docker::docker(&args) {
        Ok(out) => Ok(ports::parse_inspect(&out)),
        // one of them was removed since it was listed: the others, one by one
        Err(DockerError::Failed { .. }) if ids.len() > 1 => Ok(ids
            .iter()
            .filter_map(|id| inspect(&[id]).ok())
            .flatten()
            .collect()),
        Err(e) => Err(e),
    }
}

/// Every running kata container on this engine (two docker calls, whatever
/// the number of apps).
pub fn running() -> Result<Vec<Published>, DockerError> {
    let ids = docker::docker(&["ps", "-q", "--no-trunc", "--filter", "label=kata.app"])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    inspect(&ids)
}
