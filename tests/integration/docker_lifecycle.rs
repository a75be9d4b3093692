//! Day-two commands on apps pushed to the real Docker engine, under compose
//! v1 and v2: dependency order and data that outlives redeploys and `rm`,
//! every lifecycle command, and `config:*` reaching the running containers.

use crate::support::images::{self, BUSYBOX};
use crate::support::push::{LocalApp, container_ids, inspect, service_ips, wait_body};
use crate::support::{Kata, Outcome, docker_ok, engine_shared, unique, wait_for};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

/// A KATA_ROOT whose kata commands use the compose CLI `compose` (v1|v2),
/// as the pushes do, so that redeploys keep to it.
fn kata_with(compose: &str) -> Kata {
    let mut kata = Kata::setup();
    kata.set_env("KATA_COMPOSE", compose);
    kata
}

fn new_app(kata: &Kata, prefix: &str, compose: &str) -> LocalApp {
    LocalApp::new(kata, &unique(prefix)).push_env("KATA_COMPOSE", compose)
}

/// The app's row in `kata ls --json`, if listed.
fn ls_row(kata: &Kata, app: &str) -> Option<Value> {
    let o = kata.args(["ls", "--json"]).success();
    let rows: Vec<Value> = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("ls --json is not JSON ({e}):\n{}", o.stdout));
    rows.into_iter().find(|r| r["name"] == app)
}

/// `kata ps APP [SERVICE] --json`.
fn ps_json(kata: &Kata, app: &str, service: Option<&str>) -> Vec<Value> {
    let mut args = vec!["ps", app];
    args.extend(service);
    args.push("--json");
    let o = kata.args(args).success();
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("ps --json ({e}):\n{}", o.stdout))
}

/// Docker objects of any kind that still carry the app's compose project.
fn leftovers(app: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={app}");
    let mut out = vec![];
    for kind in [
        &["ps", "-aq"][..],
        &["network", "ls", "-q"],
        &["volume", "ls", "-q"],
    ] {
        let mut args: Vec<&str> = kind.to_vec();
        args.extend(["--filter", &filter]);
        out.extend(
            docker_ok(&args)
                .split_whitespace()
                .map(|id| format!("{} {id}", kind[0])),
        );
    }
    // kata's bind-mount volumes (one per release for the code)
    out.extend(
        docker_ok(["volume", "ls", "-q", "--filter", &format!("name={app}_")])
            .split_whitespace()
            .filter(|v| v.starts_with(&format!("{app}_")))
            .map(|v| format!("volume {v}")),
    );
    out.sort();
    out.dedup();
    out
}

/// When the container last started, as `(seconds part, nanoseconds)` of
/// Docker's RFC 3339 UTC time: comparable, unlike the text (Docker drops
/// trailing zeros of the fraction).
fn started_at(id: &str) -> (String, u64) {
    let t = inspect(id, "{{.State.StartedAt}}");
    let t = t
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("not UTC: {t}"));
    let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
    let nanos = format!("{frac:0<9}").parse().expect("fraction of a second");
    (secs.to_owned(), nanos)
}

fn only_container(app: &str, service: &str) -> String {
    let ids = container_ids(app, service);
    assert_eq!(ids.len(), 1, "{app}/{service}: {ids:?}");
    ids[0].clone()
}

// ---------------------------------------------------------------------------
// (c) depends_on order, data that survives

/// `db` serves a token (its own container hostname) once it is up, and is
/// healthy only then; `web` depends on it being healthy, fetches the token
/// exactly once at start (no retry: a `web` started first would exit) and
/// serves it. It also appends a line per start to a file in its data dir.
fn multi_service_yaml(version: &str) -> String {
    format!(
        r#"services:
  db:
    image: {BUSYBOX}
    command: sh -c 'mkdir -p /srv && hostname > /srv/token && exec httpd -f -p 8081 -h /srv'
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8081/token"]
      interval: 1s
      timeout: 2s
      retries: 30
  web:
    image: {BUSYBOX}
    depends_on:
      db:
        condition: service_healthy
    environment:
      VERSION: "{version}"
    command: sh -c 'mkdir -p /www && wget -q -O /www/token http://db:8081/token && echo "boot $$VERSION" >> /data/boot.log && exec httpd -f -p 8080 -h /www'
    volumes:
      - data:/data
"#
    )
}

