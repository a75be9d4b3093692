//! The trust boundary: nothing an app's containers can write is read back by
//! kata to decide what runs. An attacker inside the container (and inside
//! the build step) rewrites every file it can reach under its mounts; the
//! lifecycle commands, a push and a rollback that follow run only what kata
//! recorded. Plus the review's smaller findings: config values off argv,
//! service names checked, symlinks out of a checkout refused, locked config
//! writes before the first push, private KATA_ROOT directories.

use crate::support::caddy::{Caddy, http_get as caddy_get};
use crate::support::images::{self, BUSYBOX};
use crate::support::push::{LocalApp, wait_body};
use crate::support::{Kata, engine_shared, free_port, unique, wait_for};
use std::path::Path;
use std::time::Duration;

/// What a compromised app does, inside its container or its build step:
/// replace kata's generated compose file with a root service that mounts a
/// host directory, the spec with one that adds such a service and a hostile
/// Caddy route, the pushed `.env`, the config, and deface the site.
fn attack_script(host_dir: &Path, hostile_port: u16) -> String {
    let host = host_dir.display();
    format!(
        r#"#!/bin/sh
# usage: attack.sh WHERE   (WHERE names the marker the hostile service writes)
where="$1"
cat > /app/.docker-compose.yaml <<EOF
name: pwn
services:
  pwn:
    image: {BUSYBOX}
    user: "0:0"
    command: sh -c 'id > /host/pwned-compose-$where'
    volumes: ["{host}:/host"]
EOF
cp /app/.docker-compose.yaml /app/docker-compose.yaml
cat > /app/kata-compose.yaml <<EOF
services:
  web:
    image: {BUSYBOX}
    command: sh -c 'id > /host/pwned-spec-$where; sleep 3600'
    volumes: ["{host}:/host"]
caddy:
  listen: [":{hostile_port}"]
  domains: ["pwned.test"]
  routes:
    - handle:
        - handler: static_response
          body: pwned
EOF
echo "DOTENV_VALUE=hostile" > /app/.env
# (the build step must not deface: every deploy runs it)
[ "$where" = build ] || echo "defaced" > /app/public/index.html
for f in /config/ENV /config/.env /config/evil; do
  if (echo "SECRET=changed" >> "$f") 2>/dev/null; then echo "wrote $f"; else echo "refused $f"; fi
done
echo x > /data/attacker-was-here && echo "wrote /data"
echo x > /venv/attacker-was-here && echo "wrote /venv"
echo "attack $where done"
"#
    )
}

fn spec(port: u16, name: &str) -> String {
    format!(
        r#"build:
  commands:
    - sh /app/attack.sh build
services:
  web:
    runtime: static
    root: public
    environment:
      PORT: "8000"
      FROM_DOTENV: "${{DOTENV_VALUE}}"
    volumes:
      - ./conf:/conf:ro
    healthcheck:
      path: /
caddy:
  listen: [":{port}"]
  domains: ["{name}.test"]
  service: web
  port: 8000
  https: false
"#
    )
}

/// The attacker's traces that must never appear: marker files on the host,
/// a hostile route in Caddy.
fn assert_contained(step: &str, host_dir: &Path, caddy: &Caddy, hostile_port: u16) {
    let markers: Vec<String> = std::fs::read_dir(host_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        markers.is_empty(),
        "after {step}: the attacker's service ran: {markers:?}"
    );
    let config = caddy.config().to_string();
    assert!(
        !config.contains("pwned") && !config.contains(&format!(":{hostile_port}")),
        "after {step}: a hostile route went live: {config}"
    );
}

fn run_attacker(kata: &Kata, name: &str, where_: &str) {
    let o = kata
        .args(["run", name, "web", "sh", "/app/attack.sh", where_])
        .success();
    // the attack really wrote where it could, and nothing under /config
    assert!(
        o.stdout.contains(&format!("attack {where_} done")),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("wrote /data"), "{}", o.stdout);
    assert!(!o.stdout.contains("wrote /config"), "{}", o.stdout);
    assert!(o.stdout.contains("refused /config/ENV"), "{}", o.stdout);
    let o = kata
        .args(["run", name, "web", "cat", "/app/.docker-compose.yaml"])
        .success();
    assert!(o.stdout.contains("pwned-compose"), "{}", o.stdout);
}

