//! Keeps apps away from Caddy's admin API.
//!
//! Whoever reaches the admin endpoint rewrites every app's routes, so an
//! app's server object may neither proxy to it (`dial`) nor listen on it
//! (`listen`). "Reaches" is judged after normalising addresses (see
//! [`super::listen`]): `localhost`, `127.0.0.1`, `::1`, `0.0.0.0`,
//! `[::ffff:127.0.0.1]`, the machine's own names and interface addresses
//! are all this machine, and a dial to this machine on the admin port is
//! refused whichever of them it names. A `unix/` dial to the admin socket
//! is refused by path.
//!
//! The check is pure ([`admin_reach`]): the machine's names and addresses
//! and a name resolver come in as values. [`refuse_admin_reach`] is the
//! shell that gathers them (gethostname, getifaddrs, getaddrinfo for names
//! dialled on the admin port).

use super::listen::{self, Addr, Host, Kind};
use super::{CaddyError, Endpoint};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

/// What this machine calls itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// Host names, lower-case (`gethostname`, and its first label).
    pub names: BTreeSet<String>,
    /// Every interface address (`getifaddrs`), IPv4-mapped ones as IPv4.
    pub addrs: BTreeSet<IpAddr>,
}

/// One part of a server object that would reach the admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminReach {
    /// Key path in the app's `caddy:` block, e.g.
    /// `caddy.routes[0].handle[0].upstreams[0].dial`.
    pub path: String,
    pub reason: String,
}

/// Resolves a host name to its addresses (empty when it does not resolve).
pub type Resolve<'a> = dyn Fn(&str) -> Vec<IpAddr> + 'a;

/// The admin endpoint as addresses to compare with.
enum Target {
    Tcp { host: Host, port: u32 },
    Unix(String),
}

fn target(admin: &Endpoint) -> Target {
    match admin {
        Endpoint::Http { host, port } => Target::Tcp {
            host: listen::normalise_host(host),
            port: u32::from(*port),
        },
        Endpoint::Unix(p) => Target::Unix(
            listen::normalise_path(&p.to_string_lossy())
                .unwrap_or_else(|| p.to_string_lossy().into_owned()),
        ),
    }
}

struct Judge<'a> {
    admin: &'a Endpoint,
    target: Target,
    machine: &'a Machine,
    resolve: &'a Resolve<'a>,
    services: BTreeSet<String>,
}

