//! The release pipeline. Plan with pure functions (spec, render, mode), then
//! run: export the commit into a fresh release dir, build runtime images and
//! dependencies, start the containers, route Caddy, record the release.
//! Any failure leaves the previous release serving and is an error.

use crate::caddy;
use crate::docker::{self, ComposeCli, DockerError, SwarmRole};
use crate::envfile;
use crate::paths::Paths;
use crate::release::{self, Release, Status};
use crate::render::{self, Target};
use crate::settings::{self, Settings};
use crate::spec::{self, AppSpec, Runtime};
use crate::state::{self, Mode};
use crate::ui;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Caddy(#[from] caddy::CaddyError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Config(#[from] envfile::ReadError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn fail(msg: impl Into<String>) -> DeployError {
    DeployError::Failed(msg.into())
}

/// Where a deploy's mode came from, for the progress line.
pub fn choose_mode(
    stored: Option<Mode>,
    in_file: Option<Mode>,
    role: SwarmRole,
) -> Result<(Mode, &'static str), String> {
    let (mode, why) = match (stored, in_file) {
        (Some(m), _) => (m, "set by `kata mode`"),
        (None, Some(m)) => (m, "x-kata-mode"),
        (None, None) if role == SwarmRole::Manager => (Mode::Swarm, "this node is a swarm manager"),
        (None, None) => (Mode::Compose, "default"),
    };
    match (mode, role) {
        (Mode::Swarm, SwarmRole::Worker) => Err("this node is a swarm worker: deploy from a manager node".into()),
        (Mode::Swarm, SwarmRole::None) => Err("swarm mode was chosen but this node is not in a swarm (run `docker swarm init`, or `kata mode APP compose`)".into()),
        _ => Ok((mode, why)),
    }
}

/// Deploys `commit` (already in `repos/<app>`) as the app's next release.
/// Called by the post-receive hook under the app's deploy lock.
pub fn deploy_commit(paths: &Paths, app: &str, commit: &str) -> Result<(), DeployError> {
    deploy_new_release(paths, app, commit).map(|_| ())
}

/// Like [`deploy_commit`], returning the new release's number.
pub fn deploy_new_release(paths: &Paths, app: &str, commit: &str) -> Result<u64, DeployError> {
    let settings = settings::load(paths)?;
    let existing = release::list(paths, app)?;
    let n = release::next_number(&existing);
    let src = release::src(paths, app, n);
    ui::step(format!(
        "Preparing release {n} of {app} ({})",
        short(commit)
    ));
    crate::git::export_tree(&paths.repo(app), commit, &src)?;
    deploy_release(paths, &settings, app, n, commit, None)
}

/// Deploys the live release's commit again as a new release (after a config
/// change, or `kata deploy`).
pub fn redeploy(paths: &Paths, app: &str) -> Result<u64, DeployError> {
    let existing = release::list(paths, app)?;
    let Some(live) = release::live(&existing).or(existing.last()) else {
        return Err(fail(format!("{app} has no release yet: push to it first")));
    };
    let commit = live.commit.clone();
    deploy_new_release(paths, app, &commit)
}

/// Runs a release whose `src/` is in place. On failure the release is
/// marked failed and the previous one keeps serving.
pub fn deploy_release(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    n: u64,
    commit: &str,
    note: Option<String>,
) -> Result<u64, DeployError> {
    let mut rel = Release {
        number: n,
        commit: commit.to_owned(),
        created: release::now(),
        status: Status::Pending,
        mode: None,
        note,
    };
    release::save(paths, app, &rel)?;
    let previous_target = release::app_target(paths, app);
    match run(paths, settings, app, &mut rel) {
        Ok(()) => {
            let all = release::list(paths, app)?;
            for mut other in all
                .into_iter()
                .filter(|r| r.number != n && r.status == Status::Live)
            {
                other.status = Status::Superseded;
                release::save(paths, app, &other)?;
            }
            rel.status = Status::Live;
            release::save(paths, app, &rel)?;
            prune(paths, app, settings.keep_releases);
            ui::step(format!("Release {n} of {app} is live"));
            Ok(n)
        }
        Err(e) => {
            if let Some(t) = previous_target {
                let _ = release::point_app_at(paths, app, &t);
            }
            rel.status = Status::Failed;
            rel.note = Some(e.to_string().lines().next().unwrap_or_default().to_owned());
            let _ = release::save(paths, app, &rel);
            Err(e)
        }
    }
}

