//! `config`, `config:get|set|unset` (persisted in `config/<app>/ENV`, then a
//! redeploy), `config:stack`, `config:docker`.

use crate::envfile::{self, Env};
use crate::paths::Paths;
use crate::{apps, fsutil, ui};
use anyhow::{Context, bail};

fn existing(paths: &Paths, raw: &str) -> anyhow::Result<String> {
    let app = super::app_arg(raw)?;
    if !apps::exists(paths, &app) {
        bail!("app {app:?} does not exist");
    }
    Ok(app)
}

/// An [`existing`] app, or one with config set before its first push.
fn configured(paths: &Paths, raw: &str) -> anyhow::Result<String> {
    let app = super::app_arg(raw)?;
    if paths.config(&app).is_dir() {
        return Ok(app);
    }
    existing(paths, &app)
}

pub fn show(app: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = configured(&paths, app)?;
    print!("{}", envfile::render(&envfile::read_config(&paths, &app)?));
    Ok(0)
}

pub fn get(app: &str, key: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = configured(&paths, app)?;
    match envfile::read_config(&paths, &app)?.get(key) {
        Some(v) => {
            println!("{v}");
            Ok(0)
        }
        None => bail!("{key} is not set for {app}"),
    }
}

/// Parses `K=V` arguments; the value is everything after the first `=`. One
/// bare `K` takes its value from `stdin` (one trailing newline dropped), so
/// values with newlines can be set over SSH, whose commands are one line.
pub fn parse_pairs(
    pairs: &[String],
    stdin: impl FnOnce() -> std::io::Result<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let bare: Vec<&String> = pairs.iter().filter(|p| !p.contains('=')).collect();
    anyhow::ensure!(
        bare.len() <= 1,
        "only one KEY may take its value from stdin; got {}",
        bare.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stdin = Some(stdin);
    pairs
        .iter()
        .map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, v.to_owned()),
                None => {
                    let read = stdin.take().expect("one bare key at most");
                    let mut v = read().context("reading the value from stdin")?;
                    anyhow::ensure!(
                        !v.is_empty(),
                        "expected KEY=VALUE, got {p:?} and no value on stdin \
                         (`{p}=` sets an empty value)"
                    );
                    if v.ends_with('\n') {
                        v.pop();
                    }
                    (p.as_str(), v)
                }
            };
            anyhow::ensure!(envfile::is_key(k), "invalid variable name {k:?}");
            Ok((k.to_owned(), v))
        })
        .collect()
}

/// Read-modify-write of the app's ENV file under the app's lock, then an
/// optional redeploy (still under the lock, so no push interleaves).
fn change(
    app: &str,
    deploy: bool,
    edit: impl FnOnce(&mut Env) -> Vec<String>,
) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    change_config(&paths, &app, deploy, edit)
}

fn change_config(
    paths: &Paths,
    app: &str,
    deploy: bool,
    edit: impl FnOnce(&mut Env) -> Vec<String>,
) -> anyhow::Result<i32> {
    // Also before the first push: parallel writers would lose keys.
    let _lock = crate::deploy::lock_app(paths, app)?;
    if apps::exists(paths, app) {
        crate::deploy::recover(paths, app)?;
    }
    let mut env = envfile::read_config(paths, app)?;
    let before = env.clone();
    let changed = edit(&mut env);
    if env == before {
        println!("no change");
        return Ok(0);
    }
    let file = envfile::config_file(paths, app);
    crate::fsutil::secure_root(paths)?;
    std::fs::create_dir_all(paths.config(app))?;
    fsutil::write_atomic_mode(&file, envfile::render(&env).as_bytes(), Some(0o600))?;
    for c in changed {
        ui::info(c);
    }
    if deploy && apps::live(paths, app)?.is_some() {
        crate::deploy::redeploy(paths, app)?;
    }
    Ok(0)
}

/// Unlike the other commands, `set` also works before an app's first push
/// (secrets such as a database password must be there for the first deploy);
/// it then creates only `config/<app>/ENV`.
pub fn set(app: &str, pairs: &[String], deploy: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = super::app_arg(app)?;
    let pairs = parse_pairs(pairs, || {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            return Ok(String::new()); // nobody is piping a value: refuse, don't wait
        }
        std::io::read_to_string(std::io::stdin())
    })?;
    if !apps::exists(&paths, &app) {
        ui::info(format!(
            "{app} has not been pushed yet; these values apply to its first deploy"
        ));
    }
    change_config(&paths, &app, deploy, |env| {
        pairs
            .into_iter()
            .map(|(k, v)| {
                let msg = format!("set {k}");
                env.insert(k, v);
                msg
            })
            .collect()
    })
}

pub fn unset(app: &str, keys: &[String], deploy: bool) -> anyhow::Result<i32> {
    for k in keys {
        anyhow::ensure!(envfile::is_key(k), "invalid variable name {k:?}");
    }
    change(app, deploy, |env| {
        keys.iter()
            .filter(|k| env.shift_remove(k.as_str()).is_some())
            .map(|k| format!("unset {k}"))
            .collect()
    })
}

fn live_file(app: &str, pick: impl Fn(&apps::Live) -> std::path::PathBuf) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let live = apps::live(&paths, &app)?.with_context(|| format!("{app} has no live release"))?;
    let f = pick(&live);
    print!(
        "{}",
        std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?
    );
    Ok(0)
}

pub fn stack(app: &str) -> anyhow::Result<i32> {
    live_file(app, apps::Live::spec_file)
}

pub fn docker(app: &str) -> anyhow::Result<i32> {
    live_file(app, apps::Live::compose_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        let got = parse_pairs(&args(&["A=1", "B=x=y", "C="]), || unreachable!()).unwrap();
        assert_eq!(
            got,
            [("A", "1"), ("B", "x=y"), ("C", "")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn one_bare_key_reads_its_value_from_stdin() {
        let got = parse_pairs(&args(&["A=1", "CERT"]), || Ok("line 1\nline 2\n".into())).unwrap();
        assert_eq!(got[1], ("CERT".to_owned(), "line 1\nline 2".to_owned()));
        let err = parse_pairs(&args(&["A", "B"]), || Ok(String::new())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "only one KEY may take its value from stdin; got A, B"
        );
        let err = parse_pairs(&args(&["K"]), || Ok(String::new())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected KEY=VALUE, got \"K\" and no value on stdin (`K=` sets an empty value)"
        );
        let err = parse_pairs(&args(&["1X=2"]), || unreachable!()).unwrap_err();
        assert_eq!(err.to_string(), "invalid variable name \"1X\"");
    }
}
