//! Health gates from the host: [`wait`] checks one container against the
//! gate [`crate::gate::gate_for`] chose.

use crate::docker;
use crate::gate::http_budget;
pub use crate::gate::{Gate, STABLE, gate_for};
use crate::settings;
use crate::ui;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

/// `GET path` on `addr` with `Host: host`; the response's status code (any
/// status is an answer: redirects are not followed).
pub fn probe_http(
    addr: &str,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .max_idle_connections(0)
        .timeout_global(Some(timeout))
        .user_agent("kata-health")
        .build()
        .into();
    let resp = agent
        .get(format!("http://{addr}{path}"))
        .header("Host", host)
        .call()?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A loopback port that answers one request with `answer`; returns
    /// the request it read.
    fn serve_once(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request ended early");
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(req).unwrap()
        });
        (addr, t)
    }

    #[test]
    fn probe_sends_host_and_takes_any_status() {
        let (addr, t) =
            serve_once("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
        let code = probe_http(&addr, "shop.example", "/health?x=1", Duration::from_secs(5));
        assert_eq!(code.unwrap(), 302, "a redirect is an answer, not followed");
        let req = t.join().unwrap().to_ascii_lowercase();
        assert!(req.starts_with("get /health?x=1 http/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nhost: shop.example\r\n"), "{req}");
        assert!(req.contains("\r\nuser-agent: kata-health\r\n"), "{req}");

        let (addr, t) = serve_once("HTTP/1.0 503 Service Unavailable\r\n\r\nbusy");
        assert_eq!(
            probe_http(&addr, &addr, "/", Duration::from_secs(5)).unwrap(),
            503
        );
        t.join().unwrap();
    }

    #[test]
    fn probe_fails_on_silence_and_non_http() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let e = probe_http(&addr, &addr, "/", Duration::from_millis(300)).unwrap_err();
        assert!(e.to_string().contains("timeout"), "{e}");
        drop(listener);

        let (addr, t) = serve_once("SSH-2.0-OpenSSH_9.2\r\n\r\n");
        assert!(probe_http(&addr, &addr, "/", Duration::from_secs(5)).is_err());
        t.join().unwrap();
    }

    #[test]
    fn inspect_output_parses() {
        let st = parse_state("running\tfalse\t0\thealthy\t172.18.0.3 10.0.0.2 \n");
        assert_eq!(st.status, "running");
        assert_eq!(st.health.as_deref(), Some("healthy"));
        assert_eq!(st.ip.as_deref(), Some("172.18.0.3"));
        let st = parse_state("exited\tfalse\t137\t\t\n");
        assert_eq!((st.exit_code, st.health, st.ip), (137, None, None));
    }
}
