//! The admin API client (shell). kata owns exactly `apps.http.servers.<app>`:
//! every write is one targeted call on that path or, when its parents are
//! missing, one call on the deepest existing parent that creates the missing
//! parents *and* the server together. So a write is all-or-nothing: Caddy
//! applies each change atomically (a rejected config leaves the running one
//! in place), and no empty parent is ever left behind by a refused write.
//! Nothing is ever written with `/load` or by replacing a non-null config.
//!
//! Optimistic concurrency: creating a missing parent is conditional on the
//! parent still being `null`/absent, using Caddy's `If-Match` (its ETag is
//! `"<path> <FNV-32a of the body GET returned>"`, which kata computes from
//! the body itself because Caddy 2.6 sends the ETag as a trailer). A 412 means
//! someone else just created it: kata re-reads and retries. On top of that,
//! kata's own writes are serialised host-wide by a lock file (see
//! [`Admin::with_lock_file`]).
//!
//! Deleting an app's server leaves `apps.http.servers` in place (possibly
//! `{}`), which Caddy treats as "no servers": harmless.
//!
//! Listen addresses: Caddy runs one server per listen address. It refuses an
//! exact repeat (`:80` in two servers), but accepts overlapping ones (`:8080`
//! and `127.0.0.1:8080`), and then the more specific one silently takes the
//! other's requests. So before writing, `put_server` compares the app's
//! `listen` with every other server in the live config (under the lock) and
//! refuses any overlap, naming the server (app) that has the address;
//! nothing is sent then.

use super::http1;
use super::listen::conflicts;
use super::{CaddyError, Endpoint, EndpointError};
use crate::lock::Lock;
use crate::paths::Paths;
use crate::settings::Settings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

const SERVERS: &str = "/config/apps/http/servers";
/// The parents of a server, from the root down; index i ↔ path `/config/` + first i joined.
const PARENTS: [&str; 3] = ["apps", "http", "servers"];
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
    agent: Option<ureq::Agent>,
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

fn server_path(name: &str) -> Result<String, CaddyError> {
    if crate::names::is_app_name(name) {
        Ok(format!("{SERVERS}/{name}"))
    } else {
        Err(CaddyError::BadName(name.to_owned()))
    }
}

