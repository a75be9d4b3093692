//! Key roles over a real sshd with real pushes: a deploy key pushes, clones
//! and manages only the apps matching its patterns, its pushes stay off the
//! host, everything else is refused naming its role, and the audit log shows
//! all of it.

use std::path::{Path, PathBuf};

use crate::support::images::{BUSYBOX, ensure_test_images};
use crate::support::sshd::{GitClient, Key, Sshd};
use crate::support::{DockerGuard, Outcome, engine_shared, unique};

fn compose_yaml() -> String {
    format!(
        "services:\n  web:\n    image: {BUSYBOX}\n    command: sleep 3600\nx-kata-mode: compose\n"
    )
}

fn new_work(git: &GitClient, parent: &Path) -> PathBuf {
    let work = parent.join(format!("work-{}", unique("w")));
    std::fs::create_dir_all(&work).unwrap();
    git.ok(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("kata-compose.yaml"), compose_yaml()).unwrap();
    work
}

fn commit(git: &GitClient, work: &Path, msg: &str) {
    git.ok(work, &["add", "-A"]);
    git.ok(work, &["commit", "-q", "--allow-empty", "-m", msg]);
}

fn push(git: &GitClient, sshd: &Sshd, work: &Path, app: &str) -> Outcome {
    git.run(work, &["push", &sshd.url(app), "main"])
}

fn ok(o: &Outcome, what: &str) {
    o.assert_ok(what);
}

/// Refused by kata (exit 1, `error: ...` naming the role), nothing printed.
fn refused(sshd: &Sshd, key: &Key, command: &str, needle: &str) {
    let o = sshd.ssh(key, Some(command));
    assert_eq!(o.code(), Some(1), "{command:?} was not refused: {o:?}");
    assert!(o.stderr.starts_with("error: "), "{command:?}: {}", o.stderr);
    assert!(o.stderr.contains(needle), "{command:?}: {}", o.stderr);
    assert!(o.stdout.is_empty(), "{command:?} printed {}", o.stdout);
}

