//! `kata validate` / `kata render` through the binary, and the rendered files
//! fed to the real docker-compose v1, compose v2 and `docker stack config`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kata(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kata"));
    c.env("KATA_ROOT", root);
    for v in [
        "KATA_CADDY_ADMIN",
        "KATA_BASE_IMAGE",
        "KATA_DEPLOY_BRANCH",
        "KATA_KEEP_RELEASES",
    ] {
        c.env_remove(v);
    }
    c
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", base.display());
    v
}

/// Every app file that must be valid: the spec's examples and the templates
/// `kata init` writes.
fn valid_app_files() -> Vec<PathBuf> {
    let mut v = fixtures("spec");
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut t: Vec<PathBuf> = std::fs::read_dir(&templates)
        .unwrap()
        .map(|e| e.unwrap().path().join("kata-compose.yaml"))
        .collect();
    t.sort();
    assert!(t.len() >= 5, "templates missing in {}", templates.display());
    v.extend(t);
    v
}

fn stdout_of(c: &mut Command) -> String {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_valid_fixture_validates() {
    let root = tempfile::tempdir().unwrap();
    for f in valid_app_files() {
        let out = stdout_of(kata(root.path()).arg("validate").arg(&f));
        assert_eq!(out, "ok\n", "{}", f.display());
    }
}

#[test]
fn every_invalid_fixture_fails_with_file_line_column() {
    let root = tempfile::tempdir().unwrap();
    for f in fixtures("invalid") {
        let before: Vec<_> = walk(root.path());
        let out = kata(root.path()).arg("validate").arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", f.display());
        assert!(
            out.stdout.is_empty(),
            "{}: printed {:?}",
            f.display(),
            out.stdout
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        let shown = f.display().to_string();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert!(!errors.is_empty(), "{shown}: no error line in {stderr}");
        for e in &errors {
            let rest = e
                .strip_prefix("error: ")
                .unwrap()
                .strip_prefix(&shown)
                .unwrap_or_else(|| panic!("{e}"));
            let mut parts = rest.splitn(4, ':');
            assert_eq!(parts.next(), Some(""));
            let line: u64 = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("no line in {e}"));
            let col: u64 = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("no column in {e}"));
            assert!(line >= 1 && col >= 1, "{e}");
        }
        // Same for render: nothing printed, nothing written.
        let out = kata(root.path())
            .args(["render", "--app", "x"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(walk(root.path()), before, "{shown} wrote files");
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path());
            out.extend(walk(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn invalid_fixture_messages() {
    let root = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = String::new();
    for f in fixtures("invalid") {
        let rel = f.strip_prefix(dir).unwrap();
        let out = kata(root.path())
            .current_dir(dir)
            .arg("validate")
            .arg(rel)
            .output()
            .unwrap();
        all.push_str(&format!(
            "$ kata validate {}\n{}\n",
            rel.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    insta::assert_snapshot!(all);
}

/// Every rendered fixture must be accepted by the real tools of its target.
#[test]
fn rendered_fixtures_are_accepted_by_real_compose_and_stack() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for f in valid_app_files() {
        // templates/<name>/kata-compose.yaml or tests/fixtures/spec/<name>.yaml
        let name = match f.file_stem().unwrap().to_string_lossy() {
            stem if stem == "kata-compose" => f.parent().unwrap().file_name().unwrap(),
            _ => f.file_stem().unwrap(),
        }
        .to_string_lossy()
        .to_string();
        for (target, check) in [
            ("v1", vec!["docker-compose", "-f", "FILE", "config", "-q"]),
            (
                "v2",
                vec!["docker", "compose", "-f", "FILE", "config", "-q"],
            ),
            ("stack", vec!["docker", "stack", "config", "-c", "FILE"]),
        ] {
            let yaml = stdout_of(
                kata(root.path())
                    .args(["render", "--app", "fixture", "--target", target])
                    .arg(&f),
            );
            let file = work.path().join(format!("{name}.{target}.yaml"));
            std::fs::write(&file, &yaml).unwrap();
            let args: Vec<String> = check
                .iter()
                .map(|a| {
                    if *a == "FILE" {
                        file.display().to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            let out = Command::new(&args[0])
                .args(&args[1..])
                .current_dir(work.path())
                .output()
                .unwrap_or_else(|e| panic!("{}: {e} (run scripts/install-deps)", args[0]));
            assert!(
                out.status.success(),
                "{} rejected {name} ({target}):\n{}\n--- file ---\n{yaml}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `render --caddy` prints the server object a deploy sends: the shorthand
/// (`domains`, `service`, `port`, `https`) expanded.
#[test]
fn render_caddy_prints_the_expanded_server() {
    let root = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/python/kata-compose.yaml");
    let out = stdout_of(
        kata(root.path())
            .args(["render", "--caddy", "--app", "shop"])
            .arg(&file),
    );
    insta::assert_snapshot!(out);
}

/// A command for a real compose tool that sees none of the test's own
/// environment: what it reads comes from the file (and `.env`) alone.
fn tool(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]).current_dir(dir).env_clear();
    for v in ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG"] {
        if let Some(val) = std::env::var_os(v) {
            c.env(v, val);
        }
    }
    c
}

/// What a real tool reads from a file, as JSON.
fn tool_reads(args: &[&str], dir: &Path, what: &str) -> serde_json::Value {
    let out = tool(args, dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/install-deps)", args[0]));
    assert!(
        out.status.success(),
        "{} rejected {what}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    if args.contains(&"json") {
        serde_json::from_str(&text).unwrap()
    } else {
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"))
    }
}

/// `compose config` writes a literal `$` as `$$` again; `docker stack
/// config` prints the value itself.
fn unescaped(v: &serde_json::Value, escaped: bool) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) if escaped => J::String(s.replace("$$", "$")),
        J::Array(a) => J::Array(a.iter().map(|e| unescaped(e, escaped)).collect()),
        J::Object(m) => J::Object(
            m.iter()
                .map(|(k, e)| (k.clone(), unescaped(e, escaped)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Each compose fixture (tests/fixtures/compose, config values in its `.env`
/// sibling) means under kata what it means under plain compose: plain
/// `docker compose config` reads the original with its `.env`; kata renders
/// it with the same values as the app's config; each target's real tool
/// reads the render; the services, images, commands and every environment
/// value compose resolved must agree, and a restart policy kata changes
/// must come with a warning.
#[test]
fn compose_fixtures_keep_their_meaning_in_the_real_tools() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for f in fixtures("compose") {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let env = std::fs::read_to_string(f.with_extension("env")).unwrap_or_default();
        // plain compose: the file and its .env in a project directory
        let proj = work.path().join(format!("{name}-plain"));
        std::fs::create_dir_all(&proj).unwrap();
        std::fs::copy(&f, proj.join("docker-compose.yaml")).unwrap();
        std::fs::write(proj.join(".env"), &env).unwrap();
        let plain = unescaped(
            &tool_reads(
                &["docker", "compose", "config", "--format", "json"],
                &proj,
                &format!("{name} (plain)"),
            ),
            true,
        );
        // kata: the same values as the app's config
        let app = "fixture";
        let cfg = root.path().join("config").join(app);
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("ENV"), &env).unwrap();
        for target in ["v2", "v1", "stack"] {
            let out = kata(root.path())
                .args(["render", "--app", app, "--target", target])
                .arg(&f)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            if name == "build-only" && target == "stack" {
                assert_eq!(out.status.code(), Some(1), "{stderr}");
                assert!(
                    stderr.contains(&format!("error: {}:5:7: ", f.display())),
                    "{stderr}"
                );
                continue;
            }
            assert!(out.status.success(), "{name} {target}: {stderr}");
            for w in stderr.lines().filter(|l| l.starts_with("warning: ")) {
                let rest = w["warning: ".len()..].strip_prefix(&*f.display().to_string());
                let pos: Vec<&str> = rest.unwrap_or("").splitn(4, ':').collect();
                assert!(
                    pos.len() == 4
                        && pos[1].parse::<u32>().is_ok()
                        && pos[2].parse::<u32>().is_ok(),
                    "{name} {target}: warning without file:line:column: {w}"
                );
            }
            let file = work.path().join(format!("{name}.{target}.yaml"));
            std::fs::write(&file, &out.stdout).unwrap();
            let fs = file.display().to_string();
            let args: Vec<&str> = match target {
                "v2" => vec!["docker", "compose", "-f", &fs, "config", "--format", "json"],
                "v1" => vec!["docker-compose", "-f", &fs, "config"],
                _ => vec!["docker", "stack", "config", "-c", &fs],
            };
            let got = unescaped(
                &tool_reads(&args, work.path(), &format!("{name} ({target})")),
                target != "stack",
            );
            let what = format!("{name} ({target})");
            let plain_svcs = plain["services"].as_object().unwrap();
            let got_svcs = got["services"].as_object().unwrap();
            let mut a: Vec<_> = plain_svcs.keys().collect();
            let mut b: Vec<_> = got_svcs.keys().collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{what}: services");
            for (svc, p) in plain_svcs {
                let g = &got_svcs[svc];
                assert_eq!(p["image"], g["image"], "{what}: {svc} image");
                if p.get("command").is_some() {
                    // docker-compose 1.x keeps a string command as written;
                    // compose v2 prints it split as a shell splits it
                    let words = |c: &serde_json::Value| match c {
                        serde_json::Value::String(s) => {
                            serde_json::json!(shell_words::split(s).unwrap())
                        }
                        c => c.clone(),
                    };
                    assert_eq!(
                        words(&p["command"]),
                        words(&g["command"]),
                        "{what}: {svc} command"
                    );
                }
                // Nothing compose reads is dropped silently: a key kata
                // leaves out is named by a warning (`profiles` is resolved:
                // an active service simply runs; `networks` is compose's
                // implicit default).
                for k in p.as_object().unwrap().keys() {
                    let exempt = ["profiles", "networks"].contains(&k.as_str())
                        // swarm's spelling of the same policy
                        || (target == "stack"
                            && k == "restart"
                            && g["deploy"]["restart_policy"].is_object());
                    if !exempt && !p[k].is_null() && g.get(k).is_none() {
                        assert!(
                            stderr.contains(&format!("`services.{svc}.{k}")),
                            "{what}: {svc}.{k} dropped without a warning:\n{stderr}"
                        );
                    }
                }
                for (k, v) in p["environment"].as_object().into_iter().flatten() {
                    assert_eq!(
                        scalar(&g["environment"][k]),
                        scalar(v),
                        "{what}: {svc} environment {k}"
                    );
                }
                if target != "stack" {
                    let want = p.get("restart").map(scalar).unwrap_or("no".into());
                    let have = g.get("restart").map(scalar).unwrap_or("no".into());
                    if want != have {
                        assert!(
                            stderr
                                .lines()
                                .any(|l| l.contains(&format!("`services.{svc}`"))
                                    && l.contains("restart")),
                            "{what}: {svc} restart {want} -> {have} without a warning:\n{stderr}"
                        );
                    }
                }
            }
            // The values the issue names, as the real tool resolved them.
            let env_of = |svc: &str, k: &str| scalar(&got["services"][svc]["environment"][k]);
            match name.as_str() {
                "env-pass-through" => {
                    assert_eq!(env_of("db", "POSTGRES_USER"), "app", "{what}");
                    assert_eq!(env_of("db", "POSTGRES_PASSWORD"), "s3cret", "{what}");
                    assert_eq!(env_of("web", "POSTGRES_USER"), "app", "{what}");
                    assert_eq!(env_of("web", "LOG_LEVEL"), "", "{what}");
                }
                "self-reference" => {
                    assert_eq!(env_of("web", "ATTRS"), "team=a,tier=web", "{what}")
                }
                "web-db-migrate" if target == "stack" => assert_eq!(
                    got["services"]["migrate"]["deploy"]["restart_policy"]["condition"], "none",
                    "{what}"
                ),
                "web-db-migrate" => {
                    assert_eq!(scalar(&got["services"]["migrate"]["restart"]), "no");
                    assert_eq!(scalar(&got["services"]["web"]["restart"]), "unless-stopped");
                }
                "dot-env-file" if target == "stack" => assert_eq!(
                    got["services"]["app"]["deploy"]["restart_policy"]["condition"], "on-failure",
                    "{what}"
                ),
                "profiles" => {
                    assert!(got_svcs.contains_key("adminer") && !got_svcs.contains_key("debug"))
                }
                "oci-runtime" if target != "stack" => {
                    assert_eq!(got["services"]["gpu"]["runtime"], "nvidia", "{what}")
                }
                "relative-mounts" => {
                    let vols = serde_json::to_string(&got["services"]["app"]["volumes"]).unwrap();
                    let data = root.path().join("data/.mounts").join(app).join("data");
                    assert!(
                        vols.contains(&*data.display().to_string()),
                        "{what}: {vols}"
                    );
                }
                _ => {}
            }
        }
    }
}

/// `kata validate --target` says, before any push, what the file means on
/// each target: positioned warnings tagged with the target, one summary line
/// per target, and a non-zero exit when a target cannot run the file.
#[test]
fn validate_with_targets_reports_each_target() {
    let root = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose");
    let run = |name: &str| {
        kata(root.path())
            .args([
                "validate", "--target", "v2", "--target", "v1", "--target", "stack",
            ])
            .arg("--env-file")
            .arg(dir.join(format!("{name}.env")))
            .arg(dir.join(format!("{name}.yaml")))
            .output()
            .unwrap()
    };
    let out = run("web-db-migrate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "v2: ok, 1 warning(s)\nv1: ok, 1 warning(s)\nstack: ok, 4 warning(s)\n"
    );
    assert!(
        stderr
            .contains("web-db-migrate.yaml:21:7: stack: `services.migrate.depends_on` is ignored"),
        "{stderr}"
    );
    // Every compose fixture validates for all three targets but one.
    for f in fixtures("compose") {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let env = f.with_extension("env");
        let mut c = kata(root.path());
        c.args([
            "validate", "--target", "v2", "--target", "v1", "--target", "stack",
        ]);
        if env.is_file() {
            c.arg("--env-file").arg(&env);
        }
        let out = c.arg(&f).output().unwrap();
        let want = if name == "build-only" { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            3,
            "{name}"
        );
    }
    std::fs::write(root.path().join("empty.env"), "").unwrap();
    let out = kata(root.path())
        .args(["validate", "--target", "stack", "--env-file"])
        .arg(root.path().join("empty.env"))
        .arg(dir.join("build-only.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stack: 1 error(s)\n");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("build-only.yaml:5:7: stack: `services.web` has only `build:`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without `--target`, `validate` refuses what a push would refuse before
/// starting anything: a required variable nobody sets (a render error) and a
/// Caddy route to the admin endpoint; warnings go to stderr, `ok` alone to
/// stdout.
#[test]
fn validate_checks_what_a_push_checks() {
    let root = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let f = root.path().join(name);
        std::fs::write(&f, text).unwrap();
        f
    };
    let web = "services:\n  web:\n    image: busybox\n";
    let required = file(
        "required.yaml",
        &format!("{web}    restart: always\n    environment:\n      X: ${{NOPE:?set it}}\n"),
    );
    let admin = file(
        "admin.yaml",
        &format!(
            "{web}    restart: always\ncaddy:\n  listen: [\":8080\"]\n  routes:\n    - match: [{{host: [a.test]}}]\n      handle:\n        - handler: reverse_proxy\n          upstreams: [{{dial: \"localhost:2019\"}}]\n"
        ),
    );
    let warned = file("warned.yaml", web);
    for (f, needle) in [
        (
            &required,
            "required.yaml:6:7: `services.web.environment` requires `NOPE`",
        ),
        (&admin, "reaches Caddy's admin endpoint"),
    ] {
        let out = kata(root.path()).arg("validate").arg(f).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty(), "{:?}", out.stdout);
        assert!(stderr.contains(needle), "{stderr}");
    }
    let out = kata(root.path())
        .arg("validate")
        .arg(&warned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no `restart:`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
