//! App lifecycle: ls, ps, logs, start/stop/restart, rm, run, deploy, docker,
//! secrets, mode. Each maps to docker/compose calls on the live release.

use crate::apps::{self, Live};
use crate::docker::{self, Container};
use crate::paths::Paths;
use crate::state::{self, Mode};
use crate::{secrets, settings, ui};
use anyhow::{Context, bail};
use std::io::{IsTerminal, Read, Write};
use std::process::Command;

fn existing(paths: &Paths, raw: &str) -> anyhow::Result<String> {
    let app = super::app_arg(raw)?;
    if !apps::exists(paths, &app) {
        bail!("app {app:?} does not exist");
    }
    Ok(app)
}

fn live(paths: &Paths, app: &str) -> anyhow::Result<Live> {
    apps::live(paths, app)?.with_context(|| format!("{app} has no live release: push to it first"))
}

/// Runs a program with our stdio and returns its exit code.
fn passthrough(program: &str, args: &[String]) -> anyhow::Result<i32> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("could not run {program}"))?;
    Ok(status.code().unwrap_or(1))
}

/// Refuses a service name the live release does not have, before it reaches
/// a compose or docker command line (where `--since=1h` would be a flag).
fn known_service(paths: &Paths, app: &str, live: &Live, service: &str) -> anyhow::Result<()> {
    let services: Vec<String> = match live.release.spec_sha256 {
        Some(_) => crate::deploy::recorded_spec(paths, app, &live.release)?
            .services
            .into_keys()
            .collect(),
        // a release made before plans were recorded: what runs
        None => docker::containers(app)?
            .into_iter()
            .chain(docker::containers_of_stack(app).unwrap_or_default())
            .map(|c| c.service)
            .collect(),
    };
    if !services.iter().any(|s| s == service) {
        let mut names = services;
        names.sort();
        names.dedup();
        bail!(
            "{app} has no service {service:?} (its services: {})",
            names.join(", ")
        );
    }
    Ok(())
}

/// Runs a lifecycle command (start, stop, restart, ...) within its time limit.
fn must(program: &str, args: &[String]) -> anyhow::Result<()> {
    Ok(docker::stream(program, args, &[])?)
}

fn stack_services(app: &str) -> anyhow::Result<Vec<String>> {
    let out = docker::docker(&["stack", "services", app, "--format", "{{.Name}}"])?;
    Ok(out.lines().map(str::to_owned).collect())
}

#[derive(serde::Serialize)]
struct AppRow {
    name: String,
    running: bool,
    containers: usize,
    running_containers: usize,
    release: Option<u64>,
    mode: Option<String>,
    /// Whether Caddy's route reaches the app (`ok`, `-`, `broken: why`).
    route: String,
}

/// One app's row of `kata ls`, from its live release and the host's one
/// container snapshot (pure).
fn app_row(
    name: String,
    live: Option<&Live>,
    snapshot: &docker::Snapshot,
    route: String,
) -> AppRow {
    let cs: Vec<Container> = match live.map(|l| l.mode) {
        Some(Mode::Swarm) => snapshot.of_stack(&name),
        _ => snapshot.of_app(&name),
    };
    let running = cs.iter().filter(|c| c.state == "running").count();
    AppRow {
        running: running > 0,
        containers: cs.len(),
        running_containers: running,
        release: live.map(|l| l.release.number),
        mode: live.map(|l| l.mode.to_string()),
        route,
        name,
    }
}

