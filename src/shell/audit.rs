//! The audit log: one JSON line per SSH command and per push, appended to
//! `KATA_ROOT/state/audit.log` (mode 0600; no container mounts `state/`, and
//! `rm --wipe` removes only `state/apps/<app>`). Each line is one `write` to a
//! file opened with `O_APPEND`, under an exclusive lock, so concurrent
//! writers never interleave or overwrite. kata only ever appends to it.
//!
//! Also here: who is acting ([`Caller`]), set by the forced command for its
//! own process and passed to the git hooks through the environment.

use crate::access::{Grant, Role};
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The key behind an SSH connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub fingerprint: String,
    pub grant: Grant,
}

/// Environment variables the forced command sets for git and its hooks.
pub const ENV_KEY: &str = "KATA_SSH_KEY";
pub const ENV_NAME: &str = "KATA_SSH_USER";
pub const ENV_ROLE: &str = "KATA_SSH_ROLE";
pub const ENV_APPS: &str = "KATA_SSH_APPS";

impl Caller {
    /// The environment a hook gets from the forced command.
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            (ENV_KEY, self.fingerprint.clone()),
            (ENV_NAME, self.name.clone()),
            (ENV_ROLE, self.grant.role.to_string()),
            (ENV_APPS, self.grant.apps.join(",")),
        ]
    }

    /// The caller a hook runs for; `None` for a push made on the host. A
    /// key whose role cannot be read is treated as a deploy key without apps.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Option<Caller> {
        let fingerprint = get(ENV_KEY).filter(|s| !s.is_empty())?;
        let grant = match get(ENV_ROLE).as_deref().and_then(Role::parse) {
            Some(Role::Admin) => Grant::admin(),
            Some(Role::Deploy) | None => Grant {
                role: Role::Deploy,
                apps: get(ENV_APPS)
                    .and_then(|a| crate::access::parse_patterns(&a).ok())
                    .unwrap_or_default(),
            },
        };
        Some(Caller {
            name: get(ENV_NAME).unwrap_or_default(),
            fingerprint,
            grant,
        })
    }

    /// `name (SHA256:...)`, as release records show who made them.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.fingerprint)
    }
}

static CALLER: OnceLock<Caller> = OnceLock::new();

/// Records who this process acts for (the forced command, once).
pub fn set_caller(c: Caller) {
    let _ = CALLER.set(c);
}

/// Who this process acts for: the forced command's key, else the key a git
/// hook was started for, else nobody (a command run on the host).
pub fn caller() -> Option<Caller> {
    CALLER
        .get()
        .cloned()
        .or_else(|| Caller::from_env(|k| std::env::var(k).ok()))
}

/// Whether the current caller may see `app` (listings show only these).
pub fn visible(app: &str) -> bool {
    caller().is_none_or(|c| c.grant.owns(app))
}

/// Whether the current caller is an admin key or the host itself.
pub fn is_admin() -> bool {
    caller().is_none_or(|c| c.grant.role == Role::Admin)
}

/// Who made a release, for its record.
pub fn actor() -> Option<String> {
    caller().map(|c| c.label())
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub time: String,
    pub key: String,
    pub fingerprint: String,
    pub role: Role,
    /// `git-receive-pack` for a push, `git-upload-pack` for a clone, else the
    /// kata command (`help` for an empty one).
    pub command: String,
    /// The command's words, config and secret values replaced by `…`.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub status: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// The client was gone before the command ended (its connection closed,
    /// or sshd hung up): it never saw `status`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disconnected: bool,
}

static HUNG_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_hangup(_: libc::c_int) {
    // async-signal-safe: one atomic store
    HUNG_UP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Keeps this process alive through a SIGHUP (sshd hanging up on a gone
/// client), so it still records its event. Children start with the default
/// disposition again (a handler does not survive `exec`).
pub fn survive_hangup() {
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGHUP, on_hangup as *const () as libc::sighandler_t);
    }
}

/// Whether the client is gone: a SIGHUP came, or stdout or stderr is a
/// pipe or socket whose other end closed.
pub fn client_gone() -> bool {
    if HUNG_UP.load(std::sync::atomic::Ordering::SeqCst) {
        return true;
    }
    let mut fds = [1, 2].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    });
    // SAFETY: polls two pollfd structs we own, without waiting.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    n > 0
        && fds
            .iter()
            .any(|f| f.revents & (libc::POLLERR | libc::POLLHUP) != 0)
}

