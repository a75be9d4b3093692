//! Confinement: what a deploy key's kata-compose.yaml may not say, because it
//! would give a container (or the build, or Caddy) the host or another app.
//!
//! The check walks the parsed YAML tree (with positions) and returns every
//! finding. It is an allow-list over what kata passes on: every service key
//! kata writes into the compose file ([`crate::spec::COMPOSE_SERVICE_KEYS`] and
//! kata's own keys) has a rule in [`SERVICE_KEYS`], and a test fails when a key
//! kata passes on has none. Top-level keys kata passes on are `volumes`,
//! `networks`, `secrets`, `configs`, `x-*` (ignored by compose) and `caddy`.
//!
//! Values at checked places must be literal: `$VAR` is expanded from the
//! app's config, which a deploy key can change after the push, so a checked
//! value with a variable in it is refused too.

use crate::spec::Diag;
use crate::yaml::{Node, Value};
use indexmap::IndexMap;

/// How one service key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Acts inside the container's own namespaces and cgroup (or only on
    /// compose/kata's side): any value.
    Free,
    /// Needs a look at the value (see `check_service_key`).
    Checked,
    /// Gives the container host resources whatever the value: refused.
    Refused,
}

use Rule::*;

/// Every service key kata passes to compose (plus its own), with its rule.
pub const SERVICE_KEYS: &[(&str, Rule)] = &[
    // kata's own keys: images, env, order, checks run from the host
    ("runtime", Free),
    ("image", Free),
    ("type", Free),
    ("root", Free),
    ("environment", Free),
    ("depends_on", Free),
    ("healthcheck", Free),
    ("instances", Free),
    // compose keys
    ("annotations", Free),
    ("attach", Free),
    ("blkio_config", Free), // throttles, grants no access
    ("build", Checked),
    ("cap_add", Refused),
    ("cap_drop", Free),
    ("cgroup", Checked),
    ("cgroup_parent", Refused),
    ("command", Free),
    ("configs", Free), // references; top-level `configs` is checked
    ("container_name", Free),
    ("cpu_count", Free),
    ("cpu_percent", Free),
    ("cpu_period", Free),
    ("cpu_quota", Free),
    ("cpu_rt_period", Free),
    ("cpu_rt_runtime", Free),
    ("cpu_shares", Free),
    ("cpus", Free),
    ("cpuset", Free),
    ("credential_spec", Refused), // reads a file or registry value on the host
    ("deploy", Checked),
    ("develop", Checked),
    ("device_cgroup_rules", Refused),
    ("devices", Refused),
    ("dns", Free),
    ("dns_opt", Free),
    ("dns_search", Free),
    ("domainname", Free),
    ("entrypoint", Free),
    ("env_file", Checked),
    ("expose", Free),
    ("extends", Checked),
    ("external_links", Refused), // other projects' containers
    ("extra_hosts", Free),
    ("gpus", Refused),
    ("group_add", Free),
    ("hostname", Free),
    ("init", Free),
    ("ipc", Checked),
    ("isolation", Free), // Windows only
    ("labels", Checked),
    ("links", Free),
    ("logging", Checked),
    ("mac_address", Free),
    ("mem_limit", Free),
    ("mem_reservation", Free),
    ("mem_swappiness", Free),
    ("memswap_limit", Free),
    ("network_mode", Checked),
    ("networks", Free), // references; top-level `networks` is checked
    ("oom_kill_disable", Checked),
    ("oom_score_adj", Checked),
    ("pid", Checked),
    ("pids_limit", Free),
    ("platform", Free),
    ("ports", Free),
    ("post_start", Checked),
    ("pre_stop", Checked),
    ("privileged", Checked),
    ("profiles", Free),
    ("pull_policy", Free),
    ("read_only", Free),
    ("restart", Free),
    ("scale", Free),
    ("secrets", Free), // references; top-level `secrets` is checked
    ("security_opt", Checked),
    ("shm_size", Free),
    ("stdin_open", Free),
    ("stop_grace_period", Free),
    ("stop_signal", Free),
    ("storage_opt", Free),
    ("sysctls", Free), // Docker allows only namespaced sysctls
    ("tmpfs", Free),
    ("tty", Free),
    ("ulimits", Free),
    ("user", Free), // root in a container without host mounts or caps stays in it
    ("userns_mode", Checked),
    ("uts", Checked),
    ("volumes", Checked),
    ("volumes_from", Checked),
    ("working_dir", Free),
];

