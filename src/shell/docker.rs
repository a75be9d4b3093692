//! The docker CLI, as processes: every call's failure carries docker's own
//! message, every failure is an error (non-zero exit for kata), and every
//! call has a time limit, so a hung engine fails a deploy instead of holding
//! it (and the app's lock) forever.

use crate::output::Filter;
use crate::settings::Timeouts;
use crate::ui;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
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
    #[error(
        "`{cmd}` did not finish within {} s, so kata stopped it: the docker engine may be hung or overloaded (this limit is {setting})",
        limit.as_secs()
    )]
    TimedOut {
        cmd: String,
        limit: Duration,
        /// How to change the limit.
        setting: &'static str,
    },
    #[error("{0}")]
    Other(String),
}

/// How long a call may take depends on what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ps, inspect, info, rm, network and volume calls: seconds at most.
    Quick,
    /// Builds, pulls, `compose up`, `docker run`, `stop` (a grace period).
    Long,
}

impl Kind {
    pub fn limit(self, t: &Timeouts) -> Duration {
        match self {
            Kind::Quick => t.docker,
            Kind::Long => t.build,
        }
    }
    fn setting(self) -> &'static str {
        match self {
            Kind::Quick => "`kata setup --docker-timeout SECS` or KATA_DOCKER_TIMEOUT",
            Kind::Long => "`kata setup --build-timeout SECS` or KATA_BUILD_TIMEOUT",
        }
    }
}

/// Subcommands that may legitimately run for minutes.
const LONG: &[&str] = &[
    "build", "pull", "push", "run", "load", "import", "stop", "restart", "up", "down", "start",
    "create", "deploy",
];
/// Options of docker/compose whose value is the next argument.
const WITH_VALUE: &[&str] = &[
    "-p",
    "--project-name",
    "-f",
    "--file",
    "--format",
    "--filter",
    "--progress",
    "-c",
    "--context",
    "-H",
    "--host",
    "--env-file",
];

/// What kind of call `program args` is (pure: decided from the argv).
pub fn kind(program: &str, args: &[impl AsRef<OsStr>]) -> Kind {
    let mut words = vec![];
    let mut skip = false;
    for a in args {
        let a = a.as_ref().to_string_lossy();
        if std::mem::take(&mut skip) {
            continue;
        }
        if a.starts_with('-') {
            skip = WITH_VALUE.contains(&a.as_ref());
            continue;
        }
        words.push(a.into_owned());
        if words.len() == 2 {
            break;
        }
    }
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let long = |w: &str| LONG.contains(&w);
    let is_long = match (program, word(0)) {
        ("docker-compose", w) => long(w),
        (_, "compose" | "stack" | "image" | "container" | "service") => long(word(1)),
        (_, w) => long(w),
    };
    if is_long { Kind::Long } else { Kind::Quick }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Out,
    Err,
}

/// Runs `program args` with a time limit, handing each chunk of its stdout
/// and stderr to `on_output` as it comes. Past the limit the whole process
/// group is killed (compose v2 runs as a child of `docker`).
fn run_limited(
    program: &str,
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
    on_output: impl FnMut(Pipe, &[u8]),
) -> Result<std::process::ExitStatus, DockerError> {
    if !PHASE_READ.with(std::cell::Cell::get) {
        phase::end();
    }
    let kind = kind(program, args);
    let limit = kind.limit(&crate::settings::timeouts());
    run_within(program, args, env, limit, kind.setting(), on_output)
}

fn run_within(
    program: &str,
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
    limit: Duration,
    setting: &'static str,
    mut on_output: impl FnMut(Pipe, &[u8]),
) -> Result<std::process::ExitStatus, DockerError> {
    use std::os::unix::process::CommandExt;
    let cmd = show(program, args);
    let mut c = Command::new(program);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().map_err(|source| DockerError::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    let (tx, rx) = mpsc::channel::<Option<(Pipe, Vec<u8>)>>();
    let readers = [
        (
            Pipe::Out,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            Pipe::Err,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ];
    for (pipe, reader) in readers {
        let Some(mut reader) = reader else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(Some((pipe, buf[..n].to_vec()))).is_err() {
                    break;
                }
            }
            let _ = tx.send(None);
        });
    }
    drop(tx);
    let deadline = Instant::now() + limit;
    let group = child.id() as i32;
    // Kills the whole group (compose v2 runs under `docker`) and reaps it.
    let timed_out = |child: &mut std::process::Child, cmd: String| {
        // SAFETY: kill(2) on the process group we created; no memory involved.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = child.wait();
        Err(DockerError::TimedOut {
            cmd,
            limit,
            setting,
        })
    };
    let mut open = 2;
    while open > 0 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Some((pipe, bytes))) => on_output(pipe, &bytes),
            Ok(None) => open -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => return timed_out(&mut child, cmd),
        }
    }
    // Both pipes closed: the process is exiting (or detached from them).
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => return timed_out(&mut child, cmd),
            Err(source) => return Err(DockerError::Spawn { cmd, source }),
        }
    }
}

