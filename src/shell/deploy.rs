//! The release pipeline, the shell of [`crate::plan`]: export the commit
//! into a fresh release dir, gather the plan's inputs (the spec, the config,
//! the stores, one docker snapshot), plan the release purely, then execute
//! it: write its files, build, pin, start the containers, route Caddy,
//! record the release, each step in the journal. Any failure before the
//! switch leaves the previous release serving and is an error.

use crate::caddy;
use crate::docker::{self, ComposeCli};
use crate::envfile;
use crate::journal::{self, End, Journal, Recorder, Step};
use crate::paths::Paths;
use crate::plan::{self, PlanInputs, PlanSettings, ReleasePlan, Start};
use crate::recovery;
use crate::release::{self, Release, Status};
use crate::rollout;
use crate::settings::{self, Settings};
use crate::spec::{self, AppSpec};
use crate::state::{self, Mode};
use crate::ui;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use crate::deploy_error::{DeployError, fail};

/// Deploys `commit` (already in `repos/<app>`) as the app's next release.
/// Called by the post-receive hook under the app's deploy lock.
pub fn deploy_commit(paths: &Paths, app: &str, commit: &str) -> Result<(), DeployError> {
    deploy_new_release(paths, app, commit).map(|_| ())
}

/// Like [`deploy_commit`], returning the new release's number.
pub fn deploy_new_release(paths: &Paths, app: &str, commit: &str) -> Result<u64, DeployError> {
    let settings = settings::load(paths)?;
    // before any code lands on disk
    crate::fsutil::secure_root(paths)?;
    recover(paths, app)?;
    let n = release::next_number_on_disk(paths, app)?;
    let rec = begin(paths, app, n, commit, None)?;
    logged(paths, app, n, || {
        ui::step(format!(
            "Preparing release {n} of {app} ({})",
            short(commit)
        ));
        deploy_release(paths, &settings, app, &rec, ConfigSource::Current, || {
            export(paths, app, commit, n)
        })
    })
}

/// Records release `n` pending, with its journal, before anything of it is
/// on disk: a deploy that dies from here on leaves a record to recover.
fn begin<'a>(
    paths: &'a Paths,
    app: &'a str,
    n: u64,
    commit: &str,
    note: Option<String>,
) -> Result<Recorder<'a>, DeployError> {
    let rel = Release {
        number: n,
        commit: commit.to_owned(),
        created: release::now(),
        status: Status::Pending,
        mode: None,
        note,
        spec_sha256: None,
        by: crate::audit::actor(),
    };
    let dir = release::dir(paths, app, n);
    let record = |e: std::io::Error| {
        fail(format!(
            "cannot record release {n} in {}: {e}",
            dir.display()
        ))
    };
    release::save(paths, app, &rel).map_err(record)?;
    let previous = release::live(&release::list(paths, app)?).map(|r| r.number);
    Recorder::new(paths, app, Journal::new(n, previous, &journal::STEPS)).map_err(record)
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
    recover(paths, app)?;
    let existing = release::list(paths, app)?;
    let Some(live) = release::live(&existing).or(existing.last()) else {
        return Err(fail(format!("{app} has no release yet: push to it first")));
    };
    let commit = live.commit.clone();
    deploy_new_release(paths, app, &commit)
}

