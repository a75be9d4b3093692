//! The admin API client (shell): it reads the live config, lets
//! [`super::shared`] plan the calls that write, replace or remove an app's
//! part (pure), and executes them. Nothing is ever written with `/load` or
//! by replacing a non-null config; other apps' routes and hand-made servers
//! are never sent back to Caddy except in the one change that moves an old
//! per-app server, which carries them unchanged.
//!
//! Optimistic concurrency: a planned call that writes a broad path (a
//! missing parent, the servers of a move, a route list) is guarded: kata
//! reads that path again, checks it is still what the plan was made from,
//! and sends the write with Caddy's `If-Match`. Caddy 2.7+ sends the ETag
//! as a header; Caddy 2.6 sends it as a trailer (`"<path> <FNV-32a of the
//! body>"`), so kata computes it from the body there. A mismatch or a 412
//! means someone else wrote: kata plans again. On top of that, kata's own
//! writes are serialised host-wide by a lock file (see
//! [`Admin::with_lock_file`]).

use super::shared::{self, Call, Plan, Refusal};
use super::{CaddyError, Endpoint, EndpointError};
use crate::lock::Lock;
use crate::paths::Paths;
use crate::settings::Settings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

const SERVERS: &str = "/config/apps/http/servers";
const ATTEMPTS: u32 = 5;

/// One entry of `GET /reverse_proxy/upstreams`: what draining watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub address: String,
    #[serde(default)]
    pub num_requests: i64,
    #[serde(default)]
    pub fails: i64,
}

thread_local! {
    /// Lock files this thread holds through a [`CaddyLock`].
    static HELD: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// The host-wide Caddy lock, held while alive (see [`Admin::lock`]).
#[must_use = "the lock is released when this guard is dropped"]
#[derive(Debug)]
pub struct CaddyLock {
    held: Option<(PathBuf, Lock)>,
}

impl CaddyLock {
    fn none() -> CaddyLock {
        CaddyLock { held: None }
    }
}

impl Drop for CaddyLock {
    fn drop(&mut self) {
        if let Some((path, _lock)) = self.held.take() {
            HELD.with(|h| h.borrow_mut().retain(|p| p != &path));
            // `_lock` drops here, releasing the file lock
        }
    }
}

/// A client for one Caddy admin endpoint.
#[derive(Debug, Clone)]
pub struct Admin {
    endpoint: Endpoint,
    timeout: Duration,
    lock_file: Option<PathBuf>,
    agent: ureq::Agent,
    /// The kata root, to tell kata's apps from other servers in errors.
    paths: Option<Paths>,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
    etag: Option<String>,
}

/// FNV-32a, the hash in Caddy 2.6's config ETags.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn etag(path: &str, body: &[u8]) -> String {
    format!("\"{path} {:08x}\"", fnv32a(body))
}

fn name_ok(name: &str) -> Result<(), CaddyError> {
    if crate::names::is_app_name(name) {
        Ok(())
    } else {
        Err(CaddyError::BadName(name.to_owned()))
    }
}

/// The connection went away before an answer: worth another try.
fn is_dropped_connection(kind: Option<io::ErrorKind>) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        Some(ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
    )
}

/// Caddy's answer for a GET below a missing parent (400) or a DELETE/PUT there (500).
fn is_traversal_error(e: &CaddyError) -> bool {
    matches!(e, CaddyError::Refused { body, .. }
        if body.contains("invalid traversal path") || body.contains("key does not exist"))
}

impl Admin {
    /// A client with a 30 s limit per call and no lock file.
    pub fn new(endpoint: Endpoint) -> Admin {
        let timeout = Duration::from_secs(30);
        let agent = Self::agent(&endpoint, timeout);
        Admin {
            endpoint,
            timeout,
            lock_file: None,
            agent,
            paths: None,
        }
    }

    /// The host's client: the endpoint from settings (`kata setup
    /// --caddy-admin`, `KATA_CADDY_ADMIN`), writes serialised by
    /// `paths.host_lock("caddy")`.
    pub fn from_settings(settings: &Settings, paths: &Paths) -> Result<Admin, EndpointError> {
        let mut admin = Admin::new(Endpoint::parse(&settings.caddy_admin)?)
            .with_lock_file(paths.host_lock("caddy"));
        admin.paths = Some(paths.clone());
        Ok(admin)
    }

