//! Starting a release's containers without dropping requests.
//!
//! Compose mode, for each service Caddy routes to that is running now
//! (blue/green): start the new containers beside the old ones (`up
//! --no-recreate --scale`), pass the health gate, point Caddy at the new
//! containers only, wait until Caddy has no request in flight to the old
//! ones, then stop them (SIGTERM, the container's grace period). Other
//! services go through a plain `up`, which leaves unchanged ones (a database)
//! alone. Any failure before the switch removes the new containers and
//! restores the previous release's file: the old release keeps serving.
//!
//! Swarm mode: `docker stack deploy`; the rendering asks for start-first
//! updates with automatic rollback, and kata waits for the update to finish.

use crate::caddy;
use crate::deploy_error::{DeployError, fail};
use crate::docker::{self, ComposeCli, Container};
use crate::health;
use crate::journal::{Recorder, Step};
use crate::paths::Paths;
use crate::plan::{ComposeStart, ReleasePlan, StartPlan};
use crate::settings::Settings;
use crate::spec::AppSpec;
use crate::state::Mode;
use crate::ui;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a swarm update may take to converge.
const SWARM_TIMEOUT: Duration = Duration::from_secs(300);

/// What one rollout needs to know.
pub struct Rollout<'a> {
    pub paths: &'a Paths,
    pub settings: &'a Settings,
    pub app: &'a str,
    /// The release's plan (see [`crate::plan`]).
    pub plan: &'a ReleasePlan,
    /// The plan's spec, compose file and Caddy server, at hand.
    pub spec: &'a AppSpec,
    pub file: &'a Path,
    pub caddy: Option<&'a Value>,
    /// The deploy's journal: each step is recorded before the next starts.
    pub journal: &'a Recorder<'a>,
}

/// The first host name the server matches: the Host header of health checks.
pub fn first_host(server: &Value) -> Option<String> {
    server
        .get("routes")?
        .as_array()?
        .iter()
        .filter_map(|r| r.get("match")?.as_array())
        .flatten()
        .filter_map(|m| m.get("host")?.as_array()?.first()?.as_str())
        .next()
        .map(str::to_owned)
}

/// Refuses a release whose Caddy part could not be written (a host, the
/// catch-all, a setting or an address another app has) before anything
/// starts; Caddy being unreachable fails it here too.
fn check_route(r: &Rollout) -> Result<(), DeployError> {
    let Some(server) = r.caddy else {
        return Ok(());
    };
    let admin =
        caddy::Admin::from_settings(r.settings, r.paths).map_err(|e| fail(e.to_string()))?;
    admin.check_server(r.app, server)?;
    Ok(())
}

/// Compose mode: start the release, gate it, route it, retire the old one.
pub fn compose(r: &Rollout, c: &ComposeStart) -> Result<(), DeployError> {
    check_route(r)?;
    let cli = c.cli;
    let old_ids: BTreeSet<String> = c.old_ids.iter().cloned().collect();
    let routed = &r.plan.routed;
    let switch: Vec<&str> = c.switched.iter().map(String::as_str).collect();
    let retiring: Vec<&Container> = c.retiring.iter().collect();
    let start = &c.start;
    ui::step(format!(
        "Starting {} with {}{}",
        r.app,
        match cli {
            ComposeCli::V2 => "docker compose",
            ComposeCli::V1 => "docker-compose",
        },
        if switch.is_empty() {
            String::new()
        } else {
            format!(" (blue/green: {})", switch.join(", "))
        }
    ));

    let attempt = start_and_route(r, start, &old_ids, &switch);
    if let Err(e) = attempt {
        let e = with_missing_images(e, r.file);
        r.journal.fail_open(&e)?;
        ui::step("Start failed; the previous release keeps serving");
        remove_new(r.app, &old_ids);
        if r.plan.leaves.is_some() {
            // the deploy's caller brings the other mode's release back
            return Err(e);
        }
        restore_previous(
            r.paths,
            r.settings,
            r.app,
            cli,
            r.plan.previous.file.as_deref(),
            r.plan.previous.caddy.as_ref(),
        );
        return Err(e);
    }
    // Traffic has moved: the new release is the live one from here on.
    r.journal.step(Step::RecordLive, || {
        crate::release::mark_live(r.paths, r.app, r.journal.release())
    })?;
    if retiring.is_empty() {
        for step in [Step::Drain, Step::RetireOld] {
            r.journal.step(step, || Ok::<_, DeployError>(()))?;
        }
        return Ok(());
    }
    // The old containers get their full grace period in a detached kata
    // process, so the push returns now; the next command for the app
    // finishes the retirement if that process dies.
    match spawn_retirer(r.paths, r.app, r.journal.release()) {
        Ok(pid) => {
            r.journal.update(|j| j.retirer = Some(pid))?;
            ui::info(format!(
                "retiring {} old container(s) in the background",
                retiring.len()
            ));
        }
        Err(e) => {
            ui::warn(format!(
                "cannot retire in the background ({e}); retiring now"
            ));
            retire_now(r.journal, r.paths, r.settings, &retiring, routed)?;
            route_spread(r.paths, r.settings, r.app, r.spec, r.caddy, &switch);
        }
    }
    Ok(())
}