pub fn ls(json: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let mut apps = vec![];
    for name in apps::names(&paths)
        .into_iter()
        .filter(|a| crate::audit::visible(a))
    {
        let live = apps::live(&paths, &name)?;
        apps.push((name, live));
    }
    // one docker snapshot for all apps, whatever their number
    let swarm = apps
        .iter()
        .any(|(_, l)| l.as_ref().is_some_and(|l| l.mode == Mode::Swarm));
    let snapshot = if apps.is_empty() {
        docker::Snapshot::default()
    } else {
        docker::snapshot(swarm)?
    };
    let mut routes = RouteView {
        published: snapshot.published(),
        // one more docker command, for all swarm apps at once
        tasks: if swarm {
            snapshot.task_published(&docker::gwbridge_ips().unwrap_or_default())
        } else {
            vec![]
        },
        ..RouteView::default()
    };
    let rows: Vec<AppRow> = apps
        .into_iter()
        .map(|(name, live)| {
            let route = routes.status(&paths, &name, live.as_ref());
            app_row(name, live.as_ref(), &snapshot, route)
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    println!(
        "{:<24} {:<9} {:<9} {:<8} {:<8} ROUTE",
        "APP", "STATE", "RUNNING", "RELEASE", "MODE"
    );
    for r in rows {
        println!(
            "{:<24} {:<9} {:<9} {:<8} {:<8} {}",
            r.name,
            if r.running { "running" } else { "stopped" },
            format!("{}/{}", r.running_containers, r.containers),
            r.release
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            r.mode.unwrap_or_else(|| "-".into()),
            r.route,
        );
    }
    Ok(0)
}

/// What `ls` needs to judge routes, read once for all apps: Caddy's config
/// (on the first routed app), the ports the snapshot's running containers
/// publish, the running swarm tasks at their gwbridge addresses, and only
/// when a compose app's dial names a container address, what `docker
/// inspect` says of every running kata container.
#[derive(Default)]
struct RouteView {
    config: Option<Result<serde_json::Value, String>>,
    published: Vec<crate::ports::Published>,
    tasks: Vec<crate::ports::Published>,
    inspected: Option<Result<Vec<crate::ports::Published>, String>>,
}

impl RouteView {
    fn status(&mut self, paths: &Paths, app: &str, live: Option<&Live>) -> String {
        use crate::route_status::{RouteStatus, dials_addresses, status};
        let Some(live) =
            live.filter(|l| crate::release::caddy_file(paths, app, l.release.number).is_file())
        else {
            return RouteStatus::None.to_string();
        };
        let config = self.config.get_or_insert_with(|| {
            let settings = settings::load(paths).map_err(|e| e.to_string())?;
            let admin =
                crate::caddy::Admin::from_settings(&settings, paths).map_err(|e| e.to_string())?;
            admin.config().map_err(|_| "Caddy unreachable".to_owned())
        });
        let config = match config {
            Ok(c) => c,
            Err(e) => return format!("unknown ({e})"),
        };
        let part = crate::caddy::shared::find(app, config).ok().flatten();
        let blocks = crate::port_store::load(paths, app).unwrap_or_default();
        let view = part.as_ref().map(|f| &f.view);
        // a swarm app's part dials its tasks' gwbridge addresses
        let running = if live.mode == Mode::Swarm {
            self.tasks.as_slice()
        } else if view.is_some_and(dials_addresses) {
            let inspected = self
                .inspected
                .get_or_insert_with(|| crate::port_store::running().map_err(|e| e.to_string()));
            match inspected {
                Ok(r) => r.as_slice(),
                Err(e) => return format!("unknown ({e})"),
            }
        } else {
            self.published.as_slice()
        };
        status(app, true, view, &blocks, running).to_string()
    }
}

pub fn ps(app: &str, service: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let live = apps::live(&paths, &app)?;
    if let (Some(s), Some(l)) = (service, &live) {
        known_service(&paths, &app, l, s)?;
    }
    let mode = live.map(|l| l.mode).unwrap_or(Mode::Compose);
    let mut cs = match mode {
        Mode::Swarm => docker::containers_of_stack(&app)?,
        Mode::Compose => docker::containers(&app)?,
    };
    if let Some(s) = service {
        cs.retain(|c| c.service == s);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&cs)?);
        return Ok(0);
    }
    println!(
        "{:<40} {:<16} {:<10} {:<8} STATUS",
        "CONTAINER", "SERVICE", "STATE", "RELEASE"
    );
    for c in cs {
        println!(
            "{:<40} {:<16} {:<10} {:<8} {}",
            c.name,
            c.service,
            c.state,
            c.release
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            c.status
        );
    }
    Ok(0)
}

