//! The one place that decides how progress, warnings and errors look.
//! Through the post-receive hook both streams reach the pusher as `remote:`.
//! While a deploy runs, everything shown (and every command's raw output)
//! also goes to its deploy log, kata's own lines stamped with the time since
//! the log opened.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

struct Log {
    file: File,
    opened: Instant,
}

static LOG: Mutex<Option<Log>> = Mutex::new(None);

/// Writes to the deploy log, if one is open (never fails the caller).
fn to_log(write: impl FnOnce(&mut Log)) {
    if let Ok(mut guard) = LOG.lock()
        && let Some(log) = guard.as_mut()
    {
        write(log);
    }
}

/// A kata line in the log: `[+1.234s] line`.
pub fn log_line(line: impl std::fmt::Display) {
    to_log(|log| {
        let t = log.opened.elapsed().as_secs_f64();
        let _ = writeln!(log.file, "[+{t:.3}s] {line}");
    });
}

/// A command's output as it came, into the log only.
pub fn log_raw(bytes: &[u8]) {
    to_log(|log| {
        let _ = log.file.write_all(bytes);
    });
}

/// Kept open while alive: the deploy log of one release.
#[must_use]
pub struct DeployLog {
    path: PathBuf,
}

impl DeployLog {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DeployLog {
    fn drop(&mut self) {
        if let Ok(mut guard) = LOG.lock() {
            *guard = None;
        }
    }
}

/// Starts writing the deploy log at `path` (replacing an older one there).
pub fn open_log(path: &Path) -> std::io::Result<DeployLog> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::create(path)?;
    if let Ok(mut guard) = LOG.lock() {
        *guard = Some(Log {
            file,
            opened: Instant::now(),
        });
    }
    Ok(DeployLog {
        path: path.to_owned(),
    })
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Shows every command and its output raw from now on (`--verbose`,
/// `git push -o verbose`).
pub fn set_verbose() {
    VERBOSE.store(true, Ordering::Relaxed);
}

/// `KATA_VERBOSE=1` or [`set_verbose`]: commands' output is shown raw, as
/// they print it.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
        || std::env::var("KATA_VERBOSE")
            .is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "no"))
}

/// Whether `git push -o verbose` was given, from the push options git hands
/// its hooks (`GIT_PUSH_OPTION_COUNT`, `GIT_PUSH_OPTION_<i>`).
pub fn push_asks_verbose(env: impl Fn(&str) -> Option<String>) -> bool {
    let count: usize = env("GIT_PUSH_OPTION_COUNT")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (0..count.min(100)).any(|i| env(&format!("GIT_PUSH_OPTION_{i}")).as_deref() == Some("verbose"))
}

fn out(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `-----> message`: a step header.
pub fn step(msg: impl std::fmt::Display) {
    let line = format!("-----> {msg}");
    log_line(&line);
    out(&line);
}

/// Indented detail under a step.
pub fn info(msg: impl std::fmt::Display) {
    let line = format!("{}{msg}", crate::output::INDENT);
    log_line(&line);
    out(&line);
}

/// A line of a command's filtered output (the raw bytes are logged).
pub fn output_line(line: &str) {
    out(line);
}

/// A command's output, raw (verbose mode).
pub fn raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

pub fn warn(msg: impl std::fmt::Display) {
    let line = format!("warning: {msg}");
    log_line(&line);
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// An error that ends the deploy, for the log (the caller shows it).
pub fn log_error(msg: impl std::fmt::Display) {
    log_line(format_args!("error: {msg}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_option_verbose() {
        let opts = |list: &'static [&'static str]| {
            move |k: &str| match k {
                "GIT_PUSH_OPTION_COUNT" => Some(list.len().to_string()),
                _ => k
                    .strip_prefix("GIT_PUSH_OPTION_")
                    .and_then(|i| list.get(i.parse::<usize>().ok()?))
                    .map(|s| s.to_string()),
            }
        };
        assert!(push_asks_verbose(opts(&["ci.skip", "verbose"])));
        assert!(!push_asks_verbose(opts(&["verbose=0"])));
        assert!(!push_asks_verbose(opts(&[])));
        assert!(!push_asks_verbose(|_| None));
    }
}
