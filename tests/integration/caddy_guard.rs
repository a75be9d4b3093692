//! Apps cannot reach Caddy's admin API: a `dial` or `listen` naming the
//! admin endpoint under any alias is refused by `render --caddy` and by a
//! real `git push`, and nothing is sent to the real Caddy.

use crate::support::caddy::{Caddy, http_get, on_both, wait_routed};
use crate::support::images::{self, BUSYBOX};
use crate::support::push::LocalApp;
use crate::support::{Kata, engine_shared, free_port, unique};
use std::process::Command;

/// kata-compose.yaml of a busybox httpd on 8080 routed for `host` on
/// 127.0.0.1:`port`, with one more route proxying `/admin/*` to `dial`.
fn yaml(host: &str, port: u16, dial: &str, listen: &str) -> String {
    format!(
        "services:\n  web:\n    image: {BUSYBOX}\n    command: httpd -f -p 8080 -h /app/www\n    volumes:\n      - app:/app\n\
         caddy:\n  listen: [\"127.0.0.1:{port}\"{listen}]\n  automatic_https:\n    disable: true\n  routes:\n\
         \x20   - match:\n        - host: [{host}]\n          path: [\"/admin/*\"]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: \"{dial}\"\n\
         \x20   - match:\n        - host: [{host}]\n      handle:\n        - handler: reverse_proxy\n          upstreams:\n            - dial: web:8080\n"
    )
}

fn admin_port(caddy: &Caddy) -> u16 {
    let port = caddy.endpoint().rsplit(':').next().unwrap();
    port.parse().unwrap()
}

fn kata_for(endpoint: &str) -> Kata {
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", endpoint]).success();
    kata
}

/// The machine's host name and its non-loopback addresses, as `hostname`
/// reports them.
fn machine_aliases() -> Vec<String> {
    let run = |args: &[&str]| {
        let out = Command::new("hostname")
            .args(args)
            .output()
            .expect("hostname");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let mut out = vec![run(&[])];
    for ip in run(&["-I"]).split_whitespace() {
        out.push(if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        });
    }
    out
}

/// `render --caddy` refuses every alias of the admin endpoint, naming the
/// key path; a dial elsewhere renders.
#[test]
fn render_refuses_dials_and_listens_on_the_admin_endpoint() {
    let caddy = Caddy::start();
    let admin_port = admin_port(&caddy);
    let kata = kata_for(caddy.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kata-compose.yaml");
    let render = |dial: &str, listen: &str| {
        std::fs::write(&file, yaml("a.test", 18080, dial, listen)).unwrap();
        kata.args(["render", "--caddy", "--app", "guarded"])
            .arg(&file)
            .outcome()
    };
    let mut aliases: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "127.0.0.9",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "[::]",
        "",
    ]
    .map(str::to_owned)
    .into();
    aliases.extend(machine_aliases());
    for host in &aliases {
        let dial = format!("{host}:{admin_port}");
        let out = render(&dial, "");
        // parallel tests add and remove docker networks, whose gateway
        // addresses are the host's only while they exist
        if out.status.success() && !machine_aliases().contains(host) {
            continue;
        }
        assert!(!out.status.success(), "{dial} rendered:\n{}", out.stdout);
        assert!(
            out.stderr.contains(&format!(
                "caddy.routes[0].handle[0].upstreams[0].dial: \"{dial}\" reaches Caddy's admin endpoint {}",
                caddy.endpoint()
            )),
            "{dial}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{dial}");
    }
    for dial in ["tcp/localhost:{p}", "tcp4/127.1:{p}"] {
        let dial = dial.replace("{p}", &admin_port.to_string());
        assert!(!render(&dial, "").status.success(), "{dial}");
    }
    let placeholder = render("{http.request.header.X-To}", "");
    assert!(
        placeholder.stderr.contains("holds a placeholder"),
        "{}",
        placeholder.stderr
    );

    for listen in [format!(":{admin_port}"), format!("localhost:{admin_port}")] {
        let out = render("127.0.0.1:9", &format!(", \"{listen}\""));
        assert!(!out.status.success(), "{listen}");
        assert!(
            out.stderr.contains(&format!(
                "caddy.listen[1]: \"{listen}\" overlaps Caddy's admin endpoint"
            )),
            "{}",
            out.stderr
        );
    }

    let fine = render(&format!("127.0.0.1:{}", free_port()), "");
    assert!(fine.status.success(), "{}", fine.stderr);
    assert!(fine.stdout.contains("\"dial\""), "{}", fine.stdout);
}

