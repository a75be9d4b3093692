use super::*;
use serde_json::json;

fn no_apps(_: &str) -> bool {
    false
}

/// The shorthand's server for `host` on `listen`, dialing `dial`.
fn app_server(listen: &[&str], host: Option<&str>, dial: &str) -> Value {
    let mut route = json!({
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}],
        "terminal": true
    });
    if let Some(h) = host {
        route["match"] = json!([{"host": [h]}]);
    }
    json!({"listen": listen, "automatic_https": {"disable": true}, "routes": [route]})
}

/// Applies a plan's calls to a config the way Caddy does (enough for the
/// calls kata plans), so tests can chain deploys.
fn apply(config: &Value, plan: &Plan) -> Value {
    let mut c = config.clone();
    for call in &plan.calls {
        if let Some(id) = call.path.strip_prefix("/id/") {
            let path = find_id(&c, id).expect("id exists");
            match call.method {
                "PATCH" => *c.pointer_mut(&path).unwrap() = call.body.clone().unwrap(),
                "DELETE" => remove(&mut c, &path),
                m => panic!("{m} on /id/"),
            }
            continue;
        }
        let pointer = call.pointer().unwrap();
        match call.method {
            "DELETE" => remove(&mut c, &pointer),
            "PATCH" => *c.pointer_mut(&pointer).unwrap() = call.body.clone().unwrap(),
            "POST" => {
                let at = if pointer.is_empty() {
                    &mut c
                } else {
                    c.pointer_mut(&pointer).unwrap()
                };
                match at {
                    Value::Array(a) => a.push(call.body.clone().unwrap()),
                    other => *other = call.body.clone().unwrap(),
                }
            }
            "PUT" => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                let p = if parent.is_empty() {
                    &mut c
                } else {
                    c.pointer_mut(parent).unwrap()
                };
                match p {
                    Value::Array(a) => a.insert(key.parse().unwrap(), call.body.clone().unwrap()),
                    Value::Object(m) => {
                        assert!(!m.contains_key(key), "PUT on an existing key {key}");
                        m.insert(key.to_owned(), call.body.clone().unwrap());
                    }
                    other => panic!("PUT into {other}"),
                }
            }
            m => panic!("{m}"),
        }
    }
    c
}

fn find_id(v: &Value, id: &str) -> Option<String> {
    match v {
        Value::Object(m) => {
            if m.get("@id").and_then(Value::as_str) == Some(id) {
                return Some(String::new());
            }
            m.iter()
                .find_map(|(k, c)| find_id(c, id).map(|p| format!("/{k}{p}")))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, c)| find_id(c, id).map(|p| format!("/{i}{p}"))),
        _ => None,
    }
}

fn remove(c: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match c.pointer_mut(parent).unwrap() {
        Value::Array(a) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        Value::Object(m) => {
            m.shift_remove(key);
        }
        other => panic!("remove from {other}"),
    }
}

fn deploy(config: &Value, app: &str, server: &Value) -> (Plan, Value) {
    let plan = plan_put(app, server, config, &no_apps).unwrap();
    let after = apply(config, &plan);
    (plan, after)
}

