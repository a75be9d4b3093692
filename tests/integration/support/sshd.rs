//! A real sshd for one test: its own host key and config on a free loopback
//! port, and a dedicated system user whose home is the KATA_ROOT and whose
//! `authorized_keys` is written by `kata setup:ssh`. Clients are plain
//! `ssh` / `git` with a test key. Dropping the fixture stops sshd and deletes
//! the user, also when the test panics.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::{Outcome, free_port, kata_bin_copy, output_with_timeout, world_readable_tempdir};

pub const SSHD: &str = "/usr/sbin/sshd";
const USERADD_LOCK: &str = "/tmp/kata-test-useradd.lock";
const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `f` holding a host-wide lock: useradd/userdel lock /etc/passwd and
/// fail instead of waiting when tests in parallel threads or processes race.
fn with_passwd_lock<T>(f: impl FnOnce() -> T) -> T {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(USERADD_LOCK)
        .unwrap_or_else(|e| panic!("open {USERADD_LOCK}: {e}"));
    let _ = std::fs::set_permissions(USERADD_LOCK, std::fs::Permissions::from_mode(0o666));
    lock.lock()
        .unwrap_or_else(|e| panic!("lock {USERADD_LOCK}: {e}"));
    let out = f();
    drop(lock);
    out
}

fn run_ok(cmd: &mut Command) -> Outcome {
    let what = format!("{cmd:?}");
    let o = Outcome::from_output(output_with_timeout(cmd, None, TIMEOUT));
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}\n{}",
        o.status,
        o.stdout,
        o.stderr
    );
    o
}

/// A short user name no other fixture (in any process) uses: `kt<pid><n><t>`.
fn user_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        & 0xffff;
    format!("kt{:x}x{n:x}x{t:x}", std::process::id())
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The test user; deleted on drop.
struct User {
    name: String,
}

impl User {
    fn create(home: &Path) -> User {
        let name = user_name();
        assert!(name.len() <= 32);
        with_passwd_lock(|| {
            let mut c = Command::new("useradd");
            // `-p '*'`: no password, but not "locked" (`!`): sshd without PAM
            // refuses even key logins for locked accounts.
            c.args(["-M", "-s", "/bin/sh", "-p", "*", "-d"]).arg(home);
            if group_exists("docker") {
                c.args(["-G", "docker"]);
            }
            run_ok(c.arg(&name));
        });
        User { name }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        with_passwd_lock(|| {
            let _ = Command::new("userdel")
                .args(["-f", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        });
    }
}

/// A client key pair (root-owned, 0600, as ssh wants).
#[derive(Debug, Clone)]
pub struct Key {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Key {
    pub fn public_text(&self) -> String {
        std::fs::read_to_string(&self.public).unwrap()
    }
    /// `SHA256:...` as ssh-keygen prints it.
    pub fn fingerprint(&self) -> String {
        let o = run_ok(Command::new("ssh-keygen").arg("-lf").arg(&self.public));
        o.stdout.split_whitespace().nth(1).unwrap().to_owned()
    }
}

pub struct Sshd {
    pub user: String,
    /// The test user's home, which is also KATA_ROOT.
    pub home: PathBuf,
    pub port: u16,
    /// The kata binary sshd runs (a 0755 copy the test user can execute).
    pub kata: PathBuf,
    /// Registered with `kata setup:ssh` by `start`.
    pub key: Key,
    etc: PathBuf,
    child: Option<Child>,
    // dropped after `child` is stopped (see Drop), user before the dirs
    user_guard: Option<User>,
    _dir: TempDir,
}

impl Sshd {
    /// Creates the user, runs `kata setup` and `kata setup:ssh` as that user,
    /// and starts sshd.
    pub fn start() -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        std::fs::set_permissions("/run/sshd", std::fs::Permissions::from_mode(0o755)).unwrap();

        let dir = world_readable_tempdir("kata-sshd-");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).unwrap();
        let kata = kata_bin_copy(dir.path().join("bin"));

        let user = User::create(&home);
        run_ok(
            Command::new("chown")
                .arg(format!("{}:", user.name))
                .arg(&home),
        );

        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f"])
                .arg(etc.join("host_ed25519")),
        );
        let mut sshd = Sshd {
            user: user.name.clone(),
            home,
            port: 0,
            kata,
            key: Key {
                private: PathBuf::new(),
                public: PathBuf::new(),
            },
            etc,
            child: None,
            user_guard: Some(user),
            _dir: dir,
        };
        sshd.key = sshd.new_key("tester@laptop");
        // its own ports for routed services (see `unique_port_range`)
        let range = super::unique_port_range();
        let setup = sshd.kata_as_user(&["setup", "--port-range", &range], None);
        assert!(setup.status.success(), "kata setup: {setup:?}");
        let add = sshd.kata_as_user(&["setup:ssh", sshd.key.public.to_str().unwrap()], None);
        assert!(add.status.success(), "kata setup:ssh: {add:?}");
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        for _attempt in 0..5 {
            let port = free_port();
            let cfg = self.etc.join("sshd_config");
            let text = format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host}\n\
                 PidFile {pid}\n\
                 UsePAM no\n\
                 StrictModes yes\n\
                 PubkeyAuthentication yes\n\
                 AuthenticationMethods publickey\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin no\n\
                 AllowUsers {user}\n\
                 AuthorizedKeysFile .ssh/authorized_keys\n\
                 PermitUserEnvironment no\n\
                 X11Forwarding no\n\
                 AllowTcpForwarding no\n\
                 PrintMotd no\n\
                 MaxStartups 100:30:200\n\
                 LogLevel VERBOSE\n",
                host = self.etc.join("host_ed25519").display(),
                pid = self.etc.join("sshd.pid").display(),
                user = self.user,
            );
            std::fs::write(&cfg, text).unwrap();
            let log = File::create(self.etc.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = self.log();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("sshd exited ({status}):\n{log}");
                }
                if log_says_listening(&self.log()) {
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sshd did not start listening:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("sshd: no free port after 5 attempts");
    }

