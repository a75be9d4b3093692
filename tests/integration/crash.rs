//! Deploys killed with SIGKILL at each step (`KATA_TEST_PAUSE_AT` stops
//! kata there), then the next command recovers: a real Docker engine, a real
//! Caddy, busybox httpd apps. Each test checks the containers, the release
//! records, what Caddy routes to, and what the push itself reported.
//!
//! The swarm-mode kill points run on a single-node swarm of a private
//! dockerd (`PrivateDockerd::swarm`), each test in a namespace of its own:
//! the host's engine never becomes a swarm manager.

use crate::support::caddy::{Caddy, http_get};
use crate::support::images::{self, BUSYBOX};
use crate::support::private_dockerd;
use crate::support::push::{LocalApp, routed_httpd_yaml};
use crate::support::{Kata, docker_ok, free_port, unique, wait_for};
use std::time::Duration;

const HOST: &str = "crash.test";

fn web_yaml(port: u16) -> String {
    routed_httpd_yaml("httpd -f -p 8080 -h /app/www", "", port, HOST)
}

struct Fixture {
    kata: Kata,
    _caddy: Caddy,
    port: u16,
    app: LocalApp,
}

fn fixture(prefix: &str) -> Fixture {
    if !private_dockerd::inside() {
        images::ensure_test_images(); // the outer test checked the host's
    }
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let app = LocalApp::new(&kata, &unique(prefix));
    let port = free_port();
    let f = Fixture {
        kata,
        _caddy: caddy,
        port,
        app,
    };
    f.commit("v1");
    f.app.push_ok();
    assert_eq!(f.body(), "v1");
    f
}

impl Fixture {
    fn commit(&self, text: &str) {
        self.app
            .write("kata-compose.yaml", &web_yaml(self.port))
            .write("www/index.html", text)
            .commit(text);
    }

    fn body(&self) -> String {
        let (status, _, body) = http_get(self.port, HOST, "/");
        assert_eq!(status, 200, "{body}");
        body
    }