pub fn logs(
    app: &str,
    service: Option<&str>,
    follow: bool,
    tail: Option<String>,
) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let live = live(&paths, &app)?;
    if let Some(s) = service {
        known_service(&paths, &app, &live, s)?;
    }
    if let Some(t) = &tail {
        anyhow::ensure!(
            t == "all" || t.parse::<u64>().is_ok(),
            "--tail takes a number or `all`"
        );
    }
    match live.mode {
        Mode::Compose => {
            let mut rest = vec!["logs", "--no-color"];
            if follow {
                rest.push("--follow");
            }
            if let Some(t) = &tail {
                rest.extend(["--tail", t]);
            }
            if let Some(s) = service {
                rest.push(s);
            }
            let (p, a) = live.compose(&app, &rest)?;
            passthrough(&p, &a)
        }
        Mode::Swarm => {
            let services = match service {
                Some(s) => vec![format!("{app}_{s}")],
                None => stack_services(&app)?,
            };
            let mut code = 0;
            for s in services {
                let mut a: Vec<String> = vec!["service".into(), "logs".into()];
                if follow {
                    a.push("--follow".into());
                }
                if let Some(t) = &tail {
                    a.extend(["--tail".into(), t.clone()]);
                }
                a.push(s);
                code = code.max(passthrough("docker", &a)?);
            }
            Ok(code)
        }
    }
}

/// Before compose creates containers again from a release whose containers
/// ran (and could write to its code, data and venv): a bind mount whose
/// source inside those directories now goes through a symlink is refused,
/// since Docker would follow it anywhere on the host.
fn check_binds(paths: &Paths, app: &str, live: &Live) -> anyhow::Result<()> {
    let file = live.compose_file();
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(()); // no recorded plan: `compose` says so
    };
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("the recorded {} does not parse", file.display()))?;
    crate::deploy::check_bind_sources(paths, app, &doc, &live.src).map_err(|e| {
        anyhow::anyhow!(
            "refusing to start {app}: {e}, changed from inside a container; run `kata deploy {app}` for a fresh copy of the code"
        )
    })
}

pub fn start(app: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let _lock = crate::deploy::lock_and_recover(&paths, &app)?;
    let live = live(&paths, &app)?;
    check_binds(&paths, &app, &live)?;
    ui::step(format!("Starting {app}"));
    match live.mode {
        Mode::Compose => {
            let (p, a) = live.compose(&app, &["up", "-d", "--no-recreate"])?;
            must(&p, &a)?;
        }
        Mode::Swarm => {
            let file = live.compose_file();
            anyhow::ensure!(
                file.is_file(),
                "release {} of {app} has no recorded compose file: run `kata deploy {app}`",
                live.release.number
            );
            must(
                "docker",
                &["stack", "deploy", "-c", &file.display().to_string(), &app].map(String::from),
            )?
        }
    }
    reroute(&paths, &app, &live)?;
    Ok(0)
}

pub fn stop(app: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let _lock = crate::deploy::lock_and_recover(&paths, &app)?;
    let live = live(&paths, &app)?;
    ui::step(format!("Stopping {app}"));
    match live.mode {
        Mode::Compose => {
            let (p, a) = live.compose(&app, &["stop"])?;
            must(&p, &a)?;
        }
        Mode::Swarm => {
            for s in stack_services(&app)? {
                must(
                    "docker",
                    &[
                        "service".into(),
                        "scale".into(),
                        "--detach".into(),
                        format!("{s}=0"),
                    ],
                )?;
            }
        }
    }
    ui::info("routing stays in Caddy; requests get 502 until `kata start`");
    Ok(0)
}

