//! `kata init` writes starter apps that deploy as written: a template is
//! initialised into a fresh work tree, committed, pushed with git, and must
//! answer through a real Caddy on its host name.

use crate::support::caddy::{Caddy, http_get as caddy_get};
use crate::support::images::{self, BUSYBOX, DEBIAN};
use crate::support::push::LocalApp;
use crate::support::{
    Kata, docker_ok, engine_exclusive, engine_shared, free_port, unique, wait_for,
};
use std::time::Duration;

/// Pushes `template` as app `name` (Caddy listening on a free port for host
/// `<name>.test`, set in the app's config before the first push) and returns
/// the work tree and the Caddy port once the app answers `want` there.
fn init_and_push(
    kata: &Kata,
    caddy: &Caddy,
    template: &str,
    name: &str,
    want: &str,
) -> (LocalApp, u16) {
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let port = free_port();
    kata.write_app_config(name, &format!("HTTP_PORT={port}\nDOMAIN={name}.test\n"));

    let app = LocalApp::new(kata, name);
    let out = kata.arg("init").arg(template).arg(app.dir()).success();
    assert!(
        out.stdout.contains("created ") && out.stdout.contains("kata-compose.yaml"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("git remote add kata kata@HOST:"),
        "{}",
        out.stdout
    );
    app.commit("from the template");
    let pushed = app.push_ok();
    assert!(pushed.stderr.contains("-----> "), "{}", pushed.stderr);
    wait_for(
        &format!("the {template} template to answer through caddy"),
        Duration::from_secs(60),
        || {
            caddy_get(port, &format!("{name}.test"), "/")
                .2
                .contains(want)
        },
    );
    (app, port)
}

#[test]
fn python_template_deploys_and_init_never_overwrites() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    let name = unique("tpy");
    let want = format!("{name} runs on kata (python)\n");
    let (app, port) = init_and_push(&kata, &caddy, "python", &name, &want);
    assert_eq!(caddy_get(port, &format!("{name}.test"), "/").2, want);
    assert_eq!(
        caddy_get(port, &format!("{name}.test"), "/healthz").2,
        "ok\n"
    );

    // A second init over the user's (changed) code refuses and writes nothing.
    app.write("app.py", "# mine\n");
    let refused = kata.arg("init").arg("python").arg(app.dir()).failure();
    assert!(
        refused
            .stderr
            .contains("kata-compose.yaml, app.py, requirements.txt already exist in"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(app.dir().join("app.py")).unwrap(),
        "# mine\n"
    );
}

/// The static runtime serves `root:` with busybox httpd; its Dockerfile uses
/// the base image's busybox when there is one, so the test builds it on the
/// local busybox image (the default Debian base would need apt, offline here).
#[test]
fn static_template_deploys() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--base-image", BUSYBOX]).success();
    let name = unique("tstatic");
    init_and_push(
        &kata,
        &caddy,
        "static",
        &name,
        "<h1>Deployed with kata</h1>",
    );
}

/// The nodejs and go runtime images install Debian's `nodejs`/`npm` and
/// `golang-go` into the base image when it lacks them (apt reaches Debian's
/// mirrors; no container registry is needed).
#[test]
fn nodejs_template_deploys_and_skips_an_unchanged_package_json() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    let name = unique("tnode");
    let want = format!("{name} runs on kata (nodejs)\n");
    let (app, port) = init_and_push(&kata, &caddy, "nodejs", &name, &want);

    let code = std::fs::read_to_string(app.dir().join("server.js")).unwrap();
    app.write(
        "server.js",
        &code.replace("runs on kata", "runs again on kata"),
    )
    .commit("again");
    let out = app.push_ok();
    assert!(
        out.stderr
            .contains("package.json unchanged; skipping npm install"),
        "{}",
        out.stderr
    );
    let again = format!("{name} runs again on kata (nodejs)\n");
    wait_for(
        "the new code through caddy",
        Duration::from_secs(60),
        || caddy_get(port, &format!("{name}.test"), "/").2 == again,
    );
}

#[test]
fn go_template_deploys() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    let name = unique("tgo");
    let want = format!("{name} runs on kata (go)\n");
    init_and_push(&kata, &caddy, "go", &name, &want);
}

/// A runtime image rebuilt for a new base image replaces the old one: once
/// the deploy has removed the old containers, no untagged copy is left.
/// Exclusive engine: no other test's container may hold an old image.
#[test]
fn rebuilt_runtime_images_leave_no_untagged_copies() {
    images::ensure_test_images();
    let _engine = engine_exclusive();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--base-image", DEBIAN]).success();
    let name = unique("trebuild");
    let (app, port) = init_and_push(&kata, &caddy, "static", &name, "Deployed with kata");

    kata.args(["setup", "--base-image", BUSYBOX]).success();
    app.write("public/index.html", "rebuilt\n")
        .commit("rebuilt");
    let out = app.push_ok();
    assert!(
        !out.stderr.contains("remote:        up to date"),
        "{}",
        out.stderr
    );
    wait_for("the rebuilt app", Duration::from_secs(60), || {
        caddy_get(port, &format!("{name}.test"), "/").2 == "rebuilt\n"
    });
    // the old container is retired in the background; its image goes after
    let dangling = || {
        docker_ok([
            "images",
            "--quiet",
            "--filter",
            "dangling=true",
            "--filter",
            "label=kata.runtime.hash",
        ])
    };
    wait_for(
        "no untagged runtime image left",
        Duration::from_secs(60),
        || dangling().trim().is_empty(),
    );
}

#[test]
fn templates_are_listed_and_unknown_ones_refused() {
    let kata = Kata::new();
    let out = kata.arg("templates").success();
    for name in ["python", "python-postgres", "nodejs", "go", "static"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing:\n{}",
            out.stdout
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let refused = kata
        .arg("init")
        .arg("rails")
        .arg(dir.path().join("app"))
        .failure();
    assert!(
        refused.stderr.contains("unknown template \"rails\""),
        "{}",
        refused.stderr
    );
    assert!(!dir.path().join("app").exists());
}
