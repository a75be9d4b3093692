//! Host settings: kept in `state/settings.json` (written by `kata setup
//! --<setting> VALUE`), each overridable by a `KATA_*` variable. The forced
//! command runs with sshd's bare environment, so the file is the source of truth.

use crate::fsutil::write_atomic;
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::io;
use thiserror::Error;

pub const DEFAULT_CADDY_ADMIN: &str = "http://localhost:2019";
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";
pub const DEFAULT_KEEP_RELEASES: usize = 5;

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
}

/// Effective settings: file, then environment, then defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub caddy_admin: String,
    pub base_image: String,
    /// `None`: `main`, falling back to `master`.
    pub deploy_branch: Option<String>,
    pub keep_releases: usize,
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
    }
}

pub fn load(paths: &Paths) -> Result<Settings, SettingsError> {
    Ok(resolve(&load_stored(paths)?, |k| std::env::var(k).ok()))
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
}
