//! `setup:ssh`, `ssh:keys`, `ssh:remove`, the forced command and the git hook.

use crate::access::{self, Grant, Role};
use crate::git;
use crate::paths::Paths;
use crate::ssh::{self, Added, Route};
use crate::{audit, settings, state, ui};
use anyhow::Context;
use std::io::{Read, Write};
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

pub fn setup_ssh(
    file: &str,
    name: Option<&str>,
    role: Option<Role>,
    apps: Option<&str>,
) -> anyhow::Result<i32> {
    // --apps alone means a deploy key; neither keeps a registered key's role
    let grant = match (role, apps) {
        (None, None) => None,
        (r, a) => Some(access::grant(r.unwrap_or(Role::Deploy), a)?),
    };
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
        let report = ak.add(&exe, &keys, name, grant.as_ref())?;
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
            Added::Changed { entry, .. } => ("changed", entry),
        };
        println!(
            "{what:<8} {:<24} {:<7} {} {}{}",
            e.name,
            e.role,
            e.key_type,
            e.fingerprint,
            apps_suffix(e)
        );
    }
    for (fp, lines) in foreign {
        ui::warn(format!(
            "{fp} also appears without kata's forced command on line {} of {}; \
             sshd uses the first matching line",
            join_lines(&lines),
            path.display()
        ));
    }
    println!("wrote    {}", path.display());
    Ok(0)
}

fn apps_suffix(e: &ssh::KeyEntry) -> String {
    if e.apps.is_empty() {
        String::new()
    } else {
        format!(" apps {}", e.apps.join(","))
    }
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
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
    let apps = |e: &ssh::KeyEntry| {
        if e.apps.is_empty() {
            "*".to_owned()
        } else {
            e.apps.join(",")
        }
    };
    let aw = list.iter().map(|e| apps(e).len()).max().unwrap_or(4).max(4);
    println!(
        "{:<w$}  {:<6}  {:<aw$}  {:<tw$}  FINGERPRINT",
        "NAME", "ROLE", "APPS", "TYPE"
    );
    for e in list {
        println!(
            "{:<w$}  {:<6}  {:<aw$}  {:<tw$}  {}",
            e.name,
            e.role,
            apps(e),
            e.key_type,
            e.fingerprint
        );
    }
    Ok(0)
}

pub fn remove(key: &str) -> anyhow::Result<i32> {
    let path = ssh::authorized_keys_path()?;
    let gone = ssh::update(&path, |ak| ak.remove(key))?;
    let e = &gone.entry;
    let lines = if gone.lines > 1 {
        format!(" ({} lines)", gone.lines)
    } else {
        String::new()
    };
    println!(
        "removed  {:<24} {} {}{lines}",
        e.name, e.key_type, e.fingerprint
    );
    if !gone.foreign.is_empty() {
        ui::warn(format!(
            "{} still appears on line {} of {}, which kata did not write (no kata forced \
             command with `restrict`); it was left alone: remove it by hand to lock the key out",
            e.fingerprint,
            join_lines(&gone.foreign),
            path.display()
        ));
    }
    Ok(0)
}