pub fn restart(app: &str, service: Option<&str>) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let _lock = crate::deploy::lock_and_recover(&paths, &app)?;
    let live = live(&paths, &app)?;
    if let Some(s) = service {
        known_service(&paths, &app, &live, s)?;
    }
    ui::step(format!(
        "Restarting {app}{}",
        service.map(|s| format!(" service {s}")).unwrap_or_default()
    ));
    match live.mode {
        Mode::Compose => {
            let mut rest = vec!["restart"];
            if let Some(s) = service {
                rest.push(s);
            }
            let (p, a) = live.compose(&app, &rest)?;
            must(&p, &a)?;
        }
        Mode::Swarm => {
            let services = match service {
                Some(s) => vec![format!("{app}_{s}")],
                None => stack_services(&app)?,
            };
            for s in services {
                must(
                    "docker",
                    &[
                        "service".into(),
                        "update".into(),
                        "--force".into(),
                        "--detach".into(),
                        s,
                    ],
                )?;
            }
        }
    }
    // Container addresses change on restart.
    reroute(&paths, &app, &live)?;
    Ok(0)
}

/// Re-resolves the app's Caddy upstreams after containers changed, with the
/// Caddy server the live release recorded (never re-read from its checkout).
fn reroute(paths: &Paths, app: &str, live: &Live) -> anyhow::Result<()> {
    let file = crate::release::caddy_file(paths, app, live.release.number);
    let server: serde_json::Value = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("the recorded Caddy plan {} is damaged", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let settings = settings::load(paths)?;
    let spec = crate::deploy::recorded_spec(paths, app, &live.release)?;
    match live.mode {
        // swarm replaces the tasks in the background: route the new ones
        Mode::Swarm => {
            crate::rollout::route_settled_stack(paths, &settings, app, &spec, Some(&server))?
        }
        Mode::Compose => {
            crate::deploy::route(paths, &settings, app, &spec, &server, live.mode)?;
        }
    }
    Ok(())
}

/// Whether any kept release of the app recorded a Caddy server.
fn ever_routed(paths: &Paths, app: &str) -> bool {
    crate::release::list(paths, app)
        .unwrap_or_default()
        .iter()
        .any(|r| crate::release::caddy_file(paths, app, r.number).is_file())
}

/// Labels that mark an app's Docker objects: its compose project, its stack.
fn owner_labels(app: &str) -> [String; 2] {
    [
        format!("label=com.docker.compose.project={app}"),
        format!("label=com.docker.stack.namespace={app}"),
    ]
}

/// IDs or names listed by `docker ARGS --filter F` for each owner label.
fn owned(app: &str, args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for filter in owner_labels(app) {
        let mut a = args.to_vec();
        a.extend(["--filter", &filter]);
        for id in docker::docker(&a).unwrap_or_default().split_whitespace() {
            if !out.iter().any(|o| o == id) {
                out.push(id.to_owned());
            }
        }
    }
    out
}

/// Removes the app's containers, networks and volumes. Volumes that are
/// kata's bind mounts into KATA_ROOT (code, data, config, venv: one for the
/// code of each release) hold nothing themselves and always go; any other
/// volume holds data and goes only with `wipe`.
fn remove_containers(
    paths: &Paths,
    app: &str,
    live: Option<&Live>,
    wipe: bool,
) -> anyhow::Result<()> {
    match live.map(|l| l.mode) {
        Some(Mode::Swarm) => crate::rollout::remove_stack(app)?,
        Some(Mode::Compose) => {
            let l = live.expect("compose mode comes from a live release");
            let mut rest = vec!["down", "--remove-orphans"];
            if wipe {
                rest.push("--volumes");
            }
            // without a recorded compose file, the label sweep below does it
            if let Ok((p, a)) = l.compose(app, &rest) {
                must(&p, &a)?;
            }
        }
        // a stack no release made live (a first deploy that failed, or
        // one an older kata left): its services would recreate the tasks
        None if crate::rollout::has_stack(app) => crate::rollout::remove_stack(app)?,
        None => {}
    }
    // Whatever is left with our labels (e.g. a failed release's containers).
    // Swarm removes a stack's networks and tasks on its own after `stack
    // rm`: one gone since it was listed is removed.
    let remove = |args: &[&str]| docker::gone_is_fine(docker::docker(args));
    for c in docker::containers(app)? {
        remove(&["rm", "-f", &c.id])?;
    }
    for id in owned(app, &["ps", "-aq"]) {
        remove(&["rm", "-f", &id])?;
    }
    for id in owned(app, &["network", "ls", "-q"]) {
        remove(&["network", "rm", &id])?;
    }
    let root = paths.root().display().to_string();
    for v in owned(app, &["volume", "ls", "-q"]) {
        let device = docker::docker(&[
            "volume",
            "inspect",
            "--format",
            "{{.Options.o}} {{.Options.device}}",
            &v,
        ])
        .unwrap_or_default();
        let kata_bind = device
            .trim()
            .strip_prefix("bind ")
            .is_some_and(|d| std::path::Path::new(d).starts_with(&root));
        if wipe || kata_bind {
            docker::docker(&["volume", "rm", &v])?;
        }
    }
    Ok(())
}

pub fn rm(app: &str, force: bool, wipe: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    if !force {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to remove {app} without --force (no terminal to ask on)");
        }
        print!(
            "Remove {app}{}? Type the app name to confirm: ",
            if wipe { " AND its data and config" } else { "" }
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != app {
            println!("not removed");
            return Ok(1);
        }
    }
    let _lock = crate::deploy::lock_app(&paths, &app)?;
    crate::deploy::recover(&paths, &app)?;
    ui::step(format!("Removing {app}"));
    let live = apps::live(&paths, &app)?;
    remove_containers(&paths, &app, live.as_ref(), wipe)?;
    // its networks are gone: their subnets may go to other apps (later)
    crate::subnet_store::free(&paths, &app)?;
    let settings = settings::load(&paths)?;
    if let Ok(admin) = crate::caddy::Admin::from_settings(&settings, &paths) {
        let removed = admin.lock().and_then(|_l| admin.delete_server(&app));
        match removed {
            Ok(true) => ui::info("removed its Caddy routes"),
            Ok(false) => {}
            // An app that never had a `caddy:` block has nothing to remove:
            // a host without Caddy is no reason to warn.
            Err(e) if ever_routed(&paths, &app) => {
                ui::warn(format!("could not remove its Caddy routes: {e}"))
            }
            Err(_) => {}
        }
    }
    let mut gone = vec![paths.repo(&app), paths.envs(&app), paths.logs(&app)];
    if wipe {
        gone.extend([
            paths.data(&app),
            crate::access::pin::mounts_dir(paths.root(), &app),
            paths.config(&app),
        ]);
    }
    for p in &gone {
        if p.exists() {
            std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let _ = std::fs::remove_file(paths.app(&app));
    drop(_lock);
    std::fs::remove_dir_all(paths.state(&app)).ok();
    if !wipe {
        ui::info(format!(
            "kept {} and {} (use --wipe to delete them)",
            paths.data(&app).display(),
            paths.config(&app).display()
        ));
    }
    Ok(0)
}

pub fn run(app: &str, service: &str, cmd: &[String]) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let live = live(&paths, &app)?;
    known_service(&paths, &app, &live, service)?;
    let cs = match live.mode {
        Mode::Swarm => docker::containers_of_stack(&app)?,
        Mode::Compose => docker::containers(&app)?,
    };
    let Some(c) = cs
        .iter()
        .find(|c| c.service == service && c.state == "running")
    else {
        bail!("{app} has no running container for service {service:?}");
    };
    let mut args: Vec<String> = vec!["exec".into(), "-i".into()];
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        args.push("-t".into());
    }
    args.push(c.id.clone());
    args.extend(cmd.iter().cloned());
    passthrough("docker", &args)
}

pub fn deploy(app: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let _lock = crate::deploy::lock_app(&paths, &app)?;
    crate::deploy::redeploy(&paths, &app)?;
    Ok(0)
}

pub fn docker(args: &[String]) -> anyhow::Result<i32> {
    passthrough("docker", args)
}

pub fn docker_services(app: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let live = live(&paths, &app)?;
    match live.mode {
        Mode::Swarm => passthrough("docker", &["stack".into(), "services".into(), app]),
        Mode::Compose => {
            let (p, a) = live.compose(&app, &["ps", "--services"])?;
            passthrough(&p, &a)
        }
    }
}

fn require_swarm(what: &str) -> anyhow::Result<()> {
    match docker::swarm_role()? {
        docker::SwarmRole::Manager => Ok(()),
        docker::SwarmRole::Worker => {
            bail!("{what}: this node is a swarm worker; run it on a manager")
        }
        docker::SwarmRole::None => bail!(
            "{what}: secrets need swarm mode, and this node is not in a swarm (compose apps: use `kata config:set`)"
        ),
    }
}

pub fn secrets_set(spec: &str) -> anyhow::Result<i32> {
    let (name, value): (&str, Vec<u8>) = match spec.split_once('=') {
        Some((n, v)) => match v.strip_prefix('@') {
            // (over SSH, the forced command refuses `@FILE` before this)
            Some(file) => (
                n,
                std::fs::read(file).with_context(|| format!("reading {file}"))?,
            ),
            None => (n, v.as_bytes().to_vec()),
        },
        None => {
            let mut buf = vec![];
            std::io::stdin().read_to_end(&mut buf)?;
            (spec, buf)
        }
    };
    anyhow::ensure!(secrets::valid_name(name), "invalid secret name {name:?}");
    require_swarm("secrets:set")?;
    let exists = docker::docker(&["secret", "inspect", name]).is_ok();
    if !exists {
        create_secret(name, &value)?;
        println!("created {name}");
        return Ok(0);
    }
    let users = services_mounting(name)?;
    if users.is_empty() {
        docker::docker(&["secret", "rm", name])
            .with_context(|| format!("secret {name} exists and could not be replaced"))?;
        create_secret(name, &value)?;
    } else {
        replace_in_use(name, &value, &users)?;
    }
    println!("replaced {name}");
    Ok(0)
}

fn create_secret(name: &str, value: &[u8]) -> anyhow::Result<()> {
    let mut child = Command::new("docker")
        .args(["secret", "create", name, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("could not run docker")?;
    child.stdin.take().expect("piped").write_all(value)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "docker secret create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Every swarm service that mounts secret `name`, with its mounts of it.
fn services_mounting(name: &str) -> anyhow::Result<Vec<(String, Vec<secrets::Mount>)>> {
    let ids = docker::docker(&["service", "ls", "--quiet"])?;
    let mut users = vec![];
    for id in ids.split_whitespace() {
        let out = docker::docker(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.Name}} {{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
            id,
        ])?;
        let (service, json) = out.trim().split_once(' ').unwrap_or((out.trim(), "null"));
        let mounts = secrets::mounts_of(json, name)
            .with_context(|| format!("reading the secrets of service {service}"))?;
        if !mounts.is_empty() {
            users.push((service.to_owned(), mounts));
        }
    }
    Ok(users)
}

/// Replaces a secret that services mount (see `secrets`): they roll onto a
/// temporary copy of the new value, the secret is recreated, they roll back
/// onto it. Each step waits for the rolling update to converge.
fn replace_in_use(
    name: &str,
    value: &[u8],
    users: &[(String, Vec<secrets::Mount>)],
) -> anyhow::Result<()> {
    let tmp = secrets::temporary_name(name, std::process::id());
    let swap = |from: &str, to: &str| -> anyhow::Result<()> {
        for (service, mounts) in users {
            ui::info(format!("updating service {service}"));
            let args = secrets::swap_args(service, from, to, mounts);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            docker::docker(&args)
                .with_context(|| format!("moving service {service} from secret {from} to {to}"))?;
        }
        Ok(())
    };
    ui::step(format!(
        "Replacing secret {name}, used by {}",
        users
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    create_secret(&tmp, value)?;
    if let Err(e) = swap(name, &tmp) {
        // put back what moved; the old value is still in `name`
        let _ = swap(&tmp, name);
        let _ = docker::docker(&["secret", "rm", &tmp]);
        return Err(e.context(format!("secret {name} was not replaced")));
    }
    docker::docker(&["secret", "rm", name])?;
    create_secret(name, value)?;
    swap(&tmp, name).with_context(|| {
        format!("secret {name} holds the new value, but some services still use {tmp}")
    })?;
    docker::docker(&["secret", "rm", &tmp])?;
    Ok(())
}

pub fn secrets_ls() -> anyhow::Result<i32> {
    require_swarm("secrets:ls")?;
    passthrough("docker", &["secret".into(), "ls".into()])
}

pub fn secrets_rm(name: &str) -> anyhow::Result<i32> {
    anyhow::ensure!(secrets::valid_name(name), "invalid secret name {name:?}");
    require_swarm("secrets:rm")?;
    docker::docker(&["secret", "rm", name])?;
    println!("removed {name}");
    Ok(0)
}

pub fn mode(app: &str, mode: Option<Mode>) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    match mode {
        Some(m) => {
            state::set_mode(&paths, &app, m)?;
            println!("{app}: mode {m} (used from the next deploy on)");
        }
        None => {
            let stored = state::stored_mode(&paths, &app)?;
            let live = apps::live(&paths, &app)?.map(|l| l.mode);
            match (stored, live) {
                (Some(m), _) => println!("{m} (set by `kata mode`)"),
                (None, Some(m)) => println!("{m} (automatic; live release runs in {m} mode)"),
                (None, None) => println!("automatic"),
            }
        }
    }
    Ok(0)
}

pub fn branch(app: &str, branch: Option<&str>, unset: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    if let Some(b) = branch {
        anyhow::ensure!(
            crate::git::valid_branch_name(b),
            "invalid branch name {b:?}"
        );
        state::set_branch(&paths, &app, Some(b))?;
        println!("{app}: pushes to {b} deploy it (from the next push on)");
        return Ok(0);
    }
    if unset {
        state::set_branch(&paths, &app, None)?;
    }
    // The same decision the post-receive hook makes.
    let (configured, why) = match state::stored_branch(&paths, &app)? {
        Some(b) => (Some(b), "set by `kata branch`"),
        None => match settings::load(&paths)?.deploy_branch {
            Some(b) => (Some(b), "host default"),
            None => (None, "automatic: main, else master"),
        },
    };
    let repo = paths.repo(&app);
    let has = |b: &str| crate::git::branch_exists(&repo, b).unwrap_or(false);
    let b = crate::git::resolve_deploy_branch(configured.as_deref(), has("main"), has("master"));
    println!("{b} ({why})");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Release, Status};

    fn live(n: u64, mode: Mode) -> Live {
        Live {
            release: Release {
                number: n,
                commit: "abc".into(),
                created: 0,
                status: Status::Live,
                mode: Some(mode.to_string()),
                note: None,
                spec_sha256: None,
                by: None,
            },
            dir: "/k/r".into(),
            src: "/k/r/src".into(),
            mode,
        }
    }

    #[test]
    fn rows_come_from_the_one_snapshot() {
        let ps = "c1\tshop-web-1\tweb\trunning\tUp\t2\t\tshop\t\n\
                  c2\tshop-db-1\tdb\texited\tExited (1)\t2\t\tshop\t\n\
                  c3\tst_web.1.a\tweb\trunning\tUp\t4\ttask-a\tst\tst\n";
        let snap = docker::Snapshot::parse(ps, "task-a");
        let row = app_row(
            "shop".into(),
            Some(&live(2, Mode::Compose)),
            &snap,
            "ok".into(),
        );
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            serde_json::json!({"name": "shop", "running": true, "containers": 2,
                "running_containers": 1, "release": 2, "mode": "compose", "route": "ok"})
        );
        let row = app_row("st".into(), Some(&live(4, Mode::Swarm)), &snap, "ok".into());
        assert_eq!((row.containers, row.running_containers), (1, 1));
        // never deployed: no release, nothing running
        let row = app_row("new".into(), None, &snap, "-".into());
        assert_eq!(
            (row.running, row.containers, row.release, row.mode),
            (false, 0, None, None)
        );
    }
}
