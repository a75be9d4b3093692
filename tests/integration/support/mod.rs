//! Test fixtures: a temp KATA_ROOT with a builder-style command runner, free
//! loopback ports, unique names, and guards that clean Docker up on drop.
//!
//! Every test gets its own KATA_ROOT, its own names (`unique`) and its own
//! loopback ports (`free_port`), so tests run in parallel threads and in
//! parallel processes without seeing each other.
#![allow(dead_code)]

pub mod caddy;
pub mod images;
pub mod private_dockerd;
pub mod push;
pub mod sshd;

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// Variables that would change what kata does; never inherited by a test's
/// kata process (any other `KATA_*` variable is cleared as well).
pub const LEAKY_ENV: &[&str] = &[
    "KATA_CADDY_ADMIN",
    "KATA_BASE_IMAGE",
    "KATA_DEPLOY_BRANCH",
    "KATA_KEEP_RELEASES",
    "SSH_ORIGINAL_COMMAND",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
];

/// How long one kata command may run before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The kata binary cargo built for this test run.
pub fn kata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kata"))
}

/// A path inside the repository (e.g. `examples/python-hello/kata-compose.yaml`).
pub fn repo_path(rel: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller).
/// It comes from outside the kernel's ephemeral range, so no outgoing
/// connection takes it while a test's container or Caddy rebinds it
/// between deploys (a port from `bind(0)` was taken that way on a busy
/// machine), and outside the ports kata publishes (`unique_port_range`).
pub fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let candidates: Vec<u16> = (30000..=65535u16)
        .filter(|p| !(low..=high).contains(p))
        .collect();
    // one walk per process from a random start: the ports handed out here
    // never repeat (Caddy binds with SO_REUSEPORT, so two tests given one
    // port would share it instead of failing)
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() % 65536
    });
    for _ in 0..candidates.len() {
        let i = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % candidates.len() as u64;
        let port = candidates[i as usize];
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A name no other call returns, in this process or any other running at the
/// same time: `<prefix>-<pid>-<counter>-<random>`. It is a valid kata app name
/// (`^[a-z0-9][a-z0-9_-]{0,62}$`), a valid compose project / stack name and a
/// DNS label. The prefix is lower-cased, other characters become `-`, and it
/// is cut to 16 characters so the name stays short (swarm service names are
/// `<stack>_<service>` and must fit in 63).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut clean: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(16)
        .collect();
    let clean_trimmed = clean.trim_start_matches('-').to_owned();
    clean = if clean_trimmed.is_empty() {
        "t".to_owned()
    } else {
        clean_trimmed
    };
    let mut h = RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u32(std::process::id());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut r = h.finish();
    let mut suffix = String::new();
    for _ in 0..4 {
        let d = (r % 36) as u32;
        suffix.push(char::from_digit(d, 36).expect("base 36 digit"));
        r /= 36;
    }
    let mut name = clean;
    write!(name, "-{}-{n}-{suffix}", std::process::id()).expect("write to String");
    name
}

/// A port range for one test's KATA_ROOT (kata publishes routed services
/// on it): 20 ports in 10000-19999, taken in turn from a start that differs
/// per process, so tests running at the same time on one Docker engine do not
/// share ports (kata's own default range is a host's, 20000-29999).
pub fn unique_port_range() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() % 500
    });
    let slot = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 500;
    let first = 10000 + slot * 20;
    format!("{first}-{}", first + 19)
}

/// Writes a fresh KATA_ROOT's settings file with its own port range.
fn own_port_range(root: &Path) {
    let dir = root.join("state");
    std::fs::create_dir_all(&dir).expect("create state dir");
    std::fs::write(
        dir.join("settings.json"),
        format!("{{\"port_range\": \"{}\"}}\n", unique_port_range()),
    )
    .expect("write settings.json");
}

/// Whether `name` is a valid kata app name: `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn is_valid_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// A temp dir anyone may enter and read (mode 0755) under /tmp, for files a
/// second user (sshd's test user, a container) must reach. Removed on drop.
pub fn world_readable_tempdir(prefix: &str) -> TempDir {
    let base = Path::new("/tmp");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("create temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 temp dir");
    dir
}