/// `kata audit [APP] [--since TIME] [--json]`.
pub fn audit(app: Option<&str>, since: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = app.map(super::app_arg).transpose()?;
    let since = since
        .map(|s| audit::parse_since(s, crate::release::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let path = audit::log_path(&paths);
    let (events, bad) =
        audit::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if bad > 0 {
        ui::warn(format!(
            "{bad} lines of {} are not events; skipped",
            path.display()
        ));
    }
    let shown = audit::select(&events, app.as_deref(), since);
    if json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        print!("{}", audit::table(&shown));
    }
    Ok(0)
}

fn print_remote_help(grant: &Grant) {
    use clap::CommandFactory;
    println!("kata: git-push deploys over SSH.");
    println!();
    println!("  git remote add kata <user>@<host>:<app>");
    println!("  git push kata main          # deploy");
    println!("  git clone <user>@<host>:<app>");
    println!("  ssh <user>@<host> <command> [args]");
    if grant.role == Role::Deploy {
        println!();
        println!("This is a deploy key for apps {}.", grant.apps.join(","));
    }
    println!();
    println!("Commands:");
    let cli = crate::cli::Cli::command();
    for name in ssh::remote_commands() {
        let reachable = match access::class(&name) {
            Some(access::Class::Admin) => grant.role == Role::Admin,
            Some(_) => true,
            None => false,
        };
        let about = cli
            .find_subcommand(&name)
            .filter(|c| !c.is_hide_set() && reachable)
            .and_then(|c| c.get_about().map(|a| a.to_string()));
        if let Some(about) = about {
            println!("  {name:<16} {about}");
        }
    }
}

/// What one connection did, for the audit log.
struct Outcome {
    status: i32,
    release: Option<u64>,
    refused: Option<String>,
}

impl Outcome {
    fn code(status: i32) -> Outcome {
        Outcome {
            status,
            release: None,
            refused: None,
        }
    }
    fn refused(msg: impl std::fmt::Display) -> Outcome {
        let msg = msg.to_string();
        // a gone client must not keep the refusal out of the audit log
        let _ = writeln!(std::io::stderr(), "error: {msg}");
        Outcome {
            status: 1,
            release: None,
            refused: Some(msg),
        }
    }
}

/// The forced command: sshd runs `kata ssh-serve --key FP --name NAME --role
/// R [--apps P]` for every connection with the client's request in
/// `SSH_ORIGINAL_COMMAND`. The role comes from that line (kata wrote it, sshd
/// chose it by the key the client proved it holds); the client's request is
/// checked against it, run, and recorded in the audit log.
pub fn serve(key: &str, name: &str, role: Role, apps: Option<&str>) -> anyhow::Result<i32> {
    let grant = Grant {
        role,
        apps: match role {
            Role::Admin => vec![],
            // unreadable patterns own nothing
            Role::Deploy => apps
                .and_then(|a| access::parse_patterns(a).ok())
                .unwrap_or_default(),
        },
    };
    let caller = audit::Caller {
        name: name.to_owned(),
        fingerprint: key.to_owned(),
        grant: grant.clone(),
    };
    audit::set_caller(caller.clone());
    audit::survive_hangup();
    let paths = Paths::from_env();
    let original = std::env::var_os("SSH_ORIGINAL_COMMAND")
        .map(|s| s.into_string())
        .unwrap_or(Ok(String::new()));
    let (words, command, app, outcome) = match original {
        Err(_) => (
            vec![],
            "?".to_owned(),
            None,
            Outcome::refused("the command is not valid UTF-8"),
        ),
        Ok(original) => {
            let words = shell_words::split(&original)
                .unwrap_or_else(|_| vec![original.chars().take(200).collect()]);
            match ssh::route(&original) {
                Err(refusal) => {
                    let first = words.first().cloned().unwrap_or_default();
                    (words, first, None, Outcome::refused(refusal))
                }
                Ok(route) => {
                    let (command, app) = ssh::target(&route);
                    let to = rollback_release(&route);
                    let allowed = access::allowed(&grant, &command, app.as_deref())
                        .map_err(|r| r.to_string())
                        .and_then(|()| match (&app, grant.role) {
                            (Some(a), Role::Deploy) => redeploy_confined(&paths, &command, a, to),
                            _ => Ok(()),
                        });
                    let outcome = match allowed {
                        Err(refusal) => Outcome::refused(refusal),
                        // a failure is recorded too, like any other outcome;
                        // so is a panic (printing to a client that is gone)
                        Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_route(&paths, route, &caller)
                        }))
                        .unwrap_or_else(|_| Ok(Outcome::code(1)))
                        .unwrap_or_else(|e| {
                            let _ = writeln!(std::io::stderr(), "error: {e:#}");
                            Outcome::code(1)
                        }),
                    };
                    (words, command, app, outcome)
                }
            }
        }
    };
    audit::record(
        &paths,
        &audit::Event {
            time: audit::rfc3339(crate::release::now()),
            key: name.to_owned(),
            fingerprint: key.to_owned(),
            role,
            command: command.chars().take(64).collect(),
            args: audit::redact(&words),
            app,
            status: outcome.status,
            refused: outcome.refused,
            release: outcome.release,
            disconnected: audit::client_gone(),
        },
    );
    Ok(outcome.status)
}

