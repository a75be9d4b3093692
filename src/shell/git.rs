//! git: bare repos, the post-receive hook, exact tree exports. Shells out to
//! `git` (git2/gix cannot serve receive-pack, so the binary is needed anyway).
//!
//! Pure parts: the hook script text, parsing the hook's `old new ref` lines,
//! and the deploy-branch decision. Every git process kata starts goes through
//! [`command`], which clears the `GIT_*` variables a hook inherits.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("malformed ref update from git: {0:?}")]
    BadRefLine(String),
    #[error("unknown commit {0:?}")]
    UnknownCommit(String),
    #[error("{0}: destination must be a new or empty directory")]
    DestNotEmpty(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A valid, unambiguous branch name kata will use in refs and messages.
/// A conservative subset of `git check-ref-format --branch`.
pub fn valid_branch_name(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 200
        && !b.starts_with('-')
        && !b.starts_with('/')
        && !b.ends_with('/')
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_' | b'.'))
}

/// Variables git sets for hooks (and users may set) that would redirect a
/// git command away from the repository kata names explicitly.
pub const GIT_ENV: [&str; 12] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_QUARANTINE_PATH",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG_PARAMETERS",
];

/// `git --git-dir=<repo>` with the hook-inherited `GIT_*` environment cleared.
pub fn command(repo: &Path) -> Command {
    let mut c = Command::new("git");
    for v in GIT_ENV {
        c.env_remove(v);
    }
    c.arg("--git-dir").arg(repo);
    c
}

fn run(mut cmd: Command) -> Result<String, GitError> {
    let args = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.stdin(Stdio::null()).output().map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------
// Bare repos and the hook
// ---------------------------------------------------------------------------

/// The post-receive hook: hands git's `old new ref` lines to
/// `kata git-hook <app>`, by absolute path, with `KATA_ROOT` made explicit.
/// kata flushes every line it prints, so output reaches the pusher live.
pub fn hook_script(kata_exe: &Path, kata_root: &Path, app: &str) -> String {
    script(kata_exe, kata_root, app, "deploys pushes to", "")
}

/// The pre-receive hook: `kata git-hook --pre-receive <app>` refuses a deploy
/// key's push whose kata-compose.yaml would reach the host, before any ref moves.
pub fn pre_receive_script(kata_exe: &Path, kata_root: &Path, app: &str) -> String {
    script(
        kata_exe,
        kata_root,
        app,
        "checks pushes to",
        " --pre-receive",
    )
}

fn script(kata_exe: &Path, kata_root: &Path, app: &str, what: &str, flag: &str) -> String {
    let q = |p: &Path| shell_words::quote(&p.to_string_lossy()).into_owned();
    format!(
        "#!/bin/sh\n\
         # Installed by kata: {what} {app}. Rewritten on every push.\n\
         export KATA_ROOT={root}\n\
         exec {exe} git-hook{flag} {app_q}\n",
        root = q(kata_root),
        exe = q(kata_exe),
        app_q = shell_words::quote(app),
    )
}

pub fn is_repo(repo: &Path) -> bool {
    repo.join("HEAD").is_file() && repo.join("objects").is_dir()
}

/// Writes `hooks/post-receive` (mode 0755) unless it already has this content.
pub fn install_hook(repo: &Path, script: &str) -> Result<(), GitError> {
    install_hook_as(repo, "post-receive", script)
}

/// Writes `hooks/<name>` (mode 0755) unless it already has this content.
pub fn install_hook_as(repo: &Path, name: &str, script: &str) -> Result<(), GitError> {
    let hook = repo.join("hooks").join(name);
    if std::fs::read_to_string(&hook).is_ok_and(|s| s == script) {
        return Ok(());
    }
    crate::fsutil::write_atomic_mode(&hook, script.as_bytes(), Some(0o755)).map_err(io_err(&hook))
}

/// Makes sure `repo` is a bare repository (default branch `main`) with the
/// hook installed. A new repo is built in a temp dir beside it and renamed
/// into place, so two first pushes racing cannot see a half-made repo: the
/// loser's rename fails and it uses the winner's. Returns whether it created it.
pub fn ensure_repo(repo: &Path, hook: &str) -> Result<bool, GitError> {
    let mut created = false;
    let parent = repo.parent().unwrap_or(Path::new("."));
    // repos/ holds every app's code: the kata user's only
    crate::fsutil::private_dir(parent).map_err(io_err(parent))?;
    if !is_repo(repo) {
        let tmp = tempfile::Builder::new()
            .prefix(".kata-new-")
            .tempdir_in(parent)
            .map_err(io_err(parent))?;
        let mut init = Command::new("git");
        for v in GIT_ENV {
            init.env_remove(v);
        }
        init.args(["init", "--quiet", "--bare", "-b", "main"])
            .arg(tmp.path());
        run(init)?;
        install_hook(tmp.path(), hook)?;
        check_objects(tmp.path())?;
        match std::fs::rename(tmp.path(), repo) {
            Ok(()) => {
                let _ = tmp.keep();
                created = true;
            }
            // another push created it first (rename onto a non-empty dir fails)
            Err(_) if is_repo(repo) => {}
            Err(e) => return Err(io_err(repo)(e)),
        }
    }
    install_hook(repo, hook)?;
    check_objects(repo)?;
    Ok(created)
}

/// Turns on `receive.fsckObjects` (new repos and, on their next push,
/// existing ones): malformed objects are refused before they are stored.
fn check_objects(repo: &Path) -> Result<(), GitError> {
    let on = || {
        let mut get = command(repo);
        get.args(["config", "--get", "receive.fsckObjects"]);
        run(get).is_ok_and(|v| v.trim() == "true")
    };
    if on() {
        return Ok(());
    }
    let mut set = command(repo);
    set.args(["config", "receive.fsckObjects", "true"]);
    match run(set) {
        // a push racing this one may hold the config's lock to set it too
        Err(_) if on() => Ok(()),
        r => r.map(|_| ()),
    }
}

// ---------------------------------------------------------------------------
// Hook input and the deploy decision (pure)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub refname: String,
}

fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn is_zero(s: &str) -> bool {
    s.bytes().all(|c| c == b'0')
}

impl RefUpdate {
    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }
    pub fn branch(&self) -> Option<&str> {
        self.refname.strip_prefix("refs/heads/")
    }
}

/// Parses post-receive stdin: one `<old> <new> <ref>` per line.
pub fn parse_ref_updates(input: &str) -> Result<Vec<RefUpdate>, GitError> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some(old), Some(new), Some(refname), None)
                    if is_object_id(old) && is_object_id(new) && refname.starts_with("refs/") =>
                {
                    Ok(RefUpdate {
                        old: old.to_ascii_lowercase(),
                        new: new.to_ascii_lowercase(),
                        refname: refname.to_owned(),
                    })
                }
                _ => Err(GitError::BadRefLine(l.to_owned())),
            }
        })
        .collect()
}

/// The branch that deploys: the configured one (per-app override, else host
/// setting), else `main`, else `master` when the repo has `master` and no `main`.
/// `has_main`/`has_master` describe the repo after the push.
pub fn resolve_deploy_branch(configured: Option<&str>, has_main: bool, has_master: bool) -> String {
    match configured {
        Some(b) => b.to_owned(),
        None if !has_main && has_master => "master".to_owned(),
        None => "main".to_owned(),
    }
}

