//! `templates`, `init`: list the embedded app templates, write one out.

use crate::templates::{self, TEMPLATES};
use std::path::{Path, PathBuf};

pub fn list() -> anyhow::Result<i32> {
    let width = TEMPLATES.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in TEMPLATES {
        println!("{:width$}  {}", t.name, t.summary);
    }
    Ok(0)
}

pub fn init(name: &str, dir: Option<PathBuf>, force: bool) -> anyhow::Result<i32> {
    let template = templates::find(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let files = templates::plan(template, &dir, |p| p.symlink_metadata().is_ok(), force)?;
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        crate::fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        println!("created {}", path.display());
    }
    println!("\nnext:\n{}", next_steps(&dir));
    Ok(0)
}

/// What to type after `kata init`, with the app named after its directory
/// when that name is a valid app name.
fn next_steps(dir: &Path) -> String {
    let app = std::path::absolute(dir)
        .ok()
        .and_then(|d| {
            d.components()
                .next_back()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
        })
        .filter(|n| crate::names::is_app_name(n))
        .unwrap_or_else(|| "APP".to_owned());
    let mut steps = String::new();
    if dir != Path::new(".") {
        steps.push_str(&format!("  cd {}\n", dir.display()));
    }
    steps.push_str(&format!(
        "  git init -b main && git add -A && git commit -m 'first deploy'\n  \
         git remote add kata kata@HOST:{app}\n  \
         git push kata main"
    ));
    steps
}