fn shared_routes(config: &Value, name: &str) -> Vec<String> {
    config["apps"]["http"]["servers"][name]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["@id"].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[test]
fn names_and_ids() {
    assert_eq!(server_name(&[":80".into(), ":443".into()]), "kata.443-80");
    assert_eq!(server_name(&[":443".into(), ":80".into()]), "kata.443-80");
    assert_eq!(
        server_name(&["127.0.0.1:8080".into()]),
        "kata.127.0.0.1_8080"
    );
    assert_eq!(server_name(&["[::1]:80".into()]), "kata.1__80");
    assert_eq!(
        server_name(&["localhost:8080".into()]),
        "kata.127.0.0.1_8080"
    );
    assert_eq!(server_name(&["tcp/0.0.0.0:80".into()]), "kata.80");
    assert_eq!(server_name(&["udp/:443".into()]), "kata.udp__443");
    assert_eq!(part_id("shop"), "kata.shop");
    assert_eq!(app_of_id("kata.shop"), Some("shop"));
    assert_eq!(app_of_id("kata.a/b"), None);
    assert_eq!(app_of_id("shop"), None);
    // an app name never contains a dot: no app's old server can be named so
    assert!(!crate::names::is_app_name("kata.443-80"));
}

#[test]
fn first_app_on_a_fresh_caddy_creates_parents_in_one_guarded_call() {
    let server = app_server(&[":80"], Some("a.test"), "10.0.0.2:80");
    let plan = plan_put("a", &server, &Value::Null, &no_apps).unwrap();
    insta::assert_json_snapshot!(plan);
    let plan = plan_put("a", &server, &json!({"admin": {"listen": "x"}}), &no_apps).unwrap();
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PUT", "/config/apps")
    );
    let plan = plan_put(
        "a",
        &server,
        &json!({"apps": {"http": {"servers": {}}}}),
        &no_apps,
    )
    .unwrap();
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PUT", "/config/apps/http/servers/kata.80")
    );
}

#[test]
fn apps_share_a_server_hosts_first_whatever_the_order() {
    let handmade = json!({"listen": ["127.0.0.1:9"], "routes": [{"handle": [{"handler": "static_response"}]}]});
    let start = json!({"apps": {"http": {"servers": {"handmade": handmade}}}});
    let listen = [":80", ":443"];
    // the catch-all first, then two host apps
    let (p1, c1) = deploy(&start, "all", &app_server(&listen, None, "10.0.0.9:80"));
    let (p2, c2) = deploy(
        &c1,
        "a",
        &app_server(&listen, Some("a.test"), "10.0.0.2:80"),
    );
    let (p3, c3) = deploy(
        &c2,
        "b",
        &app_server(&listen, Some("B.test"), "10.0.0.3:80"),
    );
    insta::assert_json_snapshot!("three_apps_calls", [&p1, &p2, &p3]);
    insta::assert_json_snapshot!("three_apps_config", c3);
    assert_eq!(
        shared_routes(&c3, "kata.443-80"),
        ["kata.a", "kata.b", "kata.all"]
    );
    // the hand-made server is untouched, byte for byte
    assert_eq!(c3["apps"]["http"]["servers"]["handmade"], handmade);

    // a redeploy of b with a new upstream: one targeted PATCH on its id
    let (p4, c4) = deploy(
        &c3,
        "b",
        &app_server(&listen, Some("b.test"), "10.0.0.4:80"),
    );
    insta::assert_json_snapshot!("redeploy_calls", p4);
    assert_eq!(
        shared_routes(&c4, "kata.443-80"),
        ["kata.a", "kata.b", "kata.all"]
    );
    // the same again: nothing to send
    assert!(
        plan_put(
            "b",
            &app_server(&listen, Some("b.test"), "10.0.0.4:80"),
            &c4,
            &no_apps
        )
        .unwrap()
        .is_noop()
    );

    // b becomes a catch-all while `all` is one: refused
    let e = plan_put("b", &app_server(&listen, None, "x:1"), &c4, &no_apps).unwrap_err();
    assert_eq!(
        e.to_string(),
        "caddy: app \"b\" and app \"all\" both match every host on :80, :443 (no host matcher); \
         only one app per address can be the catch-all: give one of them domains"
    );

    // rm b: one DELETE on its id; the others stay as they were
    let rm = plan_remove("b", &c4).unwrap();
    insta::assert_json_snapshot!("remove_calls", rm);
    let c5 = apply(&c4, &rm);
    assert_eq!(shared_routes(&c5, "kata.443-80"), ["kata.a", "kata.all"]);
    assert_eq!(
        c5["apps"]["http"]["servers"]["kata.443-80"]["routes"][0],
        c4["apps"]["http"]["servers"]["kata.443-80"]["routes"][0]
    );
    // the last part's removal takes the shared server with it
    let c6 = apply(&c5, &plan_remove("a", &c5).unwrap());
    let rm_last = plan_remove("all", &c6).unwrap();
    assert_eq!(
        rm_last.calls[0].path,
        "/config/apps/http/servers/kata.443-80"
    );
    let c7 = apply(&c6, &rm_last);
    assert_eq!(c7, start);
    assert!(plan_remove("all", &c7).unwrap().is_noop());
}

