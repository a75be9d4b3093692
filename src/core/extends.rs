//! compose's `extends:` within the file: a service starts from another
//! service's keys and overrides them, merged as compose v2 merges them.
//! Resolved on the YAML tree before the file is read, so every value keeps
//! the position it was written at, and the rendered file has no `extends`.

use crate::spec::Diag;
use crate::yaml::{Node, Value};
use indexmap::IndexMap;

/// compose's merge tags on a value: `!reset` drops what the base service
/// has for the key, `!override` replaces it instead of merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Reset,
    Override,
}

/// The lines of `text` whose value carries `!reset` or `!override` (for a
/// tag that ends its line, the block value's first line): where the tagged
/// value's node starts.
pub fn tagged_lines(text: &str) -> Vec<(u64, Tag)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, line) in lines.iter().enumerate() {
        let code = line.split(" #").next().unwrap_or("");
        for (word, tag) in [("!reset", Tag::Reset), ("!override", Tag::Override)] {
            let Some(at) = [": ", "- "]
                .iter()
                .find_map(|lead| code.find(&format!("{lead}{word}")).map(|a| a + lead.len()))
            else {
                continue;
            };
            let rest = code[at + word.len()..].trim();
            let line_of_value = if rest.is_empty() {
                // the block value starts on the next line with content
                (i + 1..lines.len())
                    .find(|j| !lines[*j].trim().is_empty() && !lines[*j].trim().starts_with('#'))
                    .unwrap_or(i)
            } else {
                i
            };
            out.push((line_of_value as u64 + 1, tag));
        }
    }
    out
}

/// Replaces every service that `extends` another by the merged service.
/// Returns the errors: `extends.file` (kata reads one file), an unknown
/// service, a cycle. `tags` are the file's [`tagged_lines`].
pub fn resolve(root: &mut Node, tags: &[(u64, Tag)]) -> Vec<Diag> {
    let mut errors = vec![];
    let Value::Map(top) = &mut root.value else {
        return errors;
    };
    let Some(Node {
        value: Value::Map(services),
        ..
    }) = top.get_mut("services")
    else {
        return errors;
    };
    let written = services.clone();
    let mut memo = IndexMap::new();
    for name in written.keys() {
        if let Some(merged) = resolved(&written, name, tags, &mut vec![], &mut memo, &mut errors) {
            services.insert(name.clone(), merged);
        }
    }
    errors
}

