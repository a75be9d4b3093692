//! Releases: every deploy is a numbered release under
//! `state/apps/<app>/releases/<n>/` holding `release.json` and `src/` (the
//! exact tree of the commit plus the rendered `.docker-compose.yaml`).
//! `app/<app>` is a symlink to the live release's `src/`.

use crate::fsutil::write_atomic;
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being built or started.
    Pending,
    /// Serving now.
    Live,
    /// Served before; replaced by a later release.
    Superseded,
    /// Never took traffic: build, start or health check failed.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub number: u64,
    pub commit: String,
    /// Unix seconds.
    pub created: u64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Why it failed, or what it was made from (e.g. "rollback of 3").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The key that made it (`name (SHA256:...)`); none when made on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

pub fn releases_dir(paths: &Paths, app: &str) -> PathBuf {
    paths.state(app).join("releases")
}
pub fn dir(paths: &Paths, app: &str, n: u64) -> PathBuf {
    releases_dir(paths, app).join(n.to_string())
}
pub fn src(paths: &Paths, app: &str, n: u64) -> PathBuf {
    dir(paths, app, n).join("src")
}

pub fn save(paths: &Paths, app: &str, r: &Release) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(r).expect("release serialises");
    json.push(b'\n');
    write_atomic(&dir(paths, app, r.number).join("release.json"), &json)
}

pub fn load(paths: &Paths, app: &str, n: u64) -> io::Result<Release> {
    let bytes = std::fs::read(dir(paths, app, n).join("release.json"))?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// All releases, oldest first. Unreadable entries are skipped.
pub fn list(paths: &Paths, app: &str) -> io::Result<Vec<Release>> {
    let mut out = vec![];
    let rd = match std::fs::read_dir(releases_dir(paths, app)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok())
            && let Ok(r) = load(paths, app, n)
        {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.number);
    Ok(out)
}

pub fn next_number(existing: &[Release]) -> u64 {
    existing.iter().map(|r| r.number).max().unwrap_or(0) + 1
}

pub fn live(existing: &[Release]) -> Option<&Release> {
    existing.iter().rev().find(|r| r.status == Status::Live)
}

/// Which releases to delete so that at most `keep` non-live releases remain
/// besides the live one. Pure: the newest are kept.
pub fn to_prune(existing: &[Release], keep: usize) -> Vec<u64> {
    let live = live(existing).map(|r| r.number);
    let mut others: Vec<u64> = existing
        .iter()
        .filter(|r| Some(r.number) != live && r.status != Status::Pending)
        .map(|r| r.number)
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    others.into_iter().skip(keep.saturating_sub(1)).collect()
}

/// Points `app/<app>` at `target` atomically (new symlink, then rename).
pub fn point_app_at(paths: &Paths, app: &str, target: &std::path::Path) -> io::Result<()> {
    let link = paths.app(app);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if link.exists() && !link.is_symlink() {
        // A checkout from before releases existed: keep it aside, never delete.
        let aside = link.with_file_name(format!("{app}.pre-releases"));
        std::fs::rename(&link, aside)?;
    }
    let tmp = link.with_file_name(format!(".{app}.link-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, &link)
}

/// Copies release `from`'s code and config snapshot into a new release `to`
/// (the rendered compose file is rendered again for the new number).
pub fn copy_for_rollback(paths: &Paths, app: &str, from: u64, to: u64) -> io::Result<()> {
    let (src_dir, dest_dir) = (dir(paths, app, from), dir(paths, app, to));
    if !src(paths, app, from).is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("release {from} of {app} has no files left (pruned?)"),
        ));
    }
    std::fs::create_dir_all(&dest_dir)?;
    crate::fsutil::copy_tree(&src(paths, app, from), &src(paths, app, to))?;
    let _ = std::fs::remove_file(src(paths, app, to).join(".docker-compose.yaml"));
    match std::fs::copy(src_dir.join("ENV"), dest_dir.join("ENV")) {
        Ok(_) => Ok(()),
        // releases made before snapshots existed: an empty config
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::write(dest_dir.join("ENV"), ""),
        Err(e) => Err(e),
    }
}

/// Where `app/<app>` points now, if anywhere.
pub fn app_target(paths: &Paths, app: &str) -> Option<PathBuf> {
    std::fs::read_link(paths.app(app)).ok()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u64, status: Status) -> Release {
        Release {
            number: n,
            commit: format!("c{n}"),
            created: n,
            status,
            mode: None,
            note: None,
            by: None,
        }
    }

    #[test]
    fn numbering_and_pruning() {
        let rs = vec![
            r(1, Status::Superseded),
            r(2, Status::Failed),
            r(3, Status::Superseded),
            r(4, Status::Live),
            r(5, Status::Failed),
        ];
        assert_eq!(next_number(&rs), 6);
        assert_eq!(next_number(&[]), 1);
        assert_eq!(live(&rs).unwrap().number, 4);
        // keep 3 in all: the live one plus the two newest others
        assert_eq!(to_prune(&rs, 3), vec![2, 1]);
        assert_eq!(to_prune(&rs, 1), vec![5, 3, 2, 1]);
        assert!(to_prune(&rs, 10).is_empty());
    }

    #[test]
    fn symlink_swap_is_atomic_and_keeps_old_checkouts() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path());
        std::fs::create_dir_all(paths.app("demo")).unwrap();
        std::fs::write(paths.app("demo").join("old.txt"), "x").unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        point_app_at(&paths, "demo", &a).unwrap();
        assert!(d.path().join("app/demo.pre-releases/old.txt").exists());
        assert_eq!(app_target(&paths, "demo").unwrap(), a);
        point_app_at(&paths, "demo", &b).unwrap();
        assert_eq!(app_target(&paths, "demo").unwrap(), b);
    }
}
