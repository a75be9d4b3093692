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
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let shown = path.display().to_string();
    let parsed = spec::parse(&text);
    for w in &parsed.warnings {
        ui::warn(w.display(&shown));
    }
    for e in &parsed.errors {
        eprintln!("error: {}", e.display(&shown));
    }
    Ok(parsed.spec)
}

pub fn validate(file: Option<PathBuf>) -> anyhow::Result<i32> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    match load(&path)? {
        Some(_) => {
            println!("ok");
            Ok(0)
        }
        None => Ok(1),
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
    let cx = render::Context {
        app: &app,
        paths: &paths,
        config_env: &config_env,
        puid: unsafe { libc::getuid() },
        pgid: unsafe { libc::getgid() },
        release: None,
    };
    let out = render::render(&spec, &cx, target);
    for w in &out.warnings {
        ui::warn(w);
    }
    if caddy {
        match out.caddy {
            // exactly what a deploy sends (before service dials are resolved)
            Some(server) => {
                let full = crate::caddy::expand(server, &app)?;
                let settings = crate::settings::load(&paths)?;
                crate::caddy::refuse_admin_reach(
                    &full,
                    spec.services.keys(),
                    &settings.caddy_admin,
                )?;
                println!("{}", serde_json::to_string_pretty(&full)?)
            }
            None => anyhow::bail!("{} has no `caddy:` block", path.display()),
        }
    } else {
        print!("{}", out.yaml());
    }
    Ok(0)
}