pub fn rule(key: &str) -> Option<Rule> {
    if key.starts_with("x-") {
        return Some(Free);
    }
    SERVICE_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| *r)
}

struct Check {
    out: Vec<Diag>,
    services: Vec<String>,
}

impl Check {
    fn refuse(&mut self, n: &Node, path: &str, why: impl std::fmt::Display) {
        self.out.push(Diag {
            pos: Some(n.pos),
            message: format!("`{path}`: {why} (not allowed for deploy keys)"),
        });
    }

    /// A literal string at a checked place, or a finding.
    fn literal(&mut self, n: &Node, path: &str) -> Option<String> {
        let s = n.scalar_string()?;
        if s.contains('$') {
            self.refuse(
                n,
                path,
                "variables are expanded from the app's config, which can change after the push",
            );
            return None;
        }
        Some(s)
    }

    fn own_service(&self, s: &str) -> bool {
        self.services.iter().any(|x| x == s)
    }

    /// A host path (env_file, build context, secret file): relative to the
    /// app and staying inside it.
    fn path_in_app(&mut self, n: &Node, path: &str) {
        let Some(s) = self.literal(n, path) else {
            return;
        };
        if let Some(why) = outside_app(&s) {
            self.refuse(n, path, format!("{s:?} {why}"));
        }
    }

    /// `host`, `container:X` and unknown values share another namespace;
    /// `service:<own service>` and the listed private values are fine.
    fn namespace(&mut self, n: &Node, path: &str, private: &[&str]) {
        let Some(s) = self.literal(n, path) else {
            return;
        };
        let own = s
            .strip_prefix("service:")
            .is_some_and(|svc| self.own_service(svc));
        if !own && !private.contains(&s.as_str()) {
            self.refuse(
                n,
                path,
                format!("{s:?} shares a namespace outside the app (allowed: {}, service:<one of the app's services>)", private.join(", ")),
            );
        }
    }

    fn not_true(&mut self, n: &Node, path: &str, what: &str) {
        if !matches!(n.value, Value::Bool(false) | Value::Null) {
            self.refuse(n, path, what);
        }
    }
}

/// Why a host path leaves the app's directory, if it does.
fn outside_app(s: &str) -> Option<&'static str> {
    if s.starts_with('/') {
        Some("is an absolute host path")
    } else if s.starts_with('~') {
        Some("is in a home directory on the host")
    } else if s.split(['/', '\\']).any(|c| c == "..") {
        Some("leaves the app's directory (`..`)")
    } else if s.contains("://") || s.contains('@') && s.contains(':') {
        Some("is not a path inside the app")
    } else {
        None
    }
}

/// Whether a symlink at `path` (relative to the checkout's root) pointing at
/// `target` leads out of the checkout. compose, the build and kata read files
/// of the checkout on the host (`env_file`, secret files, Dockerfiles), and
/// they follow symlinks: one leading out would read the host's files.
pub fn symlink_escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') || target.starts_with('~') {
        return true;
    }
    let mut depth: i64 = path.split('/').filter(|c| !c.is_empty()).count() as i64 - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// Findings for a deploy key's kata-compose.yaml; empty when it stays
/// confined. `root` is the parsed document (see [`crate::yaml::parse`]).
pub fn check(root: &Node) -> Vec<Diag> {
    let Some(top) = root.as_map() else {
        return vec![];
    };
    let services: Vec<String> = top
        .get("services")
        .and_then(Node::as_map)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut cx = Check {
        out: vec![],
        services,
    };
    if let Some(m) = top.get("services").and_then(Node::as_map) {
        for (name, svc) in m {
            if let Some(keys) = svc.as_map() {
                service(&mut cx, name, keys);
            }
        }
    }
    for (section, node) in top {
        let Some(items) = node.as_map() else {
            continue;
        };
        for (name, item) in items {
            let path = format!("{section}.{name}");
            match section.as_str() {
                "volumes" => top_volume(&mut cx, &path, item),
                "networks" => top_network(&mut cx, &path, item),
                "secrets" | "configs" => top_file_object(&mut cx, &path, item),
                _ => {}
            }
        }
    }
    if let Some(c) = top.get("caddy") {
        caddy(&mut cx, "caddy", c);
    }
    cx.out
}

fn service(cx: &mut Check, name: &str, keys: &IndexMap<String, Node>) {
    for (key, v) in keys {
        let path = format!("services.{name}.{key}");
        match rule(key) {
            None | Some(Free) => {}
            Some(Refused) => cx.refuse(v, &path, "gives the container host resources"),
            Some(Checked) => service_key(cx, key, &path, v),
        }
    }
}