#[test]
fn the_same_host_twice_is_refused_naming_the_first_app() {
    let listen = [":80"];
    let (_, c) = deploy(
        &Value::Null,
        "first",
        &app_server(&listen, Some("shop.test"), "a:1"),
    );
    let e = plan_put(
        "second",
        &app_server(&listen, Some("SHOP.test"), "b:1"),
        &c,
        &no_apps,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "caddy: host \"shop.test\" on :80 is already routed to app \"first\"; \
         each host belongs to one app (remove it from one of them)"
    );
    // a wildcard covering it too
    let e = plan_put(
        "second",
        &app_server(&listen, Some("*.test"), "b:1"),
        &c,
        &no_apps,
    )
    .unwrap_err();
    assert!(
        matches!(e, Refusal::HostTaken { ref owner, .. } if owner == "app \"first\""),
        "{e}"
    );
    // the app itself may keep its host
    assert!(
        plan_put(
            "first",
            &app_server(&listen, Some("shop.test"), "c:1"),
            &c,
            &no_apps
        )
        .is_ok()
    );
}

#[test]
fn differing_server_settings_are_refused_naming_both_apps_and_the_key() {
    let listen = [":80"];
    let (_, c) = deploy(
        &Value::Null,
        "a",
        &app_server(&listen, Some("a.test"), "a:1"),
    );
    let mut b = app_server(&listen, Some("b.test"), "b:1");
    b["logs"] = json!({"default_logger_name": "x"});
    let e = plan_put("b", &b, &c, &no_apps).unwrap_err();
    assert_eq!(
        e.to_string(),
        "caddy.logs: app \"b\" sets it to {\"default_logger_name\":\"x\"}, but app \"a\" on :80 set nothing; \
         a server-level setting has one value for every app on an address: \
         set it the same way in each, or give this app another listen address"
    );
    // alone on its server, an app may change them
    let mut a2 = app_server(&listen, Some("a.test"), "a:1");
    a2["automatic_https"] = json!({"disable_redirects": true});
    let plan = plan_put("a", &a2, &c, &no_apps).unwrap();
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PATCH", "/config/apps/http/servers/kata.80")
    );
    assert_eq!(
        apply(&c, &plan)["apps"]["http"]["servers"]["kata.80"]["automatic_https"],
        json!({"disable_redirects": true})
    );
}

#[test]
fn listen_overlaps_with_other_servers_are_refused() {
    let handmade = json!({"listen": [":8080"], "routes": []});
    let c = json!({"apps": {"http": {"servers": {"handmade": handmade}}}});
    let e = plan_put(
        "a",
        &app_server(&["127.0.0.1:8080"], None, "x:1"),
        &c,
        &no_apps,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "caddy.listen: \"127.0.0.1:8080\" is already taken by Caddy server \"handmade\" \
         (apps.http.servers.handmade), which listens on \":8080\"; \
         apps share an address only with exactly the same listen list"
    );
    // a shared server with a different listen list that overlaps
    let (_, c) = deploy(
        &Value::Null,
        "a",
        &app_server(&[":80", ":443"], Some("a.test"), "x:1"),
    );
    let e = plan_put(
        "b",
        &app_server(&[":80"], Some("b.test"), "x:1"),
        &c,
        &no_apps,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("already taken by app \"a\" (kata's shared server \"kata.443-80\")"),
        "{e}"
    );
    assert_eq!(
        plan_put("a", &json!({"routes": []}), &Value::Null, &no_apps).unwrap_err(),
        Refusal::NoListen
    );
}