/// Runs a recorded pending release: `prepare` puts its `src/` in place. On
/// failure before the switch, the release is marked failed, its code is
/// removed (space comes back) and the previous one keeps serving.
fn deploy_release(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    rec: &Recorder,
    config: ConfigSource,
    prepare: impl FnOnce() -> Result<(), DeployError>,
) -> Result<u64, DeployError> {
    let n = rec.release();
    let mut rel = release::load(paths, app, n)?;
    let previous_target = release::app_target(paths, app);
    for (d, why) in release::damaged(paths, app)? {
        if d != n {
            ui::warn(format!("release {d} is damaged and is skipped ({why})"));
        }
    }
    let result = rec
        .step(Step::Prepare, prepare)
        .and_then(|()| run(paths, settings, app, &mut rel, config, rec));
    match result {
        Ok(()) => {
            if rec.get().retirer.is_none() {
                finish_cleanup(paths, settings, app, n, rec)?;
            }
            ui::step(format!("Release {n} of {app} is live"));
            Ok(n)
        }
        Err(e) if rec.get().done(Step::SwitchCaddy) => {
            // Caddy routes to the new release: never undo it from here.
            Err(fail(format!(
                "release {n} of {app} serves, but the deploy could not finish ({e}); the next kata command for {app} finishes it"
            )))
        }
        Err(e) => {
            let _ = rec.fail_open(&e);
            if rec.get().state(Step::StartNew) != journal::State::Planned {
                come_back_across_modes(paths, settings, app, &rel);
            }
            if let Some(t) = previous_target {
                let _ = release::point_app_at(paths, app, &t);
            }
            mark_failed(paths, app, n, &e.to_string());
            let _ = rec.update(|j| j.end = Some(End::Undone));
            prune(paths, app, settings.keep_releases);
            Err(e)
        }
    }
}

/// Marks release `n` failed with the first line of `why`. A failure for
/// lack of space also removes its code (it is in git), so the space comes
/// back at once and the record can be written.
fn mark_failed(paths: &Paths, app: &str, n: u64, why: &str) {
    if why.contains("No space left on device") {
        let _ = std::fs::remove_dir_all(release::src(paths, app, n));
    }
    if let Ok(mut rel) = release::load(paths, app, n) {
        rel.status = Status::Failed;
        rel.note = Some(why.lines().next().unwrap_or_default().to_owned());
        let _ = release::save(paths, app, &rel);
    }
}

/// The cleanup step: orphans, unused code volumes, old releases, replaced
/// runtime images; then the journal is closed.
fn finish_cleanup(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    n: u64,
    rec: &Recorder,
) -> Result<(), DeployError> {
    rec.step(Step::Cleanup, || {
        if let Ok(r) = release::load(paths, app, n)
            && let Ok(spec) = recorded_spec(paths, app, &r)
            && r.mode.as_deref() != Some("swarm")
        {
            rollout::cleanup(app, &spec, &release::compose_file(paths, app, n));
        }
        prune(paths, app, settings.keep_releases);
        crate::runtime::prune_replaced();
        Ok::<_, DeployError>(())
    })?;
    rec.update(|j| {
        j.end = Some(End::Finished);
        j.retirer = None;
    })?;
    Ok(())
}

/// Finishes or undoes every deploy of the app that did not end (its
/// process was killed, the machine went down, its retirer died): one line
/// each says what was done. Called under the app lock by every command that
/// changes the app, before anything else.
pub fn recover(paths: &Paths, app: &str) -> Result<(), DeployError> {
    for line in recover_quietly(paths, app)? {
        ui::step(line);
    }
    Ok(())
}

/// Takes the app's lock (saying so when another command holds it) and
/// recovers any deploy that did not end: what every command that changes
/// an app does first.
pub fn lock_and_recover(paths: &Paths, app: &str) -> Result<crate::lock::Lock, DeployError> {
    let lock = lock_app(paths, app)?;
    recover(paths, app)?;
    Ok(lock)
}

/// Takes the app's lock, saying so, and what holds it when the holder said,
/// while another command has it.
pub fn lock_app(paths: &Paths, app: &str) -> std::io::Result<crate::lock::Lock> {
    crate::lock::exclusive(&paths.app_lock(app), |holder| {
        ui::info(if holder.is_empty() {
            format!("another deploy of {app} is running; waiting")
        } else {
            format!("waiting: {holder}")
        })
    })
}

