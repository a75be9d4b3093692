//! The functional core does no I/O: this test reads the sources of the core
//! modules and fails on anything that touches the host (files, processes,
//! sockets, HTTP, the environment, the clock, the terminal) and on any
//! import of a shell module. Test modules (`#[cfg(test)]` to the end of a
//! file) and comments are not checked. A module is found at the top of
//! `src/` or in a room of it (`src/core/`, ...), so moving it keeps it checked.

use std::path::{Path, PathBuf};

/// The pure modules: values in, values out.
const CORE: &[&str] = &[
    // parse, validate, merge, expand
    "spec.rs",
    "yaml.rs",
    "extends.rs",
    "names.rs",
    "env.rs",
    "envfile.rs",
    "expand.rs",
    // shared types and the KATA_ROOT layout
    "model.rs",
    "paths.rs",
    // render compose per target; the host paths it mounts
    "render.rs",
    "binds.rs",
    "compat.rs",
    "scalars.rs",
    "notes.rs",
    // the docker and compose command lines kata runs; a release's plan
    "argv.rs",
    "plan.rs",
    // health gates, push output, swarm secret argv, templates
    "gate.rs",
    "output.rs",
    "secrets.rs",
    "templates.rs",
    // access rules
    "access.rs",
    "access/confine.rs",
    "access/pin.rs",
    // Caddy planning
    "caddy/validate.rs",
    "caddy/shorthand.rs",
    "caddy/listen.rs",
    "caddy/shared.rs",
    "caddy/summary.rs",
    "caddy/upstreams.rs",
    // the command-line grammar (clap definitions), read by the SSH router
    "cli.rs",
    // subnets, loopback ports and route status of apps (pure planners)
    "subnets.rs",
    "ports.rs",
    "route_status.rs",
];

/// Modules that run processes, HTTP or files: the core may not import them.
const SHELL: &[&str] = &[
    "apps",
    "audit",
    "cmd",
    "deploy",
    "deploy_error",
    "docker",
    "fsutil",
    "git",
    "health",
    "journal",
    "lock",
    "pin_files",
    "port_store",
    "recovery",
    "release",
    "rollout",
    "runtime",
    "settings",
    "ssh",
    "state",
    "subnet_store",
    "ui",
];

/// The shell half of `caddy`: the admin client, its unix-socket transport,
/// and the guard that looks at the host's addresses.
const CADDY_SHELL: &[&str] = &[
    "admin",
    "unix",
    "guard",
    "Admin",
    "CaddyLock",
    "UpstreamStatus",
    "AdminReach",
    "Machine",
    "admin_reach",
    "refuse_admin_reach",
];

/// What touches the host.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "fs::",
    "File::",
    "OpenOptions",
    "std::process",
    "process::",
    "Command::new",
    "std::os::unix::net",
    "UnixStream",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "ToSocketAddrs",
    "to_socket_addrs",
    "ureq",
    "libc::",
    "env::var",
    "env::args",
    "env::current_dir",
    "env::set_var",
    "std::env",
    "Instant::now",
    "SystemTime::now",
    "thread::sleep",
    "stdin()",
    "stdout()",
    "stderr()",
    "println!",
    "eprintln!",
    "print!",
    "eprint!",
];

fn src_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            src_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file of module path `suffix` (`caddy/shared.rs`), at the top of
/// `src/` or in one of its rooms (`src/core/`, `src/shell/`, `src/cli/`),
/// as `name.rs` or `name/mod.rs`.
fn find(root: &Path, files: &[PathBuf], suffix: &str) -> PathBuf {
    let hits: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            // `access.rs` may also be `access/mod.rs`
            let dir_form = format!("{}/mod.rs", suffix.trim_end_matches(".rs"));
            ["", "core/", "shell/", "cli/"]
                .iter()
                .any(|r| rel == format!("{r}{suffix}") || rel == format!("{r}{dir_form}"))
        })
        .collect();
    assert_eq!(hits.len(), 1, "core module {suffix}: found {hits:?}");
    hits[0].clone()
}

/// The code without its test module and without comments.
fn code(text: &str) -> String {
    // the test module: `#[cfg(test)]` on the line before `mod ...`
    let end = text
        .match_indices("#[cfg(test)]\nmod ")
        .map(|(i, _)| i)
        .next()
        .unwrap_or(text.len());
    let text = &text[..end];
    let lines: Vec<&str> = text
        .lines()
        .map(|l| match l.find("//") {
            // a `//` inside a string literal (a URL) keeps the line whole
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect();
    // a `use` spread over lines becomes one line (and blank ones after it,
    // so line numbers stay right)
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for l in lines {
        match open.as_mut() {
            Some((stmt, n)) => {
                stmt.push(' ');
                stmt.push_str(l.trim());
                *n += 1;
            }
            None if l.trim_start().starts_with("use ")
                || l.trim_start().starts_with("pub use ") =>
            {
                open = Some((l.to_owned(), 1));
            }
            None => out.push(l.to_owned()),
        }
        if let Some((stmt, n)) = open.take_if(|(stmt, _)| stmt.trim_end().ends_with(';')) {
            out.push(stmt);
            out.extend(std::iter::repeat_n(String::new(), n - 1));
        }
    }
    out.join("\n")
}

/// The entries of the `{...}` group that starts at `text` (after `{`), split
/// at top-level commas.
fn group_entries(text: &str) -> Vec<String> {
    let (mut depth, mut entry, mut out) = (0, String::new(), Vec::new());
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut entry));
                continue;
            }
            _ => {}
        }
        entry.push(c);
    }
    out.push(entry);
    out.into_iter().map(|e| e.trim().to_owned()).collect()
}