#[test]
fn alias_spellings_of_one_address_share_its_server() {
    let a = app_server(&["localhost:8080"], Some("a.test"), "10.0.0.2:80");
    let (plan, c) = deploy(&Value::Null, "a", &a);
    assert_eq!(plan.server, "kata.127.0.0.1_8080");
    // the same socket, spelled two other ways: parts of the same server,
    // each one targeted call, and the server keeps the first spelling
    for (app, listen) in [("b", "127.0.0.1:8080"), ("m", "[::FFFF:127.0.0.1]:8080")] {
        let server = app_server(&[listen], Some(&format!("{app}.test")), "10.0.0.3:80");
        let plan = plan_put(app, &server, &c, &no_apps).unwrap();
        assert_eq!(plan.server, "kata.127.0.0.1_8080");
        assert_eq!(plan.calls.len(), 1, "{plan:?}");
        assert_eq!(
            (plan.calls[0].method, plan.calls[0].path.as_str()),
            (
                "POST",
                "/config/apps/http/servers/kata.127.0.0.1_8080/routes"
            )
        );
    }
    let (_, c) = deploy(
        &c,
        "b",
        &app_server(&["127.0.0.1:8080"], Some("b.test"), "10.0.0.3:80"),
    );
    assert_eq!(
        shared_routes(&c, "kata.127.0.0.1_8080"),
        ["kata.a", "kata.b"]
    );
    assert_eq!(
        c["apps"]["http"]["servers"]["kata.127.0.0.1_8080"]["listen"],
        json!(["localhost:8080"])
    );
    // b's redeploy replaces only its own part
    let again = app_server(&["127.0.0.1:8080"], Some("b.test"), "10.0.0.4:80");
    let plan = plan_put("b", &again, &c, &no_apps).unwrap();
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PATCH", "/id/kata.b")
    );
    // overlapping but not the same socket: still refused
    for other in ["0.0.0.0:8080", ":8080", "127.0.0.1:8080-8081"] {
        let e = plan_put(
            "w",
            &app_server(&[other], Some("w.test"), "x:1"),
            &c,
            &no_apps,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::ListenTaken { owner, .. } if owner.contains("kata.127.0.0.1_8080")),
            "{other}: {e}"
        );
    }
    // lists equal as sockets share; a server an older kata named after its
    // spelling is found by its sockets, not its name
    let (_, c) = deploy(
        &Value::Null,
        "x",
        &app_server(&["localhost:80", ":443"], Some("x.test"), "x:1"),
    );
    let plan = plan_put(
        "y",
        &app_server(&["0.0.0.0:443", "127.0.0.1:80"], Some("y.test"), "x:1"),
        &c,
        &no_apps,
    )
    .unwrap();
    assert_eq!(plan.server, "kata.127.0.0.1_80-443");
    let older = json!({"apps": {"http": {"servers": {"kata.localhost_8001": {
        "listen": ["localhost:8001"],
        "automatic_https": {"disable": true},
        "routes": [part("a", &app_server(&["localhost:8001"], Some("a.test"), "x:1"))]
    }}}}});
    let plan = plan_put(
        "b",
        &app_server(&["127.0.0.1:8001"], Some("b.test"), "x:1"),
        &older,
        &no_apps,
    )
    .unwrap();
    assert_eq!(plan.server, "kata.localhost_8001");
    assert_eq!(plan.calls[0].method, "POST");
}

