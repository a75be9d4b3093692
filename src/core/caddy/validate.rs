//! Structural checks on an app's `caddy:` block, on the YAML tree before
//! variable expansion, so every issue can point at `line:column`.
//!
//! Only the keys kata relies on are type-checked (`listen`, `routes`,
//! `match`, `handle[].handler`, `upstreams[].dial`, `automatic_https`, and
//! kata's shorthand `domains`, `service`, `port`, `https`); every other key of
//! Caddy's server object passes through untouched for Caddy to judge.
//! A string containing `$` stands for a value that variable expansion fills
//! in later, so it is accepted wherever a scalar (bool, port) is expected.

use super::shorthand::{ISSUER_HELP, ISSUERS};
use crate::yaml::{Node, Pos, Value};
use std::fmt;

/// One problem in the `caddy:` block: `path` is the key path from the
/// document root (e.g. `caddy.routes[0].handle[1].handler`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaddyIssue {
    pub path: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for CaddyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks the `caddy:` node (a Caddy server object, possibly using kata's
/// shorthand). Returns every issue found; empty means structurally fine.
pub fn validate(server: &Node) -> Vec<CaddyIssue> {
    let mut v = Checker { issues: Vec::new() };
    v.server("caddy", server);
    v.issues
}

struct Checker {
    issues: Vec<CaddyIssue>,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Int(_) => "a number",
        Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

fn is_var(v: &Value) -> bool {
    matches!(v, Value::Str(s) if s.contains('$'))
}

impl Checker {
    fn issue(&mut self, path: &str, pos: Pos, message: impl Into<String>) {
        self.issues.push(CaddyIssue {
            path: path.to_owned(),
            pos,
            message: message.into(),
        });
    }

    fn wrong(&mut self, path: &str, node: &Node, expected: &str) {
        let msg = format!("expected {expected}, found {}", kind(&node.value));
        self.issue(path, node.pos, msg);
    }

    fn map<'a>(
        &mut self,
        path: &str,
        node: &'a Node,
        what: &str,
    ) -> Option<&'a indexmap::IndexMap<String, Node>> {
        match &node.value {
            Value::Map(m) => Some(m),
            _ => {
                self.wrong(path, node, what);
                None
            }
        }
    }

    fn seq<'a>(&mut self, path: &str, node: &'a Node, what: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::Seq(s) => Some(s),
            _ => {
                self.wrong(path, node, what);
                None
            }
        }
    }

    fn string(&mut self, path: &str, node: &Node, what: &str) {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => {}
            Value::Str(_) => self.issue(
                path,
                node.pos,
                format!("expected {what}, found an empty string"),
            ),
            _ => self.wrong(path, node, what),
        }
    }

    fn strings(&mut self, path: &str, node: &Node, what: &str) {
        let plural = if what.ends_with('s') { "es" } else { "s" };
        let hint = format!("a list of {what}{plural}, e.g. [\"{}\"]", example(what));
        if let Some(items) = self.seq(path, node, &hint) {
            for (i, item) in items.iter().enumerate() {
                self.string(&format!("{path}[{i}]"), item, what);
            }
        }
    }

    fn boolean(&mut self, path: &str, node: &Node) {
        if !matches!(node.value, Value::Bool(_)) && !is_var(&node.value) {
            self.wrong(path, node, "true or false");
        }
    }

    fn server(&mut self, path: &str, node: &Node) {
        let Some(m) = self.map(path, node, "a mapping (a Caddy server object)") else {
            return;
        };
        for (key, val) in m {
            let p = format!("{path}.{key}");
            match key.as_str() {
                "listen" => self.strings(&p, val, "listen address"),
                "routes" => self.routes(&p, val),
                "errors" => {
                    if let Some(e) = self.map(&p, val, "a mapping with routes")
                        && let Some(r) = e.get("routes")
                    {
                        self.routes(&format!("{p}.routes"), r);
                    }
                }
                "automatic_https" => self.automatic_https(&p, val),
                "domains" => self.strings(&p, val, "domain name"),
                "service" => self.string(&p, val, "a service name"),
                "port" => self.port(&p, val),
                "https" => self.https(&p, val),
                _ => {}
            }
        }
        let has = |k: &str| m.contains_key(k);
        let shorthand = has("service") || has("port");
        if shorthand && has("routes") {
            let key = if has("service") { "service" } else { "port" };
            self.issue(
                &format!("{path}.{key}"),
                m[key].pos,
                "use either the shorthand (service, port, domains) or routes, not both",
            );
        }
        if has("service") && !has("port") {
            self.issue(
                &format!("{path}.service"),
                m["service"].pos,
                "needs port: the port the service listens on",
            );
        }
        if has("port") && !has("service") {
            self.issue(
                &format!("{path}.port"),
                m["port"].pos,
                "needs service: the service to proxy to",
            );
        }
        if has("domains") && !shorthand {
            self.issue(
                &format!("{path}.domains"),
                m["domains"].pos,
                "domains belongs to the shorthand with service and port; with routes, match hosts in the routes (and list HTTPS names in https.domains)",
            );
        }
    }

    fn port(&mut self, path: &str, node: &Node) {
        match &node.value {
            Value::Int(n) if (1..=65535).contains(n) => {}
            Value::Str(s) if s.contains('$') => {}
            Value::Str(s) if s.parse::<u16>().is_ok_and(|n| n > 0) => {}
            Value::Int(_) | Value::Str(_) => {
                self.issue(path, node.pos, "expected a port number 1-65535")
            }
            _ => self.wrong(path, node, "a port number"),
        }
    }

    fn https(&mut self, path: &str, node: &Node) {
        if matches!(node.value, Value::Bool(_)) || is_var(&node.value) {
            return;
        }
        let Some(m) = self.map(
            path,
            node,
            "a mapping {enabled, redirect, domains, issuer} or true/false",
        ) else {
            return;
        };
        for (key, val) in m {
            let p = format!("{path}.{key}");
            match key.as_str() {
                "enabled" | "redirect" => self.boolean(&p, val),
                "domains" => self.strings(&p, val, "domain name"),
                "issuer" => match &val.value {
                    Value::Str(s) if ISSUERS.contains(&s.trim()) || is_var(&val.value) => {}
                    _ => self.issue(&p, val.pos, ISSUER_HELP),
                },
                _ => self.issue(
                    &p,
                    val.pos,
                    "unknown key in https: use enabled, redirect, domains, issuer",
                ),
            }
        }
    }

    fn automatic_https(&mut self, path: &str, node: &Node) {
        let Some(m) = self.map(path, node, "a mapping, e.g. {disable: true}") else {
            return;
        };
        for (key, val) in m {
            let p = format!("{path}.{key}");
            match key.as_str() {
                "disable"
                | "disable_redirects"
                | "disable_certificates"
                | "ignore_loaded_certificates" => self.boolean(&p, val),
                "skip" | "skip_certificates" => self.strings(&p, val, "host name"),
                _ => {}
            }
        }
    }

    fn routes(&mut self, path: &str, node: &Node) {
        let Some(routes) = self.seq(path, node, "a list of routes") else {
            return;
        };
        for (i, route) in routes.iter().enumerate() {
            let rp = format!("{path}[{i}]");
            let Some(m) = self.map(&rp, route, "a route mapping {match, handle}") else {
                continue;
            };
            for (key, val) in m {
                let p = format!("{rp}.{key}");
                match key.as_str() {
                    "match" => self.matchers(&p, val),
                    "handle" => self.handlers(&p, val),
                    "terminal" => self.boolean(&p, val),
                    "group" => self.string(&p, val, "a group name"),
                    _ => {}
                }
            }
        }
    }

    fn matchers(&mut self, path: &str, node: &Node) {
        let Some(sets) = self.seq(
            path,
            node,
            "a list of matcher sets, e.g. [{host: [\"example.com\"]}]",
        ) else {
            return;
        };
        for (i, set) in sets.iter().enumerate() {
            let sp = format!("{path}[{i}]");
            let Some(m) = self.map(
                &sp,
                set,
                "a matcher set mapping, e.g. {host: [\"example.com\"]}",
            ) else {
                continue;
            };
            for (key, val) in m {
                let p = format!("{sp}.{key}");
                match key.as_str() {
                    "host" => self.strings(&p, val, "host name"),
                    "path" => self.strings(&p, val, "path pattern"),
                    "method" => self.strings(&p, val, "HTTP method"),
                    "protocol" => self.string(&p, val, "a protocol (http, https, grpc)"),
                    _ => {}
                }
            }
        }
    }

    fn handlers(&mut self, path: &str, node: &Node) {
        let Some(handlers) = self.seq(
            path,
            node,
            "a list of handlers, e.g. [{handler: reverse_proxy, ...}]",
        ) else {
            return;
        };
        for (i, h) in handlers.iter().enumerate() {
            let hp = format!("{path}[{i}]");
            let Some(m) = self.map(&hp, h, "a handler mapping with a handler: key") else {
                continue;
            };
            let name = match m.get("handler") {
                None => {
                    self.issue(
                        &format!("{hp}.handler"),
                        h.pos,
                        "missing: every handler needs handler: <name> (e.g. reverse_proxy)",
                    );
                    None
                }
                Some(n) => match &n.value {
                    Value::Str(s) if !s.trim().is_empty() => Some(s.as_str()),
                    _ => {
                        self.string(
                            &format!("{hp}.handler"),
                            n,
                            "a handler name (e.g. reverse_proxy)",
                        );
                        None
                    }
                },
            };
            if let Some(mt) = m.get("match").filter(|n| matches!(n.value, Value::Seq(_))) {
                self.issue(
                    &format!("{hp}.match"),
                    mt.pos,
                    "request matchers belong on the route (beside handle), not on a handler: use a route or a subroute",
                );
            }
            match name {
                Some("reverse_proxy") => {
                    if let Some(u) = m.get("upstreams") {
                        self.upstreams(&format!("{hp}.upstreams"), u);
                    }
                }
                Some("subroute") => {
                    if let Some(r) = m.get("routes") {
                        self.routes(&format!("{hp}.routes"), r);
                    }
                }
                _ => {}
            }
        }
    }

    fn upstreams(&mut self, path: &str, node: &Node) {
        let Some(ups) = self.seq(
            path,
            node,
            "a list of upstreams, e.g. [{dial: \"web:8000\"}]",
        ) else {
            return;
        };
        for (i, u) in ups.iter().enumerate() {
            let up = format!("{path}[{i}]");
            let Some(m) = self.map(&up, u, "an upstream mapping, e.g. {dial: \"web:8000\"}") else {
                continue;
            };
            if let Some(d) = m.get("dial") {
                self.string(
                    &format!("{up}.dial"),
                    d,
                    "a dial address host:port (e.g. \"web:8000\")",
                );
            }
        }
    }
}