fn audit_events(sshd: &Sshd, args: &[&str]) -> Vec<serde_json::Value> {
    let mut argv = vec!["audit", "--json"];
    argv.extend_from_slice(args);
    let o = sshd.kata_as_user(&argv, None);
    ok(&o, "kata audit");
    serde_json::from_str::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

#[test]
fn a_deploy_key_pushes_clones_and_runs_commands_only_on_its_own_apps() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let base = unique("rl");
    let own = format!("{base}-a");
    let other = unique("oth");
    let _d1 = DockerGuard::project(&own);
    let _d2 = DockerGuard::project(&other);
    let pattern = format!("{base}-*");
    let ci = sshd.add_key("ci", &["--role", "deploy", "--apps", &pattern]);
    let admin = &sshd.key;

    // the role is listed, as JSON and as a table
    let o = sshd.ssh(admin, Some("ssh:keys --json"));
    ok(&o, "ssh:keys --json");
    let keys: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let ci_entry = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap();
    assert_eq!(ci_entry["role"], "deploy");
    assert_eq!(ci_entry["apps"], serde_json::json!([pattern]));
    assert_eq!(keys[0]["role"], "admin");
    let table = sshd.kata_as_user(&["ssh:keys"], None);
    assert!(table.stdout.contains("ROLE"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("ci ") && l.contains("deploy") && l.contains(&pattern)),
        "{}",
        table.stdout
    );

    let scratch = tempfile::tempdir().unwrap();
    let admin_git = GitClient::new(&sshd, admin, false);
    let ci_git = GitClient::new(&sshd, &ci, false);
    let work = new_work(&ci_git, scratch.path());
    commit(&ci_git, &work, "one");

    ok(
        &push(&admin_git, &sshd, &work, &other),
        "admin push to another app",
    );
    let o = push(&ci_git, &sshd, &work, &own);
    ok(&o, "deploy key push to its app");
    assert!(
        o.stderr.contains(&format!("Created app {own}")),
        "{}",
        o.stderr
    );

    // other apps: no push, no new app, no clone
    let o = push(&ci_git, &sshd, &work, &other);
    assert!(!o.status.success(), "{o:?}");
    assert!(
        o.stderr.contains(&format!("app {other} is not yours")),
        "{}",
        o.stderr
    );
    let stranger = unique("new");
    let o = push(&ci_git, &sshd, &work, &stranger);
    assert!(!o.status.success(), "{o:?}");
    assert!(!sshd.home.join("repos").join(&stranger).exists());
    let o = ci_git.run(scratch.path(), &["clone", &sshd.url(&own), "mine"]);
    ok(&o, "clone of its app");
    assert!(scratch.path().join("mine/kata-compose.yaml").is_file());
    let o = ci_git.run(scratch.path(), &["clone", &sshd.url(&other), "theirs"]);
    assert!(!o.status.success());
    assert!(o.stderr.contains("is not yours"), "{}", o.stderr);

    // listings show only its apps
    let o = sshd.ssh(&ci, Some("ls --json"));
    ok(&o, "ls");
    assert!(
        o.stdout.contains(&own) && !o.stdout.contains(&other),
        "{}",
        o.stdout
    );
    let o = sshd.ssh(admin, Some("ls --json"));
    assert!(
        o.stdout.contains(&own) && o.stdout.contains(&other),
        "{}",
        o.stdout
    );

    // every app command on its own app
    for c in [
        "ps {own}",
        "logs {own} --tail 5",
        "releases {own}",
        "config {own}",
        "config:set {own} A=1 --no-deploy",
        "config:get {own} A",
        "config:unset {own} A --no-deploy",
        "config:stack {own}",
        "config:docker {own}",
        "restart {own}",
        "stop {own}",
        "start {own}",
        "deploy {own}",
        "run {own} web echo hello-from-run",
        "rollback {own} 1",
    ] {
        let c = c.replace("{own}", &own);
        ok(&sshd.ssh(&ci, Some(&c)), &c);
    }
    // config:caddy is allowed (it fails here only because no Caddy runs)
    let o = sshd.ssh(&ci, Some(&format!("config:caddy {own}")));
    assert!(!o.stderr.contains("deploy key"), "{}", o.stderr);
    // help lists what it may run, not the admin commands
    let o = sshd.ssh(&ci, None);
    ok(&o, "help");
    assert!(o.stdout.contains("deploy key for apps") && o.stdout.contains("config:set"));
    assert!(
        !o.stdout.contains("secrets:set") && !o.stdout.contains("\n  docker "),
        "{}",
        o.stdout
    );

    // everything else is refused, naming the role
    for c in [
        "ps {other}",
        "logs {other}",
        "config:get {other} A",
        "config:set {other} A=1",
        "run {other} web id",
        "rollback {other}",
        "rm {other} --force",
        "docker ps",
        "docker run --privileged -v /:/host {busybox} id",
        "docker:services {own}",
        "secrets:ls",
        "secrets:set X=1",
        "secrets:rm X",
        "mode {own} swarm",
        "branch {own} dev",
        "audit",
        "audit {own}",
        "ssh:keys",
        "templates",
    ] {
        let c = c
            .replace("{own}", &own)
            .replace("{other}", &other)
            .replace("{busybox}", BUSYBOX);
        refused(&sshd, &ci, &c, "deploy key");
    }
    for c in [
        "setup:ssh -",
        "ssh:remove ci",
        "setup --caddy-admin http://x:1",
    ] {
        refused(&sshd, &ci, c, "not available over SSH");
    }
    let o = sshd.ssh(&ci, Some("caddy:sync"));
    assert_eq!(o.code(), Some(1), "{o:?}");

    // the release records who made it
    let o = sshd.ssh(admin, Some(&format!("releases {own} --json")));
    ok(&o, "releases");
    let rels: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let by = format!("ci ({})", ci.fingerprint());
    assert_eq!(rels[0]["by"], by.as_str(), "{rels}");

    // the audit log: the push with its release, the commands, the refusals
    let events = audit_events(&sshd, &[&own]);
    let first_push = events
        .iter()
        .find(|e| e["command"] == "git-receive-pack" && e["key"] == "ci")
        .expect("the deploy key's push is in the audit log");
    assert_eq!(first_push["fingerprint"], ci.fingerprint().as_str());
    assert_eq!(first_push["role"], "deploy");
    assert_eq!(first_push["status"], 0);
    assert_eq!(first_push["release"], 1);
    assert!(first_push["time"].as_str().unwrap().ends_with('Z'));
    assert!(
        events
            .iter()
            .any(|e| e["command"] == "rollback" && e["status"] == 0)
    );
    let config_set = events
        .iter()
        .find(|e| e["command"] == "config:set")
        .unwrap();
    assert_eq!(config_set["args"][2], "A=…", "values stay out of the log");
    let refusals: Vec<_> = audit_events(&sshd, &[])
        .into_iter()
        .filter(|e| e["key"] == "ci" && e["refused"].is_string())
        .collect();
    assert!(refusals.len() >= 20, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .any(|e| e["command"] == "docker" && e["status"] == 1)
    );
    assert!(
        refusals
            .iter()
            .any(|e| e["command"] == "git-receive-pack" && e["app"] == other.as_str())
    );
    let recent = audit_events(&sshd, &["--since", "1h"]);
    assert!(recent.len() > events.len());
    assert!(audit_events(&sshd, &["--since", "2999-01-01"]).is_empty());

    // rm --wipe of its app: allowed, and the audit log survives it
    ok(
        &sshd.ssh(&ci, Some(&format!("rm {own} --force --wipe"))),
        "rm --wipe",
    );
    let log = sshd.home.join("state").join("audit.log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let after = audit_events(&sshd, &[&own]);
    assert!(after.len() > events.len());
    assert_eq!(after.last().unwrap()["command"], "rm");
}

#[test]
fn a_deploy_key_push_that_reaches_the_host_is_refused_before_anything_is_stored() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let own = unique("conf");
    let _docker = DockerGuard::project(&own);
    let ci = sshd.add_key("ci", &["--role", "deploy", "--apps", &own]);
    let scratch = tempfile::tempdir().unwrap();
    let ci_git = GitClient::new(&sshd, &ci, false);
    let work = new_work(&ci_git, scratch.path());
    let head = format!("services:\n  web:\n    image: {BUSYBOX}\n    command: sleep 3600\n");
    let cases: &[(&str, &str)] = &[
        (
            "    privileged: true\n",
            "kata-compose.yaml:5:17: `services.web.privileged`",
        ),
        (
            "    cap_add: [SYS_ADMIN]\n",
            "kata-compose.yaml:5:14: `services.web.cap_add`",
        ),
        (
            "    devices: ['/dev/mem:/dev/mem']\n",
            ":5:14: `services.web.devices`",
        ),
        (
            "    volumes: ['/:/host']\n",
            ":5:15: `services.web.volumes[0]`",
        ),
        (
            "    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n",
            "docker.sock",
        ),
        (
            "    volumes: ['../../../:/up']\n",
            "bind-mounts a host path",
        ),
        (
            "    volumes: [{type: bind, source: /etc, target: /etc2}]\n",
            "`bind` mount",
        ),
        ("    network_mode: host\n", "`services.web.network_mode`"),
        ("    pid: host\n", "`services.web.pid`"),
        ("    ipc: host\n", "`services.web.ipc`"),
        ("    userns_mode: host\n", "`services.web.userns_mode`"),
        (
            "    security_opt: ['seccomp=unconfined']\n",
            "seccomp=unconfined",
        ),
        (
            "    security_opt: ['apparmor=unconfined']\n",
            "apparmor=unconfined",
        ),
        ("    env_file: /etc/shadow\n", "`services.web.env_file`"),
        ("    labels: {kata.app: someone-else}\n", "labels.kata.app"),
        ("    volumes: ['${DATA_ROOT}/../..:/x']\n", "variables"),
        (
            "    volumes: [hostroot:/h]\nvolumes:\n  hostroot:\n    driver_opts: {type: none, o: bind, device: /}\n",
            "volumes.hostroot.driver_opts",
        ),
        // host ports: any address, any port
        (
            "    ports: ['0.0.0.0:22:22']\n",
            ":5:12: `services.web.ports`",
        ),
        ("    ports: ['127.0.0.1:2019:80']\n", "`services.web.ports`"),
        // shapes the check does not expect fail closed
        (
            "    privileged: \"true\"\n",
            ":5:17: `services.web.privileged`",
        ),
        (
            "    volumes: {h: '/:/h'}\n",
            "`services.web.volumes`: must be a list",
        ),
        ("    network_mode: [host]\n", "must be a single value"),
        ("    security_opt: seccomp=unconfined\n", "must be a list"),
        // an image built here may not take another image's name
        ("    build: .\n", "`services.web.image`"),
        ("    logging: {driver: '${LOG_DRIVER}'}\n", "variables"),
        // a file the check cannot parse is refused, with the parser's position
        (
            "    logging: {driver: ${LOG_DRIVER}}\n",
            "kata-compose.yaml:5:24:",
        ),
    ];
    for (extra, want) in cases {
        std::fs::write(work.join("kata-compose.yaml"), format!("{head}{extra}")).unwrap();
        commit(&ci_git, &work, extra);
        let o = push(&ci_git, &sshd, &work, &own);
        assert!(!o.status.success(), "{extra}: pushed: {o:?}");
        assert!(o.stderr.contains(want), "{extra}: {}", o.stderr);
        assert!(o.stderr.contains("deploy key"), "{}", o.stderr);
        assert!(
            o.stderr.contains("pre-receive hook declined"),
            "{}",
            o.stderr
        );
    }
    // a symlinked kata-compose.yaml (it could name any file on the host)
    std::fs::remove_file(work.join("kata-compose.yaml")).unwrap();
    std::fs::write(work.join("real.yaml"), compose_yaml()).unwrap();
    std::os::unix::fs::symlink("real.yaml", work.join("kata-compose.yaml")).unwrap();
    commit(&ci_git, &work, "symlink");
    let o = push(&ci_git, &sshd, &work, &own);
    assert!(
        !o.status.success() && o.stderr.contains("not a symlink"),
        "{o:?}"
    );

    // a symlink leading out of the checkout (compose would read it as `env_file`)
    std::fs::remove_file(work.join("kata-compose.yaml")).unwrap();
    std::fs::rename(work.join("real.yaml"), work.join("kata-compose.yaml")).unwrap();
    std::os::unix::fs::symlink("../../config", work.join("leak")).unwrap();
    commit(&ci_git, &work, "leak");
    let o = push(&ci_git, &sshd, &work, &own);
    assert!(
        !o.status.success()
            && o.stderr
                .contains("leak: a symlink to \"../../config\" leads out of the app"),
        "{o:?}"
    );
    std::fs::remove_file(work.join("leak")).unwrap();

    // nothing was stored or deployed
    let repo = sshd.home.join("repos").join(&own);
    let refs = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["for-each-ref"])
        .output()
        .unwrap();
    assert!(
        refs.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&refs.stdout)
    );
    assert!(
        !sshd
            .home
            .join("state/apps")
            .join(&own)
            .join("releases")
            .exists()
    );
    let o = sshd.ssh(&ci, Some(&format!("ps {own} --json")));
    assert!(!o.stdout.contains("running"), "{o:?}");

    // a confined file from the same key deploys
    std::fs::remove_file(work.join("kata-compose.yaml")).unwrap();
    std::fs::write(
        work.join("kata-compose.yaml"),
        format!("{head}    volumes: ['data:/data']\n    security_opt: [no-new-privileges:true]\n    user: root\n"),
    )
    .unwrap();
    commit(&ci_git, &work, "confined");
    ok(&push(&ci_git, &sshd, &work, &own), "confined push");

    // an admin key keeps today's freedom
    let admin_git = GitClient::new(&sshd, &sshd.key, false);
    std::fs::write(
        work.join("kata-compose.yaml"),
        format!("{head}    cap_add: [NET_ADMIN]\n    pid: host\n"),
    )
    .unwrap();
    commit(&admin_git, &work, "admin");
    ok(
        &push(&admin_git, &sshd, &work, &own),
        "admin push with host access",
    );

    // the audit log shows each refused push
    let events = audit_events(&sshd, &[&own]);
    let refused_pushes = events
        .iter()
        .filter(|e| e["command"] == "git-receive-pack" && e["key"] == "ci" && e["status"] == 1)
        .filter(|e| {
            e["refused"]
                .as_str()
                .is_some_and(|r| r.contains("push refused"))
        })
        .count();
    assert_eq!(refused_pushes, cases.len() + 2, "{events:?}");
    let pushes_ok: Vec<_> = events
        .iter()
        .filter(|e| e["command"] == "git-receive-pack" && e["status"] == 0)
        .map(|e| (e["key"].as_str().unwrap().to_owned(), e["release"].as_u64()))
        .collect();
    assert_eq!(
        pushes_ok,
        [
            ("ci".to_owned(), Some(1)),
            ("tester@laptop".to_owned(), Some(2))
        ]
    );
}