/// A deploy key may not redeploy a release whose kata-compose.yaml reaches
/// the host (an admin pushed it): `deploy`, `config:set` and `config:unset`
/// render it again with the app's config, which the deploy key would choose
/// (`volumes: ["${DIR}:/x"]` with `DIR=/`), and `rollback` may pick any kept
/// release. The files are read from the bare repository, which no container
/// mounts.
fn redeploy_confined(
    paths: &Paths,
    command: &str,
    app: &str,
    to: Option<u64>,
) -> Result<(), String> {
    let all = crate::release::list(paths, app).unwrap_or_default();
    let releases: Vec<&crate::release::Release> = match command {
        "deploy" | "config:set" | "config:unset" => crate::release::live(&all)
            .or(all.last())
            .into_iter()
            .collect(),
        // the release it would deploy, judged by today's rules (a file
        // pushed before a rule existed is refused like a new one)
        "rollback" => {
            let to = to.or_else(|| crate::deploy::rollback_target(&all));
            all.iter().filter(|r| Some(r.number) == to).collect()
        }
        _ => return Ok(()),
    };
    for r in releases {
        let findings =
            confinement_of(&paths.repo(app), app, &r.commit).map_err(|e| e.to_string())?;
        if !findings.is_empty() {
            return Err(format!(
                "release {} of {app} reaches outside the app (an admin key pushed it); \
                 only an admin key may redeploy it or change its config (this is a deploy key):\n{}",
                r.number,
                findings.join("\n")
            ));
        }
    }
    Ok(())
}

/// The release `rollback APP N` names, if the request is one.
fn rollback_release(route: &Route) -> Option<u64> {
    use clap::CommandFactory;
    let Route::Kata { args } = route else {
        return None;
    };
    let argv = std::iter::once("kata").chain(args.iter().map(String::as_str));
    let m = crate::cli::Cli::command().try_get_matches_from(argv).ok()?;
    match m.subcommand()? {
        ("rollback", a) => a.try_get_one::<u64>("release").ok().flatten().copied(),
        _ => None,
    }
}

fn run_route(paths: &Paths, route: Route, caller: &audit::Caller) -> anyhow::Result<Outcome> {
    Ok(match route {
        Route::Help => {
            print_remote_help(&caller.grant);
            Outcome::code(0)
        }
        Route::ReceivePack { app } => {
            let repo = paths.repo(&app);
            let root = std::path::absolute(paths.root())?;
            let exe = kata_exe()?;
            let hook = git::hook_script(&exe, &root, &app);
            // stdout belongs to the git protocol from here on: notes go to stderr
            if git::ensure_repo(&repo, &hook)? {
                eprintln!("-----> Created app {app}");
            }
            git::install_hook_as(
                &repo,
                "pre-receive",
                &git::pre_receive_script(&exe, &root, &app),
            )?;
            receive_pack(&repo, caller)?
        }
        Route::UploadPack { app } => {
            let repo = paths.repo(&app);
            if !git::is_repo(&repo) {
                return Ok(Outcome::refused(format!("no app named {app}")));
            }
            let status = git_process("upload-pack", &repo, caller)
                .status()
                .context("cannot run git upload-pack")?;
            Outcome::code(status.code().unwrap_or(1))
        }
        Route::Kata { args } => {
            let argv = std::iter::once("kata".to_owned()).chain(args);
            let code = match <crate::cli::Cli as clap::Parser>::try_parse_from(argv) {
                Ok(cli) => match crate::cmd::run(cli) {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        1
                    }
                },
                Err(e) => {
                    let _ = e.print();
                    e.exit_code()
                }
            };
            Outcome::code(code)
        }
    })
}

fn git_process(sub: &str, repo: &Path, caller: &audit::Caller) -> Command {
    let mut c = Command::new("git");
    for v in git::GIT_ENV {
        c.env_remove(v);
    }
    if sub == "receive-pack" {
        // lets `git push -o verbose` reach the hook
        c.args(["-c", "receive.advertisePushOptions=true"]);
    }
    c.arg(sub).arg(repo).envs(caller.env());
    c
}

/// Runs `git receive-pack <repo>` with inherited stdio and waits for it.
/// git ignores the post-receive hook's exit status, so the hooks report
/// through the file named by `KATA_PUSH_STATUS`: a refusal, a failed deploy,
/// the release made. A refusal or failure makes `git push` itself fail.
fn receive_pack(repo: &Path, caller: &audit::Caller) -> anyhow::Result<Outcome> {
    let status_file = tempfile::Builder::new()
        .prefix("kata-push-")
        .tempfile()
        .context("creating the push status file")?;
    let status = git_process("receive-pack", repo, caller)
        .env(PUSH_STATUS_ENV, status_file.path())
        .status()
        .context("cannot run git receive-pack")?;
    let report = std::fs::read_to_string(status_file.path()).unwrap_or_default();
    let report = PushReport::parse(&report);
    if let Some(why) = report.refused {
        return Ok(Outcome {
            status: 1,
            release: None,
            refused: Some(why),
        });
    }
    let mut out = Outcome {
        status: status.code().unwrap_or(1),
        release: report.release,
        refused: None,
    };
    if out.status == 0 && report.failed {
        eprintln!(
            "error: the push was stored, but its deploy failed (see above); the previous release is still live"
        );
        out.status = 1;
    } else if out.status == 0 && report.interrupted() {
        eprintln!(
            "error: the push was stored, but its deploy was interrupted (its process died); the next kata command for the app finishes or undoes it"
        );
        out.status = 1;
    }
    Ok(out)
}

