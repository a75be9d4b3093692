//! git push over SSH against a real sshd: kata is the forced command written
//! by `kata setup:ssh`, repos are created on first push, the post-receive
//! hook deploys the deploy branch, hostile commands are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::images::{BUSYBOX, ensure_test_images};
use crate::support::sshd::{GitClient, Sshd};
use crate::support::{DockerGuard, engine_shared, unique};

/// The smallest app kata deploys: one busybox container that stays up.
fn compose_yaml() -> String {
    format!(
        "services:\n  web:\n    image: {BUSYBOX}\n    command: sleep 3600\nx-kata-mode: compose\n"
    )
}

// ---------------------------------------------------------------------------
// helpers

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A new work repo (branch `branch`) holding a deployable app.
fn new_work(git: &GitClient, parent: &Path, branch: &str) -> PathBuf {
    let work = parent.join(format!("work-{}", unique("w")));
    std::fs::create_dir_all(&work).unwrap();
    git.ok(&work, &["init", "-q", "-b", branch]);
    write(&work, "kata-compose.yaml", &compose_yaml());
    work
}

fn commit(git: &GitClient, work: &Path, msg: &str) -> String {
    git.ok(work, &["add", "-A"]);
    git.ok(work, &["commit", "-q", "--allow-empty", "-m", msg]);
    git.ok(work, &["rev-parse", "HEAD"])
}

