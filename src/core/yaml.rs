//! A YAML tree that remembers where every node came from, so validation
//! errors can point at `file:line:column`.

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// 1-based position in the source document (0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(IndexMap<String, Node>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Spanned<Value> = Spanned::deserialize(d)?;
        Ok(Node {
            pos: Pos {
                line: s.referenced.line(),
                column: s.referenced.column(),
            },
            value: s.value,
        })
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    // Above i64 (a 20-digit id in an `environment` value) compose keeps
    // the digits; so does kata, as text.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::Str(v.to_string()), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            out.push(n);
        }
        Ok(Value::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(k) = map.next_key::<Node>()? {
            let key = match k.value {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Null => "null".to_owned(),
                _ => {
                    return Err(de::Error::custom(format!(
                        "{}: mapping keys must be scalars",
                        k.pos
                    )));
                }
            };
            let v = map.next_value::<Node>()?;
            out.insert(key, v);
        }
        Ok(Value::Map(out))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn proto() {
        let src = "a: yes\nb: '22:22'\nc: 22:22\nd: 8000\ne: [1, x, \"y\"]\nf:\n  g: null\n  h: on\n  i: ~\nanch: &x {k: 1}\nuse: *x\nm:\n  <<: *x\n  z: 2\n";
        let n: Node = serde_saphyr::from_str(src).unwrap();
        println!("{n:#?}");
        let bad = "a: [1, 2\nb: 3\n";
        let e = serde_saphyr::from_str::<Node>(bad).unwrap_err();
        println!(
            "ERR {e} LOC {:?}",
            e.location().map(|l| (l.line(), l.column()))
        );
        let dup = "a: 1\na: 2\n";
        println!(
            "DUP {:?}",
            serde_saphyr::from_str::<Node>(dup).map(|n| n.value)
        );
        let v = serde_json::json!({"a": "yes", "b": "22:22", "c": "on", "d": "8000", "e": "", "f": "a: b", "g": "multi\nline\n", "h": "$$X", "i": "no", "j": "1e3", "k": "0o17", "l": "null", "m": "~", "n": " x"});
        println!("{}", serde_saphyr::to_string(&v).unwrap());
        let empty = serde_saphyr::from_str::<Node>("");
        println!("EMPTY {empty:?}");
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// The node at `path` (mapping keys, list indexes), or the deepest
    /// ancestor that exists: where a finding about that path points.
    pub fn find(&self, path: &[&str]) -> &Node {
        let mut at = self;
        for step in path {
            let next = match &at.value {
                Value::Map(m) => m.get(*step),
                Value::Seq(s) => step.parse::<usize>().ok().and_then(|i| s.get(i)),
                _ => None,
            };
            match next {
                Some(n) => at = n,
                None => break,
            }
        }
        at
    }
    /// The value of `key`, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }
    /// A scalar as the string compose would see (`8000` → "8000"); None for
    /// maps and sequences.
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }
    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(s) => J::Array(s.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

/// A YAML syntax or structure error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: Option<Pos>,
    pub message: String,
}

/// How many YAML events aliases may replay in one file: a few hundred
/// thousand is far above any real compose file, far below a bomb.
pub const MAX_ALIAS_EVENTS: usize = 200_000;

/// Parses a whole document. Duplicate keys are errors; YAML 1.1 booleans such
/// as `on`/`yes` stay strings (compose v2 reads YAML 1.2). A number with a
/// leading zero (`mode: 0440`, `0755`) is octal, as both compose versions
/// read it.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut options = serde_saphyr::options! { strict_booleans: true };
    options.legacy_octal_numbers = true;
    // Real compose files use anchors a lot (hundreds of `*alias` uses, one
    // anchor shared by every service), so the alias/anchor ratio heuristic
    // is off; what stops an alias bomb is the size aliases expand to, and
    // that error points at the alias that crosses the limit.
    options.budget = serde_saphyr::budget! { enforce_alias_anchor_ratio: false };
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        let pos = e.location().map(|l| Pos {
            line: l.line(),
            column: l.column(),
        });
        let full = e.without_snippet().to_string();
        let first = full.lines().next().unwrap_or("").trim();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        // Drop serde-saphyr's own "line X column Y: " prefix; we print file:line:col.
        let message = match first.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
            _ => first,
        };
        // A tab in the indentation is reported at the scalar before it;
        // point at the tab itself.
        if message
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == "tab" || w == "tabs")
            && let Some(tab) = indenting_tab(text)
        {
            return ParseError {
                pos: Some(tab),
                message: "a tab in the indentation: YAML indents with spaces only".into(),
            };
        }
        ParseError {
            pos,
            message: tidy(message),
        }
    })
}