/// Set by `serve` for receive-pack; the hooks append one line per event.
const PUSH_STATUS_ENV: &str = "KATA_PUSH_STATUS";

/// What the hooks wrote into the push status file.
#[derive(Debug, Default, PartialEq, Eq)]
struct PushReport {
    refused: Option<String>,
    failed: bool,
    release: Option<u64>,
    /// A deploy began (`deploying APP`).
    started: bool,
}

impl PushReport {
    fn parse(text: &str) -> PushReport {
        let mut r = PushReport::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("refused", why)) => r.refused = Some(why.to_owned()),
                Some(("deploy-failed", _)) => r.failed = true,
                Some(("release", n)) => r.release = n.trim().parse().ok(),
                Some(("deploying", _)) => r.started = true,
                _ => {}
            }
        }
        r
    }

    /// A deploy began and its hook never said how it ended: it was killed.
    fn interrupted(&self) -> bool {
        self.started && !self.failed && self.release.is_none()
    }
}

fn report(line: &str) {
    if let Some(path) = std::env::var_os(PUSH_STATUS_ENV) {
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    }
}

/// The git hooks: `--pre-receive` checks a deploy key's push before any ref
/// moves; post-receive deploys the deploy branch's new commit.
pub fn git_hook(app: &str, pre_receive: bool) -> anyhow::Result<i32> {
    if pre_receive {
        return check_push(app);
    }
    let result = hook(app);
    match &result {
        Ok(HookDone::Deployed(n)) => report(&format!("release {n}")),
        Ok(HookDone::Nothing) => {}
        _ => report(&format!("deploy-failed {app}")),
    }
    if std::env::var_os(PUSH_STATUS_ENV).is_none() {
        // a push made on the host, not through the forced command
        let paths = Paths::from_env();
        audit::record(
            &paths,
            &audit::Event {
                time: audit::rfc3339(crate::release::now()),
                key: "(host)".into(),
                fingerprint: String::new(),
                role: Role::Admin,
                command: "git-receive-pack".into(),
                args: vec![],
                app: Some(app.to_owned()),
                status: i32::from(!matches!(
                    result,
                    Ok(HookDone::Deployed(_) | HookDone::Nothing)
                )),
                refused: None,
                release: match result {
                    Ok(HookDone::Deployed(n)) => Some(n),
                    _ => None,
                },
                disconnected: false,
            },
        );
    }
    match result {
        Ok(HookDone::Deployed(_) | HookDone::Nothing) => Ok(0),
        Ok(HookDone::Failed) => Ok(1),
        Err(e) => Err(e),
    }
}

/// The pre-receive hook. Admin keys and host pushes pass; a deploy key's
/// push is refused when the new commit of any pushed ref has a
/// kata-compose.yaml that would reach the host (see `access::confine`), so
/// nothing of it is stored. (Commits below a tip are stored unchecked; kata
/// only ever deploys tips and kept releases.)
fn check_push(app: &str) -> anyhow::Result<i32> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading ref updates from git")?;
    let Some(caller) = audit::caller() else {
        return Ok(0);
    };
    if caller.grant.role == Role::Admin {
        return Ok(0);
    }
    let app = super::app_arg(app)?;
    let refuse = |why: String| {
        eprintln!("error: {why}");
        report(&format!(
            "refused {}",
            why.lines().next().unwrap_or_default()
        ));
        Ok(1)
    };
    if !caller.grant.owns(&app) {
        return refuse(format!("app {app} is not yours (deploy key)"));
    }
    let repo = Paths::from_env().repo(&app);
    for update in git::parse_ref_updates(&input)? {
        if update.is_delete() {
            continue;
        }
        let findings = confinement_of(&repo, &app, &update.new)?;
        if !findings.is_empty() {
            let short = &update.new[..update.new.len().min(7)];
            return refuse(format!(
                "push refused: {short} ({}) reaches outside the app \
                 (this is a deploy key; an admin key may push it):\n{}",
                update.refname,
                findings.join("\n")
            ));
        }
    }
    Ok(0)
}