#[test]
fn an_attacker_in_the_container_changes_nothing_kata_runs() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    kata.args(["setup", "--base-image", BUSYBOX]).success();
    let host_dir = tempfile::Builder::new()
        .prefix("kata-pwn-")
        .tempdir()
        .unwrap();
    let (port, hostile_port) = (free_port(), free_port());
    let name = unique("contain");
    let config = "SECRET=s3cret\n";
    kata.write_app_config(&name, config);
    let config_file = kata.path(format!("config/{name}/ENV"));

    let app = LocalApp::new(&kata, &name);
    app.write("kata-compose.yaml", &spec(port, &name))
        .write("attack.sh", &attack_script(host_dir.path(), hostile_port))
        .write(".env", "DOTENV_VALUE=pushed\n")
        .write("public/index.html", "v1\n")
        .write("conf/app.conf", "conf\n")
        .commit("v1");
    // the build step attacks first
    let out = app.push_ok();
    assert!(out.stderr.contains("attack build done"), "{}", out.stderr);
    let live = |body: &str| {
        wait_for(
            &format!("{name} to serve {body:?}"),
            Duration::from_secs(60),
            || caddy_get(port, &format!("{name}.test"), "/").2 == body,
        )
    };
    live("v1\n");
    assert_contained(
        "the build step's attack",
        host_dir.path(),
        &caddy,
        hostile_port,
    );

    run_attacker(&kata, &name, "start");
    kata.args(["stop", &name]).success();
    // containers gone (a prune, say): start creates them from the plan
    for id in crate::support::push::container_ids(&name, "web") {
        crate::support::docker_ok(["rm", "-f", &id]);
    }
    kata.args(["start", &name]).success();
    // the attacker owns the code it runs, nothing more
    wait_body(&name, "web", 8000, "/", "defaced\n", 60);
    live("defaced\n");
    let o = kata
        .args(["run", &name, "web", "printenv", "FROM_DOTENV"])
        .outcome();
    assert!(
        !o.stdout.contains("hostile"),
        "compose read the attacker's .env"
    );
    assert_contained("start", host_dir.path(), &caddy, hostile_port);

    run_attacker(&kata, &name, "restart");
    kata.args(["restart", &name]).success();
    live("defaced\n");
    assert_contained("restart", host_dir.path(), &caddy, hostile_port);

    run_attacker(&kata, &name, "deploy");
    kata.args(["deploy", &name]).success();
    live("v1\n"); // code comes from git again
    assert_contained("deploy", host_dir.path(), &caddy, hostile_port);

    run_attacker(&kata, &name, "push");
    app.write("public/index.html", "v2\n").commit("v2");
    app.push_ok();
    live("v2\n");
    assert_contained("a push", host_dir.path(), &caddy, hostile_port);

    run_attacker(&kata, &name, "rollback");
    let o = kata.args(["rollback", &name]).success();
    let said = format!("{}{}", o.stdout, o.stderr);
    assert!(said.contains("Rolling"), "{said}");
    live("v1\n");
    assert_contained("rollback", host_dir.path(), &caddy, hostile_port);

    assert_eq!(std::fs::read_to_string(&config_file).unwrap(), config);
    let listed: Vec<String> = std::fs::read_dir(kata.path(format!("config/{name}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, ["ENV"], "nothing new in the config dir");
    // what kata shows is the recorded plan, not the container's rewrite
    let o = kata.args(["config:stack", &name]).success();
    assert_eq!(o.stdout, spec(port, &name));
    let o = kata.args(["config:docker", &name]).success();
    assert!(!o.stdout.contains("pwn"), "{}", o.stdout);
    service_names_are_checked(&kata, &name);

    // A bind mount source in the code dir swapped for a symlink to the
    // host's root: the containers mount the release record's copy, so
    // creating them again from this release is fine and sees the pushed files.
    kata.args([
        "run",
        &name,
        "web",
        "sh",
        "-c",
        "rm -rf /app/conf && ln -s / /app/conf",
    ])
    .success();
    kata.args(["stop", &name]).success();
    for id in crate::support::push::container_ids(&name, "web") {
        crate::support::docker_ok(["rm", "-f", &id]);
    }
    kata.args(["start", &name]).success();
    live("v1\n");
    let o = kata
        .args(["run", &name, "web", "cat", "/conf/app.conf"])
        .success();
    assert_eq!(o.stdout, "conf\n");
    assert_contained(
        "the symlinked bind mount",
        host_dir.path(),
        &caddy,
        hostile_port,
    );
}

/// Service names come from the live release's recorded services: anything
/// else, flags above all, never reaches compose's or docker's argv.
fn service_names_are_checked(kata: &Kata, name: &str) {
    for args in [
        vec!["logs", name, "--", "--since=1h"],
        vec!["logs", name, "nosuch"],
        vec!["ps", name, "--", "--all"],
        vec!["restart", name, "--", "--timeout=1"],
        vec!["run", name, "--", "--privileged", "sh"],
    ] {
        let o = kata.args(&args).failure();
        assert!(
            o.stderr.contains("has no service"),
            "{args:?}: {}",
            o.stderr
        );
    }
    kata.args(["logs", name, "web", "--tail", "1"]).success();
}

/// A build step gets every config value, none of them on a command line:
/// the test reads every process's argv while the build runs.
#[test]
fn config_values_never_reach_a_command_line() {
    images::ensure_test_images();
    let _engine = engine_shared();
    let caddy = Caddy::start();
    let kata = Kata::setup();
    kata.args(["setup", "--caddy-admin", caddy.endpoint()])
        .success();
    kata.args(["setup", "--base-image", BUSYBOX]).success();
    let name = unique("argv");
    let (docker_secret, plain_secret) = (format!("dockerval-{name}"), format!("plainval-{name}"));
    kata.write_app_config(
        &name,
        &format!("DOCKER_TOKEN={docker_secret}\nPLAIN_SECRET={plain_secret}\n"),
    );
    let app = LocalApp::new(&kata, &name);
    app.write(
        "kata-compose.yaml",
        r#"build:
  commands:
    - echo "values-arrived $(printf %s "$DOCKER_TOKEN/$PLAIN_SECRET" | sha256sum | cut -c1-16)"
    - sleep 4
services:
  web:
    runtime: static
    root: public
    environment:
      PORT: "8000"
"#,
    )
    .write("public/index.html", "ok\n")
    .commit("v1");
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                        if cmd.contains(&name) {
                            seen.lock().unwrap().push(cmd);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let out = app.push_ok();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    });
    // the build saw both values (it printed their digest: its own command
    // line must not hold them either)
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!(
            "{docker_secret}/{plain_secret}"
        )))
    };
    assert!(
        out.stderr
            .contains(&format!("values-arrived {}", &digest[..16])),
        "{}",
        out.stderr
    );
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter()
            .any(|c| c.contains(&format!("kata.build={name}"))),
        "the build's docker run was never seen: {seen:?}"
    );
    for c in &seen {
        assert!(
            !c.contains(&docker_secret) && !c.contains(&plain_secret),
            "a config value on a command line: {c}"
        );
    }
}

