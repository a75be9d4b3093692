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

/// One variable as a layer sets it: a value (a template in compose form), or
/// `None` for a key written without one (`- KEY`, `KEY:`), which takes the
/// value the layers below give it, as compose takes it from `.env`.
pub type Entry = (String, Option<String>);

/// A layer of plain values (base variables, the ENV file, top-level `environment:`).
pub fn values(vars: &[(String, String)]) -> Vec<Entry> {
    vars.iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}

/// The ENV file's values as data (escaped), ready to be a layer.
pub fn literal_layer(env: &Env) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.clone(), escape(v))).collect()
}

/// A reference that kata resolves differently from compose: `key`'s value
/// names `name`, which the top layer (the service) sets itself; compose
/// would read `name` from `.env` (kata's lower layers) instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnReference {
    pub key: String,
    pub name: String,
}

/// The merged environment: later layers win, keys keep first-seen order.
/// Values are expanded against the merged map; a value that names its own
/// key (`ATTRS: ${ATTRS},tier=web`) reads the layers below, once. A bare key
/// nothing below sets is empty. References to unknown names (and cycles)
/// stay for compose.
pub fn resolve(layers: &[Vec<Entry>]) -> (IndexMap<String, String>, Vec<OwnReference>) {
    let mut defs: IndexMap<&str, Vec<(usize, Option<&str>)>> = IndexMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for (k, v) in layer {
            defs.entry(k.as_str()).or_default().push((i, v.as_deref()));
        }
    }
    let r = Resolver {
        defs: &defs,
        top: layers.len().saturating_sub(1),
        busy: Default::default(),
        own: Default::default(),
    };
    let map = defs
        .keys()
        .map(|k| (k.to_string(), r.value(k, usize::MAX).unwrap_or_default()))
        .collect();
    (map, r.own.into_inner())
}

struct Resolver<'a> {
    defs: &'a IndexMap<&'a str, Vec<(usize, Option<&'a str>)>>,
    /// The layer whose references [`OwnReference`] reports.
    top: usize,
    busy: std::cell::RefCell<Vec<(String, usize)>>,
    own: std::cell::RefCell<Vec<OwnReference>>,
}

impl Resolver<'_> {
    /// `key` as the layers below `below` define it.
    fn value(&self, key: &str, below: usize) -> Option<String> {
        let &(layer, template) = self.defs.get(key)?.iter().rev().find(|(l, _)| *l < below)?;
        let Some(template) = template else {
            return Some(self.value(key, layer).unwrap_or_default());
        };
        let mark = (key.to_owned(), layer);
        if self.busy.borrow().contains(&mark) || self.busy.borrow().len() > 64 {
            return None; // a cycle: left as written
        }
        self.busy.borrow_mut().push(mark);
        let out = expand(template, &|name| {
            if name == key {
                return self.value(key, layer);
            }
            let v = self.value(name, usize::MAX);
            let own = self.defs[key].last().is_some_and(|(l, _)| *l == layer)
                && layer == self.top
                && self.top > 0
                && self
                    .defs
                    .get(name)
                    .and_then(|d| d.last())
                    .is_some_and(|(l, _)| *l == self.top);
            if own && v != self.value(name, self.top) {
                let r = OwnReference {
                    key: key.to_owned(),
                    name: name.to_owned(),
                };
                if !self.own.borrow().contains(&r) {
                    self.own.borrow_mut().push(r);
                }
            }
            v
        });
        self.busy.borrow_mut().pop();
        Some(out)
    }
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

    fn entries(pairs: &[(&str, Option<&str>)]) -> Vec<Entry> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
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
        let (merged, own) = resolve(&[values(&base), values(&top), values(&file), values(&svc)]);
        assert_eq!(merged["PORT"], "9000");
        assert_eq!(merged["URL"], "http://x:9000/");
        assert_eq!(merged["LIT"], "$$HOME");
        assert_eq!(merged["PASS"], "pa$$word");
        assert_eq!(merged["ME"], "1000-d");
        assert_eq!(merged["SELF"], "$SELF", "nothing below: left for compose");
        assert!(own.is_empty(), "{own:?}");
    }

    /// compose's `.env` idioms: bare keys and `${KEY:-default}` take the
    /// value of the layers below; a self-reference reads them once.
    #[test]
    fn pass_through_reads_the_layers_below() {
        let file = kv(&[
            ("POSTGRES_USER", "app"),
            ("POSTGRES_PASSWORD", "s3cret"),
            ("ATTRS", "team=a"),
        ]);
        let svc = entries(&[
            ("POSTGRES_USER", None),
            ("POSTGRES_PASSWORD", Some("${POSTGRES_PASSWORD:-changeme}")),
            ("ATTRS", Some("${ATTRS},tier=web")),
            ("UNSET", None),
            ("DEFAULTED", Some("${DEFAULTED:-d}")),
        ]);
        let (m, _) = resolve(&[values(&file), svc]);
        assert_eq!(m["POSTGRES_USER"], "app");
        assert_eq!(m["POSTGRES_PASSWORD"], "s3cret");
        assert_eq!(m["ATTRS"], "team=a,tier=web");
        assert_eq!(m["UNSET"], "", "a bare key nothing sets is empty");
        assert_eq!(m["DEFAULTED"], "d");
    }

    #[test]
    fn cycles_stay_as_written_and_own_references_are_reported() {
        let svc = kv(&[("A", "$B"), ("B", "$A")]);
        let (m, _) = resolve(&[values(&svc)]);
        assert_eq!(m["A"], "$A");
        let top = kv(&[("HOST", "db")]);
        let svc = kv(&[("HOST", "cache"), ("URL", "redis://$HOST")]);
        let (m, own) = resolve(&[values(&top), values(&svc)]);
        assert_eq!(m["URL"], "redis://cache");
        assert_eq!(
            own,
            vec![OwnReference {
                key: "URL".into(),
                name: "HOST".into()
            }]
        );
    }
}