/// What `use` groups import, as whole paths: `crate::caddy::{expand,
/// Admin}` gives `crate::caddy::expand` and `crate::caddy::Admin`.
fn grouped_paths(line: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (i, _) in line.match_indices("::{") {
        let start = line[..i]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |s| s + 1);
        let prefix = &line[start..i + 2];
        if !(prefix.starts_with("crate::") || prefix.starts_with("super::")) {
            continue; // a nested group: expanded with its parent below
        }
        for entry in group_entries(&line[i + 3..]) {
            match entry.split_once("::{") {
                Some((head, rest)) => {
                    for inner in group_entries(rest) {
                        paths.push(format!("{prefix}{head}::{inner}"));
                    }
                }
                None => paths.push(format!("{prefix}{entry}")),
            }
        }
    }
    paths
}

/// The problems in one core file's code (pure, to test the checker).
fn problems(is_caddy: bool, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let at = n + 1;
        let mut line = line.to_owned();
        for p in grouped_paths(&line.clone()) {
            line.push(' ');
            line.push_str(&p);
        }
        let line = line.as_str();
        for word in FORBIDDEN {
            if starts_word(line, word) {
                found.push(format!("line {at}: `{word}` (I/O) in: {}", line.trim()));
            }
        }
        for m in SHELL {
            for prefix in ["crate::", "kata::"] {
                if mentions(line, &format!("{prefix}{m}")) {
                    found.push(format!(
                        "line {at}: imports shell module `{m}`: {}",
                        line.trim()
                    ));
                }
            }
        }
        for item in CADDY_SHELL {
            let mut paths = vec![format!("crate::caddy::{item}")];
            if is_caddy {
                paths.push(format!("super::{item}"));
            }
            if paths.iter().any(|p| mentions(line, p)) {
                found.push(format!(
                    "line {at}: imports caddy's shell `{item}`: {}",
                    line.trim()
                ));
            }
        }
    }
    found
}

/// Whether `word` stands in `line` not as the tail of a longer name
/// (`eprint!` is not `print!`, `prefs::` is not `fs::`).
fn starts_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether `line` names the path `p` as a whole (not `p_more`).
fn mentions(line: &str, p: &str) -> bool {
    line.match_indices(p).any(|(i, _)| {
        !line[i + p.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn core_modules_do_no_io_and_import_no_shell_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    src_files(&root, &mut files);
    let mut report = Vec::new();
    for suffix in CORE {
        let path = find(&root, &files, suffix);
        let text = std::fs::read_to_string(&path).unwrap();
        for p in problems(suffix.starts_with("caddy/"), &code(&text)) {
            report.push(format!("{}: {p}", path.display()));
        }
    }
    assert!(
        report.is_empty(),
        "core modules must not do I/O or import the shell (move it to a shell module):\n{}",
        report.join("\n")
    );
}

/// Every module the library declares is either core or shell, so a new
/// module is placed on purpose.
#[test]
fn every_module_is_core_or_shell() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let core: Vec<&str> = CORE
        .iter()
        .filter(|s| !s.contains('/'))
        .map(|s| s.trim_end_matches(".rs"))
        .collect();
    let mixed = ["caddy", "access"]; // each file of theirs is listed on its own
    for line in lib.lines() {
        let Some(name) = line
            .trim()
            .strip_prefix("pub mod ")
            .or_else(|| line.trim().strip_prefix("mod "))
            .and_then(|r| r.strip_suffix(';'))
        else {
            continue;
        };
        assert!(
            core.contains(&name) || SHELL.contains(&name) || mixed.contains(&name),
            "module {name} is neither in CORE nor in SHELL of tests/layout.rs"
        );
    }
}

#[test]
fn the_checker_finds_io_and_shell_imports() {
    let bad = code(
        "use std::fs;\nuse crate::docker::ComposeCli;\nlet x = std::env::var(\"A\");\nuse crate::caddy::{expand, Admin};\nuse super::admin::Admin;\n// std::process in a comment is fine\n#[cfg(test)]\nfn helper() { let _ = std::fs::read(\"x\"); }\nuse crate::{\n    spec::Service,\n    release::{self, Release},\n};\nuse crate::{caddy::{expand, CaddyLock}, model};\n#[cfg(test)]\nmod tests { use std::fs; }",
    );
    let found = problems(true, &bad);
    let lines: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "line 1", "line 2", "line 3", "line 3", "line 4", "line 5", "line 8", "line 8",
            "line 9", "line 13"
        ],
        "{found:#?}"
    );
    assert!(problems(false, &code("use crate::caddy::expand;\nuse crate::model::Target;\nlet u = \"http://x\"; use std::net::IpAddr;")).is_empty());
    assert!(problems(false, "use crate::stateful::X;").is_empty());
}