    fn statuses(&self) -> Vec<(u64, String)> {
        let out = self
            .kata
            .args(["releases", &self.app.name, "--json"])
            .success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v.as_array()
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

    /// Every container of the app as `(id, state)`.
    fn containers(&self) -> Vec<(String, String)> {
        let out = docker_ok([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=kata.app={}", self.app.name),
            "--format",
            "{{.ID}} {{.State}}",
        ]);
        let mut v: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        v.sort();
        v
    }

    /// `kata CMD APP ARGS...` for `next` = `[CMD, ARGS...]`, which must
    /// succeed: its stdout and stderr together (where recovery reports).
    fn next_command(&self, next: &[&str]) -> String {
        let mut args = next.to_vec();
        args.insert(1, &self.app.name);
        let out = self.kata.args(&args).success();
        format!("{}{}", out.stdout, out.stderr)
    }

    /// Pushes v2 with kata stopped at `step`, SIGKILLs the paused process
    /// and returns the push's outcome (code, stderr).
    fn push_killed_at(&self, step: &str) -> (Option<i32>, String) {
        self.commit("v2");
        self.push_committed_killed_at(step)
    }

    /// [`Fixture::push_killed_at`] with what is committed now.
    fn push_committed_killed_at(&self, step: &str) -> (Option<i32>, String) {
        let marker = self.kata.path("state/test-paused");
        let child = self.app.push_spawn(&[("KATA_TEST_PAUSE_AT", step)]);
        wait_for(
            &format!("kata to pause at {step}"),
            Duration::from_secs(120),
            || marker.is_file(),
        );
        let text = std::fs::read_to_string(&marker).unwrap();
        let (pid, at) = text.trim().split_once(' ').unwrap();
        assert_eq!(at, step);
        let pid: i32 = pid.parse().unwrap();
        // SAFETY: kill(2) on a pid this test's push started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        std::fs::remove_file(&marker).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Killed before the switch: the push fails, `kata restart` undoes the
/// release (its containers removed, marked failed), v1 serves.
fn undone_at(step: &str) {
    let f = fixture(&format!("crash-{step}"));
    let v1 = f.containers();
    let (code, stderr) = f.push_killed_at(step);
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let all = f.next_command(&["restart"]);
    assert!(
        all.contains(&format!("release 2 was interrupted at {step}; undone")),
        "{all}"
    );
    assert_eq!(f.statuses(), vec![(1, "live".into()), (2, "failed".into())]);
    assert_eq!(f.containers(), v1, "only release 1's container is left");
    assert_eq!(f.body(), "v1");
    // and the app deploys again, with a fresh release number
    f.commit("v3");
    f.app.push_ok();
    assert_eq!(f.body(), "v3");
    assert_eq!(f.statuses()[2], (3, "live".into()));
}

/// Killed after the switch may have happened: the next command finishes
/// the release (live, routed, the old container retired).
fn finished_at(step: &str, next: &[&str]) {
    let f = fixture(&format!("crash-{step}"));
    let v1 = f.containers();
    let (code, stderr) = f.push_killed_at(step);
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    let all = f.next_command(next);
    assert!(
        all.contains(&format!(
            "release 2 was interrupted at {step} after the switch; finished it"
        )),
        "{all}"
    );
    let live = if next == ["deploy"] { 3 } else { 2 };
    let statuses = f.statuses();
    assert_eq!(
        statuses.iter().find(|(_, s)| s == "live").map(|(n, _)| *n),
        Some(live),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[1],
        (2, if live == 2 { "live" } else { "superseded" }.into())
    );
    assert_eq!(f.body(), "v2", "never rolled back to v1");
    wait_for(
        "the old container to be retired",
        Duration::from_secs(60),
        || one_running_other_than(&f.containers(), &v1),
    );
}

#[test]
fn killed_while_building_is_undone() {
    undone_at("build");
}

#[test]
fn killed_after_starting_the_new_container_is_undone() {
    undone_at("gate");
}

#[test]
fn killed_during_the_switch_is_routed_and_finished() {
    finished_at("switch-caddy", &["restart"]);
}

#[test]
fn killed_before_recording_live_is_finished_by_kata_deploy() {
    finished_at("record-live", &["deploy"]);
}

/// The background retirer killed at `step`: the push itself succeeded
/// (traffic moved); `next` finishes the retirement.
fn retirer_killed_at(step: &str, next: &[&str]) {
    let f = fixture(&format!("crash-{step}"));
    let v1 = f.containers();
    let (code, stderr) = f.push_killed_at(step);
    assert_eq!(code, Some(0), "the switch happened:\n{stderr}");
    assert_eq!(f.body(), "v2");
    assert_eq!(
        f.statuses(),
        vec![(1, "superseded".into()), (2, "live".into())]
    );
    let all = f.next_command(next);
    assert!(
        all.contains(&format!("interrupted at {step} after the switch")),
        "{all}"
    );
    assert!(one_running_other_than(&f.containers(), &v1));
    assert_eq!(f.body(), "v2");
}

#[test]
fn a_retirer_killed_while_draining_is_finished_by_config_set() {
    retirer_killed_at("drain", &["config:set", "A=1", "--no-deploy"]);
}

#[test]
fn a_retirer_killed_before_stopping_is_finished_by_restart() {
    retirer_killed_at("retire-old", &["restart"]);
}

#[test]
fn killed_before_the_new_containers_start_is_undone() {
    undone_at("start-new");
}

/// Exactly one container, running, and not one of `old`.
fn one_running_other_than(now: &[(String, String)], old: &[(String, String)]) -> bool {
    now.len() == 1 && now[0].1 == "running" && !old.iter().any(|(id, _)| *id == now[0].0)
}

/// A routed service with a stopped leftover container: every deploy used
/// to leave one more stopped container behind.
#[test]
fn a_stopped_leftover_is_not_multiplied_by_deploys() {
    let f = fixture("crash-leftover");
    let name = &f.app.name;
    docker_ok([
        "create",
        "--label",
        &format!("kata.app={name}"),
        "--label",
        "kata.service=web",
        "--label",
        "kata.release=1",
        "--label",
        &format!("com.docker.compose.project={name}"),
        "--label",
        "com.docker.compose.service=web",
        BUSYBOX,
        "true",
    ]);
    for text in ["v2", "v3"] {
        let before: Vec<(String, String)> = f
            .containers()
            .into_iter()
            .filter(|(_, state)| state == "running")
            .collect();
        f.commit(text);
        let out = f.app.push_ok();
        assert!(!out.stderr.contains("could not remove"), "{}", out.stderr);
        assert_eq!(f.body(), text);
        wait_for("one container left", Duration::from_secs(60), || {
            one_running_other_than(&f.containers(), &before)
        });
    }
}

/// A release directory without its `release.json` (a deploy that died in
/// its export) and one whose `release.json` is cut short: named in a clear
/// warning, skipped by the numbering, pruned; pushes, config changes and
/// rollbacks go on working.
#[test]
fn damaged_release_records_never_stick_the_app() {
    let f = fixture("crash-damaged");
    let name = f.app.name.clone();
    let releases = f.kata.path(format!("state/apps/{name}/releases"));
    std::fs::create_dir_all(releases.join("2/src/www")).unwrap();
    std::fs::write(releases.join("2/src/www/index.html"), "half").unwrap();
    std::fs::create_dir_all(releases.join("3")).unwrap();
    std::fs::write(releases.join("3/release.json"), "{\"number\": 3, \"comm").unwrap();
    let out = f.kata.args(["releases", &name]).success();
    assert!(
        out.stderr.contains("releases/2/release.json")
            && out.stderr.contains("releases/3/release.json is damaged"),
        "{}",
        out.stderr
    );
    let e = f.kata.args(["rollback", &name, "3"]).failure();
    assert!(
        e.stderr.contains("releases/3/release.json is damaged"),
        "{}",
        e.stderr
    );
    f.commit("v2");
    let out = f.app.push_ok();
    assert!(
        out.stderr.contains("release 2 is damaged and is skipped"),
        "{}",
        out.stderr
    );
    assert_eq!(f.body(), "v2");
    assert_eq!(
        f.statuses(),
        vec![(1, "superseded".into()), (4, "live".into())],
        "number 4, never a damaged one's"
    );
    // pruned by the deploy's cleanup (after the background retirement)
    wait_for(
        "the damaged dirs to be pruned",
        Duration::from_secs(60),
        || !releases.join("2").exists() && !releases.join("3").exists(),
    );
    f.kata.args(["config:set", &name, "A=1"]).success();
    assert_eq!(f.statuses().last().unwrap(), &(5, "live".into()));
    f.kata.args(["rollback", &name, "1"]).success();
    assert_eq!(f.body(), "v1");
}

/// Disk full for real: the app's state on a 4 MB tmpfs. A push too big for
/// it fails with the disk's error, its release is marked failed and its
/// code removed (the space comes back), and the next push deploys.
#[test]
fn a_release_that_fills_the_disk_fails_and_gives_the_space_back() {
    images::ensure_test_images();
    let caddy = Caddy::start();
    let kata = Kata::new();
    let state = kata.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs (the tests run as root)");
    let _umount = crate::support::Cleanup::new({
        let state = state.clone();
        move || {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&state)
                .status();
        }
    });
    kata.arg("setup").success();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let app = LocalApp::new(&kata, &unique("crash-full"));
    let f = Fixture {
        kata,
        _caddy: caddy,
        port: free_port(),
        app,
    };
    f.commit("v1");
    f.app.push_ok();
    assert_eq!(f.body(), "v1");
    let free = || {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&state)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = free();
    // 6 MB of pseudo-random hex: more than the disk holds
    let mut x: u64 = 1;
    let big: String = (0..6 * 1024 * 1024 / 16)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("{x:016x}")
        })
        .collect();
    f.app.write("www/big.txt", &big);
    f.commit("v2");
    let out = f.app.push_fails();
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert_eq!(f.body(), "v1");
    assert_eq!(f.statuses(), vec![(1, "live".into()), (2, "failed".into())]);
    assert!(
        free() + 64 * 1024 >= before,
        "the failed release's code is removed: {} free, {before} before",
        free()
    );
    f.app.remove("www/big.txt");
    f.commit("v3");
    f.app.push_ok();
    assert_eq!(f.body(), "v3");
    assert_eq!(f.statuses().last().unwrap(), &(3, "live".into()));
}

