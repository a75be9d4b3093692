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
    ("annotations", Refused), // read by the container runtime and its hooks
    ("attach", Free),
    ("blkio_config", Free), // throttles, grants no access
    ("build", Checked),
    ("cap_add", Refused),
    ("cap_drop", Free),
    ("cgroup", Checked),
    ("cgroup_parent", Refused),
    ("command", Free),
    ("configs", Free),           // references; top-level `configs` is checked
    ("container_name", Refused), // could take another app's container name
    ("cpu_count", Free),
    ("cpu_percent", Free),
    ("cpu_period", Free),
    ("cpu_quota", Free),
    ("cpu_rt_period", Refused), // realtime scheduling over host processes
    ("cpu_rt_runtime", Refused),
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
    ("ports", Checked),
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
    ("ulimits", Checked),
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

struct Check<'a> {
    out: Vec<Diag>,
    services: Vec<String>,
    app: &'a str,
}

impl Check<'_> {
    fn refuse(&mut self, n: &Node, path: &str, why: impl std::fmt::Display) {
        self.out.push(Diag {
            pos: Some(n.pos),
            message: format!("`{path}`: {why} (not allowed for deploy keys)"),
        });
    }

    /// A literal string at a checked place, or a finding.
    fn literal(&mut self, n: &Node, path: &str) -> Option<String> {
        let Some(s) = n.scalar_string() else {
            self.refuse(n, path, format!("must be a single value, not {}", n.kind()));
            return None;
        };
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

/// Findings for a deploy key's kata-compose.yaml for `app`; empty when it
/// stays confined. `root` is the parsed document (see [`crate::yaml::parse`]).
/// Every shape it does not expect is a finding: it fails closed.
pub fn check(root: &Node, app: &str) -> Vec<Diag> {
    let mut cx = Check {
        out: vec![],
        services: vec![],
        app,
    };
    let Some(top) = map_of(&mut cx, "(the file)", root) else {
        return cx.out;
    };
    if let Some(m) = top
        .get("services")
        .and_then(|s| map_of(&mut cx, "services", s))
    {
        cx.services = m.keys().cloned().collect();
        for (name, svc) in m {
            if let Some(keys) = map_of(&mut cx, &format!("services.{name}"), svc) {
                service(&mut cx, name, keys);
            }
        }
    }
    for (section, node) in top {
        if !matches!(
            section.as_str(),
            "volumes" | "networks" | "secrets" | "configs"
        ) {
            continue;
        }
        let Some(items) = map_of(&mut cx, section, node) else {
            continue;
        };
        for (name, item) in items {
            let path = format!("{section}.{name}");
            // compose names them `<app>_<name>`: with a `_` in either, the
            // result can be another app's (`shop` + `web_data`, `shop_web` + `data`)
            // (swarm names secrets and configs `<app>_<name>` too)
            if matches!(
                section.as_str(),
                "volumes" | "networks" | "secrets" | "configs"
            ) && (name.contains('_') || cx.app.contains('_'))
            {
                cx.refuse(
                    item,
                    &path,
                    format!("compose names it {}_{name}, which another app's {section} can be called too (use names without `_`, in an app whose name has none)", cx.app),
                );
            }
            if item.as_map().is_none() && !matches!(item.value, Value::Null) {
                map_of(&mut cx, &path, item);
                continue;
            }
            match section.as_str() {
                "volumes" => top_volume(&mut cx, &path, item),
                "networks" => top_network(&mut cx, &path, item),
                _ => top_file_object(&mut cx, &path, item),
            }
        }
    }
    if let Some(c) = top.get("caddy") {
        caddy(&mut cx, "caddy", c);
    }
    cx.out
}

fn service(cx: &mut Check<'_>, name: &str, keys: &IndexMap<String, Node>) {
    if keys.contains_key("build") {
        if let Some(img) = keys.get("image") {
            cx.refuse(
                img,
                &format!("services.{name}.image"),
                "kata names the images it builds for the app; an `image:` beside `build:` would tag over another image on the host (kata's runtime images, another app's)",
            );
        }
    } else if let Some(img) = keys.get("image")
        && let Some(s) = cx.literal(img, &format!("services.{name}.image"))
        && s.starts_with(crate::access::pin::BUILT_PREFIX)
        && s.split([':', '@']).next() != Some(&crate::access::pin::built_repo(cx.app))
    {
        cx.refuse(
            img,
            &format!("services.{name}.image"),
            "another app's built image",
        );
    }
    for (key, v) in keys {
        let path = format!("services.{name}.{key}");
        match rule(key) {
            Some(Free) => {}
            // `<<` (a merge key kata does not resolve), a typo: fail closed
            None => cx.refuse(v, &path, "kata does not know this service key"),
            Some(Refused) => cx.refuse(v, &path, "gives the container host resources"),
            Some(Checked) => service_key(cx, key, &path, v),
        }
    }
}

/// A list, or nothing; anything else (a string, a mapping) is refused: a
/// shape the check does not expect is never taken for a harmless one.
fn seq_of<'a>(cx: &mut Check, path: &str, v: &'a Node) -> &'a [Node] {
    match &v.value {
        Value::Seq(items) => items,
        Value::Null => &[],
        _ => {
            cx.refuse(v, path, format!("must be a list, not {}", v.kind()));
            &[]
        }
    }
}