#[test]
fn old_per_app_servers_move_in_one_guarded_change() {
    let old_a = app_server(&[":80"], Some("a.test"), "10.0.0.2:80");
    let handmade = json!({"listen": ["127.0.0.1:9"], "routes": []});
    let c = json!({"apps": {"http": {"servers": {"a": old_a, "handmade": handmade}}}});
    let kata = |n: &str| n == "a" || n == "b";
    // a's own redeploy moves it
    let plan = plan_put("a", &old_a, &c, &kata).unwrap();
    insta::assert_json_snapshot!("move_own", plan);
    let after = apply(&c, &plan);
    assert!(after["apps"]["http"]["servers"].get("a").is_none());
    assert_eq!(after["apps"]["http"]["servers"]["handmade"], handmade);
    assert_eq!(
        find("a", &after).unwrap().unwrap().view,
        old_a,
        "the app's view is what it deployed"
    );
    // a new app b on the same address moves a too, in the same change
    let plan = plan_put(
        "b",
        &app_server(&[":80"], Some("b.test"), "10.0.0.3:80"),
        &c,
        &kata,
    )
    .unwrap();
    assert_eq!(plan.moved, ["a"]);
    assert_eq!(plan.calls.len(), 1);
    let after = apply(&c, &plan);
    assert_eq!(shared_routes(&after, "kata.80"), ["kata.a", "kata.b"]);
    assert_eq!(find("a", &after).unwrap().unwrap().view, old_a);
    // the legacy server is found, and removed, as the app's
    let found = find("a", &c).unwrap().unwrap();
    assert!(found.legacy);
    assert_eq!(
        plan_remove("a", &c).unwrap().calls,
        vec![Call::new(
            "DELETE",
            "/config/apps/http/servers/a".into(),
            None
        )]
    );
}

#[test]
fn a_part_that_changes_class_moves_in_one_change() {
    let listen = [":80"];
    let (_, c) = deploy(&Value::Null, "all", &app_server(&listen, None, "x:1"));
    let (_, c) = deploy(&c, "a", &app_server(&listen, Some("a.test"), "x:1"));
    let (_, c) = deploy(&c, "all", &app_server(&listen, Some("all.test"), "x:1"));
    // the former catch-all became host-specific: it may stay where it is
    assert_eq!(shared_routes(&c, "kata.80"), ["kata.a", "kata.all"]);
    // a becomes the catch-all: it must move behind `all`
    let plan = plan_put("a", &app_server(&listen, None, "x:1"), &c, &no_apps).unwrap();
    assert_eq!(
        (
            plan.calls[0].method,
            plan.calls[0].path.as_str(),
            plan.calls[0].guarded
        ),
        ("PATCH", "/config/apps/http/servers/kata.80/routes", true)
    );
    assert_eq!(
        shared_routes(&apply(&c, &plan), "kata.80"),
        ["kata.all", "kata.a"]
    );
}

#[test]
fn entries_list_each_part() {
    let listen = [":80"];
    let (_, c) = deploy(
        &Value::Null,
        "a",
        &app_server(&listen, Some("a.test"), "x:1"),
    );
    let (_, mut c) = deploy(&c, "b", &app_server(&listen, Some("b.test"), "y:1"));
    c["apps"]["http"]["servers"]["handmade"] = json!({"listen": ["127.0.0.1:9"]});
    let servers = c["apps"]["http"]["servers"].as_object().unwrap();
    let list = entries(servers, &no_apps);
    let names: Vec<(&str, &str, bool)> = list.iter().map(|e| (e.name, e.server, e.part)).collect();
    assert_eq!(
        names,
        [
            ("a", "kata.80", true),
            ("b", "kata.80", true),
            ("handmade", "handmade", false)
        ]
    );
    let b = app_server(&listen, Some("b.test"), "y:1");
    assert_eq!(list[1].listen, [":80"]);
    assert_eq!(
        list[1].routes,
        b["routes"].as_array().unwrap().iter().collect::<Vec<_>>()
    );
    assert_eq!(list[1].errors, None);
}

