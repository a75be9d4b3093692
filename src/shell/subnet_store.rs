//! The shell of subnet allocation (see `subnets`): each app's record
//! (`state/apps/<app>/subnets.json`, kata's, mounted by no container), the
//! host's cursor and a host-wide lock around every allocation. A deploy
//! reads them, decides purely (`plan`) and writes what changed.

use crate::paths::Paths;
use crate::subnets::{Net, SubnetState, SubnetWrites};
use std::collections::BTreeMap;

fn record_file(paths: &Paths, app: &str) -> std::path::PathBuf {
    paths.state(app).join("subnets.json")
}

fn cursor_file(paths: &Paths) -> std::path::PathBuf {
    paths.root().join("state").join("subnet-cursor")
}

fn read_record(path: &std::path::Path) -> std::io::Result<BTreeMap<String, Net>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// The app's recorded subnets (empty when it has none).
pub fn recorded(paths: &Paths, app: &str) -> std::io::Result<BTreeMap<String, Net>> {
    read_record(&record_file(paths, app))
}

/// The subnets every other app of this KATA_ROOT holds.
fn others(paths: &Paths, app: &str) -> std::io::Result<Vec<Net>> {
    let mut out = vec![];
    for other in crate::apps::names(paths).into_iter().filter(|a| a != app) {
        out.extend(recorded(paths, &other)?.into_values());
    }
    Ok(out)
}

/// Holds the host-wide subnet lock: taken around [`read`], the plan and
/// [`write`], so two deploys never hand out one subnet.
pub fn lock(paths: &Paths) -> std::io::Result<crate::lock::Lock> {
    crate::lock::exclusive(&paths.host_lock("subnets"), |_| {})
}

/// What allocation decides from (see [`crate::plan`]): the app's record,
/// every other app's, and the host's cursor (`None` when it never
/// allocated). A damaged record of another app is an error only for a
/// plan that needs the others.
pub fn read(paths: &Paths, app: &str) -> std::io::Result<SubnetState> {
    Ok(SubnetState {
        recorded: recorded(paths, app)?,
        others: others(paths, app).map_err(|e| e.to_string()),
        cursor: std::fs::read_to_string(cursor_file(paths))
            .ok()
            .map(|s| s.trim().parse().ok()),
        root: paths.root().to_path_buf(),
    })
}

/// Records what the plan decided: the app's record and the cursor, each
/// only when it changed.
pub fn write(paths: &Paths, app: &str, w: &SubnetWrites) -> std::io::Result<()> {
    if let Some(record) = &w.record {
        let mut json = serde_json::to_vec_pretty(record).expect("JSON serialises");
        json.push(b'\n');
        crate::fsutil::write_atomic(&record_file(paths, app), &json)?;
    }
    if let Some(c) = w.cursor {
        crate::fsutil::write_atomic(&cursor_file(paths), format!("{c}\n").as_bytes())?;
    }
    Ok(())
}

/// Forgets the app's subnets (`kata rm`, once its networks are gone). The
/// cursor stays, so the next apps get other subnets first.
pub fn free(paths: &Paths, app: &str) -> std::io::Result<()> {
    let _lock = lock(paths)?;
    match std::fs::remove_file(record_file(paths, app)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