    /// sshd's own log (stderr, `LogLevel VERBOSE`), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.etc.join("sshd.log")).unwrap_or_default()
    }

    /// A fresh ed25519 key pair (not registered).
    pub fn new_key(&self, comment: &str) -> Key {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = self
            .etc
            .join(format!("id_{}", N.fetch_add(1, Ordering::Relaxed)));
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(&path),
        );
        // public halves where the test user can read them (`setup:ssh FILE`)
        let keys = self.etc.parent().unwrap().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        let public = keys.join(format!(
            "{}.pub",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::rename(path.with_extension("pub"), &public).unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        Key {
            public,
            private: path,
        }
    }

    /// A fresh key registered with `kata setup:ssh FILE --name NAME EXTRA...`
    /// (e.g. `--role deploy --apps 'shop*'`).
    pub fn add_key(&self, name: &str, extra: &[&str]) -> Key {
        let key = self.new_key(name);
        let mut args = vec!["setup:ssh", key.public.to_str().unwrap(), "--name", name];
        args.extend_from_slice(extra);
        let o = self.kata_as_user(&args, None);
        assert!(o.status.success(), "kata {args:?}: {o:?}");
        key
    }

    /// Runs the kata copy locally as the test user (clean env, HOME and
    /// KATA_ROOT = the home), like an admin on the host would.
    pub fn kata_as_user(&self, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.user, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("KATA_ROOT={}", self.home.display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .arg(&self.kata)
            .args(args)
            .current_dir(&self.home);
        Outcome::from_output(output_with_timeout(&mut c, stdin, TIMEOUT))
    }

    /// Options for `ssh` with `key`: no config files, no host key checks,
    /// only this key, never a prompt.
    pub fn ssh_options(&self, key: &Key) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-i",
            key.private.to_str().unwrap(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `ssh -p PORT ... user@127.0.0.1 <remote_command>` (sent verbatim as
    /// the SSH command string; `None` asks for a shell).
    pub fn ssh_command(&self, key: &Key, remote_command: Option<&str>) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.ssh_options(key))
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@127.0.0.1", self.user));
        if let Some(rc) = remote_command {
            c.arg("--").arg(rc);
        }
        c
    }

    pub fn ssh(&self, key: &Key, remote_command: Option<&str>) -> Outcome {
        let mut c = self.ssh_command(key, remote_command);
        Outcome::from_output(output_with_timeout(&mut c, None, TIMEOUT))
    }

    /// `ssh` with `stdin` fed to the remote command.
    pub fn ssh_stdin(&self, key: &Key, remote_command: &str, stdin: &[u8]) -> Outcome {
        let mut c = self.ssh_command(key, Some(remote_command));
        Outcome::from_output(output_with_timeout(&mut c, Some(stdin), TIMEOUT))
    }

    /// `GIT_SSH_COMMAND` for `key`; with `port`, for scp-like URLs.
    pub fn git_ssh_command(&self, key: &Key, with_port: bool) -> String {
        let mut words = vec!["ssh".to_owned()];
        words.extend(self.ssh_options(key));
        if with_port {
            words.push("-p".into());
            words.push(self.port.to_string());
        }
        shell_words::join(words)
    }

    /// `ssh://user@127.0.0.1:PORT/<app>` (git sends `git-receive-pack '/<app>'`).
    pub fn url(&self, app: &str) -> String {
        format!("ssh://{}@127.0.0.1:{}/{app}", self.user, self.port)
    }

    /// `user@127.0.0.1:<app>` (needs [`Sshd::git_ssh_command`] with the port).
    pub fn scp_url(&self, app: &str) -> String {
        format!("{}@127.0.0.1:{app}", self.user)
    }

    /// Stops sshd (idempotent).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_says_listening(log: &str) -> bool {
    log.contains("Server listening on 127.0.0.1")
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        drop(self.user_guard.take());
    }
}

/// A git client for pushes and clones over the fixture: isolated from the
/// host's git config, fixed identity, ssh with a chosen key.
pub struct GitClient {
    pub ssh_command: String,
    _home: TempDir,
    home: PathBuf,
}

impl GitClient {
    pub fn new(sshd: &Sshd, key: &Key, scp_form: bool) -> GitClient {
        let home = tempfile::Builder::new()
            .prefix("kata-git-home-")
            .tempdir()
            .unwrap();
        GitClient {
            ssh_command: sshd.git_ssh_command(key, scp_form),
            home: home.path().to_path_buf(),
            _home: home,
        }
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        c.args(args)
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_SSH_COMMAND", &self.ssh_command)
            .env("GIT_AUTHOR_NAME", "Tester")
            .env("GIT_AUTHOR_EMAIL", "tester@example.com")
            .env("GIT_COMMITTER_NAME", "Tester")
            .env("GIT_COMMITTER_EMAIL", "tester@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        c
    }

    pub fn run(&self, dir: &Path, args: &[&str]) -> Outcome {
        let mut c = self.command(dir, args);
        Outcome::from_output(output_with_timeout(&mut c, None, TIMEOUT))
    }

    /// Runs git and panics unless it succeeds; returns trimmed stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let o = self.run(dir, args);
        assert!(
            o.status.success(),
            "git {args:?} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout.trim().to_owned()
    }
}