fn service_key(cx: &mut Check, key: &str, path: &str, v: &Node) {
    match key {
        "privileged" => cx.not_true(v, path, "a privileged container is root on the host"),
        "oom_kill_disable" => cx.not_true(
            v,
            path,
            "makes the kernel kill host processes instead of this container",
        ),
        "oom_score_adj" => {
            if !matches!(v.value, Value::Int(i) if i >= 0) {
                cx.refuse(
                    v,
                    path,
                    "only 0 or more (a negative value protects the container over host processes)",
                );
            }
        }
        "network_mode" => cx.namespace(v, path, &["none"]),
        "pid" => cx.namespace(v, path, &[]),
        "ipc" => cx.namespace(v, path, &["private", "shareable", "none"]),
        "uts" | "userns_mode" => cx.namespace(v, path, &[]),
        "cgroup" => cx.namespace(v, path, &["private"]),
        "security_opt" => {
            for (i, o) in v.as_seq().unwrap_or_default().iter().enumerate() {
                let p = format!("{path}[{i}]");
                if let Some(s) = cx.literal(o, &p)
                    && !matches!(
                        s.as_str(),
                        "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
                    )
                {
                    cx.refuse(
                        o,
                        &p,
                        format!("{s:?} changes the container's confinement (only no-new-privileges is allowed)"),
                    );
                }
            }
            if v.as_seq().is_none() && !matches!(v.value, Value::Null) {
                cx.refuse(v, path, "must be a list");
            }
        }
        "volumes" => {
            for (i, vol) in v.as_seq().unwrap_or_default().iter().enumerate() {
                service_volume(cx, &format!("{path}[{i}]"), vol);
            }
        }
        "volumes_from" => {
            for (i, f) in v.as_seq().unwrap_or_default().iter().enumerate() {
                let p = format!("{path}[{i}]");
                if let Some(s) = cx.literal(f, &p) {
                    let svc = s.strip_prefix("service:").unwrap_or(&s);
                    let svc = svc.split(':').next().unwrap_or(svc);
                    if !cx.own_service(svc) {
                        cx.refuse(f, &p, format!("{s:?} is not one of the app's services"));
                    }
                }
            }
        }
        "env_file" => match &v.value {
            Value::Seq(items) => {
                for (i, it) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match it.as_map().and_then(|m| m.get("path")) {
                        Some(pn) => cx.path_in_app(pn, &format!("{p}.path")),
                        None => cx.path_in_app(it, &p),
                    }
                }
            }
            _ => cx.path_in_app(v, path),
        },
        "extends" => {
            if let Some(f) = v.as_map().and_then(|m| m.get("file")) {
                cx.refuse(
                    f,
                    &format!("{path}.file"),
                    "another file is not checked; extend a service of this file",
                );
            }
        }
        "labels" => labels(cx, path, v),
        "logging" => {
            if let Some(d) = v.as_map().and_then(|m| m.get("driver")) {
                let p = format!("{path}.driver");
                if let Some(s) = cx.literal(d, &p)
                    && !matches!(s.as_str(), "json-file" | "local" | "none")
                {
                    cx.refuse(
                        d,
                        &p,
                        format!("{s:?} sends logs to the host or the network (allowed: json-file, local, none)"),
                    );
                }
            }
        }
        "build" => build(cx, path, v),
        "deploy" => {
            let devices = v
                .as_map()
                .and_then(|m| m.get("resources"))
                .and_then(Node::as_map)
                .and_then(|m| m.get("reservations"))
                .and_then(Node::as_map)
                .and_then(|m| m.get("devices"));
            if let Some(d) = devices {
                cx.refuse(
                    d,
                    &format!("{path}.resources.reservations.devices"),
                    "gives the container host devices",
                );
            }
            if let Some(l) = v.as_map().and_then(|m| m.get("labels")) {
                labels(cx, &format!("{path}.labels"), l);
            }
        }
        "develop" => {
            let watches = v
                .as_map()
                .and_then(|m| m.get("watch"))
                .and_then(Node::as_seq)
                .unwrap_or_default();
            for (i, w) in watches.iter().enumerate() {
                if let Some(p) = w.as_map().and_then(|m| m.get("path")) {
                    cx.path_in_app(p, &format!("{path}.watch[{i}].path"));
                }
            }
        }
        "post_start" | "pre_stop" => {
            for (i, h) in v.as_seq().unwrap_or_default().iter().enumerate() {
                if let Some(p) = h.as_map().and_then(|m| m.get("privileged")) {
                    cx.not_true(
                        p,
                        &format!("{path}[{i}].privileged"),
                        "a privileged hook is root on the host",
                    );
                }
            }
        }
        _ => unreachable!("service key {key} is Checked but has no check"),
    }
}