fn depends_on_order_and_data_survive_redeploy_and_rm(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = kata_with(compose);
    let app = new_app(&kata, "multi", compose);
    let name = app.name.clone();
    app.write("kata-compose.yaml", &multi_service_yaml("1"))
        .commit("v1");
    app.push_ok();

    // web got db's token: db was up and serving before web's command ran.
    let db = only_container(&name, "db");
    let db_host = inspect(&db, "{{.Config.Hostname}}");
    wait_body(&name, "web", 8080, "/token", &format!("{db_host}\n"), 60);
    let web = only_container(&name, "web");
    assert!(
        started_at(&db) < started_at(&web),
        "db started {:?} but web {:?}",
        started_at(&db),
        started_at(&web)
    );
    let boot_log = kata.path(format!("data/{name}/boot.log"));
    assert_eq!(std::fs::read_to_string(&boot_log).unwrap(), "boot 1\n");

    // A config value and a redeploy with a changed web: the data stays.
    // (The ENV file reaches every service, so db is new too.)
    kata.args(["config:set", &name, "KEEP=me", "--no-deploy"])
        .success();
    app.write("kata-compose.yaml", &multi_service_yaml("2"))
        .commit("v2");
    app.push_ok();
    let db_host = inspect(&only_container(&name, "db"), "{{.Config.Hostname}}");
    wait_body(&name, "web", 8080, "/token", &format!("{db_host}\n"), 60);
    wait_for("web v2 to boot", Duration::from_secs(30), || {
        std::fs::read_to_string(&boot_log).unwrap_or_default() == "boot 1\nboot 2\n"
    });

    // rm without --wipe: everything Docker is gone, data/ and config/ stay.
    let o = kata.args(["rm", "-f", &name]).success();
    assert!(o.stdout.contains("use --wipe"), "{}", o.stdout);
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
    assert_eq!(leftovers(&name), Vec::<String>::new());
    assert!(ls_row(&kata, &name).is_none());
    assert_eq!(
        std::fs::read_to_string(&boot_log).unwrap(),
        "boot 1\nboot 2\n"
    );
    assert!(
        std::fs::read_to_string(kata.path(format!("config/{name}/ENV")))
            .unwrap()
            .contains("KEEP=me")
    );

    // Pushed again, the app finds its data and config where it left them.
    app.push_ok();
    wait_for("web to boot again", Duration::from_secs(60), || {
        std::fs::read_to_string(&boot_log).unwrap_or_default() == "boot 1\nboot 2\nboot 2\n"
    });
    let o = kata.args(["config:get", &name, "KEEP"]).success();
    assert_eq!(o.stdout, "me\n");

    // rm --wipe removes them too.
    kata.args(["rm", "-f", "--wipe", &name]).success();
    assert_eq!(leftovers(&name), Vec::<String>::new());
    assert!(!kata.path(format!("data/{name}")).exists());
    assert!(!kata.path(format!("config/{name}")).exists());
    assert!(!kata.path(format!("repos/{name}")).exists());
    assert!(
        kata.args(["ps", &name])
            .failure()
            .stderr
            .contains("does not exist")
    );
}

#[test]
fn depends_on_order_and_data_survive_redeploy_and_rm_v2() {
    depends_on_order_and_data_survive_redeploy_and_rm("v2");
}

#[test]
fn depends_on_order_and_data_survive_redeploy_and_rm_v1() {
    depends_on_order_and_data_survive_redeploy_and_rm("v1");
}

// ---------------------------------------------------------------------------
// (e) lifecycle commands

