//! kata's Caddy shorthand → a full Caddy server object (pure).
//!
//! Keys kata consumes (never sent to Caddy, which would reject them):
//!
//! - `service`, `port`: one route proxying to `"<service>:<port>"` (resolved
//!   later to the service's container addresses), matching `domains` when
//!   given, otherwise every host. Not combinable with `routes`.
//! - `domains`: the host names of that route (shorthand only).
//! - `https`: `{enabled, redirect, domains}` (or `true`/`false` for
//!   `enabled`), allowed beside the shorthand or beside `routes`:
//!   - the host names are `https.domains`, else `domains`, else every `host`
//!     matcher in the top-level routes;
//!   - `enabled` defaults to "there are host names" (Caddy can only get
//!     certificates for names it knows); `enabled: false` sets
//!     `automatic_https.disable: true`;
//!   - `redirect` defaults to `enabled` when there are host names (Caddy's own
//!     default); it prepends a route answering plain-HTTP requests for those
//!     names with `308` to `https://`. Caddy's automatic redirects are not
//!     enough here: they are appended after the app's own routes on the `:80`
//!     listener, so the app's routes would answer first.
//!   - `listen`, when not given, becomes `[":80", ":443"]` with HTTPS and
//!     `[":80"]` without.
//!   - `issuer`: `internal` (Caddy's own CA) or `acme` picks who issues the
//!     certificates for the app's host names. It becomes the kata-only key
//!     `@kata.issuer` of the server object; when the app's part is written,
//!     kata turns it into a TLS automation policy of the app's own
//!     (see `shared::policy_id`), never sent as part of the server.
//!
//! A server object without any of these keys is returned unchanged.
//!
//! `stream_close_delay` is not added here: the deploy adds it when it writes
//! the part, and leaves it out on Caddy 2.6, which rejects it ("unknown
//! field"; it arrived in 2.7).

use super::CaddyError;
use serde_json::{Map, Value, json};

const SHORTHAND: [&str; 4] = ["domains", "service", "port", "https"];

/// The server object key that carries `https.issuer` to the write (kata's
/// own; Caddy never sees it).
pub const ISSUER_KEY: &str = "@kata.issuer";
/// The certificate issuers `https.issuer` accepts (Caddy issuer modules).
pub const ISSUERS: [&str; 2] = ["internal", "acme"];
pub const ISSUER_HELP: &str = "expected internal (Caddy's own CA) or acme";

fn invalid(path: &str, message: impl Into<String>) -> CaddyError {
    CaddyError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Default)]
struct Https {
    enabled: Option<bool>,
    redirect: Option<bool>,
    domains: Option<Vec<String>>,
    issuer: Option<String>,
}