#[test]
fn setup_ssh_sets_and_changes_roles_and_ssh_remove_takes_every_line() {
    let sshd = Sshd::start();
    let ak = sshd.home.join(".ssh").join("authorized_keys");
    let dev = sshd.add_key("dev", &["--role", "deploy", "--apps", "shop,blog-*"]);
    let text = std::fs::read_to_string(&ak).unwrap();
    let line = text.lines().find(|l| l.contains("--name dev")).unwrap();
    assert!(
        line.starts_with(&format!(
            "command=\"{} ssh-serve --key {} --name dev --role deploy --apps 'shop,blog-*'\",restrict ssh-ed25519 ",
            sshd.kata.display(),
            dev.fingerprint()
        )),
        "{line}"
    );
    let o = sshd.ssh(&dev, Some("docker ps"));
    assert!(
        o.stderr.contains("deploy key for apps shop,blog-*"),
        "{o:?}"
    );

    // again without --role: unchanged; with --role admin: promoted
    let o = sshd.kata_as_user(&["setup:ssh", dev.public.to_str().unwrap()], None);
    assert!(
        o.stdout.contains("exists") && o.stdout.contains("deploy"),
        "{o:?}"
    );
    let regrant = |extra: &[&str], role: &str| {
        let mut argv = vec!["setup:ssh", dev.public.to_str().unwrap()];
        argv.extend_from_slice(extra);
        let o = sshd.kata_as_user(&argv, None);
        assert!(
            o.stdout.contains("changed") && o.stdout.contains(role),
            "{o:?}"
        );
    };
    regrant(&["--role", "admin"], "admin");
    ok(&sshd.ssh(&dev, Some("ssh:keys")), "ssh:keys as admin");
    regrant(&["--apps", "shop"], "deploy");
    refused(&sshd, &dev, "ssh:keys", "deploy key for apps shop");
    assert_eq!(std::fs::read_to_string(&ak).unwrap().lines().count(), 2);

    // bad grants are refused and write nothing
    let before = std::fs::read_to_string(&ak).unwrap();
    for args in [
        vec!["--role", "deploy"],
        vec!["--role", "admin", "--apps", "x"],
        vec!["--role", "deploy", "--apps", "../x"],
        vec!["--role", "root"],
    ] {
        let mut argv = vec!["setup:ssh", dev.public.to_str().unwrap()];
        argv.extend(args.iter());
        let o = sshd.kata_as_user(&argv, None);
        assert!(!o.status.success(), "{argv:?}: {o:?}");
    }
    assert_eq!(std::fs::read_to_string(&ak).unwrap(), before);

    // hand edits: a doubled kata line, a plain line and a kata-looking line
    // without `restrict` for the same key
    let kata_line = before.lines().find(|l| l.contains("--name dev")).unwrap();
    let pubkey = dev.public_text();
    let forged = kata_line
        .replace(",restrict", "")
        .replace("--role deploy --apps shop", "--role admin");
    std::fs::write(
        &ak,
        format!("{before}{kata_line}\nno-pty {pubkey}{forged}\n"),
    )
    .unwrap();
    let keys = sshd.kata_as_user(&["ssh:keys", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&keys.stdout).unwrap();
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .filter(|k| k["name"] == "dev")
            .count(),
        2,
        "the forged line is not listed: {v}"
    );
    let o = sshd.kata_as_user(&["ssh:remove", "dev"], None);
    ok(&o, "ssh:remove");
    assert!(o.stdout.contains("(2 lines)"), "{}", o.stdout);
    assert!(
        o.stderr.contains("warning:")
            && o.stderr.contains("line 2, 3")
            && o.stderr.contains("did not write"),
        "{}",
        o.stderr
    );
    let after = std::fs::read_to_string(&ak).unwrap();
    assert!(!after.contains("--name dev --role deploy"), "{after}");
    assert!(
        after.contains(&format!("no-pty {}", pubkey.trim())),
        "{after}"
    );
    assert!(after.contains(&forged), "{after}");
}

