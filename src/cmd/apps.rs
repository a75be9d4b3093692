//! App lifecycle: ls, ps, logs, start/stop/restart, rm, run, deploy, docker, secrets, mode.

use crate::state::Mode;

fn todo(what: &str) -> anyhow::Result<i32> {
    anyhow::bail!("{what}: not implemented yet")
}

pub fn ls(_json: bool) -> anyhow::Result<i32> {
    todo("ls")
}
pub fn ps(_app: &str, _service: Option<&str>, _json: bool) -> anyhow::Result<i32> {
    todo("ps")
}
pub fn logs(_app: &str, _service: Option<&str>, _follow: bool, _tail: Option<String>) -> anyhow::Result<i32> {
    todo("logs")
}
pub fn start(_app: &str) -> anyhow::Result<i32> {
    todo("start")
}
pub fn stop(_app: &str) -> anyhow::Result<i32> {
    todo("stop")
}
pub fn restart(_app: &str, _service: Option<&str>) -> anyhow::Result<i32> {
    todo("restart")
}
pub fn rm(_app: &str, _force: bool, _wipe: bool) -> anyhow::Result<i32> {
    todo("rm")
}
pub fn run(_app: &str, _service: &str, _cmd: &[String]) -> anyhow::Result<i32> {
    todo("run")
}
pub fn deploy(_app: &str) -> anyhow::Result<i32> {
    todo("deploy")
}
pub fn docker(_args: &[String]) -> anyhow::Result<i32> {
    todo("docker")
}
pub fn docker_services(_app: &str) -> anyhow::Result<i32> {
    todo("docker:services")
}
pub fn secrets_set(_spec: &str) -> anyhow::Result<i32> {
    todo("secrets:set")
}
pub fn secrets_ls() -> anyhow::Result<i32> {
    todo("secrets:ls")
}
pub fn secrets_rm(_name: &str) -> anyhow::Result<i32> {
    todo("secrets:rm")
}
pub fn mode(_app: &str, _mode: Option<Mode>) -> anyhow::Result<i32> {
    todo("mode")
}
