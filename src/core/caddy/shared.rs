//! Many apps on one listen address (pure): where an app's part of the Caddy
//! config goes, and the admin calls that write, replace or remove it.
//!
//! The model:
//!
//! - Every listen address set that kata apps use gets **one shared server**,
//!   `apps.http.servers.kata.<address>` (see [`server_name`]; an app name can
//!   never contain a `.`, so it never collides with a server named after an
//!   app, as kata wrote them before).
//! - Each app's part of that server is **one route** whose `@id` is
//!   `kata.<app>` ([`part_id`]). It matches the hosts the app's routes match
//!   (no matcher when one of them matches every host: a catch-all) and hands
//!   the request to a `subroute` holding the app's own routes, unchanged.
//!   So an app's part is replaced with one `PATCH /id/kata.<app>` and removed
//!   with one `DELETE /id/kata.<app>`, and nothing else is touched.
//! - Parts that match hosts come before catch-all parts, whatever the deploy
//!   order. Two apps can't claim the same host on one server, nor both be its
//!   catch-all.
//! - Server-level keys (everything but `listen` and `routes`: automatic_https,
//!   tls_connection_policies, logs, timeouts, errors, ...) are one value per
//!   server: an app may change them only while it is alone on the server.
//! - An app deployed by an older kata has a server of its own,
//!   `apps.http.servers.<app>`. Its next write moves it: the old server goes
//!   and the shared one gets its part in **one** change (Caddy applies one
//!   admin change atomically and keeps its listeners across it), so no
//!   request is dropped. Another kata app's old server on the same addresses
//!   is moved in the same change.
//!
//! Planning reads the live config (`GET /config/`) and returns the calls;
//! [`super::Admin`] only executes them.

use super::listen::{canonical, conflicts};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use thiserror::Error;

const SERVERS: &str = "/config/apps/http/servers";
/// The parents of a server, from the root down.
const PARENTS: [&str; 3] = ["apps", "http", "servers"];
/// The prefix of every `@id` and shared server name kata writes.
pub const PREFIX: &str = "kata.";
/// Where TLS automation policies live, from the root down.
const POLICY_KEYS: [&str; 4] = ["apps", "tls", "automation", "policies"];

/// Why an app's part cannot be written; nothing is sent then.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error(
        "caddy: host {host:?} on {listen} is already routed to {owner}; \
         each host belongs to one app (remove it from one of them)"
    )]
    HostTaken {
        host: String,
        listen: String,
        owner: String,
    },
    #[error(
        "caddy: {app} and {owner} both match every host on {listen} (no host matcher); \
         only one app per address can be the catch-all: give one of them domains"
    )]
    CatchAllTaken {
        app: String,
        owner: String,
        listen: String,
    },
    /// `clash`: who sets what, e.g. `app "b" sets it to 1, but app "a" on :80 set 2`.
    #[error(
        "caddy.{key}: {clash}; \
         a server-level setting has one value for every app on an address: \
         set it the same way in each, or give this app another listen address"
    )]
    Setting { key: String, clash: String },
    #[error(
        "caddy.listen: {address:?} is already taken by {owner}, which listens on {theirs:?}; \
         apps share an address only with exactly the same listen list"
    )]
    ListenTaken {
        address: String,
        owner: String,
        theirs: String,
    },
    #[error(
        "caddy.https.issuer: host {host:?} already has a TLS automation policy of {owner}; \
         each host's certificates are one app's (remove it from one of them)"
    )]
    PolicyTaken { host: String, owner: String },
    #[error("caddy.listen: missing: a server object needs listen addresses, e.g. [\":80\"]")]
    NoListen,
    #[error("caddy: the live config is not what kata expects: {0}")]
    Unexpected(String),
}

/// One admin API call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Sent with `If-Match`: only if the value at `path` is still the one the
    /// plan was made from (else the executor plans again).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guarded: bool,
}

impl Call {
    fn new(method: &'static str, path: String, body: Option<Value>) -> Call {
        Call {
            method,
            path,
            body,
            guarded: false,
        }
    }

    /// The JSON pointer (into the whole config) of a `/config/...` path.
    pub fn pointer(&self) -> Option<String> {
        let p = self.path.strip_prefix("/config")?;
        Some(p.trim_end_matches('/').to_owned())
    }
}