    /// One request per connection (nothing kept idle: Caddy 2.6 replaces
    /// its admin listener on every config change).
    fn agent(endpoint: &Endpoint, timeout: Duration) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .max_idle_connections(0)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .build();
        match endpoint {
            Endpoint::Http { .. } => config.into(),
            Endpoint::Unix(socket) => super::unix::agent(socket.clone(), config),
        }
    }

    /// Limit for each admin call (connect + send + whole answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self.agent = Self::agent(&self.endpoint, timeout);
        self
    }

    /// `put_server` and `delete_server` hold an exclusive lock on this file
    /// for their read-modify-write. Don't call them while holding a lock on
    /// the same file yourself (flock would wait for itself).
    pub fn with_lock_file(mut self, path: impl Into<PathBuf>) -> Admin {
        self.lock_file = Some(path.into());
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Takes the host-wide Caddy lock (when configured); held until the
    /// guard is dropped. Re-entrant within a thread: `put_server` and
    /// `delete_server` take it themselves, and calling them while holding a
    /// guard from here is fine (the inner take is a no-op). Other threads and
    /// processes wait.
    pub fn lock(&self) -> Result<CaddyLock, CaddyError> {
        let Some(path) = &self.lock_file else {
            return Ok(CaddyLock::none());
        };
        if HELD.with(|h| h.borrow().contains(path)) {
            return Ok(CaddyLock::none());
        }
        let lock = crate::lock::exclusive(path, |_| {
            crate::ui::info("waiting for another Caddy update to finish")
        })
        .map_err(|source| CaddyError::Lock {
            path: path.display().to_string(),
            source,
        })?;
        HELD.with(|h| h.borrow_mut().push(path.clone()));
        Ok(CaddyLock {
            held: Some((path.clone(), lock)),
        })
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> CaddyError {
        CaddyError::Unreachable {
            endpoint: self.endpoint.to_string(),
            detail: detail.to_string(),
        }
    }

    /// One exchange, retried a few times when the connection was dropped
    /// before an answer arrived. Caddy 2.6 restarts its admin listener on
    /// every config change (the new socket binds beside the old one with
    /// SO_REUSEPORT), so a request right after a change can meet a reset.
    /// Retrying is safe for every call kata makes: reads are idempotent,
    /// `POST .../servers/<app>` writes the same value again, and a repeated
    /// conditional parent write fails its `If-Match` and is re-planned.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, CaddyError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON values serialise"));
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match self.send_once(method, path, body.as_deref(), if_match) {
                Ok(r) => return Ok(r),
                Err((kind, detail)) => {
                    if attempt >= 4 || !is_dropped_connection(kind) {
                        return Err(self.unreachable(detail));
                    }
                }
            }
            std::thread::sleep(delay);
            delay *= 2;
            attempt += 1;
        }
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        if_match: Option<&str>,
    ) -> Result<Reply, (Option<io::ErrorKind>, String)> {
        let fail = |e: &dyn std::fmt::Display| (None, e.to_string());
        let mut req = ureq::http::Request::builder()
            .method(method)
            .header("Accept", "application/json");
        req = match &self.endpoint {
            Endpoint::Http { .. } => req.uri(format!("{}{path}", self.endpoint)),
            // An empty Host, as RFC 9112 asks when the target has no host
            // name. Caddy 2.6 allows exactly the origin "" on a unix-socket
            // admin endpoint and answers `403 host not allowed: localhost`
            // to anything else.
            Endpoint::Unix(_) => req
                .uri(format!("http://localhost{path}"))
                .header("Host", ""),
        };
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        let result = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b)
                    .map_err(|e| fail(&e))?,
            ),
            None => self.agent.run(req.body(()).map_err(|e| fail(&e))?),
        };
        let ureq_fail = |e: ureq::Error| match e {
            ureq::Error::Io(io) => (Some(io.kind()), io.to_string()),
            other => (None, other.to_string()),
        };
        let mut resp = result.map_err(ureq_fail)?;
        let status = resp.status().as_u16();
        // Caddy 2.7+ sends the ETag as a header; 2.6's trailer is dropped
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(ureq_fail)?;
        Ok(Reply { status, body, etag })
    }

    /// One call; any non-2xx answer becomes `Refused` with Caddy's body verbatim.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Vec<u8>, CaddyError> {
        self.call_reply(method, path, body, if_match)
            .map(|r| r.body)
    }

    /// [`Admin::call`], keeping the whole reply (for its ETag).
    fn call_reply(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, CaddyError> {
        let r = self.send(method, path, body, if_match)?;
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        Err(CaddyError::Refused {
            endpoint: self.endpoint.to_string(),
            method: method.to_owned(),
            path: path.to_owned(),
            status: r.status,
            body: String::from_utf8_lossy(&r.body).trim_end().to_owned(),
        })
    }

    fn parse(&self, method: &str, path: &str, body: &[u8]) -> Result<Value, CaddyError> {
        serde_json::from_slice(body).map_err(|e| CaddyError::Protocol {
            endpoint: self.endpoint.to_string(),
            method: method.to_owned(),
            path: path.to_owned(),
            detail: format!("not JSON ({e}): {}", String::from_utf8_lossy(body)),
        })
    }

    /// GET a config path: `Ok(None)` when a parent is missing, else the
    /// value (possibly `null`) and its ETag, for an `If-Match`. Caddy 2.7+
    /// sends the ETag as a header (its hash differs from 2.6's); Caddy 2.6
    /// sends it as a trailer, so kata computes it from the body.
    fn get_at(&self, path: &str) -> Result<Option<(Value, String)>, CaddyError> {
        match self.call_reply("GET", path, None, None) {
            Ok(r) => {
                let tag = r.etag.unwrap_or_else(|| etag(path, &r.body));
                Ok(Some((self.parse("GET", path, &r.body)?, tag)))
            }
            Err(e) if is_traversal_error(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The whole running config (`null` for a fresh Caddy).
    pub fn config(&self) -> Result<Value, CaddyError> {
        let raw = self.call("GET", "/config/", None, None)?;
        self.parse("GET", "/config/", &raw)
    }

    /// The app's view of its part (the shared server's `listen` and
    /// settings with the app's own routes), or its old per-app server.
    pub fn get_server(&self, app: &str) -> Result<Option<Value>, CaddyError> {
        name_ok(app)?;
        let config = self.config()?;
        Ok(shared::find(app, &config)
            .map_err(|r| self.refusal(r))?
            .map(|f| f.view))
    }

    /// The app's part alone, by its `@id` (`None` when Caddy has no object
    /// with that id): Caddy finds it in its id index, so the read does not
    /// grow with the other apps on the server.
    pub fn part(&self, app: &str) -> Result<Option<Value>, CaddyError> {
        name_ok(app)?;
        let path = format!("/id/{}", shared::part_id(app));
        match self.get_at(&path) {
            Err(CaddyError::Refused { body, .. }) if body.contains("unknown object ID") => Ok(None),
            other => Ok(other?.map(|(v, _)| v)),
        }
    }

    /// One field of one server (`listen`, `errors`, …), `None` when the
    /// server or the field is missing.
    pub fn server_field(&self, server: &str, field: &str) -> Result<Option<Value>, CaddyError> {
        // one path segment, as [`shared::server_name`] makes them
        let segment = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if !segment(server) || !segment(field) {
            return Err(CaddyError::BadName(format!("{server}/{field}")));
        }
        let got = self.get_at(&format!("{SERVERS}/{server}/{field}"))?;
        Ok(got.map(|(v, _)| v).filter(|v| !v.is_null()))
    }

    /// Every server under `apps.http.servers` (kata's and others).
    pub fn servers(&self) -> Result<Map<String, Value>, CaddyError> {
        match self.get_at(SERVERS)? {
            None | Some((Value::Null, _)) => Ok(Map::new()),
            Some((Value::Object(m), _)) => Ok(m),
            Some((other, _)) => Err(CaddyError::Protocol {
                endpoint: self.endpoint.to_string(),
                method: "GET".into(),
                path: SERVERS.into(),
                detail: format!("apps.http.servers is not an object: {other}"),
            }),
        }
    }

    fn refusal(&self, refusal: Refusal) -> CaddyError {
        CaddyError::Plan {
            endpoint: self.endpoint.to_string(),
            refusal: Box::new(refusal),
        }
    }

    /// Whether `name` is an app kata knows (it has state or a repo here).
    pub fn is_kata_app(&self, name: &str) -> bool {
        self.paths.as_ref().is_some_and(|p| {
            crate::names::is_app_name(name) && (p.state(name).is_dir() || p.repo(name).is_dir())
        })
    }

    /// Writes the app's server object (shorthand expanded, dials resolved)
    /// as its part of the shared server for its `listen` (see
    /// [`shared`]), under the lock. Returns what was done; a plan without
    /// calls means Caddy already ran exactly this. On any error what Caddy
    /// ran before is still what it runs.
    pub fn put_server(&self, app: &str, server: &Value) -> Result<Plan, CaddyError> {
        name_ok(app)?;
        let _lock = self.lock()?;
        let kata = |n: &str| n == app || self.is_kata_app(n);
        self.apply_with(|config| shared::plan_put(app, server, config, &kata))
    }

    /// Whether the app's server object could be written now: the same
    /// refusals as [`Admin::put_server`] (a host, the catch-all, a setting or
    /// an address another app has), without writing anything. Dials need not
    /// be resolved. For failing a deploy before its containers start.
    pub fn check_server(&self, app: &str, server: &Value) -> Result<(), CaddyError> {
        name_ok(app)?;
        let config = self.config()?;
        let kata = |n: &str| n == app || self.is_kata_app(n);
        shared::plan_put(app, server, &config, &kata)
            .map(|_| ())
            .map_err(|r| self.refusal(r))
    }

    /// Removes the app's part (and its old per-app server); returns whether
    /// there was anything to remove.
    pub fn delete_server(&self, app: &str) -> Result<bool, CaddyError> {
        name_ok(app)?;
        let _lock = self.lock()?;
        let plan = self.apply_with(|config| shared::plan_remove(app, config))?;
        Ok(!plan.is_noop())
    }

    /// Plans against the live config and runs the calls; plans again when
    /// a guarded call finds the config changed (another writer).
    fn apply_with(
        &self,
        planner: impl Fn(&Value) -> Result<Plan, Refusal>,
    ) -> Result<Plan, CaddyError> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let config = self.config()?;
            let plan = planner(&config).map_err(|r| self.refusal(r))?;
            match self.run(&plan.calls, &config) {
                Ok(true) => return Ok(plan),
                Ok(false) => {
                    last = plan
                        .calls
                        .first()
                        .map(|c| c.path.clone())
                        .unwrap_or_default()
                }
                Err(e) => return Err(e),
            }
        }
        Err(CaddyError::Conflict {
            endpoint: self.endpoint.to_string(),
            path: last,
            attempts: ATTEMPTS,
        })
    }

    /// Runs planned calls; `Ok(false)` when a guarded one found the config
    /// changed since `config` was read (nothing of it was applied then).
    fn run(&self, calls: &[Call], config: &Value) -> Result<bool, CaddyError> {
        for call in calls {
            let tag = if call.guarded {
                let pointer = call.pointer().unwrap_or_default();
                let expected = if pointer.is_empty() {
                    Some(config)
                } else {
                    config.pointer(&pointer)
                };
                match self.get_at(&call.path)? {
                    Some((now, tag)) if Some(&now) == expected => Some(tag),
                    _ => return Ok(false),
                }
            } else {
                None
            };
            match self.call(call.method, &call.path, call.body.as_ref(), tag.as_deref()) {
                Ok(_) => {}
                // 412: If-Match failed; a PUT found its key created meanwhile
                // (409 from Caddy 2.7+, 500 "key already exists" from 2.6)
                Err(CaddyError::Refused {
                    status: 412 | 409, ..
                }) => return Ok(false),
                Err(CaddyError::Refused {
                    status: 500, body, ..
                }) if call.method == "PUT" && body.contains("key already exists") => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// `GET /reverse_proxy/upstreams`: in-flight requests per upstream address
    /// across all of Caddy (for draining old containers).
    pub fn upstreams(&self) -> Result<Vec<UpstreamStatus>, CaddyError> {
        let path = "/reverse_proxy/upstreams";
        let raw = self.call("GET", path, None, None)?;
        serde_json::from_slice::<Option<Vec<UpstreamStatus>>>(&raw)
            .map(Option::unwrap_or_default)
            .map_err(|e| CaddyError::Protocol {
                endpoint: self.endpoint.to_string(),
                method: "GET".into(),
                path: path.into(),
                detail: format!("{e}: {}", String::from_utf8_lossy(&raw)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matches_caddy_2_6() {
        // values observed from Caddy 2.6.2's ETag trailers
        assert_eq!(
            etag(
                "/config/",
                b"{\"admin\":{\"listen\":\"127.0.0.1:42019\"}}\n"
            ),
            "\"/config/ 48eaae82\""
        );
        assert_eq!(
            etag("/config/apps/http/servers/nope", b"null\n"),
            "\"/config/apps/http/servers/nope 0e7c22ea\""
        );
    }

    /// A unix socket that answers one request with `answer` (written in
    /// small pieces) and returns the request it read.
    fn serve_once(
        dir: &std::path::Path,
        answer: &'static str,
    ) -> (PathBuf, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let sock = dir.join("admin.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            // the whole request, body included: closing on an unread body
            // would fail the client's write
            let complete = |req: &[u8]| {
                let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return false;
                };
                let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                req.len() >= end + 4 + len
            };
            while !complete(&req) {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request ended early");
                req.extend_from_slice(&buf[..n]);
            }
            for piece in answer.as_bytes().chunks(7) {
                s.write_all(piece).unwrap();
            }
            String::from_utf8(req).unwrap()
        });
        (sock, t)
    }

    #[test]
    fn unix_socket_chunked_answer_with_etag_trailer() {
        // Caddy 2.6's `GET /config/`: chunked, the ETag as a trailer
        let dir = tempfile::tempdir().unwrap();
        let (sock, t) = serve_once(
            dir.path(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTrailer: ETag\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\nEtag: \"/config/ 48eaae82\"\r\n\r\n",
        );
        let admin = Admin::new(Endpoint::Unix(sock));
        let (value, tag) = admin.get_at("/config/").unwrap().unwrap();
        assert_eq!(value, serde_json::json!({"a": 1}));
        // the trailer is dropped; the tag is computed from the body as 2.6 does
        assert_eq!(tag, etag("/config/", b"{\"a\":1}\n"));
        let req = t.join().unwrap().to_ascii_lowercase();
        assert!(req.starts_with("get /config/ http/1.1\r\n"), "{req}");
        // the empty Host Caddy 2.6 allows on a unix socket
        assert!(req.contains("\r\nhost: \r\n"), "{req}");
    }

    #[test]
    fn unix_socket_etag_header_and_error_status() {
        // Caddy 2.11: the ETag as a header, which wins over the computed one
        let dir = tempfile::tempdir().unwrap();
        let (sock, t) = serve_once(
            dir.path(),
            "HTTP/1.1 200 OK\r\nEtag: \"/config/apps 1234\"\r\nContent-Length: 5\r\n\r\nnull\n",
        );
        let admin = Admin::new(Endpoint::Unix(sock));
        let got = admin.get_at("/config/apps").unwrap().unwrap();
        assert_eq!(got, (Value::Null, "\"/config/apps 1234\"".to_owned()));
        t.join().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let (sock, t) = serve_once(
            dir.path(),
            "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"error\":1}",
        );
        let admin = Admin::new(Endpoint::Unix(sock.clone()));
        let e = admin
            .call(
                "POST",
                "/config/x",
                Some(&serde_json::json!({})),
                Some("\"t\""),
            )
            .unwrap_err();
        assert!(
            matches!(&e, CaddyError::Refused { status: 412, body, .. } if body == "{\"error\":1}"),
            "{e}"
        );
        let req = t.join().unwrap().to_ascii_lowercase();
        assert!(req.contains("\r\nif-match: \"t\"\r\n"), "{req}");
        assert!(req.contains("\r\ncontent-length: 2\r\n"), "{req}");
    }

    #[test]
    fn unix_socket_silence_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let admin = Admin::new(Endpoint::Unix(sock)).with_timeout(Duration::from_millis(300));
        let e = admin.config().unwrap_err();
        assert!(matches!(e, CaddyError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("timeout"), "{e}");
        drop(listener);
    }

    #[test]
    fn names_are_checked() {
        assert!(name_ok("my-app").is_ok());
        for bad in ["../x", "a/b", "", "A", "kata.x"] {
            assert!(matches!(name_ok(bad), Err(CaddyError::BadName(_))), "{bad}");
        }
    }

    #[test]
    fn lock_is_reentrant_in_a_thread_and_exclusive_across_threads() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state/caddy.lock");
        let admin =
            Admin::new(Endpoint::parse("http://127.0.0.1:1").unwrap()).with_lock_file(&file);
        let outer = admin.lock().unwrap();
        let inner = admin.lock().unwrap(); // same thread: no self-deadlock
        let got = Arc::new(AtomicBool::new(false));
        let (admin2, got2) = (admin.clone(), got.clone());
        let t = std::thread::spawn(move || {
            let _l = admin2.lock().unwrap();
            got2.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!got.load(Ordering::SeqCst), "other thread must wait");
        drop(inner);
        std::thread::sleep(Duration::from_millis(150));
        assert!(!got.load(Ordering::SeqCst), "inner guard does not release");
        drop(outer);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        // without a lock file: a no-op guard
        let _free = Admin::new(Endpoint::parse("http://127.0.0.1:1").unwrap())
            .lock()
            .unwrap();
    }

    #[test]
    fn unreachable_names_the_endpoint() {
        // a port nobody listens on: bind, learn the port, close
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let admin = Admin::new(Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap());
        let e = admin.get_server("app").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "Caddy admin API at http://127.0.0.1:{port} is unreachable: "
            )),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let admin = Admin::new(Endpoint::Unix(sock.clone()));
        let e = admin.servers().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "Caddy admin API at unix/{} is unreachable: ",
                sock.display()
            )),
            "{e}"
        );
    }
}
