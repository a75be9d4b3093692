//! What a push shows and keeps: Heroku-style steps with indented output,
//! the deploy log behind `kata releases APP --log N`, verbose mode, and a
//! hung docker engine failing the push within its time limit.

use crate::support::caddy::Caddy;
use crate::support::images::{self, BUSYBOX};
use crate::support::push::LocalApp;
use crate::support::{Kata, engine_shared, free_port, unique};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const HOST: &str = "out.test";

fn web_yaml(port: u16) -> String {
    format!(
        r#"services:
  web:
    image: {BUSYBOX}
    command: httpd -f -p 8080 -h /app/www
    volumes:
      - app:/app
    healthcheck:
      path: /index.html
caddy:
  listen: ["127.0.0.1:{port}"]
  automatic_https: {{disable: true}}
  routes:
    - match: [{{host: ["{HOST}"]}}]
      handle:
        - handler: reverse_proxy
          upstreams: [{{dial: "web:8080"}}]
"#
    )
}

/// Snapshot filters for what changes from run to run.
fn filters(app: &str, port: u16, caddy: &str) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(app, "[app]");
    settings.add_filter(&format!(r"\b{port}\b"), "[port]");
    settings.add_filter(&regex_escape(caddy), "[caddy]");
    settings.add_filter(r"\b[0-9a-f]{7,40}\b", "[hash]");
    settings.add_filter(r"\(\d+ s of \d+ s\)", "([n] s of [n] s)");
    settings.add_filter(r"\d+ attempts in \d+ s", "[n] attempts in [n] s");
    settings
}

/// Only kata's side of a push (git's own lines name local refs).
fn remote_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("remote:"))
        .map(str::trim_end)
        .collect();
    lines.join("\n")
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn push_transcript_log_and_verbose_v2() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let mut kata = Kata::setup();
    kata.set_env("KATA_COMPOSE", "v2");
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let name = unique("out");
    let port = free_port();
    let app = LocalApp::new(&kata, &name).push_env("KATA_COMPOSE", "v2");
    app.write("kata-compose.yaml", &web_yaml(port))
        .write("www/index.html", "one")
        .commit("one");
    let first = app.push_ok();
    app.write("www/index.html", "two").commit("two");
    let second = app.push_ok();

    for out in [&first, &second] {
        assert!(!out.stderr.contains('\r'), "{}", out.stderr);
        assert!(!out.stderr.contains('\x1b'), "{}", out.stderr);
    }
    filters(&name, port, caddy.endpoint()).bind(|| {
        insta::assert_snapshot!("first_push", remote_lines(&first.stderr));
        insta::assert_snapshot!("second_push", remote_lines(&second.stderr));
    });

    // The full log of each deploy is kept, with compose's own output.
    let log = kata
        .args(["releases", &name, "--log", "2"])
        .success()
        .stdout;
    assert!(log.contains("-----> Preparing release 2 of"), "{log}");
    assert!(log.contains("$ docker compose -p"), "{log}");
    assert!(log.contains("-----> Release 2 of"), "{log}");
    assert!(
        std::fs::metadata(kata.path(format!("logs/{name}/deploy-1.log"))).is_ok(),
        "release 1's log is kept"
    );
    let missing = kata.args(["releases", &name, "--log", "9"]).failure();
    assert!(
        missing.stderr.contains("release 9 of") && missing.stderr.contains("no deploy log"),
        "{}",
        missing.stderr
    );

    // `git push -o verbose` shows every command and its output as printed.
    let verbose = LocalApp::new(&kata, &unique("outv")).push_env("KATA_COMPOSE", "v2");
    verbose
        .write("kata-compose.yaml", &web_yaml(free_port()))
        .write("www/index.html", "v")
        .commit("v");
    let out = verbose.push_with(&["-o", "verbose"], "main");
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("remote:        $ docker compose -p")
            && !second.stderr.contains("$ docker compose"),
        "{}",
        out.stderr
    );
    // ... and KATA_VERBOSE=1 does for an admin's command.
    let out = kata
        .args(["deploy", &name])
        .env("KATA_VERBOSE", "1")
        .success();
    assert!(
        out.stdout.contains("       $ docker compose -p"),
        "{}",
        out.stdout
    );
}

