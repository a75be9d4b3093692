//! Whether an app's route in Caddy reaches the app (pure): what `kata ls`
//! shows beside the containers' state, which alone says `running` while
//! Caddy dials a port or address nobody (or another app) holds.

use crate::ports::{AppPorts, Published};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "reason")]
pub enum RouteStatus {
    /// The release routes nothing through Caddy.
    None,
    /// Every proxy of the app's part reaches one of its running containers.
    Ok,
    /// Requests for the app cannot reach it, or reach another app.
    Broken(String),
}

impl std::fmt::Display for RouteStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteStatus::None => f.write_str("-"),
            RouteStatus::Ok => f.write_str("ok"),
            RouteStatus::Broken(why) => write!(f, "broken: {why}"),
        }
    }
}

/// Who answers on one upstream dial.
enum Answer {
    Own,
    Other(String),
    Nobody,
    /// A dial kata did not resolve (an outside service): not judged.
    Unknown,
}

/// A dial's host (brackets off) and port, its network (`tcp/`) dropped.
fn host_port(dial: &str) -> Option<(&str, u16)> {
    let dial = dial.split_once('/').map(|(_, d)| d).unwrap_or(dial);
    let (host, port) = dial.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

fn answer(app: &str, dial: &str, blocks: &AppPorts, running: &[Published]) -> Answer {
    let Some((host, port)) = host_port(dial) else {
        return Answer::Unknown;
    };
    let owner = |c: &Published| {
        if c.app == app {
            Answer::Own
        } else {
            Answer::Other(c.app.clone())
        }
    };
    if host == "127.0.0.1" || host == "localhost" {
        if let Some(c) = running
            .iter()
            .find(|c| c.ports.iter().any(|(_, _, hp)| *hp == port))
        {
            return owner(c);
        }
        return if blocks.blocks.values().any(|b| b.contains(port)) {
            Answer::Nobody
        } else {
            Answer::Unknown
        };
    }
    if host.parse::<std::net::IpAddr>().is_err() {
        return Answer::Unknown;
    }
    match running.iter().find(|c| c.ips.iter().any(|ip| ip == host)) {
        Some(c) => owner(c),
        // a container address kata wrote that no running container has now
        None => Answer::Nobody,
    }
}

/// Whether some upstream of the part dials a container's address rather
/// than a loopback port: judging it needs the containers' addresses.
pub fn dials_addresses(part: &Value) -> bool {
    let mut found = vec![];
    proxies(part, &mut found);
    found
        .iter()
        .filter_map(|p| p.get("upstreams")?.as_array())
        .flatten()
        .filter_map(|u| u.get("dial")?.as_str())
        .filter_map(host_port)
        .any(|(host, _)| {
            host.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
}

fn proxies<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.get("handler").and_then(Value::as_str) == Some("reverse_proxy") {
                out.push(v);
            }
            m.values().for_each(|c| proxies(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| proxies(c, out)),
        _ => {}
    }
}

/// The app's route status from whether its live release routes anything,
/// its part as Caddy runs it (`None`: Caddy has none), its blocks, and every
/// running kata container on the engine.
pub fn status(
    app: &str,
    routed: bool,
    part: Option<&Value>,
    blocks: &AppPorts,
    running: &[Published],
) -> RouteStatus {
    if !routed {
        return RouteStatus::None;
    }
    let Some(part) = part else {
        return RouteStatus::Broken("no route in Caddy (run `kata caddy:sync`)".into());
    };
    let mut found = vec![];
    proxies(part, &mut found);
    for proxy in found {
        let dials: Vec<&str> = proxy
            .get("upstreams")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|u| u.get("dial")?.as_str())
            .collect();
        let answers: Vec<(&str, Answer)> = dials
            .iter()
            .map(|d| (*d, answer(app, d, blocks, running)))
            .collect();
        if let Some((d, Answer::Other(other))) =
            answers.iter().find(|(_, a)| matches!(a, Answer::Other(_)))
        {
            return RouteStatus::Broken(format!("{d} is app {other}'s"));
        }
        let judged = answers.iter().any(|(_, a)| !matches!(a, Answer::Unknown));
        let reachable = answers
            .iter()
            .any(|(_, a)| matches!(a, Answer::Own | Answer::Unknown));
        if judged && !reachable {
            return RouteStatus::Broken(format!("no container answers on {}", dials.join(", ")));
        }
    }
    RouteStatus::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Block;
    use serde_json::json;

    fn part(dials: &[&str]) -> Value {
        let ups: Vec<Value> = dials.iter().map(|d| json!({"dial": d})).collect();
        json!({"listen": [":80"], "routes": [{"handle": [{"handler": "subroute", "routes": [
            {"handle": [{"handler": "reverse_proxy", "upstreams": ups}]}]}]}]})
    }

    #[test]
    fn only_container_addresses_need_the_containers_addresses() {
        assert!(!dials_addresses(&part(&[
            "127.0.0.1:20000",
            "localhost:20001"
        ])));
        assert!(!dials_addresses(&part(&["[::1]:20000", "db.example:5432"])));
        assert!(dials_addresses(&part(&[
            "127.0.0.1:20000",
            "198.18.0.5:8080"
        ])));
        assert!(dials_addresses(&part(&["tcp/[fd00::5]:8080"])));
    }

    fn container(app: &str, ip: &str, port: u16) -> Published {
        Published {
            id: format!("{app}-1"),
            app: app.into(),
            service: "web".into(),
            running: true,
            ips: vec![ip.into()],
            ports: vec![(8080, "127.0.0.1".into(), port)],
        }
    }

    fn blocks(first: u16) -> AppPorts {
        AppPorts {
            blocks: [("web:8080".to_owned(), Block { first, len: 2 })].into(),
        }
    }

    #[test]
    fn status_tells_who_answers() {
        let shop = blocks(20000);
        let running = vec![
            container("shop", "172.18.0.2", 20001),
            container("blog", "172.19.0.2", 20002),
        ];
        let s = |p: Option<&Value>, b: &AppPorts| status("shop", true, p, b, &running).to_string();
        assert_eq!(
            status("shop", false, None, &shop, &running),
            RouteStatus::None
        );
        assert_eq!(
            s(None, &shop),
            "broken: no route in Caddy (run `kata caddy:sync`)"
        );
        // whichever port of the block the container holds
        assert_eq!(
            s(Some(&part(&["127.0.0.1:20000", "127.0.0.1:20001"])), &shop),
            "ok"
        );
        // stopped: nobody holds either port
        assert_eq!(
            status(
                "shop",
                true,
                Some(&part(&["127.0.0.1:20000", "127.0.0.1:20001"])),
                &shop,
                &running[1..]
            )
            .to_string(),
            "broken: no container answers on 127.0.0.1:20000, 127.0.0.1:20001"
        );
        // an address written before published ports, now another app's
        assert_eq!(
            s(Some(&part(&["172.19.0.2:8080"])), &AppPorts::default()),
            "broken: 172.19.0.2:8080 is app blog's"
        );
        assert_eq!(
            s(Some(&part(&["172.18.0.2:8080"])), &AppPorts::default()),
            "ok"
        );
        assert_eq!(
            s(Some(&part(&["172.18.0.9:8080"])), &AppPorts::default()),
            "broken: no container answers on 172.18.0.9:8080"
        );
        // a dial to a service outside kata is not judged
        assert_eq!(
            s(Some(&part(&["127.0.0.1:9000", "db.example:5432"])), &shop),
            "ok"
        );
    }
}
