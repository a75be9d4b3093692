//! Real `git push` into a test KATA_ROOT without sshd: `GIT_SSH_COMMAND`
//! points at a tiny wrapper that does what sshd's forced command does (set
//! `SSH_ORIGINAL_COMMAND`, run `kata ssh-serve`). The SSH path itself is
//! covered by `ssh_push`; these tests are about what a push deploys.

use super::{DockerGuard, Kata, Outcome, output_with_timeout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// An app being developed: a git work tree whose `kata` remote is the test
/// KATA_ROOT, plus guards that remove the app's containers when dropped.
pub struct LocalApp {
    pub name: String,
    work: TempDir,
    wrapper: PathBuf,
    env: Vec<(String, String)>,
    _guards: Vec<DockerGuard>,
}

impl LocalApp {
    /// A new work tree for app `name` pushing into `kata`'s root. Its compose
    /// project and stack are removed when this is dropped.
    pub fn new(kata: &Kata, name: &str) -> LocalApp {
        let work = tempfile::Builder::new()
            .prefix("kata-work-")
            .tempdir()
            .expect("create work tree dir");
        let wrapper = work.path().join(".fake-ssh");
        let script = format!(
            "#!/bin/sh\n# the last argument is the remote command, as sshd passes it\n\
             for last; do :; done\n\
             SSH_ORIGINAL_COMMAND=\"$last\" KATA_ROOT='{root}' exec '{bin}' ssh-serve --key SHA256:local-test --name local-test\n",
            root = kata.root().display(),
            bin = kata.bin().display(),
        );
        std::fs::write(&wrapper, script).expect("write fake ssh");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let app = LocalApp {
            name: name.to_owned(),
            work,
            wrapper,
            env: Vec::new(),
            _guards: vec![DockerGuard::project(name), DockerGuard::stack(name)],
        };
        app.git_ok(&["init", "-q", "-b", "main"]);
        app.git_ok(&["remote", "add", "kata", &format!("kata@local:{name}")]);
        app
    }

    /// An environment variable for pushes (reaches the hook, e.g. `KATA_COMPOSE`).
    pub fn push_env(mut self, key: &str, value: &str) -> LocalApp {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Writes `rel` in the work tree (creating parent dirs).
    pub fn write(&self, rel: &str, content: &str) -> &LocalApp {
        let p = self.work.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        self
    }

    /// Copies every file of a directory in the repository (e.g. an example).
    pub fn copy_from(&self, dir: &Path) -> &LocalApp {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), self.work.path().join(entry.file_name())).unwrap();
            }
        }
        self
    }

    pub fn remove(&self, rel: &str) -> &LocalApp {
        std::fs::remove_file(self.work.path().join(rel)).unwrap();
        self
    }

    /// `git add -A && git commit`.
    pub fn commit(&self, message: &str) -> &LocalApp {
        self.git_ok(&["add", "-A"]);
        self.git_ok(&["commit", "-q", "--allow-empty", "-m", message]);
        self
    }

    /// Commits a submodule entry at `path` (a gitlink to this repo's HEAD),
    /// as `git submodule add` leaves one, without fetching anything.
    pub fn commit_submodule(&self, path: &str, message: &str) -> &LocalApp {
        let head = self.git_ok(&["rev-parse", "HEAD"]);
        let entry = format!("160000,{},{path}", head.trim());
        self.git_ok(&["update-index", "--add", "--cacheinfo", &entry]);
        self.git_ok(&["commit", "-q", "-m", message]);
        self
    }

    /// `git push kata main`, whatever its exit status.
    pub fn push(&self) -> Outcome {
        self.push_ref("main")
    }

    /// `git push kata REFSPEC`, whatever its exit status.
    pub fn push_ref(&self, refspec: &str) -> Outcome {
        self.push_with(&[], refspec)
    }

    /// `git push -f OPTIONS... kata REFSPEC` (e.g. `-o verbose`), whatever its exit status.
    pub fn push_with(&self, options: &[&str], refspec: &str) -> Outcome {
        let mut args = vec!["push", "-f"];
        args.extend(options);
        args.extend(["kata", refspec]);
        let mut cmd = self.git(&args);
        cmd.env("GIT_SSH_COMMAND", &self.wrapper);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = output_with_timeout(&mut cmd, None, Duration::from_secs(600));
        Outcome {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `git push -f kata main` with `env` added and returns at once
    /// (its output is piped: `wait_with_output` collects it).
    pub fn push_spawn(&self, env: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = self.git(&["push", "-f", "kata", "main"]);
        cmd.env("GIT_SSH_COMMAND", &self.wrapper);
        for (k, v) in self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(env.iter().copied())
        {
            cmd.env(k, v);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start git push")
    }

    /// Pushes and panics (showing the push's output) unless it succeeds.
    pub fn push_ok(&self) -> Outcome {
        let o = self.push();
        assert!(
            o.status.success(),
            "git push of {} failed:\n{}\n{}",
            self.name,
            o.stdout,
            o.stderr
        );
        o
    }

    /// Pushes and panics unless the push fails.
    pub fn push_fails(&self) -> Outcome {
        let o = self.push();
        assert!(
            !o.status.success(),
            "git push of {} should have failed:\n{}\n{}",
            self.name,
            o.stdout,
            o.stderr
        );
        o
    }

    fn git(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("KATA_") || k.starts_with("GIT_") {
                cmd.env_remove(&key);
            }
        }
        cmd.args([
            "-c",
            "user.name=kata test",
            "-c",
            "user.email=test@kata.invalid",
        ])
        .args(args)
        .current_dir(self.work.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
        cmd
    }

    fn git_ok(&self, args: &[&str]) -> String {
        let out = output_with_timeout(&mut self.git(args), None, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Addresses (IPv4) of the running containers of `service` of `app`, found by
/// the labels kata puts on them (compose and swarm alike).
pub fn service_ips(app: &str, service: &str) -> Vec<String> {
    let ids = super::docker_ok([
        "ps",
        "-q",
        "--filter",
        &format!("label=kata.app={app}"),
        "--filter",
        &format!("label=kata.service={service}"),
    ]);
    let mut ips = Vec::new();
    for id in ids.split_whitespace() {
        // a container being retired may be gone by now
        let out = super::docker([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            id,
        ]);
        if !out.status.success() {
            continue;
        }
        if let Some(ip) = out.stdout.split_whitespace().next() {
            ips.push(ip.to_owned());
        }
    }
    ips.sort();
    ips
}

/// `GET path` from `addr` (`ip:port`); `None` when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Waits (up to `secs`) until `service` of `app` answers `path` on `port`
/// with 200, and returns the body.
pub fn wait_answer(app: &str, service: &str, port: u16, path: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut last = String::from("no container");
    loop {
        for ip in service_ips(app, service) {
            match http_get(&format!("{ip}:{port}"), path) {
                Some((200, body)) => return body,
                Some((status, body)) => last = format!("{ip}: {status} {body}"),
                None => last = format!("{ip}:{port}: no answer"),
            }
        }
        if std::time::Instant::now() > deadline {
            panic!("{app}/{service} did not answer {path} on port {port} within {secs}s: {last}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits (up to `secs`) until every running container of `service` of `app`
/// answers `path` on `port` with 200 and exactly `want` (e.g. after a
/// redeploy, until the new code serves). Panics with the last answer seen.
pub fn wait_body(app: &str, service: &str, port: u16, path: &str, want: &str, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut last = String::from("no container");
    loop {
        let ips = service_ips(app, service);
        let answers: Vec<Option<(u16, String)>> = ips
            .iter()
            .map(|ip| http_get(&format!("{ip}:{port}"), path))
            .collect();
        if !answers.is_empty()
            && answers
                .iter()
                .all(|a| matches!(a, Some((200, body)) if body == want))
        {
            return;
        }
        if !answers.is_empty() {
            last = format!("{ips:?}: {answers:?}");
        }
        if std::time::Instant::now() > deadline {
            panic!("{app}/{service} did not answer {path} with {want:?} within {secs}s: {last}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// IDs of the containers (all states) of `service` of `app`, by kata's labels.
pub fn container_ids(app: &str, service: &str) -> Vec<String> {
    super::docker_ok([
        "ps",
        "-aq",
        "--filter",
        &format!("label=kata.app={app}"),
        "--filter",
        &format!("label=kata.service={service}"),
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// `docker inspect -f FORMAT ID`, trimmed.
pub fn inspect(id: &str, format: &str) -> String {
    super::docker_ok(["inspect", "-f", format, id])
        .trim()
        .to_owned()
}

/// The kata-compose.yaml of a busybox httpd `web` service serving /app/www
/// (the app's code) with an HTTP health gate, routed by `host` on
/// 127.0.0.1:`port`. `command` is the service's command; `extra` holds more
/// service keys, each line indented by four spaces.
pub fn routed_httpd_yaml(command: &str, extra: &str, port: u16, host: &str) -> String {
    let image = super::images::BUSYBOX;
    format!(
        r#"services:
  web:
    image: {image}
    command: {command}
{extra}    volumes:
      - app:/app
    healthcheck:
      path: /index.html
      interval: 1
      attempts: 30
caddy:
  listen: ["127.0.0.1:{port}"]
  automatic_https: {{disable: true}}
  routes:
    - match: [{{host: ["{host}"]}}]
      handle:
        - handler: reverse_proxy
          upstreams: [{{dial: "web:8080"}}]
"#
    )
}
