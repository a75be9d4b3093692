//! `kata setup`: the KATA_ROOT skeleton and host settings.

use crate::paths::{Paths, SKELETON};
use crate::settings;

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Caddy admin endpoint: http://host:port or unix//path.
    #[arg(long, value_name = "URL")]
    pub caddy_admin: Option<String>,
    /// Base image the runtime images build FROM.
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,
    /// Default deploy branch (default: main, else master).
    #[arg(long, value_name = "BRANCH")]
    pub deploy_branch: Option<String>,
    /// How many releases to keep per app.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub keep_releases: Option<u64>,
    /// Time limit of quick docker calls (ps, inspect, rm, ...), in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub docker_timeout: Option<u64>,
    /// Time limit of builds, pulls, `compose up` and `docker stop`, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub build_timeout: Option<u64>,
    /// How long a new container may take to start and pass its health gate, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub start_timeout: Option<u64>,
    /// How long requests in flight to old containers may take to finish, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub drain_timeout: Option<u64>,
    /// Where apps' compose networks get their subnets (IPv4 CIDR).
    #[arg(long, value_name = "CIDR")]
    pub subnet_pool: Option<String>,
    /// Prefix length of each app network's subnet, cut from the pool.
    #[arg(long, value_name = "N")]
    pub subnet_prefix: Option<u8>,
    /// Host ports kata publishes routed services on (127.0.0.1 only), FIRST-LAST.
    #[arg(long, value_name = "FIRST-LAST")]
    pub port_range: Option<String>,
}

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
    crate::paths::secure(&paths)?;
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
