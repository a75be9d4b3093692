//! Runtime services stop when asked: the kata-runtime entrypoint runs the
//! app as its child and passes SIGTERM on, so `docker stop` (and the retiring
//! of old containers after a switch) does not wait out the grace period.

use crate::support::images;
use crate::support::push::{LocalApp, container_ids, inspect, wait_answer};
use crate::support::{Kata, docker_ok, engine_shared, unique};

#[test]
fn a_python_runtime_service_dies_of_sigterm_not_of_the_grace_period() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = Kata::setup();
    let name = unique("sig");
    let app = LocalApp::new(&kata, &name);
    app.write(
        "kata-compose.yaml",
        "services:\n  web:\n    runtime: python\n    command: python3 app.py\n",
    )
    .write(
        "app.py",
        "import http.server\n\
         class H(http.server.BaseHTTPRequestHandler):\n    \
             def do_GET(self):\n        \
                 self.send_response(200); self.end_headers(); self.wfile.write(b'up')\n\
         http.server.HTTPServer(('', 8000), H).serve_forever()\n",
    )
    .commit("python");
    app.push_ok();
    assert_eq!(wait_answer(&name, "web", 8000, "/", 60), "up");
    let ids = container_ids(&name, "web");
    assert_eq!(ids.len(), 1, "{ids:?}");
    // PID 1 is the entrypoint; the app is its child, so SIGTERM has its
    // default effect on it.
    let top = docker_ok(["top", &ids[0], "-o", "pid,ppid,args"]);
    assert!(top.contains("python3 app.py"), "{top}");
    // A long grace period: were SIGTERM ignored, docker would SIGKILL (137)
    // after it; dying of SIGTERM gives 128 + 15.
    docker_ok(["stop", "--time", "120", &ids[0]]);
    assert_eq!(inspect(&ids[0], "{{.State.ExitCode}}"), "143");
}
