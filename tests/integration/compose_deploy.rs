//! Compose idioms deployed for real: a busybox web app whose one-shot
//! migration job runs once per deploy and never loops, whose `- KEY`
//! environment entry takes the app's config value, and whose relative data
//! mount starts from the pushed files and survives redeploys in the app's
//! data directory.

use crate::support::images::{self, BUSYBOX};
use crate::support::private_dockerd;
use crate::support::push::{LocalApp, wait_answer};
use crate::support::{Kata, docker_ok, engine_shared, repo_path, unique, wait_for};
use std::time::Duration;

/// tests/fixtures/compose/busybox-migrate.yaml, with its `.env` as the app's config.
fn compose_file() -> String {
    let f = repo_path("tests/fixtures/compose/busybox-migrate.yaml");
    let text = std::fs::read_to_string(f).unwrap();
    assert!(text.contains(BUSYBOX), "the fixture runs the test image");
    text
}

fn config() -> String {
    std::fs::read_to_string(repo_path("tests/fixtures/compose/busybox-migrate.env")).unwrap()
}

/// `docker inspect -f format` of the app's one container of `service`.
fn inspect_one(app: &str, service: &str, format: &str) -> String {
    let ids = docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label=kata.app={app}"),
        "--filter",
        &format!("label=kata.service={service}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "one {service} container: {ids:?}");
    docker_ok(["inspect", "-f", format, ids[0]])
}

/// The migration container: (status, exit code, restart count).
fn migrate_state(app: &str) -> (String, String, String) {
    let out = inspect_one(
        app,
        "migrate",
        "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}",
    );
    let mut f = out.split_whitespace().map(str::to_owned);
    (
        f.next().unwrap_or_default(),
        f.next().unwrap_or_default(),
        f.next().unwrap_or_default(),
    )
}

fn one_shot_migration_runs_once_per_deploy(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = Kata::setup();
    let name = unique("oneshot");
    kata.write_app_config(&name, &config());
    let app = LocalApp::new(&kata, &name).push_env("KATA_COMPOSE", compose);
    // The pushed state/ starts the data directory on the first deploy.
    app.write("kata-compose.yaml", &compose_file())
        .write("state/migrations.log", "seeded\n")
        .commit("first");
    let out = app.push_ok();
    assert!(
        out.stderr.contains("`./state` is mounted writable"),
        "the relocation is announced:\n{}",
        out.stderr
    );
    // web started after the job had run once, with the config's value.
    assert_eq!(
        wait_answer(&name, "web", 8080, "/", 60).trim(),
        "hello-from-config 2"
    );
    let log = kata.path(format!("data/.mounts/{name}/state/migrations.log"));
    // The job stays done: give a looping restart policy time to show itself.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "seeded\nmigrated\n");
    let (status, code, restarts) = migrate_state(&name);
    assert_eq!(
        (status.as_str(), code.as_str(), restarts.as_str()),
        ("exited", "0", "0")
    );

    // A second deploy runs it once more (as `docker compose up` does) and
    // the data written under the first release is still there, not re-seeded.
    app.write("state/migrations.log", "pushed again\n")
        .commit("second");
    app.push_ok();
    wait_for("the second migration", Duration::from_secs(60), || {
        std::fs::read_to_string(&log).unwrap_or_default() == "seeded\nmigrated\nmigrated\n"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "seeded\nmigrated\nmigrated\n"
    );
    let (status, code, restarts) = migrate_state(&name);
    assert_eq!(
        (status.as_str(), code.as_str(), restarts.as_str()),
        ("exited", "0", "0")
    );
}

#[test]
fn one_shot_migration_runs_once_per_deploy_v2() {
    one_shot_migration_runs_once_per_deploy("v2");
}

#[test]
fn one_shot_migration_runs_once_per_deploy_v1() {
    one_shot_migration_runs_once_per_deploy("v1");
}

/// Swarm mode: the job's `restart: "no"` becomes restart_policy `none`, so
/// its task completes once and is not restarted, and the deploy does not
/// wait for it to be running.
#[test]
fn one_shot_job_completes_once_in_swarm_mode() {
    private_dockerd::rerun_on_a_swarm("compose_deploy::one_shot_job_swarm_inner");
}

#[test]
#[ignore = "run by one_shot_job_completes_once_in_swarm_mode on a private swarm"]
fn one_shot_job_swarm_inner() {
    assert!(private_dockerd::inside(), "needs the private swarm");
    let kata = Kata::setup();
    let name = unique("jobswarm");
    kata.write_app_config(&name, &config());
    let app = LocalApp::new(&kata, &name);
    app.write("kata-compose.yaml", &compose_file())
        .write("state/migrations.log", "seeded\n")
        .commit("first");
    let out = app.push_ok();
    assert!(out.stderr.contains("Mode: swarm"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`services.web.depends_on` is ignored by docker stack deploy"),
        "{}",
        out.stderr
    );
    let log = kata.path(format!("data/.mounts/{name}/state/migrations.log"));
    wait_for("the migration", Duration::from_secs(60), || {
        std::fs::read_to_string(&log).unwrap_or_default() == "seeded\nmigrated\n"
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "seeded\nmigrated\n",
        "the job ran once and was not restarted"
    );
    let tasks = docker_ok([
        "service",
        "ps",
        "--format",
        "{{.CurrentState}}",
        &format!("{name}_migrate"),
    ]);
    assert_eq!(tasks.lines().count(), 1, "{tasks}");
    assert!(tasks.starts_with("Complete"), "{tasks}");
}

/// A job whose `deploy.restart_policy` is `condition: none` (and no
/// `restart:`) is a one-shot job too, as compose v2 runs it: the deploy
/// waits for it to complete instead of failing because it exited.
#[test]
fn a_job_with_a_none_restart_policy_is_a_one_shot_job() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = Kata::setup();
    let name = unique("policyjob");
    let app = LocalApp::new(&kata, &name);
    app.write(
        "kata-compose.yaml",
        &format!(
            "services:\n  job:\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"echo done\"]\n    deploy:\n      restart_policy:\n        condition: none\n  web:\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"mkdir -p /w && echo up > /w/index.html && exec httpd -f -p 8080 -h /w\"]\n"
        ),
    )
    .commit("v1");
    app.push_ok();
    assert_eq!(wait_answer(&name, "web", 8080, "/", 60).trim(), "up");
    let state = inspect_one(
        &name,
        "job",
        "{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}",
    );
    assert_eq!(state.trim(), "exited 0 no", "ran once, never restarted");
}

/// A push carries a submodule's commit id, not its files: kata deploys the
/// tree it got, with the submodule an empty directory, and says so.
#[test]
fn a_submodule_is_named_in_a_warning() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = Kata::setup();
    let name = unique("submodule");
    let app = LocalApp::new(&kata, &name);
    app.write(
        "kata-compose.yaml",
        &format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"mkdir -p /w && ls -a /app/libs/theme > /w/index.html && exec httpd -f -p 8080 -h /w\"]\n    volumes:\n      - app:/app\n"
        ),
    )
    .commit("v1")
    .commit_submodule("libs/theme", "theme as a submodule");
    let out = app.push_ok();
    assert!(
        out.stderr.contains(
            "`libs/theme` is a git submodule: kata deploys the pushed tree only, so it is an empty directory"
        ),
        "{}",
        out.stderr
    );
    // the app runs, and sees the submodule's path as an empty directory
    let listing = wait_answer(&name, "web", 8080, "/", 60);
    assert_eq!(listing.split_whitespace().collect::<Vec<_>>(), [".", ".."]);
}
