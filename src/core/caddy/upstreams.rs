//! `<service>:<port>` dials → what Caddy on the host dials (pure).
//!
//! Caddy runs on the host and cannot resolve compose service names, so every
//! `dial` of a `reverse_proxy` handler (at any depth: routes, subroutes,
//! error routes) whose host part is one of the app's services becomes
//! either every port of the app's published loopback block for that dial
//! (compose: see [`crate::ports`]), tried in order with fail-over, or one
//! upstream per container address (swarm, and containers started before
//! kata published ports). Other dials (`127.0.0.1:8000`, `:8000`,
//! `example.org:80`, placeholders) are left exactly as written.

use super::CaddyError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A dial split into its optional network prefix (`tcp/`), host and port text.
struct Dial<'a> {
    network: Option<&'a str>,
    host: &'a str,
    port: &'a str,
}

fn split_dial(dial: &str) -> Option<Dial<'_>> {
    let (network, rest) = match dial.split_once('/') {
        Some((n, r)) if !n.contains(':') => (Some(n), r),
        _ => (None, dial),
    };
    let (host, port) = rest.rsplit_once(':')?;
    Some(Dial {
        network,
        host,
        port,
    })
}

fn format_addr(ip: &str, port: u16) -> String {
    if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Calls `f` on every `reverse_proxy` handler object in the server.
fn each_proxy(v: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            if m.get("handler").and_then(Value::as_str) == Some("reverse_proxy") {
                f(m);
            }
            m.values().for_each(|c| each_proxy(c, f));
        }
        Value::Array(a) => a.iter().for_each(|c| each_proxy(c, f)),
        _ => {}
    }
}

/// A visitor of `reverse_proxy` handler objects that may fail.
type ProxyVisitor<'a> = dyn FnMut(&mut Map<String, Value>) -> Result<(), CaddyError> + 'a;

