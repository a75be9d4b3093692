//! Pushed apps run on the real Docker engine (compose v1, compose v2): an
//! image-only app, the python example through a real Caddy, and pushes that
//! docker refuses.

use crate::support::caddy::{Caddy, http_get as caddy_get};
use crate::support::images::{self, BUSYBOX};
use crate::support::push::{LocalApp, service_ips, wait_answer, wait_body};
use crate::support::{Kata, engine_shared, free_port, repo_path, unique, wait_for};
use std::time::Duration;

/// A busybox httpd serving `body` from the pushed tree, on port 8080.
fn httpd_app(app: &LocalApp, body: &str) {
    app.write(
        "kata-compose.yaml",
        &format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    command: httpd -f -p 8080 -h /app/www\n    volumes:\n      - app:/app\n"
        ),
    )
    .write("www/index.html", body)
    .commit(body);
}

/// A KATA_ROOT whose kata commands use the compose CLI `compose` (v1|v2).
fn kata_with(compose: &str) -> Kata {
    let mut kata = Kata::setup();
    kata.set_env("KATA_COMPOSE", compose);
    kata
}

fn image_only_app_answers(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = Kata::setup();
    let app = LocalApp::new(&kata, &unique("img")).push_env("KATA_COMPOSE", compose);
    httpd_app(&app, "hello from busybox");
    let out = app.push_ok();
    assert!(out.stderr.contains("-----> "), "{}", out.stderr);
    assert_eq!(
        wait_answer(&app.name, "web", 8080, "/", 30),
        "hello from busybox"
    );
}

#[test]
fn image_only_app_answers_v2() {
    image_only_app_answers("v2");
}

#[test]
fn image_only_app_answers_v1() {
    image_only_app_answers("v1");
}

/// examples/python-hello as pushed: the python runtime image, a virtualenv
/// from requirements.txt (installed once), routed through a real Caddy.
fn python_example_answers_and_skips_unchanged_requirements(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = kata_with(compose);
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let name = unique("py");
    // The example's Caddy server listens on $HTTP_PORT: the admin sets it in
    // the app's config before the first push (never :80 in a test).
    let port = free_port();
    kata.write_app_config(&name, &format!("HTTP_PORT={port}\n"));

    let app = LocalApp::new(&kata, &name).push_env("KATA_COMPOSE", compose);
    app.copy_from(&repo_path("examples/python-hello"))
        .commit("hello");
    let out = app.push_ok();
    assert!(
        out.stderr
            .contains("remote: -----> Installing requirements.txt"),
        "{}",
        out.stderr
    );
    let hello = format!("Hello from kata! ({name})\n");
    wait_body(&name, "web", 8000, "/", &hello, 60);
    assert_eq!(wait_answer(&name, "web", 8000, "/health", 10), "ok\n");
    // The app runs as the pushing user's PUID:PGID, not as whatever the
    // image says.
    let ids = crate::support::push::container_ids(&name, "web");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (uid, gid) = kata::deploy::ids();
    assert_eq!(
        crate::support::push::inspect(&ids[0], "{{.Config.User}}"),
        format!("{uid}:{gid}")
    );
    // Through Caddy, on the example's host name.
    wait_for(
        "the app routed through caddy",
        Duration::from_secs(30),
        || caddy_get(port, "hello.localhost", "/").2 == hello,
    );

    // New code, same requirements.txt: no install, the new code answers.
    let code = std::fs::read_to_string(app.dir().join("app.py")).unwrap();
    app.write("app.py", &code.replace("Hello from kata", "Hello again"))
        .commit("again");
    let out = app.push_ok();
    // the runtime image is reused, not rebuilt
    assert!(
        out.stderr
            .contains("remote: -----> Runtime image kata/python")
            && out.stderr.contains("remote:        up to date"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("remote:        requirements.txt unchanged; skipping install"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("Installing requirements.txt"),
        "{}",
        out.stderr
    );
    let again = format!("Hello again! ({name})\n");
    wait_body(&name, "web", 8000, "/", &again, 60);
    wait_for(
        "caddy to route to the new code",
        Duration::from_secs(30),
        || caddy_get(port, "hello.localhost", "/").2 == again,
    );

    // A changed requirements.txt is installed again.
    app.write("requirements.txt", "# still nothing to install\n")
        .commit("reqs");
    let out = app.push_ok();
    assert!(
        out.stderr.contains("-----> Installing requirements.txt"),
        "{}",
        out.stderr
    );
}

#[test]
fn python_example_answers_and_skips_unchanged_requirements_v2() {
    python_example_answers_and_skips_unchanged_requirements("v2");
}

#[test]
fn python_example_answers_and_skips_unchanged_requirements_v1() {
    python_example_answers_and_skips_unchanged_requirements("v1");
}

/// Pushes `yaml` (plus a marker file) and checks that the push fails with
/// `needle` (docker's own words) in its output, and that the previous
/// version still answers.
fn push_fails_with(app: &LocalApp, yaml: &str, needle: &str, good: &str) {
    app.write("kata-compose.yaml", yaml).commit(needle);
    let out = app.push_fails();
    assert!(
        out.stderr.contains(needle),
        "{needle:?} not in:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("remote: error: deploy of {}", app.name)),
        "{}",
        out.stderr
    );
    wait_body(&app.name, "web", 8080, "/", good, 60);
}

fn failing_docker_calls_fail_the_push_and_keep_the_previous_version(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = kata_with(compose);
    let app = LocalApp::new(&kata, &unique("fail")).push_env("KATA_COMPOSE", compose);
    httpd_app(&app, "good version");
    app.push_ok();
    wait_body(&app.name, "web", 8080, "/", "good version", 30);

    // An image that is not on this host: compose tries to pull it and
    // there is no registry (v1 and v2 both say "Pulling").
    push_fails_with(
        &app,
        "services:\n  web:\n    image: kata-test/does-not-exist:1\n",
        "Pulling",
        "good version",
    );
    // A command docker cannot start.
    push_fails_with(
        &app,
        &format!("services:\n  web:\n    image: {BUSYBOX}\n    command: /no/such/binary\n"),
        "/no/such/binary",
        "good version",
    );
    // A command that exits at once: its own last words are shown.
    push_fails_with(
        &app,
        &format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    command: sh -c 'echo boom-from-the-app; exit 3'\n"
        ),
        "boom-from-the-app",
        "good version",
    );
    // A build step that fails (in the python runtime image): its output is
    // shown (the needle is what printf prints, not the command's text; no
    // newline, yet kata's error still starts a line), and nothing is started.
    push_fails_with(
        &app,
        "build:\n  commands: ['printf \"build-%s-broke\" step; exit 5']\nservices:\n  web:\n    runtime: python\n    command: python3 -m http.server 8080\n",
        "build-step-broke",
        "good version",
    );
    // The failed releases are recorded as such; the good one is still live.
    let o = kata.args(["ls", "--json"]).success();
    let rows: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == app.name.as_str())
        .unwrap_or_else(|| panic!("{} not in {rows}", app.name));
    assert_eq!(row["release"], 1, "{row}");
    assert_eq!(row["running"], true, "{row}");
    assert_eq!(service_ips(&app.name, "web").len(), 1);
}

#[test]
fn failing_docker_calls_fail_the_push_and_keep_the_previous_version_v2() {
    failing_docker_calls_fail_the_push_and_keep_the_previous_version("v2");
}

#[test]
fn failing_docker_calls_fail_the_push_and_keep_the_previous_version_v1() {
    failing_docker_calls_fail_the_push_and_keep_the_previous_version("v1");
}
