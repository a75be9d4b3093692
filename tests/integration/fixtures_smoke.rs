//! The test support code works: temp roots, the kata runner, unique names,
//! ports, the copied binary, the test images and the Docker guards.

use crate::support::images::{BUSYBOX, ensure_test_images};
use crate::support::{
    DockerGuard, Kata, docker, docker_ok, free_port, is_valid_app_name, kata_bin_copy,
    output_with_timeout, unique, world_readable_tempdir,
};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SKELETON: [&str; 7] = ["app", "data", "config", "envs", "logs", "repos", "state"];

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[test]
fn setup_creates_the_skeleton_and_is_idempotent() {
    let k = Kata::new();
    let first = k.arg("setup").success();
    for dir in SKELETON {
        assert!(
            k.path(dir).is_dir(),
            "{dir} missing after setup:\n{}",
            first.stdout
        );
    }
    let second = k.arg("setup").success();
    for dir in SKELETON {
        let path = k.path(dir).display().to_string();
        assert!(
            second
                .stdout
                .lines()
                .any(|l| l.starts_with("exists") && l.trim_end().ends_with(&path)),
            "second setup does not say {path} exists:\n{}",
            second.stdout
        );
    }
}

#[test]
fn setup_persists_the_caddy_admin_endpoint() {
    let k = Kata::new();
    k.args(["setup", "--caddy-admin", "unix//run/x.sock"])
        .success();
    let again = k.arg("setup").success().stdout;
    assert!(
        again.contains("unix//run/x.sock"),
        "second setup does not print the stored endpoint:\n{again}"
    );
    // The environment overrides the stored setting.
    let env = k
        .arg("setup")
        .env("KATA_CADDY_ADMIN", "http://127.0.0.1:2999")
        .success();
    assert!(
        env.stdout.contains("http://127.0.0.1:2999"),
        "{}",
        env.stdout
    );
}

#[test]
fn setup_refuses_an_invalid_caddy_admin_and_writes_nothing() {
    let k = Kata::new();
    // the test root's own settings (its port range) are there before
    let before = files_under(k.root());
    let out = k
        .args(["setup", "--caddy-admin", "localhost:2019"])
        .failure();
    assert!(!out.stderr.trim().is_empty(), "no error message");
    let files = files_under(k.root());
    assert_eq!(files, before, "refused setup wrote files");
}

#[test]
fn kata_setup_constructor_gives_a_ready_root() {
    let k = Kata::setup();
    for dir in SKELETON {
        assert!(k.path(dir).is_dir(), "{dir} missing");
    }
}

#[test]
fn temp_roots_are_distinct_and_removed_on_drop() {
    let a = Kata::new();
    let b = Kata::new();
    assert_ne!(a.root(), b.root());
    let root = a.root().to_path_buf();
    assert!(root.is_dir());
    drop(a);
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn unique_names_are_distinct_and_valid() {
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| (0..250).map(|_| unique("smoke")).collect::<Vec<_>>()))
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        for name in h.join().unwrap() {
            assert!(is_valid_app_name(&name), "invalid name {name:?}");
            assert!(name.starts_with("smoke-"), "{name}");
            assert!(seen.insert(name.clone()), "duplicate {name}");
        }
    }
    assert_eq!(seen.len(), 2000);
    for prefix in [
        "",
        "-",
        "Weird_Prefix!",
        "a-very-long-prefix-that-goes-on-and-on-and-on",
    ] {
        let name = unique(prefix);
        assert!(is_valid_app_name(&name), "{prefix:?} gave {name:?}");
        assert!(name.len() <= 40, "{name:?} is long");
    }
    for bad in ["", "-a", "A", "a.b", "a/b", &"a".repeat(64)] {
        assert!(!is_valid_app_name(bad), "{bad:?}");
    }
}

#[test]
fn free_ports_can_be_bound() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the free port");
}

#[test]
fn kata_bin_copy_is_world_executable() {
    let dir = world_readable_tempdir("kata-bin-");
    let bin = kata_bin_copy(dir.path().join("bin"));
    let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "{}", bin.display());
    let dir_mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o755);
    let k = Kata::new().with_bin(&bin);
    let out = k.arg("--version").success();
    assert!(out.stdout.starts_with("kata "), "{}", out.stdout);
}

#[test]
fn runner_feeds_stdin_and_survives_descendants_holding_the_pipes() {
    let out = output_with_timeout(
        std::process::Command::new("cat").arg("-"),
        Some(b"abc"),
        Duration::from_secs(10),
    );
    assert_eq!(out.stdout, b"abc");
    // The shell exits at once; its background child keeps stdout open.
    let start = Instant::now();
    let out = output_with_timeout(
        std::process::Command::new("sh").args(["-c", "sleep 8 & echo hi"]),
        None,
        Duration::from_secs(10),
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hi\n");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
}

#[test]
#[should_panic(expected = "timed out")]
fn runner_kills_a_command_that_runs_too_long() {
    output_with_timeout(
        std::process::Command::new("sleep").arg("10"),
        None,
        Duration::from_millis(200),
    );
}

#[test]
fn busybox_container_runs() {
    ensure_test_images();
    let name = unique("smoke-run");
    let _guard = DockerGuard::container(&name);
    let out = docker_ok(["run", "--rm", "--name", &name, BUSYBOX, "echo", "hi"]);
    assert_eq!(out, "hi\n");
}

#[test]
fn docker_project_guard_removes_labelled_containers() {
    ensure_test_images();
    let project = unique("smoke-guard");
    let label = format!("com.docker.compose.project={project}");
    {
        let _guard = DockerGuard::project(&project);
        docker_ok([
            "run", "-d", "--label", &label, "--name", &project, BUSYBOX, "sleep", "300",
        ]);
        let listed = docker_ok(["ps", "-q", "--filter", &format!("label={label}")]);
        assert!(!listed.trim().is_empty(), "container not running");
    }
    let left = docker(["ps", "-aq", "--filter", &format!("label={label}")]);
    assert!(left.status.success());
    assert!(left.stdout.trim().is_empty(), "guard left {}", left.stdout);
}