/// [`recover`], returning the lines instead of printing them.
pub fn recover_quietly(paths: &Paths, app: &str) -> Result<Vec<String>, DeployError> {
    let mut lines = vec![];
    for r in release::list(paths, app)? {
        let journal = match journal::load(paths, app, r.number) {
            Ok(j) => j,
            Err(e) => {
                // a damaged journal: the release record decides alone
                ui::warn(e.to_string());
                None
            }
        };
        let open = match &journal {
            Some(j) => j.end.is_none(),
            None => r.status == Status::Pending,
        };
        if !open {
            continue;
        }
        let settings = settings::load(paths)?;
        let now = match r.mode.as_deref() {
            Some("swarm") => docker::containers_of_stack(app)?,
            _ => docker::containers(app)?,
        };
        let action = recovery::decide(r.number, journal.as_ref(), &now);
        let previous = journal
            .as_ref()
            .and_then(|j| j.previous)
            .filter(|p| *p != r.number);
        apply(paths, &settings, app, &r, journal, &action, &now)?;
        if action != recovery::Action::Nothing {
            lines.push(recovery::summary(app, r.number, &action, previous));
        }
    }
    Ok(lines)
}

/// Carries out a recovery [`recovery::Action`] for release `r`.
fn apply(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    r: &Release,
    journal: Option<Journal>,
    action: &recovery::Action,
    now: &[docker::Container],
) -> Result<(), DeployError> {
    let n = r.number;
    let rec = Recorder::new(
        paths,
        app,
        journal.unwrap_or_else(|| Journal::new(n, None, &journal::STEPS)),
    )?;
    match action {
        recovery::Action::Nothing => {}
        recovery::Action::Undo {
            remove,
            restore_previous,
            at,
        } => {
            if !remove.is_empty() {
                docker::run(&crate::argv::rm(remove))?;
            }
            let all = release::list(paths, app)?;
            let previous = release::live(&all).filter(|p| p.number != n);
            if let Some(p) = previous {
                if *restore_previous {
                    bring_back(paths, settings, app, mode_of(r), p)?;
                }
                release::point_app_at(paths, app, &release::src(paths, app, p.number))?;
            } else if *restore_previous && mode_of(r) == Mode::Swarm {
                rollout::remove_undone_stack(app)?;
            }
            let why = match at {
                Some(s) => format!("interrupted at {s}; undone by the next command"),
                None => "interrupted before it started; undone by the next command".into(),
            };
            let _ = rec.fail_open(&why);
            mark_failed(paths, app, n, &why);
            rec.update(|j| j.end = Some(End::Undone))?;
        }
        recovery::Action::Finish {
            reroute,
            record_live,
            retire,
            ..
        } => {
            let spec = recorded_spec(paths, app, r)?;
            let server = recorded_caddy(paths, app, n)?;
            let routed = server
                .as_ref()
                .map(|s| caddy::service_dials(s, spec.services.keys()))
                .unwrap_or_default();
            if *reroute {
                if let Some(server) = &server {
                    let j = rec.get();
                    let addrs = match mode_of(r) {
                        // switched services take traffic on the new containers
                        Mode::Compose => {
                            let old: BTreeSet<String> = j.old_ids.iter().cloned().collect();
                            rollout::switch_upstreams(paths, app, &spec, &j.switched, &old, None)?
                        }
                        Mode::Swarm => rollout::addresses(paths, app, &spec, Mode::Swarm)?,
                    };
                    rollout::put_server(paths, settings, app, server, &addrs)?;
                }
                rec.done(Step::SwitchCaddy)?;
            }
            if *record_live {
                rec.step(Step::RecordLive, || release::mark_live(paths, app, n))?;
            }
            let old: Vec<&docker::Container> =
                now.iter().filter(|c| retire.contains(&c.id)).collect();
            if !old.is_empty() {
                rollout::retire_now(&rec, paths, settings, &old, &routed)?;
                let switched = rec.get().switched.clone();
                rollout::route_spread(paths, settings, app, &spec, server.as_ref(), &switched);
            }
            finish_cleanup(paths, settings, app, n, &rec)?;
        }
    }
    Ok(())
}

/// After release `rel` failed in a mode other than the live release's,
/// which it took down first: removes what it started and brings the live
/// release back in its own mode.
fn come_back_across_modes(paths: &Paths, settings: &Settings, app: &str, rel: &Release) {
    let all = release::list(paths, app).unwrap_or_default();
    let Some(p) = release::live(&all).filter(|p| p.number != rel.number) else {
        return;
    };
    if rel.mode.is_none() || mode_of(p) == mode_of(rel) {
        return;
    }
    ui::step(format!(
        "Bringing release {} back in {} mode",
        p.number,
        mode_of(p)
    ));
    if let Err(e) = bring_back(paths, settings, app, mode_of(rel), p) {
        ui::warn(format!(
            "could not bring release {} back: {e}; `kata deploy {app}` tries again",
            p.number
        ));
    }
}