fn prune(paths: &Paths, app: &str, keep: usize) {
    if let Ok(all) = release::list(paths, app) {
        for n in release::to_prune(&all, keep) {
            let _ = std::fs::remove_dir_all(release::dir(paths, app, n));
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(8)]
}

/// Reads and validates the release's kata-compose.yaml, printing findings
/// with `kata-compose.yaml:line:column`.
pub fn load_spec(src: &Path) -> Result<AppSpec, DeployError> {
    let file = src.join("kata-compose.yaml");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        fail(format!(
            "kata-compose.yaml: cannot read it from the pushed commit: {e}"
        ))
    })?;
    let parsed = spec::parse(&text);
    for w in &parsed.warnings {
        ui::warn(w.display("kata-compose.yaml"));
    }
    match parsed.spec {
        Some(s) => Ok(s),
        None => {
            let lines: Vec<String> = parsed
                .errors
                .iter()
                .map(|e| e.display("kata-compose.yaml").to_string())
                .collect();
            Err(fail(lines.join("\n")))
        }
    }
}

pub fn ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Plans and renders a release's compose file (pure apart from reading config).
pub fn plan(
    paths: &Paths,
    app: &str,
    spec: &AppSpec,
    target: Target,
    release: Option<(u64, &str)>,
) -> Result<render::Rendered, DeployError> {
    let config_env = envfile::read_config(paths, app)?;
    let (puid, pgid) = ids();
    let cx = render::Context {
        app,
        paths,
        config_env: &config_env,
        puid,
        pgid,
        release,
    };
    Ok(render::render(spec, &cx, target))
}

fn run(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    rel: &mut Release,
) -> Result<(), DeployError> {
    let n = rel.number;
    let src = release::src(paths, app, n);
    let spec = load_spec(&src)?;

    let role = docker::swarm_role()?;
    let stored = state::stored_mode(paths, app)?;
    let (mode, why) = choose_mode(stored, spec.mode, role).map_err(fail)?;
    rel.mode = Some(mode.to_string());
    let compose = match mode {
        Mode::Compose => Some(ComposeCli::detect()?),
        Mode::Swarm => None,
    };
    let target = compose.map(ComposeCli::target).unwrap_or(Target::Stack);
    ui::step(format!("Mode: {mode} ({why})"));

    let out = plan(paths, app, &spec, target, Some((n, &rel.commit)))?;
    for w in &out.warnings {
        ui::warn(w);
    }
    let compose_file = src.join(".docker-compose.yaml");
    crate::fsutil::write_atomic(&compose_file, out.yaml().as_bytes())?;
    for d in [
        paths.data(app),
        paths.config(app),
        paths.envs(app),
        paths.logs(app),
    ] {
        std::fs::create_dir_all(d)?;
    }

    build_runtimes(paths, settings, app, &spec, &out, &src)?;

    let caddy_plan = match &out.caddy {
        Some(server) => Some(caddy::expand(server.clone(), app)?),
        None => None,
    };

    // From here on, containers change: remember how to go back.
    let previous = release::list(paths, app)?
        .into_iter()
        .rev()
        .find(|r| r.status == Status::Live);
    release::point_app_at(paths, app, &src)?;
    let started = match compose {
        Some(cli) => up_compose(cli, app, &compose_file, &spec),
        None => up_stack(app, &compose_file),
    };
    if let Err(e) = started.and_then(|_| settle(app, &spec, mode)) {
        ui::step("Start failed; restoring the previous release");
        if let Some(prev) = &previous {
            let prev_file = release::src(paths, app, prev.number).join(".docker-compose.yaml");
            let _ = release::point_app_at(paths, app, &release::src(paths, app, prev.number));
            let _ = match compose {
                Some(cli) => up_compose(cli, app, &prev_file, &spec),
                None => up_stack(app, &prev_file),
            };
        }
        return Err(e);
    }

    if let Some(server) = caddy_plan {
        route(paths, settings, app, &spec, &server, mode)?;
    }
    Ok(())
}