/// Command words as they may be kept: `K=V` values of `config:set` and
/// `secrets:set` are not (the log would hold every secret).
pub fn redact(words: &[String]) -> Vec<String> {
    let secret_values = matches!(
        words.first().map(String::as_str),
        Some("config:set" | "secrets:set")
    );
    words
        .iter()
        .enumerate()
        .map(|(i, w)| match w.split_once('=') {
            Some((k, _)) if secret_values && i > 0 && !k.starts_with('-') => format!("{k}=…"),
            _ => w.chars().take(200).collect(),
        })
        .take(64)
        .collect()
}

pub fn log_path(paths: &Paths) -> PathBuf {
    paths.root().join("state").join("audit.log")
}

/// Appends one event: a single `write` of one line to an `O_APPEND` file
/// (created 0600), under an exclusive `flock`.
pub fn append(path: &Path, event: &Event) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(event).map_err(io::Error::other)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.lock()?;
    f.write_all(line.as_bytes())?;
    f.unlock()
}

/// Writes `event`, warning (never failing the command) when it cannot.
pub fn record(paths: &Paths, event: &Event) {
    if let Err(e) = append(&log_path(paths), event) {
        crate::ui::warn(format!("cannot write the audit log: {e}"));
    }
}

/// Every readable event (lines that do not parse are counted, not fatal).
pub fn read(path: &Path) -> io::Result<(Vec<Event>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut bad = 0;
    let events = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).map_err(|_| bad += 1).ok())
        .collect();
    Ok((events, bad))
}

/// The events about `app` (all when `None`) at or after `since` (unix secs).
pub fn select<'a>(events: &'a [Event], app: Option<&str>, since: Option<u64>) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| app.is_none_or(|a| e.app.as_deref() == Some(a)))
        .filter(|e| since.is_none_or(|s| parse_time(&e.time).is_some_and(|t| t >= s)))
        .collect()
}