/// Every file under `dir` (following `dir` itself when it is a symlink):
/// path → content, with `[x]` for executables and `-> target` for symlinks.
/// Leaves out `.git` and kata's generated `.docker-compose.yaml`.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel == ".git" || rel == ".docker-compose.yaml" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if meta.is_dir() {
                walk(base, &p, out);
            } else {
                let x = if meta.permissions().mode() & 0o100 != 0 {
                    "[x]"
                } else {
                    ""
                };
                out.insert(rel, format!("{x}{}", std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    let real = std::fs::canonicalize(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    walk(&real, &real, &mut out);
    out
}

/// Every path under `root` with its type, permissions and (for files) a hash
/// of its content, without following links. Leaves out the audit log, which
/// records every command, refused ones too.
fn snapshot(root: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel == "state/audit.log" {
                continue;
            }
            let kind = if meta.file_type().is_symlink() {
                "l"
            } else if meta.is_dir() {
                "d"
            } else {
                "f"
            };
            let content = if kind == "f" {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(std::fs::read(&p).unwrap()))
            } else {
                String::new()
            };
            out.insert(format!(
                "{kind} {rel} {:o} {content}",
                meta.permissions().mode() & 0o7777
            ));
            if kind == "d" {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn live(sshd: &Sshd, app: &str) -> PathBuf {
    sshd.home.join("app").join(app)
}

fn assert_live_is(sshd: &Sshd, app: &str, work: &Path) {
    assert_eq!(
        tree(&live(sshd, app)),
        tree(work),
        "app/{app} is not the pushed tree"
    );
}

/// A git command running in the background whose stderr is collected live.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Running {
    fn start(git: &GitClient, dir: &Path, args: &[&str]) -> Running {
        let mut child = git
            .command(dir, args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_for_text(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.text().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before printing {needle:?}:\n{}",
                    self.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("push timed out:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.text())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Holds an app's deploy lock from the test process, as a running deploy would.
fn hold_deploy_lock(sshd: &Sshd, app: &str) -> std::fs::File {
    let path = sshd
        .home
        .join("state")
        .join("locks")
        .join(format!("{app}.lock"));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{} (made by the first deploy): {e}", path.display()));
    f.lock().unwrap();
    f
}

fn assert_pushed(o: &crate::support::Outcome, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {}\n--- stderr\n{}",
        o.status,
        o.stderr
    );
}

// ---------------------------------------------------------------------------
// keys

#[test]
fn setup_ssh_writes_restricted_deduplicated_keys_that_can_be_listed_and_removed() {
    let sshd = Sshd::start();
    let ak = sshd.home.join(".ssh").join("authorized_keys");
    let fp = sshd.key.fingerprint();
    let text = std::fs::read_to_string(&ak).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let prefix = format!(
        "command=\"{} ssh-serve --key {fp} --name tester@laptop --role admin\",restrict ssh-ed25519 ",
        sshd.kata.display()
    );
    assert!(
        text.starts_with(&prefix),
        "{text}\nexpected prefix: {prefix}"
    );

    // 0700 / 0600, owned by the user
    let uid = std::fs::metadata(&sshd.home).unwrap().uid();
    let dir_meta = std::fs::metadata(ak.parent().unwrap()).unwrap();
    let file_meta = std::fs::metadata(&ak).unwrap();
    assert_eq!(dir_meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(file_meta.permissions().mode() & 0o777, 0o600);
    assert_eq!((dir_meta.uid(), file_meta.uid()), (uid, uid));

    // re-adding (from the file and from stdin) changes nothing
    let again = sshd.kata_as_user(&["setup:ssh", sshd.key.public.to_str().unwrap()], None);
    assert!(again.status.success(), "{again:?}");
    assert!(again.stdout.contains("exists"), "{}", again.stdout);
    let again = sshd.kata_as_user(&["setup:ssh", "-"], Some(sshd.key.public_text().as_bytes()));
    assert!(again.status.success(), "{again:?}");
    assert_eq!(std::fs::read_to_string(&ak).unwrap(), text);

    // a second key from stdin with a name
    let bob = sshd.new_key("bob@desk");
    let add = sshd.kata_as_user(
        &["setup:ssh", "-", "--name", "bob"],
        Some(bob.public_text().as_bytes()),
    );
    assert!(add.status.success(), "{add:?}");
    assert!(add.stdout.contains("added"), "{}", add.stdout);
    assert_eq!(std::fs::read_to_string(&ak).unwrap().lines().count(), 2);
    assert_eq!(
        std::fs::metadata(&ak).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // listing, locally and over SSH
    let list = sshd.kata_as_user(&["ssh:keys"], None);
    assert!(list.status.success(), "{list:?}");
    for needle in [
        "NAME",
        "tester@laptop",
        "bob",
        &fp,
        &bob.fingerprint(),
        "ssh-ed25519",
    ] {
        assert!(
            list.stdout.contains(needle),
            "{needle} missing:\n{}",
            list.stdout
        );
    }
    let json = sshd.kata_as_user(&["ssh:keys", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["name"], "bob");
    assert_eq!(v[1]["type"], "ssh-ed25519");
    assert_eq!(v[1]["fingerprint"], bob.fingerprint());
    let remote = sshd.ssh(&bob, Some("ssh:keys"));
    assert!(remote.status.success(), "{remote:?}\n{}", sshd.log());
    assert!(remote.stdout.contains("tester@laptop"));

    // removal is host-only; by name, then the key cannot connect any more
    let refused = sshd.ssh(&sshd.key, Some("ssh:remove bob"));
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("not available over SSH"));
    let rm = sshd.kata_as_user(&["ssh:remove", "bob"], None);
    assert!(rm.status.success(), "{rm:?}");
    assert_eq!(std::fs::read_to_string(&ak).unwrap(), text);
    let denied = sshd.ssh(&bob, Some("ssh:keys"));
    assert_eq!(denied.code(), Some(255), "{denied:?}");
    assert!(
        denied.stderr.contains("Permission denied"),
        "{}",
        denied.stderr
    );
    assert!(sshd.ssh(&sshd.key, Some("ssh:keys")).status.success());

    // by fingerprint
    sshd.kata_as_user(&["setup:ssh", "-"], Some(bob.public_text().as_bytes()));
    let rm = sshd.kata_as_user(&["ssh:remove", &bob.fingerprint()], None);
    assert!(rm.status.success(), "{rm:?}");
    assert!(
        !std::fs::read_to_string(&ak)
            .unwrap()
            .contains(&bob.fingerprint())
    );
    let missing = sshd.kata_as_user(&["ssh:remove", "bob"], None);
    assert_eq!(missing.code(), Some(1));

    // invalid input is refused as a whole
    let bad = sshd.kata_as_user(
        &["setup:ssh", "-"],
        Some(format!("{}not a key\n", bob.public_text()).as_bytes()),
    );
    assert_eq!(bad.code(), Some(1), "{bad:?}");
    assert!(
        bad.stderr.contains("line 2: not an SSH public key"),
        "{}",
        bad.stderr
    );
    let private = std::fs::read(&bob.private).unwrap();
    let bad = sshd.kata_as_user(&["setup:ssh", "-"], Some(&private));
    assert!(bad.stderr.contains("PRIVATE key"), "{}", bad.stderr);
    assert_eq!(std::fs::read_to_string(&ak).unwrap(), text);
}

// ---------------------------------------------------------------------------
// pushes

#[test]
fn first_push_creates_the_app_and_later_pushes_update_it_exactly() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let app = unique("push");
    let _docker = DockerGuard::project(&app);
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, &sshd.key, false);

    // first push (ssh:// URL: git sends `git-receive-pack '/<app>'`)
    let work = new_work(&git, scratch.path(), "main");
    write(&work, "a.txt", "one\n");
    write(&work, "dir/b.txt", "bee\n");
    write(&work, "run.sh", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a.txt", work.join("link")).unwrap();
    let c1 = commit(&git, &work, "one");
    let o = git.run(&work, &["push", &sshd.url(&app), "main"]);
    assert_pushed(&o, "first push");
    assert!(
        o.stderr.contains(&format!("-----> Created app {app}")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&format!(
            "remote: -----> Deploying {app} from main ({}",
            &c1[..7]
        )),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("is live"), "{}", o.stderr);

    let repo = sshd.home.join("repos").join(&app);
    assert_eq!(
        std::fs::read_to_string(repo.join("HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    assert!(repo.join("objects").is_dir() && !repo.join(".git").exists());
    let hook = std::fs::read_to_string(repo.join("hooks/post-receive")).unwrap();
    assert!(
        hook.contains(&format!("export KATA_ROOT={}", sshd.home.display())),
        "{hook}"
    );
    assert!(
        hook.contains(&format!("exec {} git-hook {app}", sshd.kata.display())),
        "{hook}"
    );
    assert_live_is(&sshd, &app, &work);
    assert!(live(&sshd, &app).join(".docker-compose.yaml").is_file());

    // second commit, scp-like URL: a deleted file disappears
    let scp = GitClient::new(&sshd, &sshd.key, true);
    std::fs::remove_file(work.join("dir/b.txt")).unwrap();
    write(&work, "a.txt", "two\n");
    let c2 = commit(&git, &work, "two");
    let o = scp.run(&work, &["push", &sshd.scp_url(&app), "main"]);
    assert_pushed(&o, "second push");
    assert!(o.stderr.contains(&c2[..7]), "{}", o.stderr);
    assert!(!live(&sshd, &app).join("dir/b.txt").exists());
    assert_live_is(&sshd, &app, &work);

    // a force push (rewritten history) deploys too
    write(&work, "a.txt", "amended\n");
    git.ok(&work, &["add", "-A"]);
    git.ok(&work, &["commit", "-q", "--amend", "-m", "two, amended"]);
    let c2b = git.ok(&work, &["rev-parse", "HEAD"]);
    let plain = git.run(&work, &["push", &sshd.url(&app), "main"]);
    assert!(
        !plain.status.success(),
        "non-fast-forward accepted without force"
    );
    let o = git.run(&work, &["push", "--force", &sshd.url(&app), "main"]);
    assert_pushed(&o, "force push");
    assert!(o.stderr.contains("(forced update)"), "{}", o.stderr);
    assert_live_is(&sshd, &app, &work);

    // another branch is stored, not deployed
    let before = std::fs::read_link(live(&sshd, &app)).unwrap();
    let live_tree = tree(&live(&sshd, &app));
    git.ok(&work, &["checkout", "-q", "-b", "feature"]);
    write(&work, "a.txt", "feature\n");
    commit(&git, &work, "feature");
    let o = git.run(&work, &["push", &sshd.url(&app), "feature"]);
    assert_pushed(&o, "feature push");
    assert!(
        o.stderr
            .contains("remote: -----> Branch feature stored; deploys happen from main"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("Deploying"), "{}", o.stderr);
    assert_eq!(std::fs::read_link(live(&sshd, &app)).unwrap(), before);
    assert_eq!(tree(&live(&sshd, &app)), live_tree);

    // deleting a branch is skipped
    let o = git.run(&work, &["push", &sshd.url(&app), ":feature"]);
    assert_pushed(&o, "branch deletion");
    assert!(o.stderr.contains("Branch feature deleted"), "{}", o.stderr);
    assert_eq!(std::fs::read_link(live(&sshd, &app)).unwrap(), before);

    // clone the app back
    let clone = scratch.path().join("clone");
    let o = git.run(
        scratch.path(),
        &["clone", "-q", &sshd.url(&app), clone.to_str().unwrap()],
    );
    assert_pushed(&o, "clone");
    assert_eq!(git.ok(&clone, &["rev-parse", "HEAD"]), c2b);
    assert_eq!(
        std::fs::read_to_string(clone.join("a.txt")).unwrap(),
        "amended\n"
    );
    let o = scp.run(
        scratch.path(),
        &["clone", "-q", &sshd.scp_url(&app), "clone2"],
    );
    assert_pushed(&o, "scp-form clone");

    // a kata command over ssh reaches kata (not refused)
    let ls = sshd.ssh(&sshd.key, Some("ls"));
    assert!(
        !ls.stderr.contains("not available") && !ls.stderr.contains("unknown command"),
        "{ls:?}"
    );
    if ls.status.success() {
        assert!(ls.stdout.contains(&app), "{}", ls.stdout);
    }
}

#[test]
fn master_is_the_fallback_and_the_deploy_branch_is_settable_per_app() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let app = unique("branch");
    let _docker = DockerGuard::project(&app);
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, &sshd.key, false);

    let work = new_work(&git, scratch.path(), "master");
    write(&work, "v", "1\n");
    commit(&git, &work, "one");
    let o = git.run(&work, &["push", &sshd.url(&app), "master"]);
    assert_pushed(&o, "master push");
    assert!(
        o.stderr.contains(&format!("Deploying {app} from master")),
        "{}",
        o.stderr
    );
    assert_live_is(&sshd, &app, &work);
    // HEAD follows master so clones check it out
    let clone = scratch.path().join("clone");
    git.ok(
        scratch.path(),
        &["clone", "-q", &sshd.url(&app), clone.to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(clone.join("v")).unwrap(), "1\n");

    // per-app override (state/apps/<app>/branch)
    std::fs::write(
        sshd.home.join("state/apps").join(&app).join("branch"),
        "prod\n",
    )
    .unwrap();
    write(&work, "v", "2\n");
    commit(&git, &work, "two");
    let o = git.run(&work, &["push", &sshd.url(&app), "master"]);
    assert_pushed(&o, "master push after override");
    assert!(
        o.stderr
            .contains("Branch master stored; deploys happen from prod"),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_to_string(live(&sshd, &app).join("v")).unwrap(),
        "1\n"
    );
    let o = git.run(&work, &["push", &sshd.url(&app), "master:prod"]);
    assert_pushed(&o, "prod push");
    assert!(
        o.stderr.contains(&format!("Deploying {app} from prod")),
        "{}",
        o.stderr
    );
    assert_live_is(&sshd, &app, &work);
}

#[test]
fn a_failed_deploy_fails_the_push_and_keeps_the_previous_release() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let app = unique("fail");
    let _docker = DockerGuard::project(&app);
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, &sshd.key, false);
    let work = new_work(&git, scratch.path(), "main");
    write(&work, "v", "good\n");
    commit(&git, &work, "good");
    assert_pushed(
        &git.run(&work, &["push", &sshd.url(&app), "main"]),
        "good push",
    );
    let good = tree(&live(&sshd, &app));

    write(&work, "kata-compose.yaml", "services: 42\n");
    write(&work, "v", "bad\n");
    commit(&git, &work, "bad");
    let o = git.run(&work, &["push", &sshd.url(&app), "main"]);
    assert!(
        !o.status.success(),
        "push of a broken app succeeded:\n{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains(&format!("remote: error: deploy of {app}")),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("kata-compose.yaml"), "{}", o.stderr);
    assert!(o.stderr.contains("its deploy failed"), "{}", o.stderr);
    assert_eq!(tree(&live(&sshd, &app)), good);
}

#[test]
fn a_second_push_waits_for_the_running_deploy_then_deploys() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let app = unique("wait");
    let _docker = DockerGuard::project(&app);
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, &sshd.key, false);
    let work = new_work(&git, scratch.path(), "main");
    write(&work, "v", "1\n");
    commit(&git, &work, "one");
    assert_pushed(
        &git.run(&work, &["push", &sshd.url(&app), "main"]),
        "first push",
    );
    let waiting = format!("another deploy of {app} is running; waiting");

    // a push while a deploy runs waits, then deploys its own commit
    let lock = hold_deploy_lock(&sshd, &app);
    write(&work, "v", "2\n");
    let c2 = commit(&git, &work, "two");
    let mut p2 = Running::start(&git, &work, &["push", &sshd.url(&app), "main"]);
    p2.wait_for_text(&waiting);
    std::thread::sleep(Duration::from_millis(300));
    assert!(p2.is_running());
    assert_eq!(
        std::fs::read_to_string(live(&sshd, &app).join("v")).unwrap(),
        "1\n"
    );
    drop(lock);
    let (status, err) = p2.finish();
    assert!(status.success(), "{err}");
    assert!(
        err.contains(&format!("Deploying {app} from main ({}", &c2[..7])),
        "{err}"
    );
    assert_live_is(&sshd, &app, &work);

    // two pushes queue behind a deploy: the app ends at the second commit
    let lock = hold_deploy_lock(&sshd, &app);
    write(&work, "v", "3\n");
    commit(&git, &work, "three");
    let mut p3 = Running::start(&git, &work, &["push", &sshd.url(&app), "main"]);
    p3.wait_for_text(&waiting);
    write(&work, "v", "4\n");
    let c4 = commit(&git, &work, "four");
    let mut p4 = Running::start(&git, &work, &["push", &sshd.url(&app), "main"]);
    p4.wait_for_text(&waiting);
    drop(lock);
    let (s3, e3) = p3.finish();
    let (s4, e4) = p4.finish();
    assert!(s3.success(), "{e3}");
    assert!(s4.success(), "{e4}");
    // p3's commit was superseded while it waited: it says so and leaves it to p4
    assert!(e3.contains("moved on to"), "{e3}");
    assert!(
        e4.contains(&format!("Deploying {app} from main ({}", &c4[..7])),
        "{e4}"
    );
    assert_live_is(&sshd, &app, &work);
}

#[test]
fn pushes_to_two_apps_run_in_parallel() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let apps = [unique("par-a"), unique("par-b")];
    let _guards: Vec<_> = apps.iter().map(DockerGuard::project).collect();
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, &sshd.key, false);
    let works: Vec<PathBuf> = apps
        .iter()
        .map(|app| {
            let w = new_work(&git, scratch.path(), "main");
            write(&w, "name", app);
            commit(&git, &w, app);
            w
        })
        .collect();

    // both first pushes at once
    let running: Vec<Running> = apps
        .iter()
        .zip(&works)
        .map(|(app, w)| Running::start(&git, w, &["push", &sshd.url(app), "main"]))
        .collect();
    for r in running {
        let (status, err) = r.finish();
        assert!(status.success(), "{err}");
    }
    for (app, w) in apps.iter().zip(&works) {
        assert_live_is(&sshd, app, w);
    }

    // while a's deploy is held, b deploys to completion
    let lock = hold_deploy_lock(&sshd, &apps[0]);
    for (app, w) in apps.iter().zip(&works) {
        write(w, "name", &format!("{app} v2"));
        commit(&git, w, "v2");
    }
    let mut pa = Running::start(&git, &works[0], &["push", &sshd.url(&apps[0]), "main"]);
    pa.wait_for_text("is running; waiting");
    let ob = git.run(&works[1], &["push", &sshd.url(&apps[1]), "main"]);
    assert_pushed(&ob, "push to b while a waits");
    assert!(!ob.stderr.contains("waiting"), "{}", ob.stderr);
    assert_live_is(&sshd, &apps[1], &works[1]);
    assert!(pa.is_running());
    drop(lock);
    let (status, err) = pa.finish();
    assert!(status.success(), "{err}");
    assert_live_is(&sshd, &apps[0], &works[0]);
}

// ---------------------------------------------------------------------------
// refusals

/// For both roles: an admin key and a deploy key that owns every app name.
#[test]
fn hostile_commands_are_refused_and_touch_nothing() {
    let sshd = Sshd::start();
    let deploy = sshd.add_key("ci", &["--role", "deploy", "--apps", "*"]);
    let marker = format!("/tmp/kata-pwned-{}", unique("m"));
    let before = snapshot(&sshd.home);
    let big = format!("ls {}", "A".repeat(100 * 1024));
    let big_repo = format!("git-receive-pack '{}'", "a".repeat(100 * 1024));
    let commands: Vec<String> = [
        "; rm -rf /",
        "rm -rf /",
        "$(id)",
        "`id`",
        "../../etc/passwd",
        "/bin/sh",
        "bash",
        "bash -i",
        "sh -c id",
        "scp -t /",
        "scp -f /etc/passwd",
        "git-receive-pack '../x'",
        "git-receive-pack '/../../x'",
        "git-receive-pack '/etc/passwd'",
        "git-receive-pack 'a/b'",
        "git-receive-pack 'Bad'",
        "git-upload-pack '../../etc'",
        "git-upload-pack 'missing'",
        "git-upload-archive 'x'",
        "ls\nid",
        "ls\rid",
        "setup --caddy-admin http://evil:1",
        "setup:ssh /etc/passwd",
        "ssh:remove tester@laptop",
        "ssh-serve --key x --name y",
        "git-hook x",
        "validate /etc/shadow",
        "render /etc/shadow",
        "ps ../../etc",
        "logs '$(id)'",
        "secrets:set X=@/etc/shadow",
        "'unbalanced",
        "internal-sftp",
        "env",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([big, big_repo])
    .chain(
        [
            "touch {m}",
            "$(touch {m})",
            "`touch {m}`",
            "ls; touch {m}",
            "ls && touch {m}",
            "ls | touch {m}",
            "ls\ntouch {m}",
            "sh -c 'touch {m}'",
            "bash -c 'touch {m}'",
            "git-receive-pack '$(touch {m})'",
            "git-upload-pack '`touch {m}`'",
        ]
        .iter()
        .map(|t| t.replace("{m}", &marker)),
    )
    .collect();
    for key in [&sshd.key, &deploy] {
        for c in &commands {
            let o = sshd.ssh(key, Some(c));
            let shown: String = c.chars().take(60).collect();
            assert_eq!(
                o.code(),
                Some(1),
                "{shown:?} was not refused by kata: {o:?}"
            );
            assert!(o.stderr.starts_with("error: "), "{shown:?}: {}", o.stderr);
            assert!(o.stdout.is_empty(), "{shown:?} printed: {}", o.stdout);
        }
    }
    // each refusal is in the audit log, for both keys
    let audit = sshd.kata_as_user(&["audit", "--json"], None);
    let events: Vec<serde_json::Value> = serde_json::from_str(&audit.stdout).unwrap();
    for name in ["tester@laptop", "ci"] {
        let refused = events
            .iter()
            .filter(|e| e["key"] == name && e["status"] == 1 && e["refused"].is_string())
            .count();
        assert_eq!(refused, commands.len(), "{name}");
    }
    assert!(
        !Path::new(&marker).exists(),
        "a payload ran: {marker} exists"
    );
    assert!(!Path::new("/x").exists() && !sshd.home.join("x").exists());
    assert_eq!(snapshot(&sshd.home), before, "KATA_ROOT changed");
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn unknown_keys_apps_and_names_are_refused() {
    let sshd = Sshd::start();
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, &sshd.key, false);
    let before = snapshot(&sshd.home);

    // a key that was never registered
    let stranger = sshd.new_key("stranger");
    let o = sshd.ssh(&stranger, Some("ls"));
    assert_eq!(o.code(), Some(255), "{o:?}");
    assert!(o.stderr.contains("Permission denied"), "{}", o.stderr);
    let work = new_work(&git, scratch.path(), "main");
    commit(&git, &work, "x");
    let strange_git = GitClient::new(&sshd, &stranger, false);
    let o = strange_git.run(&work, &["push", &sshd.url("intruder"), "main"]);
    assert!(!o.status.success());

    // clone of an app that does not exist
    let o = git.run(scratch.path(), &["clone", &sshd.url("nope"), "nope"]);
    assert!(!o.status.success());
    assert!(
        o.stderr.contains("error: no app named nope"),
        "{}",
        o.stderr
    );

    // pushes to invalid app names
    let scp = GitClient::new(&sshd, &sshd.key, true);
    for bad in ["../x", "Bad", "a/b", "x;id", "a.b"] {
        let o = scp.run(&work, &["push", &sshd.scp_url(bad), "main"]);
        assert!(!o.status.success(), "push to {bad:?} succeeded");
        assert!(o.stderr.contains("invalid app name"), "{bad}: {}", o.stderr);
    }
    assert_eq!(snapshot(&sshd.home), before, "KATA_ROOT changed");
}

#[test]
fn ssh_without_a_command_prints_help_and_kata_commands_run() {
    let sshd = Sshd::start();
    let o = sshd.ssh(&sshd.key, None);
    assert!(o.status.success(), "{o:?}");
    assert!(o.stdout.contains("git push"), "{}", o.stdout);
    assert!(o.stdout.contains("config:set"), "{}", o.stdout);
    assert!(!o.stdout.contains("setup:ssh"), "{}", o.stdout);

    let o = sshd.ssh(&sshd.key, Some("--version"));
    assert!(o.status.success(), "{o:?}");
    assert!(o.stdout.starts_with("kata "), "{}", o.stdout);

    let o = sshd.ssh(&sshd.key, Some("ssh:keys --json"));
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["fingerprint"], sshd.key.fingerprint());

    let o = sshd.ssh(&sshd.key, Some("ls"));
    assert!(o.status.success(), "{o:?}");
    assert!(o.stdout.starts_with("APP "), "{}", o.stdout);

    // `@FILE` would read a file on the host: refused over SSH
    let o = sshd.ssh(&sshd.key, Some("secrets:set leak=@/etc/passwd"));
    assert!(!o.status.success(), "{o:?}");
    assert!(
        o.stderr
            .contains("reads a file on the host; over SSH give the value on stdin"),
        "{}",
        o.stderr
    );
}

/// Config values reach kata exactly over SSH: spaces, quotes and `=` inside a
/// one-line command, newlines through stdin (`config:set APP KEY`). The app
/// has not been pushed yet: values set before the first push are kept for it.
#[test]
fn config_values_round_trip_over_ssh() {
    let sshd = Sshd::start();
    let app = unique("cfg");
    let o = sshd.ssh(
        &sshd.key,
        Some(&format!(
            r#"config:set {app} 'SPACES=a b  c' "QUOTES=it's \"q\"" EQ=x=y=z EMPTY="#
        )),
    );
    assert!(o.status.success(), "{o:?}");
    assert!(o.stdout.contains("has not been pushed yet"), "{}", o.stdout);

    let pem = "-----BEGIN KEY-----\nab'c\"d $HOME\n-----END KEY-----";
    let o = sshd.ssh_stdin(
        &sshd.key,
        &format!("config:set {app} CERT"),
        format!("{pem}\n").as_bytes(),
    );
    assert!(o.status.success(), "{o:?}");

    for (key, want) in [
        ("SPACES", "a b  c"),
        ("QUOTES", r#"it's "q""#),
        ("EQ", "x=y=z"),
        ("EMPTY", ""),
        ("CERT", pem),
    ] {
        let o = sshd.ssh(&sshd.key, Some(&format!("config:get {app} {key}")));
        assert!(o.status.success(), "{key}: {o:?}");
        assert_eq!(o.stdout, format!("{want}\n"), "{key}");
    }
    // Not an app yet: nothing but its config was created.
    let o = sshd.ssh(&sshd.key, Some("ls --json"));
    assert!(o.status.success(), "{o:?}");
    assert!(!o.stdout.contains(&app), "{}", o.stdout);
}