/// Builds the runtime images the app uses, then runs each runtime's build
/// step (dependency install when the manifest changed, `build.commands`).
fn build_runtimes(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    spec: &AppSpec,
    out: &render::Rendered,
    src: &Path,
) -> Result<(), DeployError> {
    let mut seen: Vec<Runtime> = vec![];
    for (name, svc) in &spec.services {
        let Some(rt) = svc.runtime else { continue };
        if seen.contains(&rt) {
            continue;
        }
        seen.push(rt);
        ui::step(format!("Runtime image {}", rt.image()));
        if crate::runtime::ensure(rt, &settings.base_image)? {
            ui::info(format!("built {}", rt.image()));
        } else {
            ui::info("up to date");
        }
        ui::step(format!("Building {app} with {}", rt.image()));
        let (puid, pgid) = ids();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--rm".into(),
            "--user".into(),
            format!("{puid}:{pgid}"),
            "--label".into(),
            format!("kata.build={app}"),
            "-v".into(),
            format!("{}:/app", src.display()),
            "-v".into(),
            format!("{}:/venv", paths.envs(app).display()),
            "-v".into(),
            format!("{}:/config:ro", paths.config(app).display()),
            "-v".into(),
            format!("{}:/data", paths.data(app).display()),
        ];
        if let Some(env) = out.env.get(name) {
            for (k, v) in env {
                // compose form → literal for `docker run`
                args.push("-e".into());
                args.push(format!("{k}={}", v.replace("$$", "$")));
            }
        }
        if !spec.build_commands.is_empty() {
            args.push("-e".into());
            args.push(format!(
                "KATA_BUILD_COMMANDS={}",
                spec.build_commands.join("\n")
            ));
        }
        args.push(rt.image());
        args.push("build".into());
        docker::stream("docker", &args, &[])
            .map_err(|e| fail(format!("build of {app} failed in {}: {e}", rt.image())))?;
    }
    Ok(())
}

fn up_compose(cli: ComposeCli, app: &str, file: &Path, spec: &AppSpec) -> Result<(), DeployError> {
    ui::step(format!(
        "Starting {app} with {}",
        match cli {
            ComposeCli::V2 => "docker compose",
            ComposeCli::V1 => "docker-compose",
        }
    ));
    let mut rest = vec!["up", "-d", "--remove-orphans"];
    if spec
        .services
        .values()
        .any(|s| s.extra.contains_key("build"))
    {
        rest.push("--build");
    }
    let (program, args) = cli.argv(app, file, &rest);
    docker::stream(&program, &args, &[])?;
    Ok(())
}

fn up_stack(app: &str, file: &Path) -> Result<(), DeployError> {
    ui::step(format!("Deploying stack {app}"));
    let f = file.display().to_string();
    docker::stream(
        "docker",
        &["stack", "deploy", "--prune", "-c", &f, app],
        &[],
    )?;
    Ok(())
}