/// Runs `crash::<inner>` on a single-node swarm of a private dockerd.
fn on_a_private_swarm(inner: &str) {
    private_dockerd::rerun_on_a_swarm(&format!("crash::{inner}"));
}

impl Fixture {
    /// The release whose code the stack's web service is specified to
    /// mount (its code volume `<app>_app_r<n>`), and the release each of its
    /// running task containers mounts.
    fn stack_releases(&self) -> (String, Vec<String>) {
        let name = &self.app.name;
        let spec = docker_ok([
            "service",
            "inspect",
            &format!("{name}_web"),
            "--format",
            "{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{.Source}} {{end}}",
        ]);
        let ids = docker_ok([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.stack.namespace={name}"),
        ]);
        let running = ids
            .split_whitespace()
            .map(|id| {
                let mounts = docker_ok([
                    "inspect",
                    "--format",
                    "{{range .Mounts}}{{.Name}} {{end}}",
                    id,
                ]);
                release_mounted(&mounts)
            })
            .collect();
        (release_mounted(&spec), running)
    }

    /// Release `n` is recorded live, the stack runs its spec (one task,
    /// converged) and Caddy routes every request to it, serving `body`.
    fn assert_swarm_serves(&self, n: u64, body: &str) {
        let statuses = self.statuses();
        assert!(
            !statuses.iter().any(|(_, s)| s == "pending"),
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().find(|(_, s)| s == "live").map(|(n, _)| *n),
            Some(n),
            "{statuses:?}"
        );
        assert_eq!(self.stack_releases().0, n.to_string(), "the service's spec");
        // a replaced task's container may still be in its stop grace period
        let want = (n.to_string(), vec![n.to_string()]);
        wait_for(
            &format!("release {n}'s task alone to run"),
            Duration::from_secs(60),
            || self.stack_releases() == want,
        );
        for _ in 0..20 {
            assert_eq!(self.body(), body, "every request reaches release {n}");
        }
    }
}

