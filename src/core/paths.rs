//! Where everything lives under `KATA_ROOT` (default `$HOME`).
//!
//! User-facing dirs follow the spec (`app data config envs logs repos`);
//! kata's own bookkeeping (settings, releases, locks, mode) lives under
//! `state/`, never inside a user's checkout. Pure: paths are computed,
//! never touched (`Paths::from_env` and [`crate::fsutil::secure_root`] are
//! the shell's).

use std::path::{Path, PathBuf};

pub const SKELETON: [&str; 7] = ["app", "data", "config", "envs", "logs", "repos", "state"];

#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Paths { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The live checkout (a symlink to the live release's tree once releases exist).
    pub fn app(&self, app: &str) -> PathBuf {
        self.root.join("app").join(app)
    }
    pub fn data(&self, app: &str) -> PathBuf {
        self.root.join("data").join(app)
    }
    pub fn config(&self, app: &str) -> PathBuf {
        self.root.join("config").join(app)
    }
    pub fn envs(&self, app: &str) -> PathBuf {
        self.root.join("envs").join(app)
    }
    pub fn logs(&self, app: &str) -> PathBuf {
        self.root.join("logs").join(app)
    }
    /// The full output of release `n`'s deploy.
    pub fn deploy_log(&self, app: &str, n: u64) -> PathBuf {
        self.logs(app).join(format!("deploy-{n}.log"))
    }
    pub fn repo(&self, app: &str) -> PathBuf {
        self.root.join("repos").join(app)
    }
    /// kata's own per-app state: releases, mode, locks.
    pub fn state(&self, app: &str) -> PathBuf {
        self.root.join("state").join("apps").join(app)
    }
    /// Release `n`'s directory (see [`crate::release`]).
    pub fn release(&self, app: &str, n: u64) -> PathBuf {
        self.state(app).join("releases").join(n.to_string())
    }
    /// Host-wide settings written by `kata setup --<setting>`.
    pub fn settings_file(&self) -> PathBuf {
        self.root.join("state").join("settings.json")
    }
    /// Set when the Caddy at the admin endpoint it holds refused
    /// `stream_close_delay` (older than 2.7), so kata stops offering it.
    pub fn caddy_without_stream_close_delay(&self) -> PathBuf {
        self.root
            .join("state")
            .join("caddy-without-stream-close-delay")
    }
    /// Host-wide locks (Caddy writes, authorized_keys).
    pub fn host_lock(&self, name: &str) -> PathBuf {
        self.root.join("state").join(format!("{name}.lock"))
    }
    /// The per-app lock every deploy and config change takes. It lives
    /// outside `state/apps/<app>` so that taking it before an app's first
    /// push does not make the app look deployed.
    pub fn app_lock(&self, app: &str) -> PathBuf {
        self.root
            .join("state")
            .join("locks")
            .join(format!("{app}.lock"))
    }
    /// The four bind mounts a runtime service gets, in their fixed order.
    pub fn runtime_mounts(&self, app: &str) -> [(&'static str, PathBuf, &'static str); 4] {
        [
            ("app", self.app(app), "/app"),
            ("config", self.config(app), "/config"),
            ("data", self.data(app), "/data"),
            ("venv", self.envs(app), "/venv"),
        ]
    }
}
