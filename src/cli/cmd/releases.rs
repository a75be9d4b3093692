//! `releases` (and `releases --log N`), `rollback`.

use crate::paths::Paths;
use crate::release::{self, Release};
use crate::{apps, ui};
use anyhow::bail;

fn existing(paths: &Paths, raw: &str) -> anyhow::Result<String> {
    let app = super::app_arg(raw)?;
    if !apps::exists(paths, &app) {
        bail!("app {app:?} does not exist");
    }
    Ok(app)
}

pub fn list(app: &str, json: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let all = release::list(&paths, &app)?;
    for (_, why) in release::damaged(&paths, &app)? {
        ui::warn(format!("skipped: {why}"));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", table(&all));
    }
    Ok(0)
}

/// Prints the deploy log of release `n` as it was written.
pub fn log(app: &str, n: u64) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let path = paths.deploy_log(&app, n);
    match std::fs::read(&path) {
        Ok(bytes) => {
            std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes)?;
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "release {n} of {app} has no deploy log (it was pruned, or never existed: see `kata releases {app}`)"
        ),
        Err(e) => bail!("{}: {e}", path.display()),
    }
}

/// Newest first, like `git log`.
pub fn table(all: &[Release]) -> String {
    let mut out =
        String::from("RELEASE  STATUS      COMMIT    CREATED (UTC)        MODE     NOTE\n");
    for r in all.iter().rev() {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<8} {:<11} {:<9} {:<20} {:<8} {}\n",
            r.number,
            status,
            &r.commit[..r.commit.len().min(8)],
            utc(r.created),
            r.mode.as_deref().unwrap_or("-"),
            r.note.as_deref().unwrap_or("")
        ));
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS`.
fn utc(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = crate::audit::civil(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

pub fn rollback(app: &str, to: Option<u64>) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = existing(&paths, app)?;
    let _lock = crate::deploy::lock_app(&paths, &app)?;
    crate::deploy::rollback(&paths, &app, to)?;
    Ok(0)
}

/// The detached retirer a deploy starts (`kata retire APP N`).
pub fn retire(app: &str, n: u64) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let app = super::app_arg(app)?;
    crate::deploy::retire(&paths, &app, n)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Status;

    #[test]
    fn dates_and_table() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40");
        let rel = |n, status, note: Option<&str>| Release {
            number: n,
            commit: "0123456789abcdef".into(),
            created: 1_795_000_000 + n,
            status,
            mode: Some("compose".into()),
            note: note.map(str::to_owned),
            spec_sha256: None,
            by: None,
        };
        let t = table(&[
            rel(1, Status::Superseded, None),
            rel(2, Status::Failed, Some("health check failed")),
            rel(3, Status::Live, Some("rollback to 1")),
        ]);
        insta::assert_snapshot!(t);
    }
}
