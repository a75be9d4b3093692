//! `config:caddy`, `caddy:ls`.

pub fn config_caddy(app: &str) -> anyhow::Result<i32> {
    let _app = super::app_arg(app)?;
    anyhow::bail!("config:caddy: not implemented yet")
}

pub fn ls(_json: bool) -> anyhow::Result<i32> {
    anyhow::bail!("caddy:ls: not implemented yet")
}
