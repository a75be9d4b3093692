//! The host paths Docker and compose read on their own, kept where no
//! container can change them.
//!
//! Docker resolves a bind mount's host path each time it starts a container
//! (its restart policy, an engine restart, `docker restart`), and compose
//! reads `env_file`s and secret and config files each time it creates one.
//! It follows symlinks on the way. A path whose parent directory a container
//! can write (the release's code under `/app`, the app's `/data` or `/venv`)
//! can be swapped for a symlink to `/` while kata is not looking. So, once
//! the build step is over:
//!
//! - a path inside the release's code is copied into the release record
//!   (`releases/<n>/files/`, which no container mounts) and the rendered file
//!   points at the copy;
//! - a path inside any app's data, venv, code or another release's code is
//!   refused: no copy would keep its meaning (it is the app's live data);
//! - writable relative directories live in `data/.mounts/<app>/` (see
//!   [`mounts_dir`]), whose parents no container mounts.
//!
//! The plan is pure ([`plan`]); `pin_files` is the shell that copies.

use serde_json::Value as Json;
use std::path::{Component, Path, PathBuf};

/// How kata names the image it builds for a service without an `image:`
/// (`kata-build/<app>/<service>`): compose's own `<app>-<service>` could be
/// another app's (`shop` + `web-x`, `shop-web` + `x`), and its containers
/// would start from this one.
pub const BUILT_PREFIX: &str = "kata-build/";

/// The repository kata tags `app`'s built images in: `kata-build/<app>`,
/// or the name in hex where it is not a valid image name (`shop-`).
pub fn built_repo(app: &str) -> String {
    let valid = app.split(['.', '_', '-']).all(|run| !run.is_empty())
        && !app.contains("___")
        && !app.contains("_-")
        && !app.contains("-_");
    match valid {
        true => format!("{BUILT_PREFIX}{app}"),
        false => format!("{BUILT_PREFIX}x{}", hex::encode(app)),
    }
}

/// Names the image of every service compose builds and that names none
/// (`kata-build/<app>:<service>`). Pure.
pub fn name_built_images(compose: &mut Json, app: &str) {
    let repo = built_repo(app);
    if let Some(services) = compose.get_mut("services").and_then(Json::as_object_mut) {
        for (name, svc) in services.iter_mut() {
            if let Some(m) = svc.as_object_mut()
                && m.contains_key("build")
                && !m.contains_key("image")
            {
                m.insert("image".into(), Json::String(format!("{repo}:{name}")));
            }
        }
    }
}

/// Where an app's writable relative mounts (`./uploads:/srv/uploads`) live:
/// beside, not inside, its data directory, which runtime services mount
/// writable at `/data` (and so could replace a directory there by a symlink).
pub fn mounts_dir(root: &Path, app: &str) -> PathBuf {
    root.join("data").join(".mounts").join(app)
}

/// The trees a release's paths are judged against.
#[derive(Debug, Clone)]
pub struct Trees<'a> {
    pub root: &'a Path,
    pub app: &'a str,
    /// The release's code (`releases/<n>/src`), the project directory.
    pub src: &'a Path,
    /// Where the copies go (`releases/<n>/files`).
    pub files: &'a Path,
    /// The kata user's home, for `~` in a path.
    pub home: Option<&'a Path>,
}

/// One copy to make: `rel` inside the release's code to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub rel: PathBuf,
    pub to: PathBuf,
}

enum Place {
    /// Not reachable by a container's writes (or the tree's own root).
    Safe,
    /// Inside the release's code: copy it.
    Code(PathBuf),
    /// Inside a tree containers write: refuse.
    Writable(String),
}

