//! What each target accepts, and how kata adapts a rendered service to it.
//! compose v2 reads the whole compose spec; docker-compose 1.29 and
//! `docker stack deploy` (the 3.8 file format) reject newer keys, and swarm
//! ignores some keys it accepts. Every key kata drops or converts, and every
//! key the target ignores, is a positioned warning; what the target cannot
//! run at all is an error. The tables were measured against the real tools.

use crate::model::Target;
use crate::notes::Notes;
use crate::spec::Service;
use serde_json::{Map, Value as Json, json};

/// Service keys docker-compose 1.29 refuses ("Unsupported config option").
const V1_UNSUPPORTED: &[&str] = &[
    "develop",
    "post_start",
    "pre_stop",
    "annotations",
    "attach",
    "cgroup",
    "uts",
    "gpus",
];

/// The options of each mount section docker-compose 1.29 knows.
const V1_MOUNT_KEYS: &[(&str, &[&str])] = &[
    ("bind", &["propagation"]),
    ("volume", &["nocopy"]),
    ("tmpfs", &["size"]),
];

/// `build:` keys docker-compose 1.29 knows.
const V1_BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "args",
    "cache_from",
    "labels",
    "network",
    "shm_size",
    "target",
    "extra_hosts",
    "isolation",
];

/// Service keys of the 3.8 file format (`docker stack config` rejects
/// others), less `container_name`, which the format has and `docker stack
/// deploy` does not support.
const STACK_KEYS: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "command",
    "configs",
    "credential_spec",
    "depends_on",
    "deploy",
    "devices",
    "dns",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "external_links",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "links",
    "logging",
    "mac_address",
    "network_mode",
    "networks",
    "pid",
    "ports",
    "privileged",
    "read_only",
    "restart",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "volumes",
    "working_dir",
];

/// Keys the 3.8 format accepts but `docker stack deploy` does not apply.
const STACK_IGNORED: &[&str] = &[
    "cgroup_parent",
    "devices",
    "external_links",
    "links",
    "network_mode",
    "privileged",
    "security_opt",
    "userns_mode",
];

/// Network keys of the 3.8 file format.
const STACK_NETWORK_KEYS: &[&str] = &[
    "driver",
    "driver_opts",
    "ipam",
    "external",
    "internal",
    "attachable",
    "labels",
    "name",
];

/// Network keys docker-compose 1.29 knows.
const V1_NETWORK_KEYS: &[&str] = &[
    "driver",
    "driver_opts",
    "ipam",
    "external",
    "internal",
    "enable_ipv6",
    "attachable",
    "labels",
    "name",
];

/// Keys of a service's attachment to one network (`networks: {n: {...}}`)
/// that docker-compose 1.29 knows.
const V1_SERVICE_NETWORK_KEYS: &[&str] = &[
    "aliases",
    "ipv4_address",
    "ipv6_address",
    "link_local_ips",
    "priority",
];

/// The same for the 3.8 file format.
const STACK_SERVICE_NETWORK_KEYS: &[&str] = &["aliases", "ipv4_address", "ipv6_address"];

/// Adapts one rendered service to `target`.
pub(crate) fn service(
    target: Target,
    name: &str,
    svc: &Service,
    out: &mut Map<String, Json>,
    notes: &mut Notes,
) {
    match target {
        Target::V2 => {}
        Target::V1 => v1_service(name, out, notes),
        Target::Stack => stack_service(name, svc, out, notes),
    }
}

