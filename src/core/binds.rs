//! The host paths a rendered compose document hands to containers or makes
//! compose read (bind mounts, `env_file`s, secret and config files), found
//! and anchored lexically, as compose does. Pure.

use std::path::PathBuf;

/// The host paths of every file or directory compose hands to containers or
/// reads itself in a rendered compose document: bind mounts, `env_file`s and
/// the `file:` of secrets and configs, relative ones resolved against
/// `project_dir` (lexically, as compose does).
pub fn bind_sources(compose: &serde_json::Value, project_dir: &std::path::Path) -> Vec<PathBuf> {
    use serde_json::Value;
    let resolve = |s: &str| bind_path(s, project_dir);
    // `env_file` and `file:` are paths even without a leading `./`
    let file = |s: &str| match s.starts_with('/') {
        true => resolve(s),
        false => resolve(&format!("./{s}")),
    };
    let services = compose.get("services").and_then(Value::as_object);
    let mut out: Vec<PathBuf> = services
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|svc| svc.get("volumes")?.as_array())
        .flatten()
        .filter_map(|v| match v {
            Value::String(s) => resolve(s.split_once(':')?.0),
            Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
                resolve(m.get("source")?.as_str()?)
            }
            _ => None,
        })
        .collect();
    for svc in services.into_iter().flat_map(|m| m.values()) {
        let env_files = match svc.get("env_file") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => vec![],
        };
        for e in env_files {
            let path = e.as_str().or_else(|| e.get("path")?.as_str());
            out.extend(path.and_then(file));
        }
    }
    for top in ["secrets", "configs"] {
        for v in compose
            .get(top)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            out.extend(v.get("file").and_then(Value::as_str).and_then(file));
        }
    }
    out
}

/// A volume's host side as an absolute path (`None` for a named volume).
fn bind_path(s: &str, project_dir: &std::path::Path) -> Option<PathBuf> {
    let p = std::path::Path::new(s);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else if s == "." || s.starts_with("./") || s.starts_with("../") {
        project_dir.join(p)
    } else {
        return None;
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Makes relative bind sources and `env_file` paths absolute against the
/// release's code dir. For `docker stack deploy`, which resolves them against
/// the compose file's own dir (the recorded plan's, not the code's) and has
/// no `--project-directory`.
pub fn anchor_paths(compose: &mut serde_json::Value, project_dir: &std::path::Path) {
    use serde_json::Value;
    let fix = |s: &mut String| {
        if !s.starts_with('/')
            && let Some(abs) = bind_path(s, project_dir)
        {
            *s = abs.display().to_string();
        }
    };
    let Some(services) = compose.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    for svc in services.values_mut() {
        if let Some(Value::Array(vols)) = svc.get_mut("volumes") {
            for v in vols {
                match v {
                    Value::String(s) => {
                        let (src, rest) = s.split_once(':').unwrap_or((s.as_str(), ""));
                        let mut src = src.to_owned();
                        let rest = rest.to_owned();
                        fix(&mut src);
                        *s = if rest.is_empty() {
                            src
                        } else {
                            format!("{src}:{rest}")
                        };
                    }
                    Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
                        if let Some(Value::String(src)) = m.get_mut("source") {
                            fix(src);
                        }
                    }
                    _ => {}
                }
            }
        }
        match svc.get_mut("env_file") {
            Some(Value::String(f)) => {
                let mut f2 = format!("./{}", f.trim_start_matches("./"));
                fix(&mut f2);
                *f = f2;
            }
            Some(Value::Array(files)) => {
                for f in files.iter_mut() {
                    if let Value::String(f) = f
                        && !f.starts_with('/')
                    {
                        let mut f2 = format!("./{}", f.trim_start_matches("./"));
                        fix(&mut f2);
                        *f = f2;
                    }
                }
            }
            _ => {}
        }
    }
}
