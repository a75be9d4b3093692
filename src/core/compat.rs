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

/// Service keys of the 3.8 file format (`docker stack config` rejects others).
const STACK_KEYS: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
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
    for (i, v) in out
        .get_mut("volumes")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (section, opt) in [("bind", "create_host_path"), ("volume", "subpath")] {
            if let Some(sec) = v.get_mut(section).and_then(Json::as_object_mut)
                && sec.remove(opt).is_some()
            {
                let sec_empty = sec.is_empty();
                if sec_empty && let Some(m) = v.as_object_mut() {
                    m.remove(section);
                }
                notes.warn(
                    &["services", name, "volumes", &i.to_string()],
                    format!("`{section}.{opt}` in `services.{name}.volumes` is not supported by docker-compose 1.x; dropped"),
                );
            }
        }
    }
    // 1.29's long port syntax has no host_ip: the short form says the same.
    for p in out
        .get_mut("ports")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(short) = short_port(p) {
            *p = json!(short);
        }
    }
    if out.contains_key("deploy") {
        notes.warn(
            &["services", name, "deploy"],
            format!("`services.{name}.deploy` is applied only in part by docker-compose 1.x: `replicas`, device reservations and `restart_policy` (written as `restart:`), not resource limits or update settings"),
        );
    }
}

/// `{target, published, host_ip, protocol}` as `host_ip:published:target/protocol`.
fn short_port(p: &Json) -> Option<String> {
    let m = p.as_object()?;
    let ip = m.get("host_ip")?.as_str()?;
    let scalar = |k: &str| match m.get(k)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let target = scalar("target")?;
    let published = scalar("published").unwrap_or_default();
    let mut s = format!("{ip}:{published}:{target}");
    if let Some(proto) = scalar("protocol") {
        s.push('/');
        s.push_str(&proto);
    }
    Some(s)
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
        *item = json!(path);
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
    if let Some(Json::Object(res)) = out
        .get_mut("deploy")
        .and_then(|d| d.pointer_mut("/resources/reservations"))
        && res.remove("devices").is_some()
    {
        notes.warn(
            &["services", name, "deploy", "resources", "reservations", "devices"],
            format!("`services.{name}.deploy.resources.reservations.devices` is not supported by docker stack deploy (swarm reserves devices as `generic_resources` of the node); dropped: the service runs without them"),
        );
    }
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
    if out.remove("container_name").is_some() {
        notes.warn(
            &["services", name, "container_name"],
            format!(
                "`services.{name}.container_name` is not supported by docker stack deploy; dropped"
            ),
        );
    }
    let unknown: Vec<String> = out
        .keys()
        .filter(|k| !STACK_KEYS.contains(&k.as_str()) && !k.starts_with("x-"))
        .cloned()
        .collect();
    for k in unknown {
        out.remove(&k);
        let why = if k == "runtime" {
            " (swarm has no per-service OCI runtime)"
        } else {
            ""
        };
        notes.warn(
            &["services", name, &k],
            format!("`services.{name}.{k}` is not supported by docker stack deploy{why}; dropped"),
        );
    }
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
    for (i, p) in out
        .get_mut("ports")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
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
                if let Some(Json::String(n)) = m.get("published")
                    && let Ok(n) = n.parse::<u64>()
                {
                    m.insert("published".into(), json!(n));
                }
            }
            _ => {}
        }
    }
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