fn v1_service(name: &str, out: &mut Map<String, Json>, notes: &mut Notes) {
    const TOOL: &str = "docker-compose 1.x";
    service_networks(name, out, notes, V1_SERVICE_NETWORK_KEYS, TOOL);
    env_file_paths(name, out, notes, TOOL);
    for key in V1_UNSUPPORTED {
        if out.remove(*key).is_some() {
            notes.warn(
                &["services", name, key],
                format!("`services.{name}.{key}` is not supported by docker-compose 1.x; dropped"),
            );
        }
    }
    drop_start_interval(name, out, notes, "docker-compose 1.x");
    drop_pids_limit(name, out, notes, TOOL);
    v1_pull_policy(name, out, notes);
    // compose v2 disables a check with `disable: true` whatever else it
    // says; 1.29 refuses other keys beside it.
    if let Some(Json::Object(h)) = out.get_mut("healthcheck")
        && h.get("disable") == Some(&Json::Bool(true))
    {
        h.retain(|k, _| k == "disable");
    }
    if let Some(Json::Object(deps)) = out.get_mut("depends_on") {
        for (dep, cond) in deps.iter_mut() {
            for opt in ["required", "restart"] {
                if cond.as_object_mut().and_then(|c| c.remove(opt)).is_some() {
                    notes.warn(
                        &["services", name, "depends_on", dep, opt],
                        format!("`services.{name}.depends_on.{dep}.{opt}` is not supported by docker-compose 1.x; dropped"),
                    );
                }
            }
        }
    }
    if let Some(Json::Object(build)) = out.get_mut("build") {
        drop_keys(
            build,
            &["services", name, "build"],
            V1_BUILD_KEYS,
            TOOL,
            notes,
        );
    }
    mount_options(name, out, notes, TOOL, V1_MOUNT_KEYS);
    // 1.29's long port syntax has no host_ip and no range of published
    // ports: the short form says the same.
    port_keys(name, out, notes, TOOL);
    for p in items(out, "ports") {
        let range = p
            .get("published")
            .and_then(Json::as_str)
            .is_some_and(|s| s.contains('-'));
        if (p.get("host_ip").is_some() || range)
            && let Some(short) = short_port(p)
        {
            *p = json!(short);
        }
    }
    short_devices(out);
    if out.contains_key("deploy") {
        notes.warn(
            &["services", name, "deploy"],
            format!("`services.{name}.deploy` is applied only in part by docker-compose 1.x: `replicas`, device reservations and `restart_policy` (written as `restart:`), not resource limits or update settings"),
        );
    }
}

/// `{target, published, host_ip, protocol}` as `[host_ip:]published:target/protocol`.
fn short_port(p: &Json) -> Option<String> {
    let m = p.as_object()?;
    let scalar = |k: &str| match m.get(k)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let target = scalar("target")?;
    let published = scalar("published").unwrap_or_default();
    let mut s = match m.get("host_ip").and_then(Json::as_str) {
        Some(ip) => format!("{ip}:{published}:{target}"),
        None => format!("{published}:{target}"),
    };
    if let Some(proto) = scalar("protocol") {
        s.push('/');
        s.push_str(&proto);
    }
    Some(s)
}

/// The items of the list `out[key]`, if it is one.
fn items<'a>(out: &'a mut Map<String, Json>, key: &str) -> impl Iterator<Item = &'a mut Json> {
    out.get_mut(key)
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
}

/// A long-form port's `name` and `app_protocol` (compose 2.x) are unknown
/// to 1.29 and the 3.8 format; they only name the port.
fn port_keys(name: &str, out: &mut Map<String, Json>, notes: &mut Notes, tool: &str) {
    for (i, p) in items(out, "ports").enumerate() {
        for key in ["name", "app_protocol"] {
            if let Some(m) = p.as_object_mut()
                && m.remove(key).is_some()
            {
                notes.warn(
                    &["services", name, "ports", &i.to_string(), key],
                    format!("`{key}` in `services.{name}.ports` is not supported by {tool}; dropped (it only names the port)"),
                );
            }
        }
    }
}