/// What the hook says about each ref that is not deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A non-deploy branch was pushed: stored, not deployed.
    Stored { branch: String },
    /// A branch (maybe the deploy branch) was deleted: skipped.
    Deleted { branch: String },
    /// A tag or other ref: stored.
    OtherRef { refname: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPlan {
    pub deploy_branch: String,
    /// `Some(commit)` when the deploy branch was updated (not deleted).
    pub deploy: Option<String>,
    pub notes: Vec<Note>,
}

/// Decides what a push does. Pure.
pub fn plan_hook(updates: &[RefUpdate], deploy_branch: &str) -> HookPlan {
    let mut plan = HookPlan {
        deploy_branch: deploy_branch.to_owned(),
        deploy: None,
        notes: Vec::new(),
    };
    for u in updates {
        match u.branch() {
            Some(b) if u.is_delete() => plan.notes.push(Note::Deleted { branch: b.into() }),
            Some(b) if b == deploy_branch => plan.deploy = Some(u.new.clone()),
            Some(b) => plan.notes.push(Note::Stored { branch: b.into() }),
            None => plan.notes.push(Note::OtherRef {
                refname: u.refname.clone(),
            }),
        }
    }
    plan
}

// ---------------------------------------------------------------------------
// Queries and the tree export
// ---------------------------------------------------------------------------

/// Resolves `rev` to a full object id, `None` when it does not exist.
pub fn rev_parse(repo: &Path, rev: &str) -> Result<Option<String>, GitError> {
    let mut c = command(repo);
    c.args(["rev-parse", "--verify", "--quiet", "--end-of-options", rev]);
    let out = c.stdin(Stdio::null()).output().map_err(GitError::Spawn)?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())),
        Some(1) => Ok(None),
        _ => Err(GitError::Failed {
            args: format!("rev-parse {rev}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
}

pub fn branch_exists(repo: &Path, branch: &str) -> Result<bool, GitError> {
    Ok(rev_parse(repo, &format!("refs/heads/{branch}"))?.is_some())
}

/// Points HEAD at `branch` when HEAD names a branch that does not exist
/// (a repo that only ever got `master`), so clones check something out.
pub fn fix_dangling_head(repo: &Path, branch: &str) -> Result<(), GitError> {
    let head = run({
        let mut c = command(repo);
        c.args(["symbolic-ref", "--quiet", "HEAD"]);
        c
    })
    .unwrap_or_default();
    let head = head.trim();
    let dangling = head.is_empty() || rev_parse(repo, head)?.is_none();
    if dangling && branch_exists(repo, branch)? {
        let mut c = command(repo);
        c.args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")]);
        run(c)?;
    }
    Ok(())
}

/// Writes the exact tree of `commit` into `dest` (created if missing, must be
/// empty), without a `.git`, and without touching the repo's HEAD or index:
/// a throwaway index (`GIT_INDEX_FILE`) is filled with `read-tree` and written
/// out with `checkout-index`. File modes and symlinks are kept. Returns the
/// paths of the tree's submodules: a push carries only their commit ids,
/// so each is an empty directory.
pub fn export_tree(repo: &Path, commit: &str, dest: &Path) -> Result<Vec<String>, GitError> {
    let sha = rev_parse(repo, &format!("{commit}^{{commit}}"))?
        .ok_or_else(|| GitError::UnknownCommit(commit.to_owned()))?;
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(GitError::DestNotEmpty(dest.display().to_string()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(io_err(dest))?;
        }
        Err(e) => return Err(io_err(dest)(e)),
    }
    let dest_abs: PathBuf = std::path::absolute(dest).map_err(io_err(dest))?;
    let scratch = tempfile::tempdir().map_err(|source| GitError::Io {
        path: std::env::temp_dir().display().to_string(),
        source,
    })?;
    let index = scratch.path().join("index");
    let mut read = command(repo);
    read.env("GIT_INDEX_FILE", &index).args(["read-tree", &sha]);
    run(read)?;
    let mut co = command(repo);
    co.env("GIT_INDEX_FILE", &index)
        .arg("--work-tree")
        .arg(&dest_abs)
        .args([
            "-c",
            "core.autocrlf=false",
            "checkout-index",
            "--all",
            "--force",
        ]);
    run(co)?;
    let mut ls = command(repo);
    ls.env("GIT_INDEX_FILE", &index)
        .args(["ls-files", "--stage", "-z"]);
    Ok(gitlinks(&run(ls)?))
}

/// The paths of submodule entries (mode 160000) in `git ls-files --stage
/// -z` output.
fn gitlinks(stage: &str) -> Vec<String> {
    stage
        .split('\0')
        .filter_map(|e| e.split_once('\t'))
        .filter(|(meta, _)| meta.starts_with("160000 "))
        .map(|(_, path)| path.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn up(old: &str, new: &str, r: &str) -> RefUpdate {
        RefUpdate {
            old: old.into(),
            new: new.into(),
            refname: r.into(),
        }
    }

    #[test]
    fn submodules_are_the_gitlink_entries() {
        let stage = [
            "100644 7898192 0\ta",
            "160000 e4c92ab 0\tlibs/sub",
            "160000 e4c92ab 0\tweird\tname",
        ]
        .join("\0");
        assert_eq!(gitlinks(&stage), ["libs/sub", "weird\tname"]);
        assert!(gitlinks("").is_empty());
    }

    #[test]
    fn branch_names() {
        assert!(valid_branch_name("main"));
        assert!(valid_branch_name("release/1.0"));
        for bad in [
            "", "-x", "a..b", "a b", "a;b", "/a", "a/", "x.lock", "$(id)",
        ] {
            assert!(!valid_branch_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_hook_lines() {
        let input =
            format!("{Z} {A} refs/heads/main\n{A} {B} refs/heads/dev\n\n{B} {Z} refs/tags/v1\n");
        let ups = parse_ref_updates(&input).unwrap();
        assert_eq!(ups.len(), 3);
        assert_eq!(ups[0], up(Z, A, "refs/heads/main"));
        assert!(!ups[0].is_delete());
        assert!(ups[2].is_delete());
        assert_eq!(ups[1].branch(), Some("dev"));
        assert_eq!(ups[2].branch(), None);
        let sha256 = "a".repeat(64);
        assert!(parse_ref_updates(&format!("{Z} {sha256} refs/heads/main")).is_ok());
        for bad in [
            "garbage",
            &format!("{A} {B}"),
            &format!("{A} {B} main"),
            &format!("{A} xyz refs/heads/main"),
            &format!("{A} {B} refs/heads/main extra"),
        ] {
            assert!(parse_ref_updates(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deploy_branch_resolution() {
        assert_eq!(resolve_deploy_branch(None, true, false), "main");
        assert_eq!(resolve_deploy_branch(None, true, true), "main");
        assert_eq!(resolve_deploy_branch(None, false, true), "master");
        assert_eq!(resolve_deploy_branch(None, false, false), "main");
        assert_eq!(resolve_deploy_branch(Some("prod"), true, true), "prod");
    }

    #[test]
    fn plans_deploy_only_for_the_deploy_branch() {
        let p = plan_hook(&[up(Z, A, "refs/heads/main")], "main");
        assert_eq!(p.deploy.as_deref(), Some(A));
        assert!(p.notes.is_empty());

        let p = plan_hook(&[up(Z, A, "refs/heads/feature")], "main");
        assert_eq!(p.deploy, None);
        assert_eq!(
            p.notes,
            [Note::Stored {
                branch: "feature".into()
            }]
        );

        let p = plan_hook(&[up(A, Z, "refs/heads/main")], "main");
        assert_eq!(p.deploy, None);
        assert_eq!(
            p.notes,
            [Note::Deleted {
                branch: "main".into()
            }]
        );

        let p = plan_hook(
            &[
                up(Z, A, "refs/heads/dev"),
                up(A, B, "refs/heads/prod"),
                up(Z, B, "refs/tags/v1"),
                up(B, Z, "refs/heads/old"),
            ],
            "prod",
        );
        assert_eq!(p.deploy.as_deref(), Some(B));
        assert_eq!(
            p.notes,
            [
                Note::Stored {
                    branch: "dev".into()
                },
                Note::OtherRef {
                    refname: "refs/tags/v1".into()
                },
                Note::Deleted {
                    branch: "old".into()
                },
            ]
        );
        // "main" as a prefix of another branch does not deploy
        assert_eq!(
            plan_hook(&[up(Z, A, "refs/heads/main2")], "main").deploy,
            None
        );
        assert_eq!(
            plan_hook(&[up(Z, A, "refs/tags/main")], "main").deploy,
            None
        );
    }

    #[test]
    fn hook_script_quotes_everything() {
        let s = hook_script(Path::new("/opt/k a/kata"), Path::new("/srv/it's"), "app");
        assert_eq!(
            s,
            "#!/bin/sh\n# Installed by kata: deploys pushes to app. Rewritten on every push.\n\
             export KATA_ROOT='/srv/it'\\''s'\nexec '/opt/k a/kata' git-hook app\n"
        );
    }

    // ----- against real git -----

    fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn ensure_repo_creates_once_and_installs_hook() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repos").join("app");
        let hook = hook_script(Path::new("/k"), root.path(), "app");
        assert!(ensure_repo(&repo, &hook).unwrap());
        assert!(is_repo(&repo));
        let head = std::fs::read_to_string(repo.join("HEAD")).unwrap();
        assert_eq!(head.trim(), "ref: refs/heads/main");
        let h = repo.join("hooks/post-receive");
        assert_eq!(std::fs::read_to_string(&h).unwrap(), hook);
        assert_eq!(
            std::fs::metadata(&h).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(!ensure_repo(&repo, &hook).unwrap());
        // a changed kata path rewrites the hook
        let hook2 = hook_script(Path::new("/k2"), root.path(), "app");
        assert!(!ensure_repo(&repo, &hook2).unwrap());
        assert_eq!(std::fs::read_to_string(&h).unwrap(), hook2);
        // nothing but the repo in repos/
        let names: Vec<_> = std::fs::read_dir(root.path().join("repos"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["app"]);
    }

    #[test]
    fn repos_check_objects_and_refuse_malformed_ones() {
        let root = tempfile::tempdir().unwrap();
        // a repo from before the setting existed: turned on by the next push
        git_in(root.path(), &["init", "-q", "--bare", "-b", "main", "old"]);
        let old = root.path().join("old");
        let hook = hook_script(Path::new("/k"), root.path(), "old");
        assert!(!ensure_repo(&old, &hook).unwrap());
        let repo = root.path().join("new");
        assert!(ensure_repo(&repo, &hook).unwrap());
        for r in [&old, &repo] {
            let mut c = command(r);
            c.args(["config", "--get", "receive.fsckObjects"]);
            assert_eq!(run(c).unwrap().trim(), "true");
        }
        // a commit whose author has no email: git fsck's missingEmail
        let work = root.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git_in(&work, &["init", "-q"]);
        let body = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
                    author nobody 1700000000 +0000\n\
                    committer nobody 1700000000 +0000\n\nbad\n";
        std::fs::write(work.join("obj"), body).unwrap();
        let bad = git_in(
            &work,
            &["hash-object", "-t", "commit", "--literally", "-w", "obj"],
        );
        git_in(&work, &["update-ref", "refs/heads/main", &bad]);
        let out = Command::new("git")
            .args(["push", "-q"])
            .arg(&repo)
            .arg("main")
            .current_dir(&work)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(!out.status.success(), "a malformed commit was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("fsck"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(rev_parse(&repo, "refs/heads/main").unwrap(), None);
    }

    #[test]
    fn racing_creations_agree() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repos").join("app");
        let hook = hook_script(Path::new("/k"), root.path(), "app");
        let created: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| s.spawn(|| ensure_repo(&repo, &hook).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(created.iter().filter(|c| **c).count(), 1);
        assert!(is_repo(&repo));
        assert_eq!(
            std::fs::read_dir(root.path().join("repos"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn export_tree_is_exact_and_leaves_head_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("bare");
        git_in(root.path(), &["init", "-q", "--bare", "-b", "main", "bare"]);
        let work = root.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git_in(&work, &["init", "-q"]);
        std::fs::write(work.join("a.txt"), "one\r\n").unwrap();
        std::fs::create_dir(work.join("sub")).unwrap();
        std::fs::write(work.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            work.join("sub/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.txt", work.join("link")).unwrap();
        std::fs::write(work.join(".gitattributes"), "a.txt export-ignore\n").unwrap();
        git_in(&work, &["add", "-A"]);
        git_in(&work, &["commit", "-qm", "one"]);
        let c1 = git_in(&work, &["rev-parse", "HEAD"]);
        std::fs::remove_file(work.join("sub/run.sh")).unwrap();
        std::fs::write(work.join("b.txt"), "two").unwrap();
        git_in(&work, &["add", "-A"]);
        git_in(&work, &["commit", "-qm", "two"]);
        git_in(&work, &["push", "-q", repo.to_str().unwrap(), "main"]);
        let head_before = std::fs::read_to_string(repo.join("HEAD")).unwrap();

        let d1 = root.path().join("out1");
        export_tree(&repo, &c1, &d1).unwrap();
        assert_eq!(std::fs::read(d1.join("a.txt")).unwrap(), b"one\r\n");
        let mode = std::fs::metadata(d1.join("sub/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            std::fs::read_link(d1.join("link")).unwrap(),
            Path::new("a.txt")
        );
        assert!(!d1.join("b.txt").exists());
        assert!(!d1.join(".git").exists());

        let d2 = root.path().join("out2");
        export_tree(&repo, "main", &d2).unwrap();
        assert!(!d2.join("sub").exists());
        assert_eq!(std::fs::read_to_string(d2.join("b.txt")).unwrap(), "two");

        assert_eq!(
            std::fs::read_to_string(repo.join("HEAD")).unwrap(),
            head_before
        );
        assert!(!repo.join("index").exists());
        // refuses a non-empty destination and unknown commits
        assert!(matches!(
            export_tree(&repo, "main", &d2),
            Err(GitError::DestNotEmpty(_))
        ));
        let d3 = root.path().join("out3");
        assert!(matches!(
            export_tree(&repo, &"f".repeat(40), &d3),
            Err(GitError::UnknownCommit(_))
        ));
        assert!(matches!(
            export_tree(&repo, "--all", &d3),
            Err(GitError::UnknownCommit(_))
        ));
    }

    #[test]
    fn git_commands_drop_hook_environment() {
        let mut probe = command(Path::new("/r"));
        probe.arg("status");
        let removed: Vec<String> = probe
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for v in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_QUARANTINE_PATH",
            "GIT_OBJECT_DIRECTORY",
        ] {
            assert!(removed.iter().any(|r| r == v), "{v}");
        }
        let args: Vec<_> = probe.get_args().collect();
        assert_eq!(args, ["--git-dir", "/r", "status"]);
    }
}
