//! Several apps on one shared address, at its edges, on both Caddy versions
//! (real `git push` deploys, real Docker, a real Caddy each):
//!
//! - HTTPS: each app answers over TLS for its own SNI name with a
//!   certificate from Caddy's internal issuer, and its http→https redirect
//!   is its own.
//! - Streams: an upgraded connection (a WebSocket) opened before a deploy of
//!   its own app, and before a deploy of another app on the same address,
//!   is still open after on the current Caddy (`stream_close_delay`); Caddy
//!   2.6 closes it, and kata says so.

use crate::support::caddy::{Caddy, is_2_6, on_both, wait_routed};
use crate::support::images::{self, BUSYBOX};
use crate::support::push::LocalApp;
use crate::support::{Kata, engine_shared, free_port, unique, wait_for};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn kata_for(endpoint: &str) -> Kata {
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", endpoint]).success();
    kata
}

/// Services `web` (serving `www/`) and `api` (serving `api/`), busybox httpd
/// on 8080 each, and `caddy` (YAML lines indented by two).
fn yaml(caddy: &str) -> String {
    let svc = |name: &str, dir: &str| {
        format!(
            "  {name}:\n    image: {BUSYBOX}\n    command: httpd -f -p 8080 -h /app/{dir}\n    volumes:\n      - app:/app\n"
        )
    };
    format!(
        "services:\n{}{}caddy:\n{caddy}",
        svc("web", "www"),
        svc("api", "api")
    )
}

fn commit(app: &LocalApp, caddy: &str, body: &str) {
    app.write("kata-compose.yaml", &yaml(caddy))
        .write("www/index.html", body)
        .write("api/index.html", &format!("api {body}"))
        .commit(body);
}

// ---------------------------------------------------------------------------
// HTTPS

/// A TLS automation policy written by hand, for a host no app claims.
fn handmade_policy() -> Value {
    json!({"subjects": ["hand.test"], "issuers": [{"module": "internal"}]})
}

/// Points Caddy's HTTP and HTTPS ports at `http`/`https` (so that automatic
/// HTTPS serves TLS on `https` and plain HTTP on `http`) and adds a
/// hand-made TLS policy for another host; certificates for the apps' hosts
/// come from Caddy's internal CA only through the apps' own policies
/// (`https.issuer: internal`; no ACME is reachable). The CA is not
/// installed into the system's trust store. One `POST /load` of the
/// running config with these added (Caddy 2.6 drops admin connections on
/// each reload). Returns the CA's root certificate file.
fn internal_tls(caddy: &Caddy, http: u16, https: u16) -> std::path::PathBuf {
    let mut config = caddy.config();
    config["apps"]["http"]["http_port"] = json!(http);
    config["apps"]["http"]["https_port"] = json!(https);
    config["apps"]["tls"] = json!({"automation": {"policies": [handmade_policy()]}});
    config["apps"]["pki"] = json!({"certificate_authorities": {"local": {"install_trust": false}}});
    let url = format!("{}/load", caddy.endpoint());
    ureq::post(&url)
        .content_type("application/json")
        .send(config.to_string())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let url = format!("{}/pki/ca/local", caddy.endpoint());
    let mut answer = None;
    wait_for("Caddy's local CA", Duration::from_secs(30), || {
        answer = ureq::get(&url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok());
        answer.is_some()
    });
    let ca: Value = serde_json::from_str(&answer.unwrap()).expect("CA JSON");
    let root = caddy.dir().join("root.pem");
    std::fs::write(&root, ca["root_certificate"].as_str().expect("root PEM")).unwrap();
    root
}

/// What curl got: status and `Location`, body; None when the request failed
/// (TLS handshake or verification included), with curl's words.
fn curl(
    url: &str,
    host: &str,
    port: u16,
    ca: Option<&std::path::Path>,
) -> Result<(u16, String, String), String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "20", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"));
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.arg(url).output().expect("curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, location, body.to_owned()))
}