impl Judge<'_> {
    /// The addresses a host stands for; None for a wildcard.
    fn ips(&self, host: &Host) -> Option<Vec<IpAddr>> {
        match host {
            Host::Wildcard => None,
            Host::Ip(ip) => Some(vec![*ip]),
            Host::Name(n) => Some(
                (self.resolve)(n)
                    .into_iter()
                    .map(|ip| match ip {
                        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                        v4 => v4,
                    })
                    .collect(),
            ),
        }
    }

    fn local_ip(&self, ip: &IpAddr) -> bool {
        ip.is_loopback() || ip.is_unspecified() || self.machine.addrs.contains(ip)
    }

    /// Whether the host is this machine (under any of its aliases).
    fn local(&self, host: &Host) -> bool {
        match host {
            Host::Name(n)
                if self.machine.names.contains(n)
                    || n.split('.').next().is_some_and(|first| {
                        self.machine.names.contains(first) && n.contains('.')
                    }) =>
            {
                true
            }
            _ => self
                .ips(host)
                .is_none_or(|ips| ips.iter().any(|ip| self.local_ip(ip))),
        }
    }

    /// Whether two hosts may be one machine.
    fn same_machine(&self, a: &Host, b: &Host) -> bool {
        if a == b || (self.local(a) && self.local(b)) {
            return true;
        }
        match (self.ips(a), self.ips(b)) {
            (Some(x), Some(y)) => x.iter().any(|ip| y.contains(ip)),
            _ => false,
        }
    }

    fn dial(&self, dial: &str) -> Option<String> {
        if dial.contains('{') {
            return Some(format!(
                "{dial:?} holds a placeholder, which Caddy fills in at run time, so kata cannot \
                 tell that it stays away from Caddy's admin endpoint {}; write the address itself",
                self.admin
            ));
        }
        let addr = listen::parse(dial)?;
        if let Host::Name(n) = &addr.host
            && self.services.contains(n)
        {
            return None; // one of the app's services: kata dials its containers
        }
        self.reaches(&addr).then(|| {
            format!(
                "{dial:?} reaches Caddy's admin endpoint {}{}; apps may not proxy to it",
                self.admin,
                self.alias_note(&addr.host)
            )
        })
    }

    fn reaches(&self, addr: &Addr) -> bool {
        match (&self.target, &addr.kind) {
            (Target::Unix(admin), Kind::Unix(p)) => admin == p,
            (Target::Tcp { host, port }, Kind::Tcp) => {
                addr.ports.0 <= *port
                    && *port <= addr.ports.1
                    && self.same_machine(host, &addr.host)
            }
            _ => false,
        }
    }

    fn alias_note(&self, host: &Host) -> String {
        match host {
            Host::Wildcard => " (an empty host, 0.0.0.0 and :: are this machine)".into(),
            Host::Ip(ip) if ip.is_loopback() => format!(" ({ip} is this machine's loopback)"),
            Host::Ip(ip) if self.machine.addrs.contains(ip) => {
                format!(" ({ip} is an address of this machine)")
            }
            Host::Name(n) if self.machine.names.contains(n) => {
                format!(" ({n} is this machine's name)")
            }
            _ => String::new(),
        }
    }

    fn listen(&self, address: &str) -> Option<String> {
        let addr = listen::parse(address)?;
        let admin = match &self.target {
            Target::Unix(p) => Addr {
                kind: Kind::Unix(p.clone()),
                family: listen::Family::Any,
                host: Host::Wildcard,
                ports: (0, 0),
            },
            Target::Tcp { host, port } => Addr {
                kind: Kind::Tcp,
                family: listen::Family::Any,
                host: host.clone(),
                ports: (*port, *port),
            },
        };
        let clash = listen::overlap(&addr, &admin)
            || matches!((&addr.kind, &self.target), (Kind::Tcp, Target::Tcp { .. }))
                && addr.ports.0 <= admin.ports.0
                && admin.ports.0 <= addr.ports.1
                && self.ips(&admin.host).is_some_and(|ips| {
                    self.ips(&addr.host)
                        .is_some_and(|mine| mine.iter().any(|ip| ips.contains(ip)))
                });
        clash.then(|| {
            format!(
                "{address:?} overlaps Caddy's admin endpoint {}; apps may not listen there",
                self.admin
            )
        })
    }
}

/// Every `dial` and `listen` of `server` (an app's expanded server object)
/// that would reach the admin endpoint `admin`. Dials naming one of
/// `services` go to the app's containers and are skipped; `resolve` is
/// asked only about names dialled on the admin's port.
pub fn admin_reach<'s>(
    server: &Value,
    services: impl IntoIterator<Item = &'s String>,
    admin: &Endpoint,
    machine: &Machine,
    resolve: &Resolve<'_>,
) -> Vec<AdminReach> {
    let judge = Judge {
        admin,
        target: target(admin),
        machine,
        resolve,
        services: services.into_iter().cloned().collect(),
    };
    let mut out = Vec::new();
    if let Some(list) = server.get("listen").and_then(Value::as_array) {
        for (i, a) in list.iter().enumerate() {
            if let Some(reason) = a.as_str().and_then(|a| judge.listen(a)) {
                out.push(AdminReach {
                    path: format!("caddy.listen[{i}]"),
                    reason,
                });
            }
        }
    }
    walk(server, "caddy", false, &judge, &mut out);
    out
}