#[test]
fn routes_kata_did_not_write_keep_their_place_and_their_hosts() {
    let listen = [":80"];
    let (_, mut c) = deploy(
        &Value::Null,
        "a",
        &app_server(&listen, Some("a.test"), "x:1"),
    );
    // someone added a host route and a catch-all route by hand
    let routes = c["apps"]["http"]["servers"]["kata.80"]["routes"]
        .as_array_mut()
        .unwrap();
    routes.push(json!({"match": [{"host": ["hand.test"]}], "handle": []}));
    routes.push(json!({"handle": [{"handler": "static_response"}]}));
    let hand = c["apps"]["http"]["servers"]["kata.80"]["routes"].clone();
    // a new host app goes before the hand-made catch-all
    let (plan, after) = deploy(&c, "b", &app_server(&listen, Some("b.test"), "y:1"));
    assert_eq!(
        plan.calls[0].path,
        "/config/apps/http/servers/kata.80/routes/2"
    );
    let ids = shared_routes(&after, "kata.80");
    assert_eq!(ids, ["kata.a", "-", "kata.b", "-"]);
    let now = &after["apps"]["http"]["servers"]["kata.80"]["routes"];
    assert_eq!(now[1], hand[1]);
    assert_eq!(now[3], hand[2]);
    // their host is taken, and so is the catch-all
    let e = plan_put(
        "c",
        &app_server(&listen, Some("hand.test"), "z:1"),
        &after,
        &no_apps,
    )
    .unwrap_err();
    assert!(
        matches!(e, Refusal::HostTaken { ref owner, .. } if owner == "a route not written by kata"),
        "{e}"
    );
    assert!(matches!(
        plan_put("c", &app_server(&listen, None, "z:1"), &after, &no_apps),
        Err(Refusal::CatchAllTaken { .. })
    ));
    // removing the apps leaves the hand-made routes (and so the server)
    let c2 = apply(&after, &plan_remove("b", &after).unwrap());
    let c3 = apply(&c2, &plan_remove("a", &c2).unwrap());
    assert_eq!(
        c3["apps"]["http"]["servers"]["kata.80"]["routes"],
        json!([hand[1], hand[2]])
    );
}

#[test]
fn call_pointers() {
    let call = |p: &str| Call::new("POST", p.into(), None).pointer();
    assert_eq!(call("/config/").as_deref(), Some(""));
    assert_eq!(call("/config/apps/http/").as_deref(), Some("/apps/http"));
    assert_eq!(
        call("/config/apps/http/servers").as_deref(),
        Some("/apps/http/servers")
    );
    assert_eq!(call("/id/kata.a"), None);
}

/// The shorthand's server with `https.issuer` (TLS on, so no
/// `automatic_https`).
fn tls_server(listen: &[&str], host: &str, issuer: &str) -> Value {
    let mut s = app_server(listen, Some(host), "10.0.0.9:80");
    s.as_object_mut().unwrap().shift_remove("automatic_https");
    s["@kata.issuer"] = json!(issuer);
    s
}