/// A swarm deploy killed before the switch: the push fails, the next
/// command for the app (`config:set --no-deploy`: recovery alone) undoes
/// it. The stack runs release 1's spec again, Caddy routes to its task, and
/// the app deploys again.
fn swarm_undone_at(step: &str) {
    let f = fixture(&format!("swcrash-{step}"));
    f.assert_swarm_serves(1, "v1");
    let (code, stderr) = f.push_killed_at(step);
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    if step == "gate" {
        // swarm carries on without kata: the next command finds the stack
        // updated to release 2 and its old task gone
        let v2 = ("2".to_owned(), vec!["2".to_owned()]);
        wait_for("the stack to converge", Duration::from_secs(60), || {
            f.stack_releases() == v2
        });
        // another container takes the address release 1's task had, as a
        // freed address goes to the next container: a route left at it
        // would reach that container
        docker_ok([
            "run",
            "-d",
            "--network",
            "docker_gwbridge",
            BUSYBOX,
            "sh",
            "-c",
            "mkdir /w && echo someone else > /w/index.html && exec httpd -f -p 8080 -h /w",
        ]);
    }
    let all = f.next_command(&["config:set", "A=1", "--no-deploy"]);
    assert!(
        all.contains(&format!("release 2 was interrupted at {step}; undone")),
        "{all}"
    );
    assert_eq!(f.statuses(), vec![(1, "live".into()), (2, "failed".into())]);
    f.assert_swarm_serves(1, "v1");
    f.commit("v3");
    f.app.push_ok();
    f.assert_swarm_serves(3, "v3");
}

/// A swarm deploy killed once Caddy may route to the new task: `next`
/// finishes it (`kata deploy` then deploys it again as release 3).
fn swarm_finished_at(step: &str, next: &[&str]) {
    let f = fixture(&format!("swcrash-{step}"));
    let (code, stderr) = f.push_killed_at(step);
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let all = f.next_command(next);
    assert!(
        all.contains(&format!(
            "release 2 was interrupted at {step} after the switch; finished it"
        )),
        "{all}"
    );
    let live = if next == ["deploy"] { 3 } else { 2 };
    f.assert_swarm_serves(live, "v2");
    assert_eq!(
        f.statuses()[1],
        (2, if live == 2 { "live" } else { "superseded" }.into())
    );
}

#[test]
fn swarm_killed_while_building_is_undone() {
    on_a_private_swarm("swarm_build_inner");
}

#[test]
#[ignore = "run by swarm_killed_while_building_is_undone on a private swarm"]
fn swarm_build_inner() {
    swarm_undone_at("build");
}

#[test]
fn swarm_killed_before_the_stack_deploy_is_undone() {
    on_a_private_swarm("swarm_start_new_inner");
}

#[test]
#[ignore = "run by swarm_killed_before_the_stack_deploy_is_undone on a private swarm"]
fn swarm_start_new_inner() {
    swarm_undone_at("start-new");
}

#[test]
fn swarm_killed_while_the_stack_converges_is_undone() {
    on_a_private_swarm("swarm_gate_inner");
}

#[test]
#[ignore = "run by swarm_killed_while_the_stack_converges_is_undone on a private swarm"]
fn swarm_gate_inner() {
    swarm_undone_at("gate");
}

#[test]
fn swarm_killed_during_the_switch_is_routed_and_finished() {
    on_a_private_swarm("swarm_switch_inner");
}

