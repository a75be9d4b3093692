//! `setup:ssh`, `ssh:keys`, `ssh:remove`, the forced command and the git hook.

use crate::git;
use crate::paths::Paths;
use crate::ssh::{self, Added, Route};
use crate::{lock, settings, state, ui};
use anyhow::Context;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The running kata binary, by absolute path (written into authorized_keys
/// and the post-receive hook).
fn kata_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the kata binary's path")?;
    anyhow::ensure!(
        !exe.to_string_lossy().ends_with(" (deleted)"),
        "the running kata binary was deleted or replaced; run the installed one"
    );
    Ok(exe)
}

pub fn setup_ssh(file: &str, name: Option<&str>) -> anyhow::Result<i32> {
    let input = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading keys from stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    let keys = ssh::parse_public_keys(&input)?;
    let exe = kata_exe()?;
    let path = ssh::authorized_keys_path()?;
    let (report, foreign) = ssh::update(&path, |ak| {
        let report = ak.add(&exe, &keys, name)?;
        let foreign: Vec<(String, Vec<usize>)> = report
            .iter()
            .map(|a| {
                let fp = a.entry().fingerprint.clone();
                let lines = ak.foreign_lines_with(&fp);
                (fp, lines)
            })
            .filter(|(_, l)| !l.is_empty())
            .collect();
        Ok((report, foreign))
    })?;
    for a in &report {
        let (what, e) = match a {
            Added::New(e) => ("added", e),
            Added::Exists(e) => ("exists", e),
            Added::Renamed { entry, .. } => ("renamed", entry),
        };
        println!("{what:<8} {:<24} {} {}", e.name, e.key_type, e.fingerprint);
    }
    for (fp, lines) in foreign {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        ui::warn(format!(
            "{fp} also appears without kata's forced command on line {} of {}; \
             sshd uses the first matching line",
            lines.join(", "),
            path.display()
        ));
    }
    println!("wrote    {}", path.display());
    Ok(0)
}

pub fn keys(json: bool) -> anyhow::Result<i32> {
    let path = ssh::authorized_keys_path()?;
    let ak = ssh::load(&path)?;
    let list = ak.list();
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no keys; add one with `kata setup:ssh KEY.pub`");
        return Ok(0);
    }
    let w = list.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    let tw = list
        .iter()
        .map(|e| e.key_type.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<w$}  {:<tw$}  FINGERPRINT", "NAME", "TYPE");
    for e in list {
        println!("{:<w$}  {:<tw$}  {}", e.name, e.key_type, e.fingerprint);
    }
    Ok(0)
}

pub fn remove(key: &str) -> anyhow::Result<i32> {
    let path = ssh::authorized_keys_path()?;
    let gone = ssh::update(&path, |ak| ak.remove(key))?;
    println!(
        "removed  {:<24} {} {}",
        gone.name, gone.key_type, gone.fingerprint
    );
    Ok(0)
}

fn refuse(msg: impl std::fmt::Display) -> anyhow::Result<i32> {
    eprintln!("error: {msg}");
    Ok(1)
}

fn print_remote_help() {
    use clap::CommandFactory;
    println!("kata: git-push deploys over SSH.");
    println!();
    println!("  git remote add kata <user>@<host>:<app>");
    println!("  git push kata main          # deploy");
    println!("  git clone <user>@<host>:<app>");
    println!("  ssh <user>@<host> <command> [args]");
    println!();
    println!("Commands:");
    let cli = crate::cli::Cli::command();
    for name in ssh::remote_commands() {
        let about = cli
            .find_subcommand(&name)
            .filter(|c| !c.is_hide_set())
            .and_then(|c| c.get_about().map(|a| a.to_string()));
        if let Some(about) = about {
            println!("  {name:<16} {about}");
        }
    }
}

/// The forced command: sshd runs `kata ssh-serve --key FP --name NAME` for
/// every connection with the client's request in `SSH_ORIGINAL_COMMAND`.
/// `key`/`name` identify the key for auditing; they are only passed on to
/// the processes started for the push (`KATA_SSH_KEY`, `KATA_SSH_USER`).
pub fn serve(key: &str, name: &str) -> anyhow::Result<i32> {
    let original = match std::env::var("SSH_ORIGINAL_COMMAND") {
        Ok(s) => s,
        Err(std::env::VarError::NotPresent) => String::new(),
        Err(std::env::VarError::NotUnicode(_)) => return refuse("the command is not valid UTF-8"),
    };
    let route = match ssh::route(&original) {
        Ok(r) => r,
        Err(refusal) => return refuse(refusal),
    };
    let paths = Paths::from_env();
    match route {
        Route::Help => {
            print_remote_help();
            Ok(0)
        }
        Route::ReceivePack { app } => {
            let repo = paths.repo(&app);
            let root = std::path::absolute(paths.root())?;
            let hook = git::hook_script(&kata_exe()?, &root, &app);
            // stdout belongs to the git protocol from here on: notes go to stderr
            if git::ensure_repo(&repo, &hook)? {
                eprintln!("-----> Created app {app}");
            }
            receive_pack(&repo, key, name)
        }
        Route::UploadPack { app } => {
            let repo = paths.repo(&app);
            if !git::is_repo(&repo) {
                return refuse(format!("no app named {app}"));
            }
            exec_upload_pack(&repo, key, name)
        }
        Route::Kata { args } => {
            let argv = std::iter::once("kata".to_owned()).chain(args);
            match <crate::cli::Cli as clap::Parser>::try_parse_from(argv) {
                Ok(cli) => crate::cli::run(cli),
                Err(e) => {
                    let _ = e.print();
                    Ok(e.exit_code())
                }
            }
        }
    }
}