/// `p` made absolute against `project` and without `.`/`..` (lexically,
/// as compose does); `None` for a named volume.
fn absolute(p: &str, project: &Path, home: Option<&Path>, file: bool) -> Option<PathBuf> {
    let joined = if let Some(rest) = p.strip_prefix("~/").or((p == "~").then_some("")) {
        home?.join(rest)
    } else if p.starts_with('/') {
        PathBuf::from(p)
    } else if file || p == "." || p.starts_with("./") || p.starts_with("../") {
        project.join(p)
    } else {
        return None;
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn place(p: &Path, t: &Trees) -> Place {
    if p.starts_with(t.files) {
        return Place::Safe;
    }
    if let Ok(rel) = p.strip_prefix(t.src) {
        return match rel.as_os_str().is_empty() {
            true => Place::Safe,
            false => Place::Code(rel.to_path_buf()),
        };
    }
    let Ok(rel) = p.strip_prefix(t.root) else {
        return Place::Safe;
    };
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["data", ".mounts", ..] => Place::Safe,
        ["app", a, rest @ ..] if *a == t.app && !rest.is_empty() => {
            Place::Code(rest.iter().collect())
        }
        ["app", a, _, ..] => Place::Writable(format!("app {a}'s code")),
        ["data", a, _, ..] => Place::Writable(format!("app {a}'s data directory")),
        ["envs", a, _, ..] => Place::Writable(format!("app {a}'s venv")),
        ["state", "apps", a, "releases", _, "src", _, ..] => {
            Place::Writable(format!("the code of another release of {a}"))
        }
        _ => Place::Safe,
    }
}

/// Points every host path in the rendered `compose` that lies in the
/// release's code at a copy in `t.files`, and returns the copies to make.
/// A path in a tree containers write is an error. Pure.
pub fn plan(compose: &mut Json, t: &Trees) -> Result<Vec<Copy>, Vec<String>> {
    let mut copies: Vec<Copy> = vec![];
    let mut errors: Vec<String> = vec![];
    let mut visit = |s: &mut String, file: bool, what: &str| {
        let Some(abs) = absolute(s, t.src, t.home, file) else {
            return;
        };
        match place(&abs, t) {
            Place::Safe => {}
            Place::Code(rel) => {
                let to = match copies.iter().find(|c| c.rel == rel) {
                    Some(c) => c.to.clone(),
                    None => {
                        let base = rel
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let to = t.files.join(format!("{}-{base}", copies.len()));
                        copies.push(Copy {
                            rel,
                            to: to.clone(),
                        });
                        to
                    }
                };
                *s = to.display().to_string();
            }
            Place::Writable(tree) => errors.push(format!(
                "{what} `{}` lies in {tree}, which containers can write: one could replace it with a symlink that Docker follows when it next starts a container; mount a relative path (`./dir`, kept under data/.mounts) or a named volume instead",
                abs.display()
            )),
        }
    };
    if let Some(services) = compose.get_mut("services").and_then(Json::as_object_mut) {
        for (name, svc) in services.iter_mut() {
            if let Some(Json::Array(vols)) = svc.get_mut("volumes") {
                for v in vols {
                    let what = format!("services.{name}.volumes:");
                    match v {
                        Json::String(s) => {
                            let (src, rest) = match s.split_once(':') {
                                Some((a, b)) => (a.to_owned(), format!(":{b}")),
                                None => (s.clone(), String::new()),
                            };
                            let mut src2 = src.clone();
                            visit(&mut src2, false, &what);
                            if src2 != src {
                                *s = format!("{src2}{rest}");
                            }
                        }
                        Json::Object(m) if m.get("type").and_then(Json::as_str) == Some("bind") => {
                            if let Some(Json::String(src)) = m.get_mut("source") {
                                visit(src, true, &what);
                            }
                        }
                        _ => {}
                    }
                }
            }
            let what = format!("services.{name}.env_file:");
            match svc.get_mut("env_file") {
                Some(Json::String(f)) => visit(f, true, &what),
                Some(Json::Array(a)) => {
                    for e in a {
                        match e {
                            Json::String(f) => visit(f, true, &what),
                            Json::Object(m) => {
                                if let Some(Json::String(f)) = m.get_mut("path") {
                                    visit(f, true, &what);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for top in ["secrets", "configs"] {
        if let Some(m) = compose.get_mut(top).and_then(Json::as_object_mut) {
            for (name, v) in m.iter_mut() {
                if let Some(Json::String(f)) = v.get_mut("file") {
                    visit(f, true, &format!("{top}.{name}.file:"));
                }
            }
        }
    }
    // A local volume with `o: bind` is a bind mount too, made at each start.
    if let Some(m) = compose.get_mut("volumes").and_then(Json::as_object_mut) {
        for (name, v) in m.iter_mut() {
            if let Some(Json::String(d)) = v.pointer_mut("/driver_opts/device") {
                visit(d, false, &format!("volumes.{name}.driver_opts.device:"));
            }
        }
    }
    match errors.is_empty() {
        true => Ok(copies),
        false => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trees<'a>(files: &'a Path, src: &'a Path) -> Trees<'a> {
        Trees {
            root: Path::new("/k"),
            app: "shop",
            src,
            files,
            home: Some(Path::new("/k")),
        }
    }

    #[test]
    fn paths_in_the_code_point_at_copies_and_writable_trees_are_refused() {
        let src = Path::new("/k/state/apps/shop/releases/3/src");
        let files = Path::new("/k/state/apps/shop/releases/3/files");
        let mut doc = json!({
            "services": {"web": {
                "volumes": [
                    "./conf:/c:ro", ".:/src", "app:/app", "db:/var/lib/db",
                    "/k/state/apps/shop/releases/3/src/nginx.conf:/etc/nginx.conf",
                    "/k/data/.mounts/shop/uploads:/u",
                    {"type": "bind", "source": "./conf", "target": "/c2"},
                    {"type": "volume", "source": "db", "target": "/d"}
                ],
                "env_file": ["app.env", {"path": "./conf/x.env"}]
            }},
            "secrets": {"s": {"file": "s.txt"}},
            "configs": {"c": {"file": "/k/app/shop/c.txt"}},
            "volumes": {"app": {"driver": "local", "driver_opts": {"type": "none", "o": "bind", "device": "/k/state/apps/shop/releases/3/src"}}}
        });
        let copies = plan(&mut doc, &trees(files, src)).unwrap();
        let rels: Vec<_> = copies.iter().map(|c| c.rel.display().to_string()).collect();
        assert_eq!(
            rels,
            [
                "conf",
                "nginx.conf",
                "app.env",
                "conf/x.env",
                "s.txt",
                "c.txt"
            ]
        );
        let f = "/k/state/apps/shop/releases/3/files";
        assert_eq!(
            doc["services"]["web"]["volumes"],
            json!([
                format!("{f}/0-conf:/c:ro"), ".:/src", "app:/app", "db:/var/lib/db",
                format!("{f}/1-nginx.conf:/etc/nginx.conf"),
                "/k/data/.mounts/shop/uploads:/u",
                {"type": "bind", "source": format!("{f}/0-conf"), "target": "/c2"},
                {"type": "volume", "source": "db", "target": "/d"}
            ])
        );
        assert_eq!(
            doc["services"]["web"]["env_file"],
            json!([format!("{f}/2-app.env"), {"path": format!("{f}/3-x.env")}])
        );
        assert_eq!(doc["secrets"]["s"]["file"], format!("{f}/4-s.txt"));
        assert_eq!(doc["configs"]["c"]["file"], format!("{f}/5-c.txt"));
        // kata's own volume of the code is the code's root: left alone
        assert_eq!(
            doc["volumes"]["app"]["driver_opts"]["device"],
            "/k/state/apps/shop/releases/3/src"
        );

        for (bad, needle) in [
            (
                json!({"services": {"w": {"volumes": ["/k/data/shop/pg:/pg"]}}}),
                "app shop's data",
            ),
            (
                json!({"services": {"w": {"volumes": ["~/data/other/x:/x"]}}}),
                "app other's data",
            ),
            (
                json!({"services": {"w": {"volumes": ["/k/envs/shop/bin:/b"]}}}),
                "venv",
            ),
            (
                json!({"services": {"w": {"env_file": "/k/app/other/.env"}}}),
                "app other's code",
            ),
            (
                json!({"services": {"w": {"volumes": ["/k/state/apps/shop/releases/2/src/c:/c"]}}}),
                "another release",
            ),
            (
                json!({"secrets": {"s": {"file": "../../../../../../data/shop/s"}}}),
                "data directory",
            ),
            (
                json!({"volumes": {"v": {"driver_opts": {"o": "bind", "device": "/k/data/shop/v"}}}}),
                "data directory",
            ),
        ] {
            let mut doc = bad;
            let e = plan(&mut doc, &trees(files, src)).unwrap_err();
            assert!(e[0].contains(needle) && e[0].contains("symlink"), "{e:?}");
        }
        // the data directory itself (kata's `data` volume) is a root, not inside one
        let mut ok = json!({"services": {"w": {"volumes": ["/k/data/shop:/data", "/srv/x:/x"]}}});
        assert_eq!(plan(&mut ok, &trees(files, src)).unwrap(), vec![]);
    }

    #[test]
    fn built_images_get_names_of_the_app_alone() {
        let mut doc = json!({"services": {
            "web-x": {"build": "."},
            "own": {"build": ".", "image": "mine:1"},
            "plain": {"image": "busybox"}
        }});
        name_built_images(&mut doc, "shop");
        assert_eq!(doc["services"]["web-x"]["image"], "kata-build/shop:web-x");
        assert_eq!(doc["services"]["own"]["image"], "mine:1");
        assert!(doc["services"]["plain"]["image"] == "busybox");
        // `shop` + `web-x` and `shop-web` + `x` no longer meet
        assert_ne!(
            format!("{}:web-x", built_repo("shop")),
            format!("{}:x", built_repo("shop-web"))
        );
        assert_eq!(built_repo("a-b_c.d"), "kata-build/a-b_c.d");
        assert_eq!(built_repo("shop-"), "kata-build/x73686f702d");
        assert_eq!(
            built_repo("a___b"),
            format!("kata-build/x{}", hex::encode("a___b"))
        );
    }
}
