//! Caddy routing through the admin API, against a real Caddy (2.6.2 here):
//! each test starts its own on free loopback ports.

use crate::support::caddy::{Backend, Caddy, http_get, proxy_server, wait_routed};
use crate::support::{Kata, free_port, unique};
use kata::caddy::{Admin, CaddyError, Endpoint, expand, resolve_upstreams, validate};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn servers_of(config: &Value) -> Value {
    config["apps"]["http"]["servers"].clone()
}

#[test]
fn put_server_creates_parents_and_routes_to_a_backend() {
    let caddy = Caddy::start();
    let admin = caddy.admin();
    let before = caddy.config();
    assert!(before.get("apps").is_none(), "{before}");

    let backend = Backend::start("hello from backend");
    let app = unique("routed");
    let port = free_port();
    let server = proxy_server(port, "app.test", &backend.addr());
    admin.put_server(&app, &server).unwrap();

    // exactly our server was added; admin untouched
    let mut expected = before.clone();
    expected["apps"] = json!({"http": {"servers": {app.clone(): server.clone()}}});
    assert_eq!(caddy.config(), expected);
    assert_eq!(admin.get_server(&app).unwrap(), Some(server.clone()));

    wait_routed(port, "app.test", "hello from backend");

    assert!(admin.delete_server(&app).unwrap());
    assert_eq!(admin.get_server(&app).unwrap(), None);
    assert!(
        !admin.delete_server(&app).unwrap(),
        "second delete is a no-op"
    );
    // documented: the (now empty) parents stay; harmless
    assert_eq!(servers_of(&caddy.config()), json!({}));
}