/// Drops the options of each mount section (`bind:`, `volume:`, `tmpfs:`)
/// that `tool` does not know.
fn mount_options(
    name: &str,
    out: &mut Map<String, Json>,
    notes: &mut Notes,
    tool: &str,
    known: &[(&str, &[&str])],
) {
    for (i, v) in items(out, "volumes").enumerate() {
        for (section, keys) in known {
            let Some(sec) = v.get_mut(*section).and_then(Json::as_object_mut) else {
                continue;
            };
            let extra: Vec<String> = sec
                .keys()
                .filter(|k| !keys.contains(&k.as_str()))
                .cloned()
                .collect();
            for opt in extra {
                sec.remove(&opt);
                let why = match (*section, opt.as_str()) {
                    ("tmpfs", "mode") => ": the mount gets Docker's default mode (1777)",
                    _ => "",
                };
                notes.warn(
                    &["services", name, "volumes", &i.to_string(), section, &opt],
                    format!("`{section}.{opt}` in `services.{name}.volumes` is not supported by {tool}; dropped{why}"),
                );
            }
            if sec.is_empty()
                && let Some(m) = v.as_object_mut()
            {
                m.remove(*section);
            }
        }
    }
}

/// Long-form devices (`{source, target, permissions}`, compose 2.x) in the
/// short form 1.29 and the 3.8 format read: `source:target[:permissions]`.
fn short_devices(out: &mut Map<String, Json>) {
    for d in items(out, "devices") {
        let Some(m) = d.as_object() else { continue };
        let part = |k: &str| m.get(k).and_then(Json::as_str);
        let Some(source) = part("source") else {
            continue;
        };
        let target = part("target").unwrap_or(source);
        let short = match part("permissions") {
            Some(p) => format!("{source}:{target}:{p}"),
            None => format!("{source}:{target}"),
        };
        *d = json!(short);
    }
}

fn drop_start_interval(name: &str, out: &mut Map<String, Json>, notes: &mut Notes, tool: &str) {
    if let Some(Json::Object(h)) = out.get_mut("healthcheck")
        && h.remove("start_interval").is_some()
    {
        notes.warn(
            &["services", name, "healthcheck", "start_interval"],
            format!(
                "`services.{name}.healthcheck.start_interval` is not supported by {tool}; dropped"
            ),
        );
    }
}

/// `deploy.resources.limits.pids` is newer than 1.29 and the 3.8 format.
fn drop_pids_limit(name: &str, out: &mut Map<String, Json>, notes: &mut Notes, tool: &str) {
    drop_resource(
        name,
        out,
        notes,
        ["limits", "pids"],
        &format!(
            "is not supported by {tool}; dropped: the service runs without a process limit (`pids_limit:` sets one for compose)"
        ),
    );
}

/// Drops `deploy.resources.<section>.<key>`, with a warning saying `why`.
fn drop_resource(
    name: &str,
    out: &mut Map<String, Json>,
    notes: &mut Notes,
    [section, key]: [&str; 2],
    why: &str,
) {
    if let Some(Json::Object(m)) = out
        .get_mut("deploy")
        .and_then(|d| d.pointer_mut(&format!("/resources/{section}")))
        && m.remove(key).is_some()
    {
        notes.warn(
            &["services", name, "deploy", "resources", section, key],
            format!("`services.{name}.deploy.resources.{section}.{key}` {why}"),
        );
    }
}

/// docker-compose 1.29 knows `always`, `never`, `build` and
/// `if_not_present`, compose v2's `missing` by that name; it has no
/// periodic pulls (`daily`, `weekly`, `every_12h`).
fn v1_pull_policy(name: &str, out: &mut Map<String, Json>, notes: &mut Notes) {
    let Some(p) = out.get("pull_policy").and_then(Json::as_str) else {
        return;
    };
    match p {
        "always" | "never" | "build" | "if_not_present" => {}
        "missing" => {
            out.insert("pull_policy".into(), json!("if_not_present"));
        }
        p => {
            notes.warn(
                &["services", name, "pull_policy"],
                format!("`services.{name}.pull_policy: {p}` is not supported by docker-compose 1.x, which has no periodic pulls; dropped: the image is pulled when it is missing"),
            );
            out.remove("pull_policy");
        }
    }
}

