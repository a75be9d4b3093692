//! What kata knows about deployed apps: which exist, their live release,
//! its mode and compose file. Shared by the lifecycle commands.

use crate::docker::ComposeCli;
use crate::paths::Paths;
use crate::release::{self, Release};
use crate::state::Mode;
use std::path::PathBuf;

/// Apps that have a repo or kata state, sorted.
pub fn names(paths: &Paths) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for dir in [
        paths.root().join("repos"),
        paths.root().join("state").join("apps"),
    ] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && crate::names::is_app_name(n)
                    && !out.iter().any(|o| o == n)
                {
                    out.push(n.to_owned());
                }
            }
        }
    }
    out.sort();
    out
}

pub fn exists(paths: &Paths, app: &str) -> bool {
    paths.repo(app).is_dir() || paths.state(app).is_dir()
}

/// The live release and where its files are.
#[derive(Debug, Clone)]
pub struct Live {
    pub release: Release,
    /// The release's dir: its recorded plan (`src/` holds its code).
    pub dir: PathBuf,
    pub src: PathBuf,
    pub mode: Mode,
}

impl Live {
    /// The compose file kata runs (recorded outside the code's dir).
    pub fn compose_file(&self) -> PathBuf {
        self.dir.join(release::COMPOSE_FILE)
    }
    /// The kata-compose.yaml recorded when the release was made.
    pub fn spec_file(&self) -> PathBuf {
        self.dir.join("kata-compose.yaml")
    }
    /// `docker compose -p APP -f FILE <rest>` for this host's compose CLI.
    pub fn compose(
        &self,
        app: &str,
        rest: &[&str],
    ) -> Result<(String, Vec<String>), crate::docker::DockerError> {
        let file = self.compose_file();
        if !file.is_file() {
            return Err(crate::docker::DockerError::Other(format!(
                "release {} of {app} was made by an older kata and has no recorded compose file: \
                 run `kata deploy {app}` to make one",
                self.release.number
            )));
        }
        let cli = match self.compose_target_cli() {
            Some(c) => c,
            None => ComposeCli::detect()?,
        };
        let mut argv = crate::argv::compose(cli, app, &file, rest);
        let program = argv.remove(0);
        Ok((program, argv))
    }
    /// The compose CLI the file was rendered for (v1 files have no `name:`).
    fn compose_target_cli(&self) -> Option<ComposeCli> {
        let text = std::fs::read_to_string(self.compose_file()).ok()?;
        Some(if text.starts_with("name:") {
            ComposeCli::V2
        } else {
            ComposeCli::V1
        })
    }
}

pub fn live(paths: &Paths, app: &str) -> std::io::Result<Option<Live>> {
    let all = release::list(paths, app)?;
    Ok(release::live(&all).map(|r| Live {
        dir: release::dir(paths, app, r.number),
        src: release::src(paths, app, r.number),
        mode: r
            .mode
            .as_deref()
            .and_then(Mode::parse)
            .unwrap_or(Mode::Compose),
        release: r.clone(),
    }))
}