/// `SRC:DST[:MODE]` or the long form. Named volumes (checked at the top
/// level) and kata's own `app`/`data`/`config`/`venv` are fine; host paths
/// are not: absolute ones name the host, and relative ones resolve against
/// the compose project directory, which is kata's, not the app's.
fn service_volume(cx: &mut Check, path: &str, v: &Node) {
    match &v.value {
        Value::Str(_) => {
            let Some(s) = cx.literal(v, path) else {
                return;
            };
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() < 2 {
                return; // an anonymous volume
            }
            if is_host_path(parts[0]) {
                cx.refuse(
                    v,
                    path,
                    format!(
                        "{:?} bind-mounts a host path; mount the app's own `data`, `app` or a named volume instead",
                        parts[0]
                    ),
                );
            }
        }
        Value::Map(m) => {
            let ty = m.get("type");
            let ty_s = match ty {
                Some(t) => cx.literal(t, &format!("{path}.type")),
                None => Some("volume".into()),
            };
            match ty_s.as_deref() {
                Some("volume") | Some("tmpfs") | Some("image") | None => {}
                Some(other) => cx.refuse(
                    ty.unwrap_or(v),
                    &format!("{path}.type"),
                    format!("a `{other}` mount reaches the host (allowed: volume, tmpfs, image)"),
                ),
            }
            if let Some(src) = m.get("source") {
                let p = format!("{path}.source");
                if let Some(s) = cx.literal(src, &p)
                    && ty_s.as_deref() == Some("volume")
                    && is_host_path(&s)
                {
                    cx.refuse(src, &p, format!("{s:?} is a host path, not a volume name"));
                }
            }
            if let Some(b) = m.get("bind") {
                cx.refuse(b, &format!("{path}.bind"), "bind options need a bind mount");
            }
        }
        _ => {}
    }
}

fn is_host_path(src: &str) -> bool {
    src.starts_with(['/', '.', '~']) || src.contains(['/', '\\'])
}

/// kata finds an app's containers by the `kata.app` label and compose's and
/// swarm's by `com.docker.*`: a deploy key setting them could pass its
/// container off as another app's (and take that app's traffic).
fn labels(cx: &mut Check, path: &str, v: &Node) {
    let mut keyed: Vec<(String, &Node)> = vec![];
    match &v.value {
        Value::Map(m) => keyed.extend(m.iter().map(|(k, n)| (k.clone(), n))),
        Value::Seq(items) => {
            for it in items {
                if let Some(s) = it.as_str() {
                    keyed.push((s.split('=').next().unwrap_or(s).to_owned(), it));
                }
            }
        }
        _ => {}
    }
    for (k, n) in keyed {
        if k.starts_with("kata.") || k.starts_with("com.docker.") || k.contains('$') {
            cx.refuse(
                n,
                &format!("{path}.{k}"),
                "kata and Docker tell apps apart by these labels",
            );
        }
    }
}