/// Drops the keys of each network attachment that `tool` does not know
/// (`priority`, `mac_address`, `driver_opts`, ...).
fn service_networks(
    name: &str,
    out: &mut Map<String, Json>,
    notes: &mut Notes,
    known: &[&str],
    tool: &str,
) {
    if let Some(Json::Object(nets)) = out.get_mut("networks") {
        drop_network_keys(nets, &["services", name, "networks"], known, tool, notes);
    }
}

/// Drops, from each network object under `at`, the keys `tool` does not know.
fn drop_network_keys(
    nets: &mut Map<String, Json>,
    at: &[&str],
    known: &[&str],
    tool: &str,
    notes: &mut Notes,
) {
    for (net, v) in nets.iter_mut() {
        if let Some(m) = v.as_object_mut() {
            drop_keys(m, &[at, &[net.as_str()]].concat(), known, tool, notes);
        }
    }
}

/// Drops the keys of `m` (at `at`) that `tool` does not know, each with a warning.
fn drop_keys(
    m: &mut Map<String, Json>,
    at: &[&str],
    known: &[&str],
    tool: &str,
    notes: &mut Notes,
) {
    let extra: Vec<String> = m
        .keys()
        .filter(|k| !known.contains(&k.as_str()) && !k.starts_with("x-"))
        .cloned()
        .collect();
    for k in extra {
        m.remove(&k);
        let path = [at, &[k.as_str()]].concat();
        notes.warn(
            &path,
            format!("`{}` is not supported by {tool}; dropped", path.join(".")),
        );
    }
}

/// `env_file: [{path, required}]` (compose 2.24) as the list of paths the
/// older formats read; there each file is required.
fn env_file_paths(name: &str, out: &mut Map<String, Json>, notes: &mut Notes, tool: &str) {
    let Some(Json::Array(items)) = out.get_mut("env_file") else {
        return;
    };
    for (i, item) in items.iter_mut().enumerate() {
        let Some(path) = item.get("path").and_then(Json::as_str).map(str::to_owned) else {
            continue;
        };
        let optional = item.get("required") == Some(&Json::Bool(false));
        let format = item.get("format").and_then(Json::as_str).map(str::to_owned);
        *item = json!(path);
        if let Some(f) = format {
            notes.warn(
                &["services", name, "env_file", &i.to_string(), "format"],
                format!("`services.{name}.env_file` entry `{path}` has `format: {f}`, which {tool} does not know: there the file is read as a `.env` file (quotes and `$` references are interpreted)"),
            );
        }
        if optional {
            notes.warn(
                &["services", name, "env_file", &i.to_string()],
                format!("`services.{name}.env_file` entry `{path}` has `required: false`, which {tool} does not know: there the file is required, and the deploy fails when it is missing"),
            );
        }
    }
}

