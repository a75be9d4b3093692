//! The one place that decides how progress, warnings and errors look.
//! Through the post-receive hook both streams reach the pusher as `remote:`.

use std::io::Write;

/// `-----> message`: a step header.
pub fn step(msg: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "-----> {msg}");
    let _ = out.flush();
}

/// Indented detail under a step.
pub fn info(msg: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "       {msg}");
    let _ = out.flush();
}

pub fn warn(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "warning: {msg}");
}