/// `caddy:ls` shows a deploy key only its own apps' servers: not another
/// app's, not a hand-made server whose name matches its patterns.
#[test]
fn caddy_ls_shows_a_deploy_key_only_its_apps() {
    use crate::support::caddy::{Caddy, proxy_server};
    use crate::support::free_port;
    let caddy = Caddy::start();
    let sshd = Sshd::start();
    let o = sshd.kata_as_user(&["setup", "--caddy-admin", caddy.endpoint()], None);
    ok(&o, "kata setup --caddy-admin");
    let base = unique("cl");
    let own = format!("{base}-a");
    let hand = format!("{base}-hand");
    let other = unique("oth");
    for app in [&own, &other] {
        std::fs::create_dir_all(sshd.home.join("repos").join(app)).unwrap();
    }
    let admin_api = caddy.admin();
    for name in [&own, &hand, &other] {
        let server = proxy_server(free_port(), &format!("{name}.test"), "127.0.0.1:9");
        admin_api.put_server(name, &server).unwrap();
    }
    let ci = sshd.add_key("ci", &["--apps", &format!("{base}-*")]);
    let names = |key: &Key| -> Vec<String> {
        let o = sshd.ssh(key, Some("caddy:ls --json"));
        ok(&o, "caddy:ls --json");
        let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
        let mut n: Vec<String> = v
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&ci), std::slice::from_ref(&own));
    let mut all = vec![own.clone(), hand.clone(), other.clone()];
    all.sort();
    let admin_sees = names(&sshd.key);
    for n in &all {
        assert!(admin_sees.contains(n), "{n} not in {admin_sees:?}");
    }
}

