//! App and service names: the one gate every path and command goes through.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid app name {0:?}: use 1-63 of a-z 0-9 _ -, starting with a letter or digit")]
    App(String),
    #[error(
        "invalid service name {0:?}: use 1-63 of a-z 0-9 _ . -, starting with a letter or digit"
    )]
    Service(String),
}

/// Normalises what a user or git typed (`'app'`, `/app.git`) and validates it
/// against `^[a-z0-9][a-z0-9_-]{0,62}$`. Nothing may touch the disk before this.
pub fn app_name(raw: &str) -> Result<String, NameError> {
    let mut s = raw.trim();
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            s = &s[1..s.len() - 1];
        }
    }
    let s = s.strip_prefix('/').unwrap_or(s);
    let s = s.strip_suffix(".git").unwrap_or(s);
    if is_app_name(s) {
        Ok(s.to_owned())
    } else {
        Err(NameError::App(raw.to_owned()))
    }
}

pub fn is_app_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Compose service names: like app names, plus `.`, which compose allows.
pub fn service_name(s: &str) -> Result<(), NameError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(NameError::Service(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_git_forms() {
        for raw in ["app", "'app'", "\"app\"", "/app", "app.git", "'/app.git'"] {
            assert_eq!(app_name(raw).unwrap(), "app", "{raw}");
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let long = "a".repeat(64);
        for raw in [
            "",
            "..",
            "../x",
            "a/b",
            "A",
            "-a",
            "_a",
            "a b",
            "a;b",
            "$(id)",
            "a\nb",
            ".git",
            &long,
            "app.git.git",
            "a.b",
            "''",
        ] {
            assert!(app_name(raw).is_err(), "{raw:?} accepted");
        }
        assert!(app_name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn service_names() {
        assert!(service_name("web").is_ok());
        assert!(service_name("db.primary").is_ok());
        assert!(service_name("Web").is_err());
        assert!(service_name("a/b").is_err());
    }
}
