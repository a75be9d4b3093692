//! SSH access: the `authorized_keys` model (parse, add with dedupe by
//! fingerprint, remove, list, render) and the forced-command router.
//!
//! Everything here is pure except the small file layer at the bottom
//! (`authorized_keys_path`, `load`, `update`). The router never runs anything:
//! it turns `SSH_ORIGINAL_COMMAND` into a [`Route`] or a [`Refusal`], and the
//! shell (`cmd::ssh::serve`) acts on it without ever involving a shell.

use crate::access::{Grant, Role};
use serde::Serialize;
use ssh_key::{HashAlg, PublicKey};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

// ---------------------------------------------------------------------------
// Forced-command router
// ---------------------------------------------------------------------------

/// Longest `SSH_ORIGINAL_COMMAND` accepted. git sends ~40 bytes; kata commands
/// (`config:set app K=V ...`) stay far below this.
pub const MAX_COMMAND_LEN: usize = 8 * 1024;

/// Commands that only make sense on the host (they change host settings, keys,
/// or read arbitrary local files) and are refused over SSH.
fn host_only(word: &str) -> bool {
    crate::access::host_only().any(|h| h == word)
}

/// What a forced-command invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Empty command (`ssh kata`) or `help`.
    Help,
    /// `git push`: `git-receive-pack '<app>'`.
    ReceivePack { app: String },
    /// `git clone/fetch`: `git-upload-pack '<app>'`.
    UploadPack { app: String },
    /// A kata command; `args` are the split words (without a leading `kata`),
    /// to be parsed by clap.
    Kata { args: Vec<String> },
}

pub use crate::access::Refusal;

fn refuse(msg: impl Into<String>) -> Result<Route, Refusal> {
    Err(Refusal(msg.into()))
}

/// A short, printable rendering of untrusted input for error messages.
fn shown(s: &str) -> String {
    let short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

/// The kata subcommands that may run over SSH (every clap subcommand, hidden
/// ones included, minus the host-only ones).
pub fn remote_commands() -> Vec<String> {
    use clap::CommandFactory;
    crate::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| !host_only(n))
        .collect()
}

/// Parses a kata command line the way the CLI will, and checks what must be
/// refused before any handler runs: an invalid app name, clap errors, and
/// `secrets:set NAME=@file` (it would read a file on the host).
fn check_kata_args(words: &[String]) -> Result<(), Refusal> {
    use clap::CommandFactory;
    use clap::error::ErrorKind;
    let argv = std::iter::once("kata").chain(words.iter().map(String::as_str));
    let matches = match crate::cli::Cli::command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return Ok(());
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.trim().strip_prefix("error: ").unwrap_or(text.trim());
            return Err(Refusal(text.to_owned()));
        }
    };
    let Some((sub, args)) = matches.subcommand() else {
        return Ok(());
    };
    if let Ok(Some(app)) = args.try_get_one::<String>("app") {
        crate::names::app_name(app).map_err(|e| Refusal(e.to_string()))?;
    }
    if sub == "secrets:set"
        && let Ok(Some(spec)) = args.try_get_one::<String>("spec")
        && spec
            .split_once('=')
            .is_some_and(|(_, v)| v.starts_with('@'))
    {
        return Err(Refusal(
            "secrets:set NAME=@file reads a file on the host; over SSH give the value on stdin (secrets:set NAME)".into(),
        ));
    }
    Ok(())
}

/// The command a route runs and the app it names, as [`crate::access::allowed`]
/// classifies them: `git-receive-pack`/`git-upload-pack` for pushes and
/// clones, `help` for help output (nothing runs).
pub fn target(route: &Route) -> (String, Option<String>) {
    match route {
        Route::Help => ("help".into(), None),
        Route::ReceivePack { app } => ("git-receive-pack".into(), Some(app.clone())),
        Route::UploadPack { app } => ("git-upload-pack".into(), Some(app.clone())),
        Route::Kata { args } => {
            use clap::CommandFactory;
            let first = args.first().cloned().unwrap_or_default();
            if first == "--version" {
                return (first, None);
            }
            let argv = std::iter::once("kata").chain(args.iter().map(String::as_str));
            match crate::cli::Cli::command().try_get_matches_from(argv) {
                Ok(m) => {
                    let app = m
                        .subcommand()
                        .and_then(|(_, a)| a.try_get_one::<String>("app").ok().flatten())
                        .and_then(|a| crate::names::app_name(a).ok());
                    (first, app)
                }
                Err(_) => ("help".into(), None),
            }
        }
    }
}

