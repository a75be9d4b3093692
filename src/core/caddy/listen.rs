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
//! port ranges intersect, and their hosts are the same after normalisation
//! or one of them is a wildcard of a matching family. Normalisation sees
//! `localhost`, `127.0.0.1`, `[::ffff:127.0.0.1]` and `127.1` as one host,
//! and empty, `0.0.0.0` and `[::]` as the wildcard: Go (and so Caddy) binds
//! each group to the same socket, and SO_REUSEPORT would then split one
//! port's connections between servers. Addresses holding placeholders
//! (`{env.PORT}`) cannot be judged here and are left to Caddy.

use super::shared::listen_of;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Udp,
    /// A unix socket, by its lexically normalised path.
    Unix(String),
}

/// Which IP family a `tcp4/`/`tcp6/` (or `udp4/`/`udp6/`) prefix pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Any,
    V4,
    V6,
}

/// A listen or dial host after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// Empty, `0.0.0.0`, `::`: every address of the machine.
    Wildcard,
    /// An IP literal; IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is its IPv4
    /// address, `localhost` is 127.0.0.1 (what Go, and so Caddy, binds).
    Ip(IpAddr),
    /// Any other name, lower-cased, without a trailing dot.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addr {
    pub kind: Kind,
    pub family: Family,
    pub host: Host,
    /// Inclusive port range; `(0, 0)` for unix sockets.
    pub ports: (u32, u32),
}

/// Parses a Caddy network address (`[network/]host:port[-port]`, or
/// `unix//path`). None for what cannot be judged: placeholders, a missing
/// port, an unknown network such as `fd/3`.
pub(crate) fn parse(s: &str) -> Option<Addr> {
    let s = s.trim();
    if s.is_empty() || s.contains('{') {
        return None;
    }
    let (network, rest) = match s.split_once('/') {
        Some((n, r)) if !n.contains(':') && !n.contains('[') => (n.to_ascii_lowercase(), r),
        _ => (String::new(), s),
    };
    let (kind, family) = match network.as_str() {
        "" | "tcp" => (Kind::Tcp, Family::Any),
        "tcp4" => (Kind::Tcp, Family::V4),
        "tcp6" => (Kind::Tcp, Family::V6),
        "udp" => (Kind::Udp, Family::Any),
        "udp4" => (Kind::Udp, Family::V4),
        "udp6" => (Kind::Udp, Family::V6),
        "unix" | "unixgram" | "unixpacket" => {
            return Some(Addr {
                kind: Kind::Unix(normalise_path(rest)?),
                family: Family::Any,
                host: Host::Wildcard,
                ports: (0, 0),
            });
        }
        _ => return None,
    };
    let (host, port) = rest.rsplit_once(':')?;
    let ports = match port.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = port.parse().ok()?;
            (p, p)
        }
    };
    if ports.0 > ports.1 || ports.1 > 65535 {
        return None;
    }
    Some(Addr {
        kind,
        family,
        host: normalise_host(host),
        ports,
    })
}

/// The host part of an address, normalised (see [`Host`]).
pub(crate) fn normalise_host(host: &str) -> Host {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    // a zone (`fe80::1%eth0`) does not change which machine it is
    let h = h.split_once('%').map_or(h, |(a, _)| a);
    let h = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    if h.is_empty() {
        return Host::Wildcard;
    }
    if h == "localhost" || h.ends_with(".localhost") {
        return Host::Ip(Ipv4Addr::LOCALHOST.into());
    }
    let ip = match h.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(v4) => v4,
        Err(_) => match inet_aton(&h) {
            Some(v4) => IpAddr::V4(v4),
            None => return Host::Name(h),
        },
    };
    if ip.is_unspecified() {
        Host::Wildcard
    } else {
        Host::Ip(ip)
    }
}

/// The C resolver's other IPv4 spellings (`127.1`, `0x7f.1`, `2130706433`,
/// `0177.0.0.1`): getaddrinfo takes them as addresses, so they must be
/// judged as such.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let nums = parts
        .iter()
        .map(|p| {
            if let Some(hex) = p.strip_prefix("0x") {
                u32::from_str_radix(hex, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u32::from_str_radix(&p[1..], 8).ok()
            } else {
                p.parse::<u32>().ok()
            }
        })
        .collect::<Option<Vec<u32>>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let tail_bits = 8 * (4 - head.len() as u32);
    if tail_bits < 32 && *last >= 1 << tail_bits {
        return None;
    }
    let mut v: u32 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(v | last))
}