/// Visits every `dial` (upstreams at any depth: routes, subroutes, error
/// routes) and every `dynamic_upstreams` source.
fn walk(v: &Value, path: &str, dynamic: bool, judge: &Judge<'_>, out: &mut Vec<AdminReach>) {
    match v {
        Value::Object(m) => {
            if dynamic && let Some(source) = m.get("source").and_then(Value::as_str) {
                let reason = match source {
                    "a" | "aaaa" => {
                        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                        let port = m.get("port").and_then(Value::as_str).unwrap_or("");
                        judge.dial(&format!("{name}:{port}"))
                    }
                    "multi" => None, // its sources are visited below
                    other => Some(format!(
                        "{other:?} upstreams are looked up by Caddy at run time, so kata cannot \
                         tell that they stay away from Caddy's admin endpoint {}",
                        judge.admin
                    )),
                };
                if let Some(reason) = reason {
                    out.push(AdminReach {
                        path: path.to_owned(),
                        reason,
                    });
                }
            }
            for (k, child) in m {
                let here = format!("{path}.{k}");
                match (k.as_str(), child) {
                    ("dial", Value::String(d)) => {
                        if let Some(reason) = judge.dial(d) {
                            out.push(AdminReach { path: here, reason });
                        }
                    }
                    _ => walk(
                        child,
                        &here,
                        dynamic || k == "dynamic_upstreams",
                        judge,
                        out,
                    ),
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk(child, &format!("{path}[{i}]"), dynamic, judge, out);
            }
        }
        _ => {}
    }
}

impl Machine {
    /// This machine's host name and interface addresses.
    pub fn current() -> Machine {
        let mut m = Machine::default();
        if let Some(name) = hostname() {
            let name = name.to_ascii_lowercase();
            if let Some((first, _)) = name.split_once('.') {
                m.names.insert(first.to_owned());
            }
            m.names.insert(name);
        }
        m.addrs = interface_addrs();
        m
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (we also stop at its end).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!s.is_empty()).then_some(s)
}

fn interface_addrs() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then
    // free once with freeifaddrs; each ifa_addr is checked for null and its
    // family before being read as the matching sockaddr type.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let sa = (*cur).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        out.insert(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        let v6 = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        out.insert(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Refuses `server` (an app's expanded server object) when any of its
/// dials or listen addresses would reach the admin endpoint `admin` (the
/// setting as written). Nothing is sent to Caddy.
pub fn refuse_admin_reach<'s>(
    server: &Value,
    services: impl IntoIterator<Item = &'s String>,
    admin: &str,
) -> Result<(), CaddyError> {
    let Ok(endpoint) = Endpoint::parse(admin) else {
        return Ok(()); // the admin client reports a bad endpoint itself
    };
    let machine = Machine::current();
    let resolve = |name: &str| -> Vec<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .map(|it| it.map(|sa| sa.ip()).collect())
            .unwrap_or_default()
    };
    let found = admin_reach(server, services, &endpoint, &machine, &resolve);
    let Some(first) = found.first() else {
        return Ok(());
    };
    let mut message = format!("{}; nothing was sent to Caddy", first.reason);
    for more in &found[1..] {
        message.push_str(&format!("\n{}: {}", more.path, more.reason));
    }
    Err(CaddyError::Invalid {
        path: first.path.clone(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine() -> Machine {
        Machine {
            names: ["kata-host".to_owned(), "kata-host.example.net".to_owned()].into(),
            addrs: [
                "127.0.0.1".parse().unwrap(),
                "::1".parse().unwrap(),
                "10.1.2.3".parse().unwrap(),
                "172.17.0.1".parse().unwrap(),
                "2001:db8::5".parse().unwrap(),
            ]
            .into(),
        }
    }

    /// Stands in for DNS: one name of this machine, one elsewhere.
    fn resolve(name: &str) -> Vec<IpAddr> {
        match name {
            "alias.example.net" => vec!["10.1.2.3".parse().unwrap()],
            "remote.example.org" => vec!["192.0.2.7".parse().unwrap()],
            "admin.internal" => vec!["192.0.2.9".parse().unwrap()],
            _ => vec![],
        }
    }

    fn proxy(dial: &str) -> Value {
        json!({"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]}]})
    }

    fn refusals(server: &Value, admin: &str) -> Vec<AdminReach> {
        let services = ["web".to_owned()];
        admin_reach(
            server,
            &services,
            &Endpoint::parse(admin).unwrap(),
            &machine(),
            &resolve,
        )
    }

    const ADMIN: &str = "http://localhost:2019";

    #[test]
    fn dials_to_the_admin_endpoint_are_refused_under_every_alias() {
        for dial in [
            "localhost:2019",
            "LOCALHOST.:2019",
            "127.0.0.1:2019",
            "127.0.0.2:2019",
            "127.1:2019",
            "2130706433:2019",
            "[::1]:2019",
            "[::ffff:127.0.0.1]:2019",
            "0.0.0.0:2019",
            "[::]:2019",
            ":2019",
            "tcp/localhost:2019",
            "tcp4/127.0.0.1:2019",
            "tcp6/[::1]:2019",
            "kata-host:2019",
            "KATA-HOST.example.net:2019",
            "10.1.2.3:2019",
            "172.17.0.1:2019",
            "[2001:db8::5]:2019",
            "alias.example.net:2019",
            "localhost:2000-2100",
            "admin.localhost:2019",
        ] {
            let r = refusals(&proxy(dial), ADMIN);
            assert_eq!(r.len(), 1, "{dial}: {r:?}");
            assert_eq!(r[0].path, "caddy.routes[0].handle[0].upstreams[0].dial");
            assert!(
                r[0].reason
                    .contains("reaches Caddy's admin endpoint http://localhost:2019"),
                "{}",
                r[0].reason
            );
        }
    }

    #[test]
    fn other_dials_pass() {
        for dial in [
            "localhost:2020",
            "127.0.0.1:8000",
            "web:2019", // the app's own service: its containers
            "remote.example.org:2019",
            "unknown.example.org:2019",
            "192.0.2.1:2019",
            "unix//run/app.sock",
            "localhost:2000-2018",
        ] {
            assert_eq!(refusals(&proxy(dial), ADMIN), vec![], "{dial}");
        }
    }

    #[test]
    fn a_service_named_like_the_machine_is_still_the_service() {
        assert_eq!(refusals(&proxy("kata-host:2019"), ADMIN).len(), 1);
        let services = ["kata-host".to_owned()];
        let r = admin_reach(
            &proxy("kata-host:2019"),
            &services,
            &Endpoint::parse(ADMIN).unwrap(),
            &machine(),
            &resolve,
        );
        assert_eq!(r, vec![]);
    }

    #[test]
    fn admin_on_another_address() {
        // the admin endpoint names this machine by its interface address
        let admin = "http://10.1.2.3:2019";
        for dial in ["localhost:2019", "kata-host:2019", "[::ffff:10.1.2.3]:2019"] {
            assert_eq!(refusals(&proxy(dial), admin).len(), 1, "{dial}");
        }
        // a remote admin endpoint: only its own name and addresses reach it
        let admin = "http://admin.internal:2019";
        assert_eq!(refusals(&proxy("admin.internal:2019"), admin).len(), 1);
        assert_eq!(refusals(&proxy("192.0.2.9:2019"), admin).len(), 1);
        assert_eq!(refusals(&proxy("localhost:2019"), admin), vec![]);
    }

    #[test]
    fn unix_admin_socket() {
        let admin = "unix//run/caddy/admin.sock";
        for dial in [
            "unix//run/caddy/admin.sock",
            "unix///run//caddy/./admin.sock",
            "unix//run/other/../caddy/admin.sock",
        ] {
            let r = refusals(&proxy(dial), admin);
            assert_eq!(r.len(), 1, "{dial}");
            assert!(r[0].reason.contains("unix//run/caddy/admin.sock"), "{r:?}");
        }
        for dial in ["unix//run/caddy/app.sock", "localhost:2019"] {
            assert_eq!(refusals(&proxy(dial), admin), vec![], "{dial}");
        }
        let listen = json!({"listen": ["unix//run/caddy//admin.sock"]});
        assert_eq!(refusals(&listen, admin)[0].path, "caddy.listen[0]");
    }

    #[test]
    fn placeholders_and_run_time_lookups_are_refused() {
        let r = refusals(&proxy("{http.request.header.X-To}"), ADMIN);
        assert!(r[0].reason.contains("placeholder"), "{r:?}");
        let dynamic = |source: Value| json!({"routes": [{"handle": [{"handler": "reverse_proxy", "dynamic_upstreams": source}]}]});
        let r = refusals(
            &dynamic(json!({"source": "a", "name": "localhost", "port": "2019"})),
            ADMIN,
        );
        assert_eq!(r[0].path, "caddy.routes[0].handle[0].dynamic_upstreams");
        assert!(r[0].reason.contains("reaches"), "{r:?}");
        let r = refusals(
            &dynamic(json!({"source": "multi", "sources": [
                {"source": "a", "name": "web", "port": "8000"},
                {"source": "srv", "name": "_http._tcp.example.org"}
            ]})),
            ADMIN,
        );
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(
            r[0].path,
            "caddy.routes[0].handle[0].dynamic_upstreams.sources[1]"
        );
        assert_eq!(
            refusals(
                &dynamic(json!({"source": "a", "name": "web", "port": "8000"})),
                ADMIN
            ),
            vec![]
        );
    }

    #[test]
    fn nested_dials_are_found_with_their_paths() {
        let server = json!({
            "listen": [":443"],
            "routes": [
                {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "web:8000"}]}]},
                {"handle": [{"handler": "subroute", "routes": [
                    {"handle": [{"handler": "reverse_proxy",
                                 "upstreams": [{"dial": "web:8000"}, {"dial": "[::1]:2019"}]}]}
                ]}]}
            ],
            "errors": {"routes": [{"handle": [{"handler": "reverse_proxy",
                                                "upstreams": [{"dial": "0.0.0.0:2019"}]}]}]}
        });
        let paths: Vec<String> = refusals(&server, ADMIN)
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(
            paths,
            [
                "caddy.routes[1].handle[0].routes[0].handle[0].upstreams[1].dial",
                "caddy.errors.routes[0].handle[0].upstreams[0].dial",
            ]
        );
    }

    #[test]
    fn listening_on_the_admin_address_is_refused() {
        for listen in [
            ":2019",
            "localhost:2019",
            "127.0.0.1:2019",
            "[::ffff:127.0.0.1]:2019",
            "0.0.0.0:2019",
            "tcp/:2000-2100",
        ] {
            let r = refusals(&json!({"listen": [":80", listen]}), ADMIN);
            assert_eq!(r.len(), 1, "{listen}: {r:?}");
            assert_eq!(r[0].path, "caddy.listen[1]");
            assert!(
                r[0].reason.contains("overlaps Caddy's admin endpoint"),
                "{r:?}"
            );
        }
        for listen in [":2020", "10.1.2.3:2019", "udp/:2019", "[::1]:2019"] {
            assert_eq!(
                refusals(&json!({"listen": [listen]}), ADMIN),
                vec![],
                "{listen}"
            );
        }
        // an admin endpoint named by a host name is compared by address
        let r = refusals(
            &json!({"listen": ["192.0.2.9:2019"]}),
            "http://admin.internal:2019",
        );
        assert_eq!(r.len(), 1);
    }
}