/// Runs a command with its output shown to the pusher as it comes: lines
/// indented under the current step, `\r` progress collapsed, escapes and
/// docker's notices dropped (everything raw with `KATA_VERBOSE=1`). The
/// deploy log gets the raw bytes.
pub fn stream(
    program: &str,
    args: &[impl AsRef<OsStr>],
    env: &[(&str, &str)],
) -> Result<(), DockerError> {
    let cmd = show(program, args);
    let verbose = ui::verbose();
    ui::log_line(format_args!("$ {cmd}"));
    if verbose {
        ui::info(format_args!("$ {cmd}"));
    }
    let (mut out, mut err) = (Filter::default(), Filter::default());
    let status = run_limited(program, args, env, |pipe, bytes| {
        ui::log_raw(bytes);
        if verbose {
            ui::raw(bytes);
            return;
        }
        let f = if pipe == Pipe::Out {
            &mut out
        } else {
            &mut err
        };
        for line in f.feed(bytes) {
            ui::output_line(&line);
        }
    });
    for line in [out.finish(), err.finish()].into_iter().flatten() {
        if !verbose {
            ui::output_line(&line);
        }
    }
    let status = status?;
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

/// Runs a command and returns its stdout and stderr, whatever its status.
pub fn output(
    program: &str,
    args: &[impl AsRef<OsStr>],
) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), DockerError> {
    let (mut out, mut err) = (vec![], vec![]);
    let status = run_limited(program, args, &[], |pipe, bytes| match pipe {
        Pipe::Out => out.extend_from_slice(bytes),
        Pipe::Err => err.extend_from_slice(bytes),
    })?;
    Ok((status, out, err))
}

/// Runs a command and returns its stdout; stderr is kept for the error.
pub fn capture(program: &str, args: &[impl AsRef<OsStr>]) -> Result<String, DockerError> {
    let (status, out, err) = output(program, args)?;
    if status.success() {
        Ok(String::from_utf8_lossy(&out).into_owned())
    } else {
        Err(DockerError::Failed {
            cmd: show(program, args),
            status: status_text(status),
            stderr: String::from_utf8_lossy(&err).trim().to_owned(),
        })
    }
}

pub fn docker(args: &[&str]) -> Result<String, DockerError> {
    capture("docker", args)
}

/// Runs two independent reads at once: each start of the docker CLI costs
/// tens of milliseconds, and a deploy's first reads do not wait on each
/// other.
pub fn both<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    })
}

