//! Health gates: when a new container may take traffic. [`gate_for`]
//! decides what to check, from the spec alone; [`crate::health`] runs the
//! check against a container.

use crate::spec::{Health, HttpCheck, Service};
use std::time::Duration;

/// How long a container without a health check must keep running (and
/// accepting connections on its port, when it has one) to count as started.
pub const STABLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// kata's own `healthcheck: {path: ...}`, sent from the host.
    Http { check: HttpCheck, port: u16 },
    /// A compose or image HEALTHCHECK: wait for Docker to say `healthy`.
    Docker,
    /// Nothing declared: keeps running (and accepts TCP on `port`) for [`STABLE`].
    Running { port: Option<u16> },
}

/// The gate for a service; `routed_port` is the port Caddy dials, if any.
pub fn gate_for(name: &str, svc: &Service, routed_port: Option<u16>) -> Result<Gate, String> {
    match &svc.health {
        Some(Health::Http(check)) => {
            let port = check.port.or(routed_port).or_else(|| exposed_port(svc));
            match port {
                Some(port) => Ok(Gate::Http {
                    check: check.clone(),
                    port,
                }),
                None => Err(format!(
                    "services.{name}.healthcheck needs a `port:` (the service is not routed by Caddy and exposes no port)"
                )),
            }
        }
        Some(Health::Compose(h)) if compose_check_disabled(h) => {
            Ok(Gate::Running { port: routed_port })
        }
        Some(Health::Compose(_)) => Ok(Gate::Docker),
        None => Ok(Gate::Running { port: routed_port }),
    }
}

fn compose_check_disabled(h: &serde_json::Value) -> bool {
    h.get("disable").and_then(serde_json::Value::as_bool) == Some(true)
        || h.get("test")
            .and_then(|t| t.get(0))
            .and_then(serde_json::Value::as_str)
            == Some("NONE")
}

/// The container side of the first `expose:` or `ports:` entry.
fn exposed_port(svc: &Service) -> Option<u16> {
    for key in ["expose", "ports"] {
        let Some(first) = svc
            .extra
            .get(key)
            .and_then(serde_json::Value::as_array)
            .and_then(|a| a.first())
        else {
            continue;
        };
        let text = match first {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => o.get("target").map(|t| t.to_string())?,
            _ => continue,
        };
        let container = text.rsplit(':').next()?.split('/').next()?;
        let container = container.split('-').next()?;
        if let Ok(p) = container.trim_matches('"').parse() {
            return Some(p);
        }
    }
    None
}

/// How long an HTTP check may keep failing: `attempts` × `interval`.
pub(crate) fn http_budget(check: &HttpCheck) -> Duration {
    Duration::from_secs(check.interval_secs.max(1)) * check.attempts.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(health: Option<Health>, extra: serde_json::Value) -> Service {
        Service {
            health,
            extra: extra
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Service::default()
        }
    }

    fn http(port: Option<u16>) -> Health {
        Health::Http(HttpCheck {
            path: "/health".into(),
            port,
            status: 200,
            timeout_secs: 2,
            interval_secs: 1,
            attempts: 3,
        })
    }

    #[test]
    fn http_gate_port_comes_from_check_then_route_then_expose() {
        let port_of = |g: Gate| match g {
            Gate::Http { port, .. } => port,
            other => panic!("{other:?}"),
        };
        let s = svc(Some(http(Some(9000))), json!({}));
        assert_eq!(port_of(gate_for("web", &s, Some(8000)).unwrap()), 9000);
        let s = svc(Some(http(None)), json!({}));
        assert_eq!(port_of(gate_for("web", &s, Some(8000)).unwrap()), 8000);
        let s = svc(Some(http(None)), json!({"expose": ["7000"]}));
        assert_eq!(port_of(gate_for("web", &s, None).unwrap()), 7000);
        let s = svc(
            Some(http(None)),
            json!({"ports": ["127.0.0.1:80:6000/tcp"]}),
        );
        assert_eq!(port_of(gate_for("web", &s, None).unwrap()), 6000);
        let s = svc(Some(http(None)), json!({}));
        assert!(
            gate_for("web", &s, None)
                .unwrap_err()
                .contains("services.web.healthcheck needs a `port:`")
        );
    }

    #[test]
    fn compose_checks_wait_for_docker_unless_disabled() {
        let s = svc(
            Some(Health::Compose(json!({"test": ["CMD", "true"]}))),
            json!({}),
        );
        assert_eq!(gate_for("db", &s, None).unwrap(), Gate::Docker);
        let s = svc(Some(Health::Compose(json!({"disable": true}))), json!({}));
        assert_eq!(
            gate_for("db", &s, Some(1)).unwrap(),
            Gate::Running { port: Some(1) }
        );
        let s = svc(Some(Health::Compose(json!({"test": ["NONE"]}))), json!({}));
        assert_eq!(
            gate_for("db", &s, None).unwrap(),
            Gate::Running { port: None }
        );
        assert_eq!(
            gate_for("db", &svc(None, json!({})), None).unwrap(),
            Gate::Running { port: None }
        );
    }

    #[test]
    fn http_budget_is_attempts_times_interval() {
        let Health::Http(mut check) = http(None) else {
            unreachable!()
        };
        assert_eq!(http_budget(&check), Duration::from_secs(3));
        check.interval_secs = 0;
        check.attempts = 0;
        assert_eq!(http_budget(&check), Duration::from_secs(1));
    }
}
