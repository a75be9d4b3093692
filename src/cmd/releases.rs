//! `releases`, `rollback`.

pub fn list(app: &str, _json: bool) -> anyhow::Result<i32> {
    let _app = super::app_arg(app)?;
    anyhow::bail!("releases: not implemented yet")
}

pub fn rollback(app: &str, _release: Option<u64>) -> anyhow::Result<i32> {
    let _app = super::app_arg(app)?;
    anyhow::bail!("rollback: not implemented yet")
}
