//! The shell side of published ports: each app's blocks in its kata state
//! (`state/apps/<app>/ports.json`, gone with `kata rm`), the host-wide cursor
//! (`state/ports.json`), and what Docker publishes now.

use crate::docker::{self, DockerError};
use crate::paths::Paths;
use crate::ports::{self, AppPorts, PortError, PortState, PortWrites, Published};
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

/// Holds the host-wide ports lock: taken around [`read`], the plan and
/// [`write`], so two deploys never hand out one block.
pub fn lock(paths: &Paths) -> Result<crate::lock::Lock, StoreError> {
    let lock_path = paths.host_lock("ports");
    crate::lock::exclusive(&lock_path, |_| {}).map_err(|source| StoreError::Io {
        path: lock_path.display().to_string(),
        source,
    })
}

/// What allocation decides from (see [`ports::reserve`]): the app's blocks,
/// every other app's and the host's cursor.
pub fn read(paths: &Paths, app: &str) -> Result<PortState, StoreError> {
    let taken = crate::apps::names(paths)
        .into_iter()
        .filter(|a| a != app)
        .map(|other| load(paths, &other).map(|p| p.blocks.into_values().collect::<Vec<_>>()))
        .collect::<Result<Vec<_>, _>>()
        .map(|all| all.into_iter().flatten().collect())
        .map_err(|e| e.to_string());
    Ok(PortState {
        current: load(paths, app)?,
        taken,
        cursor: read_json::<Cursor>(&cursor_file(paths))?.cursor,
    })
}

/// Records what the plan decided, each part only when it changed.
pub fn write(paths: &Paths, app: &str, w: &PortWrites) -> Result<(), StoreError> {
    if let Some(p) = &w.ports {
        write_json(&app_file(paths, app), p)?;
    }
    if let Some(cursor) = w.cursor {
        write_json(&cursor_file(paths), &Cursor { cursor })?;
    }
    Ok(())
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
