//! Who may do what: key roles, the command table, and (in [`confine`]) the
//! rules that keep a deploy key's kata-compose.yaml off the host. Pure: values
//! in, a decision out; the SSH shell (`cmd::ssh`) enforces it.

pub mod confine;
pub mod pin;

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// Why a request was refused; shown to the client as `error: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// A key's role, carried in its authorized_keys forced command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: Docker's full power (passthrough, host mounts, privileged).
    #[default]
    Admin,
    /// Push, clone and run app commands on the apps matching its patterns,
    /// with a kata-compose.yaml that stays off the host.
    Deploy,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Deploy => "deploy",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "deploy" => Some(Role::Deploy),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's grant: its role and, for deploy keys, the app-name patterns it
/// owns (`shop`, `shop-*`, `team?`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Grant {
    pub role: Role,
    pub apps: Vec<String>,
}

impl Grant {
    pub fn admin() -> Grant {
        Grant::default()
    }
    /// Whether this key may see and act on `app`.
    pub fn owns(&self, app: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Deploy => self.apps.iter().any(|p| pattern_matches(p, app)),
        }
    }
    fn describe(&self) -> String {
        match self.role {
            Role::Admin => "an admin key".into(),
            Role::Deploy if self.apps.is_empty() => "a deploy key with no apps".into(),
            Role::Deploy => format!("a deploy key for apps {}", self.apps.join(",")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error(
        "invalid app pattern {0:?}: use app-name characters (a-z 0-9 _ -) and the wildcards * and ?"
    )]
    Invalid(String),
    #[error("a deploy key needs --apps PATTERN,... (the apps it may push and manage)")]
    Missing,
    #[error("--apps only applies to deploy keys (admin keys reach every app)")]
    AdminWithApps,
}

/// Splits and checks `--apps a*,b`. Patterns are app names with `*` (any run
/// of characters) and `?` (one character).
pub fn parse_patterns(list: &str) -> Result<Vec<String>, PatternError> {
    let mut out: Vec<String> = vec![];
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ok = p.len() <= 64
            && p.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'?')
            });
        if !ok {
            return Err(PatternError::Invalid(p.to_owned()));
        }
        if !out.iter().any(|q| q == p) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// The grant `setup:ssh --role R --apps P` asks for.
pub fn grant(role: Role, apps: Option<&str>) -> Result<Grant, PatternError> {
    match (role, apps) {
        (Role::Admin, None) => Ok(Grant::admin()),
        (Role::Admin, Some(_)) => Err(PatternError::AdminWithApps),
        (Role::Deploy, None) => Err(PatternError::Missing),
        (Role::Deploy, Some(list)) => {
            let apps = parse_patterns(list)?;
            if apps.is_empty() {
                return Err(PatternError::Missing);
            }
            Ok(Grant {
                role: Role::Deploy,
                apps,
            })
        }
    }
}

/// Glob match over bytes (app names are ASCII): `*` any run, `?` one byte.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// How a command is reached over SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Only on the host (host settings, keys, local files); refused over SSH
    /// for every key.
    HostOnly,
    /// Admin keys only.
    Admin,
    /// Deploy keys too, on an app they own (the command names one app).
    OwnApp,
    /// Deploy keys too; the output lists only the apps they own.
    Listing,
    /// Every key: help and version.
    Anyone,
}

/// Every command kata knows, by how it may be reached. `git-receive-pack`
/// (push) and `git-upload-pack` (clone) are the git protocol's commands; the
/// rest are the CLI's subcommands. A test requires every CLI subcommand to be
/// here, so a new command is refused to deploy keys until it is classified.
pub const COMMANDS: &[(&str, Class)] = &[
    ("help", Class::Anyone),
    ("--version", Class::Anyone),
    ("git-receive-pack", Class::OwnApp),
    ("git-upload-pack", Class::OwnApp),
    ("setup", Class::HostOnly),
    ("setup:ssh", Class::HostOnly),
    ("ssh:remove", Class::HostOnly),
    ("ssh-serve", Class::HostOnly),
    ("git-hook", Class::HostOnly),
    ("retire", Class::HostOnly),
    ("validate", Class::HostOnly),
    ("render", Class::HostOnly),
    ("init", Class::HostOnly),
    ("ssh:keys", Class::Admin),
    ("templates", Class::Admin),
    ("docker", Class::Admin),
    ("docker:services", Class::Admin),
    ("secrets:set", Class::Admin),
    ("secrets:ls", Class::Admin),
    ("secrets:rm", Class::Admin),
    ("mode", Class::Admin),
    ("branch", Class::Admin),
    ("audit", Class::Admin),
    ("caddy:sync", Class::Admin),
    ("ls", Class::Listing),
    ("caddy:ls", Class::Listing),
    ("ps", Class::OwnApp),
    ("logs", Class::OwnApp),
    ("start", Class::OwnApp),
    ("stop", Class::OwnApp),
    ("restart", Class::OwnApp),
    ("deploy", Class::OwnApp),
    ("releases", Class::OwnApp),
    ("rollback", Class::OwnApp),
    ("config", Class::OwnApp),
    ("config:get", Class::OwnApp),
    ("config:set", Class::OwnApp),
    ("config:unset", Class::OwnApp),
    ("config:stack", Class::OwnApp),
    ("config:docker", Class::OwnApp),
    ("config:caddy", Class::OwnApp),
    ("run", Class::OwnApp),
    ("rm", Class::OwnApp),
];

pub fn class(command: &str) -> Option<Class> {
    COMMANDS
        .iter()
        .find(|(c, _)| *c == command)
        .map(|(_, class)| *class)
}

/// The commands refused over SSH for every key.
pub fn host_only() -> impl Iterator<Item = &'static str> {
    COMMANDS
        .iter()
        .filter(|(_, c)| *c == Class::HostOnly)
        .map(|(n, _)| *n)
}

