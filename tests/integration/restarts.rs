//! Routes that survive restarts: after a container restart, an engine
//! restart or another app's deploy, every app answers for itself or not at
//! all, with no kata command run. Real Docker, real Caddy (both versions).

use crate::support::caddy::{Caddy, on_both, try_http_get, wait_routed};
use crate::support::images::{self, BUSYBOX};
use crate::support::push::{LocalApp, routed_httpd_yaml};
use crate::support::{Kata, docker_ok, engine_shared, free_port, unique, wait_for};
use std::time::Duration;

/// A busybox httpd app on `host`, routed on 127.0.0.1:`port`. Touching
/// /tmp/crash inside the container makes it exit 1 (a crash its restart
/// policy answers).
fn yaml(port: u16, host: &str) -> String {
    routed_httpd_yaml(
        r#"["sh", "-c", "rm -f /tmp/crash; httpd -p 8080 -h /app/www; while [ ! -e /tmp/crash ]; do sleep 0.2; done; exit 1"]"#,
        "    restart: unless-stopped\n",
        port,
        host,
    )
}

fn push(app: &LocalApp, port: u16, host: &str, body: &str) {
    app.write("kata-compose.yaml", &yaml(port, host))
        .write("www/index.html", body)
        .commit(body);
    app.push_ok();
}

/// The app's one running container and the host port it holds now.
fn container_and_port(app: &str) -> (String, String) {
    let id = docker_ok(["ps", "-q", "--filter", &format!("label=kata.app={app}")]);
    let id = id
        .split_whitespace()
        .next()
        .expect("a running container")
        .to_owned();
    let port = docker_ok(["port", &id, "8080/tcp"]);
    (id, port.trim().to_owned())
}

/// Whatever answers `GET /` for `host`: never `forbidden`'s body.
fn answer(port: u16, host: &str) -> Option<(u16, String)> {
    try_http_get(port, host, "/").ok().map(|(s, _, b)| (s, b))
}

fn kata_with_caddy(caddy: &Caddy) -> Kata {
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    kata
}

#[test]
fn a_restarted_container_answers_for_itself_without_kata() {
    let _engine = engine_shared();
    images::ensure_test_images();
    on_both(|| {
        let caddy = Caddy::start();
        let kata = kata_with_caddy(&caddy);
        let app = LocalApp::new(&kata, &unique("rst"));
        let port = free_port();
        let host = "restart.test";
        push(&app, port, host, "one");
        // a blue/green switch: the new container holds the block's other port
        push(&app, port, host, "two");
        wait_routed(port, host, "two");
        assert_eq!(kata.route_of(&app.name), "ok");
        let (id, before) = container_and_port(&app.name);

        docker_ok(["restart", "-t", "1", &id]);
        wait_routed(port, host, "two");
        let (_, after) = container_and_port(&app.name);
        eprintln!("docker restart: {before} -> {after}");
        assert_eq!(kata.route_of(&app.name), "ok");

        // a crash, restarted by its policy
        docker_ok(["exec", &id, "touch", "/tmp/crash"]);
        wait_for(
            "the container to be restarted",
            Duration::from_secs(60),
            || docker_ok(["inspect", "--format", "{{.RestartCount}}", &id]).trim() != "0",
        );
        wait_routed(port, host, "two");
        assert_eq!(kata.route_of(&app.name), "ok");
    });
}

#[test]
fn a_stopped_app_never_answers_with_the_next_apps_content() {
    let _engine = engine_shared();
    images::ensure_test_images();
    on_both(|| {
        let caddy = Caddy::start();
        let kata = kata_with_caddy(&caddy);
        let a = LocalApp::new(&kata, &unique("stopa"));
        let b = LocalApp::new(&kata, &unique("stopb"));
        let (pa, pb) = (free_port(), free_port());
        push(&a, pa, "a.test", "I am A");
        wait_routed(pa, "a.test", "I am A");
        kata.args(["stop", &a.name]).success();
        push(&b, pb, "b.test", "I am B");
        wait_routed(pb, "b.test", "I am B");
        for _ in 0..20 {
            if let Some((status, body)) = answer(pa, "a.test") {
                assert_ne!(body, "I am B", "A's route answered with B's content");
                assert_ne!(status, 200, "a stopped app answered: {body:?}");
            }
        }
        let route = kata.route_of(&a.name);
        assert!(
            route.starts_with("broken: no container answers on 127.0.0.1:"),
            "{route}"
        );
        assert_eq!(kata.route_of(&b.name), "ok");
        kata.args(["start", &a.name]).success();
        wait_routed(pa, "a.test", "I am A");
        wait_routed(pb, "b.test", "I am B");
    });
}