fn example(what: &str) -> &'static str {
    match what {
        "listen address" => ":80",
        "domain name" | "host name" => "example.com",
        "path pattern" => "/api/*",
        "HTTP method" => "GET",
        _ => "...",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(yaml: &str) -> Vec<String> {
        let doc: Node = serde_saphyr::from_str(yaml).unwrap();
        let Value::Map(m) = &doc.value else { panic!() };
        validate(&m["caddy"])
            .into_iter()
            .map(|i| format!("{} {}: {}", i.pos, i.path, i.message))
            .collect()
    }

    #[test]
    fn spec_examples_are_clean() {
        for yaml in [
            "caddy:\n  listen: [\":80\", \":443\"]\n  routes:\n    - match: [{ host: [\"$DOMAIN_NAME\"] }]\n      handle:\n        - handler: reverse_proxy\n          upstreams: [{ dial: \"127.0.0.1:$PORT\" }]\n",
            "caddy:\n  routes:\n    - match:\n        - host: [\"flask.example.com\"]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: \":$PORT\"\n  https:\n    enabled: true\n    redirect: true\n    domains: [\"flask.example.com\"]\n",
            "caddy:\n  routes:\n    - handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: \"app:8000\"\n  https:\n    enabled: true\n",
            "caddy:\n  domains: [example.com]\n  service: web\n  port: $PORT\n  https: {enabled: true, redirect: true}\n",
            "caddy:\n  service: web\n  port: 8000\n  https: false\n",
            "caddy:\n  domains: [example.com]\n  service: web\n  port: 80\n  https: {enabled: true, issuer: internal}\n",
            "caddy:\n  listen: [\":80\"]\n  automatic_https: {disable: true}\n  routes:\n    - handle:\n        - handler: subroute\n          routes:\n            - handle: [{handler: static_response, body: hi}]\n  logs: {default_logger_name: x}\n  max_header_bytes: 1000\n",
        ] {
            assert_eq!(issues(yaml), Vec::<String>::new(), "{yaml}");
        }
        assert_eq!(
            issues(
                "caddy:\n  domains: [a.test]\n  service: web\n  port: 80\n  https: {issuer: [x]}\n"
            ),
            ["5:19 caddy.https.issuer: expected internal (Caddy's own CA) or acme"]
        );
    }

    #[test]
    fn wrong_types_name_the_key_path_and_position() {
        let yaml = "\
caddy:
  listen: \":80\"
  routes:
    - match:
        host: [a.com]
      handle:
        - handler: reverse_proxy
          upstreams: [{dial: 8000}]
        - body: hi
        - handler: subroute
          routes:
            - match: [{host: a.com}]
              handle: [{handler: ''}]
  automatic_https: {disable: maybe}
";
        insta::assert_yaml_snapshot!(issues(yaml), @r#"
        - "2:11 caddy.listen: expected a list of listen addresses, e.g. [\":80\"], found a string"
        - "5:9 caddy.routes[0].match: expected a list of matcher sets, e.g. [{host: [\"example.com\"]}], found a mapping"
        - "8:30 caddy.routes[0].handle[0].upstreams[0].dial: expected a dial address host:port (e.g. \"web:8000\"), found a number"
        - "9:11 caddy.routes[0].handle[1].handler: missing: every handler needs handler: <name> (e.g. reverse_proxy)"
        - "12:30 caddy.routes[0].handle[2].routes[0].match[0].host: expected a list of host names, e.g. [\"example.com\"], found a string"
        - "13:34 caddy.routes[0].handle[2].routes[0].handle[0].handler: expected a handler name (e.g. reverse_proxy), found an empty string"
        - "14:30 caddy.automatic_https.disable: expected true or false, found a string"
        "#);
    }

    #[test]
    fn shorthand_rules() {
        let got = issues(
            "caddy:\n  domains: example.com\n  service: [web]\n  port: 70000\n  https: {enabled: true, redirect: 1, domain: [x]}\n",
        );
        insta::assert_yaml_snapshot!(got, @r#"
        - "2:12 caddy.domains: expected a list of domain names, e.g. [\"example.com\"], found a string"
        - "3:12 caddy.service: expected a service name, found a list"
        - "4:9 caddy.port: expected a port number 1-65535"
        - "5:36 caddy.https.redirect: expected true or false, found a number"
        - "5:47 caddy.https.domain: unknown key in https: use enabled, redirect, domains, issuer"
        "#);
        let got = issues("caddy:\n  service: web\n  routes: []\n");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].contains("caddy.service: use either the shorthand"),
            "{got:?}"
        );
        assert!(got[1].contains("caddy.service: needs port"), "{got:?}");
        let got = issues("caddy:\n  port: \"8000\"\n  domains: [a.com]\n");
        assert_eq!(
            got,
            vec!["2:9 caddy.port: needs service: the service to proxy to"]
        );
        let got = issues("caddy:\n  domains: [a.com]\n  routes: []\n");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("2:12 caddy.domains: domains belongs to the shorthand"),
            "{got:?}"
        );
        let got = issues(
            "caddy:\n  routes:\n    - handle:\n        - handler: file_server\n          match: [{path: [\"/a/*\"]}]\n        - handler: encode\n          match: {status_code: [200]}\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "5:18 caddy.routes[0].handle[0].match: request matchers belong on the route"
            ),
            "{got:?}"
        );
        assert_eq!(
            issues("caddy: [1]\n"),
            vec!["1:8 caddy: expected a mapping (a Caddy server object), found a list"]
        );
    }
}
