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
use crate::deploy::{DeployError, fail};
use crate::docker::{self, ComposeCli, Container};
use crate::health;
use crate::paths::Paths;
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
    pub spec: &'a AppSpec,
    /// The new release's rendered compose file.
    pub file: &'a Path,
    /// The live release's file, to restore on failure.
    pub previous_file: Option<&'a Path>,
    /// The app's Caddy server (shorthand expanded, dials not yet resolved).
    pub caddy: Option<&'a Value>,
    /// The live release's server, to route back to its containers on failure.
    pub previous_caddy: Option<&'a Value>,
}

impl Rollout<'_> {
    fn routed(&self) -> Vec<(String, u16)> {
        self.caddy
            .map(|s| caddy::service_dials(s, self.spec.services.keys()))
            .unwrap_or_default()
    }

    fn routed_port(&self, service: &str) -> Option<u16> {
        self.routed()
            .into_iter()
            .find(|(s, _)| s == service)
            .map(|(_, p)| p)
    }
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

/// Which services get a blue/green switch: routed by Caddy, running now,
/// and scalable (a fixed `container_name` cannot have two containers).
pub fn switched<'a>(
    spec: &'a AppSpec,
    routed: &[(String, u16)],
    before: &[Container],
) -> Vec<&'a str> {
    spec.services
        .iter()
        .filter(|(name, svc)| {
            routed.iter().any(|(s, _)| s == *name)
                && svc.instances != Some(0)
                && !svc.extra.contains_key("container_name")
                && before
                    .iter()
                    .any(|c| &c.service == *name && c.state == "running")
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

fn compose_cmd(
    cli: ComposeCli,
    app: &str,
    file: &Path,
    spec: &AppSpec,
    rest: &[&str],
) -> Result<(), DeployError> {
    let mut rest: Vec<&str> = rest.to_vec();
    if rest.first() == Some(&"up")
        && spec
            .services
            .values()
            .any(|s| s.extra.contains_key("build"))
    {
        rest.insert(1, "--build");
    }
    let (program, args) = cli.argv(app, file, &rest);
    docker::stream(&program, &args, &[])?;
    Ok(())
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
pub fn compose(r: &Rollout, cli: ComposeCli) -> Result<(), DeployError> {
    check_route(r)?;
    let before = docker::containers(r.app)?;
    let old_ids: BTreeSet<String> = before.iter().map(|c| c.id.clone()).collect();
    let routed = r.routed();
    let switch = switched(r.spec, &routed, &before);
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

    let attempt = start_and_route(r, cli, &before, &old_ids, &switch);
    if let Err(e) = attempt {
        ui::step("Start failed; the previous release keeps serving");
        remove_new(r.app, &old_ids);
        let e = with_missing_images(e, r.file);
        let restore = ["up", "-d", "--remove-orphans"];
        if let Some(prev) = r.previous_file
            && let Err(re) = compose_cmd(cli, r.app, prev, r.spec, &restore)
        {
            ui::warn(format!("restoring the previous release failed too: {re}"));
        }
        // Services recreated in place may have come back at new addresses.
        if let Some(prev) = r.previous_caddy
            && let Err(re) = addresses_for(r.app, None, Mode::Compose)
                .and_then(|addrs| put_server(r.paths, r.settings, r.app, prev, &addrs))
                .map(|_| ())
        {
            ui::warn(format!("could not route the previous release again: {re}"));
        }
        return Err(e);
    }

    // The new containers are live: retire the old ones of switched services.
    let retiring: Vec<&Container> = before
        .iter()
        .filter(|c| switch.contains(&c.service.as_str()))
        .collect();
    if !retiring.is_empty() {
        retire(r, &retiring, &routed);
    }
    remove_orphans(r.app, r.spec);
    prune_code_volumes(r.app, r.file);
    Ok(())
}

fn start_and_route(
    r: &Rollout,
    cli: ComposeCli,
    before: &[Container],
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
    if switch.is_empty() {
        compose_cmd(
            cli,
            r.app,
            r.file,
            r.spec,
            &["up", "-d", "--remove-orphans"],
        )?;
    } else if !others.is_empty() {
        let mut rest = vec!["up", "-d", "--no-deps", "--remove-orphans"];
        rest.extend(&others);
        compose_cmd(cli, r.app, r.file, r.spec, &rest)?;
    }
    gate_new(r, old_ids, &others)?;

    for s in switch {
        // Stopped leftovers would be started again by `up`; they serve nothing.
        let stale: Vec<&str> = before
            .iter()
            .filter(|c| &c.service == s && c.state != "running")
            .map(|c| c.id.as_str())
            .collect();
        if !stale.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(&stale);
            docker::docker(&args)?;
        }
        let running = before
            .iter()
            .filter(|c| &c.service == s && c.state == "running")
            .count();
        let wanted = r.spec.services[*s].instances.unwrap_or(1) as usize;
        let scale = format!("{s}={}", running + wanted);
        compose_cmd(
            cli,
            r.app,
            r.file,
            r.spec,
            &[
                "up",
                "-d",
                "--no-deps",
                "--no-recreate",
                "--scale",
                &scale,
                s,
            ],
        )?;
    }
    gate_new(r, old_ids, switch)?;
    check_all_up(r)?;

    if let Some(server) = r.caddy {
        let mut addrs = addresses(r.app, r.spec, Mode::Compose)?;
        // Switched services take traffic on their new containers only.
        for s in switch {
            let new: Vec<String> = docker::containers(r.app)?
                .into_iter()
                .filter(|c| &c.service == s && c.state == "running" && !old_ids.contains(&c.id))
                .filter_map(|c| docker::container_ips(&c.id).ok()?.into_iter().next())
                .collect();
            addrs.insert((*s).to_owned(), new);
        }
        route(r, server, &addrs)?;
    }
    Ok(())
}

/// Every service that should run has a running container (catches a
/// service whose `up` silently did nothing).
fn check_all_up(r: &Rollout) -> Result<(), DeployError> {
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
    Ok(())
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
        let gate = health::gate_for(&c.service, svc, r.routed_port(&c.service)).map_err(fail)?;
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
        .filter(|image| {
            docker::docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_err()
        })
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
    if !new.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(&new);
        if let Err(e) = docker::docker(&args) {
            ui::warn(format!("could not remove the new containers: {e}"));
        }
    }
}

/// Waits until Caddy has nothing in flight to the old containers, then stops
/// and removes them. The new release is already live: problems here are
/// warnings, not a failed deploy.
fn retire(r: &Rollout, old: &[&Container], routed: &[(String, u16)]) {
    let mut addrs: Vec<String> = vec![];
    for c in old {
        if let Some(port) = routed
            .iter()
            .find(|(s, _)| *s == c.service)
            .map(|(_, p)| *p)
            && let Ok(ips) = docker::container_ips(&c.id)
        {
            addrs.extend(ips.into_iter().map(|ip| format!("{ip}:{port}")));
        }
    }
    ui::step(format!(
        "Draining {}",
        old.iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Ok(admin) = caddy::Admin::from_settings(r.settings, r.paths) {
        let limit = r.settings.timeouts.drain;
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
    let ids: Vec<&str> = old.iter().map(|c| c.id.as_str()).collect();
    // `docker stop` sends SIGTERM and waits for the container's own grace
    // period (compose sets it from `stop_grace_period`).
    let mut stop = vec!["stop"];
    stop.extend(&ids);
    let mut rm = vec!["rm", "-f"];
    rm.extend(&ids);
    if let Err(e) = docker::docker(&stop).and_then(|_| docker::docker(&rm)) {
        ui::warn(format!("could not remove the old containers: {e}"));
    } else {
        ui::info(format!("stopped {} old container(s)", ids.len()));
    }
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
        let mut args = vec!["rm", "-f"];
        args.extend(&orphans);
        let _ = docker::docker(&args);
    }
}

/// Each release's code is its own bind volume (`<app>_app_r<N>`); drop the
/// ones no container uses any more. Docker refuses to remove a volume in use.
fn prune_code_volumes(app: &str, file: &Path) {
    let current = std::fs::read_to_string(file).unwrap_or_default();
    let prefix = format!("{app}_app_r");
    let Ok(out) = docker::docker(&["volume", "ls", "-q", "--filter", &format!("name={prefix}")])
    else {
        return;
    };
    for name in out.split_whitespace() {
        let ours = name
            .strip_prefix(&prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if ours && !current.contains(name) {
            let _ = docker::docker(&["volume", "rm", name]);
        }
    }
}

/// Live container addresses of every service of the app: an entry for each
/// service (empty when none runs), so a routed service that is down is an
/// error naming it rather than a silently dropped upstream.
pub fn addresses(
    app: &str,
    spec: &AppSpec,
    mode: Mode,
) -> Result<BTreeMap<String, Vec<String>>, DeployError> {
    addresses_for(app, Some(spec), mode)
}

/// [`addresses`] without a spec: an entry for every service that has a
/// container (running or not), for re-routing from release records.
pub fn container_addresses(
    app: &str,
    mode: Mode,
) -> Result<BTreeMap<String, Vec<String>>, DeployError> {
    addresses_for(app, None, mode)
}

/// [`addresses`]; without a spec, for the services that have containers.
fn addresses_for(
    app: &str,
    spec: Option<&AppSpec>,
    mode: Mode,
) -> Result<BTreeMap<String, Vec<String>>, DeployError> {
    let mut out: BTreeMap<String, Vec<String>> = spec
        .into_iter()
        .flat_map(|s| s.services.keys())
        .map(|s| (s.clone(), vec![]))
        .collect();
    let (cs, bridge) = match mode {
        Mode::Compose => (docker::containers(app)?, vec![]),
        Mode::Swarm => (docker::containers_of_stack(app)?, docker::gwbridge_ips()?),
    };
    if spec.is_none() {
        for c in &cs {
            out.entry(c.service.clone()).or_default();
        }
    }
    for c in cs.iter().filter(|c| c.state == "running") {
        let Some(list) = out.get_mut(&c.service) else {
            continue;
        };
        let ip = match mode {
            Mode::Compose => docker::container_ips(&c.id)?.into_iter().next(),
            // `docker ps` shows short ids
            Mode::Swarm => bridge
                .iter()
                .find(|(id, _)| id.starts_with(&c.id))
                .map(|(_, ip)| ip.clone()),
        };
        if let Some(ip) = ip {
            list.push(ip);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// Writes the app's Caddy server with its service dials resolved.
fn route(
    r: &Rollout,
    server: &Value,
    addrs: &BTreeMap<String, Vec<String>>,
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
    addrs: &BTreeMap<String, Vec<String>>,
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
    let plan = match admin.put_server(app, &with_stream_close_delay(&resolved)) {
        Err(e) if e.to_string().contains("stream_close_delay") && !mentions_delay(server) => {
            ui::info(
                "this Caddy predates stream_close_delay (2.7): open WebSockets are closed on each deploy and clients reconnect",
            );
            admin.put_server(app, &resolved)?
        }
        other => other?,
    };
    for m in &plan.moved {
        ui::info(format!(
            "moved {} from apps.http.servers.{m} onto the shared server {}",
            if m == app { "it" } else { m.as_str() },
            plan.server
        ));
    }
    Ok(plan)
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
    let f = r.file.display().to_string();
    docker::stream(
        "docker",
        &["stack", "deploy", "--prune", "-c", &f, r.app],
        &[],
    )?;
    wait_stack(r.app, r.spec)?;
    if let Some(server) = r.caddy {
        let addrs = addresses(r.app, r.spec, Mode::Swarm)?;
        route(r, server, &addrs)?;
    }
    Ok(())
}

fn wait_stack(app: &str, spec: &AppSpec) -> Result<(), DeployError> {
    let deadline = Instant::now() + SWARM_TIMEOUT;
    let mut stable_since: Option<Instant> = None;
    let mut progress = health::Progress::default();
    loop {
        let problem = stack_problem(app, spec)?;
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

/// `None` when converged; `Some(Ok(why))` while still converging;
/// `Some(Err(why))` when swarm gave up (and rolled back).
fn stack_problem(app: &str, spec: &AppSpec) -> Result<Option<Result<String, String>>, DeployError> {
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
        if svc.extra.get("restart").and_then(Value::as_str) == Some("no") {
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
            return Ok(Some(Ok(format!("service {full}: {reps} replicas running"))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(service: &str, state: &str) -> Container {
        Container {
            id: format!("{service}-{state}"),
            name: service.into(),
            service: service.into(),
            state: state.into(),
            status: String::new(),
            release: None,
        }
    }

    #[test]
    fn only_running_routed_scalable_services_switch() {
        let spec = crate::spec::parse(
            "services:\n  web:\n    image: a\n  api:\n    image: a\n    container_name: fixed\n  db:\n    image: a\n  new:\n    image: a\n",
        )
        .spec
        .unwrap();
        let routed = vec![
            ("web".to_owned(), 80),
            ("api".to_owned(), 80),
            ("new".to_owned(), 80),
        ];
        let before = vec![
            container("web", "running"),
            container("api", "running"),
            container("db", "running"),
        ];
        assert_eq!(switched(&spec, &routed, &before), vec!["web"]);
        assert!(switched(&spec, &routed, &[container("web", "exited")]).is_empty());
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