/// Copies the kata binary to `dir/kata` with mode 0755 (and makes `dir`
/// 0755): the repository may sit under a 0700 home, and sshd's forced command
/// runs as a separate test user who must be able to execute it.
pub fn kata_bin_copy(dir: impl AsRef<Path>) -> PathBuf {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    let dest = dir.join("kata");
    let tmp = dir.join(format!(".kata.{}.tmp", std::process::id()));
    std::fs::copy(kata_bin(), &tmp)
        .unwrap_or_else(|e| panic!("copy kata to {}: {e}", tmp.display()));
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.display()));
    std::fs::rename(&tmp, &dest).unwrap_or_else(|e| panic!("rename to {}: {e}", dest.display()));
    dest
}

/// Runs the ignored test `test` of this binary with `cmd` (a prefix such as
/// `unshare …` or `nsenter …`, the binary its last argument), and fails
/// with `context()` (read after the run) and the output when it does not
/// pass. The inner test's
/// stderr (what it measured) is echoed.
pub fn run_inner_test(mut cmd: Command, test: &str, context: impl FnOnce() -> String) {
    let out = cmd
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the inner test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !(out.status.success() && stdout.contains("1 passed")) {
        panic!(
            "{test} {} failed ({}):\n{stdout}\n{stderr}",
            context(),
            out.status
        );
    }
    eprint!("{stderr}");
}

/// Polls `check` every 100 ms until it returns true; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Running processes

/// What a finished command left: its status and its output as text.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn from_output(o: Output) -> Outcome {
        Outcome {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Panics, showing `what` and the output, unless it succeeded.
    pub fn assert_ok(&self, what: &str) {
        assert!(self.status.success(), "{}", describe(what, self));
    }
}

fn describe(what: &str, o: &Outcome) -> String {
    format!(
        "{what}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        o.status, o.stdout, o.stderr
    )
}

/// Reads a child's pipe on a thread into a shared buffer, so that what was
/// read can be taken even while a descendant still holds the pipe open.
struct PipeReader {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl PipeReader {
    fn start(pipe: Option<impl Read + Send + 'static>) -> PipeReader {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        if let Some(mut pipe) = pipe {
            let buf = Arc::clone(&buf);
            thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                let _ = tx.send(());
            });
        }
        PipeReader { buf, done }
    }

    /// Waits for the end of the pipe until `deadline`, then returns what was read.
    fn finish(self, deadline: Instant) -> Vec<u8> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = self.done.recv_timeout(wait);
        std::mem::take(&mut *self.buf.lock().unwrap())
    }
}

/// Runs `cmd` to completion with `stdin` (or /dev/null), capturing stdout and
/// stderr; kills it and panics with what it printed after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let out = PipeReader::start(child.stdout.take());
    let err = PipeReader::start(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait for killed child");
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    // A descendant that outlives the child may hold the pipes open: give the
    // readers a moment, then go on with what they have read.
    let grace = Instant::now() + Duration::from_secs(2);
    let output = Output {
        status,
        stdout: out.finish(grace),
        stderr: err.finish(grace),
    };
    if timed_out {
        let o = Outcome::from_output(output);
        panic!(
            "{}",
            describe(&format!("timed out after {timeout:?}: {what}"), &o)
        );
    }
    output
}

/// Runs `docker ARGS` (no stdin, 300 s at most).
pub fn docker<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("docker");
    cmd.args(args);
    Outcome::from_output(output_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT))
}

/// Runs `docker ARGS`, panics unless it succeeds, returns its stdout.
pub fn docker_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let o = docker(&args);
    if !o.status.success() {
        panic!("{}", describe(&format!("docker {args:?} failed"), &o));
    }
    o.stdout
}

// ---------------------------------------------------------------------------
// The kata runner

/// A kata installation for one test: a temp KATA_ROOT (removed on drop) and
/// the binary to run. Commands are built with [`Kata::cmd`] or any builder
/// method (`arg`, `args`, `env`, `stdin`, `current_dir`), e.g.
///
/// ```ignore
/// let k = Kata::setup();
/// let out = k.args(["config:set", "app", "A=1"]).success();
/// let err = k.arg("rm").failure();
/// ```
pub struct Kata {
    root: TempDir,
    bin: PathBuf,
    env: Vec<(OsString, OsString)>,
}

impl Default for Kata {
    fn default() -> Self {
        Kata::new()
    }
}