fn git_process(sub: &str, repo: &Path, key: &str, name: &str) -> Command {
    let mut c = Command::new("git");
    for v in git::GIT_ENV {
        c.env_remove(v);
    }
    if sub == "receive-pack" {
        // lets `git push -o verbose` reach the hook
        c.args(["-c", "receive.advertisePushOptions=true"]);
    }
    c.arg(sub)
        .arg(repo)
        .env("KATA_SSH_KEY", key)
        .env("KATA_SSH_USER", name);
    c
}

/// Replaces this process with `git upload-pack <repo>` (stdio inherited: it
/// speaks the git protocol with the client).
fn exec_upload_pack(repo: &Path, key: &str, name: &str) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    let err = git_process("upload-pack", repo, key, name).exec();
    Err(anyhow::anyhow!("cannot run git upload-pack: {err}"))
}

/// Runs `git receive-pack <repo>` with inherited stdio and waits for it.
/// git ignores the post-receive hook's exit status, so the hook reports a
/// failed deploy through the file named by `KATA_PUSH_STATUS`; exiting
/// non-zero here makes `git push` itself fail.
fn receive_pack(repo: &Path, key: &str, name: &str) -> anyhow::Result<i32> {
    let status_file = tempfile::Builder::new()
        .prefix("kata-push-")
        .tempfile()
        .context("creating the push status file")?;
    let status = git_process("receive-pack", repo, key, name)
        .env(PUSH_STATUS_ENV, status_file.path())
        .status()
        .context("cannot run git receive-pack")?;
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    let report = std::fs::read_to_string(status_file.path()).unwrap_or_default();
    if report.trim().is_empty() {
        return Ok(0);
    }
    eprintln!(
        "error: the push was stored, but its deploy failed (see above); the previous release is still live"
    );
    Ok(1)
}

/// Set by `serve` for receive-pack; the hook appends a line when a deploy fails.
const PUSH_STATUS_ENV: &str = "KATA_PUSH_STATUS";

fn report_failure(app: &str) {
    if let Some(path) = std::env::var_os(PUSH_STATUS_ENV) {
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, format!("deploy-failed {app}\n").as_bytes())
            });
    }
}

/// The post-receive hook: reads git's `old new ref` lines and deploys the
/// deploy branch's new commit under the app's lock.
pub fn git_hook(app: &str) -> anyhow::Result<i32> {
    let result = hook(app);
    if !matches!(result, Ok(0)) {
        report_failure(app);
    }
    result
}

fn hook(app: &str) -> anyhow::Result<i32> {
    if ui::push_asks_verbose(|k| std::env::var(k).ok()) {
        ui::set_verbose();
    }
    let app = super::app_arg(app)?;
    let paths = Paths::from_env();
    let repo = paths.repo(&app);
    anyhow::ensure!(git::is_repo(&repo), "no repository for app {app}");
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading ref updates from git")?;
    let updates = git::parse_ref_updates(&input)?;

    let configured = match state::stored_branch(&paths, &app)? {
        Some(b) => Some(b),
        None => settings::load(&paths)?.deploy_branch,
    };
    if let Some(b) = &configured {
        anyhow::ensure!(
            git::valid_branch_name(b),
            "invalid deploy branch {b:?} in settings"
        );
    }
    let branch = git::resolve_deploy_branch(
        configured.as_deref(),
        git::branch_exists(&repo, "main")?,
        git::branch_exists(&repo, "master")?,
    );
    let plan = git::plan_hook(&updates, &branch);
    for note in &plan.notes {
        match note {
            git::Note::Stored { branch: b } => {
                ui::step(format!("Branch {b} stored; deploys happen from {branch}"))
            }
            git::Note::Deleted { branch: b } => {
                ui::step(format!("Branch {b} deleted; nothing to deploy"))
            }
            git::Note::OtherRef { refname } => ui::step(format!("{refname} stored")),
        }
    }
    let Some(commit) = plan.deploy else {
        return Ok(0);
    };
    let short = &commit[..commit.len().min(7)];
    let _lock = lock::exclusive(&paths.app_lock(&app), || {
        ui::info(format!("another deploy of {app} is running; waiting"))
    })
    .context("taking the app's deploy lock")?;
    // A later push may have moved the branch while we waited: its own hook
    // deploys that commit, so deploying ours now would go backwards.
    let tip = git::rev_parse(&repo, &format!("refs/heads/{branch}"))?;
    if tip.as_deref() != Some(commit.as_str()) {
        let now = tip
            .as_deref()
            .map(|t| &t[..t.len().min(7)])
            .unwrap_or("deleted");
        ui::step(format!(
            "{branch} has moved on to {now} since this push; the push that moved it deploys it"
        ));
        return Ok(0);
    }
    if let Err(e) = git::fix_dangling_head(&repo, &branch) {
        ui::warn(format!(
            "could not point the repository's HEAD at {branch}: {e}"
        ));
    }
    ui::step(format!("Deploying {app} from {branch} ({short})"));
    match crate::deploy::deploy_commit(&paths, &app, &commit) {
        Ok(()) => Ok(0),
        Err(e) => {
            // a blank line first: the last output (a build step's, say) may
            // not end in a newline, and the error must start a line of its own
            eprintln!("\nerror: deploy of {app} ({short}) failed: {e}");
            Ok(1)
        }
    }
}
