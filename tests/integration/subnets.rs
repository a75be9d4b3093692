//! Apps' networks get kata's subnets, not Docker's default pools: on a
//! private dockerd whose default pool holds only two networks (both taken
//! first), five apps deploy and answer (compose v1 and v2), a redeploy keeps
//! its subnet, and `rm` frees one that the next app does not get at once.

use crate::support::images::{self, BUSYBOX};
use crate::support::private_dockerd::{self, PrivateDockerd};
use crate::support::push::{LocalApp, wait_body};
use crate::support::{Kata, docker, docker_ok, unique};
use std::collections::BTreeSet;

#[test]
fn apps_deploy_beyond_a_tiny_default_address_pool() {
    images::ensure_test_images();
    let engine = PrivateDockerd::start(&["--default-address-pool", "base=10.99.0.0/25,size=26"]);
    engine.load_image(BUSYBOX);
    engine.rerun("subnets::tiny_pool_inner");
}

fn httpd_app(kata: &Kata, compose: &str, body: &str) -> LocalApp {
    let app = LocalApp::new(kata, &unique("sub")).push_env("KATA_COMPOSE", compose);
    app.write(
        "kata-compose.yaml",
        &format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    command: httpd -f -p 8080 -h /app/www\n    volumes:\n      - app:/app\n"
        ),
    )
    .write("www/index.html", body)
    .commit(body);
    app
}

/// The subnets of the app's default network, as docker has it.
fn subnet_of(app: &str) -> String {
    docker_ok([
        "network",
        "inspect",
        &format!("{app}_default"),
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
    ])
    .trim()
    .to_owned()
}

#[test]
#[ignore = "run by apps_deploy_beyond_a_tiny_default_address_pool on its private dockerd"]
fn tiny_pool_inner() {
    assert!(private_dockerd::inside(), "needs the private dockerd");
    // Docker's own pool: two networks, then nothing.
    let plain = [unique("plain"), unique("plain")];
    for n in &plain {
        docker_ok(["network", "create", n]);
    }
    let third = docker(["network", "create", &unique("plain")]);
    assert!(
        !third.status.success() && third.stderr.contains("non-overlapping"),
        "the engine's default pool should be full: {}",
        third.stderr
    );

    let kata = Kata::setup();
    // 8 subnets of /27: room for these apps, small enough to see the cursor
    kata.args([
        "setup",
        "--subnet-pool",
        "10.200.0.0/24",
        "--subnet-prefix",
        "27",
    ])
    .success();
    let mut apps = vec![];
    for (i, compose) in ["v1", "v2", "v1", "v2"].into_iter().enumerate() {
        let body = format!("app {i}\n");
        let app = httpd_app(&kata, compose, &body);
        app.push_ok();
        wait_body(&app.name, "web", 8080, "/index.html", &body, 60);
        apps.push(app);
    }
    let subnets: Vec<String> = apps.iter().map(|a| subnet_of(&a.name)).collect();
    let distinct: BTreeSet<&String> = subnets.iter().collect();
    assert_eq!(distinct.len(), 4, "{subnets:?}");
    for s in &subnets {
        assert!(
            s.starts_with("10.200.0.") && s.ends_with("/27"),
            "{subnets:?}"
        );
    }
    // what kata recorded is what docker has
    let record =
        std::fs::read_to_string(kata.path(format!("state/apps/{}/subnets.json", apps[0].name)))
            .unwrap();
    assert!(record.contains(&subnets[0]), "{record}");

    // a redeploy (new code, new containers) keeps the app's subnet
    apps[1]
        .write("www/index.html", "app 1 again\n")
        .commit("again");
    apps[1].push_ok();
    wait_body(
        &apps[1].name,
        "web",
        8080,
        "/index.html",
        "app 1 again\n",
        60,
    );
    assert_eq!(subnet_of(&apps[1].name), subnets[1]);

    // rm frees a subnet; the next app gets another one first
    kata.args(["rm", "-f", &apps[2].name]).success();
    assert!(
        !docker(["network", "inspect", &format!("{}_default", apps[2].name)])
            .status
            .success()
    );
    let next = httpd_app(&kata, "v2", "app 4\n");
    next.push_ok();
    wait_body(&next.name, "web", 8080, "/index.html", "app 4\n", 60);
    let got = subnet_of(&next.name);
    assert!(
        !subnets.contains(&got),
        "{got} was handed out again too soon: {subnets:?}"
    );

    // the listing sees every app with one docker snapshot
    let ls = kata.args(["ls", "--json"]).success();
    let rows: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    let running = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["running"] == true)
        .count();
    assert_eq!(running, 4, "{}", ls.stdout);
    for n in &plain {
        let _ = docker(["network", "rm", n]);
    }
}
