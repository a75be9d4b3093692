//! `setup:ssh`, `ssh:keys`, `ssh:remove`, the forced command and the git hook.

pub fn setup_ssh(_file: &str, _name: Option<&str>) -> anyhow::Result<i32> {
    anyhow::bail!("setup:ssh: not implemented yet")
}

pub fn keys(_json: bool) -> anyhow::Result<i32> {
    anyhow::bail!("ssh:keys: not implemented yet")
}

pub fn remove(_key: &str) -> anyhow::Result<i32> {
    anyhow::bail!("ssh:remove: not implemented yet")
}

pub fn serve(_key: &str, _name: &str) -> anyhow::Result<i32> {
    anyhow::bail!("ssh-serve: not implemented yet")
}

pub fn git_hook(app: &str) -> anyhow::Result<i32> {
    let _app = super::app_arg(app)?;
    anyhow::bail!("git-hook: not implemented yet")
}