/// A client that goes away mid-command (its connection drops while `logs
/// -f` streams) still leaves the command's audit record, marked as
/// disconnected; so does a command whose own output finds the client gone.
#[test]
fn a_client_that_disconnects_mid_command_is_still_audited() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let app = unique("gone");
    let _docker = DockerGuard::project(&app);
    let admin = &sshd.key;
    let scratch = tempfile::tempdir().unwrap();
    let git = GitClient::new(&sshd, admin, false);
    let work = new_work(&git, scratch.path());
    std::fs::write(
        work.join("kata-compose.yaml"),
        format!("services:\n  web:\n    image: {BUSYBOX}\n    command: sh -c 'while true; do echo tick; sleep 0.2; done'\nx-kata-mode: compose\n"),
    )
    .unwrap();
    commit(&git, &work, "ticks");
    ok(&push(&git, &sshd, &work, &app), "push");

    let mut client = sshd
        .ssh_command(admin, Some(&format!("logs {app} web -f")))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a log line").unwrap();
    assert!(first.contains("tick"), "{first}");
    // the connection drops: the client dies without a word to the server
    client.kill().unwrap();
    client.wait().unwrap();
    drop(lines);

    let deadline = Instant::now() + Duration::from_secs(90);
    let logs = loop {
        let events = audit_events(&sshd, &[&app]);
        if let Some(e) = events.iter().find(|e| e["command"] == "logs") {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no audit record for the dropped `logs -f`: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(logs["disconnected"], true, "{logs}");
    assert_eq!(logs["key"], "tester@laptop", "{logs}");
    assert!(logs["status"].is_i64(), "{logs}");
}

/// kata's own output to a client that is gone (a broken pipe) neither kills
/// it before the audit record nor loses the record.
#[test]
fn a_broken_pipe_on_output_still_leaves_the_audit_record() {
    let kata = crate::support::Kata::setup();
    for command in ["help", "ls", "audit"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // the client is gone before kata writes a byte
        let status = kata
            .cmd()
            .args(["ssh-serve", "--key", "SHA256:gone", "--name", "gone"])
            .env("SSH_ORIGINAL_COMMAND", command)
            .command()
            .stdout(writer)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{command}: {status:?}");
        let log = std::fs::read_to_string(kata.path("state/audit.log")).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["command"], command, "{log}");
        assert_eq!(last["key"], "gone", "{log}");
        assert_eq!(last["disconnected"], true, "{log}");
        assert_eq!(last["status"], 1, "{log}");
    }
}

