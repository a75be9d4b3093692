//! Subnets for apps' compose networks, from kata's own pool.
//!
//! Docker's default address pools (172.17.0.0/12 as /16s, 192.168.0.0/16 as
//! /20s) hold about 30 networks, and every compose app creates at least one:
//! the 31st app fails to deploy. kata gives every network a compose file
//! creates a small subnet of its own (`ipam.config[].subnet`) from a pool
//! outside Docker's (a host setting), records it in the app's state and keeps
//! it across redeploys, so a host runs thousands of apps with the engine's
//! default settings.
//!
//! Pure: values in, values out ([`allocate`], [`plan`], [`pin`]);
//! `subnet_store` is the shell around it (a host-wide lock, the records on
//! disk, one docker snapshot of the networks).

use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// RFC 2544's benchmarking range: private by convention, outside Docker's
/// default local pools and swarm's default overlay pool (10.0.0.0/8), and
/// rarely used by LANs or VPNs.
pub const DEFAULT_POOL: &str = "198.18.0.0/15";
/// 64 addresses (61 for containers): room for an app's replicas twice over
/// during a blue/green switch; the default pool holds 2048 of them.
pub const DEFAULT_PREFIX: u8 = 26;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error("{0:?} is not an IPv4 subnet (like 198.18.0.0/15)")]
    Parse(String),
    #[error("subnet prefix /{prefix} does not fit the pool {pool} (it must be between /{} and /29)", pool.prefix)]
    Prefix { pool: Net, prefix: u8 },
    #[error(
        "kata's subnet pool {pool} has no free /{prefix} left for {app}'s network `{network}` (every one is used by a kata app or another docker network): choose a larger pool with `kata setup --subnet-pool CIDR` or a longer prefix with `--subnet-prefix N`"
    )]
    Full {
        pool: Net,
        prefix: u8,
        app: String,
        network: String,
    },
    #[error("subnet records: {0}")]
    Records(String),
    /// Only the app's own networks were read, and a network it wants does
    /// not exist: its subnet must be chosen against every network.
    #[error("the subnet of network `{0}` is chosen against every docker network")]
    NeedsAllNetworks(String),
}

/// An IPv4 network: its first address and prefix length (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net {
    pub addr: u32,
    pub prefix: u8,
}

impl Net {
    fn size(self) -> u64 {
        1u64 << (32 - self.prefix)
    }
    fn first(self) -> u64 {
        u64::from(self.addr)
    }
    /// One past the last address.
    fn end(self) -> u64 {
        self.first() + self.size()
    }
    pub fn overlaps(self, other: Net) -> bool {
        self.first() < other.end() && other.first() < self.end()
    }
    pub fn contains(self, other: Net) -> bool {
        self.first() <= other.first() && other.end() <= self.end()
    }
}

impl std::str::FromStr for Net {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Net, SubnetError> {
        let bad = || SubnetError::Parse(s.to_owned());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let addr = u32::from(ip);
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        // host bits set: a typo more likely than a meaning
        if addr & !mask != 0 {
            return Err(bad());
        }
        Ok(Net { addr, prefix })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.addr), self.prefix)
    }
}

impl serde::Serialize for Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks that `/prefix` subnets can be cut from `pool`.
pub fn check_prefix(pool: Net, prefix: u8) -> Result<(), SubnetError> {
    if prefix < pool.prefix || prefix > 29 {
        return Err(SubnetError::Prefix { pool, prefix });
    }
    Ok(())
}