#[test]
fn a_removed_apps_route_left_while_caddy_was_down_goes_on_the_next_sync() {
    let _engine = engine_shared();
    images::ensure_test_images();
    let mut caddy = Caddy::start_with(crate::support::caddy::Opts::default().persist());
    let kata = kata_with_caddy(&caddy);
    let a = LocalApp::new(&kata, &unique("gone"));
    let pa = free_port();
    push(&a, pa, "gone.test", "gone app");
    wait_routed(pa, "gone.test", "gone app");
    caddy.stop();
    // removing the app while Caddy is down cannot delete its route
    let out = kata.args(["rm", &a.name, "--force"]).success();
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("could not remove its Caddy routes"), "{said}");
    caddy.restart_resume();
    assert!(
        caddy
            .config()
            .to_string()
            .contains(&format!("kata.{}", a.name))
    );
    let out = kata.arg("caddy:sync").success();
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("no longer exists"), "{said}");
    assert!(
        !caddy
            .config()
            .to_string()
            .contains(&format!("kata.{}", a.name)),
        "{:#}",
        caddy.config()
    );
}

/// A Docker engine of the test's own, in the test's network namespace, with
/// its own data, exec root and socket: restarting it touches no other test.
struct PrivateEngine {
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateEngine {
    fn start() -> PrivateEngine {
        let dir = std::path::PathBuf::from(format!("/tmp/kpe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = PrivateEngine { dir, child: None };
        e.spawn();
        e
    }

    fn socket(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .unwrap();
        let child = std::process::Command::new("dockerd")
            .arg("-H")
            .arg(self.socket())
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("x"))
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start a private dockerd");
        self.child = Some(child);
        wait_for(
            "the private dockerd to answer",
            Duration::from_secs(60),
            || crate::support::docker(["info"]).code() == Some(0),
        );
    }

    /// Stops the engine (its containers stop with it) and starts it again.
    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(c.id());
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while c.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let ids = crate::support::docker(["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = crate::support::docker(["rm", "-f", id]);
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn after_an_engine_restart_each_app_answers_for_itself() {
    // The engine is the test's own, in a network namespace the test makes
    // (as root: dockerd needs it): the host's engine is never restarted.
    crate::support::caddy::rerun_unshared(
        "restarts::engine_restart_in_a_namespace",
        "-n",
        "ip link set lo up",
        "KATA_TEST_PRIVATE_ENGINE",
    );
}

#[test]
#[ignore = "run by after_an_engine_restart_each_app_answers_for_itself, in a namespace"]
fn engine_restart_in_a_namespace() {
    assert!(
        std::env::var_os("KATA_TEST_PRIVATE_ENGINE").is_some(),
        "runs only inside its own network namespace"
    );
    let host_engine = "unix:///var/run/docker.sock";
    let mut engine = PrivateEngine::start();
    // SAFETY: the test runs alone in its own process (--test-threads=1).
    unsafe { std::env::set_var("DOCKER_HOST", engine.socket()) };
    let image = format!("{}/busybox.tar", engine.dir.display());
    let saved = std::process::Command::new("docker")
        .args(["-H", host_engine, "save", "-o", &image, BUSYBOX])
        .status()
        .unwrap();
    assert!(
        saved.success(),
        "docker save {BUSYBOX} from the host's engine"
    );
    docker_ok(["load", "-i", &image]);

    for bin in [
        crate::support::caddy::DEBIAN,
        crate::support::caddy::CURRENT,
    ] {
        crate::support::caddy::with_bin(bin, || {
            let caddy = Caddy::start();
            let kata = kata_with_caddy(&caddy);
            let a = LocalApp::new(&kata, &unique("enga"));
            let b = LocalApp::new(&kata, &unique("engb"));
            let (pa, pb) = (free_port(), free_port());
            push(&a, pa, "a.test", "A one");
            // A's second container holds the other port of its block
            push(&a, pa, "a.test", "A two");
            push(&b, pb, "b.test", "B one");
            wait_routed(pa, "a.test", "A two");
            wait_routed(pb, "b.test", "B one");
            let before = [container_and_port(&a.name).1, container_and_port(&b.name).1];

            engine.restart();
            wait_for(
                "both apps' containers to run again",
                Duration::from_secs(90),
                || {
                    [&a.name, &b.name].iter().all(|app| {
                        !docker_ok(["ps", "-q", "--filter", &format!("label=kata.app={app}")])
                            .trim()
                            .is_empty()
                    })
                },
            );
            // each answers for itself, never for the other, with no kata command
            wait_for("both apps to answer again", Duration::from_secs(60), || {
                let ok_a = answer(pa, "a.test");
                let ok_b = answer(pb, "b.test");
                assert!(
                    ok_a.as_ref().is_none_or(|(_, body)| !body.starts_with('B')),
                    "A answered {ok_a:?}"
                );
                assert!(
                    ok_b.as_ref().is_none_or(|(_, body)| !body.starts_with('A')),
                    "B answered {ok_b:?}"
                );
                ok_a.is_some_and(|(s, body)| s == 200 && body == "A two")
                    && ok_b.is_some_and(|(s, body)| s == 200 && body == "B one")
            });
            let after = [container_and_port(&a.name).1, container_and_port(&b.name).1];
            eprintln!("engine restart ({bin}): ports {before:?} -> {after:?}");
            assert_eq!(kata.route_of(&a.name), "ok");
            assert_eq!(kata.route_of(&b.name), "ok");
        });
    }
}