fn build(cx: &mut Check, path: &str, v: &Node) {
    let Some(m) = v.as_map() else {
        cx.path_in_app(v, path);
        return;
    };
    for (k, n) in m {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "context" | "dockerfile" => cx.path_in_app(n, &p),
            "additional_contexts" => {
                for (name, c) in n.as_map().into_iter().flatten() {
                    cx.path_in_app(c, &format!("{p}.{name}"));
                }
            }
            "ssh" => cx.refuse(n, &p, "hands the build the host's SSH agent or keys"),
            "entitlements" => cx.refuse(n, &p, "grants the build host privileges"),
            "privileged" => cx.not_true(n, &p, "a privileged build is root on the host"),
            "network" => {
                if let Some(s) = cx.literal(n, &p)
                    && !matches!(s.as_str(), "default" | "none")
                {
                    cx.refuse(
                        n,
                        &p,
                        format!("{s:?}: builds use the default network or none"),
                    );
                }
            }
            "cache_from" | "cache_to" => {
                for (i, c) in n.as_seq().unwrap_or_default().iter().enumerate() {
                    let cp = format!("{p}[{i}]");
                    if let Some(s) = cx.literal(c, &cp)
                        && s.split(',').any(|f| {
                            f == "type=local" || f.starts_with("src=") || f.starts_with("dest=")
                        })
                    {
                        cx.refuse(c, &cp, format!("{s:?} reads or writes a host directory"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Named volumes: only the default `local` driver without options (the
/// `local` driver's `o: bind`/`device:` mount any host path), never one that
/// exists outside the app (`external`, `name:`).
fn top_volume(cx: &mut Check, path: &str, v: &Node) {
    for (k, n) in v.as_map().into_iter().flatten() {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "driver" if cx.literal(n, &p).is_some_and(|s| s != "local") => {
                cx.refuse(n, &p, "volume plugins can reach the host (allowed: local)");
            }
            "driver_opts" => cx.refuse(n, &p, "driver options can mount any host path"),
            "external" | "name" => cx.refuse(n, &p, "names a volume outside the app"),
            _ => {}
        }
    }
}

/// Networks: bridge or overlay networks of the app's own; never the host's,
/// another app's (`external`, `name:`) or a host interface (macvlan, ipvlan).
fn top_network(cx: &mut Check, path: &str, v: &Node) {
    for (k, n) in v.as_map().into_iter().flatten() {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "driver" => {
                if let Some(s) = cx.literal(n, &p)
                    && !matches!(s.as_str(), "bridge" | "overlay")
                {
                    cx.refuse(
                        n,
                        &p,
                        format!("{s:?} reaches the host's network (allowed: bridge, overlay)"),
                    );
                }
            }
            "driver_opts" => cx.refuse(n, &p, "driver options can attach host interfaces"),
            "ipam" => cx.refuse(n, &p, "fixed subnets can collide with the host's networks"),
            "external" | "name" => cx.refuse(n, &p, "names a network outside the app"),
            _ => {}
        }
    }
}

/// Top-level secrets and configs: inline `content` or a `file` inside the
/// app; never kata's environment (`environment:`) or an admin's swarm
/// secrets (`external`, `name:`).
fn top_file_object(cx: &mut Check, path: &str, v: &Node) {
    for (k, n) in v.as_map().into_iter().flatten() {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "file" => cx.path_in_app(n, &p),
            "environment" => cx.refuse(n, &p, "reads kata's own environment on the host"),
            "external" | "name" => cx.refuse(n, &p, "names an object outside the app"),
            "driver" | "template_driver" => cx.refuse(n, &p, "plugins can reach the host"),
            _ => {}
        }
    }
}

/// The `caddy:` server runs in Caddy on the host: a deploy key's may only
/// proxy to the app's own services, never serve or read host files.
fn caddy(cx: &mut Check, path: &str, n: &Node) {
    match &n.value {
        Value::Map(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                let file_key = k == "root"
                    || k.contains("file")
                    || k.contains("folder")
                    || k == "load_storage"
                    || k == "dynamic_upstreams"
                    || k == "lookup_srv";
                if file_key || k == "forward_proxy_url" {
                    cx.refuse(v, &p, "reaches files or addresses on the host");
                    continue;
                }
                match (k.as_str(), v.as_str()) {
                    (
                        "handler",
                        Some(h @ ("file_server" | "templates" | "exec" | "acme_server")),
                    ) => {
                        cx.refuse(v, &p, format!("`{h}` reads files on the host"));
                    }
                    // an active health check's own address, beside the dials
                    ("upstream", Some(_)) => {
                        cx.refuse(v, &p, "health checks go to the app's own upstreams");
                    }
                    ("listen", _) => caddy_listen(cx, &p, v),
                    ("host" | "domains", _) => caddy_hosts(cx, &p, v),
                    ("protocol", Some(proto)) if proto != "http" => {
                        cx.refuse(
                            v,
                            &p,
                            format!("the `{proto}` transport reaches host services"),
                        );
                    }
                    ("dial", Some(_)) => {
                        if let Some(d) = cx.literal(v, &p) {
                            let svc = d.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
                            if !cx.own_service(svc) {
                                cx.refuse(
                                    v,
                                    &p,
                                    format!(
                                        "{d:?}: dial one of the app's services as <service>:<port>"
                                    ),
                                );
                            }
                        }
                    }
                    _ => caddy(cx, &p, v),
                }
            }
        }
        Value::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                caddy(cx, &format!("{path}[{i}]"), it);
            }
        }
        // Caddy fills these placeholders in at request time, with a host
        // file's contents or Caddy's own environment.
        Value::Str(s) if s.contains("{file.") || s.contains("{env.") => {
            cx.refuse(
                n,
                path,
                "a `{file.*}` or `{env.*}` placeholder reads the host",
            );
        }
        _ => {}
    }
}

/// The strings of a scalar or a list, with their paths.
fn each_string<'a>(path: &str, n: &'a Node) -> Vec<(String, &'a Node)> {
    match &n.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| (format!("{path}[{i}]"), it))
            .collect(),
        _ => vec![(path.to_owned(), n)],
    }
}