/// The first `/prefix` subnet of `pool` after `cursor` (wrapping around to
/// the pool's start) that overlaps nothing in `used`; `None` when the pool
/// is full. Starting after the last allocation means a freed subnet is
/// handed out again only once the whole pool has gone round.
pub fn allocate(pool: Net, prefix: u8, used: &[Net], cursor: Option<Net>) -> Option<Net> {
    if check_prefix(pool, prefix).is_err() {
        return None;
    }
    let size = 1u64 << (32 - prefix);
    let start = cursor
        .filter(|c| pool.contains(*c))
        .map(|c| {
            let next = c.end().max(pool.first());
            // the next aligned block at or after the cursor's end
            pool.first() + (next - pool.first()).div_ceil(size) * size
        })
        .filter(|s| *s < pool.end())
        .unwrap_or(pool.first());
    let mut used: Vec<(u64, u64)> = used
        .iter()
        .filter(|u| u.overlaps(pool))
        .map(|u| (u.first(), u.end()))
        .collect();
    used.sort();
    let free_in = |from: u64, to: u64| -> Option<u64> {
        let mut s = from;
        // each step either succeeds or jumps past one used range
        for _ in 0..=used.len() {
            if s + size > to {
                return None;
            }
            match used.iter().find(|(a, b)| *a < s + size && s < *b) {
                None => return Some(s),
                Some((_, b)) => s = pool.first() + (b - pool.first()).div_ceil(size) * size,
            }
        }
        None
    };
    free_in(start, pool.end())
        .or_else(|| free_in(pool.first(), start.min(pool.end())))
        .map(|s| Net {
            addr: s as u32,
            prefix,
        })
}

/// The keys of the networks that the rendered compose file makes compose
/// create and that kata gives a subnet: `default` when a service uses it,
/// and every other network a service joins that is not external, uses the
/// bridge driver and has no `ipam` of its own.
pub fn networks_to_pin(compose: &Json) -> Vec<String> {
    let declared = compose.get("networks").and_then(Json::as_object);
    let mut used: Vec<String> = vec![];
    let mut add = |k: &str| {
        if !used.iter().any(|u| u == k) {
            used.push(k.to_owned());
        }
    };
    for svc in compose
        .get("services")
        .and_then(Json::as_object)
        .into_iter()
        .flat_map(|m| m.values())
    {
        if svc.get("network_mode").is_some() {
            continue;
        }
        match svc.get("networks") {
            None | Some(Json::Null) => add("default"),
            Some(Json::Array(list)) => list.iter().filter_map(Json::as_str).for_each(&mut add),
            Some(Json::Object(map)) => map.keys().for_each(|k| add(k)),
            Some(_) => {}
        }
    }
    used.into_iter()
        .filter(|k| {
            let Some(n) = declared.and_then(|d| d.get(k)) else {
                // only `default` may be used undeclared
                return k == "default";
            };
            let truthy = |key: &str| n.get(key).is_some_and(|v| v != &Json::Bool(false));
            let bridge = n
                .get("driver")
                .and_then(Json::as_str)
                .is_none_or(|d| d == "bridge");
            !truthy("external") && n.get("ipam").is_none() && bridge
        })
        .collect()
}

/// Writes each network's subnet into the compose file's `networks:`.
pub fn pin(compose: &mut Json, subnets: &BTreeMap<String, Net>) {
    if subnets.is_empty() {
        return;
    }
    let Some(doc) = compose.as_object_mut() else {
        return;
    };
    let nets = doc
        .entry("networks")
        .or_insert_with(|| Json::Object(Map::new()));
    if !nets.is_object() {
        *nets = Json::Object(Map::new());
    }
    let nets = nets.as_object_mut().expect("an object");
    for (key, net) in subnets {
        let n = nets
            .entry(key.clone())
            .or_insert_with(|| Json::Object(Map::new()));
        if !n.is_object() {
            *n = Json::Object(Map::new());
        }
        n["ipam"] = json!({"config": [{"subnet": net.to_string()}]});
    }
}

/// One docker network, as the snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerNet {
    pub name: String,
    /// `com.docker.compose.project` and `com.docker.compose.network`.
    pub project: String,
    pub key: String,
    pub subnets: Vec<Net>,
}

/// Parses `name \t project \t key \t subnet subnet ...` lines (IPv6 and
/// unparsable subnets are left out: they take nothing from an IPv4 pool).
pub fn parse_networks(out: &str) -> Vec<DockerNet> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 4).then(|| DockerNet {
                name: f[0].into(),
                project: f[1].into(),
                key: f[2].into(),
                subnets: f[3]
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
            })
        })
        .collect()
}

