//! Listen addresses that would collide in Caddy (pure).
//!
//! Caddy runs one server per listen address. It refuses an exact repeat in
//! two servers ("listener address repeated"), but it accepts overlapping
//! addresses such as `:8080` and `127.0.0.1:8080` (its sockets use
//! SO_REUSEPORT), and then connections to 127.0.0.1:8080 all go to the more
//! specific server, whatever their Host. kata treats both cases as one
//! conflict and refuses the write before anything is sent.
//!
//! Two addresses overlap when they are of the same kind (TCP: `tcp`,
//! `tcp4`, `tcp6` or no network; UDP likewise; unix sockets by path), their
//! port ranges intersect, and their hosts are equal (ignoring case) or one of
//! them is a wildcard (empty, `0.0.0.0`, `::`). Addresses holding
//! placeholders (`{env.PORT}`) cannot be judged here and are left to Caddy.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    Unix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr {
    kind: Kind,
    host: String,
    ports: (u32, u32),
}

fn parse(s: &str) -> Option<Addr> {
    let s = s.trim();
    if s.is_empty() || s.contains('{') {
        return None;
    }
    let (network, rest) = match s.split_once('/') {
        Some((n, r)) if !n.contains(':') && !n.contains('[') => (n.to_ascii_lowercase(), r),
        _ => (String::new(), s),
    };
    let kind = match network.as_str() {
        "" | "tcp" | "tcp4" | "tcp6" => Kind::Tcp,
        "udp" | "udp4" | "udp6" => Kind::Udp,
        "unix" | "unixgram" | "unixpacket" => {
            return Some(Addr {
                kind: Kind::Unix(rest.to_owned()),
                host: String::new(),
                ports: (0, 0),
            });
        }
        _ => return None,
    };
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ports = match port.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = port.parse().ok()?;
            (p, p)
        }
    };
    Some(Addr {
        kind,
        host: host.to_ascii_lowercase(),
        ports,
    })
}

fn wildcard(host: &str) -> bool {
    matches!(host, "" | "0.0.0.0" | "::")
}

fn overlap(a: &Addr, b: &Addr) -> bool {
    if a.kind != b.kind {
        return false;
    }
    if matches!(a.kind, Kind::Unix(_)) {
        return true; // same path (part of the kind)
    }
    a.ports.0 <= b.ports.1
        && b.ports.0 <= a.ports.1
        && (a.host == b.host || wildcard(&a.host) || wildcard(&b.host))
}

fn listen_of(server: &Value) -> Vec<String> {
    server
        .get("listen")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// One of the app's addresses that another server already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The app's address, as written.
    pub address: String,
    /// The other server's key under `apps.http.servers`.
    pub server: String,
    /// The other server's address it collides with, as written.
    pub theirs: String,
}

/// Every collision between `server`'s `listen` and the other servers in
/// `servers` (the live `apps.http.servers`; the app's own entry is skipped).
pub fn conflicts(app: &str, server: &Value, servers: &Map<String, Value>) -> Vec<Conflict> {
    let mut out = Vec::new();
    for address in listen_of(server) {
        let Some(mine) = parse(&address) else {
            continue;
        };
        for (name, other) in servers.iter().filter(|(n, _)| n.as_str() != app) {
            for theirs in listen_of(other) {
                if parse(&theirs).is_some_and(|t| overlap(&mine, &t)) {
                    out.push(Conflict {
                        address: address.clone(),
                        server: name.clone(),
                        theirs,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clash(a: &str, b: &str) -> bool {
        overlap(&parse(a).unwrap(), &parse(b).unwrap())
    }

    #[test]
    fn overlapping_addresses() {
        for (a, b) in [
            (":80", ":80"),
            (":80", "tcp/:80"),
            (":8080", "127.0.0.1:8080"),
            ("0.0.0.0:80", "10.0.0.1:80"),
            ("[::]:443", "127.0.0.1:443"),
            ("127.0.0.1:8000-8010", "127.0.0.1:8005"),
            ("LOCALHOST:80", "localhost:80"),
            ("[::1]:80", "::1:80"),
            ("unix//run/a.sock", "unix//run/a.sock"),
            ("udp/:443", "udp4/127.0.0.1:443"),
        ] {
            assert!(clash(a, b), "{a} vs {b}");
            assert!(clash(b, a), "{b} vs {a}");
        }
        for (a, b) in [
            (":80", ":81"),
            ("127.0.0.1:80", "127.0.0.2:80"),
            ("127.0.0.1:8000-8004", "127.0.0.1:8005"),
            ("unix//run/a.sock", "unix//run/b.sock"),
            ("udp/:443", ":443"),
            ("unix//run/a.sock", ":80"),
        ] {
            assert!(!clash(a, b), "{a} vs {b}");
        }
        for unjudged in ["{env.PORT}", ":{env.PORT}", "localhost", "fd/3", ""] {
            assert_eq!(parse(unjudged), None, "{unjudged}");
        }
    }

    #[test]
    fn conflicts_name_the_other_server_and_skip_the_app_itself() {
        let servers = json!({
            "shop": {"listen": [":80", ":443"]},
            "blog": {"listen": ["127.0.0.1:9000"]},
            "handmade": {"listen": ["127.0.0.1:9001"], "routes": []},
            "odd": {"listen": "not a list"}
        });
        let servers = servers.as_object().unwrap();
        assert!(conflicts("shop", &json!({"listen": [":80", ":443"]}), servers).is_empty());
        assert_eq!(
            conflicts(
                "blog",
                &json!({"listen": ["127.0.0.1:443", ":9001"]}),
                servers
            ),
            vec![
                Conflict {
                    address: "127.0.0.1:443".into(),
                    server: "shop".into(),
                    theirs: ":443".into()
                },
                Conflict {
                    address: ":9001".into(),
                    server: "handmade".into(),
                    theirs: "127.0.0.1:9001".into()
                },
            ]
        );
        assert!(conflicts("new", &json!({}), servers).is_empty());
        assert!(conflicts("new", &json!({"listen": ["{env.L}"]}), servers).is_empty());
    }
}