/// `//run/./caddy/../caddy/admin.sock` → `/run/caddy/admin.sock`. None for
/// a relative path (its meaning depends on Caddy's working directory).
pub(crate) fn normalise_path(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn families_meet(a: Family, b: Family) -> bool {
    a == Family::Any || b == Family::Any || a == b
}

fn family_of(ip: &IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// Whether two listeners would share connections: the same kind, ports that
/// intersect, and the same host after normalisation, or a wildcard that
/// covers the other (a name is assumed to be on this machine).
pub(crate) fn overlap(a: &Addr, b: &Addr) -> bool {
    if a.kind != b.kind {
        return false;
    }
    if matches!(a.kind, Kind::Unix(_)) {
        return true; // same path (part of the kind)
    }
    if !(a.ports.0 <= b.ports.1 && b.ports.0 <= a.ports.1) {
        return false;
    }
    match (&a.host, &b.host) {
        (Host::Wildcard, Host::Wildcard) => families_meet(a.family, b.family),
        (Host::Wildcard, Host::Ip(ip)) => families_meet(a.family, family_of(ip)),
        (Host::Ip(ip), Host::Wildcard) => families_meet(b.family, family_of(ip)),
        (Host::Wildcard, Host::Name(_)) | (Host::Name(_), Host::Wildcard) => true,
        (x, y) => x == y,
    }
}

/// Whether two listen addresses, as written, name the same socket(s) or
/// overlapping ones. Unjudgeable addresses (placeholders) only equal
/// themselves.
pub fn same_address(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => overlap(&x, &y),
        _ => a.trim() == b.trim(),
    }
}

/// One spelling for each listen address, so that aliases (`localhost:80`,
/// `127.0.0.1:80`, `[::ffff:127.0.0.1]:80`; `:80`, `0.0.0.0:80`, `[::]:80`)
/// group together: `tcp/127.0.0.1:80`, `tcp/:80`. What cannot be parsed is
/// returned as written.
pub fn canonical(s: &str) -> String {
    let Some(a) = parse(s) else {
        return s.trim().to_owned();
    };
    let net = match (&a.kind, a.family) {
        (Kind::Unix(p), _) => return format!("unix/{p}"),
        (Kind::Tcp, Family::Any) => "tcp",
        (Kind::Tcp, Family::V4) => "tcp4",
        (Kind::Tcp, Family::V6) => "tcp6",
        (Kind::Udp, Family::Any) => "udp",
        (Kind::Udp, Family::V4) => "udp4",
        (Kind::Udp, Family::V6) => "udp6",
    };
    let host = match &a.host {
        Host::Wildcard => String::new(),
        Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        Host::Ip(ip) => ip.to_string(),
        Host::Name(n) => n.clone(),
    };
    let ports = if a.ports.0 == a.ports.1 {
        a.ports.0.to_string()
    } else {
        format!("{}-{}", a.ports.0, a.ports.1)
    };
    format!("{net}/{host}:{ports}")
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
            // aliases of one socket
            ("127.0.0.1:8080", "localhost:8080"),
            ("127.0.0.1:8080", "[::ffff:127.0.0.1]:8080"),
            ("localhost:8080", "[::FFFF:7f00:1]:8080"),
            ("127.0.0.1:8080", "127.1:8080"),
            ("127.0.0.1:8080", "2130706433:8080"),
            ("127.0.0.1:8080", "0x7f.0.0.01:8080"),
            ("app.localhost:80", "127.0.0.1:80"),
            ("localhost.:80", "LocalHost:80"),
            ("[0:0:0:0:0:0:0:1]:80", "[::1]:80"),
            ("[fe80::1%eth0]:80", "[fe80::1]:80"),
            // wildcards
            ("0.0.0.0:80", ":80"),
            ("[::]:80", "0.0.0.0:80"),
            ("[::ffff:0.0.0.0]:80", "127.0.0.1:80"),
            ("0:80", "10.1.2.3:80"),
            ("tcp4/:80", "127.0.0.1:80"),
            ("tcp6/:80", "[::1]:80"),
            ("tcp4/:80", ":80"),
            (":80", "example.com:80"),
            ("tcp/127.0.0.1:79-81", "tcp4/localhost:80"),
            ("unix//run/a.sock", "unix//run/./x/../a.sock"),
            ("unix//run/a.sock", "unix///run//a.sock"),
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
            ("tcp4/:80", "[::1]:80"),
            ("tcp6/:80", "127.0.0.1:80"),
            ("tcp4/:80", "tcp6/:80"),
            ("example.com:80", "127.0.0.1:80"),
            ("example.com:80", "example.org:80"),
        ] {
            assert!(!clash(a, b), "{a} vs {b}");
        }
        for unjudged in [
            "{env.PORT}",
            ":{env.PORT}",
            "localhost",
            "fd/3",
            "",
            ":81-80",
            ":70000",
            "unix/rel.sock",
        ] {
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

    #[test]
    fn hosts_normalise() {
        let ip = |s: &str| Host::Ip(s.parse().unwrap());
        for (written, want) in [
            ("", Host::Wildcard),
            ("0.0.0.0", Host::Wildcard),
            ("[::]", Host::Wildcard),
            ("::", Host::Wildcard),
            ("0", Host::Wildcard),
            ("localhost", ip("127.0.0.1")),
            ("LOCALHOST.", ip("127.0.0.1")),
            ("[::ffff:127.0.0.1]", ip("127.0.0.1")),
            ("127.1", ip("127.0.0.1")),
            ("0177.0.0.1", ip("127.0.0.1")),
            ("127.0.0.2", ip("127.0.0.2")),
            ("[::1]", ip("::1")),
            ("10.0.0.1", ip("10.0.0.1")),
            ("Example.COM", Host::Name("example.com".into())),
            ("web", Host::Name("web".into())),
            ("256.1", Host::Name("256.1".into())),
            ("1.2.3.4.5", Host::Name("1.2.3.4.5".into())),
            ("1.2.65536", Host::Name("1.2.65536".into())),
        ] {
            assert_eq!(normalise_host(written), want, "{written}");
        }
    }

    #[test]
    fn canonical_spelling_groups_aliases() {
        for (written, want) in [
            (":80", "tcp/:80"),
            ("0.0.0.0:80", "tcp/:80"),
            ("[::]:80", "tcp/:80"),
            ("localhost:8080", "tcp/127.0.0.1:8080"),
            ("[::ffff:127.0.0.1]:8080", "tcp/127.0.0.1:8080"),
            ("tcp/127.0.0.1:8080", "tcp/127.0.0.1:8080"),
            ("TCP4/[::1]:443", "tcp4/[::1]:443"),
            ("udp/:443-444", "udp/:443-444"),
            ("unix//run//a.sock", "unix//run/a.sock"),
            ("{env.L}", "{env.L}"),
        ] {
            assert_eq!(canonical(written), want, "{written}");
        }
        assert!(same_address("localhost:80", "[::ffff:127.0.0.1]:80"));
        assert!(same_address("{env.L}", "{env.L}"));
        assert!(!same_address("{env.L}", ":80"));
    }

    #[test]
    fn three_aliases_of_one_port_conflict() {
        let servers = json!({
            "a": {"listen": ["127.0.0.1:8080"]},
            "b": {"listen": ["localhost:8081"]},
        });
        let servers = servers.as_object().unwrap();
        for mine in ["localhost:8080", "[::ffff:127.0.0.1]:8080", "0.0.0.0:8080"] {
            let c = conflicts("new", &json!({"listen": [mine]}), servers);
            assert_eq!(c.len(), 1, "{mine}: {c:?}");
            assert_eq!(c[0].server, "a");
        }
        let c = conflicts(
            "new",
            &json!({"listen": ["[::ffff:127.0.0.1]:8081"]}),
            servers,
        );
        assert_eq!(c[0].server, "b");
    }
}