impl Kata {
    /// The ROUTE column `kata ls --json` shows for `app` (empty when the
    /// app is not listed).
    pub fn route_of(&self, app: &str) -> String {
        let out = self.args(["ls", "--json"]).success();
        let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == app)
            .map(|r| r["route"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// A fresh, empty KATA_ROOT in the system temp dir (nothing is set up).
    pub fn new() -> Kata {
        let root = tempfile::Builder::new()
            .prefix("kata-root-")
            .tempdir()
            .expect("create temp KATA_ROOT");
        own_port_range(root.path());
        Kata {
            root,
            bin: kata_bin(),
            env: Vec::new(),
        }
    }

    /// A fresh KATA_ROOT under `parent` (e.g. a [`world_readable_tempdir`]).
    pub fn new_in(parent: impl AsRef<Path>) -> Kata {
        let root = tempfile::Builder::new()
            .prefix("kata-root-")
            .tempdir_in(parent)
            .expect("create temp KATA_ROOT");
        own_port_range(root.path());
        Kata {
            root,
            bin: kata_bin(),
            env: Vec::new(),
        }
    }

    /// [`Kata::new`] followed by a successful `kata setup`.
    pub fn setup() -> Kata {
        let k = Kata::new();
        k.arg("setup").success();
        k
    }

    /// Runs a different kata binary (e.g. a [`kata_bin_copy`]).
    pub fn with_bin(mut self, bin: impl Into<PathBuf>) -> Kata {
        self.bin = bin.into();
        self
    }

    /// An environment variable for every command this fixture runs.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Kata {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `root/rel`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Writes `config/<app>/ENV` as an admin would before the first push
    /// (e.g. the port the app's Caddy server listens on: never :80 in a test).
    pub fn write_app_config(&self, app: &str, env: &str) {
        std::fs::create_dir_all(self.path(format!("config/{app}"))).unwrap();
        std::fs::write(self.path(format!("config/{app}/ENV")), env).unwrap();
    }

    /// A new command: `kata` with no arguments yet, run in the root.
    pub fn cmd(&self) -> KataCmd<'_> {
        KataCmd {
            kata: self,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn arg(&self, arg: impl AsRef<OsStr>) -> KataCmd<'_> {
        self.cmd().arg(arg)
    }

    pub fn args<I, S>(&self, args: I) -> KataCmd<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args)
    }

    pub fn env(&self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> KataCmd<'_> {
        self.cmd().env(key, value)
    }

    pub fn stdin(&self, bytes: impl Into<Vec<u8>>) -> KataCmd<'_> {
        self.cmd().stdin(bytes)
    }

    pub fn current_dir(&self, dir: impl AsRef<Path>) -> KataCmd<'_> {
        self.cmd().current_dir(dir)
    }
}

/// One kata invocation being built. By default it runs in the KATA_ROOT,
/// with stdin from /dev/null, `KATA_ROOT` set, every other `KATA_*` (and the
/// [`LEAKY_ENV`] list) cleared, and a [`DEFAULT_TIMEOUT`].
pub struct KataCmd<'a> {
    kata: &'a Kata,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl KataCmd<'_> {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `std::process::Command` this would run (for tests that need to
    /// spawn it themselves, e.g. to follow logs).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.kata.bin);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KATA_") {
                cmd.env_remove(&key);
            }
        }
        for key in LEAKY_ENV {
            cmd.env_remove(key);
        }
        cmd.env("KATA_ROOT", self.kata.root());
        for (k, v) in &self.kata.env {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.current_dir(self.cwd.as_deref().unwrap_or(self.kata.root()));
        cmd
    }

    fn describe_cmd(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|a| a.to_string_lossy()).collect();
        format!(
            "kata {}   (KATA_ROOT={})",
            args.join(" "),
            self.kata.root().display()
        )
    }

    /// Runs it and returns the raw output, whatever the exit status.
    pub fn run(self) -> Output {
        let mut cmd = self.command();
        output_with_timeout(&mut cmd, self.stdin.as_deref(), self.timeout)
    }

    /// Runs it and returns the outcome, whatever the exit status.
    pub fn outcome(self) -> Outcome {
        Outcome::from_output(self.run())
    }

    /// Runs it; panics (printing stdout and stderr) unless it exits 0.
    pub fn success(self) -> Outcome {
        let what = self.describe_cmd();
        let o = self.outcome();
        if !o.status.success() {
            panic!("{}", describe(&format!("expected success: {what}"), &o));
        }
        o
    }

    /// Runs it; panics (printing stdout and stderr) unless it exits non-zero.
    pub fn failure(self) -> Outcome {
        let what = self.describe_cmd();
        let o = self.outcome();
        if o.status.success() || o.status.code().is_none() {
            panic!("{}", describe(&format!("expected failure: {what}"), &o));
        }
        o
    }

    /// Runs it; panics unless it exits with exactly `code`.
    pub fn code(self, code: i32) -> Outcome {
        let what = self.describe_cmd();
        let o = self.outcome();
        if o.status.code() != Some(code) {
            panic!(
                "{}",
                describe(&format!("expected exit code {code}: {what}"), &o)
            );
        }
        o
    }
}