/// What a deploy key may deploy again is judged by today's rules on the
/// release it would deploy: not a live release an admin pushed with host
/// access (or with a file pushed before a rule existed, here `ports:`),
/// nor a rollback to one; a rollback to a release that passes is fine.
#[test]
fn a_deploy_key_redeploys_and_rolls_back_only_what_passes_todays_checks() {
    ensure_test_images();
    let _engine = engine_shared();
    let sshd = Sshd::start();
    let own = unique("rb");
    let _docker = DockerGuard::project(&own);
    let ci = sshd.add_key("ci", &["--role", "deploy", "--apps", &own]);
    let scratch = tempfile::tempdir().unwrap();
    let admin_git = GitClient::new(&sshd, &sshd.key, false);
    let ci_git = GitClient::new(&sshd, &ci, false);
    let work = new_work(&admin_git, scratch.path());
    commit(&admin_git, &work, "r1: confined");
    ok(&push(&admin_git, &sshd, &work, &own), "r1");
    let port = crate::support::free_port();
    std::fs::write(
        work.join("kata-compose.yaml"),
        format!(
            "{}    ports: ['127.0.0.1:{port}:80']\n",
            compose_yaml().replace("x-kata-mode: compose\n", "")
        ) + "x-kata-mode: compose\n",
    )
    .unwrap();
    commit(&admin_git, &work, "r2: publishes a host port");
    ok(&push(&admin_git, &sshd, &work, &own), "r2");

    for c in [format!("deploy {own}"), format!("config:set {own} A=1")] {
        refused(&sshd, &ci, &c, "release 2 of");
    }
    std::fs::write(work.join("kata-compose.yaml"), compose_yaml()).unwrap();
    commit(&ci_git, &work, "r3: confined again");
    ok(&push(&ci_git, &sshd, &work, &own), "r3 by the deploy key");
    // `rollback` would go to release 2
    refused(&sshd, &ci, &format!("rollback {own}"), "release 2 of");
    refused(
        &sshd,
        &ci,
        &format!("rollback {own} 2"),
        "`services.web.ports`",
    );
    let o = sshd.ssh(&ci, Some(&format!("rollback {own} 1")));
    ok(&o, "rollback to release 1");
    ok(
        &sshd.ssh(&ci, Some(&format!("deploy {own}"))),
        "deploy of release 1's copy",
    );
    // an admin may still roll back to it
    ok(
        &sshd.ssh(&sshd.key, Some(&format!("rollback {own} 2"))),
        "admin rollback",
    );
    let events = audit_events(&sshd, &[&own]);
    let refusals = events
        .iter()
        .filter(|e| e["key"] == "ci" && e["refused"].is_string())
        .count();
    assert_eq!(refusals, 4, "{events:?}");
}