/// A checkout's kata-compose.yaml that is a symlink (here to a host file
/// the pusher wants to read) is refused with a clear error. KATA_ROOT is
/// private from the first command on, without `kata setup`.
#[test]
fn a_symlinked_spec_is_refused_and_kata_root_is_private() {
    let parent = crate::support::world_readable_tempdir("kata-private-");
    let kata = Kata::new_in(parent.path());
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(kata.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let name = unique("symlink");
    kata.args(["config:set", &name, "SECRET=s3cret", "--no-deploy"])
        .success();
    let app = LocalApp::new(&kata, &name);
    app.write("index.html", "x\n");
    std::os::unix::fs::symlink("/etc/shadow", app.dir().join("kata-compose.yaml")).unwrap();
    app.commit("a spec that points at the host");
    let o = app.push();
    assert!(!o.status.success(), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("kata-compose.yaml: cannot read it from the pushed commit")
            && o.stderr.contains("symlink"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("root:"), "{}", o.stderr);

    // another host user reads none of repos, code, data or config
    use std::os::unix::fs::PermissionsExt;
    for dir in ["app", "data", "config", "envs", "logs", "repos", "state"] {
        let mode = std::fs::metadata(kata.path(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{dir} is {mode:o}");
    }
    let src = kata.path(format!("state/apps/{name}/releases/1/src"));
    assert!(src.join("index.html").is_file());
    for file in [
        kata.path(format!("repos/{name}/HEAD")),
        kata.path(format!("config/{name}/ENV")),
        src.join("index.html"),
    ] {
        let o = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "cat"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            !o.status.success() && o.stdout.is_empty(),
            "nobody read {}",
            file.display()
        );
    }
    // ... while the kata user can (the check above is not vacuous)
    assert!(kata.path(format!("repos/{name}/HEAD")).is_file());
}

/// `config:set` before an app's first push takes the app's lock: parallel
/// writers keep every key, and the app still looks never pushed.
#[test]
fn parallel_config_writers_before_the_first_push_keep_every_key() {
    let kata = Kata::setup();
    let name = unique("cfgrace");
    std::thread::scope(|s| {
        for w in 0..9 {
            let (kata, name) = (&kata, &name);
            s.spawn(move || {
                for k in 0..10 {
                    kata.args([
                        "config:set",
                        name,
                        &format!("K{w}_{k}={w}{k}"),
                        "--no-deploy",
                    ])
                    .success();
                }
            });
        }
    });
    let o = kata.args(["config", &name]).success();
    let keys = o.stdout.lines().filter(|l| l.starts_with('K')).count();
    assert_eq!(keys, 90, "{}", o.stdout);
    let o = kata.args(["ls", "--json"]).success();
    assert!(!o.stdout.contains(&name), "{}", o.stdout);
}

/// Docker resolves bind mount sources each time it starts a container, and
/// compose reads env and secret files each time it creates one, following
/// symlinks. A running container swaps every such path it can reach (the
/// code under `/app`, the data under `/data`) for a symlink to a host
/// directory; then Docker restarts it on its own, kata restarts it, compose
/// creates it again, and a push follows. Nothing it planted is followed.
#[test]
fn paths_a_container_swaps_for_symlinks_are_never_followed() {
    use crate::support::push::container_ids;
    use crate::support::{docker, docker_ok};
    images::ensure_test_images();
    let _engine = engine_shared();
    let kata = Kata::setup();
    let host = tempfile::Builder::new()
        .prefix("kata-host-")
        .tempdir()
        .unwrap();
    std::fs::write(host.path().join("app.conf"), "HOST FILE\n").unwrap();
    std::fs::write(host.path().join("secret"), "LEAK=host\n").unwrap();
    let name = unique("swap");
    let app = LocalApp::new(&kata, &name);
    let spec = format!(
        r#"services:
  web:
    image: {BUSYBOX}
    command: sh -c 'rm -f /tmp/die; while [ ! -f /tmp/die ]; do sleep 1; done'
    restart: always
    env_file: app.env
    secrets: [tok]
    volumes:
      - app:/app
      - data:/data
      - ./conf:/conf:ro
      - ./nginx.conf:/etc/nginx.conf
      - ./uploads:/uploads
secrets:
  tok:
    file: ./tok.txt
"#
    );
    app.write("kata-compose.yaml", &spec)
        .write("app.env", "FROM_ENV_FILE=pushed\n")
        .write("tok.txt", "token\n")
        .write("nginx.conf", "pushed nginx\n")
        .write("conf/app.conf", "pushed conf\n")
        .write("uploads/u.txt", "pushed upload\n")
        .commit("v1");
    app.push_ok();
    let web = || {
        let ids = container_ids(&name, "web");
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    };
    let h = host.path().display();
    let plant = format!(
        "set -e
         rm -rf /app/conf && ln -s {h} /app/conf
         rm -f /app/app.env && ln -s {h}/secret /app/app.env
         rm -f /app/tok.txt && ln -s {h}/secret /app/tok.txt
         rm -f /app/nginx.conf && ln -s {h}/app.conf /app/nginx.conf
         rm -rf /data/uploads && ln -s {h} /data/uploads
         echo planted"
    );
    let sees_only_its_own = |step: &str| {
        let id = web();
        wait_for(
            &format!("web to run after {step}"),
            Duration::from_secs(60),
            || docker(["exec", &id, "true"]).status.success(),
        );
        let read = |path: &str| docker(["exec", &id, "cat", path]).stdout;
        assert_eq!(read("/conf/app.conf"), "pushed conf\n", "after {step}");
        assert_eq!(read("/etc/nginx.conf"), "pushed nginx\n", "after {step}");
        assert_eq!(read("/run/secrets/tok"), "token\n", "after {step}");
        let env = docker(["exec", &id, "sh", "-c", "echo $FROM_ENV_FILE"]).stdout;
        assert_eq!(env, "pushed\n", "after {step}");
        assert!(
            read("/conf/secret").is_empty(),
            "after {step}: host dir at /conf"
        );
        // the writable mount is the app's kept directory, not the host's
        docker_ok(["exec", &id, "sh", "-c", "echo w > /uploads/written"]);
        assert!(
            !host.path().join("written").exists(),
            "after {step}: the host dir was mounted at /uploads"
        );
        let kept = kata.path(format!("data/.mounts/{name}/uploads"));
        assert_eq!(
            std::fs::read_to_string(kept.join("u.txt")).unwrap(),
            "pushed upload\n"
        );
        assert!(kept.join("written").is_file(), "after {step}");
        let mut listed: Vec<String> = std::fs::read_dir(host.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        listed.sort();
        assert_eq!(listed, ["app.conf", "secret"], "after {step}");
        docker_ok(["exec", &id, "sh", "-c", &plant]);
    };
    sees_only_its_own("the push");

    // Docker's own restart (a restart policy or an engine restart do the same)
    docker_ok(["restart", &web()]);
    sees_only_its_own("docker restart");
    // its process exits: the restart policy starts it again
    let before = crate::support::push::inspect(&web(), "{{.RestartCount}}");
    docker_ok(["exec", &web(), "touch", "/tmp/die"]);
    wait_for("the restart policy", Duration::from_secs(60), || {
        crate::support::push::inspect(&web(), "{{.RestartCount}}") != before
    });
    sees_only_its_own("a restart by its policy");
    kata.args(["restart", &name]).success();
    sees_only_its_own("kata restart");
    kata.args(["stop", &name]).success();
    for id in container_ids(&name, "web") {
        docker_ok(["rm", "-f", &id]);
    }
    kata.args(["start", &name]).success();
    sees_only_its_own("kata start (compose creates it again)");
    app.write("nginx.conf", "pushed nginx\n").commit("v2");
    app.push_ok();
    sees_only_its_own("a push");
}

/// Labels baked into an image decide nothing: an image tagged `kata/static`
/// by someone else, with kata's own `kata.runtime.hash` label inherited
/// (`FROM kata/static`), is rebuilt before any app runs on it; an image an
/// app builds gets a name of the app's own, and its `LABEL kata.*` lines do
/// not make its containers another app's.
#[test]
fn labels_inherited_by_images_are_not_trusted() {
    use crate::support::push::{container_ids, inspect};
    use crate::support::{docker, docker_ok};
    images::ensure_test_images();
    // it replaces the host's kata/static, which other tests' static apps
    // would rebuild first
    let _engine = crate::support::engine_exclusive();
    let kata = Kata::setup();
    kata.args(["setup", "--base-image", BUSYBOX]).success();
    let name = unique("label");
    let app = LocalApp::new(&kata, &name);
    app.write(
        "kata-compose.yaml",
        "services:\n  web:\n    runtime: static\n    root: public\n    environment:\n      PORT: \"8000\"\n  built:\n    build: .\n    command: sleep 100000\n",
    )
    .write("public/index.html", "v1\n")
    .write(
        "Dockerfile",
        &format!("FROM {BUSYBOX}\nLABEL kata.app=victim kata.release=99 kata.service=web\n"),
    )
    .commit("v1");
    app.push_ok();
    let web = container_ids(&name, "web");
    assert_eq!(web.len(), 1, "{web:?}");
    // the built image is the app's own name, and its labels do not win
    let built = container_ids(&name, "built");
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(
        inspect(&built[0], "{{.Config.Image}}"),
        format!("kata-build/{name}:built")
    );
    assert_eq!(
        inspect(&built[0], "{{index .Config.Labels \"kata.app\"}}"),
        name
    );
    assert_eq!(
        inspect(&built[0], "{{index .Config.Labels \"kata.service\"}}"),
        "built"
    );
    let o = kata.args(["ps", &name, "--json"]).success();
    assert!(!o.stdout.contains("victim"), "{}", o.stdout);

    // kata/static replaced by a look-alike that inherits kata's label
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM kata/static\nRUN echo planted > /planted\n",
    )
    .unwrap();
    let tag = format!("kata-test/lookalike-{name}");
    docker_ok(["build", "-q", "-t", &tag, &ctx.path().display().to_string()]);
    let _untag = crate::support::Cleanup::new({
        let tag = tag.clone();
        move || {
            let _ = docker(["rmi", "-f", &tag]);
        }
    });
    assert_eq!(
        docker_ok([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"kata.runtime.hash\"}}",
            &tag
        ]),
        docker_ok([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"kata.runtime.hash\"}}",
            "kata/static"
        ]),
        "the look-alike carries kata's label"
    );
    docker_ok(["tag", &tag, "kata/static"]);
    app.write("public/index.html", "v2\n").commit("v2");
    let out = app.push_ok();
    assert!(
        out.stderr.contains("remote:        built kata/static"),
        "the look-alike was taken for kata's image: {}",
        out.stderr
    );
    let web = container_ids(&name, "web");
    assert_eq!(web.len(), 1, "{web:?}");
    let o = docker(["exec", &web[0], "cat", "/planted"]);
    assert!(!o.status.success(), "the app runs on the look-alike");
    let now = docker_ok(["image", "inspect", "--format", "{{.Id}}", "kata/static"]);
    assert_ne!(
        now,
        docker_ok(["image", "inspect", "--format", "{{.Id}}", &tag])
    );
}