/// `GET /config/` → `null` needs Caddy without any config, whose admin then
/// listens on the fixed localhost:2019. To stay parallel-safe this runs the
/// real test in a private network namespace (`unshare -rn`), where
/// localhost:2019 belongs to this test alone.
#[test]
fn fresh_caddy_with_null_config() {
    let probe = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: unshare -rn is not available here");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args([
            "caddy::null_config_in_private_netns",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KATA_TEST_IN_NETNS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
#[ignore = "started by fresh_caddy_with_null_config inside a private network namespace"]
fn null_config_in_private_netns() {
    if std::env::var_os("KATA_TEST_IN_NETNS").is_none() {
        eprintln!("SKIP: only meaningful inside fresh_caddy_with_null_config's namespace");
        return;
    }
    let caddy = Caddy::start_null();
    let admin = caddy.admin();
    assert_eq!(caddy.config(), Value::Null);

    // refused on a null config: still null afterwards
    let app = unique("nullcfg");
    let port = free_port();
    let mut bad = proxy_server(port, "null.test", "127.0.0.1:1");
    bad["routes"][0]["handle"][0]["handler"] = json!("nope");
    let e = admin.put_server(&app, &bad).unwrap_err();
    assert!(matches!(e, CaddyError::Refused { .. }), "{e}");
    assert_eq!(caddy.config(), Value::Null);

    let backend = Backend::start("from null");
    let server = proxy_server(port, "null.test", &backend.addr());
    admin.put_server(&app, &server).unwrap();
    assert_eq!(
        caddy.config(),
        json!({"apps": {"http": {"servers": {app.clone(): server}}}})
    );
    wait_routed(port, "null.test", "from null");
    assert!(admin.delete_server(&app).unwrap());
    assert_eq!(caddy.config(), json!({"apps": {"http": {"servers": {}}}}));
}

#[test]
fn other_apps_and_handmade_servers_survive_writes_and_deletes() {
    let caddy = Caddy::with_handmade();
    let handmade_port = caddy.handmade_port.unwrap();
    let admin = caddy.admin();

    let other_backend = Backend::start("other app");
    let other = unique("other");
    let other_port = free_port();
    admin
        .put_server(
            &other,
            &proxy_server(other_port, "other.test", &other_backend.addr()),
        )
        .unwrap();
    let before = caddy.config();

    let app = unique("mine");
    let port = free_port();
    let v1 = Backend::start("release 1");
    admin
        .put_server(&app, &proxy_server(port, "mine.test", &v1.addr()))
        .unwrap();
    wait_routed(port, "mine.test", "release 1");

    // redeploy: the app's server is replaced, nothing else changes
    let v2 = Backend::start("release 2");
    let server2 = proxy_server(port, "mine.test", &v2.addr());
    admin.put_server(&app, &server2).unwrap();
    wait_routed(port, "mine.test", "release 2");
    let mut expected = before.clone();
    expected["apps"]["http"]["servers"][&app] = server2;
    assert_eq!(caddy.config(), expected);

    assert!(admin.delete_server(&app).unwrap());
    assert_eq!(
        caddy.config(),
        before,
        "rm leaves everything else as it was"
    );
    wait_routed(handmade_port, "x.test", "handmade");
    wait_routed(other_port, "other.test", "other app");
}

#[test]
fn invalid_server_is_refused_verbatim_and_nothing_stays_half_applied() {
    let caddy = Caddy::with_handmade();
    let admin = caddy.admin();
    let backend = Backend::start("still here");
    let app = unique("valid");
    let port = free_port();
    let good = proxy_server(port, "valid.test", &backend.addr());
    admin.put_server(&app, &good).unwrap();
    let before = caddy.config();

    // a rejected replacement leaves the previous server running
    let mut bad = good.clone();
    bad["routes"][0]["handle"][0]["handler"] = json!("nope");
    let e = admin.put_server(&app, &bad).unwrap_err();
    let msg = e.to_string();
    match &e {
        CaddyError::Refused { status, body, .. } => {
            assert_eq!(*status, 500);
            assert!(
                body.starts_with("{\"error\":\"loading new config:"),
                "{body}"
            );
            assert!(
                body.contains("unknown module: http.handlers.nope"),
                "{body}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(msg.contains(caddy.endpoint()), "{msg}");
    assert_eq!(caddy.config(), before);
    wait_routed(port, "valid.test", "still here");

    // another server on the same address, or on an overlapping one (which
    // Caddy itself would accept, letting the more specific one take every
    // request): refused by kata before sending, naming the owner
    for listen in [format!("127.0.0.1:{port}"), format!(":{port}")] {
        let clash = unique("clash");
        let mut server = proxy_server(port, "clash.test", &backend.addr());
        server["listen"] = json!([listen]);
        let e = admin.put_server(&clash, &server).unwrap_err();
        assert!(matches!(e, CaddyError::Plan { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "caddy.listen: {listen:?} is already taken by Caddy server {app:?} \
                 (apps.http.servers.{app}), which listens on \"127.0.0.1:{port}\"; \
                 Caddy runs one server per listen address, so give this app an address \
                 of its own (nothing was sent to Caddy at {})",
                caddy.endpoint()
            )
        );
        assert_eq!(caddy.config(), before);
    }
    // the app itself may keep its address (a redeploy)
    admin.put_server(&app, &good).unwrap();
    assert_eq!(caddy.config(), before);

    // a refused first write on a Caddy without `apps` creates no parents
    let bare = Caddy::start();
    let bare_before = bare.config();
    let e = bare.admin().put_server(&app, &bad).unwrap_err();
    assert!(matches!(e, CaddyError::Refused { .. }), "{e}");
    assert_eq!(bare.config(), bare_before);
}

#[test]
fn invalid_server_object_is_caught_before_sending_with_the_key_path() {
    let yaml = "caddy:\n  listen: [\"127.0.0.1:1\"]\n  routes:\n    - match: [{host: [a.test]}]\n      handle:\n        - upstreams: [{dial: \"web:80\"}]\n";
    let doc: kata::yaml::Node = serde_saphyr::from_str(yaml).unwrap();
    let kata::yaml::Value::Map(m) = &doc.value else {
        panic!()
    };
    let issues = validate(&m["caddy"]);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].path, "caddy.routes[0].handle[0].handler");
    assert_eq!(issues[0].pos.line, 6);

    let e = expand(json!({"service": "web", "port": "http"}), "app").unwrap_err();
    assert_eq!(
        e.to_string(),
        "caddy.port: expected a port number 1-65535, found \"http\""
    );
}

#[test]
fn caddy_down_gives_an_error_naming_the_endpoint() {
    let mut caddy = Caddy::start();
    let endpoint = caddy.endpoint().to_owned();
    let admin = caddy.admin();
    caddy.stop();
    let server = proxy_server(free_port(), "down.test", "127.0.0.1:1");
    for e in [
        admin.put_server("down", &server).unwrap_err(),
        admin.delete_server("down").unwrap_err(),
        admin.get_server("down").unwrap_err(),
        admin.upstreams().unwrap_err(),
    ] {
        assert!(matches!(e, CaddyError::Unreachable { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("Caddy admin API at {endpoint} is unreachable")),
            "{msg}"
        );
    }

    // through the CLI, with the endpoint from the environment
    let k = Kata::new();
    let o = k
        .args(["config:caddy", "down"])
        .env("KATA_CADDY_ADMIN", &endpoint)
        .failure();
    assert!(o.stderr.contains(&endpoint), "{}", o.stderr);
    let o = k
        .arg("caddy:ls")
        .env("KATA_CADDY_ADMIN", &endpoint)
        .failure();
    assert!(o.stderr.contains(&endpoint), "{}", o.stderr);

    // a unix socket that is not there
    let sock = k.path("nope.sock");
    let unix = format!("unix/{}", sock.display());
    let o = k.arg("caddy:ls").env("KATA_CADDY_ADMIN", &unix).failure();
    assert!(o.stderr.contains(&unix), "{}", o.stderr);
}

#[test]
fn admin_over_a_unix_socket() {
    let caddy = Caddy::start_unix();
    assert!(caddy.endpoint().starts_with("unix//"));
    let admin = caddy.admin();
    let app = unique("unixsock");
    let port = free_port();
    let backend = Backend::start("via unix admin");
    let server = proxy_server(port, "unix.test", &backend.addr());
    admin.put_server(&app, &server).unwrap();
    // GET /config/... is chunked with an ETag trailer in Caddy 2.6
    assert_eq!(admin.get_server(&app).unwrap(), Some(server.clone()));
    assert_eq!(admin.servers().unwrap().get(&app), Some(&server));
    wait_routed(port, "unix.test", "via unix admin");
    let ups = admin.upstreams().unwrap();
    assert!(ups.iter().any(|u| u.address == backend.addr()), "{ups:?}");

    let mut bad = server.clone();
    bad["listen"] = json!("not a list");
    let e = admin.put_server(&app, &bad).unwrap_err();
    assert!(e.to_string().contains("cannot unmarshal string"), "{e}");
    assert_eq!(admin.get_server(&app).unwrap(), Some(server));

    assert!(admin.delete_server(&app).unwrap());
    assert!(admin.servers().unwrap().is_empty());
}

#[test]
fn concurrent_writes_all_end_up_routed() {
    for with_lock in [true, false] {
        let caddy = Caddy::start();
        let lock_dir = tempfile::tempdir().unwrap();
        let backend = Backend::start("concurrent");
        let n = 6;
        let barrier = Arc::new(Barrier::new(n));
        let apps: Vec<(String, u16)> = (0..n).map(|_| (unique("conc"), free_port())).collect();
        let handles: Vec<_> = apps
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, (app, port))| {
                let mut admin = caddy.admin();
                if with_lock {
                    admin = admin.with_lock_file(lock_dir.path().join("caddy.lock"));
                }
                let server = proxy_server(port, "conc.test", &backend.addr());
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    // half of them hold the lock around the call, like the
                    // deploy does (re-entrant: put_server takes it too)
                    let _guard = (i % 2 == 0).then(|| admin.lock().unwrap());
                    admin.put_server(&app, &server)
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let servers = caddy.admin().servers().unwrap();
        for (app, port) in &apps {
            assert!(servers.contains_key(app), "lock={with_lock}: {app} missing");
            wait_routed(*port, "conc.test", "concurrent");
        }
        assert_eq!(servers.len(), n);
    }
}

#[test]
fn upstream_status_shows_in_flight_requests() {
    let caddy = Caddy::start();
    let admin = caddy.admin();
    let backend = Backend::start_slow("slow", Duration::from_millis(1500));
    let app = unique("drain");
    let port = free_port();
    admin
        .put_server(&app, &proxy_server(port, "drain.test", &backend.addr()))
        .unwrap();
    let req = std::thread::spawn(move || http_get(port, "drain.test", "/"));
    crate::support::wait_for("one in-flight request", Duration::from_secs(5), || {
        admin
            .upstreams()
            .unwrap()
            .iter()
            .any(|u| u.address == backend.addr() && u.num_requests == 1)
    });
    let (status, _, body) = req.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "slow"));
    crate::support::wait_for("no in-flight request", Duration::from_secs(5), || {
        admin
            .upstreams()
            .unwrap()
            .iter()
            .all(|u| u.address != backend.addr() || u.num_requests == 0)
    });
}

/// Makes an expanded server testable here: loopback listen, no ACME.
fn localize(mut server: Value, port: u16) -> Value {
    server["listen"] = json!([format!("127.0.0.1:{port}")]);
    server["automatic_https"] = json!({"disable": true});
    server
}

#[test]
fn expanded_shorthand_and_spec_examples_are_accepted_and_route() {
    let caddy = Caddy::start();
    let admin = caddy.admin();
    let web = Backend::start("web");
    let api = Backend::start("api");
    // "services" on loopback: the backends stand in for containers
    let services = BTreeMap::from([
        ("web".to_owned(), vec!["127.0.0.1".to_owned()]),
        ("api".to_owned(), vec!["127.0.0.1".to_owned()]),
        ("app".to_owned(), vec!["127.0.0.1".to_owned()]),
    ]);
    let shapes = [
        // shorthand, HTTPS off
        json!({"domains": ["sh.test"], "service": "web", "port": web.port, "https": {"enabled": false}}),
        // shorthand, HTTPS with redirect
        json!({"domains": ["redir.test"], "service": "web", "port": web.port, "https": {"enabled": true, "redirect": true}}),
        // spec: multi-service (https block beside routes)
        json!({"routes": [
            {"match": [{"host": ["api.example.com"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": format!("api:{}", api.port)}]}]},
            {"match": [{"host": ["example.com"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": format!("web:{}", web.port)}]}]}
        ], "https": {"enabled": true, "redirect": false, "domains": ["example.com", "api.example.com"]}}),
        // spec: python with caddy (literal ":PORT" dial)
        json!({"routes": [{"match": [{"host": ["flask.example.com"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": format!(":{}", web.port)}]}]}],
               "https": {"enabled": true, "redirect": true, "domains": ["flask.example.com"]}}),
        // spec: container app (no hosts)
        json!({"routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": format!("app:{}", web.port)}]}]}], "https": {"enabled": true}}),
    ];
    let mut ports = Vec::new();
    for (i, shape) in shapes.into_iter().enumerate() {
        let app = unique(&format!("shape{i}"));
        let port = free_port();
        let expanded = expand(shape, &app).unwrap();
        let resolved = resolve_upstreams(&expanded, &services).unwrap();
        let server = localize(resolved, port);
        admin
            .put_server(&app, &server)
            .unwrap_or_else(|e| panic!("shape {i}: {e}\n{server:#}"));
        ports.push(port);
    }
    wait_routed(ports[0], "sh.test", "web");
    // redirect route answers plain HTTP for its hosts with 308 to https
    let (status, head, _) = http_get(ports[1], "redir.test", "/a/b?c=d");
    assert_eq!(status, 308, "{head}");
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("location: https://redir.test/a/b?c=d")),
        "{head}"
    );
    wait_routed(ports[2], "api.example.com", "api");
    wait_routed(ports[2], "example.com", "web");
    assert_eq!(http_get(ports[3], "flask.example.com", "/").0, 308);
    wait_routed(ports[4], "anything.test", "web");
}

/// Caddy 2.6.2 has no `stream_close_delay` (added in 2.7): kata must not add
/// it. If Caddy is upgraded, this test says so.
#[test]
fn caddy_2_6_rejects_stream_close_delay() {
    let version = std::process::Command::new(crate::support::caddy::caddy_bin())
        .arg("version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let caddy = Caddy::start();
    let mut server = proxy_server(free_port(), "scd.test", "127.0.0.1:1");
    server["routes"][0]["handle"][0]["stream_close_delay"] = json!("5m");
    let r = caddy.admin().put_server(&unique("scd"), &server);
    if version.starts_with("v2.6.") || version.starts_with("2.6.") {
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("unknown field \\\"stream_close_delay\\\""),
            "{e}"
        );
    } else {
        eprintln!(
            "caddy {version}: stream_close_delay accepted = {}",
            r.is_ok()
        );
    }
}

#[test]
fn config_caddy_and_caddy_ls_commands() {
    let caddy = Caddy::with_handmade();
    let admin = caddy.admin();
    let k = Kata::setup();
    k.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();

    let app = unique("listed");
    std::fs::create_dir_all(k.path(format!("state/apps/{app}"))).unwrap();
    let port = free_port();
    let mut server = proxy_server(port, "listed.test", "10.1.2.3:8000");
    server["routes"][0]["handle"][0]["upstreams"] =
        json!([{"dial": "10.1.2.3:8000"}, {"dial": "10.1.2.4:8000"}]);
    admin.put_server(&app, &server).unwrap();

    // config:caddy: the live server, pretty JSON; endpoint from the settings file
    let o = k.args(["config:caddy", &app]).success();
    assert_eq!(serde_json::from_str::<Value>(&o.stdout).unwrap(), server);
    assert!(o.stdout.contains("\n  \"listen\""), "{}", o.stdout);
    let o = k.args(["config:caddy", "nosuchapp"]).code(1);
    assert!(
        o.stderr.contains("app nosuchapp has no Caddy server"),
        "{}",
        o.stderr
    );
    assert!(
        k.args(["config:caddy", "../x"])
            .failure()
            .stderr
            .contains("invalid app name")
    );

    // caddy:ls table
    let o = k.arg("caddy:ls").success();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("APP"), "{}", o.stdout);
    let mine = lines.iter().find(|l| l.starts_with(&app)).unwrap();
    let cols: Vec<&str> = mine.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            app.as_str(),
            "yes",
            "listed.test",
            &format!("127.0.0.1:{port}"),
            "10.1.2.3:8000,10.1.2.4:8000"
        ]
    );
    let hand = lines.iter().find(|l| l.starts_with("handmade")).unwrap();
    assert_eq!(hand.split_whitespace().nth(1), Some("-"));

    // --json
    let o = k.args(["caddy:ls", "--json"]).success();
    let rows: Vec<Value> = serde_json::from_str(&o.stdout).unwrap();
    let row = rows.iter().find(|r| r["name"] == json!(app)).unwrap();
    assert_eq!(
        row,
        &json!({
            "name": app,
            "kata_app": true,
            "hosts": ["listed.test"],
            "listen": [format!("127.0.0.1:{port}")],
            "upstreams": ["10.1.2.3:8000", "10.1.2.4:8000"]
        })
    );
    assert!(
        rows.iter()
            .any(|r| r["name"] == json!("handmade") && r["kata_app"] == json!(false))
    );

    // KATA_CADDY_ADMIN overrides the settings file
    let other = Caddy::start();
    let o = k
        .arg("caddy:ls")
        .env("KATA_CADDY_ADMIN", other.endpoint())
        .success();
    assert!(
        o.stdout.starts_with("no servers in Caddy at "),
        "{}",
        o.stdout
    );
    let o = k
        .args(["caddy:ls", "--json"])
        .env("KATA_CADDY_ADMIN", other.endpoint())
        .success();
    assert_eq!(o.stdout.trim(), "[]");
}

#[test]
fn endpoint_forms() {
    // an unparsable endpoint is refused by name before any call
    let k = Kata::new();
    let o = k
        .arg("caddy:ls")
        .env("KATA_CADDY_ADMIN", "localhost:2019")
        .failure();
    assert!(o.stderr.contains("\"localhost:2019\""), "{}", o.stderr);
    assert!(
        Admin::new(Endpoint::parse("http://localhost:2019").unwrap())
            .endpoint()
            .to_string()
            == "http://localhost:2019"
    );
}