fn stack_service(name: &str, svc: &Service, out: &mut Map<String, Json>, notes: &mut Notes) {
    const TOOL: &str = "docker stack deploy";
    service_networks(name, out, notes, STACK_SERVICE_NETWORK_KEYS, TOOL);
    env_file_paths(name, out, notes, TOOL);
    drop_resource(
        name,
        out,
        notes,
        ["reservations", "devices"],
        "is not supported by docker stack deploy (swarm reserves devices as `generic_resources` of the node); dropped: the service runs without them",
    );
    if out.contains_key("build") {
        out.remove("build");
        if out.contains_key("image") {
            notes.warn(
                &["services", name, "build"],
                format!("`services.{name}.build` is not supported by docker stack deploy; dropped: swarm runs the image as it is on the node"),
            );
        } else {
            notes.err(
                &["services", name, "build"],
                format!("`services.{name}` has only `build:`, and docker stack deploy cannot build: give it an `image:` built beforehand, a kata `runtime:`, or deploy in compose mode"),
            );
        }
    }
    // Resource keys of the 2.x format have a swarm spelling.
    for (key, path) in [
        ("mem_limit", ["resources", "limits", "memory"]),
        ("cpus", ["resources", "limits", "cpus"]),
        ("mem_reservation", ["resources", "reservations", "memory"]),
    ] {
        if let Some(v) = out.remove(key) {
            let v = match v {
                Json::Number(n) => json!(n.to_string()),
                v => v,
            };
            let deploy = out.entry("deploy").or_insert_with(|| json!({}));
            if deploy.pointer(&format!("/{}", path.join("/"))).is_none() {
                deploy[path[0]][path[1]][path[2]] = v;
            }
            notes.warn(
                &["services", name, key],
                format!(
                    "`services.{name}.{key}` becomes `deploy.{}` for docker stack deploy",
                    path.join(".")
                ),
            );
        }
    }
    if let Some(n) = out.remove("scale") {
        let deploy = out.entry("deploy").or_insert_with(|| json!({}));
        if deploy.get("replicas").is_none() {
            deploy["replicas"] = n;
        }
        notes.warn(
            &["services", name, "scale"],
            format!("`services.{name}.scale` becomes `deploy.replicas` for docker stack deploy"),
        );
    }
    if out.remove("runtime").is_some() {
        notes.warn(
            &["services", name, "runtime"],
            format!("`services.{name}.runtime` is not supported by docker stack deploy (swarm has no per-service OCI runtime); dropped"),
        );
    }
    drop_keys(
        out,
        &["services", name],
        STACK_KEYS,
        "docker stack deploy",
        notes,
    );
    for k in STACK_IGNORED {
        if out.contains_key(*k) {
            notes.warn(
                &["services", name, k],
                format!("`services.{name}.{k}` is accepted but ignored by docker stack deploy"),
            );
        }
    }
    if !svc.depends_on.is_empty() {
        let how = if svc.depends_on_long.is_some() {
            ": swarm starts services in any order and does not wait for their `condition:`"
        } else {
            ": swarm starts services in any order"
        };
        notes.warn(
            &["services", name, "depends_on"],
            format!("`services.{name}.depends_on` is ignored by docker stack deploy{how}"),
        );
    }
    drop_start_interval(name, out, notes, "docker stack deploy");
    drop_pids_limit(name, out, notes, TOOL);
    port_keys(name, out, notes, TOOL);
    mount_options(name, out, notes, TOOL, &[("tmpfs", &["size"])]);
    short_devices(out);
    tmpfs_bytes(out);
    for (i, p) in items(out, "ports").enumerate() {
        let at = ["services", name, "ports", &i.to_string()];
        match p {
            Json::String(s) if host_ip_of(s).is_some() => notes.warn(
                &at,
                format!("swarm ignores the host address in {s:?} and publishes the port on every interface"),
            ),
            Json::Object(m) => {
                if m.remove("host_ip").is_some() {
                    notes.warn(
                        &at,
                        format!("swarm has no `host_ip`: `services.{name}.ports` publishes on every interface"),
                    );
                }
                // The 3.8 long form publishes one port; the short form a range.
                if let Some(range) = m.get("published").and_then(Json::as_str).filter(|s| s.contains('-')).map(str::to_owned)
                    && let Some(short) = short_port(p)
                {
                    notes.warn(
                        &at,
                        format!("swarm publishes every port of {range} to the target of `services.{name}.ports` (compose publishes one free port of the range)"),
                    );
                    *p = json!(short);
                }
            }
            _ => {}
        }
    }
}

/// A tmpfs `size` with a unit (`64m`), which compose reads as bytes, in
/// bytes: the 3.8 format wants an integer.
fn tmpfs_bytes(out: &mut Map<String, Json>) {
    for v in items(out, "volumes") {
        if let Some(size) = v.pointer_mut("/tmpfs/size")
            && let Some(n) = size.as_str().and_then(bytes)
        {
            *size = json!(n);
        }
    }
}

