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
    let list = entries(&c, &no_apps).unwrap();
    let names: Vec<(&str, &str, bool)> = list
        .iter()
        .map(|e| (e.name.as_str(), e.server.as_str(), e.part))
        .collect();
    assert_eq!(
        names,
        [
            ("a", "kata.80", true),
            ("b", "kata.80", true),
            ("handmade", "handmade", false)
        ]
    );
    assert_eq!(list[1].view, app_server(&listen, Some("b.test"), "y:1"));
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