/// Brings live release `p` back after a release in mode `failed` was
/// undone: what that mode runs goes first when it is not `p`'s.
fn bring_back(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    failed: Mode,
    p: &Release,
) -> Result<(), DeployError> {
    if mode_of(p) != failed {
        rollout::take_down(app, failed)?;
    }
    restore(paths, settings, app, p)
}

/// Starts release `p`'s recorded file again and routes to its containers.
fn restore(paths: &Paths, settings: &Settings, app: &str, p: &Release) -> Result<(), DeployError> {
    let file = release::compose_file(paths, app, p.number);
    let server = recorded_caddy(paths, app, p.number)?;
    match mode_of(p) {
        Mode::Compose => rollout::restore_previous(
            paths,
            settings,
            app,
            ComposeCli::detect()?,
            file.is_file().then_some(file.as_path()),
            server.as_ref(),
        ),
        Mode::Swarm => {
            docker::run_streamed(&crate::argv::stack_deploy(&file, app), &[])?;
            let spec = recorded_spec(paths, app, p)?;
            rollout::route_settled_stack(paths, settings, app, &spec, server.as_ref())?;
        }
    }
    Ok(())
}

fn mode_of(r: &Release) -> Mode {
    match r.mode.as_deref() {
        Some("swarm") => Mode::Swarm,
        _ => Mode::Compose,
    }
}

