//! Health gates: when a new container may take traffic. [`gate_for`] decides
//! what to check (pure); [`wait`] checks one container from the host.

use crate::docker;
use crate::settings;
use crate::spec::{Health, HttpCheck, Service};
use crate::ui;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

/// What `docker inspect` says about a container right now.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    status: String,
    restarting: bool,
    exit_code: i64,
    health: Option<String>,
    ip: Option<String>,
}

fn inspect(id: &str) -> Result<State, String> {
    let out = docker::docker(&[
        "inspect",
        "--format",
        "{{.State.Status}}\t{{.State.Restarting}}\t{{.State.ExitCode}}\t{{if .State.Health}}{{.State.Health.Status}}{{end}}\t{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        id,
    ])
    .map_err(|e| e.to_string())?;
    Ok(parse_state(&out))
}

fn parse_state(out: &str) -> State {
    let f: Vec<&str> = out.trim_end_matches('\n').split('\t').collect();
    let get = |i: usize| f.get(i).copied().unwrap_or("").trim();
    State {
        status: get(0).to_owned(),
        restarting: get(1) == "true",
        exit_code: get(2).parse().unwrap_or(0),
        health: Some(get(3)).filter(|h| !h.is_empty()).map(str::to_owned),
        ip: get(4).split_whitespace().next().map(str::to_owned),
    }
}

/// The last lines a failing container printed, to show with the failure.
fn last_logs(id: &str) -> String {
    match docker::output("docker", &["logs", "--tail", "20", id]) {
        Ok((_, out, err)) => {
            let mut s = String::from_utf8_lossy(&out).into_owned();
            s.push_str(&String::from_utf8_lossy(&err));
            let s = s.trim_end();
            if s.is_empty() {
                String::new()
            } else {
                format!("\nits last output:\n{s}")
            }
        }
        Err(_) => String::new(),
    }
}

/// Pauses between checks: short at first (most apps are up within a
/// second), doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

pub const FIRST_POLL: Duration = Duration::from_millis(50);

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: FIRST_POLL.min(max),
            max,
        }
    }
    /// The pause to take now.
    pub fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}

/// How often a wait says that it is still waiting.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Prints `waiting for ... (12 s of 30 s)` at most every [`PROGRESS_EVERY`].
pub struct Progress {
    started: Instant,
    next: Duration,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            started: Instant::now(),
            next: PROGRESS_EVERY,
        }
    }
}

impl Progress {
    /// Prints the progress line when one is due.
    pub fn tick(&mut self, what: impl FnOnce() -> String, limit: Duration) {
        if let Some(line) = self.line(self.started.elapsed(), what, limit) {
            ui::info(line);
        }
    }

    /// The line due `elapsed` into the wait, if any (pure).
    fn line(
        &mut self,
        elapsed: Duration,
        what: impl FnOnce() -> String,
        limit: Duration,
    ) -> Option<String> {
        if elapsed < self.next {
            return None;
        }
        self.next = elapsed + PROGRESS_EVERY;
        Some(format!(
            "waiting for {} ({} s of {} s)",
            what(),
            elapsed.as_secs(),
            limit.as_secs()
        ))
    }
}

/// How long an HTTP check may keep failing: `attempts` × `interval`.
fn http_budget(check: &HttpCheck) -> Duration {
    Duration::from_secs(check.interval_secs.max(1)) * check.attempts.max(1)
}

