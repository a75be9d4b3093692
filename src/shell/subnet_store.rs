//! The shell of subnet allocation (see `subnets`): each app's record
//! (`state/apps/<app>/subnets.json`, kata's, mounted by no container), the
//! host's cursor, a host-wide lock around every allocation, and one docker
//! snapshot of the networks per allocation.

use crate::paths::Paths;
use crate::subnets::{Inputs, Net, Plan, SubnetError, check_prefix, networks_to_pin, pin, plan};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use thiserror::Error;

fn record_file(paths: &Paths, app: &str) -> std::path::PathBuf {
    paths.state(app).join("subnets.json")
}

fn cursor_file(paths: &Paths) -> std::path::PathBuf {
    paths.root().join("state").join("subnet-cursor")
}

fn read_record(path: &std::path::Path) -> std::io::Result<BTreeMap<String, Net>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// The app's recorded subnets (empty when it has none).
pub fn recorded(paths: &Paths, app: &str) -> std::io::Result<BTreeMap<String, Net>> {
    read_record(&record_file(paths, app))
}

/// The subnets every other app of this KATA_ROOT holds.
fn others(paths: &Paths, app: &str) -> std::io::Result<Vec<Net>> {
    let mut out = vec![];
    for other in crate::apps::names(paths).into_iter().filter(|a| a != app) {
        out.extend(recorded(paths, &other)?.into_values());
    }
    Ok(out)
}

/// The cursor, or for a KATA_ROOT that never allocated, a start derived
/// from its path: two kata roots sharing one engine (as tests do) then
/// start far apart in the pool.
fn read_cursor(paths: &Paths, pool: Net, prefix: u8) -> Option<Net> {
    if let Ok(s) = std::fs::read_to_string(cursor_file(paths)) {
        return s.trim().parse().ok();
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    paths.root().hash(&mut h);
    let blocks = 1u64 << (prefix.saturating_sub(pool.prefix)).min(31);
    let i = h.finish() % blocks;
    let addr = u64::from(pool.addr) + i * (1u64 << (32 - prefix));
    // the block before it: allocation starts after the cursor
    (i > 0).then(|| Net {
        addr: (addr - (1u64 << (32 - prefix))) as u32,
        prefix,
    })
}

#[derive(Debug, Error)]
pub enum AssignError {
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error("subnet records: {0}")]
    Io(#[from] std::io::Error),
}

/// Gives the networks of `compose` (rendered for compose v1/v2) their
/// subnets, under the host-wide subnet lock: one docker snapshot of the
/// networks, every app's record, the cursor. Called under the app's lock.
pub fn assign(
    paths: &Paths,
    settings: &crate::settings::Settings,
    app: &str,
    compose: &mut Json,
) -> Result<Plan, AssignError> {
    let wanted = networks_to_pin(compose);
    let recorded_now = recorded(paths, app)?;
    if wanted.is_empty() && recorded_now.is_empty() {
        return Ok(Plan::default());
    }
    let pool: Net = settings.subnet_pool.parse()?;
    let prefix = settings.subnet_prefix;
    check_prefix(pool, prefix)?;
    let _lock = crate::lock::exclusive(&paths.host_lock("subnets"), || {})?;
    let docker = crate::docker::networks()?;
    let p = plan(&Inputs {
        app,
        pool,
        prefix,
        wanted: &wanted,
        recorded: &recorded_now,
        docker: &docker,
        others: &others(paths, app)?,
        cursor: read_cursor(paths, pool, prefix),
    })?;
    if p.record != recorded_now {
        let mut json = serde_json::to_vec_pretty(&p.record).expect("JSON serialises");
        json.push(b'\n');
        crate::fsutil::write_atomic(&record_file(paths, app), &json)?;
    }
    if let Some(c) = p
        .cursor
        .filter(|c| Some(*c) != read_cursor(paths, pool, prefix))
    {
        crate::fsutil::write_atomic(&cursor_file(paths), format!("{c}\n").as_bytes())?;
    }
    for (key, subnets) in &p.kept {
        let list: Vec<String> = subnets.iter().map(Net::to_string).collect();
        crate::ui::info(format!(
            "network `{key}` keeps its subnet {} from Docker's pool (a new one would mean recreating it, stopping every container on it; `kata rm` and a push move it)",
            list.join(" ")
        ));
    }
    pin(compose, &p.pin);
    Ok(p)
}

/// Forgets the app's subnets (`kata rm`, once its networks are gone). The
/// cursor stays, so the next apps get other subnets first.
pub fn free(paths: &Paths, app: &str) -> std::io::Result<()> {
    let _lock = crate::lock::exclusive(&paths.host_lock("subnets"), || {})?;
    match std::fs::remove_file(record_file(paths, app)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