/// A mapping, or nothing; anything else is refused.
fn map_of<'a>(cx: &mut Check, path: &str, v: &'a Node) -> Option<&'a IndexMap<String, Node>> {
    match &v.value {
        Value::Map(m) => Some(m),
        Value::Null => None,
        _ => {
            cx.refuse(v, path, format!("must be a mapping, not {}", v.kind()));
            None
        }
    }
}

fn service_key(cx: &mut Check, key: &str, path: &str, v: &Node) {
    match key {
        "ulimits" => {
            for (k, n) in map_of(cx, path, v).into_iter().flatten() {
                if matches!(k.as_str(), "rtprio" | "nice") {
                    cx.refuse(
                        n,
                        &format!("{path}.{k}"),
                        "lets the container's processes take the CPU from host processes",
                    );
                }
            }
        }
        "ports" => {
            if !matches!(&v.value, Value::Null) && v.as_seq().is_none_or(|s| !s.is_empty()) {
                cx.refuse(
                    v,
                    path,
                    "publishes the container on the host's addresses, where it could take a port the host or another app needs (22, 80, Caddy's admin port, ports kata hands out); Caddy reaches the app's containers without a host port: route with `caddy:`",
                );
            }
        }
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
            for (i, o) in seq_of(cx, path, v).iter().enumerate() {
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
        }
        "volumes" => {
            for (i, vol) in seq_of(cx, path, v).iter().enumerate() {
                service_volume(cx, &format!("{path}[{i}]"), vol);
            }
        }
        "volumes_from" => {
            for (i, f) in seq_of(cx, path, v).iter().enumerate() {
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
            if let Some(d) = map_of(cx, path, v).and_then(|m| m.get("driver")) {
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
            map_of(cx, path, v);
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
            let watches = match map_of(cx, path, v).and_then(|m| m.get("watch")) {
                Some(w) => seq_of(cx, &format!("{path}.watch"), w),
                None => &[],
            };
            for (i, w) in watches.iter().enumerate() {
                if let Some(p) = w.as_map().and_then(|m| m.get("path")) {
                    cx.path_in_app(p, &format!("{path}.watch[{i}].path"));
                }
            }
        }
        "post_start" | "pre_stop" => {
            for (i, h) in seq_of(cx, path, v).iter().enumerate() {
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
                Some("volume") | Some("tmpfs") | None => {}
                Some(other) => cx.refuse(
                    ty.unwrap_or(v),
                    &format!("{path}.type"),
                    format!("a `{other}` mount reaches the host or another image's files (allowed: volume, tmpfs)"),
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
            for (k, n) in m {
                let p = format!("{path}.{k}");
                match k.as_str() {
                    "type" | "source" | "target" | "read_only" | "consistency" => {}
                    "bind" => cx.refuse(n, &p, "bind options need a bind mount"),
                    "volume" | "tmpfs" => {
                        for (o, on) in map_of(cx, &p, n).into_iter().flatten() {
                            if !matches!(o.as_str(), "nocopy" | "size" | "mode") {
                                cx.refuse(
                                    on,
                                    &format!("{p}.{o}"),
                                    "kata does not know this mount option",
                                );
                            }
                        }
                    }
                    _ => cx.refuse(n, &p, "kata does not know this mount option"),
                }
            }
        }
        _ => cx.refuse(
            v,
            path,
            format!("a mount is a string or a mapping, not {}", v.kind()),
        ),
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
            for (i, it) in items.iter().enumerate() {
                match it.as_str() {
                    Some(s) => keyed.push((s.split('=').next().unwrap_or(s).to_owned(), it)),
                    None => cx.refuse(it, &format!("{path}[{i}]"), "a label is `KEY=VALUE`"),
                }
            }
        }
        Value::Null => {}
        _ => cx.refuse(
            v,
            path,
            format!("must be a mapping or a list, not {}", v.kind()),
        ),
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
            "labels" => labels(cx, &p, n),
            "tags" => cx.refuse(
                n,
                &p,
                "would tag over another image on the host (kata's runtime images, another app's)",
            ),
            "args" | "dockerfile_inline" | "extra_hosts" | "isolation" | "no_cache" | "pull"
            | "shm_size" | "target" | "secrets" | "ulimits" | "platforms" => {}
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
            _ => cx.refuse(n, &p, "kata does not know this build key"),
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
                if k == "@id" {
                    cx.refuse(v, &p, "Caddy's ids are global: kata sets the app's own, and another app's would clash with it");
                    continue;
                }
                if has_var(k) {
                    cx.refuse(v, &p, "variables are expanded from the app's config, which can change after the push");
                    continue;
                }
                if matches!(k.as_str(), "handler" | "dial" | "protocol") && v.as_str().is_none() {
                    cx.refuse(v, &p, format!("must be a string, not {}", v.kind()));
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
                    ("upstream", _) => {
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
        // kata expands `$VAR` in the server from the app's config, after the push
        Value::Str(s) if has_var(s) => {
            cx.refuse(
                n,
                path,
                "variables are expanded from the app's config, which can change after the push",
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
            Some(a) if a.starts_with("unix") || a.starts_with("fd") || a.contains(['{', '$']) => {
                cx.refuse(it, &p, "listen on a TCP address such as `:80` or `127.0.0.1:8080`")
            }
            Some(a) if !listen_port_ok(a) => cx.refuse(
                it,
                &p,
                "a port below 1024 other than 80 and 443 belongs to the host's services (ssh, mail, DNS)",
            ),
            Some(_) => {}
            _ => cx.refuse(
                it,
                &p,
                "listen on a TCP address such as `:80` or `127.0.0.1:8080`",
            ),
        }
    }
}

/// Whether a Caddy listen address's port (or port range) is one a deploy
/// key may take: 80, 443, or 1024 and up.
fn listen_port_ok(a: &str) -> bool {
    let a = a
        .strip_prefix("tcp/")
        .or(a.strip_prefix("tcp4/"))
        .or(a.strip_prefix("tcp6/"))
        .unwrap_or(a);
    let Some((_, ports)) = a.rsplit_once(':') else {
        return false;
    };
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    match (lo.parse::<u32>(), hi.parse::<u32>()) {
        (Ok(lo), Ok(hi)) if lo <= hi && hi <= 65535 => {
            (lo == hi && (lo == 80 || lo == 443)) || lo >= 1024
        }
        _ => false,
    }
}

/// `$NAME` or `${…}`: what kata's expansion would replace (a lone `$`, as
/// in a regular expression's end anchor, stays as it is).
fn has_var(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1] == b'{' || w[1] == b'_' || w[1].is_ascii_alphabetic()))
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
        check(&root, "shop")
            .iter()
            .map(|d| d.display("kata-compose.yaml").to_string())
            .collect()
    }

    fn svc(body: &str) -> Vec<String> {
        // a built service names no image (kata names it)
        let image = if body.starts_with("    build:") || body.starts_with("    image:") {
            ""
        } else {
            "    image: x\n"
        };
        findings(&format!("services:\n  web:\n{image}{body}"))
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

    /// A value of a shape the check does not expect is refused, never taken
    /// for a harmless one, and so is anything kata would fill in later.
    #[test]
    fn wrong_shapes_and_late_values_fail_closed() {
        let cases: &[(&str, &str)] = &[
            ("    container_name: other-web-1\n", "container_name"),
            ("    annotations: {com.example: x}\n", "annotations"),
            ("    cpu_rt_runtime: 950000\n", "cpu_rt_runtime"),
            ("    ulimits: {rtprio: 99}\n", "ulimits.rtprio"),
            ("    ulimits: nofile\n", "ulimits`: must be a mapping"),
            (
                "    volumes: [{type: image, source: other-web, target: /o}]\n",
                "`image` mount",
            ),
            (
                "    privileged: \"true\"\n",
                "4:17: `services.web.privileged`",
            ),
            ("    privileged: 1\n", "privileged"),
            ("    privileged: [true]\n", "privileged"),
            ("    cap_add: ALL\n", "4:14: `services.web.cap_add`"),
            (
                "    volumes: {a: '/:/h'}\n",
                "4:14: `services.web.volumes`: must be a list",
            ),
            ("    volumes: '/:/h'\n", "must be a list"),
            (
                "    volumes: [['/:/h']]\n",
                "`services.web.volumes[0]`: a mount is a string or a mapping",
            ),
            (
                "    volumes: [{type: [bind], source: /, target: /h}]\n",
                "volumes[0].type`: must be a single value",
            ),
            (
                "    volumes: [{type: volume, source: {a: /}, target: /h}]\n",
                "volumes[0].source`: must be a single value",
            ),
            (
                "    volumes: [{type: volume, source: v, target: /h, volume: {subpath: ../..}}]\n",
                "volume.subpath",
            ),
            (
                "    volumes: [{type: volume, source: v, target: /h, propagation: shared}]\n",
                "propagation",
            ),
            ("    security_opt: seccomp=unconfined\n", "must be a list"),
            (
                "    security_opt: [[seccomp=unconfined]]\n",
                "security_opt[0]`: must be a single value",
            ),
            (
                "    network_mode: [host]\n",
                "network_mode`: must be a single value",
            ),
            ("    network_mode: {host: 1}\n", "network_mode"),
            ("    pid: true\n", "pid"),
            ("    ipc: ${IPC}\n", "variables"),
            ("    userns_mode: \"${MODE:-host}\"\n", "variables"),
            ("    volumes_from: other\n", "must be a list"),
            (
                "    labels: kata.app=other\n",
                "labels`: must be a mapping or a list",
            ),
            ("    labels: [{kata.app: other}]\n", "labels[0]"),
            ("    logging: syslog\n", "logging`: must be a mapping"),
            ("    logging: {driver: [syslog]}\n", "logging.driver"),
            (
                "    env_file: {path: /etc/shadow}\n",
                "env_file`: must be a single value",
            ),
            ("    env_file: [[/etc/shadow]]\n", "env_file[0]"),
            (
                "    post_start: {command: id, privileged: true}\n",
                "post_start`: must be a list",
            ),
            ("    deploy: [x]\n", "deploy`: must be a mapping"),
            (
                "    develop: {watch: {path: /etc}}\n",
                "develop.watch`: must be a list",
            ),
            (
                "    '<<': {privileged: true}\n",
                "kata does not know this service key",
            ),
            ("    privilegd: true\n", "kata does not know"),
            (
                "    build: {context: ., tags: ['kata/python:latest']}\n",
                "build.tags",
            ),
            (
                "    build: {context: ., labels: {kata.runtime.hash: x}}\n",
                "build.labels.kata.runtime.hash",
            ),
            (
                "    build: {context: ., frobnicate: 1}\n",
                "build.frobnicate",
            ),
            (
                "    image: kata-build/other:web\n",
                "another app's built image",
            ),
            (
                "    ports: ['0.0.0.0:22:22']\n",
                "4:12: `services.web.ports`",
            ),
            ("    ports: ['127.0.0.1:8080:80']\n", "ports"),
            ("    ports: ['8000']\n", "ports"),
            ("    ports: [{target: 80, published: 80}]\n", "ports"),
            ("    ports: '80:80'\n", "ports"),
        ];
        for (body, want) in cases {
            let f = svc(body);
            assert_eq!(f.len(), 1, "{body}: {f:?}");
            assert!(f[0].contains(want), "{body}: {f:?} lacks {want}");
            assert!(f[0].contains("not allowed for deploy keys"), "{f:?}");
        }
        let whole: &[(&str, &str)] = &[
            (
                "services: {}\nsecrets:\n  web_token: {file: t}\n",
                "shop_web_token",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  routes: [{'@id': kata.victim, handle: [{handler: static_response}]}]\n",
                "Caddy's ids are global",
            ),
            ("services: {}\nvolumes:\n  web_data: {}\n", "shop_web_data"),
            (
                "services: {}\nnetworks:\n  web_default: {}\n",
                "shop_web_default",
            ),
            ("- services\n", "1:1: `(the file)`: must be a mapping"),
            ("services: [web]\n", "`services`: must be a mapping"),
            (
                "services:\n  web: busybox\n",
                "`services.web`: must be a mapping",
            ),
            (
                "services: {}\nvolumes: [v]\n",
                "`volumes`: must be a mapping",
            ),
            (
                "services: {}\nvolumes:\n  v: local\n",
                "`volumes.v`: must be a mapping",
            ),
            (
                "services: {}\nnetworks:\n  n: {driver: [macvlan]}\n",
                "networks.n.driver",
            ),
            (
                "services: {}\nsecrets:\n  s: {file: [/etc/shadow]}\n",
                "secrets.s.file",
            ),
            // anchors are resolved by the parser: the merged value is checked
            (
                "x-base: &b {privileged: true}\nservices:\n  web:\n    image: x\n    <<: *b\n",
                "privileged",
            ),
            (
                "x-v: &v ['/:/h']\nservices:\n  web:\n    image: x\n    volumes: *v\n",
                "bind-mounts",
            ),
            // Caddy: late values, wrong shapes, the host's low ports
            (
                "services: {web: {image: x}}\ncaddy:\n  routes: [{handle: [{handler: '${H}'}]}]\n",
                "variables",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  routes: [{handle: [{handler: [file_server]}]}]\n",
                "handler`: must be a string",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  routes: [{handle: [{handler: reverse_proxy, upstreams: [{dial: [localhost:22]}]}]}]\n",
                "dial`: must be a string",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  listen: [':22']\n",
                "below 1024",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  listen: ['127.0.0.1:25']\n",
                "below 1024",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  listen: [':${PORT}']\n",
                "TCP address",
            ),
            (
                "services: {web: {image: x}}\ncaddy:\n  listen: [':1-2000']\n",
                "below 1024",
            ),
        ];
        for (text, want) in whole {
            let f = findings(text);
            assert!(
                !f.is_empty() && f.iter().any(|x| x.contains(want)),
                "{text}: {f:?} lacks {want}"
            );
        }
        // in an app named with `_`, any volume or network name can meet another app's
        let root = crate::yaml::parse("services: {}\nvolumes:\n  data: {}\n").unwrap();
        let f = check(&root, "shop_web");
        assert!(
            f.len() == 1 && f[0].message.contains("shop_web_data"),
            "{f:?}"
        );
        // still fine: Caddy's shared ports, high ports, a regex's `$`
        let ok = "services: {web: {image: x}}\ncaddy:\n  listen: [':80', ':443', '127.0.0.1:8080', ':9000-9010']\n  routes: [{match: [{path_regexp: {pattern: '^/a$'}}], handle: [{handler: reverse_proxy, upstreams: [{dial: 'web:80'}]}]}]\n";
        assert_eq!(findings(ok), Vec::<String>::new());
        assert_eq!(
            findings("services:\n  web:\n    image: kata-build/shop:web\n"),
            Vec::<String>::new()
        );
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
                let _ = check(&root, "shop");
            }
        }
    }

    #[test]
    fn a_plain_app_is_fine() {
        let text = "services:\n  web:\n    runtime: python\n    command: python app.py\n    expose: ['8000']\n    volumes: ['data:/data', 'app:/srv', 'cache:/cache', '/tmp/anon']\n    user: root\n    cap_drop: [ALL]\n    security_opt: [no-new-privileges:true]\n    network_mode: none\n    privileged: false\n    labels: {team: a}\n    build: {context: ., dockerfile: sub/Dockerfile}\n    env_file: [.env, {path: conf/x.env}]\n    volumes_from: [db]\n    ipc: service:db\n  db:\n    image: postgres\n    volumes: [{type: volume, source: pg, target: /var/lib/pg}, {type: tmpfs, target: /tmp}]\nvolumes:\n  cache: {}\n  pg: {driver: local, labels: {a: b}}\nnetworks:\n  back: {driver: bridge, internal: true}\nsecrets:\n  s: {file: ./secret.txt}\nconfigs:\n  c: {content: hi}\ncaddy:\n  listen: [':80']\n  routes:\n    - handle:\n        - handler: reverse_proxy\n          upstreams: [{dial: 'web:8000'}]\n";
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