/// After `up`: every service with instances must have running containers
/// that stay up for a moment (a crash loop fails the deploy).
fn settle(app: &str, spec: &AppSpec, mode: Mode) -> Result<(), DeployError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut stable_since: Option<std::time::Instant> = None;
    loop {
        let problem = match mode {
            Mode::Compose => compose_problem(app, spec)?,
            Mode::Swarm => stack_problem(app, spec)?,
        };
        match problem {
            None => {
                let since = *stable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= std::time::Duration::from_secs(3) {
                    return Ok(());
                }
            }
            Some(p) => {
                stable_since = None;
                if std::time::Instant::now() > deadline {
                    return Err(fail(p));
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn compose_problem(app: &str, spec: &AppSpec) -> Result<Option<String>, DeployError> {
    let cs = docker::containers(app)?;
    for (name, svc) in &spec.services {
        if svc.instances == Some(0) {
            continue;
        }
        let mine: Vec<_> = cs.iter().filter(|c| &c.service == name).collect();
        if mine.is_empty() {
            return Ok(Some(format!("service {name} has no container")));
        }
        if let Some(c) = mine.iter().find(|c| c.state != "running") {
            let logs = docker::docker(&["logs", "--tail", "20", &c.id]).unwrap_or_default();
            return Ok(Some(format!(
                "service {name}: container {} is {} ({})\n{}",
                c.name,
                c.state,
                c.status,
                logs.trim_end()
            )));
        }
    }
    Ok(None)
}

fn stack_problem(app: &str, spec: &AppSpec) -> Result<Option<String>, DeployError> {
    let out = docker::docker(&[
        "stack",
        "services",
        app,
        "--format",
        "{{.Name}} {{.Replicas}}",
    ])?;
    for (name, _) in &spec.services {
        let full = format!("{app}_{name}");
        let Some(line) = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(full.as_str()))
        else {
            return Ok(Some(format!("service {full} not found in stack")));
        };
        let reps = line.split_whitespace().nth(1).unwrap_or("");
        let (have, want) = reps.split_once('/').unwrap_or(("0", "?"));
        let want = want.split_whitespace().next().unwrap_or(want);
        if have != want {
            return Ok(Some(format!("service {full}: {reps} replicas running")));
        }
    }
    Ok(None)
}

/// Live container addresses of each service of the app.
pub fn service_addresses(
    app: &str,
    spec: &AppSpec,
    mode: Mode,
) -> Result<BTreeMap<String, Vec<String>>, DeployError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let cs = match mode {
        Mode::Compose => docker::containers(app)?,
        Mode::Swarm => docker::containers_of_stack(app)?,
    };
    for c in cs.iter().filter(|c| c.state == "running") {
        if !spec.services.contains_key(&c.service) {
            continue;
        }
        let ips = docker::container_ips(&c.id)?;
        if let Some(ip) = ips.into_iter().next() {
            out.entry(c.service.clone()).or_default().push(ip);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// Writes the app's Caddy server with service dials resolved to containers.
pub fn route(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    spec: &AppSpec,
    server: &serde_json::Value,
    mode: Mode,
) -> Result<(), DeployError> {
    let admin = caddy::Admin::from_settings(settings, paths).map_err(|e| fail(e.to_string()))?;
    ui::step(format!(
        "Routing {app} through Caddy at {}",
        admin.endpoint()
    ));
    let addrs = service_addresses(app, spec, mode)?;
    let resolved = caddy::resolve_upstreams(server, &addrs)?;
    let _lock = admin.lock()?;
    admin.put_server(app, &resolved)?;
    Ok(())
}

/// The src dir of the live release (what `app/<app>` points at).
pub fn live_src(paths: &Paths, app: &str) -> Option<PathBuf> {
    let all = release::list(paths, app).ok()?;
    release::live(&all).map(|r| release::src(paths, app, r.number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_precedence() {
        use Mode::*;
        use SwarmRole as R;
        assert_eq!(choose_mode(None, None, R::None).unwrap().0, Compose);
        assert_eq!(choose_mode(None, None, R::Manager).unwrap().0, Swarm);
        assert_eq!(
            choose_mode(None, Some(Compose), R::Manager).unwrap().0,
            Compose
        );
        assert_eq!(
            choose_mode(Some(Compose), Some(Swarm), R::Manager)
                .unwrap()
                .0,
            Compose
        );
        assert!(
            choose_mode(None, Some(Swarm), R::Worker)
                .unwrap_err()
                .contains("worker")
        );
        assert!(choose_mode(None, Some(Swarm), R::None).is_err());
        assert_eq!(
            choose_mode(None, Some(Compose), R::Worker).unwrap().0,
            Compose
        );
    }
}