/// What the deploy of one app does with its networks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Subnets to render, per network key.
    pub pin: BTreeMap<String, Net>,
    /// The app's record after this deploy.
    pub record: BTreeMap<String, Net>,
    /// Networks that already exist on a subnet kata did not give them (made
    /// before kata allocated subnets): left as they are, since a new subnet
    /// means recreating the network, which stops every container on it.
    pub kept: Vec<(String, Vec<Net>)>,
    /// The last subnet allocated, when this deploy allocated one.
    pub cursor: Option<Net>,
}

/// Everything [`plan`] decides from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub app: &'a str,
    pub pool: Net,
    pub prefix: u8,
    /// The keys of the networks the compose file creates ([`networks_to_pin`]).
    pub wanted: &'a [String],
    /// This app's record from its last deploy.
    pub recorded: &'a BTreeMap<String, Net>,
    /// Docker's networks now: every one, or only the app's own.
    pub docker: &'a [DockerNet],
    /// Whether `docker` holds every network (only needed when a wanted
    /// network does not exist yet).
    pub all_networks: bool,
    /// The subnets other kata apps hold.
    pub others: &'a [Net],
    pub cursor: Option<Net>,
}

/// Decides each wanted network's subnet: an existing network keeps what it
/// has (pinned again when it is the recorded one), a missing one gets its
/// recorded subnet back when nothing else took it, else a new one.
pub fn plan(i: &Inputs) -> Result<Plan, SubnetError> {
    let mut p = Plan {
        cursor: i.cursor,
        ..Plan::default()
    };
    let existing = |key: &str| i.docker.iter().find(|n| n.project == i.app && n.key == key);
    // Networks an older release may still use keep their record.
    for (key, net) in i.recorded {
        if !i.wanted.contains(key) && existing(key).is_some_and(|n| n.subnets.contains(net)) {
            p.record.insert(key.clone(), *net);
        }
    }
    for key in i.wanted {
        let recorded = i.recorded.get(key).copied();
        if let Some(n) = existing(key) {
            match recorded.filter(|r| n.subnets.contains(r)) {
                Some(r) => {
                    p.pin.insert(key.clone(), r);
                    p.record.insert(key.clone(), r);
                }
                None => p.kept.push((key.clone(), n.subnets.clone())),
            }
            continue;
        }
        if !i.all_networks {
            return Err(SubnetError::NeedsAllNetworks(key.clone()));
        }
        let taken: Vec<Net> = i
            .docker
            .iter()
            .flat_map(|n| n.subnets.iter().copied())
            .chain(i.others.iter().copied())
            .chain(p.record.values().copied())
            .collect();
        let net = match recorded.filter(|r| !taken.iter().any(|t| t.overlaps(*r))) {
            Some(r) => r,
            None => {
                let net = allocate(i.pool, i.prefix, &taken, p.cursor).ok_or_else(|| {
                    SubnetError::Full {
                        pool: i.pool,
                        prefix: i.prefix,
                        app: i.app.to_owned(),
                        network: key.clone(),
                    }
                })?;
                p.cursor = Some(net);
                net
            }
        };
        p.pin.insert(key.clone(), net);
        p.record.insert(key.clone(), net);
    }
    Ok(p)
}

/// What the subnet store holds when a deploy plans (read by the shell under
/// the host-wide subnet lock).
#[derive(Debug, Clone)]
pub struct SubnetState {
    /// This app's record from its last deploy.
    pub recorded: BTreeMap<String, Net>,
    /// The subnets every other app holds (an error: one record is damaged).
    pub others: Result<Vec<Net>, String>,
    /// The host's cursor: `None` when it never allocated, `Some(None)` when
    /// its file does not parse.
    pub cursor: Option<Option<Net>>,
    /// The KATA_ROOT, from which a first cursor is derived.
    pub root: std::path::PathBuf,
}

impl Default for SubnetState {
    fn default() -> Self {
        SubnetState {
            recorded: BTreeMap::new(),
            others: Ok(vec![]),
            cursor: None,
            root: Default::default(),
        }
    }
}

/// What the store records after a deploy's plan (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetWrites {
    pub record: Option<BTreeMap<String, Net>>,
    pub cursor: Option<Net>,
}

