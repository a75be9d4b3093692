//! What `caddy:ls` shows about one server (pure).

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerSummary {
    /// The app whose part this is, or the key of a server kata did not write.
    pub name: String,
    /// Whether the name is one of kata's apps on this host.
    pub kata_app: bool,
    /// The server it is on (its key under `apps.http.servers`).
    pub server: String,
    /// Every `host` matcher value, at any depth, once each.
    pub hosts: Vec<String>,
    pub listen: Vec<String>,
    /// Every `reverse_proxy` upstream dial, at any depth, once each.
    pub upstreams: Vec<String>,
}

fn push_unique(out: &mut Vec<String>, s: &str) {
    if !out.iter().any(|x| x == s) {
        out.push(s.to_owned());
    }
}

fn walk(v: &Value, hosts: &mut Vec<String>, upstreams: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                match (k.as_str(), c) {
                    ("host", Value::Array(hs)) => hs
                        .iter()
                        .filter_map(Value::as_str)
                        .for_each(|h| push_unique(hosts, h)),
                    ("upstreams", Value::Array(us))
                        if m.get("handler").and_then(Value::as_str) == Some("reverse_proxy") =>
                    {
                        us.iter()
                            .filter_map(|u| u.get("dial").and_then(Value::as_str))
                            .for_each(|d| push_unique(upstreams, d))
                    }
                    _ => walk(c, hosts, upstreams),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| walk(c, hosts, upstreams)),
        _ => {}
    }
}

/// Hosts, listen addresses and upstreams of one server object (an app's
/// view of its part, or a whole server), on server `on`.
pub fn summarize(name: &str, on: &str, server: &Value, kata_app: bool) -> ServerSummary {
    let routes: Vec<&Value> = server.get("routes").into_iter().collect();
    summarize_entry(&super::shared::Entry {
        name,
        server: on,
        part: kata_app,
        listen: super::shared::listen_of(server),
        routes,
        errors: server.get("errors"),
    })
}

/// The same for one entry of the live config ([`super::shared::entries`]).
pub fn summarize_entry(e: &super::shared::Entry) -> ServerSummary {
    let mut hosts = Vec::new();
    let mut upstreams = Vec::new();
    for r in &e.routes {
        walk(r, &mut hosts, &mut upstreams);
    }
    if let Some(errors) = e.errors {
        walk(errors, &mut hosts, &mut upstreams);
    }
    ServerSummary {
        name: e.name.to_owned(),
        kata_app: e.part,
        server: e.server.to_owned(),
        hosts,
        listen: e.listen.clone(),
        upstreams,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_nested_hosts_and_upstreams() {
        let s = json!({
            "listen": [":80", ":443"],
            "routes": [
                {"match": [{"host": ["a.test", "b.test"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "10.0.0.2:80"}, {"dial": "10.0.0.3:80"}]}]},
                {"match": [{"host": ["a.test"], "protocol": "http"}], "handle": [{"handler": "static_response", "status_code": 308}]},
                {"handle": [{"handler": "subroute", "routes": [{"match": [{"host": ["c.test"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "10.0.0.2:80"}]}]}]}]}
            ]
        });
        assert_eq!(
            summarize("app", "kata.443-80", &s, true),
            ServerSummary {
                name: "app".into(),
                kata_app: true,
                server: "kata.443-80".into(),
                hosts: vec!["a.test".into(), "b.test".into(), "c.test".into()],
                listen: vec![":80".into(), ":443".into()],
                upstreams: vec!["10.0.0.2:80".into(), "10.0.0.3:80".into()],
            }
        );
        let empty = summarize("x", "x", &json!({}), false);
        assert!(empty.hosts.is_empty() && empty.listen.is_empty() && empty.upstreams.is_empty());
    }
}