#[test]
#[ignore = "run by swarm_killed_during_the_switch_is_routed_and_finished on a private swarm"]
fn swarm_switch_inner() {
    swarm_finished_at("switch-caddy", &["config:set", "A=1", "--no-deploy"]);
}

#[test]
fn swarm_killed_before_recording_live_is_finished_by_kata_deploy() {
    on_a_private_swarm("swarm_record_live_inner");
}

#[test]
#[ignore = "run by swarm_killed_before_recording_live_is_finished_by_kata_deploy on a private swarm"]
fn swarm_record_live_inner() {
    swarm_finished_at("record-live", &["deploy"]);
}

#[test]
fn swarm_killed_while_cleaning_up_is_finished() {
    on_a_private_swarm("swarm_cleanup_inner");
}

#[test]
#[ignore = "run by swarm_killed_while_cleaning_up_is_finished on a private swarm"]
fn swarm_cleanup_inner() {
    swarm_finished_at("cleanup", &["config:set", "A=1", "--no-deploy"]);
}

/// `<n>` of the code volume `…_app_r<n>` among space-separated mounts.
fn release_mounted(mounts: &str) -> String {
    mounts
        .split_whitespace()
        .find_map(|m| m.rsplit_once("_app_r").map(|(_, n)| n))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn swarm_first_deploy_killed_while_converging_is_removed() {
    on_a_private_swarm("swarm_first_deploy_inner");
}

/// An app's first swarm deploy killed while the stack converges: nothing
/// to go back to, so the next command removes the stack (no task left
/// running for a release that never went live), and the app deploys again.
#[test]
#[ignore = "run by swarm_first_deploy_killed_while_converging_is_removed on a private swarm"]
fn swarm_first_deploy_inner() {
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let f = Fixture {
        app: LocalApp::new(&kata, &unique("swcrash-first")),
        kata,
        _caddy: caddy,
        port: free_port(),
    };
    let (code, stderr) = f.push_killed_at("gate");
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    wait_for("the stack to converge", Duration::from_secs(60), || {
        f.stack_releases().1 == ["1"]
    });
    let all = f.next_command(&["config:set", "A=1", "--no-deploy"]);
    assert!(
        all.contains("release 1 was interrupted at gate; undone"),
        "{all}"
    );
    assert_eq!(f.statuses(), vec![(1, "failed".into())]);
    let stacks = docker_ok(["stack", "ls", "--format", "{{.Name}}"]);
    assert!(!stacks.lines().any(|s| s == f.app.name), "{stacks}");
    let left = docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.stack.namespace={}", f.app.name),
    ]);
    assert_eq!(left.trim(), "", "no container of the stack is left");
    f.commit("v3");
    f.app.push_ok();
    f.assert_swarm_serves(2, "v3");
}

#[test]
fn swarm_killed_while_swarm_rolls_back_is_undone() {
    on_a_private_swarm("swarm_rolled_back_inner");
}

/// Killed while the stack converges on a release that fails its health
/// check: swarm rolls the service back on its own, and the next command
/// still undoes the release (swarm's rollback is where it wanted to go)
/// instead of failing on it forever.
#[test]
#[ignore = "run by swarm_killed_while_swarm_rolls_back_is_undone on a private swarm"]
fn swarm_rolled_back_inner() {
    let f = fixture("swcrash-rolled");
    f.app.remove("www/index.html").commit("unhealthy");
    let (code, stderr) = f.push_committed_killed_at("gate");
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    let web = format!("{}_web", f.app.name);
    wait_for("swarm to roll back", Duration::from_secs(180), || {
        docker_ok([
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            &web,
        ])
        .trim()
            == "rollback_completed"
    });
    let all = f.next_command(&["config:set", "A=1", "--no-deploy"]);
    assert!(
        all.contains("release 2 was interrupted at gate; undone"),
        "{all}"
    );
    assert_eq!(f.statuses(), vec![(1, "live".into()), (2, "failed".into())]);
    f.assert_swarm_serves(1, "v1");
}

/// A push that changes the app's mode from compose to swarm, killed while
/// the stack converges (the compose containers already taken down): the
/// next command removes the stack and brings release 1 back in compose
/// mode, routed; a later push deploys in swarm mode.
#[test]
fn a_mode_change_killed_while_the_stack_converges_is_undone() {
    on_a_private_swarm("mode_change_gate_inner");
}

