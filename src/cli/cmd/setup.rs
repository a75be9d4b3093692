//! `kata setup`: the KATA_ROOT skeleton and host settings.

use crate::cli::SetupArgs;
use crate::paths::{Paths, SKELETON};
use crate::settings;

pub fn setup(args: SetupArgs) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    if let Some(url) = &args.caddy_admin {
        crate::caddy::Endpoint::parse(url)?;
    }
    if let Some(b) = &args.deploy_branch {
        anyhow::ensure!(
            crate::git::valid_branch_name(b),
            "invalid branch name {b:?}"
        );
    }
    {
        let stored = settings::load_stored(&paths)?;
        let s = settings::resolve(&stored, |k| std::env::var(k).ok());
        let pool = args.subnet_pool.as_deref().unwrap_or(&s.subnet_pool);
        let pool: crate::subnets::Net = pool.parse()?;
        crate::subnets::check_prefix(pool, args.subnet_prefix.unwrap_or(s.subnet_prefix))?;
    }
    if let Some(r) = &args.port_range {
        crate::ports::PortRange::parse(r).map_err(anyhow::Error::msg)?;
    }
    for dir in SKELETON {
        let p = paths.root().join(dir);
        if p.is_dir() {
            println!("exists   {}", p.display());
        } else {
            std::fs::create_dir_all(&p)?;
            println!("created  {}", p.display());
        }
    }
    crate::fsutil::secure_root(&paths)?;
    let mut stored = settings::load_stored(&paths)?;
    let before = stored.clone();
    if let Some(v) = args.caddy_admin {
        stored.caddy_admin = Some(v);
    }
    if let Some(v) = args.base_image {
        stored.base_image = Some(v);
    }
    if let Some(v) = args.deploy_branch {
        stored.deploy_branch = Some(v);
    }
    if let Some(v) = args.port_range {
        stored.port_range = Some(v);
    }
    if let Some(v) = args.keep_releases {
        stored.keep_releases = Some(v as usize);
    }
    for (value, slot) in [
        (args.docker_timeout, &mut stored.docker_timeout),
        (args.build_timeout, &mut stored.build_timeout),
        (args.start_timeout, &mut stored.start_timeout),
        (args.drain_timeout, &mut stored.drain_timeout),
    ] {
        if value.is_some() {
            *slot = value;
        }
    }
    if let Some(v) = args.subnet_pool {
        stored.subnet_pool = Some(v);
    }
    if let Some(v) = args.subnet_prefix {
        stored.subnet_prefix = Some(v);
    }
    if stored != before {
        settings::save_stored(&paths, &stored)?;
        println!("saved    {}", paths.settings_file().display());
    }
    let s = settings::resolve(&stored, |k| std::env::var(k).ok());
    println!("caddy admin:   {}", s.caddy_admin);
    println!("base image:    {}", s.base_image);
    println!(
        "deploy branch: {}",
        s.deploy_branch.as_deref().unwrap_or("main (else master)")
    );
    println!("keep releases: {}", s.keep_releases);
    println!(
        "port range:    {} (127.0.0.1, routed services)",
        s.port_range
    );
    let t = s.timeouts;
    println!(
        "time limits:   docker {} s, build {} s, start {} s, drain {} s",
        t.docker.as_secs(),
        t.build.as_secs(),
        t.start.as_secs(),
        t.drain.as_secs()
    );
    println!("app subnets:   /{} from {}", s.subnet_prefix, s.subnet_pool);
    Ok(0)
}