/// What a plan does, for people (`caddy:sync`, `-----> Routing` lines).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The shared server the app's part is on (or was on, for a removal).
    pub server: String,
    pub calls: Vec<Call>,
    /// Old per-app servers moved into the shared one by this plan.
    pub moved: Vec<String>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.calls.is_empty()
    }
}

/// `kata.<app>`: the `@id` of the app's route on its shared server.
pub fn part_id(app: &str) -> String {
    format!("{PREFIX}{app}")
}

/// The app named by a kata `@id`, if it is one.
pub fn app_of_id(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
        .filter(|a| crate::names::is_app_name(a))
}

/// The listen addresses of a server object, as written.
pub fn listen_of(server: &Value) -> Vec<String> {
    server
        .get("listen")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Listen lists compared as sets of sockets: order and case do not matter,
/// and aliases of one address (`localhost:80`, `127.0.0.1:80`,
/// `[::ffff:127.0.0.1]:80`; `:80`, `0.0.0.0:80`) are one entry, their
/// [`canonical`] spelling.
fn listen_key(listen: &[String]) -> Vec<String> {
    let mut k: Vec<String> = listen
        .iter()
        .map(|a| canonical(a).to_ascii_lowercase())
        .collect();
    k.sort();
    k.dedup();
    k
}

/// `kata.<addresses>`: the shared server for a listen list, e.g.
/// `[":80", ":443"]` → `kata.443-80`, `["127.0.0.1:8080"]` (or
/// `["localhost:8080"]`) → `kata.127.0.0.1_8080`. Only `[a-z0-9._-]` survive,
/// so the name is one safe path segment.
pub fn server_name(listen: &[String]) -> String {
    let parts: Vec<String> = listen_key(listen)
        .iter()
        .map(|a| {
            let a = a.strip_prefix("tcp/").unwrap_or(a).trim_start_matches(':');
            a.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
                .trim_matches('_')
                .to_owned()
        })
        .collect();
    format!("{PREFIX}{}", parts.join("-"))
}

/// Whether a server key is one of kata's shared servers.
pub fn is_shared(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// The hosts a route list claims, and whether one route matches every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub hosts: Vec<String>,
    pub catch_all: bool,
}

/// The hosts one route matches: `None` when some matcher set has no `host`
/// (the route can match any host).
fn route_hosts(route: &Value) -> Option<Vec<String>> {
    let sets = match route.get("match") {
        None | Some(Value::Null) => return None,
        Some(Value::Array(sets)) if !sets.is_empty() => sets,
        Some(_) => return None,
    };
    let mut hosts = vec![];
    for set in sets {
        let hs = set.get("host")?.as_array()?;
        for h in hs.iter().filter_map(Value::as_str) {
            let h = h.to_ascii_lowercase();
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    Some(hosts)
}

/// What `routes` claims on a shared server.
pub fn claim(routes: &[Value]) -> Claim {
    let mut c = Claim::default();
    for r in routes {
        match route_hosts(r) {
            Some(hs) => {
                for h in hs {
                    if !c.hosts.contains(&h) {
                        c.hosts.push(h);
                    }
                }
            }
            None => c.catch_all = true,
        }
    }
    c
}

fn routes_of(server: &Value) -> &[Value] {
    server
        .get("routes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `*.example.com` covers `a.example.com` (one label), as Caddy's matcher does.
fn host_overlap(a: &str, b: &str) -> bool {
    fn covers(pattern: &str, host: &str) -> bool {
        match pattern.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
            None => false,
        }
    }
    a == b || covers(a, b) || covers(b, a)
}

/// The app's part: one route, `@id` `kata.<app>`, matching the app's hosts
/// (none when it is a catch-all), its routes in a subroute.
pub fn part(app: &str, server: &Value) -> Value {
    let routes = routes_of(server).to_vec();
    let c = claim(&routes);
    let mut route = Map::new();
    route.insert("@id".into(), json!(part_id(app)));
    if !c.catch_all && !c.hosts.is_empty() {
        route.insert("match".into(), json!([{ "host": c.hosts }]));
    }
    route.insert(
        "handle".into(),
        json!([{ "handler": "subroute", "routes": routes }]),
    );
    route.insert("terminal".into(), json!(true));
    Value::Object(route)
}

/// The app's own routes back out of its part.
pub fn part_routes(part: &Value) -> Vec<Value> {
    part.get("handle")
        .and_then(Value::as_array)
        .and_then(|h| h.first())
        .map(routes_of)
        .unwrap_or_default()
        .to_vec()
}

/// A route is one of kata's parts: the app it belongs to.
fn owner_of(route: &Value) -> Option<&str> {
    route.get("@id").and_then(Value::as_str).and_then(app_of_id)
}

/// Whether a part may sit at `index` of `routes`: host-matching parts come
/// before every catch-all route, catch-alls after every host-matching one.
fn in_place(routes: &[Value], index: usize, host_specific: bool) -> bool {
    if host_specific {
        routes[..index].iter().all(|r| route_hosts(r).is_some())
    } else {
        routes[index + 1..].iter().all(|r| route_hosts(r).is_none())
    }
}

/// Where a new part goes: host-matching parts before the first catch-all
/// route, catch-alls at the end.
fn insert_at(routes: &[Value], host_specific: bool) -> usize {
    if host_specific {
        routes
            .iter()
            .position(|r| route_hosts(r).is_none())
            .unwrap_or(routes.len())
    } else {
        routes.len()
    }
}

/// Server-level keys of a server object (all but `listen`, `routes`, and
/// `@` keys: Caddy's `@id`, kata's own such as `@kata.issuer`).
pub fn settings(server: &Value) -> Map<String, Value> {
    server
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "listen" | "routes") && !k.starts_with('@'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first server-level key whose value differs.
fn differing_key(a: &Map<String, Value>, b: &Map<String, Value>) -> Option<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).cloned()
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".to_owned(), |v| format!("{v}"))
}

/// The refusal for server-level key `key` that `app` sets to `values.0`
/// while `others` on `listen` set `values.1`.
fn setting_clash(
    key: &str,
    app: &str,
    others: &str,
    listen: &str,
    values: (Option<&Value>, Option<&Value>),
) -> Refusal {
    Refusal::Setting {
        key: key.to_owned(),
        clash: format!(
            "app {app:?} sets it to {}, but {others} on {listen} set {}",
            show(values.0),
            show(values.1)
        ),
    }
}

/// Borrowed: `ls` looks up every app's part in one config, so a copy per
/// lookup would cost the square of the number of apps.
fn servers_of(config: &Value) -> Result<Cow<'_, Map<String, Value>>, Refusal> {
    match config.pointer("/apps/http/servers") {
        None | Some(Value::Null) => Ok(Cow::Owned(Map::new())),
        Some(Value::Object(m)) => Ok(Cow::Borrowed(m)),
        Some(other) => Err(Refusal::Unexpected(format!(
            "apps.http.servers is not an object: {other}"
        ))),
    }
}

fn apps_on(routes: &[Value]) -> Vec<String> {
    routes
        .iter()
        .map(|r| match owner_of(r) {
            Some(a) => format!("app {a:?}"),
            None => "a route not written by kata".to_owned(),
        })
        .collect()
}

fn names(list: &[String]) -> String {
    let mut list = list.to_vec();
    list.dedup();
    list.join(", ")
}

fn path(server: &str) -> String {
    format!("{SERVERS}/{server}")
}

/// `{"a": {"b": leaf}}` for keys `[a, b]`.
fn nest(keys: &[&str], leaf: Value) -> Value {
    keys.iter().rev().fold(leaf, |acc, k| json!({ *k: acc }))
}

/// Plans writing the app's server object (`server`: shorthand expanded,
/// dials resolved) as its part of the shared server for its listen list.
/// `config` is the live config (`GET /config/`); `is_kata_app` tells kata's
/// apps from hand-made servers (to move their old per-app servers, and in
/// errors). A plan without calls means Caddy already runs exactly this.
pub fn plan_put(
    app: &str,
    server: &Value,
    config: &Value,
    is_kata_app: &dyn Fn(&str) -> bool,
) -> Result<Plan, Refusal> {
    let listen = listen_of(server);
    if listen.is_empty() {
        return Err(Refusal::NoListen);
    }
    let key = listen_key(&listen);
    let servers = servers_of(config)?;
    // The shared server for these sockets, however its listen is spelled
    // (the first app's spelling stays).
    let name = servers
        .iter()
        .find(|(n, s)| is_shared(n) && listen_key(&listen_of(s)) == key)
        .map_or_else(|| server_name(&listen), |(n, _)| n.clone());
    let desc = listen.join(", ");

    // Old per-app servers on exactly these addresses (and the app's own,
    // wherever it listens) move into the shared server.
    let moved: Vec<String> = servers
        .iter()
        .filter(|(n, s)| {
            !is_shared(n)
                && (n.as_str() == app || (is_kata_app(n) && listen_key(&listen_of(s)) == key))
        })
        .map(|(n, _)| n.clone())
        .collect();
    let others: Map<String, Value> = servers
        .iter()
        .filter(|(n, _)| **n != name && !moved.contains(n))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    if let Some(c) = conflicts("", server, &others).into_iter().next() {
        let owner = match others.get(&c.server) {
            Some(s) if is_shared(&c.server) => {
                let on = apps_on(routes_of(s));
                format!("{} (kata's shared server {:?})", names(&on), c.server)
            }
            _ if is_kata_app(&c.server) => format!("app {:?}", c.server),
            _ => format!(
                "Caddy server {:?} (apps.http.servers.{})",
                c.server, c.server
            ),
        };
        return Err(Refusal::ListenTaken {
            address: c.address,
            owner,
            theirs: c.theirs,
        });
    }

    let live = servers.get(&name);
    if let Some(live) = live
        && listen_key(&listen_of(live)) != key
    {
        return Err(Refusal::Unexpected(format!(
            "server {name:?} listens on {:?}, not {listen:?}",
            listen_of(live)
        )));
    }
    // The routes already there: the shared server's, then those of the old
    // servers moved into it (as parts).
    let mut routes: Vec<Value> = live.map(routes_of).unwrap_or_default().to_vec();
    let mut shared_settings = live.map(settings);
    for m in moved.iter().filter(|m| m.as_str() != app) {
        let old = &servers[m];
        let theirs = settings(old);
        match &shared_settings {
            Some(s) => {
                if let Some(k) = differing_key(s, &theirs) {
                    return Err(setting_clash(
                        &k,
                        m,
                        &names(&apps_on(&routes)),
                        &desc,
                        (theirs.get(&k), s.get(&k)),
                    ));
                }
            }
            None => shared_settings = Some(theirs),
        }
        let p = part(m, old);
        let at = insert_at(&routes, route_hosts(&p).is_some());
        routes.insert(at, p);
    }

    let mine = part(app, server);
    let my_claim = claim(routes_of(server));
    let id = part_id(app);
    let current = routes
        .iter()
        .position(|r| r.get("@id").and_then(Value::as_str) == Some(id.as_str()));
    let rest: Vec<&Value> = routes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != current)
        .map(|(_, r)| r)
        .collect();

    // Hosts: each belongs to one part.
    for other in &rest {
        let owner = match owner_of(other) {
            Some(a) => format!("app {a:?}"),
            None => "a route not written by kata".to_owned(),
        };
        let theirs = match owner_of(other) {
            Some(_) => claim(&part_routes(other)),
            None => claim(std::slice::from_ref(*other)),
        };
        if let Some(h) = my_claim
            .hosts
            .iter()
            .find(|h| theirs.hosts.iter().any(|t| host_overlap(h, t)))
        {
            return Err(Refusal::HostTaken {
                host: h.clone(),
                listen: desc.clone(),
                owner,
            });
        }
        if my_claim.catch_all && theirs.catch_all {
            return Err(Refusal::CatchAllTaken {
                app: format!("app {app:?}"),
                owner,
                listen: desc.clone(),
            });
        }
    }

    // Server-level settings: one value per server.
    let my_settings = settings(server);
    let alone = rest.is_empty();
    if let Some(s) = &shared_settings
        && !alone
        && let Some(k) = differing_key(s, &my_settings)
    {
        let on: Vec<String> = rest
            .iter()
            .map(|r| match owner_of(r) {
                Some(a) => format!("app {a:?}"),
                None => "a route not written by kata".to_owned(),
            })
            .collect();
        return Err(setting_clash(
            &k,
            app,
            &names(&on),
            &desc,
            (my_settings.get(&k), s.get(&k)),
        ));
    }

    // The routes as they should be.
    let host_specific = route_hosts(&mine).is_some();
    let mut wanted = routes.clone();
    let keep_place = current.filter(|&i| in_place(&routes, i, host_specific));
    match keep_place {
        Some(i) => wanted[i] = mine.clone(),
        None => {
            if let Some(i) = current {
                wanted.remove(i);
            }
            let at = insert_at(&wanted, host_specific);
            wanted.insert(at, mine.clone());
        }
    }
    let listen = live.map_or(listen, listen_of);
    let mut new_server = Map::new();
    new_server.insert("listen".into(), json!(listen));
    new_server.extend(if alone || shared_settings.is_none() {
        my_settings.clone()
    } else {
        shared_settings.clone().unwrap_or_default()
    });
    new_server.insert("routes".into(), Value::Array(wanted.clone()));
    let new_server = Value::Object(new_server);

    let calls = if !moved.is_empty() {
        // One change: the old servers go, the shared one comes.
        let mut all = servers.clone().into_owned();
        for m in &moved {
            all.shift_remove(m);
        }
        all.insert(name.clone(), new_server);
        vec![Call {
            guarded: true,
            ..Call::new("POST", SERVERS.to_owned(), Some(Value::Object(all)))
        }]
    } else if let Some(live) = live {
        let settings_change = settings(live) != settings(&new_server);
        if settings_change || listen_of(live) != listen {
            vec![Call::new("PATCH", path(&name), Some(new_server))]
        } else if wanted == routes {
            vec![] // Caddy runs exactly this already
        } else if let (Some(i), Some(j)) = (current, keep_place)
            && i == j
        {
            vec![Call::new("PATCH", format!("/id/{id}"), Some(mine))]
        } else if current.is_none() {
            let at = wanted
                .iter()
                .position(|r| r == &mine)
                .expect("the part was placed");
            if at == routes.len() {
                vec![Call::new(
                    "POST",
                    format!("{}/routes", path(&name)),
                    Some(mine),
                )]
            } else {
                vec![Call::new(
                    "PUT",
                    format!("{}/routes/{at}", path(&name)),
                    Some(mine),
                )]
            }
        } else {
            // The part changes place: the whole list in one change.
            vec![Call {
                guarded: true,
                ..Call::new(
                    "PATCH",
                    format!("{}/routes", path(&name)),
                    Some(Value::Array(wanted)),
                )
            }]
        }
    } else {
        vec![create(config, &name, new_server)?]
    };
    // The app's TLS policy goes first, so that Caddy knows the issuer by
    // the time the part's hosts are routed.
    let mut all = plan_policy(app, policy(app, server), config)?;
    all.extend(calls);
    Ok(Plan {
        server: name,
        calls: all,
        moved,
    })
}

/// Creates a value that does not exist yet at `keys` (from the root down):
/// one `PUT` of the last key when its parent exists, else one guarded `POST`
/// on the deepest existing parent creating the missing parents and the
/// value together (only if that parent is still what kata read).
fn create_at(config: &Value, keys: &[&str], leaf: Value) -> Result<Call, Refusal> {
    for depth in (0..keys.len()).rev() {
        let pointer: String = keys[..depth].iter().map(|p| format!("/{p}")).collect();
        let at = if depth == 0 {
            Some(config)
        } else {
            config.pointer(&pointer)
        };
        match at {
            // missing: look one level up
            None => continue,
            Some(Value::Null) => {
                return Ok(Call {
                    guarded: true,
                    ..Call::new(
                        "POST",
                        format!("/config{pointer}/"),
                        Some(nest(&keys[depth..], leaf)),
                    )
                });
            }
            Some(Value::Object(_)) => {
                // an existing object without the next key: add that key
                return Ok(Call::new(
                    "PUT",
                    format!("/config{pointer}/{}", keys[depth]),
                    Some(nest(&keys[depth + 1..], leaf)),
                ));
            }
            Some(other) => {
                return Err(Refusal::Unexpected(format!(
                    "{} is not an object: {other}",
                    if depth == 0 {
                        "the config".to_owned()
                    } else {
                        keys[..depth].join(".")
                    }
                )));
            }
        }
    }
    Err(Refusal::Unexpected(
        "the config root is not readable".into(),
    ))
}

/// Creates a server that does not exist yet (see [`create_at`]).
fn create(config: &Value, name: &str, server: Value) -> Result<Call, Refusal> {
    let mut keys = PARENTS.to_vec();
    keys.push(name);
    create_at(config, &keys, server)
}

// ---------------------------------------------------------------------------
// TLS automation policies

/// `kata.<app>.tls`: the `@id` of the app's TLS automation policy (never an
/// app's part: an app name has no `.`).
pub fn policy_id(app: &str) -> String {
    format!("{PREFIX}{app}.tls")
}

/// The app a kata policy `@id` belongs to.
fn app_of_policy(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
        .and_then(|r| r.strip_suffix(".tls"))
        .filter(|a| crate::names::is_app_name(a))
}

/// The TLS automation policy the app's server object asks for: its issuer
/// (`@kata.issuer`, from the shorthand's `https.issuer`) for exactly the
/// hosts its part matches. None without an issuer or hosts.
pub fn policy(app: &str, server: &Value) -> Option<Value> {
    // only the issuers the shorthand offers, however the key got there
    let issuer = server
        .get(super::shorthand::ISSUER_KEY)?
        .as_str()
        .filter(|i| super::shorthand::ISSUERS.contains(i))?;
    let hosts = claim(routes_of(server)).hosts;
    if hosts.is_empty() {
        return None;
    }
    Some(json!({
        "@id": policy_id(app),
        "subjects": hosts,
        "issuers": [{"module": issuer}]
    }))
}

fn policies_of(config: &Value) -> &[Value] {
    config
        .pointer("/apps/tls/automation/policies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn subjects_of(policy: &Value) -> Vec<String> {
    policy
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// The calls that make the app's policy in the live config `wanted`:
/// nothing when it already is, `PATCH`/`DELETE /id/kata.<app>.tls` for an
/// existing one, else one insert before the first policy without subjects
/// (a catch-all must stay last to match only what no other policy names).
/// Other policies, kata's and hand-made, are never touched; a host another
/// policy names is refused.
fn plan_policy(app: &str, wanted: Option<Value>, config: &Value) -> Result<Vec<Call>, Refusal> {
    let id = policy_id(app);
    let policies = policies_of(config);
    let current = policies
        .iter()
        .position(|p| p.get("@id").and_then(Value::as_str) == Some(id.as_str()));
    let Some(wanted) = wanted else {
        return Ok(match current {
            Some(_) => vec![Call::new("DELETE", format!("/id/{id}"), None)],
            None => vec![],
        });
    };
    let mine = subjects_of(&wanted);
    for (i, other) in policies.iter().enumerate() {
        if Some(i) == current {
            continue;
        }
        if let Some(h) = subjects_of(other)
            .iter()
            .find(|t| mine.iter().any(|h| host_overlap(h, t)))
        {
            let owner = match other
                .get("@id")
                .and_then(Value::as_str)
                .and_then(app_of_policy)
            {
                Some(a) => format!("app {a:?}"),
                None => format!("a policy not written by kata (apps.tls.automation.policies[{i}])"),
            };
            return Err(Refusal::PolicyTaken {
                host: h.clone(),
                owner,
            });
        }
    }
    let path = format!("/config/{}", POLICY_KEYS.join("/"));
    Ok(match current {
        Some(i) if policies[i] == wanted => vec![],
        Some(_) => vec![Call::new("PATCH", format!("/id/{id}"), Some(wanted))],
        None if config
            .pointer("/apps/tls/automation/policies")
            .is_some_and(Value::is_array) =>
        {
            match policies.iter().position(|p| subjects_of(p).is_empty()) {
                Some(at) => vec![Call::new("PUT", format!("{path}/{at}"), Some(wanted))],
                None => vec![Call::new("POST", path, Some(wanted))],
            }
        }
        None => vec![create_at(config, &POLICY_KEYS, json!([wanted]))?],
    })
}

/// Where the app's part is in the live config.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The server key under `apps.http.servers`.
    pub server: String,
    /// The app's view: the server's `listen` and settings with the app's own
    /// routes (what `config:caddy` shows).
    pub view: Value,
    /// Whether it is an old per-app server (not yet moved).
    pub legacy: bool,
}

/// Finds the app's part: a `kata.<app>` route on a shared server, or the app's
/// old per-app server.
pub fn find(app: &str, config: &Value) -> Result<Option<Found>, Refusal> {
    let servers = servers_of(config)?;
    let id = part_id(app);
    for (name, s) in servers.iter().filter(|(n, _)| is_shared(n)) {
        if let Some(p) = routes_of(s)
            .iter()
            .find(|r| r.get("@id").and_then(Value::as_str) == Some(id.as_str()))
        {
            let mut view = Map::new();
            view.insert("listen".into(), json!(listen_of(s)));
            view.extend(settings(s));
            view.insert("routes".into(), Value::Array(part_routes(p)));
            return Ok(Some(Found {
                server: name.clone(),
                view: Value::Object(view),
                legacy: false,
            }));
        }
    }
    Ok(servers.get(app).filter(|s| !s.is_null()).map(|s| Found {
        server: app.to_owned(),
        view: s.clone(),
        legacy: true,
    }))
}

/// Plans removing the app's part (and its old per-app server, if it still
/// has one). The shared server goes too when the part was its last route.
pub fn plan_remove(app: &str, config: &Value) -> Result<Plan, Refusal> {
    let servers = servers_of(config)?;
    let id = part_id(app);
    let mut calls = vec![];
    let mut server = String::new();
    for (name, s) in servers.iter().filter(|(n, _)| is_shared(n)) {
        let routes = routes_of(s);
        if routes
            .iter()
            .any(|r| r.get("@id").and_then(Value::as_str) == Some(id.as_str()))
        {
            server = name.clone();
            if routes.len() == 1 {
                calls.push(Call::new("DELETE", path(name), None));
            } else {
                calls.push(Call::new("DELETE", format!("/id/{id}"), None));
            }
        }
    }
    if servers.get(app).is_some_and(|s| !s.is_null()) {
        if server.is_empty() {
            server = app.to_owned();
        }
        calls.push(Call::new("DELETE", path(app), None));
    }
    // its TLS policy after its routes: no host is left routed without it
    calls.extend(plan_policy(app, None, config)?);
    Ok(Plan {
        server,
        calls,
        moved: vec![],
    })
}

/// One app's part on one server, for `caddy:ls`: borrowed from the live
/// servers, nothing copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// The app (a kata part), or the server key (anything else).
    pub name: &'a str,
    /// The server key.
    pub server: &'a str,
    /// Whether this is a kata app's part (or old per-app server).
    pub part: bool,
    pub listen: Vec<String>,
    /// Its own routes: the part's, or the server's.
    pub routes: Vec<&'a Value>,
    /// The server's error routes.
    pub errors: Option<&'a Value>,
}

/// Every app's part and every other server of `apps.http.servers` (the
/// live `servers`), in config order. Routes on a shared server without a
/// kata `@id` are listed under the server's own name.
pub fn entries<'a>(
    servers: &'a Map<String, Value>,
    is_kata_app: &dyn Fn(&str) -> bool,
) -> Vec<Entry<'a>> {
    let mut out = vec![];
    for (name, s) in servers {
        let listen = listen_of(s);
        let errors = s.get("errors");
        if !is_shared(name) {
            out.push(Entry {
                name,
                server: name,
                part: is_kata_app(name),
                listen,
                routes: routes_of(s).iter().collect(),
                errors,
            });
            continue;
        }
        let mut loose = vec![];
        for r in routes_of(s) {
            match owner_of(r) {
                Some(a) => out.push(Entry {
                    name: a,
                    server: name,
                    part: true,
                    listen: listen.clone(),
                    routes: r
                        .get("handle")
                        .and_then(Value::as_array)
                        .and_then(|h| h.first())
                        .map(routes_of)
                        .unwrap_or_default()
                        .iter()
                        .collect(),
                    errors,
                }),
                None => loose.push(r),
            }
        }
        if !loose.is_empty() {
            out.push(Entry {
                name,
                server: name,
                part: false,
                listen,
                routes: loose,
                errors: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