/// The service `name` with its `extends` chain merged in; `None` after an
/// error (the service stays as written).
fn resolved(
    written: &IndexMap<String, Node>,
    name: &str,
    tags: &[(u64, Tag)],
    stack: &mut Vec<String>,
    memo: &mut IndexMap<String, Node>,
    errors: &mut Vec<Diag>,
) -> Option<Node> {
    if let Some(n) = memo.get(name) {
        return Some(n.clone());
    }
    let node = written.get(name)?;
    let Value::Map(local) = &node.value else {
        return Some(node.clone());
    };
    let Some(ext) = local.get("extends") else {
        return Some(node.clone());
    };
    let p = format!("services.{name}.extends");
    let base = match &ext.value {
        Value::Str(s) => s.clone(),
        Value::Map(m) => {
            if let Some(f) = m.get("file") {
                errors.push(Diag::at(f, format!("`{p}.file` is not supported: kata reads one compose file, so write the service it extends into this one")));
                return None;
            }
            match m.get("service").and_then(Node::as_str) {
                Some(s) => s.to_owned(),
                None => {
                    errors.push(Diag::at(ext, format!("`{p}` needs `service:`")));
                    return None;
                }
            }
        }
        _ => {
            errors.push(Diag::at(
                ext,
                format!("`{p}` must be a service name or a mapping with `service:`"),
            ));
            return None;
        }
    };
    if base == name || stack.contains(&base) {
        let mut chain = stack.clone();
        chain.extend([name.to_owned(), base]);
        // the same cycle is found again from each of its services
        if !errors
            .iter()
            .any(|e| e.message.starts_with("`extends` cycle"))
        {
            errors.push(Diag::at(
                ext,
                format!("`extends` cycle: {}", chain.join(" -> ")),
            ));
        }
        return None;
    }
    if !written.contains_key(&base) {
        errors.push(Diag::at(
            ext,
            format!("`{p}` names unknown service `{base}`"),
        ));
        return None;
    }
    stack.push(name.to_owned());
    let from = resolved(written, &base, tags, stack, memo, errors);
    stack.pop();
    let mut out = match from?.value {
        Value::Map(m) => m,
        _ => IndexMap::new(),
    };
    for (k, v) in local.iter().filter(|(k, _)| *k != "extends") {
        let tag = tags.iter().find(|(l, _)| *l == v.pos.line).map(|(_, t)| *t);
        let merged = match (out.get(k), tag) {
            (_, Some(Tag::Reset)) => {
                out.shift_remove(k);
                continue;
            }
            (Some(b), None) => merge_key(k, b.clone(), v.clone()),
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    let merged = Node {
        pos: node.pos,
        value: Value::Map(out),
    };
    memo.insert(name.to_owned(), merged.clone());
    Some(merged)
}

/// One service key of the base (`b`) with the extending service's (`l`).
fn merge_key(key: &str, b: Node, l: Node) -> Node {
    match key {
        // what runs is replaced whole
        "command" | "entrypoint" => l,
        // KEY=value lists and mappings merge by key
        "environment" | "labels" | "sysctls" | "annotations" => {
            let bare = if key == "environment" {
                Value::Null
            } else {
                Value::Str(String::new())
            };
            merge_maps(as_map(b, &bare), as_map(l, &bare))
        }
        // mounts merge by the path in the container
        "volumes" | "devices" => merge_by_target(b, l),
        "networks" | "depends_on" => match (&b.value, &l.value) {
            (Value::Seq(_), Value::Seq(_)) => append_unique(b, l),
            _ => {
                let item = if key == "networks" {
                    Value::Null
                } else {
                    Value::Map(IndexMap::from([(
                        "condition".to_owned(),
                        Node {
                            pos: l.pos,
                            value: Value::Str("service_started".into()),
                        },
                    )]))
                };
                merge_maps(as_map(b, &item), as_map(l, &item))
            }
        },
        _ => match (&b.value, &l.value) {
            (Value::Seq(_), Value::Seq(_)) => append_unique(b, l),
            (Value::Map(_), Value::Map(_)) => merge_maps(b, l),
            _ => l,
        },
    }
}

/// Mappings merge key by key, deeper mappings too; anything else is replaced
/// (`healthcheck.test`).
fn merge_maps(b: Node, l: Node) -> Node {
    match (b.value, l.value) {
        (Value::Map(mut out), Value::Map(lm)) => {
            for (k, v) in lm {
                let merged = match out.get(&k) {
                    Some(bv) if matches!((&bv.value, &v.value), (Value::Map(_), Value::Map(_))) => {
                        merge_maps(bv.clone(), v)
                    }
                    _ => v,
                };
                out.insert(k, merged);
            }
            Node {
                pos: l.pos,
                value: Value::Map(out),
            }
        }
        (_, value) => Node { pos: l.pos, value },
    }
}

/// The base's items, then the extending service's that are not already there.
fn append_unique(b: Node, l: Node) -> Node {
    let (Value::Seq(mut out), Value::Seq(items)) = (b.value, l.value) else {
        unreachable!("append_unique is called on two sequences")
    };
    for it in items {
        if !out.iter().any(|o| o.to_json() == it.to_json()) {
            out.push(it);
        }
    }
    Node {
        pos: l.pos,
        value: Value::Seq(out),
    }
}

/// `[K=v, K]` as `{K: v, K: bare}` (`[db]` as `{db: bare}`); a mapping as it is.
fn as_map(n: Node, bare: &Value) -> Node {
    let Value::Seq(items) = n.value else { return n };
    let m = items
        .into_iter()
        .filter_map(|it| {
            let s = it.scalar_string()?;
            let (k, v) = match s.split_once('=') {
                Some((k, v)) => (k.to_owned(), Value::Str(v.to_owned())),
                None => (s, bare.clone()),
            };
            Some((
                k,
                Node {
                    pos: it.pos,
                    value: v,
                },
            ))
        })
        .collect();
    Node {
        pos: n.pos,
        value: Value::Map(m),
    }
}

/// Mount lists: an entry for a container path the base mounts too replaces
/// the base's, in its place.
fn merge_by_target(b: Node, l: Node) -> Node {
    let (Value::Seq(mut out), Value::Seq(items)) = (b.value, l.value.clone()) else {
        return l;
    };
    for it in items {
        match out.iter().position(|o| target(o) == target(&it)) {
            Some(i) => out[i] = it,
            None => out.push(it),
        }
    }
    Node {
        pos: l.pos,
        value: Value::Seq(out),
    }
}

/// The container side of a mount (`src:target[:mode]`, `{target: ...}`).
fn target(n: &Node) -> Option<String> {
    match &n.value {
        Value::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(parts.get(1).unwrap_or(&parts[0]).to_string())
        }
        Value::Map(m) => m.get("target").and_then(Node::scalar_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(text: &str, name: &str) -> (serde_json::Value, Vec<Diag>) {
        let mut root = crate::yaml::parse(text).unwrap();
        let errors = resolve(&mut root, &tagged_lines(text));
        (root.find(&["services", name]).to_json(), errors)
    }

    /// What `docker compose config` prints for the same file (v2.40).
    #[test]
    fn extends_merges_as_compose_does() {
        let text = "services:\n  base:\n    image: busybox\n    command: [a, b]\n    environment: {A: \"1\", B: \"2\"}\n    labels: [l1=a, l2=b]\n    ports: [\"8000:80\"]\n    volumes: [\"/a:/data\", \"/b:/b\"]\n    depends_on: [db]\n    cap_add: [NET_ADMIN]\n    healthcheck: {test: [CMD, x], interval: 5s}\n    networks: [n1]\n  db:\n    image: postgres\n  web:\n    extends: base\n    command: c\n    environment: [B=3, C=4, D]\n    labels: {l2: z}\n    ports: [\"9000:90\", \"8000:80\"]\n    volumes: [\"/c:/data\"]\n    cap_add: [SYS_ADMIN]\n    healthcheck: {test: y}\n    networks: {n2: }\n  web2:\n    extends: {service: web}\n    image: alpine\n";
        let (web, errors) = service(text, "web");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            web,
            json!({
                "image": "busybox",
                "command": "c",
                "environment": {"A": "1", "B": "3", "C": "4", "D": null},
                "labels": {"l1": "a", "l2": "z"},
                "ports": ["8000:80", "9000:90"],
                "volumes": ["/c:/data", "/b:/b"],
                "depends_on": ["db"],
                "cap_add": ["NET_ADMIN", "SYS_ADMIN"],
                "healthcheck": {"test": "y", "interval": "5s"},
                "networks": {"n1": null, "n2": null},
            })
        );
        let (web2, _) = service(text, "web2");
        assert_eq!(web2["image"], "alpine");
        assert_eq!(web2["environment"]["B"], "3");
        assert!(web2.get("extends").is_none());
    }

    /// As `docker compose config` reads it: `!reset` drops the base's
    /// value, `!override` replaces it.
    #[test]
    fn reset_and_override_tags_apply_to_the_base() {
        let text = "services:\n  base:\n    image: x\n    ports: [\"80:80\"]\n    environment: {A: \"1\", B: \"2\"}\n    labels: [a=1]\n  web:\n    extends: base\n    ports: !reset []\n    environment: !override\n      C: \"3\"\n    labels: {b: \"2\"}\n";
        let (web, errors) = service(text, "web");
        assert!(errors.is_empty(), "{errors:?}");
        assert!(web.get("ports").is_none(), "{web}");
        assert_eq!(web["environment"], json!({"C": "3"}));
        assert_eq!(web["labels"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn depends_on_forms_merge_into_conditions() {
        let text = "services:\n  a:\n    image: x\n    depends_on: [db]\n  b:\n    extends: a\n    depends_on:\n      cache: {condition: service_healthy}\n  db: {image: y}\n  cache: {image: z}\n";
        let (b, _) = service(text, "b");
        assert_eq!(
            b["depends_on"],
            json!({"db": {"condition": "service_started"}, "cache": {"condition": "service_healthy"}})
        );
    }

    #[test]
    fn other_files_unknown_services_and_cycles_are_errors_at_the_extends() {
        for (text, want, line) in [
            (
                "services:\n  a:\n    extends:\n      file: common.yml\n      service: web\n",
                "not supported",
                4,
            ),
            (
                "services:\n  a:\n    extends: nope\n",
                "unknown service `nope`",
                3,
            ),
            (
                "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
                "cycle: a -> b -> a",
                5,
            ),
            (
                "services:\n  a:\n    extends: [b]\n",
                "must be a service name",
                3,
            ),
        ] {
            let (_, errors) = service(text, "a");
            assert!(
                errors
                    .iter()
                    .any(|e| e.message.contains(want) && e.pos.is_some_and(|p| p.line == line)),
                "{text}: {errors:?}"
            );
        }
    }
}