/// Decides what `SSH_ORIGINAL_COMMAND` may do. Pure: touches nothing.
///
/// The command is split as a POSIX shell would split it (quotes, escapes), but
/// no shell ever runs it: the words are only compared and passed as argv.
pub fn route(original_command: &str) -> Result<Route, Refusal> {
    if original_command.len() > MAX_COMMAND_LEN {
        return refuse(format!(
            "command too long ({} bytes, at most {MAX_COMMAND_LEN})",
            original_command.len()
        ));
    }
    if original_command
        .chars()
        .any(|c| c.is_control() && c != '\t')
    {
        return refuse("control characters (newlines, escapes) are not allowed in commands");
    }
    let words = match shell_words::split(original_command) {
        Ok(w) => w,
        Err(_) => return refuse("cannot parse the command (unbalanced quotes?)"),
    };
    let Some(first) = words.first() else {
        return Ok(Route::Help);
    };
    match first.as_str() {
        "git-receive-pack" | "git-upload-pack" => {
            let [_, repo] = words.as_slice() else {
                return refuse(format!("{first} takes exactly one repository argument"));
            };
            let app = crate::names::app_name(repo).map_err(|e| Refusal(e.to_string()))?;
            Ok(if first == "git-receive-pack" {
                Route::ReceivePack { app }
            } else {
                Route::UploadPack { app }
            })
        }
        "help" | "--help" | "-h" if words.len() == 1 => Ok(Route::Help),
        "--version" | "-V" if words.len() == 1 => Ok(Route::Kata { args: words }),
        w if host_only(w) => refuse(format!(
            "`{w}` is not available over SSH; run it on the host"
        )),
        w if remote_commands().iter().any(|c| c == w) => {
            check_kata_args(&words)?;
            Ok(Route::Kata { args: words })
        }
        w => refuse(format!(
            "unknown command {}; `ssh <host> help` lists the commands",
            shown(w)
        )),
    }
}

// ---------------------------------------------------------------------------
// authorized_keys model
// ---------------------------------------------------------------------------

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("line {line}: not an SSH public key ({reason}): {text}")]
    Invalid {
        line: usize,
        reason: String,
        text: String,
    },
    #[error("this looks like a PRIVATE key; give the public key (the .pub file)")]
    PrivateKey,
    #[error("no public keys found in the input")]
    Empty,
    #[error("line {line}: {kind} keys are not accepted (OpenSSH disabled them); use ed25519")]
    Unsupported { line: usize, kind: String },
    #[error(
        "invalid key name {0:?}: use 1-64 of A-Z a-z 0-9 . _ @ + -, starting with a letter or digit"
    )]
    Name(String),
    #[error("no key named or with fingerprint {0:?}")]
    NotFound(String),
    #[error("{count} keys are named {name:?}; remove one by fingerprint: {fingerprints}")]
    Ambiguous {
        name: String,
        count: usize,
        fingerprints: String,
    },
    #[error("the kata binary path {0:?} cannot be written into authorized_keys")]
    BadExe(String),
}

/// One key kata manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyEntry {
    pub name: String,
    pub fingerprint: String,
    #[serde(rename = "type")]
    pub key_type: String,
    pub role: Role,
    /// The app patterns of a deploy key (empty for admin keys).
    pub apps: Vec<String>,
    /// `<type> <base64>`, without comment.
    #[serde(skip)]
    pub key: String,
}

/// One line of `authorized_keys`: ours (kata forced command) or anything else,
/// kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Kata { entry: KeyEntry, raw: String },
    Other(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    pub lines: Vec<Line>,
}

/// What `add` did with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    New(KeyEntry),
    /// Already registered; nothing changed.
    Exists(KeyEntry),
    /// Already registered; renamed (`--name`) or given another role or apps.
    Changed {
        from: KeyEntry,
        entry: KeyEntry,
    },
}

impl Added {
    pub fn entry(&self) -> &KeyEntry {
        match self {
            Added::New(e) | Added::Exists(e) | Added::Changed { entry: e, .. } => e,
        }
    }
}

/// What `remove` did: the key, how many lines it had, and the lines that
/// hold the same key without being kata's (left alone, to be removed by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub entry: KeyEntry,
    pub lines: usize,
    pub foreign: Vec<usize>,
}

impl KeyEntry {
    pub fn grant(&self) -> Grant {
        Grant {
            role: self.role,
            apps: self.apps.clone(),
        }
    }
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn entry_for(key: &PublicKey, name: &str, grant: &Grant) -> KeyEntry {
    let mut bare = key.clone();
    bare.set_comment("");
    KeyEntry {
        name: name.to_owned(),
        fingerprint: fingerprint(key),
        key_type: key.algorithm().as_str().to_owned(),
        role: grant.role,
        apps: grant.apps.clone(),
        key: bare.to_openssh().unwrap_or_default(),
    }
}

pub fn valid_key_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'@' | b'+' | b'-'))
}

/// A key name derived from a key comment: invalid characters become `-`.
pub fn name_from_comment(comment: &str) -> String {
    let cleaned: String = comment
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = cleaned
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(64)
        .collect();
    if trimmed.is_empty() {
        "key".to_owned()
    } else {
        trimmed
    }
}

/// Splits the leading options field of an authorized_keys line (quotes may
/// contain spaces and `\"`). Returns `(options, rest)`.
fn split_options(line: &str) -> (&str, &str) {
    let mut in_quote = false;
    let mut prev_backslash = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' if !prev_backslash => in_quote = !in_quote,
            c if c.is_whitespace() && !in_quote => return (&line[..i], line[i..].trim_start()),
            _ => {}
        }
        prev_backslash = c == '\\' && !prev_backslash;
    }
    (line, "")
}

/// Splits options on unquoted commas into `(name, value)`, dequoting values
/// the way sshd does (only `\"` is an escape).
fn parse_options(opts: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = opts.chars().peekable();
    let mut push = |cur: &mut String| {
        let item = std::mem::take(cur);
        match item.split_once('=') {
            Some((k, v)) => {
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                out.push((k.to_ascii_lowercase(), Some(v.replace("\\\"", "\""))));
            }
            None => out.push((item.to_ascii_lowercase(), None)),
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quote && chars.peek() == Some(&'"') => {
                cur.push('\\');
                cur.push(chars.next().unwrap());
            }
            '"' => {
                in_quote = !in_quote;
                cur.push(c);
            }
            ',' if !in_quote => push(&mut cur),
            _ => cur.push(c),
        }
    }
    push(&mut cur);
    out
}