/// Drains and retires the old containers here and now, each step recorded.
pub fn retire_now(
    journal: &Recorder,
    paths: &Paths,
    settings: &Settings,
    old: &[&Container],
    routed: &[(String, u16)],
) -> std::io::Result<()> {
    journal.step(Step::Drain, || {
        drain(paths, settings, old, routed);
        Ok::<_, std::io::Error>(())
    })?;
    journal.step(Step::RetireOld, || {
        stop_and_remove(old);
        Ok::<_, std::io::Error>(())
    })
}

/// Runs one planned argv, its output streamed.
fn run_argv(argv: &[String]) -> Result<(), DeployError> {
    docker::run_streamed(argv, &[])?;
    Ok(())
}

/// `docker stop` (the containers' own grace period), then `docker rm -f`.
pub fn retire_argv(old: &[&Container]) -> Vec<Vec<String>> {
    let ids: Vec<&str> = old.iter().map(|c| c.id.as_str()).collect();
    crate::argv::retire(&ids)
}

/// Starts `kata retire APP N` detached from the push (own session, output
/// to the release's deploy log); returns its pid.
fn spawn_retirer(paths: &Paths, app: &str, n: u64) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.deploy_log(app, n))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["retire", app, &n.to_string()])
        .env("KATA_ROOT", paths.root())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok(cmd.spawn()?.id())
}

/// Puts the previous release back after a failed start: its file up again,
/// its route to its containers (services recreated in place may have come
/// back at new addresses). Problems are warnings: the failure is the error.
pub fn restore_previous(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    cli: ComposeCli,
    previous_file: Option<&Path>,
    previous_caddy: Option<&Value>,
) {
    let restore = ["up", "-d", "--remove-orphans"];
    if let Some(prev) = previous_file
        && let Err(re) = docker::run_streamed(&crate::argv::compose(cli, app, prev, &restore), &[])
    {
        ui::warn(format!("restoring the previous release failed too: {re}"));
    }
    if let Some(prev) = previous_caddy
        && let Err(re) = addresses_for(paths, app, None, Mode::Compose)
            .and_then(|addrs| put_server(paths, settings, app, prev, &addrs))
            .map(|_| ())
    {
        ui::warn(format!("could not route the previous release again: {re}"));
    }
}

fn start_and_route(
    r: &Rollout,
    start: &StartPlan,
    old_ids: &BTreeSet<String>,
    switch: &[&str],
) -> Result<(), DeployError> {
    let others: Vec<&str> = r
        .spec
        .services
        .keys()
        .map(String::as_str)
        .filter(|s| !switch.contains(s))
        .collect();
    r.journal.begin(Step::StartNew)?;
    if let Some(from) = r.plan.leaves {
        leave_mode(r, from)?;
    }
    if let Some(up) = &start.up {
        run_argv(up)?;
    }
    gate_new(r, old_ids, &others)?;
    if !switch.is_empty() {
        prefer_running(r)?;
    }
    if !start.stale.is_empty() {
        docker::run(&crate::argv::rm(&start.stale))?;
    }
    for scale in &start.scale {
        run_argv(scale)?;
    }
    r.journal.done(Step::StartNew)?;
    r.journal.begin(Step::Gate)?;
    gate_new(r, old_ids, switch)?;
    let now = check_all_up(r)?;
    r.journal.done(Step::Gate)?;

    r.journal.begin(Step::SwitchCaddy)?;
    if let Some(server) = r.caddy {
        // the containers the check just listed: nothing changed since
        let addrs = switch_upstreams(r.paths, r.app, r.spec, switch, old_ids, Some(now))?;
        route(r, server, &addrs)?;
    }
    r.journal.done(Step::SwitchCaddy)?;
    Ok(())
}

/// Compose mode: the upstreams of a switch. Switched services take traffic
/// on their new containers (those not in `old_ids`): their ports go first
/// (or alone, with several replicas). `listed`: the app's containers, when
/// the caller listed them just now.
pub fn switch_upstreams<S: AsRef<str>>(
    paths: &Paths,
    app: &str,
    spec: &AppSpec,
    switch: &[S],
    old_ids: &BTreeSet<String>,
    listed: Option<Vec<Container>>,
) -> Result<BTreeMap<String, caddy::Upstreams>, DeployError> {
    let services: Vec<&str> = switch.iter().map(AsRef::as_ref).collect();
    let is_new = |id: &str| !old_ids.iter().any(|o| id.starts_with(o.as_str()));
    let sw = crate::ports::Switch {
        services: &services,
        is_new: &is_new,
    };
    let cs = match listed {
        Some(cs) => cs,
        None => docker::containers(app)?,
    };
    upstreams_of(paths, app, Some(spec), Some(&sw), cs)
}

