//! `validate`, `render`.

use std::path::PathBuf;

pub fn validate(_file: Option<PathBuf>) -> anyhow::Result<i32> {
    anyhow::bail!("validate: not implemented yet")
}

pub fn render(_file: Option<PathBuf>, _app: Option<String>, _target: crate::render::Target) -> anyhow::Result<i32> {
    anyhow::bail!("render: not implemented yet")
}