/// The public key of an authorized_keys line (with or without options).
pub fn line_key(line: &str) -> Option<PublicKey> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    PublicKey::from_openssh(t)
        .ok()
        .or_else(|| PublicKey::from_openssh(split_options(t).1).ok())
}

/// Recognises a line kata wrote:
/// `command="<kata> ssh-serve --key FP --name N --role R [--apps P]",restrict KEY`.
/// A line without `restrict` is never kata's, whatever its command says: kata
/// always writes it, and without it the key could forward ports or get a pty.
fn parse_kata_line(line: &str) -> Option<KeyEntry> {
    let t = line.trim();
    let (opts, rest) = split_options(t);
    let opts = parse_options(opts);
    if !opts.iter().any(|(k, v)| k == "restrict" && v.is_none()) {
        return None;
    }
    let command = opts
        .into_iter()
        .find(|(k, _)| k == "command")
        .and_then(|(_, v)| v)?;
    let words = shell_words::split(&command).ok()?;
    if words.get(1).map(String::as_str) != Some("ssh-serve") {
        return None;
    }
    let (mut name, mut role, mut apps) = (None, Role::Admin, vec![]);
    let mut it = words[2..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--name" => name = it.next().cloned(),
            "--role" => role = Role::parse(it.next()?)?,
            "--apps" => apps = crate::access::parse_patterns(it.next()?).ok()?,
            _ => {}
        }
    }
    let key = PublicKey::from_openssh(rest).ok()?;
    let grant = Grant { role, apps };
    Some(entry_for(
        &key,
        &name.unwrap_or_else(|| "key".into()),
        &grant,
    ))
}

/// Escapes a value for a double-quoted authorized_keys option.
fn option_quote(s: &str) -> String {
    s.replace('"', "\\\"")
}

/// Renders the authorized_keys line for `entry`, running `exe` as forced command.
pub fn render_line(exe: &Path, entry: &KeyEntry) -> Result<String, KeyError> {
    let exe_s = exe
        .to_str()
        .filter(|s| exe.is_absolute() && !s.chars().any(|c| c.is_control()));
    let Some(exe_s) = exe_s else {
        return Err(KeyError::BadExe(exe.display().to_string()));
    };
    let mut command = format!(
        "{} ssh-serve --key {} --name {} --role {}",
        shell_words::quote(exe_s),
        shell_words::quote(&entry.fingerprint),
        shell_words::quote(&entry.name),
        entry.role,
    );
    if entry.role == Role::Deploy {
        command.push_str(" --apps ");
        command.push_str(&shell_words::quote(&entry.apps.join(",")));
    }
    Ok(format!(
        "command=\"{}\",restrict {} {}",
        option_quote(&command),
        entry.key,
        entry.name
    ))
}