/// The confinement findings for `commit`'s kata-compose.yaml, read from the
/// objects git is receiving (the hook's quarantine environment is kept).
fn confinement_of(repo: &Path, app: &str, commit: &str) -> anyhow::Result<Vec<String>> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let o = Command::new("git")
            .arg("--git-dir")
            .arg(repo)
            .args(args)
            .output()
            .context("running git")?;
        anyhow::ensure!(
            o.status.success(),
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let mut findings = vec![];
    // symlinks out of the checkout: compose and the build follow them on the host
    for entry in git(&["ls-tree", "-r", "-z", commit])?.split('\0') {
        if let Some((meta, path)) = entry.split_once('\t')
            && let [mode, _, blob] = meta.split_whitespace().collect::<Vec<_>>()[..]
            && mode == "120000"
        {
            let target = git(&["cat-file", "blob", blob])?;
            if access::confine::symlink_escapes(path, &target) {
                findings.push(format!(
                    "{path}: a symlink to {target:?} leads out of the app (not allowed for deploy keys)"
                ));
            }
        }
    }
    let entry = git(&["ls-tree", commit, "--", "kata-compose.yaml"])?;
    let Some((meta, _)) = entry.trim().split_once('\t') else {
        return Ok(findings); // no file: the deploy reports it
    };
    let meta: Vec<&str> = meta.split_whitespace().collect();
    let [mode, kind, blob] = meta[..] else {
        return Ok(findings);
    };
    if mode == "120000" || kind != "blob" {
        findings.push(
            "kata-compose.yaml: must be a file, not a symlink (not allowed for deploy keys)".into(),
        );
        return Ok(findings);
    }
    let text = git(&["cat-file", "blob", blob])?;
    // a file the check cannot read is refused (with the parser's position)
    match crate::yaml::parse(&text) {
        Ok(root) => findings.extend(
            access::confine::check(&root, app)
                .iter()
                .map(|d| d.display("kata-compose.yaml").to_string()),
        ),
        Err(e) => findings.push(match e.pos {
            Some(p) => format!("kata-compose.yaml:{}:{}: {}", p.line, p.column, e.message),
            None => format!("kata-compose.yaml: {}", e.message),
        }),
    }
    Ok(findings)
}

enum HookDone {
    Nothing,
    Deployed(u64),
    Failed,
}

fn hook(app: &str) -> anyhow::Result<HookDone> {
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
        return Ok(HookDone::Nothing);
    };
    let short = &commit[..commit.len().min(7)];
    let _lock = crate::deploy::lock_app(&paths, &app).context("taking the app's deploy lock")?;
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
        return Ok(HookDone::Nothing);
    }
    if let Err(e) = git::fix_dangling_head(&repo, &branch) {
        ui::warn(format!(
            "could not point the repository's HEAD at {branch}: {e}"
        ));
    }
    ui::step(format!("Deploying {app} from {branch} ({short})"));
    report(&format!("deploying {app}"));
    match crate::deploy::deploy_new_release(&paths, &app, &commit) {
        Ok(n) => Ok(HookDone::Deployed(n)),
        Err(e) => {
            // a blank line first: the last output (a build step's, say) may
            // not end in a newline, and the error must start a line of its own
            eprintln!("\nerror: deploy of {app} ({short}) failed: {e}");
            Ok(HookDone::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_reports_carry_refusals_failures_and_releases() {
        assert_eq!(PushReport::parse(""), PushReport::default());
        let r = PushReport::parse("release 7\n");
        assert_eq!(r.release, Some(7));
        assert!(!r.failed && r.refused.is_none());
        let r = PushReport::parse("deploying shop\n");
        assert!(r.interrupted(), "a deploy that began and never ended");
        let r = PushReport::parse("deploying shop\nrelease 8\n");
        assert!(!r.interrupted() && r.release == Some(8));
        let r = PushReport::parse("deploy-failed shop\n");
        assert!(r.failed && r.release.is_none());
        let r = PushReport::parse("refused push refused: abc has host mounts\n");
        assert_eq!(
            r.refused.as_deref(),
            Some("push refused: abc has host mounts")
        );
    }
}