/// Waits until container `id` passes `gate`; `host` is sent as the Host
/// header of HTTP checks. `oneshot` services may also exit with status 0.
/// Checks come fast at first ([`Backoff`]); an HTTP check fails after its
/// `attempts` × `interval` of failures, anything else after the start timeout.
pub fn wait(
    id: &str,
    label: &str,
    gate: &Gate,
    host: Option<&str>,
    oneshot: bool,
) -> Result<(), String> {
    let start_limit = settings::timeouts().start;
    let started = Instant::now();
    let mut stable_since: Option<Instant> = None;
    let mut first_probe: Option<Instant> = None;
    let mut probes: u32 = 0;
    let max_pause = match gate {
        Gate::Http { check, .. } => Duration::from_secs(check.interval_secs.max(1)),
        _ => Duration::from_secs(1),
    };
    let mut backoff = Backoff::new(max_pause);
    let mut progress = Progress::default();
    loop {
        let st = inspect(id)?;
        if st.status == "exited" && st.exit_code == 0 && oneshot {
            return Ok(());
        }
        if st.restarting || matches!(st.status.as_str(), "exited" | "dead") {
            return Err(format!(
                "{label} stopped (status {}, exit code {}){}",
                st.status,
                st.exit_code,
                last_logs(id)
            ));
        }
        let running = st.status == "running";
        let docker_health = st.health.as_deref();
        if docker_health == Some("unhealthy") {
            return Err(format!(
                "{label} is unhealthy (its own HEALTHCHECK failed){}",
                last_logs(id)
            ));
        }
        if running {
            match gate {
                Gate::Http { check, port } => {
                    let ip = st
                        .ip
                        .as_deref()
                        .ok_or_else(|| format!("{label} has no IP address"))?;
                    let addr = format!("{ip}:{port}");
                    let last_http = match probe_http(
                        &addr,
                        host.unwrap_or(&addr),
                        &check.path,
                        Duration::from_secs(check.timeout_secs.max(1)),
                    ) {
                        Ok(code) if code == check.status => return Ok(()),
                        Ok(code) => format!("answered {code}, expected {}", check.status),
                        Err(e) => e.to_string(),
                    };
                    probes += 1;
                    let since = *first_probe.get_or_insert_with(Instant::now);
                    let budget = http_budget(check);
                    if since.elapsed() >= budget && probes >= check.attempts {
                        return Err(format!(
                            "{label} failed its health check: GET http://{addr}{} {last_http} ({probes} attempts in {} s){}",
                            check.path,
                            since.elapsed().as_secs(),
                            last_logs(id)
                        ));
                    }
                    progress.tick(|| format!("{label} to answer {}", check.path), budget);
                    std::thread::sleep(backoff.pause());
                    continue;
                }
                Gate::Docker => {
                    if docker_health == Some("healthy") {
                        return Ok(());
                    }
                }
                Gate::Running { port } => {
                    let accepting = match (port, st.ip.as_deref()) {
                        (Some(p), Some(ip)) => tcp_accepts(&format!("{ip}:{p}")),
                        (Some(_), None) => false,
                        (None, _) => true,
                    };
                    // An image HEALTHCHECK still counts when one is reported.
                    let healthy = docker_health.is_none_or(|h| h == "healthy");
                    if accepting && healthy {
                        let since = *stable_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= STABLE {
                            return Ok(());
                        }
                    } else {
                        stable_since = None;
                    }
                }
            }
        }
        let what = || match gate {
            Gate::Running { port: Some(p) } if running => {
                format!("accept connections on port {p}")
            }
            Gate::Running { .. } if running => "keep running".to_owned(),
            Gate::Docker if running => format!(
                "report healthy (health: {})",
                docker_health.unwrap_or("none")
            ),
            _ => format!("start (status {})", st.status),
        };
        if started.elapsed() > start_limit {
            return Err(format!(
                "{label} did not {} within {} s (the limit is `kata setup --start-timeout SECS` or KATA_START_TIMEOUT){}",
                what(),
                start_limit.as_secs(),
                last_logs(id)
            ));
        }
        progress.tick(|| format!("{label} to {}", what()), start_limit);
        std::thread::sleep(backoff.pause());
    }
}

fn tcp_accepts(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}

/// `GET path` on `addr` with `Host: host`; the response's status code.
pub fn probe_http(addr: &str, host: &str, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let sock: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kata-health\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    parse_status(&head[..got]).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&head[..got])
            ),
        )
    })
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.get(..3)?.parse().ok()
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
    fn polls_fast_first_then_back_off() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let pauses: Vec<u128> = (0..7).map(|_| b.pause().as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1000, 1000]);
        let mut b = Backoff::new(Duration::from_millis(30));
        assert_eq!(b.pause(), Duration::from_millis(30));
    }

    #[test]
    fn progress_lines_come_every_five_seconds() {
        let mut p = Progress::default();
        let at = |p: &mut Progress, ms: u64| {
            p.line(
                Duration::from_millis(ms),
                || "web to answer /healthz".into(),
                Duration::from_secs(30),
            )
        };
        assert_eq!(at(&mut p, 4_900), None);
        assert_eq!(
            at(&mut p, 5_200).as_deref(),
            Some("waiting for web to answer /healthz (5 s of 30 s)")
        );
        assert_eq!(at(&mut p, 9_000), None);
        // a slow check delays a line; the next one is due 5 s after it
        assert_eq!(
            at(&mut p, 12_000).as_deref(),
            Some("waiting for web to answer /healthz (12 s of 30 s)")
        );
        assert_eq!(at(&mut p, 16_000), None);
        assert!(at(&mut p, 17_000).is_some());
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

    #[test]
    fn inspect_output_and_status_lines_parse() {
        let st = parse_state("running\tfalse\t0\thealthy\t172.18.0.3 10.0.0.2 \n");
        assert_eq!(st.status, "running");
        assert_eq!(st.health.as_deref(), Some("healthy"));
        assert_eq!(st.ip.as_deref(), Some("172.18.0.3"));
        let st = parse_state("exited\tfalse\t137\t\t\n");
        assert_eq!((st.exit_code, st.health, st.ip), (137, None, None));
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"HTTP/1.0 200"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
    }
}
