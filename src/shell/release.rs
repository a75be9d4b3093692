//! Releases: every deploy is a numbered release under
//! `state/apps/<app>/releases/<n>/`:
//!
//! - `src/`: the exact tree of the commit. Containers mount it at `/app` and
//!   may write to it, so kata never reads anything from it once the build
//!   started (its `.docker-compose.yaml` is a read-only copy for people).
//! - the release's recorded plan, beside `src/` where no container reaches:
//!   `release.json`, `kata-compose.yaml` (the spec as pushed, its hash in
//!   `release.json`), `docker-compose.yaml` (what compose runs),
//!   `compose.env` (the pushed `.env` compose interpolates from), `ENV`
//!   (the config values) and `caddy.json` (the app's Caddy server).
//!
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
    /// SHA-256 of the recorded `kata-compose.yaml` (absent in releases made
    /// before plans were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_sha256: Option<String>,
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
/// The compose file kata runs for release `n` (outside `src/`).
pub fn compose_file(paths: &Paths, app: &str, n: u64) -> PathBuf {
    dir(paths, app, n).join(COMPOSE_FILE)
}
/// The release's `kata-compose.yaml`, copied before any container ran.
pub fn spec_file(paths: &Paths, app: &str, n: u64) -> PathBuf {
    dir(paths, app, n).join("kata-compose.yaml")
}
/// The Caddy server the release routes with, when it has a `caddy:` block.
pub fn caddy_file(paths: &Paths, app: &str, n: u64) -> PathBuf {
    dir(paths, app, n).join("caddy.json")
}

pub use crate::argv::{COMPOSE_ENV, COMPOSE_FILE, compose_layout};
pub use crate::binds::{anchor_paths, bind_sources};

/// The hex SHA-256 of a spec's text.
pub fn spec_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The recorded `kata-compose.yaml` of release `r`, checked against the hash
/// in its `release.json`.
pub fn recorded_spec_text(paths: &Paths, app: &str, r: &Release) -> io::Result<String> {
    let n = r.number;
    let Some(want) = &r.spec_sha256 else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "release {n} of {app} was made by an older kata and has no recorded plan: \
                 run `kata deploy {app}` to make one"
            ),
        ));
    };
    let text = std::fs::read_to_string(spec_file(paths, app, n))?;
    if &spec_hash(&text) != want {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the recorded kata-compose.yaml of release {n} of {app} does not match its hash"
            ),
        ));
    }
    Ok(text)
}

pub fn save(paths: &Paths, app: &str, r: &Release) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(r).expect("release serialises");
    json.push(b'\n');
    write_atomic(&dir(paths, app, r.number).join("release.json"), &json)
}

pub fn load(paths: &Paths, app: &str, n: u64) -> io::Result<Release> {
    let path = dir(paths, app, n).join("release.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged: {e}", path.display()),
        )
    })
}

