//! The environment a service sees, merged in precedence order (last wins):
//! base (PUID, PGID, *_ROOT paths) → top-level `environment:` →
//! `config/<app>/ENV` → the service's own `environment:`.
//!
//! Values are kept in compose form: a literal `$` is `$$`. Values written in
//! kata-compose.yaml are templates (`$VAR` refers to other variables); values
//! from the ENV file and base paths are data, escaped on the way in.

use crate::envfile::Env;
use crate::expand::{escape, expand};
use crate::paths::Paths;
use indexmap::IndexMap;

/// The variables kata provides to every service.
pub fn base(app: &str, paths: &Paths, puid: u32, pgid: u32) -> Vec<(String, String)> {
    let p = |p: std::path::PathBuf| escape(&p.display().to_string());
    vec![
        ("PUID".into(), puid.to_string()),
        ("PGID".into(), pgid.to_string()),
        ("KATA_APP".into(), app.to_owned()),
        ("APP_ROOT".into(), p(paths.app(app))),
        ("HOST_APP_ROOT".into(), p(paths.app(app))),
        ("DATA_ROOT".into(), p(paths.data(app))),
        ("CONFIG_ROOT".into(), p(paths.config(app))),
        ("ENV_ROOT".into(), p(paths.envs(app))),
        ("LOG_ROOT".into(), p(paths.logs(app))),
        ("GIT_ROOT".into(), p(paths.repo(app))),
    ]
}

/// Layers in precedence order; later layers win, keeping first-seen key order.
pub fn layer<'a>(
    layers: impl IntoIterator<Item = &'a [(String, String)]>,
) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for layer in layers {
        for (k, v) in layer {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The ENV file's values as data (escaped), ready to be a layer.
pub fn literal_layer(env: &Env) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.clone(), escape(v))).collect()
}

/// Expands every value against the map itself. References to unknown names
/// (and self-references) stay for compose.
pub fn resolve(map: &IndexMap<String, String>) -> IndexMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), expand_in(v, map, 8)))
        .collect()
}

fn expand_in(v: &str, map: &IndexMap<String, String>, depth: u32) -> String {
    if depth == 0 {
        return v.to_owned();
    }
    expand(v, &|name| {
        map.get(name).map(|inner| expand_in(inner, map, depth - 1))
    })
}

/// A lookup over a resolved map, for expanding other strings.
pub fn lookup(map: &IndexMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| map.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_and_expansion() {
        let base = kv(&[("PUID", "1000"), ("PORT", "1")]);
        let top = kv(&[
            ("PORT", "8000"),
            ("URL", "http://x:$PORT/"),
            ("LIT", "$$HOME"),
        ]);
        let mut file = Env::new();
        file.insert("PORT".into(), "9000".into());
        file.insert("PASS".into(), "pa$word".into());
        let file = literal_layer(&file);
        let svc = kv(&[("ME", "${PUID}-${MISSING:-d}"), ("SELF", "$SELF")]);
        let merged = resolve(&layer([
            base.as_slice(),
            top.as_slice(),
            file.as_slice(),
            svc.as_slice(),
        ]));
        assert_eq!(merged["PORT"], "9000");
        assert_eq!(merged["URL"], "http://x:9000/");
        assert_eq!(merged["LIT"], "$$HOME");
        assert_eq!(merged["PASS"], "pa$$word");
        assert_eq!(merged["ME"], "1000-d");
        assert_eq!(merged["SELF"], "$SELF");
    }
}