/// A table, oldest first like the file.
pub fn table(events: &[&Event]) -> String {
    let mut out = String::from(
        "TIME                  KEY              ROLE    APP              STATUS  RELEASE  COMMAND\n",
    );
    for e in events {
        let mut what = e.args.join(" ");
        if what.is_empty() {
            what = e.command.clone();
        }
        if let Some(r) = &e.refused {
            what = format!("{what}  (refused: {r})");
        }
        if e.disconnected {
            what = format!("{what}  (client disconnected)");
        }
        out.push_str(&format!(
            "{:<21} {:<16} {:<7} {:<16} {:<7} {:<8} {}\n",
            e.time,
            e.key,
            e.role,
            e.app.as_deref().unwrap_or("-"),
            e.status,
            e.release
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            what
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// Time: UTC civil dates without a time zone database.
// ---------------------------------------------------------------------------

/// Unix seconds to (year, month, day, hour, minute, second), UTC
/// (civil-from-days, proleptic Gregorian).
pub fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` (or with a space), as UTC.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (s, "00:00:00"),
    };
    let num = |p: &str| p.parse::<i64>().ok();
    let dp: Vec<i64> = date.split('-').map(num).collect::<Option<_>>()?;
    let tp: Vec<i64> = time.split(':').map(num).collect::<Option<_>>()?;
    let [y, mo, d] = dp[..] else { return None };
    let (h, mi, sec) = match tp[..] {
        [h, mi] => (h, mi, 0),
        [h, mi, sec] => (h, mi, sec),
        _ => return None,
    };
    let ok = (1970..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..=60).contains(&sec);
    if !ok {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec).ok()
}

/// `--since`: a UTC time (see [`parse_time`]) or an age (`90s`, `30m`, `2h`, `7d`).
pub fn parse_since(s: &str, now: u64) -> Result<u64, String> {
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    if let Some(c) = s.chars().last()
        && let Some(mult) = unit(c)
        && let Ok(n) = s[..s.len() - 1].parse::<u64>()
    {
        return Ok(now.saturating_sub(n.saturating_mul(mult)));
    }
    parse_time(s).ok_or_else(|| {
        format!("--since {s:?}: give a UTC time (2026-12-01, 2026-12-01T10:30:00Z) or an age (30m, 2h, 7d)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: &str, app: Option<&str>) -> Event {
        Event {
            time: time.into(),
            key: "alice".into(),
            fingerprint: "SHA256:x".into(),
            role: Role::Deploy,
            command: "ps".into(),
            args: vec!["ps".into()],
            app: app.map(str::to_owned),
            status: 0,
            refused: None,
            release: None,
            disconnected: false,
        }
    }

    #[test]
    fn times_round_trip() {
        for secs in [0, 951_782_400, 1_795_000_000, 4_102_444_799] {
            let t = rfc3339(secs);
            assert_eq!(parse_time(&t), Some(secs), "{t}");
        }
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_time("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_time("2000-02-29 00:01"), Some(951_782_460));
        for bad in ["", "yesterday", "2000-13-01", "2000-01-01T25:00", "1-2"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(parse_since("2h", 10_000), Ok(10_000 - 7200));
        assert_eq!(parse_since("30m", 10_000), Ok(10_000 - 1800));
        assert_eq!(parse_since("7d", 10), Ok(0));
        assert_eq!(parse_since("2000-02-29", 0), Ok(951_782_400));
        assert!(parse_since("soon", 0).unwrap_err().contains("--since"));
    }

    #[test]
    fn secrets_never_reach_the_log() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            redact(&w(&[
                "config:set",
                "app",
                "PASSWORD=hunter2",
                "--no-deploy",
                "X"
            ])),
            w(&["config:set", "app", "PASSWORD=…", "--no-deploy", "X"])
        );
        assert_eq!(
            redact(&w(&["secrets:set", "db=pw"])),
            w(&["secrets:set", "db=…"])
        );
        assert_eq!(
            redact(&w(&["run", "app", "web", "env", "A=b"])),
            w(&["run", "app", "web", "env", "A=b"])
        );
    }

    #[test]
    fn select_by_app_and_time() {
        let all = vec![
            ev("2026-01-01T00:00:00Z", Some("a")),
            ev("2026-01-02T00:00:00Z", Some("b")),
            ev("2026-01-03T00:00:00Z", None),
            ev("2026-01-04T00:00:00Z", Some("a")),
        ];
        assert_eq!(select(&all, Some("a"), None).len(), 2);
        let since = parse_time("2026-01-02").unwrap();
        let s = select(&all, None, Some(since));
        assert_eq!(s.len(), 3);
        assert_eq!(select(&all, Some("a"), Some(since))[0].time, all[3].time);
        let t = table(&select(&all, Some("b"), None));
        assert!(t.lines().nth(1).unwrap().contains(" b "), "{t}");
    }

    #[test]
    fn appends_one_line_per_event_0600_from_many_writers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("audit.log");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    for j in 0..25 {
                        let mut e = ev("2026-01-01T00:00:00Z", Some("a"));
                        e.args = vec!["x".repeat(5000), format!("{i}-{j}")];
                        append(path, &e).unwrap();
                    }
                });
            }
        });
        let (events, bad) = read(&path).unwrap();
        assert_eq!((events.len(), bad), (200, 0));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // appending never rewrites what is there
        let before = std::fs::read(&path).unwrap();
        append(&path, &ev("2026-01-05T00:00:00Z", None)).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(&before));
    }

    #[test]
    fn hooks_learn_the_caller_from_the_environment() {
        let c = Caller {
            name: "ci".into(),
            fingerprint: "SHA256:f".into(),
            grant: Grant {
                role: Role::Deploy,
                apps: vec!["a*".into(), "b".into()],
            },
        };
        let env: std::collections::HashMap<_, _> = c.env().into_iter().collect();
        let back = Caller::from_env(|k| env.get(k).cloned());
        assert_eq!(back.as_ref(), Some(&c));
        assert_eq!(Caller::from_env(|_| None), None);
        // a key without a readable role is confined, not admin
        let odd = Caller::from_env(|k| (k == ENV_KEY).then(|| "SHA256:f".to_owned())).unwrap();
        assert_eq!(odd.grant.role, Role::Deploy);
        assert!(odd.grant.apps.is_empty());
        assert_eq!(c.label(), "ci (SHA256:f)");
    }
}