/// compose's byte sizes: a number with an optional unit b, k, m, g (or
/// kb, mb, gb), in any case.
fn bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let scale: u64 = match unit.trim_end_matches('b') {
        _ if unit.is_empty() || unit == "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(scale)
}

/// The host address of a short port (`127.0.0.1:8080:80`), if it has one.
fn host_ip_of(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').map(|(ip, _)| ip);
    }
    let parts: Vec<&str> = s.split(':').collect();
    (parts.len() == 3).then_some(parts[0])
}

/// Adapts the top-level sections to `target`.
pub(crate) fn top_level(target: Target, doc: &mut Map<String, Json>, notes: &mut Notes) {
    if target == Target::V2 {
        return;
    }
    let tool = match target {
        Target::V1 => "docker-compose 1.x",
        _ => "docker stack deploy",
    };
    // Inline contents have no older spelling: the object is dropped, with
    // the services' references to it.
    for (section, key, instead) in [
        ("configs", "content", "`file:`"),
        ("configs", "environment", "`file:`"),
        ("secrets", "environment", "`file:`"),
    ] {
        let dropped: Vec<String> = doc
            .get(section)
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.get(key).is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for name in &dropped {
            if let Some(Json::Object(m)) = doc.get_mut(section) {
                m.remove(name);
                if m.is_empty() {
                    doc.remove(section);
                }
            }
            notes.warn(
                &[section, name, key],
                format!("`{section}.{name}.{key}` is not supported by {tool} (use {instead}); `{name}` is dropped, and the services do not get it"),
            );
        }
        if dropped.is_empty() {
            continue;
        }
        for (svc_name, svc) in doc
            .get_mut("services")
            .and_then(Json::as_object_mut)
            .into_iter()
            .flat_map(|m| m.iter_mut())
        {
            if let Some(Json::Array(refs)) = svc.get_mut(section) {
                let before = refs.len();
                refs.retain(|r| {
                    let n = r
                        .as_str()
                        .or_else(|| r.get("source").and_then(Json::as_str));
                    !n.is_some_and(|n| dropped.iter().any(|d| d == n))
                });
                if refs.len() != before {
                    notes.warn(
                        &["services", svc_name, section],
                        format!(
                            "`services.{svc_name}.{section}` loses {}, which {tool} cannot provide",
                            dropped.join(", ")
                        ),
                    );
                }
                if refs.is_empty()
                    && let Some(m) = svc.as_object_mut()
                {
                    m.remove(section);
                }
            }
        }
    }
    if target == Target::V1
        && let Some(Json::Object(nets)) = doc.get_mut("networks")
    {
        drop_network_keys(nets, &["networks"], V1_NETWORK_KEYS, tool, notes);
    }
    if target == Target::Stack
        && let Some(Json::Object(nets)) = doc.get_mut("networks")
    {
        drop_network_keys(nets, &["networks"], STACK_NETWORK_KEYS, tool, notes);
        // the 3.8 format's ipam has a driver and subnets, nothing more
        for (net, v) in nets.iter_mut() {
            let Some(Json::Object(ipam)) = v.get_mut("ipam") else {
                continue;
            };
            let at = ["networks", net, "ipam"];
            drop_keys(ipam, &at, &["driver", "config"], tool, notes);
            for (i, c) in ipam
                .get_mut("config")
                .and_then(Json::as_array_mut)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(c) = c.as_object_mut() {
                    let i = i.to_string();
                    let at = [&at[..], &["config", &i]].concat();
                    drop_keys(c, &at, &["subnet"], tool, notes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_sizes_are_read_in_compose_units() {
        for (s, want) in [
            ("64m", Some(64 << 20)),
            ("1G", Some(1 << 30)),
            ("512kb", Some(512 << 10)),
            ("100", Some(100)),
            ("100b", Some(100)),
            ("1.5g", None),
            ("lots", None),
        ] {
            assert_eq!(bytes(s), want, "{s}");
        }
    }
}