/// Expands kata's shorthand keys of an app's `caddy:` server object (after
/// variable expansion) into a server object Caddy accepts. Pure.
pub fn expand(server: Value, app: &str) -> Result<Value, CaddyError> {
    let _ = app; // the app's part gets its name (@id) when it is written; nothing here needs it
    let mut obj = match server {
        Value::Object(m) => m,
        other => {
            return Err(invalid(
                "caddy",
                format!(
                    "expected a mapping (a Caddy server object), found {}",
                    kind(&other)
                ),
            ));
        }
    };
    if !SHORTHAND.iter().any(|k| obj.contains_key(*k)) {
        return Ok(Value::Object(obj));
    }
    let domains = match obj.shift_remove("domains") {
        None => Vec::new(),
        Some(v) => strings("caddy.domains", v)?,
    };
    let service = match obj.shift_remove("service") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(other) => {
            return Err(invalid(
                "caddy.service",
                format!("expected a service name, found {}", kind(&other)),
            ));
        }
    };
    let port = obj.shift_remove("port").map(port).transpose()?;
    let https = obj.shift_remove("https").map(https).transpose()?;

    let shorthand = match (service, port) {
        (Some(s), Some(p)) => Some((s, p)),
        (Some(_), None) => {
            return Err(invalid(
                "caddy.service",
                "needs port: the port the service listens on",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "caddy.port",
                "needs service: the service to proxy to",
            ));
        }
        (None, None) => None,
    };
    if let Some((service, port)) = &shorthand {
        if obj.contains_key("routes") {
            return Err(invalid(
                "caddy.service",
                "use either the shorthand (service, port, domains) or routes, not both",
            ));
        }
        let mut route = Map::new();
        if !domains.is_empty() {
            route.insert("match".into(), json!([{ "host": domains }]));
        }
        route.insert(
            "handle".into(),
            json!([{ "handler": "reverse_proxy", "upstreams": [{ "dial": format!("{service}:{port}") }] }]),
        );
        route.insert("terminal".into(), json!(true));
        obj.insert("routes".into(), json!([route]));
    } else if !domains.is_empty() {
        return Err(invalid(
            "caddy.domains",
            "domains belongs to the shorthand with service and port",
        ));
    }

    let https = https.unwrap_or_default();
    let hosts = match &https.domains {
        Some(d) if !d.is_empty() => d.clone(),
        _ if !domains.is_empty() => domains.clone(),
        _ => route_hosts(&obj),
    };
    let enabled = https.enabled.unwrap_or(!hosts.is_empty());
    let redirect = https.redirect.unwrap_or(enabled && !hosts.is_empty());
    if redirect && hosts.is_empty() {
        return Err(invalid(
            "caddy.https.redirect",
            "no host names to redirect: list them in https.domains (or match hosts in the routes)",
        ));
    }
    if redirect && !enabled {
        return Err(invalid(
            "caddy.https.redirect",
            "redirect to HTTPS needs https.enabled: true",
        ));
    }

    if let Some(issuer) = &https.issuer {
        if !enabled {
            return Err(invalid(
                "caddy.https.issuer",
                "certificates need https.enabled: true",
            ));
        }
        if hosts.is_empty() {
            return Err(invalid(
                "caddy.https.issuer",
                "no host names to issue certificates for: list them in https.domains (or match hosts in the routes)",
            ));
        }
        obj.insert(ISSUER_KEY.into(), json!(issuer));
    }
    if !obj.contains_key("listen") {
        let listen = if enabled {
            json!([":80", ":443"])
        } else {
            json!([":80"])
        };
        // keep `listen` first, as people write it
        let rest = std::mem::take(&mut obj);
        obj.insert("listen".into(), listen);
        obj.extend(rest);
    }
    if !enabled {
        match obj.entry("automatic_https").or_insert_with(|| json!({})) {
            Value::Object(a) => {
                a.insert("disable".into(), json!(true));
            }
            other => {
                return Err(invalid(
                    "caddy.automatic_https",
                    format!("expected a mapping, found {}", kind(other)),
                ));
            }
        }
    }
    if redirect {
        let route = json!({
            "match": [{ "host": hosts, "protocol": "http" }],
            "handle": [{
                "handler": "static_response",
                "status_code": 308,
                "headers": { "Location": ["https://{http.request.host}{http.request.uri}"] }
            }],
            "terminal": true
        });
        match obj.entry("routes").or_insert_with(|| json!([])) {
            Value::Array(routes) => routes.insert(0, route),
            other => {
                return Err(invalid(
                    "caddy.routes",
                    format!("expected a list of routes, found {}", kind(other)),
                ));
            }
        }
    }
    Ok(Value::Object(obj))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn strings(path: &str, v: Value) -> Result<Vec<String>, CaddyError> {
    let Value::Array(items) = v else {
        return Err(invalid(
            path,
            format!("expected a list of names, found {}", kind(&v)),
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            other => Err(invalid(
                &format!("{path}[{i}]"),
                format!("expected a name, found {}", kind(&other)),
            )),
        })
        .collect()
}

fn port(v: Value) -> Result<u16, CaddyError> {
    let n = match &v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n @ 1..=65535) => Ok(n as u16),
        _ => Err(invalid(
            "caddy.port",
            format!("expected a port number 1-65535, found {v}"),
        )),
    }
}

fn boolean(path: &str, v: Value) -> Result<bool, CaddyError> {
    match &v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if matches!(s.trim(), "true" | "yes" | "on" | "1") => Ok(true),
        Value::String(s) if matches!(s.trim(), "false" | "no" | "off" | "0" | "") => Ok(false),
        _ => Err(invalid(path, format!("expected true or false, found {v}"))),
    }
}

fn https(v: Value) -> Result<Https, CaddyError> {
    let m = match v {
        Value::Object(m) => m,
        Value::Null => return Ok(Https::default()),
        other => {
            return Ok(Https {
                enabled: Some(boolean("caddy.https", other)?),
                ..Https::default()
            });
        }
    };
    let mut out = Https::default();
    for (k, v) in m {
        let path = format!("caddy.https.{k}");
        match k.as_str() {
            "enabled" => out.enabled = Some(boolean(&path, v)?),
            "redirect" => out.redirect = Some(boolean(&path, v)?),
            "domains" => out.domains = Some(strings(&path, v)?),
            "issuer" => match v {
                Value::String(s) if ISSUERS.contains(&s.trim()) => {
                    out.issuer = Some(s.trim().to_owned())
                }
                _ => return Err(invalid(&path, ISSUER_HELP)),
            },
            _ => {
                return Err(invalid(
                    &path,
                    "unknown key in https: use enabled, redirect, domains, issuer",
                ));
            }
        }
    }
    Ok(out)
}