/// `https://host:port/` answers `want` over TLS with SNI `host`, verified
/// against Caddy's internal root (waits for the certificate to be issued).
fn wait_https(host: &str, port: u16, ca: &std::path::Path, want: &str) {
    let url = format!("https://{host}:{port}/");
    let mut last = Err(String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        last = curl(&url, host, port, Some(ca));
        if matches!(&last, Ok((200, _, body)) if body.trim() == want) {
            return;
        }
        thread::sleep(Duration::from_millis(250));
    }
    panic!("{url} never answered {want:?}: {last:?}");
}

/// Three apps on one pair of addresses, each with its own host names, as the
/// spec's `https:` examples write them: the shorthand with `https: {enabled,
/// redirect}`, routes for two hosts with `https: {enabled, domains}`
/// (redirect by default), and `https: {enabled: true, redirect: false}`,
/// each with `issuer: internal`. Each answers over TLS for its own SNI names
/// only, with a certificate its own TLS automation policy (`@id`
/// `kata.<app>.tls`, subjects its hosts) had issued; plain HTTP redirects
/// for the first two apps' hosts, not for the third's. A redeploy and an
/// `rm` of one app replace and remove its policy only: the hand-made one
/// and the other apps' stay byte for byte.
#[test]
fn https_for_several_apps_on_one_address_with_the_internal_issuer() {
    images::ensure_test_images();
    let _engine = engine_shared();
    on_both(|| {
        let caddy = Caddy::with_handmade();
        let (hp, sp) = (free_port(), free_port());
        let ca = internal_tls(&caddy, hp, sp);
        let kata = kata_for(caddy.endpoint());
        let listen = format!("[\"127.0.0.1:{hp}\", \"127.0.0.1:{sp}\"]");

        let short = LocalApp::new(&kata, &unique("tlsa"));
        let a = format!("{}.test", short.name);
        commit(
            &short,
            &format!(
                "  domains: [{a}]\n  service: web\n  port: 8080\n  listen: {listen}\n  https:\n    enabled: true\n    redirect: true\n    issuer: internal\n"
            ),
            "A",
        );
        let routes = LocalApp::new(&kata, &unique("tlsb"));
        let (b, api) = (
            format!("{}.test", routes.name),
            format!("api.{}.test", routes.name),
        );
        commit(
            &routes,
            &format!(
                "  listen: {listen}\n  routes:\n    - match:\n        - host: [\"{api}\"]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: \"api:8080\"\n    - match:\n        - host: [\"{b}\"]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: \"web:8080\"\n  https:\n    enabled: true\n    issuer: internal\n    domains: [\"{b}\", \"{api}\"]\n"
            ),
            "B",
        );
        let plain = LocalApp::new(&kata, &unique("tlsc"));
        let c = format!("{}.test", plain.name);
        commit(
            &plain,
            &format!(
                "  domains: [{c}]\n  service: web\n  port: 8080\n  listen: {listen}\n  https:\n    enabled: true\n    redirect: false\n    issuer: internal\n"
            ),
            "C",
        );
        for app in [&short, &routes, &plain] {
            app.push_ok();
        }

        wait_https(&a, sp, &ca, "A");
        wait_https(&b, sp, &ca, "B");
        wait_https(&api, sp, &ca, "api B");
        wait_https(&c, sp, &ca, "C");

        // SNI picks the certificate: a name no app claims gets none, and a
        // certificate for one app's name is not valid for another's
        let stranger = curl(&format!("https://x.test:{sp}/"), "x.test", sp, Some(&ca));
        assert!(stranger.is_err(), "{stranger:?}");

        for (host, want) in [(&a, true), (&b, true), (&api, true), (&c, false)] {
            let url = format!("http://{host}:{hp}/page?q=1");
            let (status, location, body) = curl(&url, host, hp, None).unwrap();
            if want {
                assert_eq!(status, 308, "{host}: {body}");
                assert_eq!(location, format!("https://{host}/page?q=1"));
            } else {
                assert_eq!(
                    status, 404,
                    "{host} (no such page, but no redirect): {body}"
                );
                assert_eq!(location, "");
            }
        }
        let (status, _, body) = curl(&format!("http://{c}:{hp}/"), &c, hp, None).unwrap();
        assert_eq!((status, body.trim()), (200, "C"));

        // all three are parts of one shared server listening on both
        let servers = caddy.config()["apps"]["http"]["servers"].clone();
        let shared: Vec<&String> = servers
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("kata."))
            .collect();
        assert_eq!(shared.len(), 1, "{servers}");
        let ids: Vec<String> = servers[shared[0].as_str()]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["@id"].as_str().map(str::to_owned))
            .collect();
        for app in [&short, &routes, &plain] {
            assert!(ids.contains(&format!("kata.{}", app.name)), "{ids:?}");
        }

        // each app's own TLS policy, after the hand-made one
        let policies = || caddy.config()["apps"]["tls"]["automation"]["policies"].clone();
        let expected = json!([
            handmade_policy(),
            {"@id": format!("kata.{}.tls", short.name), "subjects": [a], "issuers": [{"module": "internal"}]},
            {"@id": format!("kata.{}.tls", routes.name), "subjects": [b, api], "issuers": [{"module": "internal"}]},
            {"@id": format!("kata.{}.tls", plain.name), "subjects": [c], "issuers": [{"module": "internal"}]},
        ]);
        assert_eq!(policies(), expected);
        // Caddy's own text of them, to compare byte for byte
        let text = |v: &Value| serde_json::to_string(v).unwrap();
        let before = policies();

        // a redeploy of one app keeps the others' TLS answering
        commit(
            &plain,
            &format!(
                "  domains: [{c}]\n  service: web\n  port: 8080\n  listen: {listen}\n  https:\n    enabled: true\n    redirect: false\n    issuer: internal\n"
            ),
            "C2",
        );
        plain.push_ok();
        wait_https(&c, sp, &ca, "C2");
        wait_https(&a, sp, &ca, "A");
        wait_https(&api, sp, &ca, "api B");
        assert_eq!(
            text(&policies()),
            text(&before),
            "an unchanged policy is not rewritten"
        );

        // new host names replace the app's policy (by its @id) and nothing else
        let c2 = format!("www.{c}");
        commit(
            &plain,
            &format!(
                "  domains: [{c}, {c2}]\n  service: web\n  port: 8080\n  listen: {listen}\n  https:\n    enabled: true\n    redirect: false\n    issuer: internal\n"
            ),
            "C3",
        );
        plain.push_ok();
        wait_https(&c2, sp, &ca, "C3");
        let mut want = expected.clone();
        want[3]["subjects"] = json!([c, c2]);
        let now = policies();
        assert_eq!(now, want);
        for i in 0..3 {
            assert_eq!(text(&now[i]), text(&before[i]), "policy {i}");
        }

        // rm takes the app's policy with its part; the rest stays as it was
        kata.args(["rm", "-f", &routes.name]).success();
        let after = policies();
        assert_eq!(
            after
                .as_array()
                .unwrap()
                .iter()
                .map(text)
                .collect::<Vec<_>>(),
            [text(&now[0]), text(&now[1]), text(&now[3])]
        );
        wait_https(&a, sp, &ca, "A");
        wait_https(&c, sp, &ca, "C3");
    });
}