/// Validates every key of a `setup:ssh` input (one public key per line; blank
/// lines and `#` comments skipped; authorized_keys options are ignored).
/// All or nothing: one bad line refuses the whole input.
pub fn parse_public_keys(input: &str) -> Result<Vec<PublicKey>, KeyError> {
    if input.contains("PRIVATE KEY") {
        return Err(KeyError::PrivateKey);
    }
    let mut keys = Vec::new();
    for (i, raw) in input.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let key = match PublicKey::from_openssh(t) {
            Ok(k) => k,
            Err(e) => match PublicKey::from_openssh(split_options(t).1) {
                Ok(k) => k,
                Err(_) => {
                    let text: String = t.chars().take(40).collect();
                    return Err(KeyError::Invalid {
                        line: i + 1,
                        reason: e.to_string(),
                        text: if text.len() < t.len() {
                            format!("{text}…")
                        } else {
                            text
                        },
                    });
                }
            },
        };
        if key.algorithm() == ssh_key::Algorithm::Dsa {
            return Err(KeyError::Unsupported {
                line: i + 1,
                kind: "ssh-dss".into(),
            });
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(keys)
}

impl AuthorizedKeys {
    pub fn parse(text: &str) -> Self {
        let lines = text
            .lines()
            .map(|l| match parse_kata_line(l) {
                Some(entry) => Line::Kata {
                    entry,
                    raw: l.to_owned(),
                },
                None => Line::Other(l.to_owned()),
            })
            .collect();
        AuthorizedKeys { lines }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Kata { raw, .. } | Line::Other(raw) => out.push_str(raw),
            }
            out.push('\n');
        }
        out
    }

    /// The keys kata manages, in file order.
    pub fn list(&self) -> Vec<&KeyEntry> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                Line::Kata { entry, .. } => Some(entry),
                Line::Other(_) => None,
            })
            .collect()
    }

    /// Non-kata lines that hold the same key as `fp` (sshd uses the first
    /// matching line, so such a line would bypass the forced command).
    pub fn foreign_lines_with(&self, fp: &str) -> Vec<usize> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l {
                Line::Other(raw) => line_key(raw)
                    .filter(|k| fingerprint(k) == fp)
                    .map(|_| i + 1),
                Line::Kata { .. } => None,
            })
            .collect()
    }

    fn name_taken(&self, name: &str, except_fp: &str) -> bool {
        self.list()
            .iter()
            .any(|e| e.name == name && e.fingerprint != except_fp)
    }

    fn unique_name(&self, base: &str, fp: &str) -> String {
        if !self.name_taken(base, fp) {
            return base.to_owned();
        }
        (2..)
            .map(|n| {
                let suffix = format!("-{n}");
                let keep = 64usize.saturating_sub(suffix.len());
                format!("{}{suffix}", &base[..base.len().min(keep)])
            })
            .find(|cand| !self.name_taken(cand, fp))
            .expect("some suffix is free")
    }

    /// Adds `keys`, each as one forced-command line running `exe`. A key
    /// already present (same SHA256 fingerprint) is not duplicated; with an
    /// explicit `name` it is renamed, with an explicit `grant` it gets that
    /// role and those apps (else it keeps its own). New keys default to admin.
    /// Names stay unique (`name-2`, ...).
    pub fn add(
        &mut self,
        exe: &Path,
        keys: &[PublicKey],
        name: Option<&str>,
        grant: Option<&Grant>,
    ) -> Result<Vec<Added>, KeyError> {
        if let Some(n) = name
            && !valid_key_name(n)
        {
            return Err(KeyError::Name(n.to_owned()));
        }
        let mut report = Vec::new();
        for key in keys {
            let fp = fingerprint(key);
            let existing = self
                .lines
                .iter()
                .position(|l| matches!(l, Line::Kata { entry, .. } if entry.fingerprint == fp));
            if let Some(i) = existing {
                let Line::Kata { entry, .. } = &self.lines[i] else {
                    unreachable!()
                };
                let from = entry.clone();
                let mut changed = KeyEntry {
                    name: match name {
                        Some(n) if n != from.name => self.unique_name(n, &fp),
                        _ => from.name.clone(),
                    },
                    ..from.clone()
                };
                if let Some(g) = grant {
                    changed.role = g.role;
                    changed.apps = g.apps.clone();
                }
                if changed == from {
                    report.push(Added::Exists(from));
                } else {
                    let raw = render_line(exe, &changed)?;
                    self.lines[i] = Line::Kata {
                        entry: changed.clone(),
                        raw,
                    };
                    report.push(Added::Changed {
                        from,
                        entry: changed,
                    });
                }
                continue;
            }
            let base = name
                .map(str::to_owned)
                .unwrap_or_else(|| name_from_comment(key.comment()));
            let default = Grant::admin();
            let entry = entry_for(
                key,
                &self.unique_name(&base, &fp),
                grant.unwrap_or(&default),
            );
            let raw = render_line(exe, &entry)?;
            self.lines.push(Line::Kata {
                entry: entry.clone(),
                raw,
            });
            report.push(Added::New(entry));
        }
        Ok(report)
    }

    /// Removes one key by name or by `SHA256:` fingerprint: every kata line
    /// for it (hand edits may have doubled one). Lines holding the same key
    /// that kata did not write are left alone and reported.
    pub fn remove(&mut self, what: &str) -> Result<Removed, KeyError> {
        let by_fp = what.starts_with("SHA256:");
        let hits: Vec<&KeyEntry> = self
            .list()
            .into_iter()
            .filter(|e| (by_fp && e.fingerprint == what) || (!by_fp && e.name == what))
            .collect();
        let mut fps: Vec<String> = hits.iter().map(|e| e.fingerprint.clone()).collect();
        fps.dedup();
        let entry = match (hits.first(), fps.len()) {
            (None, _) => return Err(KeyError::NotFound(what.to_owned())),
            (Some(e), 1) => (*e).clone(),
            (Some(_), many) => {
                return Err(KeyError::Ambiguous {
                    name: what.to_owned(),
                    count: many,
                    fingerprints: fps.join(", "),
                });
            }
        };
        let before = self.lines.len();
        self.lines.retain(
            |l| !matches!(l, Line::Kata { entry: e, .. } if e.fingerprint == entry.fingerprint),
        );
        let lines = before - self.lines.len();
        let foreign = self.foreign_lines_with(&entry.fingerprint);
        Ok(Removed {
            entry,
            lines,
            foreign,
        })
    }
}

// ---------------------------------------------------------------------------
// File layer
// ---------------------------------------------------------------------------

#[derive(Debug, Error)]
pub enum KeysFileError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("HOME is not set; cannot find ~/.ssh/authorized_keys")]
    NoHome,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeysFileError + '_ {
    move |source| KeysFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `$HOME/.ssh/authorized_keys` of the user running kata.
pub fn authorized_keys_path() -> Result<PathBuf, KeysFileError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ssh").join("authorized_keys"))
        .ok_or(KeysFileError::NoHome)
}