/// The Caddy server release `n` recorded, if it routes.
fn recorded_caddy(
    paths: &Paths,
    app: &str,
    n: u64,
) -> Result<Option<serde_json::Value>, DeployError> {
    let file = release::caddy_file(paths, app, n);
    match std::fs::read(&file) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| fail(format!("{} is damaged: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(format!("{}: {e}", file.display()))),
    }
}

/// The detached retirer (`kata retire APP N`): waits for the app lock, then
/// finishes release `n`'s deploy (drain, stop with the full grace period,
/// remove, clean up). Nothing to do when a command got there first.
pub fn retire(paths: &Paths, app: &str, n: u64) -> Result<(), DeployError> {
    if !release::dir(paths, app, n).is_dir() {
        return Ok(()); // the app was removed meanwhile
    }
    let lock = crate::lock::exclusive(&paths.app_lock(app), |_| {})?;
    let open = journal::load(paths, app, n)?.is_some_and(|j| j.end.is_none());
    if !open {
        return Ok(());
    }
    lock.describe(&format!(
        "release {n} of {app} is retiring the old containers, each within its stop grace period"
    ));
    for line in recover_quietly(paths, app)? {
        ui::info(line);
    }
    Ok(())
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
    recover(paths, app)?;
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
        if let Some((_, why)) = release::damaged(paths, app)?
            .into_iter()
            .find(|(d, _)| *d == to)
        {
            return Err(fail(format!(
                "cannot roll back to release {to} of {app}: {why}"
            )));
        }
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
    let n = release::next_number_on_disk(paths, app)?;
    let commit = old.commit.clone();
    let rec = begin(paths, app, n, &commit, Some(format!("rollback to {to}")))?;
    logged(paths, app, n, || {
        ui::step(format!(
            "Rolling {app} back to release {to} ({}) as release {n}",
            short(&commit)
        ));
        deploy_release(paths, &settings, app, &rec, ConfigSource::Snapshot, || {
            crate::fsutil::secure_root(paths)?;
            release::copy_for_rollback(paths, app, to, n)?;
            // The code comes from git again: the old release's `src/` was
            // mounted into its containers, which could have changed it.
            export(paths, app, &commit, n)
        })
    })
}

/// Writes `commit`'s tree as release `n`'s code, warning of submodules: a
/// push carries only their commit ids, and kata fetches nothing.
fn export(paths: &Paths, app: &str, commit: &str, n: u64) -> Result<(), DeployError> {
    let dest = release::src(paths, app, n);
    for path in crate::git::export_tree(&paths.repo(app), commit, &dest)? {
        ui::warn(format!(
            "`{path}` is a git submodule: kata deploys the pushed tree only, so it is an empty directory (commit its files into the repository, or fetch them in a build step)"
        ));
    }
    Ok(())
}

/// Removes old releases beyond `keep`, and damaged release directories (no
/// readable `release.json`: a deploy that died or ran out of space).
fn prune(paths: &Paths, app: &str, keep: usize) {
    let Ok(all) = release::list(paths, app) else {
        return;
    };
    let newest = all.last().map(|r| r.number).unwrap_or(0);
    let damaged = release::damaged(paths, app).unwrap_or_default();
    let gone = release::to_prune(&all, keep)
        .into_iter()
        // a damaged one newer than every record may be a deploy starting now
        .chain(damaged.into_iter().map(|(d, _)| d).filter(|d| *d < newest));
    for n in gone {
        let _ = std::fs::remove_dir_all(release::dir(paths, app, n));
        let _ = std::fs::remove_file(paths.deploy_log(app, n));
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(8)]
}

/// Reads the checkout's kata-compose.yaml without following symlinks (a
/// symlink could point anywhere on the host).
pub fn read_spec_text(src: &Path) -> Result<String, DeployError> {
    let bytes = crate::fsutil::read_in_tree(src, Path::new("kata-compose.yaml")).map_err(|e| {
        fail(format!(
            "kata-compose.yaml: cannot read it from the pushed commit: {e}"
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| fail("kata-compose.yaml: not UTF-8 text"))
}

/// Parses and validates a kata-compose.yaml, printing findings with
/// `kata-compose.yaml:line:column`.
pub fn parse_spec(text: &str) -> Result<AppSpec, DeployError> {
    let parsed = spec::parse(text);
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

/// The spec a release recorded when it was made (never the checkout's).
pub fn recorded_spec(paths: &Paths, app: &str, r: &Release) -> Result<AppSpec, DeployError> {
    let text = release::recorded_spec_text(paths, app, r)?;
    spec::parse(&text).spec.ok_or_else(|| {
        fail(format!(
            "the recorded kata-compose.yaml of release {} of {app} does not parse",
            r.number
        ))
    })
}

pub fn ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Runs release `rel`: gathers the plan's inputs, plans it (pure, see
/// [`crate::plan`]), then writes the plan's files and store records,
/// builds, pins and starts it, each step recorded in the journal.
fn run(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    rel: &mut Release,
    config: ConfigSource,
    rec: &Recorder,
) -> Result<(), DeployError> {
    let n = rel.number;
    let src = release::src(paths, app, n);
    let dir = release::dir(paths, app, n);
    // Everything kata takes from the checkout is read now, before any
    // container mounts it, and recorded beside it: later commands act on
    // these copies only.
    let spec_text = read_spec_text(&src)?;
    let spec = parse_spec(&spec_text)?;
    crate::fsutil::write_atomic(&release::spec_file(paths, app, n), spec_text.as_bytes())?;
    rel.spec_sha256 = Some(release::spec_hash(&spec_text));
    release::save(paths, app, rel)?;
    let dot_env = match crate::fsutil::read_in_tree(&src, Path::new(".env")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(fail(format!(".env: {e}"))),
    };

    // which compose CLI works is asked beside the swarm role, and only
    // used in compose mode
    let (compose, role) = docker::both(ComposeCli::detect, docker::swarm_role);
    let stored = state::stored_mode(paths, app)?;
    let (mode, why) = plan::choose_mode(stored, spec.mode, role?).map_err(fail)?;
    rel.mode = Some(mode.to_string());
    release::save(paths, app, rel)?;
    rec.update(|j| j.mode = Some(mode.to_string()))?;
    let cli = match mode {
        Mode::Compose => Some(compose?),
        Mode::Swarm => None,
    };
    ui::step(format!("Mode: {mode} ({why})"));

    // The config values this release runs with are part of it: a rollback
    // brings back the exact same environment.
    let config_env = match config {
        ConfigSource::Current => envfile::read_config(paths, app)?,
        ConfigSource::Snapshot => {
            envfile::parse(&std::fs::read_to_string(dir.join("ENV")).unwrap_or_default())
                .map_err(|e| fail(format!("the release's ENV snapshot is damaged: {e}")))?
        }
    };
    let plan = plan_release(
        paths,
        settings,
        app,
        rel,
        &spec,
        mode,
        cli,
        &dot_env,
        &config_env,
    )?;
    rec.update(|j| j.record_plan(&plan))?;
    write_files(&plan.files)?;
    for d in [
        paths.data(app),
        paths.config(app),
        paths.envs(app),
        paths.logs(app),
    ] {
        std::fs::create_dir_all(d)?;
    }

    seed_data_dirs(&src, &paths.data(app), &plan.seeds)?;
    rec.step(Step::Build, || build_runtimes(settings, app, &plan))?;
    // again: the build step ran untrusted code with the code dir mounted
    check_bind_sources(paths, app, &plan.compose, &src).map_err(fail)?;
    // what Docker and compose read on their own, out of containers' reach
    crate::pin_files::pin_release(&dir.join("files"), &src, &plan.copies).map_err(fail)?;
    write_files(&[plan.pinned_file()])?;

    release::point_app_at(paths, app, &src)?;
    let r = rollout::Rollout {
        paths,
        settings,
        app,
        plan: &plan,
        spec: &plan.spec,
        file: &plan.file,
        caddy: plan.caddy.as_ref(),
        journal: rec,
    };
    match &plan.start {
        Start::Compose(c) => rollout::compose(&r, c),
        Start::Swarm { .. } => rollout::swarm(&r),
    }
}

/// Gathers what release `rel` is planned from (in compose mode under the
/// host-wide subnet and port locks: the stores, one docker snapshot), plans
/// it, records the stores' new state, then checks what only the host can
/// tell (Caddy's admin address, symlinks on bind sources).
#[allow(clippy::too_many_arguments)]
fn plan_release(
    paths: &Paths,
    settings: &Settings,
    app: &str,
    rel: &Release,
    spec: &AppSpec,
    mode: Mode,
    cli: Option<ComposeCli>,
    dot_env: &[u8],
    config_env: &envfile::Env,
) -> Result<ReleasePlan, DeployError> {
    let n = rel.number;
    let src = release::src(paths, app, n);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    // swarm's networks and routes are swarm's own: no store, no lock
    let locks = match cli {
        Some(_) => Some((
            crate::subnet_store::lock(paths)?,
            crate::port_store::lock(paths).map_err(|e| fail(e.to_string()))?,
        )),
        None => None,
    };
    let (subnets, ports, networks, containers) = match cli {
        Some(_) => {
            // the app's own networks are enough when they all exist
            let (networks, containers) =
                docker::both(|| docker::networks_of(app), || docker::containers(app));
            (
                crate::subnet_store::read(paths, app)
                    .map_err(|e| fail(format!("subnet records: {e}")))?,
                crate::port_store::read(paths, app).map_err(|e| fail(e.to_string()))?,
                networks?,
                containers?,
            )
        }
        None => Default::default(),
    };
    let inputs = PlanInputs {
        paths,
        app,
        release: n,
        commit: &rel.commit,
        spec,
        mode,
        cli,
        dot_env,
        config_env,
        ids: ids(),
        home: home.as_deref(),
        settings: PlanSettings {
            subnet_pool: &settings.subnet_pool,
            subnet_prefix: settings.subnet_prefix,
            port_range: settings.port_range,
        },
        networks: &networks,
        all_networks: false,
        containers: &containers,
        subnets: &subnets,
        ports: &ports,
        previous: previous(paths, app, n),
    };
    let mut plan = plan::plan(&inputs);
    if plan.as_ref().is_err_and(|e| e.needs_all_networks) {
        let every = docker::networks()?;
        plan = plan::plan(&PlanInputs {
            networks: &every,
            all_networks: true,
            ..inputs
        });
    }
    for w in plan.as_ref().map_or_else(|e| &e.warnings, |p| &p.warnings) {
        ui::warn(w);
    }
    let plan = plan.map_err(|e| fail(e.message))?;
    crate::subnet_store::write(paths, app, &plan.subnets)
        .map_err(|e| fail(format!("subnet records: {e}")))?;
    crate::port_store::write(paths, app, &plan.ports).map_err(|e| fail(e.to_string()))?;
    drop(locks);
    for (key, subnets) in &plan.kept_subnets {
        let list: Vec<String> = subnets.iter().map(ToString::to_string).collect();
        ui::info(format!(
            "network `{key}` keeps its subnet {} from Docker's pool (a new one would mean recreating it, stopping every container on it; `kata rm` and a push move it)",
            list.join(" ")
        ));
    }
    if let Some(server) = &plan.caddy {
        caddy::refuse_admin_reach(server, plan.spec.services.keys(), &settings.caddy_admin)?;
    }
    check_bind_sources(paths, app, &plan.compose, &src).map_err(fail)?;
    Ok(plan)
}

/// The live release's records (not release `n`'s): its compose file and
/// Caddy server, what a failed start goes back to.
fn previous(paths: &Paths, app: &str, n: u64) -> plan::Previous {
    let live = release::list(paths, app)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|r| r.status == Status::Live && r.number != n);
    let Some(live) = live else {
        return plan::Previous::default();
    };
    let file = release::compose_file(paths, app, live.number);
    plan::Previous {
        file: file.is_file().then_some(file),
        caddy: std::fs::read(release::caddy_file(paths, app, live.number))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
        mode: Some(mode_of(&live)),
    }
}

fn write_files(files: &[plan::File]) -> Result<(), DeployError> {
    for f in files {
        crate::fsutil::write_atomic_mode(&f.path, &f.body, f.mode)?;
    }
    Ok(())
}

/// A writable relative mount lives in the app's data directory; the first
/// deploy starts it from the pushed files, as compose would mount them, or
/// empty (swarm refuses a bind mount whose source is missing, and docker
/// would create it owned by root). A path that passes through a symlink is
/// not followed: the checkout's symlinks must not copy host files into the
/// app's data.
fn seed_data_dirs(src: &Path, data: &Path, seeds: &[(String, PathBuf)]) -> Result<(), DeployError> {
    for (rel, dir) in seeds {
        if crate::pin_files::adopt_old_mount(data, rel, dir)? {
            ui::info(format!(
                "{rel}: moved {} to {}",
                data.join(rel).display(),
                dir.display()
            ));
        }
        if dir.symlink_metadata().is_ok() {
            continue;
        }
        let mut from = src.to_path_buf();
        let mut plain = true;
        for part in rel.split('/') {
            from.push(part);
            plain &= from
                .symlink_metadata()
                .is_ok_and(|m| !m.file_type().is_symlink());
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if plain && from.is_dir() {
            crate::fsutil::copy_tree(&from, dir)?;
            ui::info(format!(
                "{rel}: copied the pushed files into {}",
                dir.display()
            ));
        } else if plain && from.is_file() {
            // a pushed file without a dot in its name (`./Caddyfile`)
            std::fs::copy(&from, dir)?;
            ui::info(format!(
                "{rel}: copied the pushed file to {}",
                dir.display()
            ));
        } else {
            std::fs::create_dir(dir)?;
        }
    }
    Ok(())
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
fn build_runtimes(settings: &Settings, app: &str, plan: &ReleasePlan) -> Result<(), DeployError> {
    for b in &plan.builds {
        let rt = b.runtime;
        ui::step(format!("Runtime image {}", rt.image()));
        if crate::runtime::ensure(rt, &settings.base_image)? {
            ui::info(format!("built {}", rt.image()));
        } else {
            ui::info("up to date");
        }
        ui::step(format!("Building {app} with {}", rt.image()));
        if let Some(body) = &b.run.env_file {
            crate::fsutil::write_atomic_mode(&b.env_file, body.as_bytes(), Some(0o600))?;
        }
        let env: Vec<(&str, &str)> = b
            .run
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let result = docker::run_streamed(&b.run.args, &env);
        let _ = std::fs::remove_file(&b.env_file);
        result.map_err(|e| match e {
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
    let addrs = rollout::addresses(paths, app, spec, mode)?;
    rollout::put_server(paths, settings, app, server, &addrs).map(|_| ())
}

/// Refuses a bind mount whose source lies in a directory that a pusher or a
/// container controls (the release's code, the app's data and venv) and is
/// reached through a symlink there: Docker would follow it anywhere on the
/// host (a pushed or planted `conf -> /` behind `./conf:/etc/conf`).
pub fn check_bind_sources(
    paths: &Paths,
    app: &str,
    compose: &serde_json::Value,
    src: &Path,
) -> Result<(), String> {
    let writable = [src.to_path_buf(), paths.data(app), paths.envs(app)];
    for source in release::bind_sources(compose, src) {
        for root in &writable {
            if let Ok(rel) = source.strip_prefix(root)
                && !rel.as_os_str().is_empty()
                && let Err(e) = crate::fsutil::walk_in_tree(root, rel)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(format!(
                    "the bind mount source {} goes through a symlink ({e})",
                    source.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dirs_start_from_the_pushed_files_once_and_never_through_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("state")).unwrap();
        std::fs::write(src.join("state/seed"), "pushed").unwrap();
        std::fs::write(src.join("Caddyfile"), "pushed file").unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host file").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("link")).unwrap();
        let data = d.path().join("data");
        let seeds = vec![
            ("state".to_owned(), data.join("state")),
            ("link".to_owned(), data.join("link")),
            ("missing".to_owned(), data.join("missing")),
            ("Caddyfile".to_owned(), data.join("Caddyfile")),
        ];
        seed_data_dirs(&src, &d.path().join("old-data"), &seeds).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join("state/seed")).unwrap(),
            "pushed"
        );
        assert!(
            std::fs::read_dir(data.join("link"))
                .unwrap()
                .next()
                .is_none(),
            "a symlink is not followed: the directory starts empty"
        );
        assert!(data.join("missing").is_dir());
        assert_eq!(
            std::fs::read_to_string(data.join("Caddyfile")).unwrap(),
            "pushed file",
            "a pushed file is copied as a file, not replaced by a directory"
        );
        // An existing data directory is the app's: never seeded again.
        std::fs::write(src.join("state/seed"), "pushed again").unwrap();
        seed_data_dirs(&src, &d.path().join("old-data"), &seeds).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join("state/seed")).unwrap(),
            "pushed"
        );
    }

    #[test]
    fn bind_sources_through_symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path());
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("conf")).unwrap();
        std::os::unix::fs::symlink("/", src.join("root")).unwrap();
        std::fs::create_dir_all(paths.data("a")).unwrap();
        std::os::unix::fs::symlink("/etc", paths.data("a").join("pg")).unwrap();
        let doc = |v: &str| serde_json::json!({"services": {"w": {"volumes": [v]}}});
        assert!(check_bind_sources(&paths, "a", &doc("./conf:/c"), &src).is_ok());
        assert!(check_bind_sources(&paths, "a", &doc("./missing:/c"), &src).is_ok());
        assert!(check_bind_sources(&paths, "a", &doc("/srv:/s"), &src).is_ok());
        let e = check_bind_sources(&paths, "a", &doc("./root/etc:/c"), &src).unwrap_err();
        assert!(e.contains("goes through a symlink"), "{e}");
        let pg = format!("{}:/var/lib/pg", paths.data("a").join("pg").display());
        assert!(check_bind_sources(&paths, "a", &doc(&pg), &src).is_err());
        // a secret's file a container turned into a symlink to a host file
        std::os::unix::fs::symlink("/etc/shadow", src.join("s")).unwrap();
        let secret = serde_json::json!({"services": {"w": {"secrets": ["s"]}}, "secrets": {"s": {"file": "./s"}}});
        assert!(check_bind_sources(&paths, "a", &secret, &src).is_err());
        let env_file = serde_json::json!({"services": {"w": {"env_file": "s"}}});
        assert!(check_bind_sources(&paths, "a", &env_file, &src).is_err());
    }
}
