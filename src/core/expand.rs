//! Compose-style variable expansion, done by kata before compose sees the file.
//!
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR?error}`, `${VAR:+alt}` and `${VAR+alt}` are replaced when `lookup`
//! knows the name (and for `:-`/`-`, also when it does not). Everything else
//! is left exactly as written so that compose can handle it: `$$` (compose's
//! escape for a literal `$`), unknown names, and a required variable that is
//! missing (compose then stops with its message).

/// Expands `s`; `lookup` returns values already in compose form (a literal
/// `$` written as `$$`), so inserted text is never re-interpreted.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut lit = 0; // start of the pending literal run
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&s[lit..i]);
        let (text, next) = expand_at(s, i, lookup);
        out.push_str(&text);
        i = next;
        lit = i;
    }
    out.push_str(&s[lit..]);
    out
}

/// Expands the reference starting at `s[i] == '$'`; returns the text and the
/// index after the reference.
fn expand_at(s: &str, i: usize, lookup: &dyn Fn(&str) -> Option<String>) -> (String, usize) {
    let b = s.as_bytes();
    match b.get(i + 1) {
        Some(b'$') => ("$$".into(), i + 2),
        Some(b'{') => {
            let Some(close) = matching_brace(s, i + 1) else {
                return (s[i..].to_owned(), s.len());
            };
            let inner = &s[i + 2..close];
            let whole = &s[i..=close];
            let name_len = inner
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            let (name, rest) = inner.split_at(name_len);
            if !is_name(name) {
                return (whole.to_owned(), close + 1);
            }
            let val = lookup(name);
            let text = match rest {
                "" => val.unwrap_or_else(|| whole.to_owned()),
                r if r.starts_with(":-") => match val.filter(|v| !v.is_empty()) {
                    Some(v) => v,
                    None => expand(&r[2..], lookup),
                },
                r if r.starts_with('-') => match val {
                    Some(v) => v,
                    None => expand(&r[1..], lookup),
                },
                // Set: the value; unset: left for compose, which stops with the message.
                r if r.starts_with(":?") => val
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| whole.to_owned()),
                r if r.starts_with('?') => val.unwrap_or_else(|| whole.to_owned()),
                r if r.starts_with(":+") => match val {
                    Some(v) if v.is_empty() => String::new(),
                    Some(_) => expand(&r[2..], lookup),
                    None => whole.to_owned(),
                },
                r if r.starts_with('+') => match val {
                    Some(_) => expand(&r[1..], lookup),
                    None => whole.to_owned(),
                },
                _ => whole.to_owned(),
            };
            (text, close + 1)
        }
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            let len = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            let name = &s[i + 1..i + 1 + len];
            let text = lookup(name).unwrap_or_else(|| s[i..i + 1 + len].to_owned());
            (text, i + 1 + len)
        }
        _ => ("$".into(), i + 1),
    }
}

fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + j);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_name(n: &str) -> bool {
    crate::envfile::is_key(n)
}

/// Literal data (a config value, a path) in compose form: `$` becomes `$$`.
pub fn escape(s: &str) -> String {
    s.replace('$', "$$")
}

/// `s` with every `$` that starts no reference written `$$`. compose v2
/// reads such a `$` (`cost 5$`, `^/api$`, `a $ b`) as a literal one;
/// docker-compose 1.x and docker stack deploy refuse the file. `$$` says the
/// same to all three.
pub fn escape_lone(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'$', Some(b'$')) => {
                out.push_str("$$");
                i += 2;
                continue;
            }
            (b'$', Some(c)) if *c == b'{' || c.is_ascii_alphabetic() || *c == b'_' => out.push('$'),
            (b'$', _) => out.push_str("$$"),
            _ => {
                let next = s[i..].find('$').map_or(s.len(), |n| i + n);
                out.push_str(&s[i..next]);
                i = next;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// `s` with each `${NAME:+alt}` and `${NAME+alt}` it still holds written
/// as compose resolves it for a name nothing sets: empty. After [`expand`]
/// only names no layer sets are left, and docker-compose 1.x and
/// `docker stack deploy` have no `+` forms (they refuse the file). None
/// when `s` has none.
pub fn drop_unset_alternatives(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut lit, mut changed) = (0, 0, false);
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'$', Some(b'$')) => i += 2,
            (b'$', Some(b'{')) => {
                let Some(close) = matching_brace(s, i + 1) else {
                    break;
                };
                let inner = &s[i + 2..close];
                let name_len = inner
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                let (name, rest) = inner.split_at(name_len);
                if is_name(name) && (rest.starts_with(":+") || rest.starts_with('+')) {
                    out.push_str(&s[lit..i]);
                    lit = close + 1;
                    changed = true;
                }
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    out.push_str(&s[lit..]);
    changed.then_some(out)
}

/// Whether `s` still contains a reference compose would interpolate.
pub fn has_reference(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            match b.get(i + 1) {
                Some(b'$') => i += 2,
                Some(c) if *c == b'{' || c.is_ascii_alphabetic() || *c == b'_' => return true,
                _ => i += 1,
            }
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lk(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8000".into()),
            "EMPTY" => Some(String::new()),
            "PRICE" => Some("$$5".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_known_and_keeps_the_rest() {
        let cases = [
            ("$PORT", "8000"),
            ("${PORT}", "8000"),
            ("127.0.0.1:$PORT:$PORT", "127.0.0.1:8000:8000"),
            ("$PORTS", "$PORTS"),
            ("${NOPE}", "${NOPE}"),
            ("${NOPE:-80}", "80"),
            ("${EMPTY:-80}", "80"),
            ("${EMPTY-80}", ""),
            ("${NOPE-${PORT}}", "8000"),
            ("${PORT:?must be set}", "8000"),
            ("${NOPE:?must be set}", "${NOPE:?must be set}"),
            ("${EMPTY:?must be set}", "${EMPTY:?must be set}"),
            ("${EMPTY?must be set}", ""),
            ("${PORT:+on}", "on"),
            ("${EMPTY:+on}", ""),
            ("${EMPTY+on}", "on"),
            ("${NOPE:+on}", "${NOPE:+on}"),
            ("$$PORT", "$$PORT"),
            ("$$$PORT", "$$8000"),
            ("cost $PRICE", "cost $$5"),
            ("a $ b", "a $ b"),
            ("trailing $", "trailing $"),
            ("${unclosed", "${unclosed"),
            ("${1X}", "${1X}"),
            ("ünï $PORT ✓", "ünï 8000 ✓"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &lk), want, "{input}");
        }
    }

    #[test]
    fn alternatives_of_unset_names_are_empty() {
        for (input, want) in [
            ("${NOPE:+on}", Some("")),
            ("a${NOPE+on}b ${X:-d}", Some("ab ${X:-d}")),
            ("x ${NOPE:+${INNER}} y", Some("x  y")),
            ("$${NOPE:+on}", None),
            ("${NOPE:-d} ${NOPE}", None),
            ("${unclosed:+", None),
        ] {
            assert_eq!(drop_unset_alternatives(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn references() {
        assert!(has_reference("$X"));
        assert!(has_reference("a${X}"));
        assert!(!has_reference("$$X"));
        assert!(!has_reference("5$"));
        assert_eq!(escape("a$b"), "a$$b");
    }

    #[test]
    fn lone_dollars_are_escaped_and_references_kept() {
        for (input, want) in [
            ("cost 5$", "cost 5$$"),
            ("^/api$", "^/api$$"),
            ("a $ b", "a $$ b"),
            ("x $1 y $-z $.", "x $$1 y $$-z $$."),
            ("$$HOME $HOME ${X:-d} $_u", "$$HOME $HOME ${X:-d} $_u"),
            ("ünï $ ✓", "ünï $$ ✓"),
            ("$$$", "$$$$"),
            ("plain", "plain"),
        ] {
            assert_eq!(escape_lone(input), want, "{input}");
        }
    }
}