/// `web` serves the pushed tree and says so in its log; `worker` prints a
/// numbered tick every second.
fn lifecycle_yaml() -> String {
    format!(
        r#"services:
  web:
    image: {BUSYBOX}
    command: sh -c 'echo web-is-up && exec httpd -f -p 8080 -h /app/www'
    volumes:
      - app:/app
  worker:
    image: {BUSYBOX}
    command: sh -c 'i=0; while true; do i=$$((i+1)); echo "tick $$i"; sleep 1; done'
"#
    )
}

/// The number of the last `tick N` line in `text`.
fn last_tick(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.split("tick ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
}

/// Spawns `kata logs -f APP worker`, reads until a tick later than `after`
/// shows up while the command is still following, then kills it.
fn follow_logs_sees_new_lines(kata: &Kata, app: &str, after: u64) {
    let mut cmd = kata.args(["logs", "-f", app, "worker"]).command();
    // Its own process group: the docker client it runs goes with it.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn kata logs -f");
    let pid = child.id() as i32;
    let _kill = crate::support::Cleanup::new(move || {
        // SAFETY: signals the process group of the child spawned above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = vec![];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let newer = last_tick(&line).is_some_and(|n| n > after);
                seen.push(line);
                if newer {
                    break;
                }
            }
            Err(e) => panic!("logs -f: no tick after {after} ({e}); saw {seen:#?}"),
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "logs -f exited instead of following"
    );
    drop(_kill);
    let _ = child.wait();
}

fn lifecycle_commands_work_end_to_end(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = kata_with(compose);
    let app = new_app(&kata, "life", compose);
    let name = app.name.clone();
    app.write("kata-compose.yaml", &lifecycle_yaml())
        .write("www/index.html", "life v1")
        .commit("v1");
    app.push_ok();
    wait_body(&name, "web", 8080, "/", "life v1", 30);

    // config:stack and config:docker print the live release's files
    let o = kata.args(["config:stack", &name]).success();
    assert_eq!(o.stdout, lifecycle_yaml());
    let o = kata.args(["config:docker", &name]).success();
    let compose =
        std::fs::read_to_string(kata.path(format!("app/{name}/.docker-compose.yaml"))).unwrap();
    assert_eq!(o.stdout, compose);
    assert!(
        o.stdout.contains(&format!("name: {name}_app_r1")),
        "{}",
        o.stdout
    );

    // ls: table and JSON
    let row = ls_row(&kata, &name).expect("app listed");
    assert_eq!(row["running"], true, "{row}");
    assert_eq!(row["containers"], 2, "{row}");
    assert_eq!(row["running_containers"], 2, "{row}");
    assert_eq!(row["release"], 1, "{row}");
    assert_eq!(row["mode"], "compose", "{row}");
    assert_eq!(row["route"], "-", "no caddy: block, nothing routed: {row}");
    let o = kata.arg("ls").success();
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in\n{}", o.stdout));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [name.as_str(), "running", "2/2", "1", "compose", "-"]
    );

    // ps APP [SERVICE]
    let all = ps_json(&kata, &name, None);
    let mut services: Vec<&str> = all.iter().map(|c| c["service"].as_str().unwrap()).collect();
    services.sort();
    assert_eq!(services, ["web", "worker"]);
    assert!(all.iter().all(|c| c["state"] == "running"), "{all:?}");
    let worker = ps_json(&kata, &name, Some("worker"));
    assert_eq!(worker.len(), 1);
    assert_eq!(
        worker[0]["id"].as_str(),
        Some(&only_container(&name, "worker")[..12])
    );
    let o = kata.args(["ps", &name, "web"]).success();
    assert!(o.stdout.starts_with("CONTAINER"), "{}", o.stdout);
    assert_eq!(o.stdout.lines().count(), 2, "{}", o.stdout);
    assert!(o.stdout.contains(" web "), "{}", o.stdout);
    assert!(!o.stdout.contains("worker"), "{}", o.stdout);

    // logs APP [SERVICE] [--tail N]
    wait_for("three ticks", Duration::from_secs(30), || {
        let o = kata.args(["logs", &name, "worker"]).success();
        last_tick(&o.stdout).is_some_and(|n| n >= 3)
    });
    let o = kata
        .args(["logs", &name, "worker", "--tail", "2"])
        .success();
    let ticks: Vec<&str> = o.stdout.lines().filter(|l| l.contains("tick ")).collect();
    assert_eq!(ticks.len(), 2, "{}", o.stdout);
    assert!(!o.stdout.contains("web-is-up"), "{}", o.stdout);
    let o = kata.args(["logs", &name]).success();
    assert!(o.stdout.contains("web-is-up"), "{}", o.stdout);
    assert!(o.stdout.contains("tick 1"), "{}", o.stdout);
    let now = last_tick(&o.stdout).unwrap();
    let o = kata.args(["logs", &name, "--tail", "x"]).failure();
    assert!(o.stderr.contains("--tail"), "{}", o.stderr);
    // logs -f follows: a tick newer than any seen so far arrives
    follow_logs_sees_new_lines(&kata, &name, now);

    // stop / start
    kata.args(["stop", &name]).success();
    let row = ls_row(&kata, &name).unwrap();
    assert_eq!(row["running"], false, "{row}");
    assert_eq!(row["running_containers"], 0, "{row}");
    assert!(service_ips(&name, "web").is_empty());
    assert!(kata.arg("ls").success().stdout.contains(" stopped "));
    kata.args(["start", &name]).success();
    let row = ls_row(&kata, &name).unwrap();
    assert_eq!(row["running_containers"], 2, "{row}");
    wait_body(&name, "web", 8080, "/", "life v1", 30);

    // restart APP SERVICE restarts only that service; restart APP both
    let (web, worker) = (
        only_container(&name, "web"),
        only_container(&name, "worker"),
    );
    let (web_t, worker_t) = (started_at(&web), started_at(&worker));
    kata.args(["restart", &name, "web"]).success();
    assert_ne!(started_at(&only_container(&name, "web")), web_t);
    assert_eq!(started_at(&only_container(&name, "worker")), worker_t);
    let web_t = started_at(&only_container(&name, "web"));
    kata.args(["restart", &name]).success();
    assert_ne!(started_at(&only_container(&name, "web")), web_t);
    assert_ne!(started_at(&only_container(&name, "worker")), worker_t);
    wait_body(&name, "web", 8080, "/", "life v1", 30);
    let o = kata.args(["restart", &name, "nosuch"]).failure();
    assert!(o.stderr.contains("nosuch"), "{}", o.stderr);

    // run APP SERVICE CMD... without a TTY: output, stdin and exit code
    let o = kata
        .args(["run", &name, "web", "cat", "/app/www/index.html"])
        .success();
    assert_eq!(o.stdout, "life v1");
    let o = kata
        .args(["run", &name, "web", "sh", "-c", "tr a-z A-Z"])
        .stdin("from stdin")
        .success();
    assert_eq!(o.stdout, "FROM STDIN");
    kata.args(["run", &name, "worker", "sh", "-c", "exit 7"])
        .code(7);
    let o = kata.args(["run", &name, "nosuch", "true"]).failure();
    assert!(o.stderr.contains("nosuch"), "{}", o.stderr);

    // docker … passthrough, with docker's exit status and message
    let o = kata
        .args([
            "docker",
            "ps",
            "--filter",
            &format!("label=kata.app={name}"),
            "--format",
            "{{.Label \"kata.service\"}}",
        ])
        .success();
    let mut listed: Vec<&str> = o.stdout.lines().collect();
    listed.sort();
    assert_eq!(listed, ["web", "worker"]);
    let o = kata
        .args(["docker", "inspect", "kata-no-such-object"])
        .failure();
    assert!(o.stderr.contains("No such object"), "{}", o.stderr);

    // docker:services APP (compose: the project's services)
    let o = kata.args(["docker:services", &name]).success();
    let mut listed: Vec<&str> = o.stdout.lines().collect();
    listed.sort();
    assert_eq!(listed, ["web", "worker"]);

    // secrets:* are swarm only: a clear error in compose mode
    for args in [
        &["secrets:set", "kata-test-secret=x"][..],
        &["secrets:ls"],
        &["secrets:rm", "kata-test-secret"],
    ] {
        let o = kata.args(args).failure();
        assert!(o.stderr.contains("swarm"), "{args:?}: {}", o.stderr);
    }

    // mode APP [compose|swarm]: an explicit choice is kept across deploys
    let o = kata.args(["mode", &name]).success();
    assert!(o.stdout.starts_with("compose (automatic"), "{}", o.stdout);
    kata.args(["mode", &name, "swarm"]).success();
    assert!(
        kata.args(["mode", &name])
            .success()
            .stdout
            .starts_with("swarm (set by `kata mode`)")
    );
    // this node is not in a swarm: the push says so and v1 keeps serving
    app.write("www/index.html", "life v2").commit("v2");
    let o = app.push_fails();
    assert!(o.stderr.contains("not in a swarm"), "{}", o.stderr);
    wait_body(&name, "web", 8080, "/", "life v1", 30);
    // the file asks for swarm; the stored choice wins
    kata.args(["mode", &name, "compose"]).success();
    app.write(
        "kata-compose.yaml",
        &format!("{}x-kata-mode: swarm\n", lifecycle_yaml()),
    )
    .commit("v3");
    let o = app.push_ok();
    assert!(
        o.stderr.contains("Mode: compose (set by `kata mode`)"),
        "{}",
        o.stderr
    );
    wait_body(&name, "web", 8080, "/", "life v2", 30);

    // branch APP [BRANCH]: the per-app deploy branch
    let o = kata.args(["branch", &name]).success();
    assert_eq!(o.stdout, "main (automatic: main, else master)\n");
    kata.args(["branch", &name, "prod"]).success();
    assert_eq!(
        kata.args(["branch", &name]).success().stdout,
        "prod (set by `kata branch`)\n"
    );
    app.write("www/index.html", "life v3").commit("v4");
    let o = app.push_ok();
    assert!(
        o.stderr
            .contains("Branch main stored; deploys happen from prod"),
        "{}",
        o.stderr
    );
    wait_body(&name, "web", 8080, "/", "life v2", 30);
    kata.args(["branch", &name, "--unset"]).success();
    assert!(
        kata.args(["branch", &name, "no..way"])
            .failure()
            .stderr
            .contains("invalid branch")
    );
    assert_eq!(
        kata.args(["branch", &name]).success().stdout,
        "main (automatic: main, else master)\n"
    );

    // rm asks; without a terminal it refuses unless -f
    let o = kata.args(["rm", &name]).failure();
    assert!(o.stderr.contains("--force"), "{}", o.stderr);
    assert!(ls_row(&kata, &name).is_some());
    assert_eq!(service_ips(&name, "web").len(), 1);
    kata.args(["rm", "--force", &name]).success();
    assert!(ls_row(&kata, &name).is_none());
    assert_eq!(leftovers(&name), Vec::<String>::new());
}