fn policy_ids(config: &Value) -> Vec<String> {
    config["apps"]["tls"]["automation"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["@id"].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[test]
fn tls_policies_are_each_apps_own_and_others_survive() {
    let exact = json!({"subjects": ["hand.test"], "issuers": [{"module": "acme"}]});
    let catch_all = json!({"issuers": [{"module": "internal"}]});
    let c = json!({"apps": {
        "tls": {"automation": {"policies": [exact, catch_all]}},
        "http": {"servers": {}}
    }});
    let policies = |c: &Value| c["apps"]["tls"]["automation"]["policies"].clone();

    // the first app: its policy before the catch-all, then its part
    let a = tls_server(&[":443"], "a.test", "internal");
    let (plan, c) = deploy(&c, "a", &a);
    insta::assert_json_snapshot!("tls_first_app", plan);
    assert_eq!(policy_ids(&c), ["-", "kata.a.tls", "-"]);
    assert_eq!(
        policies(&c)[1],
        json!({"@id": "kata.a.tls", "subjects": ["a.test"], "issuers": [{"module": "internal"}]})
    );
    // the server never carries kata's own key
    assert!(!c["apps"]["http"].to_string().contains("@kata"), "{c}");

    let (plan, c) = deploy(&c, "b", &tls_server(&[":443"], "b.test", "acme"));
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PUT", "/config/apps/tls/automation/policies/2")
    );
    assert_eq!(policy_ids(&c), ["-", "kata.a.tls", "kata.b.tls", "-"]);
    let before = c.clone();

    // a redeploy that changes nothing sends nothing
    assert!(plan_put("a", &a, &c, &no_apps).unwrap().is_noop());
    // new hosts: the policy and the part, each replaced by its @id
    let mut a2 = tls_server(&[":443"], "a.test", "internal");
    a2["routes"][0]["match"] = json!([{"host": ["a.test", "www.a.test"]}]);
    let (plan, c) = deploy(&c, "a", &a2);
    let calls: Vec<(&str, &str)> = plan
        .calls
        .iter()
        .map(|c| (c.method, c.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [("PATCH", "/id/kata.a.tls"), ("PATCH", "/id/kata.a")]
    );
    assert_eq!(policies(&c)[1]["subjects"], json!(["a.test", "www.a.test"]));
    // the others' policies, byte for byte
    for i in [0, 2, 3] {
        assert_eq!(policies(&c)[i], policies(&before)[i]);
    }
    // no issuer any more: its policy goes, nothing else
    let mut a3 = a2.clone();
    a3.as_object_mut().unwrap().shift_remove("@kata.issuer");
    let (plan, c) = deploy(&c, "a", &a3);
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("DELETE", "/id/kata.a.tls")
    );
    assert_eq!(plan.calls.len(), 1, "{plan:?}");
    assert_eq!(policy_ids(&c), ["-", "kata.b.tls", "-"]);

    // rm: the part first, then the policy
    let plan = plan_remove("b", &c).unwrap();
    insta::assert_json_snapshot!("tls_remove", plan);
    let c = apply(&c, &plan);
    assert_eq!(
        policies(&c),
        json!([
            {"subjects": ["hand.test"], "issuers": [{"module": "acme"}]},
            {"issuers": [{"module": "internal"}]}
        ])
    );

    // a host another policy names is refused, naming it; nothing is sent
    let e = plan_put(
        "h",
        &tls_server(&["127.0.0.1:9443"], "hand.test", "internal"),
        &c,
        &no_apps,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "caddy.https.issuer: host \"hand.test\" already has a TLS automation policy of \
         a policy not written by kata (apps.tls.automation.policies[0]); \
         each host's certificates are one app's (remove it from one of them)"
    );
    let (_, c) = deploy(&c, "a", &a);
    let e = plan_put(
        "d",
        &tls_server(&["127.0.0.1:9443"], "a.test", "acme"),
        &c,
        &no_apps,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Refusal::PolicyTaken { owner, .. } if owner == "app \"a\""),
        "{e}"
    );
}

#[test]
fn tls_policy_parents_are_created_when_missing() {
    let a = tls_server(&[":443"], "a.test", "internal");
    let c = json!({"apps": {"http": {"servers": {}}}});
    let plan = plan_put("a", &a, &c, &no_apps).unwrap();
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PUT", "/config/apps/tls")
    );
    assert_eq!(
        plan.calls[0].body,
        Some(json!({"automation": {"policies": [policy("a", &a).unwrap()]}}))
    );
    let c = apply(&c, &plan);
    assert_eq!(policy_ids(&c), ["kata.a.tls"]);
    // an existing tls app without policies keeps its other keys
    let c = json!({"apps": {"tls": {"automation": {"on_demand": {}}}, "http": {"servers": {}}}});
    let plan = plan_put("a", &a, &c, &no_apps).unwrap();
    assert_eq!(
        (plan.calls[0].method, plan.calls[0].path.as_str()),
        ("PUT", "/config/apps/tls/automation/policies")
    );
    // no issuer, one the shorthand does not offer, or no hosts: no policy
    let mut odd = a.clone();
    odd["@kata.issuer"] = json!("zerossl");
    assert_eq!(policy("a", &odd), None);
    assert_eq!(
        policy("a", &app_server(&[":443"], Some("a.test"), "x:1")),
        None
    );
    let mut all = tls_server(&[":443"], "a.test", "internal");
    all["routes"][0]
        .as_object_mut()
        .unwrap()
        .shift_remove("match");
    assert_eq!(policy("a", &all), None);
}