/// Reads and parses the file; a missing file is empty.
pub fn load(path: &Path) -> Result<AuthorizedKeys, KeysFileError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(AuthorizedKeys::parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(AuthorizedKeys::default()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Read-modify-write under a lock next to the file: the directory is made
/// 0700, the file is replaced atomically with mode 0600 (only if it changed).
pub fn update<T>(
    path: &Path,
    f: impl FnOnce(&mut AuthorizedKeys) -> Result<T, KeyError>,
) -> Result<T, KeysFileError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    let lock_path = dir.join(".kata-authorized_keys.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    let mut keys = load(path)?;
    let before = keys.clone();
    let out = f(&mut keys)?;
    if keys != before || !path.exists() {
        crate::fsutil::write_atomic_mode(path, keys.render().as_bytes(), Some(0o600))
            .map_err(io_err(path))?;
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti alice@laptop";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII56ZxTi7uo9xN+1ldXtUF7//EG7TwXaVBUWBtwOOVhN";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBtIiSkXBj+0ZwqdHdAnrObm5mHdi/HSm+iyN42B3N5jAzxgfrI2cyRVP+r+Lthno08WDaZrz3ynRR6KFLI1FxQ= ecdsa key";

    fn exe() -> PathBuf {
        PathBuf::from("/usr/local/bin/kata")
    }

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // ----- router -----

    #[test]
    fn empty_and_help_route_to_help() {
        for c in ["", "   ", "help", "--help", "-h", "\t"] {
            assert_eq!(route(c), Ok(Route::Help), "{c:?}");
        }
    }

    #[test]
    fn git_commands_in_every_form_git_sends() {
        for c in [
            "git-receive-pack 'app'",
            "git-receive-pack '/app'",
            "git-receive-pack 'app.git'",
            "git-receive-pack '/app.git'",
            "git-receive-pack app",
            "git-receive-pack \"app\"",
            "  git-receive-pack   'app'  ",
        ] {
            assert_eq!(
                route(c),
                Ok(Route::ReceivePack { app: "app".into() }),
                "{c:?}"
            );
        }
        assert_eq!(
            route("git-upload-pack '/my-app_2.git'"),
            Ok(Route::UploadPack {
                app: "my-app_2".into()
            })
        );
    }

    #[test]
    fn git_commands_with_bad_repos_are_refused() {
        let long = format!("git-receive-pack '{}'", "a".repeat(64));
        for c in [
            "git-receive-pack",
            "git-receive-pack ''",
            "git-receive-pack '../x'",
            "git-receive-pack '/../x'",
            "git-receive-pack 'a/b'",
            "git-receive-pack '/etc/passwd'",
            "git-receive-pack '~/app'",
            "git-receive-pack 'App'",
            "git-receive-pack '-app'",
            "git-receive-pack '--upload-pack=id'",
            "git-receive-pack 'app' extra",
            "git-receive-pack 'app;id'",
            "git-receive-pack '$(id)'",
            "git-upload-pack '../../etc'",
            "git-upload-pack '.git'",
            &long,
        ] {
            let r = route(c);
            assert!(r.is_err(), "{c:?} accepted: {r:?}");
        }
    }

    #[test]
    fn hostile_commands_are_refused() {
        let big = format!("ls {}", "A".repeat(100 * 1024));
        for c in [
            "; rm -rf /",
            "$(id)",
            "`id`",
            "ls; id",
            "../../etc/passwd",
            "/bin/sh",
            "bash",
            "sh -c id",
            "scp -t /",
            "scp -f /etc/passwd",
            "sftp-server",
            "internal-sftp",
            "git-upload-archive 'app'",
            "git receive-pack app",
            "ls\nid",
            "ls\rid",
            "ls\0id",
            "ls \u{1b}[31m",
            "'unbalanced",
            "\"unbalanced",
            "kata ls",
            "env",
            "LS",
            &big,
        ] {
            let r = route(c);
            assert!(r.is_err(), "{c:?} accepted: {r:?}");
        }
        assert!(route(&big).unwrap_err().0.contains("too long"));
        // kata's own commands with hostile arguments: clap or the name check refuses
        for c in [
            "rm -rf /",
            "rm -f ../x",
            "ls && id",
            "ls | sh",
            "ps ../../etc/passwd --json x",
            "logs '$(id)'",
            "config:set ../../etc X=1",
            "run a/b web sh",
            "secrets:set PASSWORD=@/etc/shadow",
        ] {
            assert!(route(c).is_err(), "{c:?} accepted");
        }
        assert!(
            route("rm -rf /")
                .unwrap_err()
                .0
                .contains("unexpected argument")
        );
        assert!(route("ps ../x").unwrap_err().0.contains("invalid app name"));
        assert!(route("ls\nid").unwrap_err().0.contains("control"));
        assert!(
            route("bash")
                .unwrap_err()
                .0
                .contains("unknown command \"bash\"")
        );
    }

    #[test]
    fn host_only_commands_are_refused() {
        for c in [
            "setup",
            "setup --caddy-admin http://evil",
            "setup:ssh -",
            "ssh:remove alice",
            "ssh-serve --key x --name y",
            "git-hook app",
            "validate /etc/shadow",
            "render /etc/shadow",
        ] {
            let r = route(c).unwrap_err();
            assert!(r.0.contains("not available over SSH"), "{c:?}: {r}");
        }
    }

    #[test]
    fn kata_commands_pass_through_as_words() {
        assert_eq!(
            route("ls"),
            Ok(Route::Kata {
                args: words(&["ls"])
            })
        );
        assert_eq!(
            route("config:set app 'A=b c' \"D=$(id)\""),
            Ok(Route::Kata {
                args: words(&["config:set", "app", "A=b c", "D=$(id)"])
            })
        );
        assert_eq!(
            route("logs app web --tail 10"),
            Ok(Route::Kata {
                args: words(&["logs", "app", "web", "--tail", "10"])
            })
        );
        assert_eq!(
            route("ssh:keys --json"),
            Ok(Route::Kata {
                args: words(&["ssh:keys", "--json"])
            })
        );
        assert_eq!(
            route("--version"),
            Ok(Route::Kata {
                args: words(&["--version"])
            })
        );
        for c in [
            "ps app",
            "ps '/app.git'",
            "releases app",
            "rollback app 3",
            "mode app swarm",
            "caddy:ls",
            "caddy:sync",
            "secrets:set NAME=value",
            "secrets:set NAME",
            "ls --help",
            "run app web sh -c 'echo $(id)'",
        ] {
            assert!(matches!(route(c), Ok(Route::Kata { .. })), "{c}");
        }
    }

    #[test]
    fn every_remote_command_routes_and_no_host_only_one_does() {
        let remote = remote_commands();
        assert!(remote.contains(&"ls".to_owned()));
        assert!(remote.contains(&"config:set".to_owned()));
        for h in crate::access::host_only() {
            assert!(!remote.iter().any(|r| r == h), "{h}");
        }
        for c in remote {
            // with --help every command parses, whatever its required arguments
            let r = route(&format!("{c} --help"));
            assert!(matches!(r, Ok(Route::Kata { .. })), "{c}: {r:?}");
        }
    }

    // ----- keys -----

    #[test]
    fn parses_and_validates_public_keys() {
        let keys = parse_public_keys(&format!("# team\n\n{ED1}\n{ECDSA}\r\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].comment(), "alice@laptop");
        assert_eq!(
            fingerprint(&keys[0]),
            "SHA256:UCUiLr7Pjs9wFFJMDByLgc3NrtdU344OgUM45wZPcIQ"
        );
        // authorized_keys-style options are ignored, the key is kept
        let k = parse_public_keys(&format!("no-pty,command=\"x y\" {ED2}")).unwrap();
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn one_bad_line_refuses_the_input() {
        let e = parse_public_keys(&format!("{ED1}\nssh-ed25519 AAAAnotbase64!! x\n")).unwrap_err();
        assert!(matches!(e, KeyError::Invalid { line: 2, .. }), "{e}");
        assert_eq!(parse_public_keys("\n# only\n"), Err(KeyError::Empty));
        assert_eq!(
            parse_public_keys("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"),
            Err(KeyError::PrivateKey)
        );
        assert!(parse_public_keys("hello world").is_err());
        // a truncated key
        assert!(parse_public_keys(&ED1[..60]).is_err());
    }

    #[test]
    fn names_from_comments_and_validation() {
        assert_eq!(name_from_comment("alice@laptop"), "alice@laptop");
        assert_eq!(
            name_from_comment("Alice Smith (work)"),
            "Alice-Smith--work-"
        );
        assert_eq!(name_from_comment(""), "key");
        assert_eq!(name_from_comment("$(id)"), "id-");
        assert_eq!(name_from_comment(&"x".repeat(100)).len(), 64);
        assert!(valid_key_name("alice"));
        assert!(valid_key_name("a.b_c@d+e-f"));
        for bad in [
            "",
            "-a",
            "a b",
            "a\"b",
            "a'b",
            "a;b",
            "SHA256:x",
            &"a".repeat(65),
        ] {
            assert!(!valid_key_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn renders_a_restricted_forced_command_line() {
        let keys = parse_public_keys(ED1).unwrap();
        let mut ak = AuthorizedKeys::default();
        ak.add(&exe(), &keys, None, None).unwrap();
        let text = ak.render();
        assert_eq!(
            text,
            format!(
                "command=\"/usr/local/bin/kata ssh-serve --key SHA256:UCUiLr7Pjs9wFFJMDByLgc3NrtdU344OgUM45wZPcIQ --name alice@laptop --role admin\",restrict {} alice@laptop\n",
                &ED1[..ED1.len() - " alice@laptop".len()]
            )
        );
        // and it parses back to the same model
        assert_eq!(AuthorizedKeys::parse(&text), ak);
    }

    #[test]
    fn exe_paths_are_quoted_for_shell_and_option() {
        let keys = parse_public_keys(ED2).unwrap();
        let mut ak = AuthorizedKeys::default();
        ak.add(Path::new("/opt/my \"kata\"/kata"), &keys, Some("bob"), None)
            .unwrap();
        let line = ak.render();
        assert!(
            line.starts_with("command=\"'/opt/my \\\"kata\\\"/kata' ssh-serve --key "),
            "{line}"
        );
        let back = AuthorizedKeys::parse(&line);
        assert_eq!(back.list()[0].name, "bob");
        let (opts, _) = split_options(line.trim());
        let cmd = parse_options(opts)[0].1.clone().unwrap();
        assert_eq!(
            shell_words::split(&cmd).unwrap()[0],
            "/opt/my \"kata\"/kata"
        );
        assert!(matches!(
            AuthorizedKeys::default().add(Path::new("kata"), &keys, None, None),
            Err(KeyError::BadExe(_))
        ));
        assert!(matches!(
            AuthorizedKeys::default().add(Path::new("/a\nb"), &keys, None, None),
            Err(KeyError::BadExe(_))
        ));
    }

    #[test]
    fn re_adding_does_not_duplicate() {
        let keys = parse_public_keys(&format!("{ED1}\n{ED2}")).unwrap();
        let mut ak = AuthorizedKeys::default();
        let r = ak.add(&exe(), &keys, None, None).unwrap();
        assert!(matches!(r[0], Added::New(_)));
        assert_eq!(r[1].entry().name, "key");
        let snapshot = ak.clone();
        let r = ak.add(&exe(), &keys, None, None).unwrap();
        assert!(r.iter().all(|a| matches!(a, Added::Exists(_))));
        assert_eq!(ak, snapshot);
        // the same key twice in one input
        let mut ak2 = AuthorizedKeys::default();
        let dup = parse_public_keys(&format!("{ED1}\n{ED1}")).unwrap();
        let r = ak2.add(&exe(), &dup, None, None).unwrap();
        assert!(matches!(r[1], Added::Exists(_)));
        assert_eq!(ak2.list().len(), 1);
    }

    #[test]
    fn explicit_name_renames_and_names_stay_unique() {
        let k1 = parse_public_keys(ED1).unwrap();
        let k2 = parse_public_keys(ED2).unwrap();
        let mut ak = AuthorizedKeys::default();
        ak.add(&exe(), &k1, Some("dev"), None).unwrap();
        let r = ak.add(&exe(), &k2, Some("dev"), None).unwrap();
        assert_eq!(r[0].entry().name, "dev-2");
        let r = ak.add(&exe(), &k1, Some("alice"), None).unwrap();
        assert!(matches!(&r[0], Added::Changed { from, .. } if from.name == "dev"));
        let names: Vec<_> = ak.list().iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["alice", "dev-2"]);
        assert!(ak.render().contains("--name alice --role admin\",restrict"));
        assert!(matches!(
            ak.add(&exe(), &k1, Some("bad name"), None),
            Err(KeyError::Name(_))
        ));
    }

    #[test]
    fn foreign_lines_survive_byte_for_byte() {
        let text = format!(
            "# my comment\n\nno-pty {ED2} admin\n{}\n",
            "ssh-rsa garbage-that-is-not-a-key"
        );
        let mut ak = AuthorizedKeys::parse(&text);
        assert!(ak.list().is_empty());
        assert_eq!(ak.render(), text);
        let k1 = parse_public_keys(ED1).unwrap();
        ak.add(&exe(), &k1, None, None).unwrap();
        assert!(ak.render().starts_with(&text));
        // a key that already has an unrestricted line is reported
        let k2 = parse_public_keys(ED2).unwrap();
        assert_eq!(ak.foreign_lines_with(&fingerprint(&k2[0])), [3]);
        assert!(ak.foreign_lines_with(&fingerprint(&k1[0])).is_empty());
    }

    #[test]
    fn remove_by_name_or_fingerprint() {
        let keys = parse_public_keys(&format!("{ED1}\n{ED2}\n{ECDSA}")).unwrap();
        let mut ak = AuthorizedKeys::parse("# keep me\n");
        ak.add(&exe(), &keys, None, None).unwrap();
        let fp2 = fingerprint(&keys[1]);
        let gone = ak.remove(&fp2).unwrap();
        assert_eq!(gone.entry.name, "key");
        let gone = ak.remove("alice@laptop").unwrap();
        assert_eq!(gone.entry.key_type, "ssh-ed25519");
        assert_eq!(ak.list().len(), 1);
        assert_eq!(ak.list()[0].key_type, "ecdsa-sha2-nistp256");
        assert!(ak.render().starts_with("# keep me\n"));
        assert_eq!(
            ak.remove("alice@laptop"),
            Err(KeyError::NotFound("alice@laptop".into()))
        );
        assert!(matches!(
            ak.remove("SHA256:nope"),
            Err(KeyError::NotFound(_))
        ));
        // "# keep me" is not a key; removing by its text does nothing
        assert!(ak.remove("# keep me").is_err());
    }

    #[test]
    fn duplicate_names_from_hand_edits_are_ambiguous() {
        let k1 = parse_public_keys(ED1).unwrap();
        let k2 = parse_public_keys(ED2).unwrap();
        let mut a = AuthorizedKeys::default();
        a.add(&exe(), &k1, Some("x"), None).unwrap();
        let mut b = AuthorizedKeys::default();
        b.add(&exe(), &k2, Some("x"), None).unwrap();
        let mut both = AuthorizedKeys::parse(&(a.render() + &b.render()));
        assert!(matches!(
            both.remove("x"),
            Err(KeyError::Ambiguous { count: 2, .. })
        ));
        assert!(both.remove(&fingerprint(&k2[0])).is_ok());
        assert!(both.remove("x").is_ok());
    }

    #[test]
    fn file_layer_sets_modes_and_is_idempotent() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(".ssh").join("authorized_keys");
        let keys = parse_public_keys(ED1).unwrap();
        update(&path, |ak| ak.add(&exe(), &keys, None, None)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let first = fs::read_to_string(&path).unwrap();
        update(&path, |ak| ak.add(&exe(), &keys, None, None)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), first);
        assert_eq!(load(&path).unwrap().list().len(), 1);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let removed = update(&path, |ak| ak.remove("alice@laptop")).unwrap();
        assert_eq!(removed.entry.name, "alice@laptop");
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        assert_eq!(mode(&path), 0o600);
        // a failing change writes nothing
        assert!(update(&path, |ak| ak.remove("nobody")).is_err());
    }

    // ----- roles -----

    fn deploy(apps: &[&str]) -> Grant {
        Grant {
            role: Role::Deploy,
            apps: apps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn roles_live_in_the_forced_command_and_parse_back() {
        let keys = parse_public_keys(ED1).unwrap();
        let mut ak = AuthorizedKeys::default();
        let g = deploy(&["shop*", "blog"]);
        ak.add(&exe(), &keys, Some("ci"), Some(&g)).unwrap();
        let text = ak.render();
        assert!(
            text.starts_with("command=\"/usr/local/bin/kata ssh-serve --key SHA256:UCUiLr7Pjs9wFFJMDByLgc3NrtdU344OgUM45wZPcIQ --name ci --role deploy --apps 'shop*,blog'\",restrict ssh-ed25519 "),
            "{text}"
        );
        let back = AuthorizedKeys::parse(&text);
        assert_eq!(back, ak);
        assert_eq!(back.list()[0].grant(), g);
        // the forced command's argv is what ssh-serve parses
        let (opts, _) = split_options(text.trim());
        let cmd = parse_options(opts)[0].1.clone().unwrap();
        let argv = shell_words::split(&cmd).unwrap();
        assert_eq!(argv[argv.len() - 2..], ["--apps", "shop*,blog"]);
        // a line from before roles (no --role) is an admin key
        let old = text.replace(" --role deploy --apps 'shop*,blog'", "");
        assert_eq!(AuthorizedKeys::parse(&old).list()[0].role, Role::Admin);
        // an unreadable role is not kata's line at all
        let odd = text.replace("--role deploy", "--role root");
        assert!(AuthorizedKeys::parse(&odd).list().is_empty());
    }

    #[test]
    fn adding_again_changes_the_role_only_when_asked() {
        let keys = parse_public_keys(ED1).unwrap();
        let mut ak = AuthorizedKeys::default();
        ak.add(&exe(), &keys, None, None).unwrap();
        assert_eq!(ak.list()[0].role, Role::Admin);
        let g = deploy(&["a"]);
        let r = ak.add(&exe(), &keys, None, Some(&g)).unwrap();
        assert!(
            matches!(&r[0], Added::Changed { from, entry } if from.role == Role::Admin && entry.role == Role::Deploy)
        );
        // without --role the key keeps what it has
        let r = ak.add(&exe(), &keys, None, None).unwrap();
        assert!(matches!(&r[0], Added::Exists(e) if e.role == Role::Deploy));
        let r = ak
            .add(&exe(), &keys, None, Some(&deploy(&["a", "b"])))
            .unwrap();
        assert!(matches!(&r[0], Added::Changed { entry, .. } if entry.apps == ["a", "b"]));
        let r = ak.add(&exe(), &keys, None, Some(&Grant::admin())).unwrap();
        assert!(
            matches!(&r[0], Added::Changed { entry, .. } if entry.role == Role::Admin && entry.apps.is_empty())
        );
        assert_eq!(ak.lines.len(), 1);
        assert!(!ak.render().contains("--apps"));
    }

    #[test]
    fn a_kata_looking_line_without_restrict_is_not_kata_s() {
        let keys = parse_public_keys(ED1).unwrap();
        let mut ak = AuthorizedKeys::default();
        ak.add(&exe(), &keys, None, None).unwrap();
        let line = ak.render();
        for forged in [
            line.replace(",restrict", ""),
            line.replace(",restrict", ",no-pty"),
            line.replace(",restrict", ",restrict=\"x\""),
            line.replace("restrict ", "restricted "),
        ] {
            let ak = AuthorizedKeys::parse(&forged);
            assert!(ak.list().is_empty(), "{forged}");
            assert_eq!(ak.foreign_lines_with(&fingerprint(&keys[0])), [1]);
        }
    }

    #[test]
    fn remove_takes_every_line_of_the_key_and_reports_foreign_ones() {
        let keys = parse_public_keys(ED1).unwrap();
        let mut one = AuthorizedKeys::default();
        one.add(&exe(), &keys, None, None).unwrap();
        let kata_line = one.render();
        let text = format!(
            "{kata_line}# keep\n{kata_line}no-pty {ED1}\n{}",
            kata_line.replace(",restrict", "")
        );
        let mut ak = AuthorizedKeys::parse(&text);
        assert_eq!(ak.list().len(), 2);
        let gone = ak.remove("alice@laptop").unwrap();
        assert_eq!(gone.lines, 2);
        assert_eq!(gone.foreign, [2, 3]);
        assert!(ak.list().is_empty());
        assert!(ak.render().starts_with("# keep\nno-pty "));
        assert!(matches!(
            ak.remove("alice@laptop"),
            Err(KeyError::NotFound(_))
        ));
    }

    #[test]
    fn targets_name_the_command_and_its_app() {
        let t = |c: &str| target(&route(c).unwrap());
        assert_eq!(
            t("git-receive-pack '/shop.git'"),
            ("git-receive-pack".into(), Some("shop".into()))
        );
        assert_eq!(
            t("git-upload-pack 'shop'"),
            ("git-upload-pack".into(), Some("shop".into()))
        );
        assert_eq!(
            t("logs shop web --tail 5"),
            ("logs".into(), Some("shop".into()))
        );
        assert_eq!(t("ps '/shop.git'"), ("ps".into(), Some("shop".into())));
        assert_eq!(t("ls --json"), ("ls".into(), None));
        assert_eq!(t("docker ps"), ("docker".into(), None));
        assert_eq!(t("secrets:ls"), ("secrets:ls".into(), None));
        assert_eq!(t(""), ("help".into(), None));
        assert_eq!(t("ps --help"), ("help".into(), None));
        assert_eq!(t("--version"), ("--version".into(), None));
    }
}
