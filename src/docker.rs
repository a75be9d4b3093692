//! The docker CLI, as processes: every call's failure carries docker's own
//! message, and every failure is an error (non-zero exit for kata).

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DockerError {
    #[error("could not run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") })]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Other(String),
}

fn show(program: &str, args: &[impl AsRef<OsStr>]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

fn status_text(s: std::process::ExitStatus) -> String {
    match s.code() {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".into(),
    }
}

/// Runs a command with output streamed to ours (the pusher sees it live).
pub fn stream(
    program: &str,
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
) -> Result<(), DockerError> {
    let cmd = show(program, args);
    let mut c = Command::new(program);
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    // stdout → our stdout; the hook relays both to the pusher
    let status = c.status().map_err(|source| DockerError::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(DockerError::Failed {
            cmd,
            status: status_text(status),
            stderr: String::new(),
        })
    }
}

/// Runs a command and returns its stdout; stderr is kept for the error.
pub fn capture(program: &str, args: &[impl AsRef<OsStr>]) -> Result<String, DockerError> {
    let cmd = show(program, args);
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DockerError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(DockerError::Failed {
            cmd,
            status: status_text(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

pub fn docker(args: &[&str]) -> Result<String, DockerError> {
    capture("docker", args)
}

/// Which compose CLI this host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeCli {
    /// `docker compose` (v2 plugin)
    V2,
    /// `docker-compose` 1.x
    V1,
}

impl ComposeCli {
    pub fn detect() -> Result<ComposeCli, DockerError> {
        if let Ok(v) = std::env::var("KATA_COMPOSE") {
            match v.as_str() {
                "v1" => return Ok(ComposeCli::V1),
                "v2" => return Ok(ComposeCli::V2),
                _ => {}
            }
        }
        if capture("docker", &["compose", "version"]).is_ok() {
            Ok(ComposeCli::V2)
        } else if capture("docker-compose", &["version"]).is_ok() {
            Ok(ComposeCli::V1)
        } else {
            Err(DockerError::Other(
                "neither `docker compose` (v2) nor `docker-compose` (v1) works on this host".into(),
            ))
        }
    }
    pub fn target(self) -> crate::render::Target {
        match self {
            ComposeCli::V2 => crate::render::Target::V2,
            ComposeCli::V1 => crate::render::Target::V1,
        }
    }
    /// Program and leading args for `compose -p PROJECT -f FILE ...`.
    pub fn argv(
        self,
        project: &str,
        file: &std::path::Path,
        rest: &[&str],
    ) -> (String, Vec<String>) {
        let mut args: Vec<String> = vec![];
        let program = match self {
            ComposeCli::V2 => {
                args.push("compose".into());
                "docker"
            }
            ComposeCli::V1 => "docker-compose",
        };
        args.extend([
            "-p".into(),
            project.into(),
            "-f".into(),
            file.display().to_string(),
        ]);
        // A release's recorded compose file runs with the release's code as
        // project directory, and interpolates from the `.env` recorded when
        // the release was made, never from one a container wrote into it.
        if let Some((dir, env_file)) = crate::release::compose_layout(file) {
            args.extend([
                "--project-directory".into(),
                dir.display().to_string(),
                "--env-file".into(),
                env_file.display().to_string(),
            ]);
        }
        args.extend(rest.iter().map(|s| s.to_string()));
        (program.into(), args)
    }
}

/// This node's swarm role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmRole {
    None,
    Manager,
    Worker,
}

pub fn swarm_role() -> Result<SwarmRole, DockerError> {
    let out = docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ])?;
    Ok(parse_swarm_role(&out))
}

pub fn parse_swarm_role(out: &str) -> SwarmRole {
    let mut it = out.split_whitespace();
    match (it.next(), it.next()) {
        (Some("active"), Some("true")) => SwarmRole::Manager,
        (Some("active"), _) => SwarmRole::Worker,
        _ => SwarmRole::None,
    }
}

/// One running container of an app, found by kata's labels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    pub state: String,
    pub status: String,
    pub release: Option<u64>,
}

/// Containers labelled `kata.app=<app>` (all states).
pub fn containers(app: &str) -> Result<Vec<Container>, DockerError> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=kata.app={app}"),
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.Label \"kata.service\"}}\t{{.State}}\t{{.Status}}\t{{.Label \"kata.release\"}}",
    ])?;
    Ok(parse_containers(&out))
}

pub fn parse_containers(out: &str) -> Vec<Container> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 5).then(|| Container {
                id: f[0].into(),
                name: f[1].into(),
                service: f[2].into(),
                state: f[3].into(),
                status: f[4].into(),
                release: f.get(5).and_then(|r| r.parse().ok()),
            })
        })
        .collect()
}

/// The IP addresses of a container on each of its networks.
pub fn container_ips(id: &str) -> Result<Vec<String>, DockerError> {
    let out = docker(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        id,
    ])?;
    Ok(out.split_whitespace().map(str::to_owned).collect())
}

