//! The error of a deploy step. Below both the pipeline (`deploy`) and the
//! rollout, which share it.

use crate::{caddy, docker::DockerError, envfile, settings};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Caddy(#[from] caddy::CaddyError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Config(#[from] envfile::ReadError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn fail(msg: impl Into<String>) -> DeployError {
    DeployError::Failed(msg.into())
}
