//! kata's per-app bookkeeping under `state/apps/<app>/`: the chosen mode
//! (kept across deploys), the deploy branch override.

use crate::fsutil::write_atomic;
use crate::paths::Paths;
use std::io;

pub use crate::model::Mode;

fn read_opt(path: &std::path::Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The mode an admin chose with `kata mode APP MODE`, if any.
pub fn stored_mode(paths: &Paths, app: &str) -> io::Result<Option<Mode>> {
    Ok(read_opt(&paths.state(app).join("mode"))?.and_then(|s| Mode::parse(&s)))
}

pub fn set_mode(paths: &Paths, app: &str, mode: Mode) -> io::Result<()> {
    write_atomic(
        &paths.state(app).join("mode"),
        format!("{mode}\n").as_bytes(),
    )
}

/// Per-app deploy branch override (`kata setup` sets the host default).
pub fn stored_branch(paths: &Paths, app: &str) -> io::Result<Option<String>> {
    read_opt(&paths.state(app).join("branch"))
}

/// Sets (`Some`) or clears (`None`) the app's deploy branch override.
pub fn set_branch(paths: &Paths, app: &str, branch: Option<&str>) -> io::Result<()> {
    let file = paths.state(app).join("branch");
    match branch {
        Some(b) => write_atomic(&file, format!("{b}\n").as_bytes()),
        None => match std::fs::remove_file(&file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}
