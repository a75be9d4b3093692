//! Pushed apps run on the real Docker engine (compose v1, compose v2).

use crate::support::images::{self, BUSYBOX};
use crate::support::push::{LocalApp, wait_answer};
use crate::support::{Kata, unique};

/// A busybox httpd serving `body` from the pushed tree, on port 8080.
fn httpd_app(app: &LocalApp, body: &str) {
    app.write(
        "kata-compose.yaml",
        &format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    command: httpd -f -p 8080 -h /app/www\n    volumes:\n      - app:/app\n"
        ),
    )
    .write("www/index.html", body)
    .commit(body);
}

fn image_only_app_answers(compose: &str) {
    images::ensure_test_images();
    let kata = Kata::setup();
    let app = LocalApp::new(&kata, &unique("img")).push_env("KATA_COMPOSE", compose);
    httpd_app(&app, "hello from busybox");
    let out = app.push_ok();
    assert!(out.stderr.contains("-----> "), "{}", out.stderr);
    assert_eq!(wait_answer(&app.name, "web", 8080, "/", 30), "hello from busybox");
}

#[test]
fn image_only_app_answers_v2() {
    image_only_app_answers("v2");
}

#[test]
fn image_only_app_answers_v1() {
    image_only_app_answers("v1");
}
