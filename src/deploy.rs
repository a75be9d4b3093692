//! The release pipeline: export the pushed commit, render, start, route.

use crate::paths::Paths;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("{0}")]
    Failed(String),
}

/// Deploys `commit` (already in `repos/<app>`) as the app's next release.
/// Called by the post-receive hook under the app's deploy lock.
pub fn deploy_commit(_paths: &Paths, _app: &str, _commit: &str) -> Result<(), DeployError> {
    Err(DeployError::Failed("deploy: not implemented yet".into()))
}