fn each_proxy_mut(v: &mut Value, f: &mut ProxyVisitor<'_>) -> Result<(), CaddyError> {
    match v {
        Value::Object(m) => {
            if m.get("handler").and_then(Value::as_str) == Some("reverse_proxy") {
                f(m)?;
            }
            for c in m.values_mut() {
                each_proxy_mut(c, f)?;
            }
        }
        Value::Array(a) => {
            for c in a {
                each_proxy_mut(c, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The `(service, port)` pairs the server routes to, in first-seen order,
/// once each: the dials whose host is one of `services` (the app's service
/// names). The deploy uses them to know what to health-check.
pub fn service_dials<S: AsRef<str>>(
    server: &Value,
    services: impl IntoIterator<Item = S>,
) -> Vec<(String, u16)> {
    let names: Vec<String> = services
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect();
    let mut out: Vec<(String, u16)> = Vec::new();
    each_proxy(server, &mut |proxy| {
        for up in proxy
            .get("upstreams")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(d) = up.get("dial").and_then(Value::as_str).and_then(split_dial) else {
                continue;
            };
            if !names.iter().any(|n| n == d.host) {
                continue;
            }
            if let Ok(port) = d.port.parse::<u16>() {
                let pair = (d.host.to_owned(), port);
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
    });
    out
}

/// Where a service's dials go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstreams {
    /// Container addresses: one upstream per address, at the dial's port.
    Addresses(Vec<String>),
    /// Published loopback ports by container port, in the order Caddy tries
    /// them; `replicas` above 1 spreads requests round-robin instead.
    Ports {
        by_port: BTreeMap<u16, Vec<u16>>,
        replicas: u32,
    },
    /// Swarm task addresses in the order Caddy tries them (during an
    /// update, the old release's tasks first, the new ones next to fail
    /// over to), with the fail-over settings of [`Upstreams::Ports`].
    Tasks { addrs: Vec<String>, replicas: u32 },
}

/// How long Caddy keeps trying the block's other ports after a refused
/// dial, how long it waits between tries, and how long it skips a port that
/// refused (no container holds it now).
pub const TRY_DURATION: &str = "3s";
pub const TRY_INTERVAL: &str = "20ms";
pub const FAIL_DURATION: &str = "5s";
/// A task swarm stopped leaves an address nothing answers on: the dial
/// times out instead of being refused, and must leave time within
/// [`TRY_DURATION`] to try the next task.
pub const TASK_DIAL_TIMEOUT: &str = "1s";

/// Fail-over settings for a handler dialling published ports, where the
/// server sets none: with a single instance `first` (the switch puts the
/// new container's port first), else `round_robin`; a refused port is
/// skipped for [`FAIL_DURATION`] and the request tried on the next one.
fn fail_over(proxy: &mut Map<String, Value>, replicas: u32) {
    let policy = if replicas > 1 { "round_robin" } else { "first" };
    let lb = proxy
        .entry("load_balancing")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(lb) = lb {
        lb.entry("selection_policy")
            .or_insert_with(|| serde_json::json!({"policy": policy}));
        lb.entry("try_duration").or_insert(TRY_DURATION.into());
        lb.entry("try_interval").or_insert(TRY_INTERVAL.into());
    }
    let hc = proxy
        .entry("health_checks")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(hc) = hc {
        let passive = hc
            .entry("passive")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(p) = passive {
            p.entry("fail_duration").or_insert(FAIL_DURATION.into());
            p.entry("max_fails").or_insert(1.into());
        }
    }
}

/// Rewrites every `<service>:<port>` dial (service = a key of `services`)
/// into the service's upstreams: one per port of its published block
/// (`127.0.0.1:<host port>`, with fail-over settings on the handler), or
/// one per container address (`"<ip>:<port>"`), copying the upstream's
/// other fields (e.g. `max_requests`). Literal dials are untouched. A
/// routed service with no address is an error naming it.
pub fn resolve_upstreams(
    server: &Value,
    services: &BTreeMap<String, Upstreams>,
) -> Result<Value, CaddyError> {
    let mut out = server.clone();
    each_proxy_mut(&mut out, &mut |proxy| {
        let Some(Value::Array(ups)) = proxy.get_mut("upstreams") else {
            return Ok(());
        };
        let mut resolved = Vec::with_capacity(ups.len());
        let mut published: Option<u32> = None;
        let mut tasks: Option<u32> = None;
        for up in ups.drain(..) {
            let dial = up.get("dial").and_then(Value::as_str).map(str::to_owned);
            let target = dial.as_deref().and_then(split_dial).and_then(|d| {
                services
                    .get(d.host)
                    .map(|addrs| (d.network.map(str::to_owned), d.port.to_owned(), addrs))
            });
            let Some((network, port, addrs)) = target else {
                resolved.push(up);
                continue;
            };
            let dial = dial.unwrap_or_default();
            let port: u16 = port.parse().map_err(|_| CaddyError::Invalid {
                path: "caddy".into(),
                message: format!("upstream dial {dial:?}: port {port:?} is not a number"),
            })?;
            let targets: Vec<String> = match addrs {
                Upstreams::Addresses(ips) => ips.iter().map(|ip| format_addr(ip, port)).collect(),
                Upstreams::Tasks { addrs, replicas } => {
                    if !addrs.is_empty() {
                        tasks = Some(tasks.unwrap_or(0).max(*replicas));
                    }
                    addrs.iter().map(|ip| format_addr(ip, port)).collect()
                }
                Upstreams::Ports { by_port, replicas } => {
                    let ports = by_port.get(&port).map(Vec::as_slice).unwrap_or_default();
                    if !ports.is_empty() {
                        published = Some(published.unwrap_or(0).max(*replicas));
                    }
                    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
                }
            };
            if targets.is_empty() {
                let service = split_dial(&dial)
                    .map(|d| d.host.to_owned())
                    .unwrap_or_default();
                return Err(CaddyError::NoAddresses { service, dial });
            }
            for addr in targets {
                let mut u = up.clone();
                let addr = match &network {
                    Some(n) => format!("{n}/{addr}"),
                    None => addr,
                };
                u["dial"] = Value::String(addr);
                resolved.push(u);
            }
        }
        *ups = resolved;
        if let Some(replicas) = published {
            fail_over(proxy, replicas);
        }
        if let Some(replicas) = tasks {
            fail_over(proxy, replicas);
            let t = proxy
                .entry("transport")
                .or_insert_with(|| serde_json::json!({"protocol": "http"}));
            if let Value::Object(t) = t {
                t.entry("dial_timeout").or_insert(TASK_DIAL_TIMEOUT.into());
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server() -> Value {
        json!({
            "listen": [":80"],
            "routes": [
                {"match": [{"host": ["api.test"]}],
                 "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "api:3000", "max_requests": 10}, {"dial": "127.0.0.1:9000"}]}]},
                {"handle": [{"handler": "subroute", "routes": [
                    {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "web:80"}, {"dial": "tcp/web:81"}, {"dial": ":8000"}, {"dial": "example.org:80"}]}]}
                ]}]},
                {"handle": [{"handler": "static_response", "upstreams": [{"dial": "web:80"}]}]}
            ]
        })
    }

    fn services() -> BTreeMap<String, Upstreams> {
        let ips = |v: &[&str]| Upstreams::Addresses(v.iter().map(|s| (*s).to_owned()).collect());
        BTreeMap::from([
            ("api".to_owned(), ips(&["172.18.0.2", "172.18.0.3"])),
            ("web".to_owned(), ips(&["fd00::5"])),
            ("db".to_owned(), ips(&[])),
        ])
    }

    #[test]
    fn published_blocks_become_ports_with_fail_over() {
        let s = json!({"routes": [
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "web:8000"}, {"dial": "127.0.0.1:9000"}]}]},
            {"handle": [{"handler": "reverse_proxy",
                         "load_balancing": {"selection_policy": {"policy": "ip_hash"}},
                         "health_checks": {"passive": {"fail_duration": "1m"}},
                         "upstreams": [{"dial": "api:3000"}]}]},
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "lit:1"}]}]}
        ]});
        let services = BTreeMap::from([
            (
                "web".to_owned(),
                Upstreams::Ports {
                    by_port: BTreeMap::from([(8000, vec![20001, 20000])]),
                    replicas: 1,
                },
            ),
            (
                "api".to_owned(),
                Upstreams::Ports {
                    by_port: BTreeMap::from([(3000, vec![20002, 20003, 20004, 20005])]),
                    replicas: 2,
                },
            ),
        ]);
        insta::assert_json_snapshot!(resolve_upstreams(&s, &services).unwrap());
        // a dial on a port that has no block is an error naming it
        let bad = json!({"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "web:81"}]}]}]});
        assert!(
            resolve_upstreams(&bad, &services)
                .unwrap_err()
                .to_string()
                .contains("\"web:81\"")
        );
    }

    #[test]
    fn swarm_tasks_keep_their_order_and_fail_over_quickly() {
        let s = json!({"routes": [
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "web:8080"}]}]},
            {"handle": [{"handler": "reverse_proxy",
                         "transport": {"protocol": "http", "dial_timeout": "5s"},
                         "upstreams": [{"dial": "api:3000"}]}]}
        ]});
        let services = BTreeMap::from([
            (
                "web".to_owned(),
                Upstreams::Tasks {
                    addrs: vec!["172.18.0.9".into(), "172.18.0.3".into()],
                    replicas: 1,
                },
            ),
            (
                "api".to_owned(),
                Upstreams::Tasks {
                    addrs: vec!["172.18.0.4".into()],
                    replicas: 2,
                },
            ),
        ]);
        let got = resolve_upstreams(&s, &services).unwrap();
        let web = &got["routes"][0]["handle"][0];
        assert_eq!(
            web["upstreams"],
            json!([{"dial": "172.18.0.9:8080"}, {"dial": "172.18.0.3:8080"}]),
            "the old task first, the new one to fail over to"
        );
        assert_eq!(web["load_balancing"]["selection_policy"]["policy"], "first");
        assert_eq!(web["transport"]["dial_timeout"], TASK_DIAL_TIMEOUT);
        assert_eq!(web["health_checks"]["passive"]["max_fails"], 1);
        let api = &got["routes"][1]["handle"][0];
        assert_eq!(
            api["load_balancing"]["selection_policy"]["policy"],
            "round_robin"
        );
        assert_eq!(
            api["transport"]["dial_timeout"], "5s",
            "the app's own setting stays"
        );
    }

    #[test]
    fn service_dials_become_one_upstream_per_replica() {
        insta::assert_json_snapshot!(resolve_upstreams(&server(), &services()).unwrap(), @r#"
        {
          "listen": [
            ":80"
          ],
          "routes": [
            {
              "match": [
                {
                  "host": [
                    "api.test"
                  ]
                }
              ],
              "handle": [
                {
                  "handler": "reverse_proxy",
                  "upstreams": [
                    {
                      "dial": "172.18.0.2:3000",
                      "max_requests": 10
                    },
                    {
                      "dial": "172.18.0.3:3000",
                      "max_requests": 10
                    },
                    {
                      "dial": "127.0.0.1:9000"
                    }
                  ]
                }
              ]
            },
            {
              "handle": [
                {
                  "handler": "subroute",
                  "routes": [
                    {
                      "handle": [
                        {
                          "handler": "reverse_proxy",
                          "upstreams": [
                            {
                              "dial": "[fd00::5]:80"
                            },
                            {
                              "dial": "tcp/[fd00::5]:81"
                            },
                            {
                              "dial": ":8000"
                            },
                            {
                              "dial": "example.org:80"
                            }
                          ]
                        }
                      ]
                    }
                  ]
                }
              ]
            },
            {
              "handle": [
                {
                  "handler": "static_response",
                  "upstreams": [
                    {
                      "dial": "web:80"
                    }
                  ]
                }
              ]
            }
          ]
        }
        "#);
    }

    #[test]
    fn routed_service_without_address_is_an_error() {
        let s = json!({"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "db:5432"}]}]}]});
        let e = resolve_upstreams(&s, &services()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "caddy: service \"db\" is routed (dial \"db:5432\") but has no live container address"
        );
        let s = json!({"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "web:http"}]}]}]});
        assert!(
            resolve_upstreams(&s, &services())
                .unwrap_err()
                .to_string()
                .contains("\"web:http\"")
        );
    }

    #[test]
    fn literal_dials_are_untouched() {
        let s = json!({"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:1"}, {"dial": "other:2"}]}]}]});
        assert_eq!(resolve_upstreams(&s, &services()).unwrap(), s);
        assert_eq!(
            resolve_upstreams(&json!({}), &BTreeMap::new()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn lists_routed_services_once() {
        assert_eq!(
            service_dials(&server(), ["api", "web", "db"]),
            vec![
                ("api".to_owned(), 3000),
                ("web".to_owned(), 80),
                ("web".to_owned(), 81)
            ]
        );
        let names = services();
        assert_eq!(service_dials(&server(), names.keys()).len(), 3);
        assert!(service_dials(&server(), Vec::<String>::new()).is_empty());
    }
}