/// Before new containers take free ports of a block: when Caddy would try a
/// port no running container holds first (the running one moved to another
/// port of its block on a restart), the part is written again with the held
/// ports first, so no request reaches a new container before its gate.
fn prefer_running(r: &Rollout) -> Result<(), DeployError> {
    let Some(prev) = &r.plan.previous.caddy else {
        return Ok(());
    };
    let admin =
        caddy::Admin::from_settings(r.settings, r.paths).map_err(|e| fail(e.to_string()))?;
    let Some(live) = admin.get_server(r.app)? else {
        return Ok(());
    };
    let addrs = compose_upstreams(r.paths, r.app, None, None)?;
    let held: Vec<String> = addrs
        .values()
        .filter_map(|u| match u {
            caddy::Upstreams::Ports { by_port, .. } => Some(by_port.values()),
            caddy::Upstreams::Addresses(_) | caddy::Upstreams::Tasks { .. } => None,
        })
        .flatten()
        .filter_map(|ports| ports.first().map(|p| format!("127.0.0.1:{p}")))
        .collect();
    let firsts = crate::ports::first_dials(&live);
    if firsts
        .iter()
        .any(|d| d.starts_with("127.0.0.1:") && !held.contains(d))
    {
        put_server(r.paths, r.settings, r.app, prev, &addrs)?;
    }
    Ok(())
}

/// After the old containers of a switched service with several replicas
/// are gone, Caddy gets the whole block again (round-robin over whichever
/// ports the new containers hold, now and after any restart).
pub fn route_spread<S: AsRef<str>>(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    spec: &AppSpec,
    server: Option<&Value>,
    switch: &[S],
) {
    let spread = switch.iter().any(|s| {
        spec.services
            .get(s.as_ref())
            .is_some_and(|svc| svc.instances.unwrap_or(1) > 1)
    });
    if let (true, Some(server)) = (spread, server)
        && let Err(e) = addresses(paths, app, spec, Mode::Compose)
            .and_then(|addrs| put_server(paths, settings, app, server, &addrs))
    {
        ui::warn(format!(
            "could not give Caddy every port of the new containers: {e}"
        ));
    }
}

/// Compose mode: each service's upstreams from the app's published blocks
/// and its running containers (one `docker ps`, one `docker inspect`).
fn compose_upstreams(
    paths: &Paths,
    app: &str,
    spec: Option<&AppSpec>,
    switch: Option<&crate::ports::Switch>,
) -> Result<BTreeMap<String, caddy::Upstreams>, DeployError> {
    upstreams_of(paths, app, spec, switch, docker::containers(app)?)
}

/// [`compose_upstreams`] from the app's containers `cs`, listed just now.
fn upstreams_of(
    paths: &Paths,
    app: &str,
    spec: Option<&AppSpec>,
    switch: Option<&crate::ports::Switch>,
    cs: Vec<Container>,
) -> Result<BTreeMap<String, caddy::Upstreams>, DeployError> {
    let blocks = crate::port_store::load(paths, app).map_err(|e| fail(e.to_string()))?;
    let ids: Vec<&str> = cs
        .iter()
        .filter(|c| c.state == "running")
        .map(|c| c.id.as_str())
        .collect();
    let running = crate::port_store::inspect(&ids)?;
    let mut services: Vec<String> = match spec {
        Some(s) => s.services.keys().cloned().collect(),
        None => cs.iter().map(|c| c.service.clone()).collect(),
    };
    if spec.is_none() {
        // a stopped app's routed services have blocks but no container
        services.extend(
            blocks
                .blocks
                .keys()
                .filter_map(|k| Some(k.rsplit_once(':')?.0.to_owned())),
        );
    }
    services.sort();
    services.dedup();
    let replicas = |s: &str| match spec.and_then(|sp| sp.services.get(s)) {
        Some(svc) => svc.instances.unwrap_or(1),
        None => blocks
            .of_service(s)
            .iter()
            .map(|(_, b)| u32::from(b.len / 2))
            .max()
            .unwrap_or(1),
    };
    Ok(crate::ports::upstreams(
        &services, &blocks, &running, &replicas, switch,
    ))
}

/// Every service that should run has a running container (catches a
/// service whose `up` silently did nothing).
fn check_all_up(r: &Rollout) -> Result<Vec<Container>, DeployError> {
    let now = docker::containers(r.app)?;
    for (name, svc) in &r.spec.services {
        if svc.instances == Some(0) || crate::spec::is_one_shot(svc) {
            continue;
        }
        if !now
            .iter()
            .any(|c| &c.service == name && c.state == "running")
        {
            return Err(fail(format!("service {name} has no running container")));
        }
    }
    Ok(now)
}

/// Runs the health gate on every container of `services` that did not exist
/// before, all at once.
fn gate_new(r: &Rollout, old_ids: &BTreeSet<String>, services: &[&str]) -> Result<(), DeployError> {
    let fresh: Vec<Container> = docker::containers(r.app)?
        .into_iter()
        .filter(|c| !old_ids.contains(&c.id) && services.contains(&c.service.as_str()))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let host = r.caddy.and_then(first_host);
    let mut jobs = vec![];
    for c in &fresh {
        let svc = &r.spec.services[&c.service];
        let gate = r.plan.gates[&c.service].clone().map_err(fail)?;
        jobs.push((c, gate, crate::spec::is_one_shot(svc)));
    }
    ui::step(format!(
        "Health check: {}",
        fresh
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(c, gate, once)| {
                let host = host.as_deref();
                scope.spawn(move || {
                    let label = format!("service {} (container {})", c.service, c.name);
                    health::wait(&c.id, &label, gate, host, *once)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("health check panicked".into()))
                    .err()
            })
            .collect()
    });
    if failures.is_empty() {
        ui::info("healthy");
        Ok(())
    } else {
        Err(fail(failures.join("\n")))
    }
}

