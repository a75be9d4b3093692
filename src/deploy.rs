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
use crate::rollout;
use crate::settings::{self, Settings};
use crate::spec::{self, AppSpec, Runtime};
use crate::state::{self, Mode};
use crate::ui;
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

pub(crate) fn fail(msg: impl Into<String>) -> DeployError {
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
    logged(paths, app, n, || {
        ui::step(format!(
            "Preparing release {n} of {app} ({})",
            short(commit)
        ));
        crate::git::export_tree(&paths.repo(app), commit, &src)?;
        deploy_release(
            paths,
            &settings,
            app,
            n,
            commit,
            None,
            ConfigSource::Current,
        )
    })
}

/// Runs the deploy of release `n` with its output kept in its deploy log.
fn logged<T>(
    paths: &Paths,
    app: &str,
    n: u64,
    deploy: impl FnOnce() -> Result<T, DeployError>,
) -> Result<T, DeployError> {
    let _log = ui::open_log(&paths.deploy_log(app, n))
        .map_err(|e| ui::warn(format!("no deploy log for release {n}: {e}")))
        .ok();
    let result = deploy();
    if let Err(e) = &result {
        ui::log_error(e);
    }
    result
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
    config: ConfigSource,
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
    match run(paths, settings, app, &mut rel, config) {
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
            crate::runtime::prune_replaced();
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

/// The release a rollback goes back to by default: the newest one before
/// the live one that served traffic and is still kept.
pub fn rollback_target(all: &[Release]) -> Option<u64> {
    let live = release::live(all)?.number;
    all.iter()
        .rev()
        .find(|r| r.number < live && r.status == Status::Superseded)
        .map(|r| r.number)
}

/// Deploys a kept release's exact code, spec and config values again, as a
/// new release, through the same zero-downtime path as a push.
pub fn rollback(paths: &Paths, app: &str, to: Option<u64>) -> Result<u64, DeployError> {
    let settings = settings::load(paths)?;
    let all = release::list(paths, app)?;
    if all.is_empty() {
        return Err(fail(format!("{app} has no releases")));
    }
    let to = match to {
        Some(t) => t,
        None => rollback_target(&all).ok_or_else(|| {
            fail(format!(
                "{app} has no earlier release to roll back to (see `kata releases {app}`)"
            ))
        })?,
    };
    let Some(old) = all.iter().find(|r| r.number == to) else {
        return Err(fail(format!(
            "{app} has no release {to} (see `kata releases {app}`)"
        )));
    };
    if release::live(&all).is_some_and(|l| l.number == to) {
        return Err(fail(format!("release {to} of {app} is already live")));
    }
    if old.status == Status::Failed || old.status == Status::Pending {
        return Err(fail(format!(
            "release {to} of {app} never went live ({}): roll back to one that served",
            serde_json::to_value(old.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )));
    }
    let n = release::next_number(&all);
    logged(paths, app, n, || {
        ui::step(format!(
            "Rolling {app} back to release {to} ({}) as release {n}",
            short(&old.commit)
        ));
        release::copy_for_rollback(paths, app, to, n)?;
        deploy_release(
            paths,
            &settings,
            app,
            n,
            &old.commit.clone(),
            Some(format!("rollback to {to}")),
            ConfigSource::Snapshot,
        )
    })
}

fn prune(paths: &Paths, app: &str, keep: usize) {
    if let Ok(all) = release::list(paths, app) {
        for n in release::to_prune(&all, keep) {
            let _ = std::fs::remove_dir_all(release::dir(paths, app, n));
            let _ = std::fs::remove_file(paths.deploy_log(app, n));
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
    Ok(render_with(paths, app, spec, target, release, &config_env))
}

fn render_with(
    paths: &Paths,
    app: &str,
    spec: &AppSpec,
    target: Target,
    release: Option<(u64, &str)>,
    config_env: &envfile::Env,
) -> render::Rendered {
    let (puid, pgid) = ids();
    let cx = render::Context {
        app,
        paths,
        config_env,
        puid,
        pgid,
        release,
    };
    render::render(spec, &cx, target)
}

fn run(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    rel: &mut Release,
    config: ConfigSource,
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

    // The config values this release runs with are part of it: a rollback
    // brings back the exact same environment.
    let config_env = match config {
        ConfigSource::Current => envfile::read_config(paths, app)?,
        ConfigSource::Snapshot => envfile::parse(
            &std::fs::read_to_string(release::dir(paths, app, n).join("ENV")).unwrap_or_default(),
        )
        .map_err(|e| fail(format!("the release's ENV snapshot is damaged: {e}")))?,
    };
    let out = render_with(
        paths,
        app,
        &spec,
        target,
        Some((n, &rel.commit)),
        &config_env,
    );
    for w in &out.warnings {
        ui::warn(w);
    }
    let caddy_plan = match &out.caddy {
        Some(server) => Some(caddy::expand(server.clone(), app)?),
        None => None,
    };
    let dir = release::dir(paths, app, n);
    crate::fsutil::write_atomic(&dir.join("ENV"), envfile::render(&config_env).as_bytes())?;
    if let Some(server) = &caddy_plan {
        let mut json = serde_json::to_vec_pretty(server).expect("JSON serialises");
        json.push(b'\n');
        crate::fsutil::write_atomic(&dir.join("caddy.json"), &json)?;
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

    let previous = release::list(paths, app)?
        .into_iter()
        .rev()
        .find(|r| r.status == Status::Live && r.number != n);
    let previous_file = previous
        .as_ref()
        .map(|p| release::src(paths, app, p.number).join(".docker-compose.yaml"))
        .filter(|f| f.is_file());
    let previous_caddy: Option<serde_json::Value> = previous.as_ref().and_then(|p| {
        let text = std::fs::read(release::dir(paths, app, p.number).join("caddy.json")).ok()?;
        serde_json::from_slice(&text).ok()
    });
    release::point_app_at(paths, app, &src)?;
    let plan = rollout::Rollout {
        paths,
        settings,
        app,
        spec: &spec,
        file: &compose_file,
        previous_file: previous_file.as_deref(),
        caddy: caddy_plan.as_ref(),
        previous_caddy: previous_caddy.as_ref(),
    };
    match compose {
        Some(cli) => rollout::compose(&plan, cli),
        None => rollout::swarm(&plan),
    }
}

/// Where a release's config values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `config/<app>/ENV` as it is now (a push, a config change).
    Current,
    /// The snapshot kept in the release dir (a rollback).
    Snapshot,
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
        // Values travel in the docker CLI's environment (`-e KEY` alone), not
        // in its argv, where any user on the host could read config secrets.
        let mut env: Vec<(String, String)> = out
            .env
            .get(name)
            .into_iter()
            .flatten()
            // compose form → literal for `docker run`
            .map(|(k, v)| (k.clone(), v.replace("$$", "$")))
            .collect();
        if !spec.build_commands.is_empty() {
            env.push(("KATA_BUILD_COMMANDS".into(), spec.build_commands.join("\n")));
        }
        // ... except the few the docker CLI itself reads
        let (via_argv, env): (Vec<_>, Vec<_>) = env
            .into_iter()
            .partition(|(k, _)| k == "PATH" || k == "HOME" || k.starts_with("DOCKER_"));
        for (k, v) in &via_argv {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        for (k, _) in &env {
            args.push("-e".into());
            args.push(k.clone());
        }
        args.push(rt.image());
        args.push("build".into());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        docker::stream("docker", &args, &env).map_err(|e| match e {
            // its output was streamed above; the command line adds nothing
            docker::DockerError::Failed { status, .. } => fail(format!(
                "the build of {app} in {} failed ({status}); its output is above",
                rt.image()
            )),
            e => fail(format!("build of {app} failed in {}: {e}", rt.image())),
        })?;
    }
    Ok(())
}

/// Writes the app's Caddy server with service dials resolved to the
/// running containers (after a restart, containers have new addresses).
pub fn route(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    spec: &AppSpec,
    server: &serde_json::Value,
    mode: Mode,
) -> Result<(), DeployError> {
    let addrs = rollout::addresses(app, spec, mode)?;
    rollout::put_server(paths, settings, app, server, &addrs)
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