/// A deploy key listens on TCP addresses only: a `unix/` (or `fd/`) listener
/// makes Caddy replace whatever file is at that path.
fn caddy_listen(cx: &mut Check, path: &str, n: &Node) {
    for (p, it) in each_string(path, n) {
        match it.as_str() {
            Some(a) if !(a.starts_with("unix") || a.starts_with("fd") || a.contains('{')) => {}
            _ => cx.refuse(
                it,
                &p,
                "listen on a TCP address such as `:80` or `127.0.0.1:8080`",
            ),
        }
    }
}

/// Host matchers are literal names; a placeholder would match every host
/// and take other apps' traffic, and `*` stands only for a whole label.
fn caddy_hosts(cx: &mut Check, path: &str, n: &Node) {
    for (p, it) in each_string(path, n) {
        let literal = |h: &str| {
            !h.contains('{')
                && h.split('.')
                    .enumerate()
                    .all(|(i, label)| !label.contains('*') || (label == "*" && i == 0))
        };
        if !it.as_str().is_some_and(literal) {
            cx.refuse(
                it,
                &p,
                "a host matcher is a literal name (or `*.` before one)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<String> {
        let root = crate::yaml::parse(text).unwrap();
        check(&root)
            .iter()
            .map(|d| d.display("kata-compose.yaml").to_string())
            .collect()
    }

    fn svc(body: &str) -> Vec<String> {
        findings(&format!("services:\n  web:\n    image: x\n{body}"))
    }

    #[test]
    fn symlinks_that_leave_the_checkout_are_found() {
        for (path, target, out) in [
            ("a", "b", false),
            ("a", "./b/c", false),
            ("d/a", "../b", false),
            ("d/e/a", "../../b", false),
            ("a", "../b", true),
            ("d/a", "../../b", true),
            ("a", "/etc/shadow", true),
            ("a", "~/.ssh", true),
            ("a", "b/../../c", true),
            ("a", "b/../c", false),
        ] {
            assert_eq!(symlink_escapes(path, target), out, "{path} -> {target}");
        }
    }

    #[test]
    fn every_key_kata_passes_on_has_a_rule() {
        for k in crate::spec::COMPOSE_SERVICE_KEYS {
            assert!(rule(k).is_some(), "service key {k} has no confinement rule");
        }
        for (k, r) in SERVICE_KEYS {
            if *r == Checked {
                // a Checked key with no check would panic here
                let root = crate::yaml::parse(&format!(
                    "services:\n  web:\n    image: x\n    {k}: null\n"
                ))
                .unwrap();
                let _ = check(&root);
            }
        }
    }

    #[test]
    fn a_plain_app_is_fine() {
        let text = "services:\n  web:\n    runtime: python\n    command: python app.py\n    ports: ['8000:8000']\n    volumes: ['data:/data', 'app:/srv', 'cache:/cache', '/tmp/anon']\n    user: root\n    cap_drop: [ALL]\n    security_opt: [no-new-privileges:true]\n    network_mode: none\n    privileged: false\n    labels: {team: a}\n    build: {context: ., dockerfile: sub/Dockerfile}\n    env_file: [.env, {path: conf/x.env}]\n    volumes_from: [db]\n    ipc: service:db\n  db:\n    image: postgres\n    volumes: [{type: volume, source: pg, target: /var/lib/pg}, {type: tmpfs, target: /tmp}]\nvolumes:\n  cache: {}\n  pg: {driver: local, labels: {a: b}}\nnetworks:\n  back: {driver: bridge, internal: true}\nsecrets:\n  s: {file: ./secret.txt}\nconfigs:\n  c: {content: hi}\ncaddy:\n  listen: [':80']\n  routes:\n    - handle:\n        - handler: reverse_proxy\n          upstreams: [{dial: 'web:8000'}]\n";
        assert_eq!(findings(text), Vec::<String>::new());
    }

    #[test]
    fn each_way_to_the_host_is_refused_with_its_position() {
        let cases: &[(&str, &str)] = &[
            ("    privileged: true\n", "4:17: `services.web.privileged`"),
            ("    privileged: ${P}\n", "privileged"),
            ("    cap_add: [SYS_ADMIN]\n", "4:14: `services.web.cap_add`"),
            ("    devices: ['/dev/sda:/dev/sda']\n", "devices"),
            (
                "    device_cgroup_rules: ['a *:* rwm']\n",
                "device_cgroup_rules",
            ),
            ("    gpus: all\n", "gpus"),
            (
                "    volumes: ['/:/host']\n",
                "4:15: `services.web.volumes[0]`: \"/\" bind-mounts",
            ),
            (
                "    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n",
                "docker.sock",
            ),
            ("    volumes: ['../../:/x']\n", "bind-mounts"),
            ("    volumes: ['./:/x']\n", "bind-mounts"),
            ("    volumes: ['~/.ssh:/x']\n", "bind-mounts"),
            ("    volumes: ['${DATA_ROOT}/../..:/x']\n", "variables"),
            (
                "    volumes: [{type: bind, source: /, target: /h}]\n",
                "`bind` mount",
            ),
            ("    volumes: [{source: /etc, target: /h}]\n", "host path"),
            (
                "    volumes: [{type: npipe, source: x, target: /h}]\n",
                "`npipe`",
            ),
            (
                "    volumes_from: ['container:other-db-1']\n",
                "not one of the app's services",
            ),
            (
                "    volumes_from: ['other']\n",
                "not one of the app's services",
            ),
            ("    network_mode: host\n", "network_mode"),
            ("    network_mode: 'container:other'\n", "network_mode"),
            ("    network_mode: bridge\n", "network_mode"),
            ("    pid: host\n", "pid"),
            ("    ipc: host\n", "ipc"),
            ("    uts: host\n", "uts"),
            ("    userns_mode: host\n", "userns_mode"),
            ("    cgroup: host\n", "cgroup"),
            ("    cgroup_parent: /\n", "cgroup_parent"),
            (
                "    security_opt: ['seccomp=unconfined']\n",
                "seccomp=unconfined",
            ),
            ("    security_opt: ['apparmor=unconfined']\n", "apparmor"),
            ("    security_opt: ['label=disable']\n", "label=disable"),
            (
                "    security_opt: ['systempaths=unconfined']\n",
                "systempaths",
            ),
            ("    security_opt: ['seccomp=/etc/p.json']\n", "seccomp"),
            (
                "    security_opt: ['no-new-privileges:false']\n",
                "no-new-privileges:false",
            ),
            ("    oom_kill_disable: true\n", "oom_kill_disable"),
            ("    oom_score_adj: -1000\n", "oom_score_adj"),
            ("    credential_spec: {file: x}\n", "credential_spec"),
            ("    external_links: ['other_db_1:db']\n", "external_links"),
            ("    env_file: /etc/shadow\n", "absolute host path"),
            ("    env_file: [{path: ../../config/other/ENV}]\n", "`..`"),
            (
                "    extends: {file: ../x.yaml, service: a}\n",
                "extends.file",
            ),
            ("    labels: {kata.app: other}\n", "labels.kata.app"),
            (
                "    labels: ['com.docker.compose.project=other']\n",
                "com.docker.compose.project",
            ),
            ("    logging: {driver: syslog}\n", "syslog"),
            ("    build: /\n", "absolute"),
            ("    build: {context: .., dockerfile: x}\n", "build.context"),
            (
                "    build: {context: ., dockerfile: /etc/Dockerfile}\n",
                "build.dockerfile",
            ),
            ("    build: {context: ., ssh: [default]}\n", "build.ssh"),
            ("    build: {context: ., network: host}\n", "build.network"),
            (
                "    build: {context: ., privileged: true}\n",
                "build.privileged",
            ),
            (
                "    build: {context: ., entitlements: [network.host]}\n",
                "build.entitlements",
            ),
            (
                "    build: {context: ., cache_to: ['type=local,dest=/tmp/c']}\n",
                "cache_to",
            ),
            (
                "    build: {context: ., additional_contexts: {a: /etc}}\n",
                "additional_contexts.a",
            ),
            (
                "    deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}\n",
                "devices",
            ),
            (
                "    deploy: {labels: {com.docker.stack.namespace: other}}\n",
                "deploy.labels",
            ),
            (
                "    post_start: [{command: id, privileged: true}]\n",
                "post_start[0].privileged",
            ),
            (
                "    develop: {watch: [{path: /etc, action: sync}]}\n",
                "develop.watch[0].path",
            ),
        ];
        for (body, want) in cases {
            let f = svc(body);
            assert_eq!(f.len(), 1, "{body}: {f:?}");
            assert!(f[0].contains(want), "{body}: {f:?} lacks {want}");
            assert!(f[0].starts_with("kata-compose.yaml:"), "{f:?}");
            assert!(f[0].contains("not allowed for deploy keys"), "{f:?}");
        }
    }

    #[test]
    fn top_level_objects_that_reach_outside_are_refused() {
        let cases: &[(&str, &str)] = &[
            (
                "volumes:\n  v: {driver_opts: {type: none, o: bind, device: /}}\n",
                "volumes.v.driver_opts",
            ),
            (
                "volumes:\n  v: {driver: local-persist}\n",
                "volumes.v.driver",
            ),
            ("volumes:\n  v: {external: true}\n", "volumes.v.external"),
            ("volumes:\n  v: {name: other_db}\n", "volumes.v.name"),
            (
                "networks:\n  n: {name: host, external: true}\n",
                "networks.n",
            ),
            ("networks:\n  n: {driver: macvlan}\n", "networks.n.driver"),
            (
                "networks:\n  n: {driver_opts: {parent: eth0}}\n",
                "driver_opts",
            ),
            (
                "networks:\n  n: {ipam: {config: [{subnet: 10.0.0.0/8}]}}\n",
                "ipam",
            ),
            ("secrets:\n  s: {file: /etc/shadow}\n", "secrets.s.file"),
            (
                "secrets:\n  s: {environment: HOME}\n",
                "secrets.s.environment",
            ),
            ("secrets:\n  s: {external: true}\n", "secrets.s.external"),
            ("configs:\n  c: {file: ../../x}\n", "configs.c.file"),
            (
                "caddy:\n  routes: [{handle: [{handler: file_server, root: /etc}]}]\n",
                "file_server",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: reverse_proxy, upstreams: [{dial: 'localhost:22'}]}]}]\n",
                "dial",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: reverse_proxy, upstreams: [{dial: 'unix//var/run/docker.sock'}]}]}]\n",
                "dial",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: reverse_proxy, transport: {protocol: fastcgi}, upstreams: [{dial: 'web:9000'}]}]}]\n",
                "fastcgi",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: static_response, body: '{file./etc/shadow}'}]}]\n",
                "placeholder",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: headers, request: {set: {X: ['{env.HOME}']}}}]}]\n",
                "placeholder",
            ),
            (
                "caddy:\n  routes: [{match: [{host: ['{http.request.host}']}], handle: [{handler: reverse_proxy, upstreams: [{dial: 'web:80'}]}]}]\n",
                "host matcher",
            ),
            (
                "caddy:\n  routes: [{match: [{host: ['*.*.example.com']}], handle: [{handler: reverse_proxy, upstreams: [{dial: 'web:80'}]}]}]\n",
                "host matcher",
            ),
            ("caddy:\n  listen: ['unix//etc/x.sock']\n", "TCP address"),
            (
                "caddy:\n  domains: ['{http.request.host}']\n  service: web\n  port: 80\n",
                "host matcher",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: acme_server}]}]\n",
                "acme_server",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: reverse_proxy, transport: {protocol: http, forward_proxy_url: 'http://127.0.0.1:3128'}, upstreams: [{dial: 'web:80'}]}]}]\n",
                "forward_proxy_url",
            ),
            (
                "caddy:\n  routes: [{handle: [{handler: reverse_proxy, health_checks: {active: {upstream: 'localhost:22'}}, upstreams: [{dial: 'web:80'}]}]}]\n",
                "upstream",
            ),
        ];
        for (body, want) in cases {
            let f = findings(&format!("services:\n  web:\n    image: x\n{body}"));
            assert!(!f.is_empty(), "{body}: nothing found");
            assert!(
                f.iter().any(|l| l.contains(want)),
                "{body}: {f:?} lacks {want}"
            );
        }
        // two findings in one file are both reported, in file order
        let f = svc("    privileged: true\n    pid: host\n");
        assert_eq!(f.len(), 2);
        assert!(f[0].contains(":4:") && f[1].contains(":5:"), "{f:?}");
    }
}
