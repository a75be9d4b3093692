//! `config`, `config:get|set|unset` (persisted in `config/<app>/ENV`, then a
//! redeploy), `config:stack`, `config:docker`.

use crate::envfile::{self, Env};
use crate::paths::Paths;
use crate::{apps, fsutil, lock, ui};
use anyhow::{Context, bail};

fn existing(paths: &Paths, raw: &str) -> anyhow::Result<String> {
    let app = super::app_arg(raw)?;
    if !apps::exists(paths, &app) {
        bail!("app {app:?} does not exist");
    }
    Ok(app)
}

pub fn show(app: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    print!("{}", envfile::render(&envfile::read_config(&paths, &app)?));
    Ok(0)
}

pub fn get(app: &str, key: &str) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    match envfile::read_config(&paths, &app)?.get(key) {
        Some(v) => {
            println!("{v}");
            Ok(0)
        }
        None => bail!("{key} is not set for {app}"),
    }
}

/// Parses `K=V` arguments; the value is everything after the first `=`.
pub fn parse_pairs(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("expected KEY=VALUE, got {p:?}"))?;
            anyhow::ensure!(envfile::is_key(k), "invalid variable name {k:?}");
            Ok((k.to_owned(), v.to_owned()))
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
    let _lock = lock::exclusive(&paths.app_lock(&app), || {
        ui::info(format!("another deploy of {app} is running; waiting"))
    })?;
    let mut env = envfile::read_config(&paths, &app)?;
    let before = env.clone();
    let changed = edit(&mut env);
    if env == before {
        println!("no change");
        return Ok(0);
    }
    let file = envfile::config_file(&paths, &app);
    fsutil::write_atomic_mode(&file, envfile::render(&env).as_bytes(), Some(0o600))?;
    for c in changed {
        ui::info(c);
    }
    if deploy && apps::live(&paths, &app)?.is_some() {
        crate::deploy::redeploy(&paths, &app)?;
    }
    Ok(0)
}

pub fn set(app: &str, pairs: &[String], deploy: bool) -> anyhow::Result<i32> {
    let pairs = parse_pairs(pairs)?;
    change(app, deploy, |env| {
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
