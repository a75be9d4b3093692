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
