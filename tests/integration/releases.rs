//! Releases, health-gated blue/green deploys and rollback, through a real
//! Caddy and a real Docker engine.

use crate::support::caddy::{Caddy, http_get};
use crate::support::images::{self, BUSYBOX};
use crate::support::push::LocalApp;
use crate::support::{Kata, docker_ok, engine_shared, free_port, unique, wait_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const HOST: &str = "app.test";

/// A busybox httpd app routed by Caddy on `port`; `health` is the path kata
/// checks before the switch, `attempts` how often.
fn web_yaml(port: u16, health: &str, attempts: u32) -> String {
    app_yaml(port, health, attempts, "")
}

/// [`web_yaml`] with more services (YAML text indented under `services:`).
fn app_yaml(port: u16, health: &str, attempts: u32, more: &str) -> String {
    format!(
        r#"services:
  web:
    image: {BUSYBOX}
    command: httpd -f -p 8080 -h /app/www
    volumes:
      - app:/app
    healthcheck:
      path: {health}
      interval: 1
      attempts: {attempts}
{more}caddy:
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

struct Fixture {
    kata: Kata,
    caddy: Caddy,
    port: u16,
    app: LocalApp,
}

fn fixture(prefix: &str, compose: &str) -> Fixture {
    images::ensure_test_images();
    let caddy = Caddy::start();
    let mut kata = Kata::setup();
    kata.set_env("KATA_COMPOSE", compose);
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let app = LocalApp::new(&kata, &unique(prefix)).push_env("KATA_COMPOSE", compose);
    Fixture {
        kata,
        caddy,
        port: free_port(),
        app,
    }
}

impl Fixture {
    fn body(&self) -> (u16, String) {
        let (status, _, body) = http_get(self.port, HOST, "/");
        (status, body)
    }

    fn push_version(&self, text: &str) -> crate::support::Outcome {
        self.app
            .write(
                "kata-compose.yaml",
                &web_yaml(self.port, "/health.html", 30),
            )
            .write("www/index.html", text)
            .write("www/health.html", "ok")
            .commit(text);
        let out = self.app.push_ok();
        assert_eq!(self.body(), (200, text.to_owned()));
        out
    }

    fn releases(&self) -> serde_json::Value {
        let out = self
            .kata
            .args(["releases", &self.app.name, "--json"])
            .success();
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn statuses(&self) -> Vec<(u64, String)> {
        self.releases()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["number"].as_u64().unwrap(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// GETs through Caddy in a loop until stopped; returns (requests, failures).
fn load(
    port: u16,
    allowed: &'static [&'static str],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u32, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut n, mut bad) = (0u32, vec![]);
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            match std::panic::catch_unwind(|| http_get(port, HOST, "/")) {
                Ok((200, _, body)) if allowed.contains(&body.as_str()) => {}
                Ok((status, _, body)) => bad.push(format!("{status} {body:?}")),
                Err(_) => bad.push("connection failed".into()),
            }
        }
        (n, bad)
    })
}

fn switch_fail_and_roll_back(compose: &str) {
    let _engine = engine_shared();
    let f = fixture("rel", compose);
    let out = f.push_version("one");
    assert!(
        !out.stderr.contains("blue/green"),
        "nothing to switch from: {}",
        out.stderr
    );

    // A redeploy under load: every request gets an answer, old or new.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(f.port, &["one", "two"], stop.clone());
    let out = f.push_version("two");
    assert!(out.stderr.contains("(blue/green: web)"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("retiring 1 old container(s) in the background"),
        "{}",
        out.stderr
    );
    stop.store(true, Ordering::SeqCst);
    let (requests, failures) = loader.join().unwrap();
    assert!(requests > 0);
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed during the switch: {failures:?}",
        failures.len()
    );
    assert_eq!(
        f.statuses(),
        vec![(1, "superseded".into()), (2, "live".into())]
    );
    // The detached retirer holds the app's lock while the old container
    // (busybox httpd ignores SIGTERM) waits out its grace period, and says
    // so to a push that comes meanwhile.
    let lock_file = f.kata.path(format!("state/locks/{}.lock", f.app.name));
    wait_for(
        "the retirer to take the lock",
        Duration::from_secs(60),
        || std::fs::read_to_string(&lock_file).is_ok_and(|t| t.contains("is retiring")),
    );

    // A release whose health check fails never takes traffic.
    f.app
        .write("kata-compose.yaml", &web_yaml(f.port, "/missing.html", 2))
        .write("www/index.html", "broken")
        .commit("broken");
    let out = f.app.push_fails();
    assert!(
        out.stderr.contains(&format!(
            "waiting: release 2 of {} is retiring the old containers",
            f.app.name
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("failed its health check"),
        "{}",
        out.stderr
    );
    // Only the new container is left: the old one was retired.
    let count = || {
        docker_ok([
            "ps",
            "-aq",
            "--filter",
            &format!("label=kata.app={}", f.app.name),
        ])
        .split_whitespace()
        .count()
    };
    wait_for(
        "the old container to be retired",
        Duration::from_secs(60),
        || count() == 1,
    );
    assert!(
        out.stderr
            .contains("/missing.html answered 404, expected 200"),
        "{}",
        out.stderr
    );
    assert_eq!(f.body(), (200, "two".to_owned()));
    assert_eq!(f.statuses().last().unwrap(), &(3, "failed".to_owned()));
    let ids = docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label=kata.app={}", f.app.name),
    ]);
    assert_eq!(
        ids.split_whitespace().count(),
        1,
        "the failed release's container is removed: {ids}"
    );

    // Rollback goes to the release before the live one, as a new release.
    let out = f.kata.args(["rollback", &f.app.name]).success();
    assert!(
        out.stdout.contains("Rolling") || out.stderr.contains("Rolling"),
        "{out:?}"
    );
    assert_eq!(f.body(), (200, "one".to_owned()));
    let rels = f.releases();
    let last = rels.as_array().unwrap().last().unwrap();
    assert_eq!(last["status"], "live");
    assert_eq!(last["note"], "rollback to 1");
    assert_eq!(last["number"], 4);

    // And to an explicit release.
    f.kata.args(["rollback", &f.app.name, "2"]).success();
    assert_eq!(f.body(), (200, "two".to_owned()));
    // Failed and unknown releases are refused, and nothing changes.
    let err = f.kata.args(["rollback", &f.app.name, "3"]).failure();
    assert!(err.stderr.contains("never went live"), "{}", err.stderr);
    let err = f.kata.args(["rollback", &f.app.name, "99"]).failure();
    assert!(err.stderr.contains("has no release 99"), "{}", err.stderr);
    assert_eq!(f.body(), (200, "two".to_owned()));

    let table = f.kata.args(["releases", &f.app.name]).success().stdout;
    assert!(table.starts_with("RELEASE  STATUS"), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("live"), "{table}");
    drop(f.caddy);
}

#[test]
fn switch_fail_and_roll_back_v2() {
    switch_fail_and_roll_back("v2");
}

#[test]
fn switch_fail_and_roll_back_v1() {
    switch_fail_and_roll_back("v1");
}

/// A database-like service (not routed) keeps its container and its data
/// across three deploys of the routed web service.
#[test]
fn data_service_survives_three_deploys() {
    let _engine = engine_shared();
    let f = fixture("db", "v2");
    f.kata.args(["setup", "--keep-releases", "2"]).success();
    // Writes a timestamp once: a restart with a fresh data dir would differ.
    let db = format!(
        "  db:\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"[ -f /data/db.txt ] || date +%s%N > /data/db.txt; exec sleep 100000\"]\n    volumes:\n      - data:/data\n"
    );
    let db_id = |app: &str| {
        docker_ok([
            "ps",
            "-q",
            "--filter",
            &format!("label=kata.app={app}"),
            "--filter",
            "label=kata.service=db",
        ])
        .trim()
        .to_owned()
    };
    let mut first: Option<(String, String)> = None;
    for text in ["one", "two", "three"] {
        f.app
            .write(
                "kata-compose.yaml",
                &app_yaml(f.port, "/health.html", 30, &db),
            )
            .write("www/index.html", text)
            .write("www/health.html", "ok")
            .commit(text);
        f.app.push_ok();
        assert_eq!(f.body(), (200, text.to_owned()));
        let id = db_id(&f.app.name);
        assert!(!id.is_empty(), "db is running");
        let data_file = f.kata.path(format!("data/{}/db.txt", f.app.name));
        wait_for("db to write its data", Duration::from_secs(10), || {
            data_file.exists()
        });
        let data = std::fs::read_to_string(&data_file).unwrap();
        match &first {
            None => first = Some((id, data)),
            Some((id0, data0)) => {
                assert_eq!(&id, id0, "db was restarted by the deploy of {text}");
                assert_eq!(&data, data0, "db data changed");
            }
        }
    }
    // Only the newest two releases are kept (the live one and one before),
    // once the deploy's cleanup (after the background retirement) ran.
    wait_for("old releases to be pruned", Duration::from_secs(60), || {
        f.statuses()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<u64>>()
            == [2, 3]
    });
    let dirs = std::fs::read_dir(f.kata.path(format!("state/apps/{}/releases", f.app.name)))
        .unwrap()
        .count();
    assert_eq!(dirs, 2);
}