/// The cursor, or for a KATA_ROOT that never allocated, a start derived
/// from its path: two kata roots sharing one engine (as tests do) then
/// start far apart in the pool.
pub fn cursor_or_start(
    saved: Option<Option<Net>>,
    root: &std::path::Path,
    pool: Net,
    prefix: u8,
) -> Option<Net> {
    if let Some(c) = saved {
        return c;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut h);
    let blocks = 1u64 << (prefix.saturating_sub(pool.prefix)).min(31);
    let i = h.finish() % blocks;
    let addr = u64::from(pool.addr) + i * (1u64 << (32 - prefix));
    // the block before it: allocation starts after the cursor
    (i > 0).then(|| Net {
        addr: (addr - (1u64 << (32 - prefix))) as u32,
        prefix,
    })
}

/// Gives the networks of `compose` (rendered for compose v1/v2) their
/// subnets from the store's state and the engine's networks, and says what
/// the store records. Nothing to decide when the app has no network to pin
/// and no record.
pub fn assign(
    app: &str,
    (pool, prefix): (&str, u8),
    state: &SubnetState,
    (docker, all_networks): (&[DockerNet], bool),
    compose: &mut Json,
) -> Result<(Plan, SubnetWrites), SubnetError> {
    let wanted = networks_to_pin(compose);
    if wanted.is_empty() && state.recorded.is_empty() {
        return Ok(Default::default());
    }
    let pool: Net = pool.parse()?;
    check_prefix(pool, prefix)?;
    let cursor = cursor_or_start(state.cursor, &state.root, pool, prefix);
    let others = state.others.clone().map_err(SubnetError::Records)?;
    let p = plan(&Inputs {
        app,
        pool,
        prefix,
        wanted: &wanted,
        recorded: &state.recorded,
        docker,
        all_networks,
        others: &others,
        cursor,
    })?;
    let writes = SubnetWrites {
        record: (p.record != state.recorded).then(|| p.record.clone()),
        cursor: p.cursor.filter(|c| Some(*c) != cursor),
    };
    pin(compose, &p.pin);
    Ok((p, writes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    fn n(s: &str) -> Net {
        s.parse().unwrap()
    }

    #[test]
    fn assign_pins_the_compose_file_and_says_what_the_store_records() {
        let mut compose = json!({"services": {"web": {"image": "a"}}});
        let state = SubnetState {
            cursor: Some(Some(n("198.18.0.0/26"))),
            ..SubnetState::default()
        };
        let (_, w) = assign(
            "shop",
            (DEFAULT_POOL, DEFAULT_PREFIX),
            &state,
            (&[], true),
            &mut compose,
        )
        .unwrap();
        assert_eq!(
            compose["networks"]["default"]["ipam"]["config"][0]["subnet"],
            "198.18.0.64/26"
        );
        let record: BTreeMap<String, Net> = [("default".to_owned(), n("198.18.0.64/26"))].into();
        assert_eq!(w.record.as_ref(), Some(&record));
        assert_eq!(w.cursor, Some(n("198.18.0.64/26")));
        // deployed again with its network there: nothing to record
        let docker = [DockerNet {
            name: "shop_default".into(),
            project: "shop".into(),
            key: "default".into(),
            subnets: vec![n("198.18.0.64/26")],
        }];
        let again = SubnetState {
            recorded: record,
            others: Err("damaged".into()),
            cursor: w.cursor.map(Some),
            ..SubnetState::default()
        };
        let mut compose = json!({"services": {"web": {"image": "a"}}});
        // the others are needed for any plan: a damaged record is an error
        let e = assign(
            "shop",
            (DEFAULT_POOL, DEFAULT_PREFIX),
            &again,
            (&docker, true),
            &mut compose,
        );
        assert_eq!(e.unwrap_err(), SubnetError::Records("damaged".into()));
        let fine = SubnetState {
            others: Ok(vec![]),
            ..again
        };
        let (_, w) = assign(
            "shop",
            (DEFAULT_POOL, DEFAULT_PREFIX),
            &fine,
            (&docker, false),
            &mut compose,
        )
        .unwrap();
        assert_eq!(w, SubnetWrites::default(), "its own network was enough");
        // a network that does not exist yet is chosen against all of them
        let mut two = json!({"services": {"web": {"image": "a", "networks": ["default", "back"]}}, "networks": {"back": {}}});
        assert_eq!(
            assign(
                "shop",
                (DEFAULT_POOL, DEFAULT_PREFIX),
                &fine,
                (&docker, false),
                &mut two,
            )
            .unwrap_err(),
            SubnetError::NeedsAllNetworks("back".into())
        );
        // no network to pin and no record: nothing is read or decided
        let mut host = json!({"services": {"web": {"image": "a", "network_mode": "host"}}});
        let broken = SubnetState {
            others: Err("damaged".into()),
            ..SubnetState::default()
        };
        assert_eq!(
            assign("shop", ("not a pool", 26), &broken, (&[], true), &mut host)
                .unwrap()
                .1,
            SubnetWrites::default()
        );
    }

    #[test]
    fn subnets_parse_and_print() {
        assert_eq!(n("198.18.0.0/15").to_string(), "198.18.0.0/15");
        assert_eq!(n("10.0.0.64/26").addr, u32::from_be_bytes([10, 0, 0, 64]));
        for bad in [
            "198.18.0.1/15",
            "10.0.0.0",
            "10.0.0.0/33",
            "x/8",
            "fd00::/64",
        ] {
            assert_eq!(
                bad.parse::<Net>(),
                Err(SubnetError::Parse(bad.into())),
                "{bad}"
            );
        }
        assert!(n("10.0.0.0/24").overlaps(n("10.0.0.128/25")));
        assert!(!n("10.0.0.0/25").overlaps(n("10.0.0.128/25")));
        assert!(n("10.0.0.0/8").contains(n("10.9.0.0/16")));
    }

    #[test]
    fn the_default_pool_is_outside_dockers_own() {
        let pool = n(DEFAULT_POOL);
        for docker in ["172.16.0.0/12", "192.168.0.0/16", "10.0.0.0/8"] {
            assert!(!pool.overlaps(n(docker)), "{docker}");
        }
        check_prefix(pool, DEFAULT_PREFIX).unwrap();
    }

    #[test]
    fn allocation_goes_after_the_cursor_and_wraps() {
        let pool = n("10.1.0.0/24");
        assert_eq!(allocate(pool, 26, &[], None), Some(n("10.1.0.0/26")));
        assert_eq!(
            allocate(pool, 26, &[], Some(n("10.1.0.0/26"))),
            Some(n("10.1.0.64/26"))
        );
        // freed (not in use) but just allocated: the next one comes first
        let used = [n("10.1.0.64/26")];
        assert_eq!(
            allocate(pool, 26, &used, Some(n("10.1.0.64/26"))),
            Some(n("10.1.0.128/26"))
        );
        // past the end: back to the start
        assert_eq!(
            allocate(pool, 26, &[n("10.1.0.0/26")], Some(n("10.1.0.192/26"))),
            Some(n("10.1.0.64/26"))
        );
        // a cursor outside the pool (the pool changed) starts at its start
        assert_eq!(
            allocate(pool, 26, &[], Some(n("198.18.0.0/26"))),
            Some(n("10.1.0.0/26"))
        );
    }

    #[test]
    fn allocation_skips_every_overlap_and_refuses_a_full_pool() {
        let pool = n("10.1.0.0/24");
        // a docker network of another size covering two blocks
        let used = [n("10.1.0.0/25"), n("10.1.0.200/30")];
        assert_eq!(allocate(pool, 26, &used, None), Some(n("10.1.0.128/26")));
        let used = [n("10.1.0.0/25"), n("10.1.0.128/26"), n("10.1.0.200/30")];
        assert_eq!(allocate(pool, 26, &used, None), None);
        // a network that holds the whole pool, and more
        assert_eq!(allocate(pool, 26, &[n("10.0.0.0/8")], None), None);
        // a prefix the pool cannot hold
        assert_eq!(allocate(pool, 23, &[], None), None);
    }

    #[test]
    fn allocation_over_a_large_pool_is_quick() {
        let pool = n(DEFAULT_POOL);
        let mut used = vec![];
        let mut cursor = None;
        for _ in 0..2048 {
            let s = allocate(pool, 26, &used, cursor).expect("room");
            assert!(!used.iter().any(|u: &Net| u.overlaps(s)));
            used.push(s);
            cursor = Some(s);
        }
        assert_eq!(allocate(pool, 26, &used, cursor), None);
    }

    fn compose(yaml: &str) -> Json {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn which_networks_get_a_subnet() {
        let doc = compose(
            "services:\n  web: {image: x}\n  db: {image: x, networks: [back]}\n  \
             host: {image: x, network_mode: host}\n  edge: {image: x, networks: {front: {}, ext: {}, own: {}, ovl: {}}}\n\
             networks:\n  back:\n  front: {driver: bridge}\n  ext: {external: true}\n  own: {ipam: {config: [{subnet: 10.5.0.0/24}]}}\n  \
             ovl: {driver: macvlan}\n  unused: {}\n",
        );
        assert_eq!(networks_to_pin(&doc), ["default", "back", "front"]);
        let only_named =
            compose("services:\n  db: {image: x, networks: [back]}\nnetworks:\n  back: {}\n");
        assert_eq!(networks_to_pin(&only_named), ["back"]);
        let none = compose("services:\n  h: {image: x, network_mode: host}\n");
        assert!(networks_to_pin(&none).is_empty());
    }

    #[test]
    fn pinning_keeps_what_the_network_says() {
        let mut doc = compose(
            "services:\n  web: {image: x, networks: [default, back]}\nnetworks:\n  back:\n    driver_opts: {a: b}\n",
        );
        let subnets = BTreeMap::from([
            ("default".to_owned(), n("198.18.0.0/26")),
            ("back".to_owned(), n("198.18.0.64/26")),
        ]);
        pin(&mut doc, &subnets);
        assert_eq!(
            doc["networks"],
            json!({
                "back": {"driver_opts": {"a": "b"}, "ipam": {"config": [{"subnet": "198.18.0.64/26"}]}},
                "default": {"ipam": {"config": [{"subnet": "198.18.0.0/26"}]}},
            })
        );
    }

    fn dn(name: &str, project: &str, key: &str, subnets: &[&str]) -> DockerNet {
        DockerNet {
            name: name.into(),
            project: project.into(),
            key: key.into(),
            subnets: subnets.iter().map(|s| n(s)).collect(),
        }
    }

    fn inputs<'a>(
        wanted: &'a [String],
        recorded: &'a BTreeMap<String, Net>,
        docker: &'a [DockerNet],
        others: &'a [Net],
        cursor: Option<Net>,
    ) -> Inputs<'a> {
        Inputs {
            app: "shop",
            pool: n("10.1.0.0/24"),
            prefix: 26,
            wanted,
            recorded,
            docker,
            all_networks: true,
            others,
            cursor,
        }
    }

    #[test]
    fn a_first_deploy_allocates_and_a_redeploy_keeps_its_subnet() {
        let wanted = vec!["default".to_owned()];
        let none = BTreeMap::new();
        let docker = [dn("bridge", "", "", &["172.17.0.0/16"])];
        let others = [n("10.1.0.0/26")];
        let p = plan(&inputs(&wanted, &none, &docker, &others, None)).unwrap();
        assert_eq!(p.pin["default"], n("10.1.0.64/26"));
        assert_eq!(p.record, p.pin);
        assert_eq!(p.cursor, Some(n("10.1.0.64/26")));
        // the network now exists with it
        let docker = [dn("shop_default", "shop", "default", &["10.1.0.64/26"])];
        let again = plan(&inputs(&wanted, &p.record, &docker, &others, p.cursor)).unwrap();
        assert_eq!(again.pin, p.pin);
        assert_eq!(again.cursor, p.cursor, "nothing new allocated");
        // after `kata stop` + a prune, the network is gone: same subnet back
        let back = plan(&inputs(&wanted, &p.record, &[], &others, p.cursor)).unwrap();
        assert_eq!(back.pin, p.pin);
    }

    #[test]
    fn a_network_made_before_kata_pinned_subnets_is_kept_as_it_is() {
        let wanted = vec!["default".to_owned(), "back".to_owned()];
        let none = BTreeMap::new();
        let docker = [dn("shop_default", "shop", "default", &["172.18.0.0/16"])];
        let p = plan(&inputs(&wanted, &none, &docker, &[], None)).unwrap();
        assert_eq!(p.kept, [("default".to_owned(), vec![n("172.18.0.0/16")])]);
        assert_eq!(p.pin.keys().collect::<Vec<_>>(), ["back"]);
        assert!(!p.record.contains_key("default"));
    }

    #[test]
    fn a_recorded_subnet_someone_else_took_is_replaced() {
        let wanted = vec!["default".to_owned()];
        let rec = BTreeMap::from([("default".to_owned(), n("10.1.0.0/26"))]);
        let docker = [dn("other", "", "", &["10.1.0.0/25"])];
        let p = plan(&inputs(&wanted, &rec, &docker, &[], None)).unwrap();
        assert_eq!(p.pin["default"], n("10.1.0.128/26"));
    }

    #[test]
    fn dropped_networks_keep_their_record_while_they_exist() {
        let wanted = vec!["default".to_owned()];
        let rec = BTreeMap::from([
            ("default".to_owned(), n("10.1.0.0/26")),
            ("old".to_owned(), n("10.1.0.64/26")),
            ("gone".to_owned(), n("10.1.0.128/26")),
        ]);
        let docker = [
            dn("shop_default", "shop", "default", &["10.1.0.0/26"]),
            dn("shop_old", "shop", "old", &["10.1.0.64/26"]),
        ];
        let p = plan(&inputs(&wanted, &rec, &docker, &[], None)).unwrap();
        assert_eq!(
            p.record.keys().collect::<Vec<_>>(),
            ["default", "old"],
            "`gone` is freed"
        );
    }

    #[test]
    fn a_full_pool_is_refused_by_name() {
        let wanted = vec!["default".to_owned()];
        let none = BTreeMap::new();
        let others = [n("10.1.0.0/24")];
        let e = plan(&inputs(&wanted, &none, &[], &others, None)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("10.1.0.0/24 has no free /26 left for shop's network `default`"),
            "{text}"
        );
        assert!(text.contains("--subnet-pool"), "{text}");
    }

    /// What compose v1 and v2 get: the rendered file with kata's subnets.
    #[test]
    fn rendered_compose_files_carry_the_subnets() {
        let text = "services:\n  web:\n    image: busybox\n    networks: [default, back]\n  \
                    db:\n    image: busybox\n    networks: [back, shared]\n\
                    networks:\n  back:\n    driver_opts: {com.docker.network.bridge.enable_icc: \"true\"}\n  \
                    shared: {external: true}\n";
        let spec = crate::spec::parse(text).spec.expect("valid");
        let paths = Paths::new("/home/kata");
        let env = crate::envfile::Env::new();
        let cx = crate::render::Context {
            app: "shop",
            paths: &paths,
            config_env: &env,
            puid: 1000,
            pgid: 1000,
            release: Some((3, "0123abc")),
        };
        for (target, name) in [
            (crate::render::Target::V2, "v2"),
            (crate::render::Target::V1, "v1"),
        ] {
            let mut out = crate::render::render(&spec, &cx, target);
            let wanted = networks_to_pin(&out.compose);
            assert_eq!(wanted, ["default", "back"]);
            let p = plan(&Inputs {
                app: "shop",
                pool: n(DEFAULT_POOL),
                prefix: DEFAULT_PREFIX,
                wanted: &wanted,
                recorded: &BTreeMap::new(),
                docker: &[dn("bridge", "", "", &["172.17.0.0/16"])],
                all_networks: true,
                others: &[n("198.18.0.0/26")],
                cursor: None,
            })
            .unwrap();
            pin(&mut out.compose, &p.pin);
            insta::assert_snapshot!(format!("pinned_{name}"), out.yaml());
        }
    }

    #[test]
    fn network_snapshot_lines() {
        let out = "bridge\t\t\t172.17.0.0/16 \nshop_default\tshop\tdefault\t198.18.0.0/26 fd00::/64 \nhost\t\t\t\n";
        let nets = parse_networks(out);
        assert_eq!(nets.len(), 3);
        assert_eq!(
            nets[1],
            dn("shop_default", "shop", "default", &["198.18.0.0/26"])
        );
        assert!(nets[2].subnets.is_empty());
    }
}