#[test]
#[ignore = "run by a_mode_change_killed_while_the_stack_converges_is_undone on a private swarm"]
fn mode_change_gate_inner() {
    mode_change_killed_at("gate", Mode::Compose);
}

/// The same change killed as its start begins, before the compose
/// containers were touched: undone, release 1 goes on serving.
#[test]
fn a_mode_change_killed_before_the_old_mode_is_taken_down_is_undone() {
    on_a_private_swarm("mode_change_start_new_inner");
}

#[test]
#[ignore = "run by a_mode_change_killed_before_the_old_mode_is_taken_down_is_undone on a private swarm"]
fn mode_change_start_new_inner() {
    mode_change_killed_at("start-new", Mode::Compose);
}

/// The other way, swarm to compose, killed at the gate (the stack already
/// removed, the compose container up): the next command removes the
/// compose container and deploys release 1's stack again, routed.
#[test]
fn a_mode_change_from_swarm_killed_at_the_gate_is_undone() {
    on_a_private_swarm("mode_change_from_swarm_gate_inner");
}

#[test]
#[ignore = "run by a_mode_change_from_swarm_killed_at_the_gate_is_undone on a private swarm"]
fn mode_change_from_swarm_gate_inner() {
    mode_change_killed_at("gate", Mode::Swarm);
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Compose,
    Swarm,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Compose => "compose",
            Mode::Swarm => "swarm",
        }
    }

    fn other(self) -> Mode {
        match self {
            Mode::Compose => Mode::Swarm,
            Mode::Swarm => Mode::Compose,
        }
    }
}

/// Release 1 in mode `from`; release 2 in the other mode, killed at `step`;
/// the next command undoes it and release 1 serves in `from` again; release
/// 3 then deploys in the other mode.
fn mode_change_killed_at(step: &str, from: Mode) {
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    let port = free_port();
    let f = Fixture {
        app: LocalApp::new(&kata, &unique("modecrash")),
        kata,
        _caddy: caddy,
        port,
    };
    let name = f.app.name.clone();
    let commit_in = |mode: Mode, text: &str| {
        f.app
            .write(
                "kata-compose.yaml",
                &format!("{}x-kata-mode: {}\n", web_yaml(port), mode.name()),
            )
            .write("www/index.html", text)
            .commit(text);
    };
    let stacks = || docker_ok(["stack", "ls", "--format", "{{.Name}}"]);
    let compose_containers = || {
        docker_ok([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={name}"),
        ])
    };
    commit_in(from, "v1");
    f.app.push_ok();
    assert_eq!(f.body(), "v1");
    let v1 = f.containers();
    commit_in(from.other(), "v2");
    let (code, stderr) = f.push_committed_killed_at(step);
    assert_ne!(code, Some(0), "a killed deploy fails the push:\n{stderr}");
    let change = format!(
        "Mode changes from {} to {}",
        from.name(),
        from.other().name()
    );
    // the change is announced as the old mode is taken down
    assert_eq!(stderr.contains(&change), step != "start-new", "{stderr}");
    let all = f.next_command(&["config:set", "A=1", "--no-deploy"]);
    assert!(
        all.contains(&format!("release 2 was interrupted at {step}; undone")),
        "{all}"
    );
    assert_eq!(f.statuses(), vec![(1, "live".into()), (2, "failed".into())]);
    match from {
        Mode::Compose => {
            assert!(!stacks().lines().any(|s| s == name), "{}", stacks());
            let now = f.containers();
            assert_eq!(now.len(), 1, "one compose container: {now:?}");
            assert!(now[0].1 == "running", "{now:?}");
            if step == "start-new" {
                assert_eq!(now, v1, "release 1's container was never touched");
            } else {
                assert_ne!(now, v1, "release 1's container was started again");
            }
            for _ in 0..20 {
                assert_eq!(f.body(), "v1");
            }
        }
        Mode::Swarm => {
            assert!(
                compose_containers().trim().is_empty(),
                "{}",
                compose_containers()
            );
            assert!(stacks().lines().any(|s| s == name), "{}", stacks());
            f.assert_swarm_serves(1, "v1");
        }
    }
    commit_in(from.other(), "v3");
    f.app.push_ok();
    match from.other() {
        Mode::Swarm => f.assert_swarm_serves(3, "v3"),
        Mode::Compose => {
            assert!(!stacks().lines().any(|s| s == name), "{}", stacks());
            for _ in 0..20 {
                assert_eq!(f.body(), "v3");
            }
        }
    }
}