/// Whether `grant` may run `command` (on `app`, when the command names one)
/// over SSH.
pub fn allowed(grant: &Grant, command: &str, app: Option<&str>) -> Result<(), Refusal> {
    let Some(class) = class(command) else {
        return Err(Refusal(format!(
            "`{command}` is not a command kata knows over SSH"
        )));
    };
    let who = grant.describe();
    match (class, grant.role) {
        (Class::HostOnly, _) => Err(Refusal(format!(
            "`{command}` is not available over SSH; run it on the host"
        ))),
        (Class::Anyone | Class::Listing, _) | (_, Role::Admin) => Ok(()),
        (Class::Admin, Role::Deploy) => Err(Refusal(format!(
            "`{command}` needs an admin key; this is {who}"
        ))),
        (Class::OwnApp, Role::Deploy) => match app {
            Some(a) if grant.owns(a) => Ok(()),
            Some(a) => Err(Refusal(format!(
                "app {a} is not yours: this is {who} (role deploy)"
            ))),
            None => Err(Refusal(format!(
                "`{command}` without an app needs an admin key; this is {who}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(apps: &[&str]) -> Grant {
        Grant {
            role: Role::Deploy,
            apps: apps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn patterns_match_like_globs() {
        for (p, n, want) in [
            ("shop", "shop", true),
            ("shop", "shop2", false),
            ("shop*", "shop", true),
            ("shop*", "shop-api", true),
            ("*-api", "shop-api", true),
            ("*-api", "shop-api2", false),
            ("s?op", "shop", true),
            ("s?op", "sop", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**", "x", true),
            ("", "x", false),
        ] {
            assert_eq!(pattern_matches(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn pattern_lists_are_checked() {
        assert_eq!(parse_patterns("a*, b ,a*").unwrap(), ["a*", "b"]);
        for bad in ["A", "a/b", "../x", "a b", "a;b", "[ab]", "a.b"] {
            assert!(parse_patterns(bad).is_err(), "{bad}");
        }
        assert_eq!(grant(Role::Admin, None), Ok(Grant::admin()));
        assert_eq!(
            grant(Role::Admin, Some("x")),
            Err(PatternError::AdminWithApps)
        );
        assert_eq!(grant(Role::Deploy, None), Err(PatternError::Missing));
        assert_eq!(grant(Role::Deploy, Some(" , ")), Err(PatternError::Missing));
        assert_eq!(grant(Role::Deploy, Some("a*,b")), Ok(deploy(&["a*", "b"])));
    }

    /// Every subcommand clap knows must be classified: a new command cannot
    /// become reachable by deploy keys without a line in `COMMANDS`.
    #[test]
    fn every_cli_command_is_classified_and_every_entry_exists() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let names: Vec<String> = cli
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for n in &names {
            assert!(class(n).is_some(), "command {n} is not in access::COMMANDS");
        }
        let pseudo = [
            "help",
            "--version",
            "git-receive-pack",
            "git-upload-pack",
            // added by the routing work; classified ahead of it
            "caddy:sync",
        ];
        for (c, _) in COMMANDS {
            assert!(
                names.iter().any(|n| n == c) || pseudo.contains(c),
                "{c} is classified but is no command"
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (c, _) in COMMANDS {
            assert!(seen.insert(c), "{c} is classified twice");
        }
    }

    /// The whole table, for both roles, on an own app, another app and none.
    #[test]
    fn each_role_gets_exactly_its_commands() {
        let admin = Grant::admin();
        let dep = deploy(&["shop*", "blog"]);
        let deploy_may: [&str; 22] = [
            "git-receive-pack",
            "git-upload-pack",
            "ls",
            "caddy:ls",
            "ps",
            "logs",
            "start",
            "stop",
            "restart",
            "deploy",
            "releases",
            "rollback",
            "config",
            "config:get",
            "config:set",
            "config:unset",
            "config:stack",
            "config:docker",
            "config:caddy",
            "run",
            "rm",
            "help",
        ];
        for (cmd, class) in COMMANDS {
            let host_only = *class == Class::HostOnly;
            for app in [Some("shop-api"), Some("blog"), Some("other"), None] {
                let a = allowed(&admin, cmd, app);
                assert_eq!(a.is_ok(), !host_only, "admin {cmd} {app:?}: {a:?}");
                let d = allowed(&dep, cmd, app);
                let own = app.is_some_and(|a| dep.owns(a));
                let want = match class {
                    Class::Anyone | Class::Listing => true,
                    Class::OwnApp => own,
                    Class::Admin | Class::HostOnly => false,
                };
                assert_eq!(d.is_ok(), want, "deploy {cmd} {app:?}: {d:?}");
                if want {
                    assert!(
                        deploy_may.contains(cmd) || *cmd == "--version",
                        "deploy may run {cmd}"
                    );
                }
                if let Err(Refusal(m)) = d
                    && !host_only
                {
                    assert!(m.contains("deploy key"), "{m}");
                }
            }
        }
        for c in deploy_may {
            assert!(class(c).is_some(), "{c}");
        }
        let m = allowed(&dep, "docker", None).unwrap_err().0;
        assert_eq!(
            m,
            "`docker` needs an admin key; this is a deploy key for apps shop*,blog"
        );
        let m = allowed(&dep, "logs", Some("other")).unwrap_err().0;
        assert_eq!(
            m,
            "app other is not yours: this is a deploy key for apps shop*,blog (role deploy)"
        );
        assert!(allowed(&admin, "bash", None).is_err());
        assert!(
            allowed(&dep, "setup:ssh", None)
                .unwrap_err()
                .0
                .contains("run it on the host")
        );
    }
}