/// The numbers of every release directory, readable or not, oldest first.
pub fn numbers_on_disk(paths: &Paths, app: &str) -> io::Result<Vec<u64>> {
    let rd = match std::fs::read_dir(releases_dir(paths, app)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out: Vec<u64> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// All releases, oldest first. Unreadable entries are skipped (see
/// [`damaged`]).
pub fn list(paths: &Paths, app: &str) -> io::Result<Vec<Release>> {
    Ok(numbers_on_disk(paths, app)?
        .into_iter()
        .filter_map(|n| load(paths, app, n).ok())
        .collect())
}

/// Release directories whose `release.json` is missing or unreadable (a
/// deploy that died, or ran out of space, before writing it), each with an
/// error naming the file.
pub fn damaged(paths: &Paths, app: &str) -> io::Result<Vec<(u64, String)>> {
    Ok(numbers_on_disk(paths, app)?
        .into_iter()
        .filter_map(|n| load(paths, app, n).err().map(|e| (n, e.to_string())))
        .collect())
}

/// The next release's number: past every release directory, damaged ones
/// included, so no number is ever used twice.
pub fn next_number_on_disk(paths: &Paths, app: &str) -> io::Result<u64> {
    Ok(numbers_on_disk(paths, app)?.last().copied().unwrap_or(0) + 1)
}

pub fn next_number(existing: &[Release]) -> u64 {
    existing.iter().map(|r| r.number).max().unwrap_or(0) + 1
}

/// Records release `n` live and every other live one superseded.
pub fn mark_live(paths: &Paths, app: &str, n: u64) -> io::Result<()> {
    for mut other in list(paths, app)?
        .into_iter()
        .filter(|r| r.number != n && r.status == Status::Live)
    {
        other.status = Status::Superseded;
        save(paths, app, &other)?;
    }
    let mut rel = load(paths, app, n)?;
    rel.status = Status::Live;
    save(paths, app, &rel)?;
    point_app_at(paths, app, &src(paths, app, n))
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

/// Copies release `from`'s config snapshot into a new release `to`. Its code
/// comes from git again, not from `from`'s `src/`, which its containers
/// could write to.
pub fn copy_for_rollback(paths: &Paths, app: &str, from: u64, to: u64) -> io::Result<()> {
    let (src_dir, dest_dir) = (dir(paths, app, from), dir(paths, app, to));
    if !src_dir.join("release.json").is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("release {from} of {app} has no record left (pruned?)"),
        ));
    }
    std::fs::create_dir_all(&dest_dir)?;
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
            spec_sha256: None,
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
    fn bind_sources_resolve_against_the_code_dir() {
        let doc = serde_json::json!({"services": {
            "a": {"volumes": ["./conf:/c:ro", "data:/data", "/srv/x:/x", "../up:/u"]},
            "b": {"volumes": [{"type": "bind", "source": "./b", "target": "/b"},
                              {"type": "volume", "source": "v", "target": "/v"}]},
            "c": {"image": "x"}
        }});
        let got = bind_sources(&doc, std::path::Path::new("/k/r/1/src"));
        let want: Vec<PathBuf> = ["/k/r/1/src/conf", "/srv/x", "/k/r/1/up", "/k/r/1/src/b"]
            .map(PathBuf::from)
            .into();
        assert_eq!(got, want);
    }

    #[test]
    fn bind_sources_include_env_files_and_secret_and_config_files() {
        let doc = serde_json::json!({
            "services": {
                "a": {"env_file": ".env.web"},
                "b": {"env_file": ["/abs.env", {"path": "./x/rel.env"}]}
            },
            "secrets": {"s": {"file": "./s"}, "e": {"environment": "E"}},
            "configs": {"c": {"file": "conf/c.toml"}}
        });
        let got = bind_sources(&doc, std::path::Path::new("/k/r/1/src"));
        let want: Vec<PathBuf> = [
            "/k/r/1/src/.env.web",
            "/abs.env",
            "/k/r/1/src/x/rel.env",
            "/k/r/1/src/s",
            "/k/r/1/src/conf/c.toml",
        ]
        .map(PathBuf::from)
        .into();
        assert_eq!(got, want);
    }

    #[test]
    fn stack_paths_are_anchored_in_the_code_dir() {
        let mut doc = serde_json::json!({"services": {
            "a": {"volumes": ["./conf:/c:ro", "data:/data", "/srv/x:/x", "."], "env_file": ".env.web"},
            "b": {"volumes": [{"type": "bind", "source": "../b", "target": "/b"}],
                  "env_file": ["/abs.env", "./rel.env"]}
        }});
        anchor_paths(&mut doc, std::path::Path::new("/k/r/1/src"));
        assert_eq!(
            doc,
            serde_json::json!({"services": {
                "a": {"volumes": ["/k/r/1/src/conf:/c:ro", "data:/data", "/srv/x:/x", "/k/r/1/src"],
                      "env_file": "/k/r/1/src/.env.web"},
                "b": {"volumes": [{"type": "bind", "source": "/k/r/1/b", "target": "/b"}],
                      "env_file": ["/abs.env", "/k/r/1/src/rel.env"]}
            }})
        );
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