// ---------------------------------------------------------------------------
// Streams

/// A backend on 127.0.0.1 that switches every request to an upgraded
/// stream (`101 Switching Protocols`, `Upgrade: websocket`) and then echoes
/// each line back as `echo <line>`. Stops on drop.
struct UpgradeBackend {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl UpgradeBackend {
    fn start() -> UpgradeBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let stop = stop2.clone();
                thread::spawn(move || echo_stream(conn, &stop));
            }
        });
        UpgradeBackend { port, stop }
    }
}

fn echo_stream(conn: TcpStream, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if w.write_all(format!("echo {line}").as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for UpgradeBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A client's upgraded connection through Caddy.
struct Stream {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Stream {
    /// `GET /ws` with an upgrade to `websocket` on 127.0.0.1:`port` for `host`;
    /// panics unless it is switched.
    fn open(port: u16, host: &str) -> Stream {
        let w = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut s = Stream {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        };
        write!(
            s.w,
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut status = String::new();
        s.r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 101"), "{host}/ws: {status}");
        let mut line = String::new();
        while s.r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            line.clear();
        }
        s
    }

    /// Sends `msg` and waits for its echo: whether the stream still carries
    /// data both ways.
    fn echoes(&mut self, msg: &str) -> bool {
        if writeln!(self.w, "{msg}").is_err() {
            return false;
        }
        let mut line = String::new();
        matches!(self.r.read_line(&mut line), Ok(n) if n > 0)
            && line.trim() == format!("echo {msg}")
    }

    /// Whether the other side closed the stream (EOF or reset) within 20 s.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// App `a` proxies `/ws` to the upgrade backend and everything else to
/// web; app `b` is another app on the same address. A stream opened before
/// a redeploy of `a`, and (re)opened before a redeploy of `b`, still echoes
/// afterwards on the current Caddy; on Caddy 2.6 each deploy closes it and
/// the deploy says why.
#[test]
fn streams_stay_open_across_deploys_of_their_own_and_other_apps() {
    images::ensure_test_images();
    let _engine = engine_shared();
    on_both(|| {
        let caddy = Caddy::start();
        let kata = kata_for(caddy.endpoint());
        let backend = UpgradeBackend::start();
        let port = free_port();
        let a = LocalApp::new(&kata, &unique("wsa"));
        let b = LocalApp::new(&kata, &unique("wsb"));
        let (ha, hb) = (format!("{}.test", a.name), format!("{}.test", b.name));
        let a_caddy = format!(
            "  listen: [\"127.0.0.1:{port}\"]\n  automatic_https:\n    disable: true\n  routes:\n\
             \x20   - match:\n        - host: [{ha}]\n          path: [/ws]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: \"127.0.0.1:{}\"\n\
             \x20   - match:\n        - host: [{ha}]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: web:8080\n",
            backend.port
        );
        let b_caddy = format!(
            "  domains: [{hb}]\n  service: web\n  port: 8080\n  https: false\n  listen: [\"127.0.0.1:{port}\"]\n"
        );
        commit(&a, &a_caddy, "a1");
        a.push_ok();
        commit(&b, &b_caddy, "b1");
        b.push_ok();
        wait_routed(port, &ha, "a1");
        wait_routed(port, &hb, "b1");
        let old_caddy = is_2_6();

        let mut stream = Stream::open(port, &ha);
        assert!(stream.echoes("before"));
        commit(&a, &a_caddy, "a2");
        let own = a.push_ok();
        wait_routed(port, &ha, "a2");
        if old_caddy {
            assert!(
                own.stderr.contains("predates stream_close_delay"),
                "{}",
                own.stderr
            );
            assert!(stream.closed(), "Caddy 2.6 closes streams on reload");
            // the refusal is remembered: later writes are sent once
            let memo = kata.path("state/caddy-without-stream-close-delay");
            let memo = std::fs::read_to_string(memo).unwrap();
            assert_eq!(memo.trim(), caddy.endpoint());
            stream = Stream::open(port, &ha);
        } else {
            assert!(!kata.path("state/caddy-without-stream-close-delay").exists());
            assert!(
                stream.echoes("after its own app's deploy"),
                "the stream was closed by the deploy of its app"
            );
        }

        assert!(stream.echoes("before the other app"));
        commit(&b, &b_caddy, "b2");
        b.push_ok();
        wait_routed(port, &hb, "b2");
        if old_caddy {
            assert!(stream.closed(), "Caddy 2.6 closes streams on reload");
            // the refusal is remembered: later writes are sent once
            let memo = kata.path("state/caddy-without-stream-close-delay");
            let memo = std::fs::read_to_string(memo).unwrap();
            assert_eq!(memo.trim(), caddy.endpoint());
        } else {
            assert!(
                stream.echoes("after the other app's deploy"),
                "the stream was closed by another app's deploy"
            );
            // and kata wrote the delay on the app's proxies
            let text = caddy.config().to_string();
            assert!(text.contains("\"stream_close_delay\""), "{text}");
        }
    });
}