/// Runs a planned argv (program first, see [`crate::argv`]) and returns
/// its stdout.
/// A removal's result, where an object removed since it was listed counts
/// as removed.
pub fn gone_is_fine(r: Result<String, DockerError>) -> Result<(), DockerError> {
    match r {
        Err(DockerError::Failed { stderr, .. })
            if stderr.contains("not found") || stderr.contains("No such") =>
        {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

pub fn run(argv: &[String]) -> Result<String, DockerError> {
    capture(&argv[0], &argv[1..])
}

/// Runs a planned argv with its output streamed under the current step.
pub fn run_streamed(argv: &[String], env: &[(&str, &str)]) -> Result<(), DockerError> {
    stream(&argv[0], &argv[1..], env)
}

pub use crate::model::ComposeCli;

thread_local! {
    /// Set while [`phase::read`] runs its call, which must not end the phase.
    static PHASE_READ: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// One snapshot per phase: the same read (`ps -a` of an app, a container's
/// addresses) asked again with no other docker call in between is answered
/// from the first answer. Any other docker call (a start, a stop, a health
/// probe's inspect, ...) ends the phase, and so do a few seconds: a loop
/// that waits for a change always sees docker again.
mod phase {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const MAX_AGE: Duration = Duration::from_secs(3);

    struct Phase {
        since: Option<Instant>,
        reads: BTreeMap<Vec<String>, String>,
    }

    static PHASE: Mutex<Phase> = Mutex::new(Phase {
        since: None,
        reads: BTreeMap::new(),
    });

    fn with<T>(f: impl FnOnce(&mut Phase) -> T) -> T {
        let mut p = PHASE.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    }

    #[cfg(test)]
    pub fn is_empty() -> bool {
        with(|p| p.reads.is_empty())
    }

    pub fn end() {
        with(|p| {
            p.since = None;
            p.reads.clear();
        })
    }

    /// `docker ARGS`, from this phase's answers when it was asked already.
    pub fn read(args: &[&str]) -> Result<String, super::DockerError> {
        read_with("docker", args)
    }

    pub(super) fn read_with(program: &str, args: &[&str]) -> Result<String, super::DockerError> {
        let mut key: Vec<String> = vec![program.to_owned()];
        key.extend(args.iter().map(|a| a.to_string()));
        let hit = with(|p| match p.since {
            Some(t) if t.elapsed() < MAX_AGE => p.reads.get(&key).cloned(),
            _ => None,
        });
        if let Some(out) = hit {
            return Ok(out);
        }
        super::PHASE_READ.with(|r| r.set(true));
        let out = super::capture(program, args);
        super::PHASE_READ.with(|r| r.set(false));
        let out = out?;
        with(|p| {
            if p.since.is_none_or(|t| t.elapsed() >= MAX_AGE) {
                p.since = Some(Instant::now());
                p.reads.clear();
            }
            p.reads.insert(key, out.clone());
        });
        Ok(out)
    }
}

impl ComposeCli {
    /// Which compose CLI this host has (`KATA_COMPOSE=v1|v2` forces one).
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
}

pub use crate::model::SwarmRole;

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

pub use crate::model::Container;

/// Containers labelled `kata.app=<app>` (all states).
pub fn containers(app: &str) -> Result<Vec<Container>, DockerError> {
    let out = phase::read(&[
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

/// Every docker network with its compose labels and IPv4/IPv6 subnets (two
/// calls, whatever the number of networks): what subnet allocation avoids.
pub fn networks() -> Result<Vec<crate::subnets::DockerNet>, DockerError> {
    networks_filtered(&[])
}

/// [`networks`] of compose project `app` only: one inspect, not one per
/// network on the engine.
pub fn networks_of(app: &str) -> Result<Vec<crate::subnets::DockerNet>, DockerError> {
    networks_filtered(&[
        "--filter",
        &format!("label=com.docker.compose.project={app}"),
    ])
}

fn networks_filtered(filter: &[&str]) -> Result<Vec<crate::subnets::DockerNet>, DockerError> {
    let mut ls = vec!["network", "ls", "-q", "--no-trunc"];
    ls.extend(filter);
    let ids = docker(&ls)?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{.Name}}\t{{index .Labels \"com.docker.compose.project\"}}\t{{index .Labels \"com.docker.compose.network\"}}\t{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids);
    match docker(&args) {
        Ok(out) => Ok(crate::subnets::parse_networks(&out)),
        // a network removed between the two calls: ask once more
        Err(_) => {
            let ids = docker(&ls)?;
            args.truncate(4);
            args.extend(ids.split_whitespace());
            Ok(crate::subnets::parse_networks(&docker(&args)?))
        }
    }
}

/// The IP addresses of a container on each of its networks.
pub fn container_ips(id: &str) -> Result<Vec<String>, DockerError> {
    let out = phase::read(&[
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

/// Every container on this node with the labels that say whose it is: one
/// `docker ps -a` for all apps (what `kata ls` lists from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `ps` lines: the [`Container`] columns, then the swarm task id,
    /// `kata.app`, `com.docker.stack.namespace` and the published ports.
    lines: Vec<String>,
    /// Indexes of `lines` by `kata.app` and by stack namespace: `ls` asks
    /// for every app, and a scan per app would grow with the square.
    by_app: HashMap<String, Vec<usize>>,
    by_stack: HashMap<String, Vec<usize>>,
    /// Swarm tasks on this node whose desired state is `running`.
    tasks: std::collections::HashSet<String>,
}

impl Snapshot {
    /// Pure: from `docker ps -a` output in [`snapshot`]'s format and the
    /// current task ids.
    pub fn parse(ps_out: &str, task_ids: &str) -> Snapshot {
        let lines: Vec<String> = ps_out.lines().map(str::to_owned).collect();
        let mut by_app: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_stack: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, l) in lines.iter().enumerate() {
            by_app
                .entry(Self::column(l, 7).to_owned())
                .or_default()
                .push(i);
            by_stack
                .entry(Self::column(l, 8).to_owned())
                .or_default()
                .push(i);
        }
        Snapshot {
            lines,
            by_app,
            by_stack,
            tasks: task_ids.split_whitespace().map(str::to_owned).collect(),
        }
    }

    fn lines_of<'a>(
        &'a self,
        index: &'a HashMap<String, Vec<usize>>,
        key: &str,
    ) -> impl Iterator<Item = &'a str> {
        index
            .get(key)
            .into_iter()
            .flatten()
            .map(|&i| self.lines[i].as_str())
    }

    fn column(line: &str, i: usize) -> &str {
        line.split('\t').nth(i).unwrap_or("")
    }

    /// What [`containers`] lists for `app`.
    pub fn of_app(&self, app: &str) -> Vec<Container> {
        let lines: Vec<&str> = self.lines_of(&self.by_app, app).collect();
        parse_containers(&lines.join("\n"))
    }

    /// Every running kata container with the ports it publishes (what
    /// `docker inspect` would say, but for the containers' addresses).
    pub fn published(&self) -> Vec<crate::ports::Published> {
        self.lines
            .iter()
            .filter(|l| Self::column(l, 3) == "running" && !Self::column(l, 7).is_empty())
            .map(|l| crate::ports::Published {
                id: Self::column(l, 0).to_owned(),
                app: Self::column(l, 7).to_owned(),
                service: Self::column(l, 2).to_owned(),
                running: true,
                ips: vec![],
                ports: crate::ports::parse_ps_ports(Self::column(l, 9)),
            })
            .collect()
    }

    /// The running containers of current swarm tasks, each with its
    /// `docker_gwbridge` address (`bridge`: full id → address, from
    /// [`gwbridge_ips`]), the address Caddy dials for a task.
    pub fn task_published(&self, bridge: &[(String, String)]) -> Vec<crate::ports::Published> {
        self.lines
            .iter()
            .filter(|l| {
                Self::column(l, 3) == "running"
                    && !Self::column(l, 8).is_empty()
                    && self.tasks.contains(Self::column(l, 6))
            })
            .map(|l| {
                let id = Self::column(l, 0);
                crate::ports::Published {
                    id: id.to_owned(),
                    app: Self::column(l, 8).to_owned(),
                    service: Self::column(l, 2).to_owned(),
                    running: true,
                    ips: bridge
                        .iter()
                        .filter(|(full, _)| !id.is_empty() && full.starts_with(id))
                        .map(|(_, ip)| ip.clone())
                        .collect(),
                    ports: vec![],
                }
            })
            .collect()
    }

    /// What [`containers_of_stack`] lists for `app`.
    pub fn of_stack(&self, app: &str) -> Vec<Container> {
        let lines: Vec<&str> = self
            .lines_of(&self.by_stack, app)
            .filter(|l| self.tasks.contains(Self::column(l, 6)))
            .collect();
        parse_containers(&lines.join("\n"))
    }
}

/// One `docker ps -a` for every container on this node, and with `swarm`
/// one `docker node ps` for the current tasks: a constant number of calls
/// however many apps there are.
pub fn snapshot(swarm: bool) -> Result<Snapshot, DockerError> {
    let out = docker(&[
        "ps",
        "-a",
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.Label \"kata.service\"}}\t{{.State}}\t{{.Status}}\t{{.Label \"kata.release\"}}\t{{.Label \"com.docker.swarm.task.id\"}}\t{{.Label \"kata.app\"}}\t{{.Label \"com.docker.stack.namespace\"}}\t{{.Ports}}",
    ])?;
    // fails off a swarm manager: then no task is current
    let tasks = if swarm {
        docker(&[
            "node",
            "ps",
            "--filter",
            "desired-state=running",
            "--quiet",
            "--no-trunc",
        ])
        .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Snapshot::parse(&out, &tasks))
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
    fn one_snapshot_serves_every_app() {
        let ps = "c1\tshop-web-1\tweb\trunning\tUp 1 minute\t2\t\tshop\t\n\
                  c2\tshop-web-2\tweb\texited\tExited (0)\t1\t\tshop\t\n\
                  c3\tshopper-web-1\tweb\trunning\tUp\t1\t\tshopper\t\n\
                  c4\tst_web.1.a\tweb\trunning\tUp\t3\ttask-new\tst\tst\n\
                  c5\tst_web.1.b\tweb\texited\tExited (0)\t2\ttask-old\tst\tst\n\
                  c6\tother\t\trunning\tUp\t\t\t\t\n";
        let s = Snapshot::parse(ps, "task-new\n");
        let ids = |cs: Vec<Container>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(s.of_app("shop")), ["c1", "c2"]);
        assert_eq!(s.of_app("shop")[0].release, Some(2));
        assert_eq!(ids(s.of_app("shopper")), ["c3"]);
        assert_eq!(ids(s.of_stack("st")), ["c4"]);
        assert!(s.of_app("nope").is_empty());
        assert!(Snapshot::parse(ps, "").of_stack("st").is_empty());
        // the current task's container, at its gwbridge address
        let bridge = [
            ("c4aaaa".to_owned(), "172.18.0.4".to_owned()),
            ("c5bbbb".to_owned(), "172.18.0.5".to_owned()),
        ];
        let tasks = s.task_published(&bridge);
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!((tasks[0].id.as_str(), tasks[0].app.as_str()), ("c4", "st"));
        assert_eq!(tasks[0].ips, ["172.18.0.4"]);
    }

    #[test]
    fn a_phase_answers_a_repeated_read_until_another_call_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("n");
        // each run appends a line and prints how many runs there were
        let script = format!("echo x >> {0}; wc -l < {0}", count.display());
        let read = || phase::read_with("sh", &["-c", &script]).unwrap();
        phase::end();
        assert_eq!(read().trim(), "1");
        assert_eq!(read().trim(), "1", "answered from the phase");
        // any other call ends the phase
        capture("sh", &["-c", "true"]).unwrap();
        assert!(phase::is_empty());
        assert_eq!(read().trim(), "2");
        // and so does time
        std::thread::sleep(Duration::from_millis(3100));
        assert_eq!(read().trim(), "3");
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
    fn a_call_past_its_limit_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // the child's own child would outlive a kill of the child alone
        let script = format!(
            "echo started; (sleep 2; touch {}) & sleep 30",
            marker.display()
        );
        let mut seen = vec![];
        let started = Instant::now();
        let err = run_within(
            "sh",
            &["-c", &script],
            &[],
            Duration::from_millis(300),
            "a test",
            |_, b| seen.extend_from_slice(b),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(String::from_utf8_lossy(&seen), "started\n");
        let text = err.to_string();
        assert!(text.contains("`sh -c echo started;"), "{text}");
        assert!(text.contains("did not finish within 0 s"), "{text}");
        std::thread::sleep(Duration::from_secs(3));
        assert!(!marker.exists(), "the grandchild was not killed");
    }

    #[test]
    fn calls_within_their_limit_report_status_and_output() {
        let mut out = vec![];
        let status = run_within(
            "sh",
            &["-c", "echo out; echo err >&2; exit 3"],
            &[("X", "1")],
            Duration::from_secs(30),
            "a test",
            |pipe, b| out.push((pipe, String::from_utf8_lossy(b).into_owned())),
        )
        .unwrap();
        assert_eq!(status.code(), Some(3));
        out.sort_by_key(|(p, _)| *p == Pipe::Err);
        assert_eq!(
            out,
            [(Pipe::Out, "out\n".into()), (Pipe::Err, "err\n".into())]
        );
    }

    #[test]
    fn call_kinds() {
        let k = |p: &str, a: &[&str]| kind(p, a);
        assert_eq!(
            k("docker", &["ps", "-a", "--filter", "label=kata.app=up"]),
            Kind::Quick
        );
        assert_eq!(
            k("docker", &["inspect", "--format", "{{.Id}}", "x"]),
            Kind::Quick
        );
        assert_eq!(k("docker", &["rm", "-f", "a", "b"]), Kind::Quick);
        assert_eq!(k("docker", &["stop", "a"]), Kind::Long);
        assert_eq!(
            k("docker", &["build", "-t", "kata/python", "."]),
            Kind::Long
        );
        assert_eq!(
            k(
                "docker",
                &["run", "--rm", "-e", "X", "kata/python", "build"]
            ),
            Kind::Long
        );
        assert_eq!(k("docker", &["image", "inspect", "x"]), Kind::Quick);
        assert_eq!(
            k("docker", &["stack", "deploy", "-c", "f", "app"]),
            Kind::Long
        );
        assert_eq!(k("docker", &["stack", "ps", "app"]), Kind::Quick);
        // an app named like a subcommand is a value, not a subcommand
        assert_eq!(
            k("docker", &["compose", "-p", "up", "-f", "/x", "ps"]),
            Kind::Quick
        );
        assert_eq!(
            k("docker", &["compose", "-p", "a", "-f", "/x", "up", "-d"]),
            Kind::Long
        );
        assert_eq!(
            k("docker-compose", &["-p", "stop", "-f", "/x", "ps"]),
            Kind::Quick
        );
        assert_eq!(
            k("docker-compose", &["-p", "a", "-f", "/x", "up", "-d"]),
            Kind::Long
        );
        assert_eq!(k("docker", &["compose", "version"]), Kind::Quick);
    }
}