/// The position of the first tab in a line's leading whitespace.
fn indenting_tab(text: &str) -> Option<Pos> {
    text.lines().enumerate().find_map(|(i, line)| {
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        line[..lead].find('\t').map(|col| Pos {
            line: i as u64 + 1,
            column: col as u64 + 1,
        })
    })
}

/// serde-saphyr's messages repeat the position and mention its own options;
/// keep just what a user of kata needs.
fn tidy(message: &str) -> String {
    let mut m = message.to_owned();
    if let Some(i) = m.find(" (defined at line") {
        m.truncate(i);
    }
    while let Some(i) = m.rfind(" at line ") {
        if m[i..].contains(", column ") {
            m.truncate(i);
        } else {
            break;
        }
    }
    if m.starts_with("alias replay limit exceeded") {
        return format!(
            "document too large: its aliases expand past kata's limit of {MAX_ALIAS_EVENTS} YAML nodes"
        );
    }
    if m.starts_with("multiple YAML documents detected") {
        return "a second YAML document (`---`): kata reads one document; merge them into one"
            .into();
    }
    if m.starts_with("recursive references require") {
        return "an alias refers to a node that contains it (a recursive anchor)".into();
    }
    if m.starts_with("non-finite float") {
        return "an infinite or not-a-number value (`.inf`, `.nan`), which compose v2 and docker-compose 1.x read differently: quote it if it is text".into();
    }
    if m.starts_with("budget breached") {
        return "document too large: it expands (through aliases or sheer size) past kata's limit"
            .into();
    }
    m.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

#[cfg(test)]
mod alias_tests {
    use super::*;

    /// Thousands of alias uses, as large self-hosted compose files have.
    #[test]
    fn realistic_alias_counts_parse() {
        let mut text =
            String::from("x-common: &common\n  image: busybox\n  restart: always\nservices:\n");
        for i in 0..3000 {
            text.push_str(&format!("  s{i}:\n    <<: *common\n"));
        }
        let root = parse(&text).expect("3000 aliases parse");
        assert_eq!(root.find(&["services"]).as_map().unwrap().len(), 3000);
    }

    /// A bomb is stopped by the size its aliases expand to, at the alias.
    #[test]
    fn alias_bombs_stop_at_the_offending_alias() {
        let text = std::fs::read_to_string("tests/fixtures/invalid/alias-bomb.yaml").unwrap();
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.pos,
            Some(Pos {
                line: 6,
                column: 11
            })
        );
        assert!(e.message.starts_with("document too large"), "{}", e.message);
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;

    /// compose v2 (go-yaml) and v1 (PyYAML) read `0440` as octal; a number
    /// past i64 keeps its digits.
    #[test]
    fn numbers_read_as_compose_reads_them() {
        let root =
            parse("a: 0440\nb: 0755\nc: 0o17\nd: 0\ne: 12345678901234567890\nf: 1.50\ng: 10\n")
                .unwrap();
        let get = |k: &str| root.find(&[k]).value.clone();
        assert_eq!(get("a"), Value::Int(0o440));
        assert_eq!(get("b"), Value::Int(0o755));
        assert_eq!(get("c"), Value::Int(0o17));
        assert_eq!(get("d"), Value::Int(0));
        assert_eq!(get("e"), Value::Str("12345678901234567890".into()));
        assert_eq!(get("f"), Value::Float(1.5));
        assert_eq!(get("g"), Value::Int(10));
    }

    /// serde-saphyr's own wording names its API; kata's says what to change.
    #[test]
    fn documents_and_recursive_aliases_are_explained() {
        let e = parse("services:\n  a:\n    image: x\n---\nservices: {}\n").unwrap_err();
        assert_eq!(e.pos.map(|p| p.line), Some(5));
        assert!(
            e.message.starts_with("a second YAML document"),
            "{}",
            e.message
        );
        let e = parse("services:\n  web: &w\n    image: x\n    labels: *w\n").unwrap_err();
        assert_eq!(e.pos.map(|p| p.line), Some(4));
        assert!(e.message.contains("recursive anchor"), "{}", e.message);
    }

    #[test]
    fn a_tab_in_the_indentation_is_pointed_at() {
        let e = parse("services:\n  app:\n    image: x\n\trestart: always\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 4, column: 1 }));
        assert_eq!(
            e.message,
            "a tab in the indentation: YAML indents with spaces only"
        );
        let e = parse("services:\n  web:\n\timage: x\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 3, column: 1 }));
        // a tab inside a block scalar is text
        assert!(parse("a: |\n  x\n  \ty\n").is_ok());
    }

    #[test]
    fn infinite_numbers_ask_for_quotes() {
        let e = parse("a:\n  b: .inf\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, column: 6 }));
        assert!(e.message.contains("quote it"), "{}", e.message);
        assert!(parse("a:\n  b: \".inf\"\n").is_ok());
    }
}