/// Over a unix admin socket: a `unix/` dial to it is refused, however the
/// path is spelled.
#[test]
fn render_refuses_unix_dials_to_the_admin_socket() {
    let caddy = Caddy::start_unix();
    let sock = caddy.endpoint().strip_prefix("unix/").unwrap().to_owned();
    let kata = kata_for(caddy.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kata-compose.yaml");
    let (parent, name) = sock.rsplit_once('/').unwrap();
    for dial in [
        format!("unix/{sock}"),
        format!("unix/{parent}/./{name}"),
        format!("unix/{parent}//{name}"),
    ] {
        std::fs::write(&file, yaml("a.test", 18080, &dial, "")).unwrap();
        let out = kata
            .args(["render", "--caddy", "--app", "guarded"])
            .arg(&file)
            .outcome();
        assert!(!out.status.success(), "{dial}");
        assert!(
            out.stderr.contains("reaches Caddy's admin endpoint unix/"),
            "{}",
            out.stderr
        );
    }
}

/// A real push whose server proxies to the admin API is refused before
/// anything reaches Caddy: exit non-zero, the key path and reason in the
/// output, Caddy's config byte for byte as before, the live release still
/// serving, and the admin API not reachable through the app's address.
#[test]
fn push_with_an_admin_dial_is_refused_and_caddy_is_untouched() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::with_handmade();
    let admin_port = admin_port(&caddy);
    let kata = kata_for(caddy.endpoint());
    let name = unique("guard");
    let host = format!("{name}.test");
    let port = free_port();
    let app = LocalApp::new(&kata, &name);
    let backend = format!("127.0.0.1:{}", free_port());
    app.write("kata-compose.yaml", &yaml(&host, port, &backend, ""))
        .write("www/index.html", "v1")
        .commit("v1");
    app.push_ok();
    wait_routed(port, &host, "v1");

    let config = caddy.config();
    for (i, dial) in [
        format!("[::ffff:127.0.0.1]:{admin_port}"),
        format!("{}:{admin_port}", machine_aliases()[0]),
    ]
    .iter()
    .enumerate()
    {
        app.write("kata-compose.yaml", &yaml(&host, port, dial, ""))
            .write("www/index.html", &format!("v{}", i + 2))
            .commit(dial);
        let out = app.push_fails();
        assert!(
            out.stderr.contains(&format!(
                "caddy.routes[0].handle[0].upstreams[0].dial: \"{dial}\" reaches Caddy's admin endpoint"
            )),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("nothing was sent to Caddy"),
            "{}",
            out.stderr
        );
        assert_eq!(caddy.config(), config, "{dial}");
    }
    // still v1, and /admin/config/ goes to the harmless backend (502), not
    // to Caddy's admin API
    wait_routed(port, &host, "v1");
    let (status, _, body) = http_get(port, &host, "/admin/config/");
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        http_get(caddy.handmade_port.unwrap(), "x.test", "/").2,
        "handmade"
    );
}

/// Three spellings of one socket (`127.0.0.1:P`, `localhost:P`,
/// `[::ffff:127.0.0.1]:P`) are one address to kata: the three apps are parts
/// of one shared server, each answering for its own host, so no two servers
/// split the port's connections. An address that overlaps it without being
/// the same socket (`0.0.0.0:P`) is refused naming the apps there, before
/// anything is sent. On both Caddy versions.
#[test]
fn aliases_of_one_listen_address_are_one_address() {
    images::ensure_test_images();
    let _engine = engine_shared();
    on_both(|| {
        let caddy = Caddy::start();
        let kata = kata_for(caddy.endpoint());
        let port = free_port();
        let server = |host: &str, listen: &str| {
            format!(
                "services:\n  web:\n    image: {BUSYBOX}\n    command: httpd -f -p 8080 -h /app/www\n    volumes:\n      - app:/app\n\
                 caddy:\n  domains: [{host}]\n  service: web\n  port: 8080\n  https: false\n  listen: [\"{listen}\"]\n"
            )
        };
        let push = |listen: &str, body: &str| {
            let app = LocalApp::new(&kata, &unique("alias"));
            let host = format!("{}.test", app.name);
            app.write("kata-compose.yaml", &server(&host, listen))
                .write("www/index.html", body)
                .commit(body);
            (app, host)
        };
        let mut apps = vec![];
        for (listen, body) in [
            (format!("127.0.0.1:{port}"), "first"),
            (format!("localhost:{port}"), "second"),
            (format!("[::ffff:127.0.0.1]:{port}"), "third"),
        ] {
            let (app, host) = push(&listen, body);
            app.push_ok();
            wait_routed(port, &host, body);
            apps.push((app, host, body));
        }
        for (_, host, body) in &apps {
            for _ in 0..10 {
                assert_eq!(http_get(port, host, "/").2, *body, "{host}");
            }
        }
        let config = caddy.config();
        let servers = config["apps"]["http"]["servers"].as_object().unwrap();
        let on_port: Vec<(&String, &serde_json::Value)> = servers
            .iter()
            .filter(|(_, s)| s["listen"].to_string().contains(&port.to_string()))
            .collect();
        assert_eq!(on_port.len(), 1, "one server for the port: {config}");
        let (name, shared) = on_port[0];
        assert_eq!(name, &format!("kata.127.0.0.1_{port}"));
        assert_eq!(
            shared["listen"],
            serde_json::json!([format!("127.0.0.1:{port}")])
        );
        let ids: Vec<&str> = shared["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["@id"].as_str())
            .collect();
        for (app, _, _) in &apps {
            assert!(
                ids.contains(&format!("kata.{}", app.name).as_str()),
                "{ids:?}"
            );
        }

        // overlapping, but another socket: refused, nothing sent
        let (wild, _) = push(&format!("0.0.0.0:{port}"), "wild");
        let out = wild.push_fails();
        assert!(
            out.stderr.contains(&format!(
                "caddy.listen: \"0.0.0.0:{port}\" is already taken by"
            )),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(&apps[0].0.name), "{}", out.stderr);
        assert_eq!(caddy.config(), config);

        // removing the app that created the server leaves the others routed
        kata.args(["rm", "-f", &apps[0].0.name]).success();
        for (_, host, body) in &apps[1..] {
            wait_routed(port, host, body);
        }
    });
}