/// Every `host` matcher value in the server's top-level routes, in order, once.
fn route_hosts(obj: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let routes = obj
        .get("routes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for route in routes {
        let sets = route
            .get("match")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for set in sets {
            for h in set
                .get("host")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                if let Some(h) = h.as_str()
                    && !out.iter().any(|x| x == h)
                {
                    out.push(h.to_owned());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(src: &str) -> Value {
        serde_saphyr::from_str(src).unwrap()
    }

    fn ok(src: &str) -> Value {
        expand(yaml(src), "myapp").unwrap()
    }

    fn err(src: &str) -> String {
        expand(yaml(src), "myapp").unwrap_err().to_string()
    }

    #[test]
    fn https_issuer_marks_the_server_for_its_own_tls_policy() {
        let s = ok(
            "domains: [a.test]\nservice: web\nport: 80\nhttps: {enabled: true, issuer: internal}\n",
        );
        assert_eq!(s[ISSUER_KEY], json!("internal"));
        let s = ok(
            "routes:\n  - match: [{host: [b.test]}]\n    handle: [{handler: static_response}]\nhttps: {issuer: acme}\n",
        );
        assert_eq!(s[ISSUER_KEY], json!("acme"));
        assert!(
            ok("domains: [a.test]\nservice: web\nport: 80\n")
                .get(ISSUER_KEY)
                .is_none()
        );
        assert_eq!(
            err("domains: [a.test]\nservice: web\nport: 80\nhttps: {issuer: letsencrypt}\n"),
            "caddy.https.issuer: expected internal (Caddy's own CA) or acme"
        );
        assert_eq!(
            err(
                "domains: [a.test]\nservice: web\nport: 80\nhttps: {enabled: false, issuer: internal}\n"
            ),
            "caddy.https.issuer: certificates need https.enabled: true"
        );
        assert!(
            err("service: web\nport: 80\nhttps: {enabled: true, redirect: false, issuer: internal}\n")
                .starts_with("caddy.https.issuer: no host names to issue certificates for"),
        );
    }

    #[test]
    fn full_server_object_passes_through_unchanged() {
        let src = "listen: [\":80\", \":443\"]\nroutes:\n  - match: [{host: [example.test]}]\n    handle:\n      - handler: reverse_proxy\n        upstreams: [{dial: \"127.0.0.1:8000\"}]\nautomatic_https: {disable: false}\nlogs: {default_logger_name: x}\n";
        assert_eq!(ok(src), yaml(src));
    }

    #[test]
    fn shorthand_with_https_and_redirect() {
        insta::assert_json_snapshot!(ok(
            "domains: [example.com, www.example.com]\nservice: web\nport: 8000\nhttps: {enabled: true, redirect: true}\n"
        ));
    }

    #[test]
    fn shorthand_defaults_follow_domains() {
        // domains, no https block: HTTPS and redirect on (Caddy's own default)
        insta::assert_json_snapshot!(
            "shorthand_domains_default",
            ok("domains: [example.com]\nservice: web\nport: \"8000\"\n")
        );
        // no domains: plain HTTP on :80 for every host
        insta::assert_json_snapshot!("shorthand_no_domains", ok("service: web\nport: 8000\n"));
        // https: false (bool form), extra server keys kept
        insta::assert_json_snapshot!(
            "shorthand_https_false",
            ok(
                "domains: [a.test]\nservice: api\nport: 3000\nhttps: false\nautomatic_https: {skip: [b.test]}\nmax_header_bytes: 4096\n"
            )
        );
        // explicit listen wins; https without redirect
        insta::assert_json_snapshot!(
            "shorthand_listen_no_redirect",
            ok(
                "listen: [\"127.0.0.1:8080\"]\ndomains: [a.test]\nservice: web\nport: 80\nhttps: {enabled: true, redirect: false}\n"
            )
        );
    }

    // The spec's examples, after variable expansion ($PORT=8000, $DOMAIN_NAME=example.test).
    #[test]
    fn spec_minimal_structure() {
        insta::assert_json_snapshot!(ok(
            "listen: [\":80\", \":443\"]\nroutes:\n  - match: [{ host: [\"example.test\"] }]\n    handle:\n      - handler: reverse_proxy\n        upstreams: [{ dial: \"127.0.0.1:8000\" }]\n"
        ));
    }

    #[test]
    fn spec_python_with_caddy() {
        insta::assert_json_snapshot!(ok(
            "routes:\n  - match:\n      - host: [\"flask.example.com\"]\n    handle:\n      - handler: reverse_proxy\n        upstreams:\n          - dial: \":8000\"\nhttps:\n  enabled: true\n  redirect: true\n  domains: [\"flask.example.com\"]\n"
        ));
    }

    #[test]
    fn spec_microservices() {
        insta::assert_json_snapshot!(ok(
            "routes:\n  - match:\n      - host: [\"api.example.com\"]\n    handle:\n      - handler: reverse_proxy\n        upstreams:\n          - dial: \"api:3000\"\n  - match:\n      - host: [\"example.com\"]\n    handle:\n      - handler: reverse_proxy\n        upstreams:\n          - dial: \"web:80\"\nhttps:\n  enabled: true\n  domains: [\"example.com\", \"api.example.com\"]\n"
        ));
    }

    #[test]
    fn spec_static_site() {
        insta::assert_json_snapshot!(ok(
            "routes:\n  - match:\n      - host: [\"example.com\"]\n    handle:\n      - handler: vars\n        root: \"/home/kata/app/static-site/dist\"\n      - handler: file_server\n        match:\n          - path: [\"/assets/*\"]\n        root: \"{http.vars.root}\"\n        headers:\n          response:\n            set:\n              Cache-Control: [\"public, max-age=31536000\"]\n      - handler: file_server\n        root: \"{http.vars.root}\"\n        index_names: [\"index.html\"]\n        try_files: [\"{path}\", \"/index.html\"]\nhttps:\n  enabled: true\n  redirect: true\n"
        ));
    }

    #[test]
    fn spec_container_app() {
        // https enabled without any host name: no redirect (nothing to redirect to)
        insta::assert_json_snapshot!(ok(
            "routes:\n  - handle:\n      - handler: reverse_proxy\n        upstreams:\n          - dial: \"app:8000\"\nhttps:\n  enabled: true\n"
        ));
    }

    #[test]
    fn https_disabled_beside_routes_merges_automatic_https() {
        let v = ok("routes: []\nautomatic_https: {skip: [x.test]}\nhttps: {enabled: false}\n");
        assert_eq!(
            v,
            json!({"listen": [":80"], "routes": [], "automatic_https": {"skip": ["x.test"], "disable": true}})
        );
    }

    #[test]
    fn refusals_name_the_key() {
        assert_eq!(
            err("service: web\n"),
            "caddy.service: needs port: the port the service listens on"
        );
        assert_eq!(
            err("port: 80\n"),
            "caddy.port: needs service: the service to proxy to"
        );
        assert_eq!(
            err("service: web\nport: 0\n"),
            "caddy.port: expected a port number 1-65535, found 0"
        );
        assert_eq!(
            err("service: web\nport: x\n"),
            "caddy.port: expected a port number 1-65535, found \"x\""
        );
        assert!(
            err("service: web\nport: 1\nroutes: []\n").starts_with("caddy.service: use either")
        );
        assert!(err("domains: [a]\nroutes: []\n").starts_with("caddy.domains: domains belongs"));
        assert_eq!(
            err("domains: a.com\nservice: w\nport: 1\n"),
            "caddy.domains: expected a list of names, found a string"
        );
        assert_eq!(
            err("domains: [a.com, 3]\nservice: w\nport: 1\n"),
            "caddy.domains[1]: expected a name, found a number"
        );
        assert!(
            err("routes: []\nhttps: {redirect: true}\n")
                .starts_with("caddy.https.redirect: no host names")
        );
        assert!(
            err("routes: []\nhttps: {enabled: false, redirect: true, domains: [a]}\n")
                .starts_with("caddy.https.redirect: redirect to HTTPS needs")
        );
        assert!(
            err("routes: []\nhttps: {enabled: maybe}\n")
                .starts_with("caddy.https.enabled: expected true or false")
        );
        assert!(err("routes: []\nhttps: {foo: 1}\n").starts_with("caddy.https.foo: unknown key"));
        assert!(
            err("https: false\nautomatic_https: 1\n")
                .starts_with("caddy.automatic_https: expected a mapping")
        );
        assert_eq!(
            expand(json!([1]), "a").unwrap_err().to_string(),
            "caddy: expected a mapping (a Caddy server object), found a list"
        );
    }

    #[test]
    fn string_booleans_after_expansion() {
        let v = ok("service: web\nport: 8000\nhttps: {enabled: \"false\"}\n");
        assert_eq!(v["automatic_https"], json!({"disable": true}));
    }
}