/// A docker "engine" that accepts connections and never answers: what a
/// hung dockerd looks like to the docker CLI.
struct HungEngine {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl HungEngine {
    fn start() -> HungEngine {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = vec![];
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(conn.ok());
            }
        });
        HungEngine {
            path,
            stop,
            _dir: dir,
        }
    }
    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

impl Drop for HungEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
    }
}

#[test]
fn hung_engine_fails_the_push_within_its_limit_and_frees_the_lock() {
    let engine = HungEngine::start();
    let kata = Kata::setup();
    kata.args(["setup", "--docker-timeout", "2"]).success();
    let name = unique("hung");
    let app = LocalApp::new(&kata, &name).push_env("DOCKER_HOST", &engine.host());
    app.write(
        "kata-compose.yaml",
        &format!("services:\n  web:\n    image: {BUSYBOX}\n    command: sleep 1000\n"),
    )
    .commit("hung");
    let out = app.push_fails();
    assert!(
        out.stderr.contains("remote: error: deploy of")
            && out.stderr.contains("`docker info")
            && out.stderr.contains("did not finish within 2 s")
            && out.stderr.contains("kata setup --docker-timeout SECS"),
        "{}",
        out.stderr
    );

    // The hook is gone and its lock with it: the next deploy may take it.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(kata.path(format!("state/locks/{name}.lock")))
        .unwrap();
    lock.try_lock().expect("the app's deploy lock is free");
    drop(lock);

    // The failure is recorded, in the release and in its deploy log.
    let releases = kata.args(["releases", &name]).success().stdout;
    assert!(releases.contains("failed"), "{releases}");
    let log = kata
        .args(["releases", &name, "--log", "1"])
        .success()
        .stdout;
    assert!(
        log.contains("error: `docker info") && log.contains("did not finish within 2 s"),
        "{log}"
    );

    // A long call's limit is its own setting (here from the environment).
    let out = kata
        .args(["setup", "--build-timeout", "5"])
        .env("KATA_DOCKER_TIMEOUT", "3")
        .success()
        .stdout;
    assert!(
        out.contains("time limits:   docker 3 s, build 5 s, start 180 s, drain 30 s"),
        "{out}"
    );
}

#[test]
fn the_health_wait_says_what_it_waits_for() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let mut kata = Kata::setup();
    kata.set_env("KATA_COMPOSE", "v2");
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let name = unique("wait");
    let port = free_port();
    let app = LocalApp::new(&kata, &name).push_env("KATA_COMPOSE", "v2");
    app.write("kata-compose.yaml", &web_yaml(port))
        .write("www/index.html", "one")
        .commit("one");
    app.push_ok();

    // The new version takes 7 s to answer.
    let slow_start = web_yaml(port).replace(
        "command: httpd -f -p 8080 -h /app/www",
        "command: sh -c 'sleep 7 && exec httpd -f -p 8080 -h /app/www'",
    );
    app.write("kata-compose.yaml", &slow_start)
        .write("www/index.html", "two")
        .commit("two");
    let out = app.push_ok();
    // the first progress line comes once 5 s have passed (6 s, or later, on
    // a busy machine)
    let prefix = format!(
        "remote:        waiting for service web (container {name}-web-2) to answer /index.html ("
    );
    let waited: Vec<u64> = out
        .stderr
        .lines()
        .filter_map(|l| {
            l.trim_end()
                .strip_prefix(&prefix)?
                .strip_suffix(" s of 30 s)")
        })
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        waited.first().is_some_and(|&n| (5..30).contains(&n)),
        "{waited:?}\n{}",
        out.stderr
    );
}
