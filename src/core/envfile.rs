//! `config/<app>/ENV` (or `.env`): KEY=VALUE lines, read and written so that
//! any value (spaces, quotes, `=`, `#`, `$`, newlines) round-trips exactly.
//!
//! Accepted: blank lines, `#` comments, an optional `export ` prefix,
//! unquoted values (trailing blanks and a ` #comment` dropped), single quotes
//! (literal), double quotes (`\n \r \t \" \\ \$` escapes, may span lines).

use indexmap::IndexMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{line}:{column}: {message}")]
pub struct EnvFileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

pub type Env = IndexMap<String, String>;

pub fn is_key(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub fn parse(text: &str) -> Result<Env, EnvFileError> {
    let mut env = Env::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let lineno = i + 1;
        let raw = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
        i += 1;
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let col0 = indent + (trimmed.len() - body.len()) + 1;
        let err = |column: usize, message: String| EnvFileError {
            line: lineno,
            column,
            message,
        };
        let Some((key, rest)) = body.split_once('=') else {
            return Err(err(col0, format!("expected KEY=VALUE, found {:?}", body)));
        };
        let key = key.trim_end();
        if !is_key(key) {
            return Err(err(col0, format!("invalid variable name {key:?}")));
        }
        let vcol = col0 + body.len() - rest.len();
        let value = if let Some(q) = rest.strip_prefix('\'') {
            let Some(end) = q.find('\'') else {
                return Err(err(vcol, "unterminated single quote".into()));
            };
            check_trailing(&q[end + 1..]).map_err(|m| err(vcol + end + 2, m))?;
            q[..end].to_owned()
        } else if let Some(q) = rest.strip_prefix('"') {
            // A double-quoted value may continue on the following lines.
            let mut buf = q.to_owned();
            loop {
                match scan_double(&buf) {
                    Ok(Some((value, after))) => {
                        check_trailing(&buf[after..]).map_err(|m| err(vcol, m))?;
                        break value;
                    }
                    Ok(None) if i < lines.len() => {
                        buf.push('\n');
                        buf.push_str(lines[i].strip_suffix('\r').unwrap_or(lines[i]));
                        i += 1;
                    }
                    Ok(None) => return Err(err(vcol, "unterminated double quote".into())),
                    Err(m) => return Err(err(vcol, m)),
                }
            }
        } else {
            let v = match rest.find(" #").or_else(|| rest.find("\t#")) {
                Some(p) => &rest[..p],
                None => rest,
            };
            v.trim().to_owned()
        };
        env.insert(key.to_owned(), value);
    }
    Ok(env)
}

/// Scans a double-quoted body (after the opening quote). Returns the value and
/// the byte index after the closing quote, or None when it is not closed yet.
fn scan_double(s: &str) -> Result<Option<(String, usize)>, String> {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok(Some((out, i + 1))),
            '\\' => match it.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, c @ ('"' | '\\' | '$' | '`'))) => out.push(c),
                Some((_, '\n')) => {}
                Some((_, c)) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Ok(None),
            },
            c => out.push(c),
        }
    }
    Ok(None)
}

fn check_trailing(rest: &str) -> Result<(), String> {
    let t = rest.trim();
    if t.is_empty() || t.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected text after closing quote: {t:?}"))
    }
}

/// Renders an env map so that `parse(render(env)) == env`.
pub fn render(env: &Env) -> String {
    let mut out = String::new();
    for (k, v) in env {
        out.push_str(k);
        out.push('=');
        out.push_str(&quote(v));
        out.push('\n');
    }
    out
}

fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-./:@%+,^~".contains(&c));
    if plain {
        return v.to_owned();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '"' | '\\' | '$' | '`' => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_people_write() {
        let text = "\
# comment
  
export A=1
B = spaced out  # trailing comment
C='single $NOT \"kept\"'
D=\"dq \\\"x\\\" \\$HOME\\nnext\"
E=a=b=c
F=
G=\"multi
line\"
H=#notacomment
";
        let env = parse(text).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("A", "1"),
                ("B", "spaced out"),
                ("C", "single $NOT \"kept\""),
                ("D", "dq \"x\" $HOME\nnext"),
                ("E", "a=b=c"),
                ("F", ""),
                ("G", "multi\nline"),
                ("H", "#notacomment"),
            ]
        );
    }

    #[test]
    fn errors_point_at_line_and_column() {
        assert_eq!(
            parse("A=1\nnot a pair\n").unwrap_err().to_string(),
            "2:1: expected KEY=VALUE, found \"not a pair\""
        );
        assert_eq!(parse("1X=1").unwrap_err().line, 1);
        assert!(
            parse("A='open")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(
            parse("A=\"open\nstill")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(
            parse("A='x' y")
                .unwrap_err()
                .message
                .contains("after closing quote")
        );
    }

    #[test]
    fn round_trips_awkward_values() {
        let mut env = Env::new();
        for (i, v) in [
            "",
            "plain",
            "with space",
            "quote\"s",
            "single'q",
            "a=b",
            "#hash",
            "x #y",
            "$HOME",
            "${X:-y}",
            "back\\slash",
            "new\nline",
            "cr\r\nlf",
            "tab\there",
            " lead",
            "trail ",
            "uni—code ✓",
            "`tick`",
            "\\n literal",
        ]
        .iter()
        .enumerate()
        {
            env.insert(format!("K{i}"), v.to_string());
        }
        assert_eq!(parse(&render(&env)).unwrap(), env);
    }
}

/// Where an app's config lives: `config/<app>/ENV`, else `config/<app>/.env`.
pub fn config_file(paths: &crate::paths::Paths, app: &str) -> std::path::PathBuf {
    let dir = paths.config(app);
    let env = dir.join("ENV");
    if !env.exists() && dir.join(".env").exists() {
        dir.join(".env")
    } else {
        env
    }
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{path}:{source}")]
    Syntax { path: String, source: EnvFileError },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Reads the app's config file; a missing file is an empty config.
pub fn read_config(paths: &crate::paths::Paths, app: &str) -> Result<Env, ReadError> {
    let path = config_file(paths, app);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|source| ReadError::Syntax {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Env::new()),
        Err(source) => Err(ReadError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}