// ---------------------------------------------------------------------------
// Cleanup guards

/// Runs a closure when dropped, also when the test panics.
pub struct Cleanup(Option<Box<dyn FnOnce() + Send>>);

impl Cleanup {
    pub fn new(f: impl FnOnce() + Send + 'static) -> Cleanup {
        Cleanup(Some(Box::new(f)))
    }
    /// Drops the guard without running it.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DockerKind {
    Project,
    Stack,
    Container,
}

/// Removes Docker resources when dropped, tolerating every error. Create it
/// before the resources, so that a failing test cleans up too:
/// - `project(NAME)`: the compose project's containers, networks and volumes
///   (compose v1 and v2 label them alike);
/// - `stack(NAME)`: `docker stack rm NAME`, waiting (bounded) until its
///   containers are gone, then its networks;
/// - `container(NAME)`: `docker rm -fv NAME`.
pub struct DockerGuard {
    kind: DockerKind,
    name: String,
}

/// Quiet `docker ARGS`: output discarded, errors ignored.
fn docker_quiet(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// IDs listed by a quiet `docker ... -q` query.
fn docker_ids(args: &[&str]) -> Vec<String> {
    docker_quiet(args)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn remove_labelled(label: &str) {
    let filter = format!("label={label}");
    let containers = docker_ids(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-fv"];
        args.extend(containers.iter().map(String::as_str));
        docker_quiet(&args);
    }
    for id in docker_ids(&["network", "ls", "-q", "--filter", &filter]) {
        docker_quiet(&["network", "rm", &id]);
    }
    for id in docker_ids(&["volume", "ls", "-q", "--filter", &filter]) {
        docker_quiet(&["volume", "rm", "-f", &id]);
    }
}

impl DockerGuard {
    pub fn project(name: impl Into<String>) -> DockerGuard {
        DockerGuard {
            kind: DockerKind::Project,
            name: name.into(),
        }
    }
    pub fn stack(name: impl Into<String>) -> DockerGuard {
        DockerGuard {
            kind: DockerKind::Stack,
            name: name.into(),
        }
    }
    pub fn container(name: impl Into<String>) -> DockerGuard {
        DockerGuard {
            kind: DockerKind::Container,
            name: name.into(),
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let name = self.name.as_str();
        match self.kind {
            DockerKind::Container => {
                docker_quiet(&["rm", "-fv", name]);
            }
            DockerKind::Project => {
                let label = format!("com.docker.compose.project={name}");
                // Kill first (fast), then let compose remove what it knows.
                remove_labelled(&label);
                docker_quiet(&[
                    "compose",
                    "-p",
                    name,
                    "down",
                    "-v",
                    "--remove-orphans",
                    "--timeout",
                    "0",
                ]);
                remove_labelled(&label);
            }
            DockerKind::Stack => {
                docker_quiet(&["stack", "rm", name]);
                let label = format!("com.docker.stack.namespace={name}");
                let filter = format!("label={label}");
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline
                    && !docker_ids(&["ps", "-aq", "--filter", &filter]).is_empty()
                {
                    thread::sleep(Duration::from_millis(250));
                }
                remove_labelled(&label);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The engine's swarm state

/// Held by tests that deploy to the host's Docker engine: shared by most,
/// exclusive for a test that needs the engine to itself (no other test's
/// containers, e.g. to count images). Deploys pick swarm mode when the node
/// is a swarm manager, and nothing in the suite makes the host's engine one:
/// swarm tests run on private engines (`private_dockerd::rerun_on_a_swarm`).
/// A file lock, so that two test processes on one host also see each other.
pub struct EngineLock(std::fs::File);

fn engine_lock_file() -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("kata-test-engine.lock"))
        .expect("open engine lock file")
}

/// For a test that deploys to the host's engine beside others.
pub fn engine_shared() -> EngineLock {
    let f = engine_lock_file();
    f.lock_shared().expect("lock engine (shared)");
    EngineLock(f)
}

/// For a test that needs the host's engine to itself.
pub fn engine_exclusive() -> EngineLock {
    let f = engine_lock_file();
    f.lock().expect("lock engine (exclusive)");
    EngineLock(f)
}