#[test]
fn lifecycle_commands_work_end_to_end_v2() {
    lifecycle_commands_work_end_to_end("v2");
}

#[test]
fn lifecycle_commands_work_end_to_end_v1() {
    lifecycle_commands_work_end_to_end("v1");
}

// ---------------------------------------------------------------------------
// (f) config:set / config:unset

/// The value of `key` in the running web container's environment.
fn env_in_container(kata: &Kata, app: &str, key: &str) -> Outcome {
    kata.args([
        "run",
        app,
        "web",
        "sh",
        "-c",
        &format!("printf %s \"${key}\""),
    ])
    .success()
}

fn config_changes_the_running_environment(compose: &str) {
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = kata_with(compose);
    let app = new_app(&kata, "conf", compose);
    let name = app.name.clone();
    app.write(
        "kata-compose.yaml",
        &format!(
            "environment:\n  GREETING: from the file\nservices:\n  web:\n    image: {BUSYBOX}\n    command: sleep 3600\n"
        ),
    )
    .commit("v1");
    app.push_ok();
    assert_eq!(
        env_in_container(&kata, &name, "GREETING").stdout,
        "from the file"
    );

    let values = [
        ("SPACES", "two  words and a trailing space "),
        ("QUOTES", r#"it's "quoted" \ back\slash"#),
        ("EQUALS", "a=b=c"),
        ("NEWLINES", "line one\nline two\n"),
        ("DOLLARS", "cost $5, ${HOME} and $$"),
        ("GREETING", "from config:set"),
    ];
    let pairs: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["config:set".to_owned(), name.clone()];
    args.extend(pairs);
    kata.args(&args).success();
    for (k, v) in values {
        assert_eq!(
            kata.args(["config:get", &name, k]).success().stdout,
            format!("{v}\n"),
            "config:get {k}"
        );
        assert_eq!(
            env_in_container(&kata, &name, k).stdout,
            v,
            "{k} in the container"
        );
    }
    let shown = kata.args(["config", &name]).success().stdout;
    assert!(shown.contains(r#"EQUALS="a=b=c""#), "{shown}");
    assert!(
        shown.contains(r#"NEWLINES="line one\nline two\n""#),
        "{shown}"
    );
    // a redeploy made a new release
    assert_eq!(ls_row(&kata, &name).unwrap()["release"], 2);

    kata.args(["config:unset", &name, "QUOTES", "GREETING"])
        .success();
    let o = kata.args(["config:get", &name, "QUOTES"]).failure();
    assert!(o.stderr.contains("QUOTES is not set"), "{}", o.stderr);
    assert_eq!(env_in_container(&kata, &name, "QUOTES").stdout, "");
    assert_eq!(
        env_in_container(&kata, &name, "GREETING").stdout,
        "from the file"
    );
    assert_eq!(env_in_container(&kata, &name, "EQUALS").stdout, "a=b=c");

    // Bad input changes nothing.
    kata.args(["config:set", &name, "NOEQUALS"]).failure();
    kata.args(["config:set", &name, "1BAD=x"]).failure();
    kata.args(["config:unset", &name, "BAD-NAME"]).failure();
    assert_eq!(ls_row(&kata, &name).unwrap()["release"], 3);
}

#[test]
fn config_changes_the_running_environment_v2() {
    config_changes_the_running_environment("v2");
}

#[test]
fn config_changes_the_running_environment_v1() {
    config_changes_the_running_environment("v1");
}

/// `rm` without `-f` asks on a terminal (a real pty from `script`) and
/// removes only when the app's name is typed back; without a terminal it
/// refuses.
#[test]
fn rm_asks_for_the_app_name_on_a_terminal() {
    let kata = Kata::setup();
    let name = unique("ask");
    std::fs::create_dir_all(kata.path(format!("repos/{name}"))).unwrap();
    std::fs::create_dir_all(kata.path(format!("data/{name}"))).unwrap();
    let on_a_terminal = |answer: &str| {
        let mut c = std::process::Command::new("script");
        c.args(["-q", "-e", "-c"])
            .arg(format!("{} rm {name}", kata.bin().display()))
            .arg("/dev/null")
            .env("KATA_ROOT", kata.root());
        let out = crate::support::output_with_timeout(
            &mut c,
            Some(format!("{answer}\n").as_bytes()),
            Duration::from_secs(60),
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let o = kata.args(["rm", &name]).failure();
    assert!(
        o.stderr.contains("without --force (no terminal to ask on)"),
        "{}",
        o.stderr
    );
    let (code, out) = on_a_terminal("not-the-name");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Type the app name to confirm"), "{out}");
    assert!(out.contains("not removed"), "{out}");
    assert!(kata.path(format!("repos/{name}")).is_dir());

    let (code, out) = on_a_terminal(&name);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("Removing {name}")), "{out}");
    assert!(!kata.path(format!("repos/{name}")).exists());
    assert!(
        kata.path(format!("data/{name}")).is_dir(),
        "data survives rm without --wipe"
    );
}
