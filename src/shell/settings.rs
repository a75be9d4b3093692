//! Host settings: kept in `state/settings.json` (written by `kata setup
//! --<setting> VALUE`), each overridable by a `KATA_*` variable. The forced
//! command runs with sshd's bare environment, so the file is the source of truth.

use crate::fsutil::write_atomic;
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::io;
use std::time::Duration;
use thiserror::Error;

pub const DEFAULT_CADDY_ADMIN: &str = "http://localhost:2019";
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";
pub const DEFAULT_KEEP_RELEASES: usize = 5;

/// Time limits, in seconds: quick docker calls (ps, inspect, rm, ...),
/// long ones (builds, pulls, `compose up`, `docker stop`), a new
/// container's start and health gate, the drain of old containers.
pub const DEFAULT_DOCKER_TIMEOUT: u64 = 60;
pub const DEFAULT_BUILD_TIMEOUT: u64 = 900;
pub const DEFAULT_START_TIMEOUT: u64 = 180;
pub const DEFAULT_DRAIN_TIMEOUT: u64 = 30;

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: not valid settings JSON: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

/// What is stored; `None` means "use the default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caddy_admin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_releases: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_prefix: Option<u8>,
    /// Host ports published for routed services, `FIRST-LAST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<String>,
}

/// Effective settings: file, then environment, then defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub caddy_admin: String,
    pub base_image: String,
    /// `None`: `main`, falling back to `master`.
    pub deploy_branch: Option<String>,
    pub keep_releases: usize,
    pub timeouts: Timeouts,
    /// Where apps' compose networks get their subnets (see `subnets`),
    /// checked where it is used.
    pub subnet_pool: String,
    pub subnet_prefix: u8,
    /// Where routed services' loopback ports come from (see [`crate::ports`]).
    pub port_range: crate::ports::PortRange,
}

/// How long kata waits for each kind of thing (see the `DEFAULT_*_TIMEOUT`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub docker: Duration,
    pub build: Duration,
    pub start: Duration,
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let s = Duration::from_secs;
        Timeouts {
            docker: s(DEFAULT_DOCKER_TIMEOUT),
            build: s(DEFAULT_BUILD_TIMEOUT),
            start: s(DEFAULT_START_TIMEOUT),
            drain: s(DEFAULT_DRAIN_TIMEOUT),
        }
    }
}

pub fn load_stored(paths: &Paths) -> Result<Stored, SettingsError> {
    let path = paths.settings_file();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SettingsError::Parse {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(source) => Err(SettingsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

pub fn save_stored(paths: &Paths, stored: &Stored) -> Result<(), SettingsError> {
    let path = paths.settings_file();
    let mut json = serde_json::to_vec_pretty(stored).expect("settings serialise");
    json.push(b'\n');
    write_atomic(&path, &json).map_err(|source| SettingsError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Pure: combines the stored file with an environment lookup.
pub fn resolve(stored: &Stored, env: impl Fn(&str) -> Option<String>) -> Settings {
    let pick = |var: &str, file: &Option<String>| {
        env(var).filter(|v| !v.is_empty()).or_else(|| file.clone())
    };
    Settings {
        caddy_admin: pick("KATA_CADDY_ADMIN", &stored.caddy_admin)
            .unwrap_or_else(|| DEFAULT_CADDY_ADMIN.to_owned()),
        base_image: pick("KATA_BASE_IMAGE", &stored.base_image)
            .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_owned()),
        deploy_branch: pick("KATA_DEPLOY_BRANCH", &stored.deploy_branch),
        keep_releases: env("KATA_KEEP_RELEASES")
            .and_then(|v| v.parse().ok())
            .or(stored.keep_releases)
            .unwrap_or(DEFAULT_KEEP_RELEASES)
            .max(1),
        timeouts: {
            let secs = |var: &str, file: Option<u64>, default: u64| {
                let n = env(var).and_then(|v| v.trim().parse().ok()).or(file);
                Duration::from_secs(n.unwrap_or(default).max(1))
            };
            Timeouts {
                docker: secs(
                    "KATA_DOCKER_TIMEOUT",
                    stored.docker_timeout,
                    DEFAULT_DOCKER_TIMEOUT,
                ),
                build: secs(
                    "KATA_BUILD_TIMEOUT",
                    stored.build_timeout,
                    DEFAULT_BUILD_TIMEOUT,
                ),
                start: secs(
                    "KATA_START_TIMEOUT",
                    stored.start_timeout,
                    DEFAULT_START_TIMEOUT,
                ),
                drain: secs(
                    "KATA_DRAIN_TIMEOUT",
                    stored.drain_timeout,
                    DEFAULT_DRAIN_TIMEOUT,
                ),
            }
        },
        subnet_pool: pick("KATA_SUBNET_POOL", &stored.subnet_pool)
            .unwrap_or_else(|| crate::subnets::DEFAULT_POOL.to_owned()),
        subnet_prefix: env("KATA_SUBNET_PREFIX")
            .and_then(|v| v.trim().parse().ok())
            .or(stored.subnet_prefix)
            .unwrap_or(crate::subnets::DEFAULT_PREFIX),
        port_range: pick("KATA_PORT_RANGE", &stored.port_range)
            .and_then(|r| crate::ports::PortRange::parse(&r).ok())
            .unwrap_or(crate::ports::DEFAULT_RANGE),
    }
}

pub fn load(paths: &Paths) -> Result<Settings, SettingsError> {
    Ok(resolve(&load_stored(paths)?, |k| std::env::var(k).ok()))
}

/// This process's time limits, read once (file, then environment). A
/// damaged settings file means the defaults here: the command that needs
/// the other settings reports it.
pub fn timeouts() -> Timeouts {
    static ONCE: std::sync::OnceLock<Timeouts> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        let stored = load_stored(&Paths::from_env()).unwrap_or_default();
        resolve(&stored, |k| std::env::var(k).ok()).timeouts
    })
}

impl Paths {
    /// `KATA_ROOT`, else `$HOME`, else the current directory.
    pub fn from_env() -> Self {
        let root = std::env::var_os("KATA_ROOT")
            .filter(|v| !v.is_empty())
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()))
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from("."));
        Paths::new(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_overrides_default() {
        let stored = Stored {
            caddy_admin: Some("unix//run/caddy.sock".into()),
            ..Default::default()
        };
        let s = resolve(&stored, |_| None);
        assert_eq!(s.caddy_admin, "unix//run/caddy.sock");
        assert_eq!(s.base_image, DEFAULT_BASE_IMAGE);
        let s = resolve(&stored, |k| {
            (k == "KATA_CADDY_ADMIN").then(|| "http://h:1".into())
        });
        assert_eq!(s.caddy_admin, "http://h:1");
    }

    #[test]
    fn timeouts_from_file_env_and_defaults() {
        let stored = Stored {
            build_timeout: Some(100),
            drain_timeout: Some(0),
            ..Default::default()
        };
        let t = resolve(&stored, |k| {
            (k == "KATA_DOCKER_TIMEOUT").then(|| "7".into())
        })
        .timeouts;
        assert_eq!(t.docker, Duration::from_secs(7));
        assert_eq!(t.build, Duration::from_secs(100));
        assert_eq!(t.start, Duration::from_secs(DEFAULT_START_TIMEOUT));
        // 0 would mean "fail at once": the least is one second
        assert_eq!(t.drain, Duration::from_secs(1));
    }
}