/// Addresses of this node's containers on `docker_gwbridge` (full container
/// id → IPv4). A swarm task's overlay address cannot be reached from the
/// host; its gwbridge address can, so Caddy on the host dials that.
pub fn gwbridge_ips() -> Result<Vec<(String, String)>, DockerError> {
    let out = docker(&[
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{range $id, $c := .Containers}}{{$id}} {{$c.IPv4Address}}\n{{end}}",
    ])?;
    Ok(parse_gwbridge(&out))
}

pub fn parse_gwbridge(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (id, addr) = l.trim().split_once(' ')?;
            let ip = addr.split('/').next()?;
            (!ip.is_empty()).then(|| (id.to_owned(), ip.to_owned()))
        })
        .collect()
}

/// Containers of a swarm stack's current tasks on this node, as
/// [`Container`]s. Swarm keeps the exited containers of replaced tasks as
/// history; only tasks whose desired state is `running` count.
pub fn containers_of_stack(app: &str) -> Result<Vec<Container>, DockerError> {
    let out = stack_container_lines(app)?;
    // fails when the stack is gone: then no task is current
    let tasks = docker(&[
        "stack",
        "ps",
        app,
        "--filter",
        "desired-state=running",
        "--quiet",
        "--no-trunc",
    ])
    .unwrap_or_default();
    Ok(current_task_containers(&out, &tasks))
}

/// Every container on this node that belongs to stack `app`, history
/// included (what must be gone before its networks can be removed).
pub fn all_containers_of_stack(app: &str) -> Result<Vec<Container>, DockerError> {
    Ok(parse_containers(&stack_container_lines(app)?))
}

fn stack_container_lines(app: &str) -> Result<String, DockerError> {
    docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.stack.namespace={app}"),
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.Label \"kata.service\"}}\t{{.State}}\t{{.Status}}\t{{.Label \"kata.release\"}}\t{{.Label \"com.docker.swarm.task.id\"}}",
    ])
}

/// The lines of `ps_out` (whose 7th column is the task id) for the tasks
/// listed in `task_ids`, parsed.
pub fn current_task_containers(ps_out: &str, task_ids: &str) -> Vec<Container> {
    let current: std::collections::HashSet<&str> = task_ids.split_whitespace().collect();
    let lines: Vec<&str> = ps_out
        .lines()
        .filter(|l| l.split('\t').nth(6).is_some_and(|t| current.contains(t)))
        .collect();
    parse_containers(&lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_roles() {
        assert_eq!(parse_swarm_role("active true\n"), SwarmRole::Manager);
        assert_eq!(parse_swarm_role("active false\n"), SwarmRole::Worker);
        assert_eq!(parse_swarm_role("inactive false\n"), SwarmRole::None);
        assert_eq!(parse_swarm_role(""), SwarmRole::None);
    }

    #[test]
    fn only_current_swarm_tasks_count() {
        let ps = "c1\tshop_web.1.aaa\tweb\trunning\tUp 1 minute\t2\ttask-new\n\
                  c0\tshop_web.1.bbb\tweb\texited\tExited (0) 1 minute ago\t1\ttask-old\n";
        let got = current_task_containers(ps, "task-new\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "c1");
        assert!(current_task_containers(ps, "").is_empty());
    }

    #[test]
    fn gwbridge_addresses() {
        let out = "abc123 172.18.0.3/16\nlb-ingress 172.18.0.2/16\n\n";
        assert_eq!(
            parse_gwbridge(out),
            vec![
                ("abc123".to_owned(), "172.18.0.3".to_owned()),
                ("lb-ingress".to_owned(), "172.18.0.2".to_owned())
            ]
        );
    }

    #[test]
    fn container_lines() {
        let c = parse_containers("abc\tdemo-web-1\tweb\trunning\tUp 2 seconds\t3\nbad line\n");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].service, "web");
        assert_eq!(c[0].release, Some(3));
    }

    #[test]
    fn compose_argv() {
        let (p, a) = ComposeCli::V2.argv("demo", std::path::Path::new("/x/c.yaml"), &["up", "-d"]);
        assert_eq!(p, "docker");
        assert_eq!(a, ["compose", "-p", "demo", "-f", "/x/c.yaml", "up", "-d"]);
        let (p, a) = ComposeCli::V1.argv("demo", std::path::Path::new("/x/c.yaml"), &["ps"]);
        assert_eq!(p, "docker-compose");
        assert_eq!(a, ["-p", "demo", "-f", "/x/c.yaml", "ps"]);
        // a release's recorded file: its code dir, its recorded .env
        let f = std::path::Path::new("/k/releases/4/docker-compose.yaml");
        let (_, a) = ComposeCli::V1.argv("demo", f, &["ps"]);
        assert_eq!(
            a.join(" "),
            "-p demo -f /k/releases/4/docker-compose.yaml --project-directory /k/releases/4/src \
             --env-file /k/releases/4/compose.env ps"
        );
    }
}
