//! `config`, `config:get|set|unset`, `config:stack`, `config:docker`.

fn todo(what: &str) -> anyhow::Result<i32> {
    anyhow::bail!("{what}: not implemented yet")
}

pub fn show(_app: &str) -> anyhow::Result<i32> {
    todo("config")
}
pub fn get(_app: &str, _key: &str) -> anyhow::Result<i32> {
    todo("config:get")
}
pub fn set(_app: &str, _pairs: &[String], _deploy: bool) -> anyhow::Result<i32> {
    todo("config:set")
}
pub fn unset(_app: &str, _keys: &[String], _deploy: bool) -> anyhow::Result<i32> {
    todo("config:unset")
}
pub fn stack(_app: &str) -> anyhow::Result<i32> {
    todo("config:stack")
}
pub fn docker(_app: &str) -> anyhow::Result<i32> {
    todo("config:docker")
}