/// Compose v2 names only the registry when a pull fails: say which images
/// of the rendered file are not on this host.
fn with_missing_images(e: DeployError, file: &Path) -> DeployError {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else {
        return e;
    };
    let mut missing: Vec<String> = doc
        .get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|svc| svc.get("image")?.as_str())
        .filter(|image| docker::run(&crate::argv::image_inspect(image)).is_err())
        .map(str::to_owned)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return e;
    }
    fail(format!(
        "{e}\nnot on this host, and not pulled: {} (load it with `docker load`/`docker import`, or make its registry reachable)",
        missing.join(", ")
    ))
}

/// Removes every container of the app that is not in `old_ids`.
fn remove_new(app: &str, old_ids: &BTreeSet<String>) {
    let Ok(now) = docker::containers(app) else {
        return;
    };
    let new: Vec<&str> = now
        .iter()
        .filter(|c| !old_ids.contains(&c.id))
        .map(|c| c.id.as_str())
        .collect();
    if !new.is_empty()
        && let Err(e) = docker::run(&crate::argv::rm(&new))
    {
        ui::warn(format!("could not remove the new containers: {e}"));
    }
}

/// Waits until Caddy has nothing in flight to the old containers (at most
/// the drain time limit).
pub fn drain(paths: &Paths, settings: &Settings, old: &[&Container], routed: &[(String, u16)]) {
    let addrs = drain_addresses(old, routed);
    ui::step(format!(
        "Draining {}",
        old.iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Ok(admin) = caddy::Admin::from_settings(settings, paths) {
        let limit = settings.timeouts.drain;
        let deadline = Instant::now() + limit;
        let mut progress = health::Progress::default();
        loop {
            let busy: i64 = match admin.upstreams() {
                Ok(list) => list
                    .iter()
                    .filter(|u| addrs.contains(&u.address))
                    .map(|u| u.num_requests.max(0))
                    .sum(),
                Err(e) => {
                    ui::warn(format!("cannot watch Caddy's upstreams: {e}"));
                    0
                }
            };
            if busy == 0 {
                break;
            }
            if Instant::now() > deadline {
                ui::warn(format!(
                    "{busy} request(s) still in flight to the old containers after {} s; stopping them anyway",
                    limit.as_secs()
                ));
                break;
            }
            progress.tick(|| format!("{busy} request(s) in flight to finish"), limit);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Stops the old containers (SIGTERM, then their own grace period, which
/// compose sets from `stop_grace_period`) and removes them. Removed even
/// when the stop reports a problem (one of them already gone, say), so no
/// stopped container is left behind. The new release is already live:
/// problems are warnings.
pub fn stop_and_remove(old: &[&Container]) {
    let argv = retire_argv(old);
    let [stop, rm] = argv.as_slice() else {
        return;
    };
    let _ = docker::run(stop);
    match docker::run(rm) {
        Ok(_) => ui::info(format!("stopped {} old container(s)", old.len())),
        Err(e) => ui::warn(format!("could not remove the old containers: {e}")),
    }
}

/// After the old containers are gone: containers of services no longer in
/// the spec, and code volumes no container uses.
pub fn cleanup(app: &str, spec: &AppSpec, file: &Path) {
    remove_orphans(app, spec);
    prune_code_volumes(app, file);
}

/// What Caddy calls the old containers' upstreams: their published loopback
/// ports and (for parts written before kata published ports) their
/// addresses, at each port Caddy dials on their service.
fn drain_addresses(old: &[&Container], routed: &[(String, u16)]) -> Vec<String> {
    let ids: Vec<&str> = old.iter().map(|c| c.id.as_str()).collect();
    let mut out = vec![];
    for c in crate::port_store::inspect(&ids).unwrap_or_default() {
        for (_, port) in routed.iter().filter(|(s, _)| *s == c.service) {
            out.extend(c.ips.iter().map(|ip| format!("{ip}:{port}")));
            out.extend(
                c.ports
                    .iter()
                    .filter(|(cp, _, _)| cp == port)
                    .map(|(_, _, hp)| format!("127.0.0.1:{hp}")),
            );
        }
    }
    out
}

/// Containers of services that are no longer in the spec.
fn remove_orphans(app: &str, spec: &AppSpec) {
    let Ok(now) = docker::containers(app) else {
        return;
    };
    let orphans: Vec<&str> = now
        .iter()
        .filter(|c| !spec.services.contains_key(&c.service))
        .map(|c| c.id.as_str())
        .collect();
    if !orphans.is_empty() {
        let _ = docker::run(&crate::argv::rm(&orphans));
    }
}

/// Each release's code is its own bind volume (`<app>_app_r<N>`); drop the
/// ones no container uses any more. Docker refuses to remove a volume in use.
fn prune_code_volumes(app: &str, file: &Path) {
    let current = std::fs::read_to_string(file).unwrap_or_default();
    let prefix = format!("{app}_app_r");
    let Ok(out) = docker::run(&crate::argv::code_volumes(&prefix)) else {
        return;
    };
    let names: Vec<&str> = out.split_whitespace().collect();
    for name in unused_code_volumes(&prefix, &names, &current) {
        let _ = docker::run(&crate::argv::volume_rm(name));
    }
}

/// The code volumes among `names` that the compose file `current` does not
/// name. A name counts only as a whole word (`app_r1` is not in use because
/// `app_r12` is).
fn unused_code_volumes<'a>(prefix: &str, names: &[&'a str], current: &str) -> Vec<&'a str> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let named: BTreeSet<&str> = current.split(|c: char| !word(c)).collect();
    names
        .iter()
        .copied()
        .filter(|name| {
            name.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                && !named.contains(name)
        })
        .collect()
}

/// Where Caddy reaches every service of the app: in compose mode its
/// published loopback block (whichever port each container holds), in swarm
/// mode the live task addresses. An entry for each service (empty when none
/// runs and it has no block), so a routed service that is down is an error
/// naming it rather than a silently dropped upstream.
pub fn addresses(
    paths: &Paths,
    app: &str,
    spec: &AppSpec,
    mode: Mode,
) -> Result<BTreeMap<String, caddy::Upstreams>, DeployError> {
    addresses_for(paths, app, Some(spec), mode)
}

/// [`addresses`] without a spec: an entry for every service that has a
/// container (running or not) or a block, for re-routing from release records.
pub fn container_addresses(
    paths: &Paths,
    app: &str,
    mode: Mode,
) -> Result<BTreeMap<String, caddy::Upstreams>, DeployError> {
    addresses_for(paths, app, None, mode)
}

/// [`addresses`]; without a spec, for the services that have containers.
fn addresses_for(
    paths: &Paths,
    app: &str,
    spec: Option<&AppSpec>,
    mode: Mode,
) -> Result<BTreeMap<String, caddy::Upstreams>, DeployError> {
    if mode == Mode::Compose {
        return compose_upstreams(paths, app, spec, None);
    }
    // Swarm: task addresses on docker_gwbridge, right while the task runs.
    let (cs, bridge) = (docker::containers_of_stack(app)?, docker::gwbridge_ips()?);
    let mut services: Vec<String> = match spec {
        Some(s) => s.services.keys().cloned().collect(),
        None => cs.iter().map(|c| c.service.clone()).collect(),
    };
    services.sort();
    services.dedup();
    let tasks: Vec<crate::ports::Task> = cs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.state == "running")
        .filter_map(|(newer_than, c)| {
            // `docker ps` shows short ids
            let (_, ip) = bridge.iter().find(|(id, _)| id.starts_with(&c.id))?;
            Some(crate::ports::Task {
                service: c.service.clone(),
                release: c.release.unwrap_or(0),
                newer_than,
                ip: ip.clone(),
            })
        })
        .collect();
    let instances = |s: &str| {
        spec.and_then(|sp| sp.services.get(s))
            .and_then(|svc| svc.instances)
            .unwrap_or(1)
    };
    Ok(crate::ports::task_upstreams(&services, &tasks, &instances))
}

/// Writes the app's Caddy server with its service dials resolved.
fn route(
    r: &Rollout,
    server: &Value,
    addrs: &BTreeMap<String, caddy::Upstreams>,
) -> Result<(), DeployError> {
    put_server(r.paths, r.settings, r.app, server, addrs).map(|_| ())
}

/// How long Caddy keeps a WebSocket or other stream open after the config
/// that proxied it is replaced (every deploy replaces it).
pub const STREAM_CLOSE_DELAY: &str = "5m";

/// Resolves the server's service dials against `addrs` and writes it as the
/// app's part of its shared server (see [`caddy::shared`]). Streams get
/// [`STREAM_CLOSE_DELAY`] where the user set none; a Caddy older than 2.7
/// does not know that field, so kata then writes the part without it and
/// says what that means. Returns what was done.
pub fn put_server(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    server: &Value,
    addrs: &BTreeMap<String, caddy::Upstreams>,
) -> Result<caddy::Plan, DeployError> {
    let admin = caddy::Admin::from_settings(settings, paths).map_err(|e| fail(e.to_string()))?;
    ui::step(format!(
        "Routing {app} through Caddy at {}",
        admin.endpoint()
    ));
    let resolved = caddy::resolve_upstreams(server, addrs)?;
    // last line of defence for every write (deploy, rollback, restart, sync)
    caddy::refuse_admin_reach(&resolved, None, &settings.caddy_admin)?;
    let _lock = admin.lock()?;
    // A refusal is remembered for this endpoint, so an old Caddy gets one
    // write per change, not a refused one first; `caddy:sync` forgets it.
    let memo = paths.caddy_without_stream_close_delay();
    let endpoint = admin.endpoint().to_string();
    let refused_before = std::fs::read_to_string(&memo).is_ok_and(|s| s.trim() == endpoint);
    let old_caddy = || {
        ui::info(
            "this Caddy predates stream_close_delay (2.7): open WebSockets are closed on each deploy and clients reconnect",
        )
    };
    let plan = if refused_before && !mentions_delay(server) {
        old_caddy();
        admin.put_server(app, &resolved)?
    } else {
        match admin.put_server(app, &with_stream_close_delay(&resolved)) {
            Err(e) if e.to_string().contains("stream_close_delay") && !mentions_delay(server) => {
                old_caddy();
                let _ = crate::fsutil::write_atomic(&memo, format!("{endpoint}\n").as_bytes());
                admin.put_server(app, &resolved)?
            }
            other => other?,
        }
    };
    for m in &plan.moved {
        ui::info(format!(
            "moved {} from apps.http.servers.{m} onto the shared server {}",
            if m == app { "it" } else { m.as_str() },
            plan.server
        ));
    }
    remove_orphans_in_caddy(&admin);
    Ok(plan)
}

/// Removes the parts (`@id` `kata.<app>`) of apps that no longer exist
/// here: a `kata rm` while Caddy was down leaves one behind, and it must not
/// dial ports that will belong to another app one day.
pub fn remove_orphans_in_caddy(admin: &caddy::Admin) {
    let Ok(servers) = admin.servers() else { return };
    let orphans: Vec<String> = caddy::shared::entries(&servers, &|n| admin.is_kata_app(n))
        .into_iter()
        .filter(|e| {
            e.part
                && caddy::shared::is_shared(e.server)
                && crate::names::is_app_name(e.name)
                && !admin.is_kata_app(e.name)
        })
        .map(|e| e.name.to_owned())
        .collect();
    for name in orphans {
        match admin.delete_server(&name) {
            Ok(_) => ui::info(format!(
                "removed the Caddy route of {name}, an app that no longer exists"
            )),
            Err(err) => ui::warn(format!(
                "could not remove the Caddy route of the removed app {name}: {err}"
            )),
        }
    }
}

fn mentions_delay(server: &Value) -> bool {
    server.to_string().contains("stream_close_delay")
}

/// Sets `stream_close_delay` on every `reverse_proxy` handler lacking one.
pub fn with_stream_close_delay(server: &Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.get("handler").and_then(Value::as_str) == Some("reverse_proxy")
                    && !m.contains_key("stream_close_delay")
                {
                    m.insert("stream_close_delay".into(), Value::from(STREAM_CLOSE_DELAY));
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut out = server.clone();
    walk(&mut out);
    out
}

/// Swarm mode: deploy the stack, wait for the rolling update, route.
pub fn swarm(r: &Rollout) -> Result<(), DeployError> {
    check_route(r)?;
    ui::step(format!("Deploying stack {}", r.app));
    let argv = r.plan.stack_deploy();
    r.journal
        .update(|j| j.plan(Step::StartNew, vec![argv.clone()]))?;
    let started = r
        .journal
        .step(Step::StartNew, || {
            if let Some(from) = r.plan.leaves {
                leave_mode(r, from)?;
            }
            let known = stack_tasks(r.app);
            docker::run_streamed(&argv, &[]).map_err(DeployError::from)?;
            Ok::<_, DeployError>(known)
        })
        .and_then(|known| {
            r.journal.step(Step::Gate, || {
                // the live release's routes, until the switch; none on a
                // first deploy or a mode change (nothing to hand over)
                let live = match r.plan.leaves {
                    None => r.plan.previous.caddy.as_ref(),
                    Some(_) => None,
                };
                let mut hand_over = hand_over(r.paths, r.settings, r.app, r.spec, live);
                wait_stack(r.app, r.spec, &known, &mut hand_over)
            })
        });
    if let Err(e) = started {
        // a first deploy has nothing to go back to: its stack must not stay
        // behind, restarting tasks nobody routes to
        if r.plan.previous.file.is_none()
            && let Err(re) = remove_undone_stack(r.app)
        {
            ui::warn(format!("could not remove the stack {}: {re}", r.app));
        }
        return Err(e);
    }
    r.journal.step(Step::SwitchCaddy, || match r.caddy {
        Some(server) => route(r, server, &addresses(r.paths, r.app, r.spec, Mode::Swarm)?),
        None => Ok(()),
    })?;
    r.journal.step(Step::RecordLive, || {
        crate::release::mark_live(r.paths, r.app, r.journal.release())
    })?;
    Ok(())
}

/// Swarm mode, after kata changed the stack without deploying a release
/// (an undone deploy's previous stack file deployed again, `start`,
/// `restart`): waits until the stack runs its services, then routes the
/// live release's server to their tasks. Swarm replaced them, and a task's
/// old address may belong to another container by now.
pub fn route_settled_stack(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    spec: &AppSpec,
    server: Option<&Value>,
) -> Result<(), DeployError> {
    // services of profiles the release did not deploy are not in the stack
    let listed = docker::docker(&["stack", "services", "--format", "{{.Name}}", app])?;
    let mut spec = spec.clone();
    spec.services
        .retain(|name, _| listed.lines().any(|l| l.trim() == format!("{app}_{name}")));
    // tasks the stack deploy just created count as old here: a failure
    // is seen once swarm replaced them, never one from before
    let mut hand_over = hand_over(paths, settings, app, &spec, server);
    wait_stack(app, &spec, &stack_tasks(app), &mut hand_over)?;
    match server {
        Some(server) => put_server(
            paths,
            settings,
            app,
            server,
            &addresses(paths, app, &spec, Mode::Swarm)?,
        )
        .map(|_| ()),
        None => Ok(()),
    }
}

/// Swarm mode, undoing an app's first deploy: nothing to go back to, so
/// its stack goes. Waits (up to a minute) for the tasks' containers, which
/// outlive `stack rm` for a while.
pub fn remove_undone_stack(app: &str) -> Result<(), DeployError> {
    if !has_stack(app) {
        return Ok(());
    }
    ui::info(format!(
        "removing the stack {app}: no earlier release to go back to"
    ));
    remove_stack(app)
}

/// Whether this node's swarm runs a stack named `app` (false off a manager).
pub fn has_stack(app: &str) -> bool {
    docker::docker(&["stack", "ls", "--format", "{{.Name}}"])
        .is_ok_and(|stacks| stacks.lines().any(|l| l.trim() == app))
}

/// Before a release in another mode starts: takes down what the live
/// release runs in `from` (see [`ReleasePlan::leaves`]).
fn leave_mode(r: &Rollout, from: Mode) -> Result<(), DeployError> {
    ui::step(format!(
        "Mode changes from {from} to {}: {} stops first (both modes name its networks alike), so it does not answer until the {} release is up",
        r.plan.mode, r.app, r.plan.mode
    ));
    take_down(r.app, from)
}

/// Removes what the app runs in `mode`, and its networks; volumes stay.
/// Compose containers get their grace period.
pub fn take_down(app: &str, mode: Mode) -> Result<(), DeployError> {
    let label = match mode {
        Mode::Swarm => {
            if has_stack(app) {
                remove_stack(app)?;
            }
            format!("label=com.docker.stack.namespace={app}")
        }
        Mode::Compose => {
            let label = format!("label=com.docker.compose.project={app}");
            let ids = docker::docker(&["ps", "-aq", "--filter", &label])?;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            for argv in crate::argv::retire(&ids) {
                docker::gone_is_fine(docker::run(&argv))?;
            }
            label
        }
    };
    // swarm removes a stack's networks on its own, a moment after its tasks
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nets = docker::docker(&["network", "ls", "-q", "--filter", &label])?;
        if nets.trim().is_empty() {
            // a task that failed as its network went leaves its container
            let left = docker::docker(&["ps", "-aq", "--filter", &label])?;
            let left: Vec<&str> = left.split_whitespace().collect();
            if !left.is_empty() {
                docker::gone_is_fine(docker::run(&crate::argv::rm(&left)))?;
            }
            return Ok(());
        }
        for id in nets.split_whitespace() {
            let removed = docker::gone_is_fine(docker::run(&crate::argv::network_rm(id)));
            if let Err(e) = removed
                && Instant::now() > deadline
            {
                return Err(e.into());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `docker stack rm`, then waits (up to a minute) for the tasks' containers
/// to go: `stack rm` returns before them, and networks and volumes in use
/// cannot be removed.
pub fn remove_stack(app: &str) -> Result<(), DeployError> {
    docker::docker(&["stack", "rm", app])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    // swarm's agent may still create a task's container just after: gone
    // means gone for a second
    let mut empty_since: Option<Instant> = None;
    loop {
        let left = docker::all_containers_of_stack(app)?;
        if left.is_empty() {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(1) {
                return Ok(());
            }
        } else {
            empty_since = None;
        }
        if Instant::now() > deadline {
            return Ok(());
        }
        // `stack rm` removed the services: a container that is not running
        // is litter swarm may leave (a task that failed as its network
        // went stays `created`); running ones are still being stopped
        let litter: Vec<&str> = left
            .iter()
            .filter(|c| c.state != "running")
            .map(|c| c.id.as_str())
            .collect();
        if !litter.is_empty() {
            let _ = docker::run(&crate::argv::rm(&litter));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The IDs of every task the stack has had (none without a stack).
fn stack_tasks(app: &str) -> BTreeSet<String> {
    docker::docker(&["stack", "ps", "-q", "--no-trunc", app])
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// This many tasks of one service failing, none of them in `known`, is
/// a deploy that will not converge (a new service has no update for swarm
/// to roll back, and swarm would go on replacing them).
const FAILED_TASKS: usize = 3;

/// While swarm replaces tasks: each time the running tasks change, Caddy
/// gets them all, the old release's first. Swarm stops an old task as soon
/// as its replacement is healthy, and Caddy, still sending to the old one,
/// fails over to the new one instead of answering 502 until the stack has
/// converged. Best effort: the route written once it has is what counts.
fn hand_over<'a>(
    paths: &'a Paths,
    settings: &'a Settings,
    app: &'a str,
    spec: &'a AppSpec,
    server: Option<&'a Value>,
) -> impl FnMut() + 'a {
    let mut written = None;
    move || {
        let Some(server) = server else { return };
        let Ok(addrs) = addresses(paths, app, spec, Mode::Swarm) else {
            return;
        };
        if written.as_ref() != Some(&addrs)
            && put_server(paths, settings, app, server, &addrs).is_ok()
        {
            written = Some(addrs);
        }
    }
}

fn wait_stack(
    app: &str,
    spec: &AppSpec,
    known: &BTreeSet<String>,
    hand_over: &mut dyn FnMut(),
) -> Result<(), DeployError> {
    let deadline = Instant::now() + SWARM_TIMEOUT;
    let mut stable_since: Option<Instant> = None;
    let mut progress = health::Progress::default();
    loop {
        hand_over();
        let problem = stack_problem(app, spec, known)?;
        match problem {
            None => {
                let since = *stable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= health::STABLE {
                    return Ok(());
                }
            }
            Some(Err(fatal)) => return Err(fail(fatal)),
            Some(Ok(waiting)) => {
                stable_since = None;
                if Instant::now() > deadline {
                    return Err(fail(waiting));
                }
                progress.tick(
                    || format!("the stack to converge: {waiting}"),
                    SWARM_TIMEOUT,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Why service `full` will not converge: [`FAILED_TASKS`] of its tasks
/// not in `known` failed (newest first, as `service ps` lists them).
fn failing(full: &str, known: &BTreeSet<String>) -> Result<Option<String>, DeployError> {
    let tasks = docker::docker(&[
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CurrentState}}|{{.Error}}",
        full,
    ])?;
    let failed: Vec<(&str, &str)> = tasks
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '|');
            let (id, state, error) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            let failed = state.starts_with("Failed") || state.starts_with("Rejected");
            (failed && !known.contains(id.trim())).then_some((state, error))
        })
        .collect();
    Ok((failed.len() >= FAILED_TASKS).then(|| {
        let (state, error) = failed[0];
        let why = if error.trim().is_empty() {
            state
        } else {
            error
        };
        format!(
            "service {full}: {} new tasks failed (the last: {})",
            failed.len(),
            why.trim()
        )
    }))
}

/// `None` when converged; `Some(Ok(why))` while still converging;
/// `Some(Err(why))` when swarm gave up (and rolled back).
fn stack_problem(
    app: &str,
    spec: &AppSpec,
    known: &BTreeSet<String>,
) -> Result<Option<Result<String, String>>, DeployError> {
    for (name, svc) in &spec.services {
        let full = format!("{app}_{name}");
        let out = docker::docker(&[
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}|{{.UpdateStatus.Message}}{{end}}",
            &full,
        ])
        .map_err(|e| fail(format!("service {full} is not in the stack: {e}")))?;
        let (state, message) = out.trim().split_once('|').unwrap_or(("", ""));
        match state {
            "rollback_started" | "rollback_completed" | "rollback_paused" | "paused" => {
                return Ok(Some(Err(format!(
                    "swarm did not accept the update of {full} ({state}): {message}"
                ))));
            }
            "updating" => return Ok(Some(Ok(format!("service {full} is still updating")))),
            _ => {}
        }
        if svc.instances == Some(0) {
            continue;
        }
        // A one-shot job (`restart: "no"`, swarm's restart_policy none) is
        // done once its task completed; it never counts as running.
        if crate::spec::runs_once(svc) {
            let tasks = docker::docker(&[
                "service",
                "ps",
                "--format",
                "{{.CurrentState}}|{{.Error}}",
                &full,
            ])?;
            let newest = tasks.lines().next().unwrap_or("").trim();
            match newest.split_whitespace().next().unwrap_or("") {
                "Complete" => continue,
                "Failed" | "Rejected" => {
                    return Ok(Some(Err(format!(
                        "the one-shot job {full} failed: {newest}"
                    ))));
                }
                _ => {
                    return Ok(Some(Ok(format!(
                        "the one-shot job {full} has not completed yet"
                    ))));
                }
            }
        }
        let reps = docker::docker(&[
            "service",
            "ls",
            "--filter",
            &format!("name={full}"),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])?;
        let line = reps
            .lines()
            .find(|l| l.split_whitespace().next() == Some(full.as_str()));
        let Some(line) = line else {
            return Ok(Some(Ok(format!("service {full} not listed yet"))));
        };
        let reps = line.split_whitespace().nth(1).unwrap_or("");
        let (have, want) = reps.split_once('/').unwrap_or(("0", "?"));
        if have != want {
            if let Some(failed) = failing(&full, known)? {
                return Ok(Some(Err(failed)));
            }
            return Ok(Some(Ok(format!("service {full}: {reps} replicas running"))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn code_volumes_in_use_are_whole_names() {
        let names = ["app_app_r1", "app_app_r12", "app_app_r3", "app_app_rx"];
        let file =
            "volumes:\n  app:\n    name: app_app_r12\n    driver_opts: {device: /k/r/12/src}\n";
        assert_eq!(
            unused_code_volumes("app_app_r", &names, file),
            vec!["app_app_r1", "app_app_r3"]
        );
    }

    #[test]
    fn streams_get_a_close_delay_unless_set() {
        let server = json!({"routes": [{"handle": [
            {"handler": "reverse_proxy", "upstreams": []},
            {"handler": "subroute", "routes": [{"handle": [
                {"handler": "reverse_proxy", "stream_close_delay": "1h"}
            ]}]},
            {"handler": "file_server"}
        ]}]});
        let out = with_stream_close_delay(&server);
        assert_eq!(out["routes"][0]["handle"][0]["stream_close_delay"], "5m");
        assert_eq!(
            out["routes"][0]["handle"][1]["routes"][0]["handle"][0]["stream_close_delay"],
            "1h"
        );
        assert!(
            out["routes"][0]["handle"][2]
                .get("stream_close_delay")
                .is_none()
        );
    }

    #[test]
    fn first_host_is_the_health_check_host() {
        let server = json!({"routes": [
            {"handle": []},
            {"match": [{"path": ["/x"]}, {"host": ["a.example", "b.example"]}], "handle": []}
        ]});
        assert_eq!(first_host(&server).as_deref(), Some("a.example"));
        assert_eq!(first_host(&json!({"listen": [":80"]})), None);
    }
}
