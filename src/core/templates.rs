//! App templates: starter apps (a `kata-compose.yaml` and the code it runs)
//! embedded from `templates/`, written into a directory by `kata init`.
//!
//! Pure: [`plan`] decides which files to write from the template and the
//! names that already exist; `cmd::templates` does the writing.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// One embedded template.
#[derive(Debug)]
pub struct Template {
    pub name: &'static str,
    pub summary: &'static str,
    /// (path relative to the app directory, contents)
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! files {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!("../../templates/", $dir, "/", $file)))),+]
    };
}

/// Every template, in the order `kata templates` lists them.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "python",
        summary: "Python WSGI app (standard library; requirements.txt installed on change)",
        files: files!("python": "kata-compose.yaml", "app.py", "requirements.txt"),
    },
    Template {
        name: "python-postgres",
        summary: "Python app with a PostgreSQL database kept in the app's data directory",
        files: files!("python-postgres": "kata-compose.yaml", "app.py", "requirements.txt"),
    },
    Template {
        name: "nodejs",
        summary: "Node.js HTTP server (package.json installed on change)",
        files: files!("nodejs": "kata-compose.yaml", "server.js", "package.json"),
    },
    Template {
        name: "go",
        summary: "Go HTTP server (built with `go build` on every push)",
        files: files!("go": "kata-compose.yaml", "main.go", "go.mod"),
    },
    Template {
        name: "static",
        summary: "Static site: the files under public/ served over HTTP",
        files: files!("static": "kata-compose.yaml", "public/index.html"),
    },
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown template {name:?}; templates: {}", names().join(", "))]
    Unknown { name: String },
    #[error(
        "{} already exist{} in {}; nothing was written (use --force to overwrite)",
        .files.join(", "),
        if .files.len() == 1 { "s" } else { "" },
        .dir.display()
    )]
    Exists { dir: PathBuf, files: Vec<String> },
}

pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.name).collect()
}

pub fn find(name: &str) -> Result<&'static Template, TemplateError> {
    TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| TemplateError::Unknown {
            name: name.to_owned(),
        })
}

/// The files to write into `dir`, given which of the template's paths
/// already exist there (`exists`). Refuses, naming them all, when any does
/// and `force` is not set: a template never silently replaces user code.
pub fn plan(
    template: &Template,
    dir: &Path,
    exists: impl Fn(&Path) -> bool,
    force: bool,
) -> Result<Vec<(PathBuf, &'static str)>, TemplateError> {
    let files: Vec<(PathBuf, &'static str)> = template
        .files
        .iter()
        .map(|(rel, text)| (dir.join(rel), *text))
        .collect();
    let taken: Vec<String> = template
        .files
        .iter()
        .zip(&files)
        .filter(|(_, (path, _))| exists(path))
        .map(|((rel, _), _)| (*rel).to_owned())
        .collect();
    if !taken.is_empty() && !force {
        return Err(TemplateError::Exists {
            dir: dir.to_path_buf(),
            files: taken,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Context, Target, render};
    use crate::spec;

    #[test]
    fn every_template_parses_without_errors_or_warnings() {
        for t in TEMPLATES {
            let (_, yaml) = t
                .files
                .iter()
                .find(|(p, _)| *p == "kata-compose.yaml")
                .unwrap_or_else(|| panic!("{} has no kata-compose.yaml", t.name));
            let parsed = spec::parse(yaml);
            assert!(parsed.errors.is_empty(), "{}: {:?}", t.name, parsed.errors);
            assert!(
                parsed.warnings.is_empty(),
                "{}: {:?}",
                t.name,
                parsed.warnings
            );
            assert!(parsed.spec.is_some(), "{}", t.name);
        }
    }

    #[test]
    fn every_template_renders_and_its_caddy_block_expands() {
        let paths = crate::paths::Paths::new("/home/kata");
        let config = crate::envfile::Env::new();
        for t in TEMPLATES {
            let spec = spec::parse(t.files[0].1).spec.unwrap();
            let cx = Context {
                app: "demo",
                paths: &paths,
                config_env: &config,
                puid: 1000,
                pgid: 1000,
                release: Some((1, "0123abc")),
            };
            for target in [Target::V2, Target::V1, Target::Stack] {
                let out = render(&spec, &cx, target);
                // swarm has no start order: the one thing it may say about a template
                let unexpected: Vec<_> = out
                    .warnings
                    .iter()
                    .filter(|w| target != Target::Stack || !w.message.contains("depends_on"))
                    .collect();
                assert!(unexpected.is_empty(), "{}: {unexpected:?}", t.name);
                let server = out.caddy.expect("every template is routed by Caddy");
                let full = crate::caddy::expand(server, "demo").unwrap();
                assert_eq!(full["routes"][0]["handle"][0]["handler"], "reverse_proxy");
            }
        }
    }

    #[test]
    fn names_are_unique_and_find_knows_them() {
        let mut names = names();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        for n in names {
            assert_eq!(find(n).unwrap().name, n);
        }
        assert_eq!(
            find("rails").unwrap_err().to_string(),
            "unknown template \"rails\"; templates: python, python-postgres, nodejs, go, static"
        );
    }

    #[test]
    fn plan_writes_every_file_under_the_directory() {
        let t = find("static").unwrap();
        let files = plan(t, Path::new("site"), |_| false, false).unwrap();
        let paths: Vec<_> = files.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("site/kata-compose.yaml"),
                PathBuf::from("site/public/index.html")
            ]
        );
    }

    #[test]
    fn plan_refuses_to_overwrite_unless_forced() {
        let t = find("python").unwrap();
        let exists = |p: &Path| p.ends_with("app.py") || p.ends_with("requirements.txt");
        let err = plan(t, Path::new("app"), exists, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app.py, requirements.txt already exist in app; nothing was written (use --force to overwrite)"
        );
        assert_eq!(plan(t, Path::new("app"), exists, true).unwrap().len(), 3);
    }
}
