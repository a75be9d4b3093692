//! Published loopback ports for routed services (pure).
//!
//! Caddy on the host reaches a compose app's routed service through host
//! ports kata assigns to that app and Docker keeps: for each `<service>:<port>`
//! dial a block of ports (two per instance) from kata's port range, published
//! on 127.0.0.1 as one range (`127.0.0.1:20000-20001:8000`). Docker gives each
//! container one free port of the range, again after every container or
//! engine restart, so blue/green's two containers get one each, and Caddy,
//! which has every port of the block, finds the container wherever it landed.
//! A block belongs to one app: no restart can make it answer for another.
//!
//! Blocks are kept across redeploys and freed with the app; new ones are
//! taken after a host-wide cursor, so a freed block is not handed out again
//! until the range has gone round once.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// kata's host port range, inclusive (`kata setup --port-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Below Linux's ephemeral range (32768-60999), so outgoing connections
/// never hold one of these ports.
pub const DEFAULT_RANGE: PortRange = PortRange {
    first: 20000,
    last: 29999,
};

impl PortRange {
    /// `FIRST-LAST`, e.g. `20000-29999`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("port range {s:?}: expected FIRST-LAST, e.g. 20000-29999");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first < 1024 || last < first.saturating_add(1) {
            return Err(format!(
                "port range {s:?}: needs at least two ports, all above 1023"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Host ports `first ..= first + len - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub first: u16,
    pub len: u16,
}

impl Block {
    pub fn last(self) -> u16 {
        self.first + self.len - 1
    }
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last()).contains(&port)
    }
    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.first..=self.last()
    }
    fn overlaps(self, other: Block) -> bool {
        self.first <= other.last() && other.first <= self.last()
    }
    /// The compose `ports:` entry publishing `container_port` on this block.
    pub fn publish(self, container_port: u16) -> String {
        format!("127.0.0.1:{}-{}:{container_port}", self.first, self.last())
    }
}

/// An app's blocks, by dial (`<service>:<port>`), as kept in its state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppPorts {
    pub blocks: BTreeMap<String, Block>,
}

pub fn key(service: &str, port: u16) -> String {
    format!("{service}:{port}")
}

impl AppPorts {
    pub fn get(&self, service: &str, port: u16) -> Option<Block> {
        self.blocks.get(&key(service, port)).copied()
    }
    /// The service's blocks: (container port, block).
    pub fn of_service(&self, service: &str) -> Vec<(u16, Block)> {
        self.blocks
            .iter()
            .filter_map(|(k, b)| {
                let (s, p) = k.rsplit_once(':')?;
                (s == service).then_some((p.parse().ok()?, *b))
            })
            .collect()
    }
}

/// Ports each routed dial needs: two per instance (old and new containers
/// of a blue/green switch run side by side).
pub fn wanted(routed: &[(String, u16)], instances: impl Fn(&str) -> u32) -> Vec<(String, u16)> {
    routed
        .iter()
        .map(|(s, p)| (key(s, *p), 2 * instances(s).clamp(1, 1000) as u16))
        .collect()
}

#[derive(Debug, Error, PartialEq)]
pub enum PortError {
    #[error(
        "no {len} free consecutive ports left in kata's port range {range} for {key} (widen it with `kata setup --port-range FIRST-LAST`)"
    )]
    Full {
        key: String,
        len: u16,
        range: PortRange,
    },
    /// Another app's record could not be read.
    #[error("{0}")]
    Records(String),
}

/// The app's blocks after allocation, and where the next search starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub ports: AppPorts,
    pub cursor: u16,
}

/// Gives every wanted dial a block: its current one when it is big enough
/// and inside the range, else a new one, searched from `cursor` on (wrapping
/// once round the range) among ports no other app (`taken`) and no block of
/// this app holds. Dials no longer wanted keep their block until the app is
/// removed: the release that still runs may publish it, and a deploy that
/// fails goes back to that release.
pub fn allocate(
    range: PortRange,
    cursor: u16,
    taken: &[Block],
    current: &AppPorts,
    wanted: &[(String, u16)],
) -> Result<Allocation, PortError> {
    let inside = |b: Block| b.first >= range.first && b.last() <= range.last;
    let mut cursor = if (range.first..=range.last).contains(&cursor) {
        cursor
    } else {
        range.first
    };
    let mut out = AppPorts::default();
    for (k, len) in wanted {
        if let Some(b) = current.blocks.get(k).copied()
            && b.len >= *len
            && inside(b)
        {
            out.blocks.insert(k.clone(), b);
        }
    }
    // A replaced block stays out of use by this allocation too.
    let mut busy: Vec<Block> = taken.to_vec();
    busy.extend(current.blocks.values().copied());
    busy.extend(out.blocks.values().copied());
    let size = u32::from(range.last - range.first) + 1;
    for (k, len) in wanted {
        if out.blocks.contains_key(k) {
            continue;
        }
        let full = || PortError::Full {
            key: k.clone(),
            len: *len,
            range,
        };
        if u32::from(*len) > size {
            return Err(full());
        }
        let mut p = cursor;
        let mut walked: u32 = 0;
        let found = loop {
            if walked > size {
                break None;
            }
            if u32::from(p) + u32::from(*len) - 1 > u32::from(range.last) {
                walked += u32::from(range.last - p) + 1;
                p = range.first;
                continue;
            }
            let b = Block {
                first: p,
                len: *len,
            };
            match busy
                .iter()
                .filter(|t| t.overlaps(b))
                .map(|t| t.last())
                .max()
            {
                None => break Some(b),
                Some(end) => {
                    let next = u32::from(end) + 1;
                    walked += next - u32::from(p);
                    p = if next > u32::from(range.last) {
                        range.first
                    } else {
                        next as u16
                    };
                }
            }
        };
        let b = found.ok_or_else(full)?;
        busy.push(b);
        out.blocks.insert(k.clone(), b);
        let next = u32::from(b.last()) + 1;
        cursor = if next > u32::from(range.last) {
            range.first
        } else {
            next as u16
        };
    }
    for (k, b) in &current.blocks {
        if !wanted.iter().any(|(w, _)| w == k) && inside(*b) {
            out.blocks.insert(k.clone(), *b);
        }
    }
    Ok(Allocation { ports: out, cursor })
}

/// The order Caddy tries a block's ports in: those held by the preferred
/// containers (the new ones at a switch), then those other containers hold,
/// then the free ones, each group ascending.
pub fn order(block: Block, preferred: &[u16], held: &[u16]) -> Vec<u16> {
    let mut out: Vec<u16> = vec![];
    for group in [preferred, held] {
        let mut g: Vec<u16> = group
            .iter()
            .copied()
            .filter(|p| block.contains(*p) && !out.contains(p))
            .collect();
        g.sort_unstable();
        g.dedup();
        out.extend(g);
    }
    let free: Vec<u16> = block.ports().filter(|p| !out.contains(p)).collect();
    out.extend(free);
    out
}

/// What a switch asks of [`upstreams`]: the services that switch, and
/// which containers are the new ones (their ports go first; with several
/// replicas only theirs are listed, so the old ones get no new request).
pub struct Switch<'a> {
    pub services: &'a [&'a str],
    pub is_new: &'a dyn Fn(&str) -> bool,
}

/// Each service's upstreams from the app's blocks and its running
/// containers. A service with a block dials its ports, unless its running
/// containers publish none of them (started before kata published ports):
/// those are dialled at their addresses until the next deploy.
pub fn upstreams(
    services: &[String],
    blocks: &AppPorts,
    running: &[Published],
    replicas: &dyn Fn(&str) -> u32,
    switch: Option<&Switch>,
) -> BTreeMap<String, crate::caddy::Upstreams> {
    use crate::caddy::Upstreams;
    let mut out = BTreeMap::new();
    for s in services {
        let cs: Vec<&Published> = running.iter().filter(|c| &c.service == s).collect();
        let switching = switch.filter(|w| w.services.contains(&s.as_str()));
        let new = |c: &Published| switching.is_some_and(|w| (w.is_new)(&c.id));
        let blocks_s = blocks.of_service(s);
        let publishes = cs
            .iter()
            .any(|c| blocks_s.iter().any(|(p, b)| c.port_in(*p, *b).is_some()));
        let n = replicas(s);
        let up = if !blocks_s.is_empty() && (cs.is_empty() || publishes) {
            let by_port = blocks_s
                .iter()
                .map(|(p, b)| {
                    let first: Vec<u16> = cs
                        .iter()
                        .filter(|c| new(c))
                        .filter_map(|c| c.port_in(*p, *b))
                        .collect();
                    let held: Vec<u16> = cs.iter().filter_map(|c| c.port_in(*p, *b)).collect();
                    let list = if switching.is_some() && n > 1 && !first.is_empty() {
                        let mut f = first;
                        f.sort_unstable();
                        f
                    } else {
                        order(*b, &first, &held)
                    };
                    (*p, list)
                })
                .collect();
            Upstreams::Ports {
                by_port,
                replicas: n,
            }
        } else {
            let mut ips: Vec<String> = cs
                .iter()
                .filter(|c| switching.is_none() || new(c))
                .filter_map(|c| c.ips.first().cloned())
                .collect();
            ips.sort();
            Upstreams::Addresses(ips)
        };
        out.insert(s.clone(), up);
    }
    out
}

/// A running swarm task on this node: its service, release, place in
/// `docker ps` (which lists the newest first) and `docker_gwbridge` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub service: String,
    pub release: u64,
    pub newer_than: usize,
    pub ip: String,
}

/// Swarm mode: each service's task addresses (every one of `services`, an
/// empty list for one with no task). While swarm replaces tasks the old
/// ones come first (the old release's, then the older containers): Caddy
/// keeps to them and fails over to the new ones when swarm stops them.
pub fn task_upstreams(
    services: &[String],
    tasks: &[Task],
    replicas: &dyn Fn(&str) -> u32,
) -> BTreeMap<String, crate::caddy::Upstreams> {
    services
        .iter()
        .map(|s| {
            let mut mine: Vec<&Task> = tasks.iter().filter(|t| &t.service == s).collect();
            mine.sort_by_key(|t| (t.release, std::cmp::Reverse(t.newer_than), t.ip.clone()));
            let addrs = mine.into_iter().map(|t| t.ip.clone()).collect();
            let replicas = replicas(s).max(1);
            (
                s.clone(),
                crate::caddy::Upstreams::Tasks { addrs, replicas },
            )
        })
        .collect()
}

/// The first upstream dial of every `reverse_proxy` handler in a server:
/// where Caddy's `first` policy sends each request.
pub fn first_dials(server: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("handler").and_then(Value::as_str) == Some("reverse_proxy")
                    && let Some(d) = m
                        .get("upstreams")
                        .and_then(|u| u.get(0))
                        .and_then(|u| u.get("dial"))
                        .and_then(Value::as_str)
                {
                    out.push(d.to_owned());
                }
                m.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(server, &mut out);
    out
}

/// One container as `docker inspect` shows it: its owner, state, addresses
/// and published ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub app: String,
    pub service: String,
    pub running: bool,
    pub ips: Vec<String>,
    /// (container port, host address, host port), TCP only.
    pub ports: Vec<(u16, String, u16)>,
}

impl Published {
    /// The host port this container publishes `container_port` on, inside `block`.
    pub fn port_in(&self, container_port: u16, block: Block) -> Option<u16> {
        self.ports
            .iter()
            .find(|(c, _, h)| *c == container_port && block.contains(*h))
            .map(|(_, _, h)| *h)
    }
}

/// The `docker inspect --format` that [`parse_inspect`] reads.
pub const INSPECT_FORMAT: &str = "{{.Id}}\t{{index .Config.Labels \"kata.app\"}}\t{{index .Config.Labels \"kata.service\"}}\t{{.State.Status}}\t{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}\t{{json .NetworkSettings.Ports}}";

pub fn parse_inspect(out: &str) -> Vec<Published> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 6 {
                return None;
            }
            let ports_json: serde_json::Value = serde_json::from_str(f[5]).unwrap_or_default();
            let mut ports = vec![];
            for (spec, binds) in ports_json.as_object().into_iter().flatten() {
                let Some(cport) = spec
                    .strip_suffix("/tcp")
                    .and_then(|p| p.parse::<u16>().ok())
                else {
                    continue;
                };
                for b in binds.as_array().into_iter().flatten() {
                    let ip = b.get("HostIp").and_then(|v| v.as_str()).unwrap_or("");
                    if let Some(hp) = b
                        .get("HostPort")
                        .and_then(|v| v.as_str())
                        .and_then(|p| p.parse().ok())
                    {
                        ports.push((cport, ip.to_owned(), hp));
                    }
                }
            }
            ports.sort();
            Some(Published {
                id: f[0].to_owned(),
                app: f[1].to_owned(),
                service: f[2].to_owned(),
                running: f[3] == "running",
                ips: f[4].split_whitespace().map(str::to_owned).collect(),
                ports,
            })
        })
        .collect()
}

/// The published TCP ports in `docker ps`'s `{{.Ports}}` column, as
/// (container port, host address, host port): e.g.
/// `127.0.0.1:20000-20001->8080-8081/tcp, [::]:32768->9090/tcp, 53/udp`.
/// Consecutive ports come as ranges; ports that are not published have no
/// `->` and are left out.
pub fn parse_ps_ports(column: &str) -> Vec<(u16, String, u16)> {
    fn range(r: &str) -> Option<(u16, u16)> {
        match r.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => r.parse().ok().map(|p| (p, p)),
        }
    }
    let mut out = vec![];
    for entry in column.split(", ") {
        let Some((host, inside)) = entry.trim().split_once("->") else {
            continue;
        };
        let Some(inside) = inside.strip_suffix("/tcp") else {
            continue;
        };
        let Some((addr, hports)) = host.rsplit_once(':') else {
            continue;
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let (Some((h0, h1)), Some((c0, c1))) = (range(hports), range(inside)) else {
            continue;
        };
        if h1 < h0 || c1 < c0 || h1 - h0 != c1 - c0 {
            continue;
        }
        for k in 0..=(h1 - h0) {
            out.push((c0 + k, addr.to_owned(), h0 + k));
        }
    }
    out.sort();
    out
}

/// What the port store holds when a deploy plans (read by the shell under
/// the host-wide ports lock).
#[derive(Debug, Clone)]
pub struct PortState {
    /// This app's blocks.
    pub current: AppPorts,
    /// Every other app's blocks (an error: one record is damaged, which
    /// must not hand its ports out again).
    pub taken: Result<Vec<Block>, String>,
    pub cursor: u16,
}

impl Default for PortState {
    fn default() -> Self {
        PortState {
            current: AppPorts::default(),
            taken: Ok(vec![]),
            cursor: 0,
        }
    }
}

/// What the store records after a deploy's plan (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortWrites {
    pub ports: Option<AppPorts>,
    pub cursor: Option<u16>,
}

/// Gives the app a block for each wanted dial (see [`allocate`]) from the
/// store's state, and says what the store records. Other apps' blocks are
/// needed only when a wanted block does not fit the current ones.
pub fn reserve(
    range: PortRange,
    state: &PortState,
    wanted: &[(String, u16)],
) -> Result<(AppPorts, PortWrites), PortError> {
    let fits = |k: &String, len: u16| {
        state
            .current
            .blocks
            .get(k)
            .is_some_and(|b| b.len >= len && b.first >= range.first && b.last() <= range.last)
    };
    let taken = match wanted.iter().all(|(k, len)| fits(k, *len)) {
        true => vec![],
        false => state.taken.clone().map_err(PortError::Records)?,
    };
    let a = allocate(range, state.cursor, &taken, &state.current, wanted)?;
    let writes = PortWrites {
        ports: (a.ports != state.current).then(|| a.ports.clone()),
        cursor: (a.cursor != state.cursor).then_some(a.cursor),
    };
    Ok((a.ports, writes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: PortRange = PortRange {
        first: 20000,
        last: 20009,
    };

    fn want(items: &[(&str, u16)]) -> Vec<(String, u16)> {
        items.iter().map(|(k, l)| ((*k).to_owned(), *l)).collect()
    }

    #[test]
    fn swarm_tasks_are_listed_old_first() {
        use crate::caddy::Upstreams;
        let t = |service: &str, release, newer_than, ip: &str| Task {
            service: service.into(),
            release,
            newer_than,
            ip: ip.into(),
        };
        // `docker ps` order: the new release's task first, then a restart's
        // replacement of the older one
        let tasks = [
            t("web", 4, 0, "172.18.0.2"),
            t("web", 3, 1, "172.18.0.9"),
            t("api", 3, 2, "172.18.0.3"),
            t("api", 3, 3, "172.18.0.8"),
        ];
        let services = ["api".to_owned(), "web".to_owned(), "db".to_owned()];
        let got = task_upstreams(&services, &tasks, &|s| u32::from(s == "api") + 1);
        let tasks_of = |v: &[&str], replicas| Upstreams::Tasks {
            addrs: v.iter().map(|s| (*s).to_owned()).collect(),
            replicas,
        };
        assert_eq!(got["web"], tasks_of(&["172.18.0.9", "172.18.0.2"], 1));
        assert_eq!(got["api"], tasks_of(&["172.18.0.8", "172.18.0.3"], 2));
        assert_eq!(got["db"], tasks_of(&[], 1));
    }

    #[test]
    fn reserve_says_what_the_store_records_and_reads_others_only_when_needed() {
        let first = PortState {
            cursor: 20000,
            ..PortState::default()
        };
        let (ports, w) = reserve(R, &first, &want(&[("web:80", 2)])).unwrap();
        assert_eq!(
            ports.get("web", 80),
            Some(Block {
                first: 20000,
                len: 2
            })
        );
        assert_eq!(w.ports.as_ref(), Some(&ports));
        assert_eq!(w.cursor, Some(20002));
        // the same dials again: nothing changes, and a damaged record of
        // another app does not matter
        let again = PortState {
            current: ports.clone(),
            taken: Err("state/apps/x/ports.json is damaged".into()),
            cursor: 20002,
        };
        let (same, w) = reserve(R, &again, &want(&[("web:80", 2)])).unwrap();
        assert_eq!((same, w), (ports, PortWrites::default()));
        // a new block must know the others: the damaged record is the error
        let e = reserve(R, &again, &want(&[("web:80", 2), ("api:80", 2)])).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(PortRange::parse("20000-29999").unwrap(), DEFAULT_RANGE);
        assert_eq!(DEFAULT_RANGE.to_string(), "20000-29999");
        for bad in ["", "20000", "a-b", "30000-20000", "80-90", "20000-20000"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blocks_come_after_the_cursor_and_skip_other_apps() {
        let taken = [Block {
            first: 20004,
            len: 2,
        }];
        let a = allocate(
            R,
            20003,
            &taken,
            &AppPorts::default(),
            &want(&[("web:80", 2), ("api:9000", 2)]),
        )
        .unwrap();
        insta::assert_json_snapshot!(a.ports, @r#"
        {
          "blocks": {
            "api:9000": {
              "first": 20008,
              "len": 2
            },
            "web:80": {
              "first": 20006,
              "len": 2
            }
          }
        }
        "#);
        // the end of the range wraps round; 20000 is free again
        assert_eq!(a.cursor, 20000);
    }

    #[test]
    fn redeploys_keep_their_block_and_a_bigger_need_moves_it() {
        let current = AppPorts {
            blocks: BTreeMap::from([
                (
                    "web:80".to_owned(),
                    Block {
                        first: 20000,
                        len: 2,
                    },
                ),
                (
                    "gone:1".to_owned(),
                    Block {
                        first: 20002,
                        len: 2,
                    },
                ),
            ]),
        };
        let same = allocate(R, 20004, &[], &current, &want(&[("web:80", 2)])).unwrap();
        assert_eq!(same.ports.get("web", 80).unwrap().first, 20000);
        assert_eq!(same.cursor, 20004, "nothing new: the cursor stays");
        // a dial no longer routed keeps its block until `rm`: the live
        // release may publish it, and a failed deploy goes back to it
        assert_eq!(same.ports.get("gone", 1).unwrap().first, 20002);
        // three instances: a block of six, not overlapping the old one
        let bigger = allocate(R, 20000, &[], &current, &want(&[("web:80", 6)])).unwrap();
        assert_eq!(
            bigger.ports.get("web", 80).unwrap(),
            Block {
                first: 20004,
                len: 6
            }
        );
    }

    #[test]
    fn freed_blocks_are_not_reused_until_the_range_went_round() {
        // app A got 20000-20001 and was removed; the cursor is past it
        let b = allocate(R, 20002, &[], &AppPorts::default(), &want(&[("web:80", 2)])).unwrap();
        assert_eq!(b.ports.get("web", 80).unwrap().first, 20002);
        let c = allocate(
            R,
            b.cursor,
            &[b.ports.get("web", 80).unwrap()],
            &AppPorts::default(),
            &want(&[("web:80", 2)]),
        )
        .unwrap();
        assert_eq!(c.ports.get("web", 80).unwrap().first, 20004);
    }

    #[test]
    fn a_full_range_is_a_clear_error() {
        let taken: Vec<Block> = (0..5)
            .map(|i| Block {
                first: 20000 + 2 * i,
                len: 2,
            })
            .collect();
        let e = allocate(
            R,
            20007,
            &taken,
            &AppPorts::default(),
            &want(&[("web:80", 2)]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no 2 free consecutive ports left in kata's port range 20000-20009 for web:80 (widen it with `kata setup --port-range FIRST-LAST`)"
        );
        let one_hole = &taken[1..];
        let ok = allocate(
            R,
            20007,
            one_hole,
            &AppPorts::default(),
            &want(&[("web:80", 2)]),
        )
        .unwrap();
        assert_eq!(ok.ports.get("web", 80).unwrap().first, 20000);
        assert!(allocate(R, 20000, &[], &AppPorts::default(), &want(&[("w:1", 12)])).is_err());
    }

    #[test]
    fn ports_are_tried_new_first_then_held_then_free() {
        let b = Block {
            first: 20010,
            len: 4,
        };
        assert_eq!(
            order(b, &[20013], &[20011]),
            vec![20013, 20011, 20010, 20012]
        );
        assert_eq!(order(b, &[], &[]), vec![20010, 20011, 20012, 20013]);
        // a port outside the block (a container of an older block) is not listed
        assert_eq!(
            order(b, &[30000], &[20010]),
            vec![20010, 20011, 20012, 20013]
        );
        assert_eq!(b.publish(8080), "127.0.0.1:20010-20013:8080");
    }

    #[test]
    fn wanted_gives_two_ports_per_instance() {
        let routed = vec![("web".to_owned(), 80), ("api".to_owned(), 9000)];
        let w = wanted(&routed, |s| if s == "api" { 3 } else { 0 });
        assert_eq!(w, want(&[("web:80", 2), ("api:9000", 6)]));
    }

    fn container(id: &str, service: &str, port: Option<u16>) -> Published {
        Published {
            id: id.into(),
            app: "shop".into(),
            service: service.into(),
            running: true,
            ips: vec![format!("172.18.0.{}", id.len())],
            ports: port
                .map(|p| (80, "127.0.0.1".into(), p))
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn upstreams_follow_the_blocks_and_the_switch() {
        use crate::caddy::Upstreams;
        let blocks = AppPorts {
            blocks: BTreeMap::from([(
                "web:80".to_owned(),
                Block {
                    first: 20000,
                    len: 2,
                },
            )]),
        };
        let services = vec!["web".to_owned(), "db".to_owned()];
        let one = |_: &str| 1;
        let ports = |v: Vec<u16>, replicas| Upstreams::Ports {
            by_port: BTreeMap::from([(80, v)]),
            replicas,
        };
        // steady: the held port first, then the free one
        let running = vec![container("old", "web", Some(20001))];
        let got = upstreams(&services, &blocks, &running, &one, None);
        assert_eq!(got["web"], ports(vec![20001, 20000], 1));
        assert_eq!(got["db"], Upstreams::Addresses(vec![]));
        // nothing runs (`kata stop`): every port of the block, nobody answers
        let got = upstreams(&services, &blocks, &[], &one, None);
        assert_eq!(got["web"], ports(vec![20000, 20001], 1));
        // the switch: the new container's port first
        let running = vec![
            container("old", "web", Some(20000)),
            container("fresh", "web", Some(20001)),
        ];
        let is_new = |id: &str| id == "fresh";
        let sw = Switch {
            services: &["web"],
            is_new: &is_new,
        };
        let got = upstreams(&services, &blocks, &running, &one, Some(&sw));
        assert_eq!(got["web"], ports(vec![20001, 20000], 1));
        // several replicas: only the new containers' ports until the old are gone
        let three = |_: &str| 3;
        let got = upstreams(&services, &blocks, &running, &three, Some(&sw));
        assert_eq!(got["web"], ports(vec![20001], 3));
        // containers from before published ports: their addresses, new ones only at a switch
        let running = vec![
            container("old", "web", None),
            container("fresh", "web", None),
        ];
        let got = upstreams(&services, &blocks, &running, &one, Some(&sw));
        assert_eq!(got["web"], Upstreams::Addresses(vec!["172.18.0.5".into()]));
        let got = upstreams(&services, &AppPorts::default(), &running, &one, None);
        assert_eq!(
            got["web"],
            Upstreams::Addresses(vec!["172.18.0.3".into(), "172.18.0.5".into()])
        );
    }

    #[test]
    fn first_dials_are_where_first_sends_requests() {
        let server = serde_json::json!({"routes": [{"handle": [
            {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:20001"}, {"dial": "127.0.0.1:20000"}]},
            {"handler": "subroute", "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "a:1"}]}]}]},
            {"handler": "reverse_proxy", "upstreams": []}
        ]}]});
        assert_eq!(first_dials(&server), vec!["127.0.0.1:20001", "a:1"]);
    }

    #[test]
    fn inspect_output_is_read() {
        let out = "abc\tshop\tweb\trunning\t172.18.0.2 \t{\"80/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"20001\"}],\"81/udp\":null,\"90/tcp\":null}\n\
                   def\tblog\tweb\texited\t\t{}\nshort line\n";
        let got = parse_inspect(out);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].ports, vec![(80, "127.0.0.1".to_owned(), 20001)]);
        assert_eq!(got[0].ips, vec!["172.18.0.2".to_owned()]);
        assert!(got[0].running && !got[1].running);
        let b = Block {
            first: 20000,
            len: 2,
        };
        assert_eq!(got[0].port_in(80, b), Some(20001));
        assert_eq!(got[0].port_in(81, b), None);
    }

    #[test]
    fn ports_of_docker_ps_are_read_with_their_ranges() {
        let col = "127.0.0.1:20000-20001->8080-8081/tcp, 0.0.0.0:32769->8081/tcp, [::]:32768->8081/tcp, 53/udp, 8443/tcp, 127.0.0.1:5353->53/udp";
        assert_eq!(
            parse_ps_ports(col),
            [
                (8080, "127.0.0.1".to_owned(), 20000),
                (8081, "0.0.0.0".to_owned(), 32769),
                (8081, "127.0.0.1".to_owned(), 20001),
                (8081, "::".to_owned(), 32768),
            ]
        );
        assert_eq!(parse_ps_ports(""), []);
        // a range whose sides differ in length is not guessed at
        assert_eq!(parse_ps_ports("127.0.0.1:1-3->80-81/tcp"), []);
    }
}
