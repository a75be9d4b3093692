//! `validate`, `render`: check or show what a deploy would do, without deploying.

use crate::paths::Paths;
use crate::render::{self, Target};
use crate::spec::{self, AppSpec};
use crate::ui;
use std::path::{Path, PathBuf};

const DEFAULT_FILE: &str = "kata-compose.yaml";

/// Reads and parses `path`, printing warnings; prints every error and
/// returns None when there is any.
pub fn load(path: &Path) -> anyhow::Result<Option<AppSpec>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let shown = path.display().to_string();
    let parsed = spec::parse_bytes(&bytes);
    for w in &parsed.warnings {
        ui::warn(w.display(&shown));
    }
    for e in &parsed.errors {
        eprintln!("error: {}", e.display(&shown));
    }
    Ok(parsed.spec)
}

pub fn validate(
    file: Option<PathBuf>,
    targets: &[Target],
    app: Option<String>,
    env_file: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let Some(spec) = load(&path)? else {
        return Ok(1);
    };
    // without --target, what a push checks: the render for the default
    // target (interpolation, per-target changes) and the Caddy server
    let quiet = targets.is_empty();
    let targets = if quiet { &[Target::V2][..] } else { targets };
    let app = match app.or_else(|| spec.app_name.clone()) {
        Some(a) => super::app_arg(&a)?,
        None => "app".to_owned(),
    };
    let paths = Paths::from_env();
    let config_env = match &env_file {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            crate::envfile::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", f.display()))?
        }
        None => crate::envfile::read_config(&paths, &app)?,
    };
    let shown = path.display().to_string();
    let mut failed = false;
    let mut summary = vec![];
    let mut caddy = None;
    for &target in targets {
        let out = render::render(&spec, &context(&app, &paths, &config_env), target);
        let tag = target_name(target);
        let tagged = |d: &spec::Diag| spec::Diag {
            pos: d.pos,
            message: if quiet {
                d.message.clone()
            } else {
                format!("{tag}: {}", d.message)
            },
        };
        for w in &out.warnings {
            ui::warn(tagged(w).display(&shown));
        }
        for e in &out.errors {
            eprintln!("error: {}", tagged(e).display(&shown));
        }
        failed |= !out.errors.is_empty();
        caddy = caddy.or(out.caddy);
        summary.push(match (out.errors.len(), out.warnings.len()) {
            (0, 0) => format!("{tag}: ok"),
            (0, w) => format!("{tag}: ok, {w} warning(s)"),
            (e, _) => format!("{tag}: {e} error(s)"),
        });
    }
    if let Some(Err(e)) = caddy.map(|server| check_caddy(server, &app, &spec, &paths)) {
        eprintln!("error: {shown}: {e:#}");
        failed = true;
    }
    if quiet {
        if !failed {
            println!("ok");
        }
    } else {
        println!("{}", summary.join("\n"));
    }
    Ok(if failed { 1 } else { 0 })
}

/// What a deploy refuses in the app's Caddy server before it starts
/// anything: the shorthand's expansion and a route to the admin endpoint.
fn check_caddy(
    server: serde_json::Value,
    app: &str,
    spec: &AppSpec,
    paths: &Paths,
) -> anyhow::Result<serde_json::Value> {
    let full = crate::caddy::expand(server, app)?;
    let settings = crate::settings::load(paths)?;
    crate::caddy::refuse_admin_reach(&full, spec.services.keys(), &settings.caddy_admin)?;
    Ok(full)
}

fn target_name(t: Target) -> &'static str {
    match t {
        Target::V2 => "v2",
        Target::V1 => "v1",
        Target::Stack => "stack",
    }
}

fn context<'a>(
    app: &'a str,
    paths: &'a Paths,
    config_env: &'a crate::envfile::Env,
) -> render::Context<'a> {
    render::Context {
        app,
        paths,
        config_env,
        puid: unsafe { libc::getuid() },
        pgid: unsafe { libc::getgid() },
        release: None,
    }
}

pub fn render(
    file: Option<PathBuf>,
    app: Option<String>,
    target: Target,
    caddy: bool,
) -> anyhow::Result<i32> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let Some(spec) = load(&path)? else {
        return Ok(1);
    };
    let app = match app.or_else(|| spec.app_name.clone()) {
        Some(a) => super::app_arg(&a)?,
        None => anyhow::bail!("name the app with --app NAME (or `app: {{name: ...}}` in the file)"),
    };
    let paths = Paths::from_env();
    let config_env = crate::envfile::read_config(&paths, &app)?;
    let out = render::render(&spec, &context(&app, &paths, &config_env), target);
    for w in &out.warnings {
        ui::warn(w.display(&path.display().to_string()));
    }
    if !out.errors.is_empty() {
        for e in &out.errors {
            eprintln!("error: {}", e.display(&path.display().to_string()));
        }
        return Ok(1);
    }
    if caddy {
        match out.caddy {
            // exactly what a deploy sends (before service dials are resolved)
            Some(server) => {
                let full = check_caddy(server, &app, &spec, &paths)?;
                println!("{}", serde_json::to_string_pretty(&full)?)
            }
            None => anyhow::bail!("{} has no `caddy:` block", path.display()),
        }
    } else {
        print!("{}", out.yaml());
    }
    Ok(0)
}
