//! A Docker engine of the test's own: `dockerd` with its own data-root,
//! exec-root and socket, in a network namespace the test creates, so its
//! bridges, iptables rules and settings (e.g. a tiny
//! `--default-address-pool`) never touch the host's engine or its networks.
//! It can be a single-node swarm too ([`PrivateDockerd::swarm`]): every
//! swarm-mode test runs on one, so the host's engine never becomes a swarm
//! manager.
//! `nsenter --net` rather than `ip netns exec`: the latter mounts a fresh
//! /sys without the cgroup mounts dockerd needs.

use super::{Outcome, unique};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct PrivateDockerd {
    ns: String,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateDockerd {
    /// Starts the engine with `args` added (e.g. `--default-address-pool
    /// base=...,size=...`); the default bridge gets a fixed subnet of its own
    /// so that it takes nothing from the pool. Panics with the engine's log
    /// when it does not answer within 90 s.
    pub fn start(args: &[&str]) -> PrivateDockerd {
        let ns = unique("kns");
        run_ok(Command::new("ip").args(["netns", "add", &ns]));
        let dir = tempfile::Builder::new()
            .prefix("kata-dockerd-")
            .tempdir()
            .expect("temp dir");
        let mut me = PrivateDockerd {
            ns,
            dir,
            child: None,
        };
        run_ok(me.nsenter("ip").args(["link", "set", "lo", "up"]));
        // as on a kata host: Caddy's reloads hand queued connections over
        run_ok(
            me.nsenter("sysctl")
                .args(["-qw", "net.ipv4.tcp_migrate_req=1"]),
        );
        let d = me.dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let mut cmd = me.nsenter("dockerd");
        cmd.arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
            .arg(format!("--host={}", me.host()))
            .arg("--bip=10.213.0.1/24")
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        me.child = Some(cmd.spawn().expect("spawn dockerd"));
        let deadline = Instant::now() + Duration::from_secs(90);
        while !me.docker(["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not answer within 90 s:\n{}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        me
    }

    /// [`PrivateDockerd::start`], then makes the engine a single-node swarm
    /// manager advertising its namespace's loopback address (the only one
    /// the namespace has); the swarm goes with the engine.
    pub fn swarm(args: &[&str]) -> PrivateDockerd {
        let me = PrivateDockerd::start(args);
        let init = me.docker(["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(
            init.status.success(),
            "docker swarm init on the private dockerd: {}\n{}",
            init.stderr,
            me.log()
        );
        me
    }

    /// `unix://…/docker.sock`: its `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// The network namespace it runs in.
    pub fn netns(&self) -> &str {
        &self.ns
    }

    /// `program` run inside the engine's network namespace.
    pub fn nsenter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns)).arg(program);
        c
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `docker ARGS` against this engine.
    pub fn docker<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker");
        Outcome {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Copies `image` from the host's engine into this one.
    pub fn load_image(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load");
        assert!(save.wait().unwrap().success(), "docker save {image}");
        assert!(
            load.status.success(),
            "docker load {image}: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// Runs the ignored test `test` of this binary again inside the
    /// engine's network namespace with `DOCKER_HOST` set to it (so kata, its
    /// health gates and the test's own requests all reach its containers),
    /// and fails when it fails.
    pub fn rerun(&self, test: &str) {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = self.nsenter(&exe);
        cmd.env("DOCKER_HOST", self.host())
            .env("KATA_TEST_PRIVATE_DOCKERD", "1");
        super::run_inner_test(cmd, test, || {
            format!("on a private dockerd\n--- dockerd log ---\n{}", self.log())
        });
    }
}

/// Runs the ignored test `test` on a single-node swarm of a private dockerd
/// of its own (with the busybox test image): what every swarm-mode test
/// does, so that the host's engine never becomes a swarm manager.
pub fn rerun_on_a_swarm(test: &str) {
    super::images::ensure_test_images();
    let engine = PrivateDockerd::swarm(&[]);
    engine.load_image(super::images::BUSYBOX);
    engine.rerun(test);
}

/// Whether this process is a test run by [`PrivateDockerd::rerun`].
pub fn inside() -> bool {
    std::env::var_os("KATA_TEST_PRIVATE_DOCKERD").is_some()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        // a swarm would start its tasks' containers again
        let _ = self.docker(["swarm", "leave", "--force"]);
        let ids = self.docker(["ps", "-aq"]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.docker(args);
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the dockerd we spawned; no memory involved.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // mounts a killed engine left behind, innermost first
        let root = self.dir.path();
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let mut under: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .filter(|m| Path::new(m).starts_with(root))
                .collect();
            under.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in under {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