/// `{"a": {"b": {...leaf}}}` for keys `[a, b]`.
fn nest(keys: &[&str], leaf: Value) -> Value {
    keys.iter().rev().fold(leaf, |acc, k| json!({ *k: acc }))
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
        let agent = match endpoint {
            Endpoint::Http { .. } => Some(Self::agent(timeout)),
            Endpoint::Unix(_) => None,
        };
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

    fn agent(timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .max_idle_connections(0)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .build()
            .into()
    }

    /// Limit for each admin call (connect + send + whole answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        if self.agent.is_some() {
            self.agent = Some(Self::agent(timeout));
        }
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
        let lock = crate::lock::exclusive(path, || {
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
        match &self.endpoint {
            Endpoint::Unix(socket) => {
                let mut headers = vec![];
                if body.is_some() {
                    headers.push(("Content-Type", "application/json"));
                }
                if let Some(tag) = if_match {
                    headers.push(("If-Match", tag));
                }
                let r = http1::unix_request(socket, method, path, &headers, body, self.timeout)
                    .map_err(|e| (Some(e.kind()), e.to_string()))?;
                Ok(Reply {
                    status: r.status,
                    body: r.body,
                    etag: r.etag,
                })
            }
            Endpoint::Http { .. } => {
                let agent = self.agent.as_ref().expect("http endpoint has an agent");
                let url = format!("{}{path}", self.endpoint);
                let mut req = ureq::http::Request::builder()
                    .method(method)
                    .uri(&url)
                    .header("Accept", "application/json");
                if let Some(tag) = if_match {
                    req = req.header("If-Match", tag);
                }
                let result = match body {
                    Some(b) => agent.run(
                        req.header("Content-Type", "application/json")
                            .body(b)
                            .map_err(|e| fail(&e))?,
                    ),
                    None => agent.run(req.body(()).map_err(|e| fail(&e))?),
                };
                let ureq_fail = |e: ureq::Error| match e {
                    ureq::Error::Io(io) => (Some(io.kind()), io.to_string()),
                    other => (None, other.to_string()),
                };
                let mut resp = result.map_err(ureq_fail)?;
                let status = resp.status().as_u16();
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
        }
    }

    /// One call; any non-2xx answer becomes `Refused` with Caddy's body verbatim.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Vec<u8>, CaddyError> {
        self.call_reply(method, path, body, if_match).map(|r| r.body)
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

    /// The app's live server object, if it has one.
    pub fn get_server(&self, app: &str) -> Result<Option<Value>, CaddyError> {
        let path = server_path(app)?;
        Ok(self.get_at(&path)?.map(|(v, _)| v).filter(|v| !v.is_null()))
    }

    /// Every server under `apps.http.servers` (kata's apps and others).
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

    /// Creates or replaces `apps.http.servers.<app>` with `server`, creating
    /// missing parents in the same single request. On any error the previous
    /// server (or its absence) is still what Caddy runs.
    pub fn put_server(&self, app: &str, server: &Value) -> Result<(), CaddyError> {
        let path = server_path(app)?;
        let _lock = self.lock()?;
        for _ in 0..ATTEMPTS {
            if self.try_put(app, &path, server)? {
                return Ok(());
            }
        }
        Err(CaddyError::Conflict {
            endpoint: self.endpoint.to_string(),
            path,
            attempts: ATTEMPTS,
        })
    }

    /// One attempt; `Ok(false)` when the config changed under us (retry).
    fn try_put(&self, app: &str, path: &str, server: &Value) -> Result<bool, CaddyError> {
        // Find the deepest existing parent, starting from `servers`.
        for depth in (0..=PARENTS.len()).rev() {
            let parent = format!("/config/{}", PARENTS[..depth].join("/"));
            let Some((value, tag)) = self.get_at(&parent)? else {
                continue; // its own parent is missing: look one level up
            };
            return match value {
                // `servers` exists: one call on exactly our key (creates or replaces).
                Value::Object(others) if depth == PARENTS.len() => {
                    self.check_listen(app, server, &others)?;
                    self.call("POST", path, Some(server), None)?;
                    Ok(true)
                }
                // This level is null/absent: fill it with the missing parents
                // and our server, only if it is still null (If-Match).
                Value::Null => {
                    let mut keys: Vec<&str> = PARENTS[depth..].to_vec();
                    keys.push(app);
                    let body = nest(&keys, server.clone());
                    match self.call("POST", &parent, Some(&body), Some(&tag)) {
                        Ok(_) => Ok(true),
                        Err(CaddyError::Refused { status: 412, .. }) => Ok(false),
                        Err(e) => Err(e),
                    }
                }
                // It appeared between two reads: start over.
                Value::Object(_) => Ok(false),
                other => Err(CaddyError::Protocol {
                    endpoint: self.endpoint.to_string(),
                    method: "GET".into(),
                    path: parent.clone(),
                    detail: format!("expected an object or null, found {other}"),
                }),
            };
        }
        // Even GET /config/ said "missing": not a Caddy admin API we understand.
        Err(CaddyError::Protocol {
            endpoint: self.endpoint.to_string(),
            method: "GET".into(),
            path: "/config/".into(),
            detail: "the config root is not readable".into(),
        })
    }

    /// Refuses a `listen` address that overlaps one of another server.
    fn check_listen(
        &self,
        app: &str,
        server: &Value,
        servers: &Map<String, Value>,
    ) -> Result<(), CaddyError> {
        let Some(c) = conflicts(app, server, servers).into_iter().next() else {
            return Ok(());
        };
        let kata_app = self.paths.as_ref().is_some_and(|p| {
            crate::names::is_app_name(&c.server)
                && (p.state(&c.server).is_dir() || p.repo(&c.server).is_dir())
        });
        let owner = if kata_app {
            format!("app {:?}", c.server)
        } else {
            format!(
                "Caddy server {:?} (apps.http.servers.{})",
                c.server, c.server
            )
        };
        Err(CaddyError::ListenTaken {
            endpoint: self.endpoint.to_string(),
            address: c.address,
            owner,
            theirs: c.theirs,
        })
    }

    /// Removes `apps.http.servers.<app>`; returns whether it existed.
    /// Absent (or no `apps.http` at all) is fine.
    pub fn delete_server(&self, app: &str) -> Result<bool, CaddyError> {
        let path = server_path(app)?;
        let _lock = self.lock()?;
        if self.get_at(&path)?.is_none_or(|(v, _)| v.is_null()) {
            return Ok(false);
        }
        match self.call("DELETE", &path, None, None) {
            Ok(_) => Ok(true),
            Err(e) if is_traversal_error(&e) => Ok(false),
            Err(e) => Err(e),
        }
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

    #[test]
    fn nesting_and_names() {
        assert_eq!(
            nest(&["apps", "http", "servers", "a"], json!(1)),
            json!({"apps": {"http": {"servers": {"a": 1}}}})
        );
        assert_eq!(nest(&[], json!(1)), json!(1));
        assert_eq!(
            server_path("my-app").unwrap(),
            "/config/apps/http/servers/my-app"
        );
        for bad in ["../x", "a/b", "", "A"] {
            assert!(
                matches!(server_path(bad), Err(CaddyError::BadName(_))),
                "{bad}"
            );
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
