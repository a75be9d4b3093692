//! Render an [`AppSpec`] into the compose file for one target. Pure: the
//! caller supplies paths, the ENV file's contents and the uid/gid.

use crate::env;
use crate::envfile::Env;
use crate::expand::expand;
pub use crate::model::Target;
use crate::notes::Notes;
use crate::paths::Paths;
use crate::spec::{AppSpec, Diag, Health, KATA_VOLUMES, Runtime, Service};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};

/// Everything outside the spec that the rendering depends on.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub app: &'a str,
    pub paths: &'a Paths,
    /// `config/<app>/ENV` (or `.env`), as read.
    pub config_env: &'a Env,
    pub puid: u32,
    pub pgid: u32,
    /// Release number and commit, labelled on services that run the app's
    /// code so that new code always means new containers.
    pub release: Option<(u64, &'a str)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The compose document.
    pub compose: Json,
    /// The Caddy server object after variable expansion (shorthand not yet
    /// expanded, service dials not yet resolved).
    pub caddy: Option<Json>,
    /// Per service: the resolved environment (compose form).
    pub env: IndexMap<String, IndexMap<String, String>>,
    /// Every change of meaning kata makes for this target, positioned.
    pub warnings: Vec<Diag>,
    /// What this target cannot run at all: nothing may be deployed.
    pub errors: Vec<Diag>,
    /// Writable relative mounts kept in the app's data directory: (the path
    /// in the checkout, the host directory). A deploy copies the pushed
    /// files there while the directory does not exist yet.
    pub seeds: Vec<(String, std::path::PathBuf)>,
}

impl Rendered {
    /// The YAML text, byte-for-byte deterministic for the same inputs.
    pub fn yaml(&self) -> String {
        to_yaml(&self.compose)
    }
    /// Whether `service` is in the rendered file (services of inactive
    /// profiles are not).
    pub fn deploys(&self, service: &str) -> bool {
        self.compose["services"].get(service).is_some()
    }
}

pub fn to_yaml(doc: &Json) -> String {
    serde_saphyr::to_string(doc).expect("a JSON value always serialises to YAML")
}

/// A layer of template values, bare keys taking the value from below.
fn entries(vars: &[(String, String)], bare: &[String]) -> Vec<env::Entry> {
    vars.iter()
        .map(|(k, v)| (k.clone(), (!bare.contains(k)).then(|| v.clone())))
        .collect()
}

pub fn render(spec: &AppSpec, cx: &Context, target: Target) -> Rendered {
    let mut notes = Notes {
        source: &spec.source,
        warnings: vec![],
        errors: vec![],
        seeds: vec![],
    };
    let base = env::values(&env::base(cx.app, cx.paths, cx.puid, cx.pgid));
    let file = env::values(&env::literal_layer(cx.config_env));
    let top = entries(&spec.environment, &spec.inherit_env);
    let (global, _) = env::resolve(&[base.clone(), top.clone(), file.clone()]);
    let lookup = env::lookup(&global);

    // Profiles are activated as compose users do it in `.env`: with
    // COMPOSE_PROFILES, here from the app's environment.
    let active: Vec<String> = global
        .get("COMPOSE_PROFILES")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let inactive: Vec<&String> = spec
        .services
        .iter()
        .filter(|(_, svc)| {
            let profiles = profiles_of(svc, &lookup);
            !profiles.is_empty() && !profiles.iter().any(|p| active.contains(p))
        })
        .map(|(n, _)| n)
        .collect();

    let mut services = Map::new();
    let mut envs = IndexMap::new();
    let mut used_kata_volumes: Vec<&str> = vec![];
    // Which port Caddy dials on each service: swarm health checks use it.
    let routed: Vec<(String, u16)> = match (&spec.caddy, target) {
        (Some(n), Target::Stack) => crate::caddy::expand(n.to_json(), cx.app)
            .map(|server| crate::caddy::service_dials(&server, spec.services.keys()))
            .unwrap_or_default(),
        _ => vec![],
    };
    for (name, svc) in &spec.services {
        if inactive.contains(&name) {
            notes.warn(
                &["services", name, "profiles"],
                format!(
                    "`services.{name}` is only in profile(s) {}, none active: it is not deployed (activate with `kata config:set APP COMPOSE_PROFILES={}`)",
                    profiles_of(svc, &lookup).join(", "),
                    profiles_of(svc, &lookup).join(",")
                ),
            );
            continue;
        }
        for dep in svc.depends_on.iter().filter(|d| inactive.contains(d)) {
            notes.err(
                &["services", name, "depends_on"],
                format!("`services.{name}` depends on `{dep}`, whose profile is not active (set COMPOSE_PROFILES in the app's config)"),
            );
        }
        let layers = [
            base.clone(),
            top.clone(),
            file.clone(),
            entries(&svc.environment, &svc.inherit_env),
        ];
        let (senv, own) = env::resolve(&layers);
        for r in own {
            notes.warn(
                &["services", name, "environment", &r.key],
                format!(
                    "`{}` refers to `{}`, which this service sets itself: kata uses the service's value, compose would read `{}` from `.env` (the app's config)",
                    r.key, r.name, r.name
                ),
            );
        }
        // compose interpolates the file from `.env` alone, as kata does from
        // the app's layers; a name only the service's own `environment`
        // sets (compose: blank) kata fills in, with a warning.
        let svc_lookup = |n: &str| global.get(n).or_else(|| senv.get(n)).cloned();
        let image = svc
            .image
            .as_ref()
            .map(|i| ("image", Json::String(i.clone())));
        for (key, v) in svc
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain(image)
        {
            if expand_json(&v, &svc_lookup) != expand_json(&v, &lookup) {
                notes.warn(
                    &["services", name, key],
                    format!("`services.{name}.{key}` uses a variable only this service's `environment` sets: kata fills it in from there, compose would read it from `.env` (the app's config) and find nothing"),
                );
            }
        }
        let mut out = render_service(cx, name, svc, &senv, &svc_lookup, target, &mut notes);
        if !spec.volumes.contains_key("config")
            && let Some(Json::Array(vols)) = out.get_mut("volumes")
        {
            vols.iter_mut().for_each(config_read_only);
        }
        if target == Target::Stack {
            swarm_rollout(&mut out, name, svc, &routed, &mut notes);
        }
        crate::scalars::service(&mut out);
        drop_repeated_items(&mut out);
        crate::compat::service(target, name, svc, &mut out, &mut notes);
        for (key, v) in &out {
            if let Some(var) = required_unset(v) {
                notes.err(
                    &["services", name, key],
                    format!("`services.{name}.{key}` requires `{var}` (`${{{var}:?…}}`), which neither the file's `environment` nor the app's config sets: set it with `kata config:set APP {var}=…`"),
                );
            }
        }
        if let (Some((n, commit)), true) = (cx.release, runs_app_code(svc))
            && let Some(Json::Object(labels)) = out.get_mut("labels")
        {
            labels.insert("kata.release".into(), json!(n.to_string()));
            labels.insert("kata.commit".into(), json!(commit));
        }
        for v in out
            .get("volumes")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(src) = v.as_str().and_then(|s| s.split_once(':')).map(|(s, _)| s)
                && let Some(k) = KATA_VOLUMES.iter().find(|k| **k == src)
                && !used_kata_volumes.contains(k)
            {
                used_kata_volumes.push(k);
            }
        }
        services.insert(name.clone(), Json::Object(out));
        envs.insert(name.clone(), senv);
    }

    let mut doc = Map::new();
    if target == Target::V2 {
        doc.insert("name".into(), json!(cx.app));
    }
    if target == Target::Stack {
        // docker stack deploy (Docker 20.10) insists on a 3.x file version.
        doc.insert("version".into(), json!("3.8"));
    }
    doc.insert("services".into(), Json::Object(services));

    let mut volumes = Map::new();
    for (name, host, _) in cx.paths.runtime_mounts(cx.app) {
        if used_kata_volumes.contains(&name) && !spec.volumes.contains_key(name) {
            let mut vol = json!({
                "driver": "local",
                "driver_opts": {"type": "none", "o": "bind", "device": crate::expand::escape(&host.display().to_string())},
            });
            // A release's code gets a volume of its own: Docker mounts a
            // bind volume once and shares that mount, so the new containers
            // of a blue/green switch would otherwise see the old release.
            if let (Some((n, _)), "app") = (cx.release, name) {
                let src = cx.paths.release(cx.app, n).join("src");
                vol["name"] = json!(format!("{}_app_r{n}", cx.app));
                vol["driver_opts"]["device"] =
                    json!(crate::expand::escape(&src.display().to_string()));
            }
            volumes.insert(name.into(), vol);
        }
    }
    for (name, v) in &spec.volumes {
        if KATA_VOLUMES.contains(&name.as_str()) {
            notes.warn(
                &["volumes", name],
                format!("top-level volume `{name}` replaces kata's bind mount of the same name"),
            );
        }
        volumes.insert(name.clone(), expand_json(v, &lookup));
    }
    for (key, m) in [("volumes", &volumes)] {
        if !m.is_empty() {
            doc.insert(key.into(), Json::Object(m.clone()));
        }
    }
    for (key, m) in [
        ("networks", &spec.networks),
        ("secrets", &spec.secrets),
        ("configs", &spec.configs),
    ] {
        if !m.is_empty() {
            let o: Map<String, Json> = m
                .iter()
                .map(|(k, v)| (k.clone(), expand_json(v, &lookup)))
                .collect();
            doc.insert(key.into(), Json::Object(o));
        }
    }
    for (k, v) in &spec.extensions {
        doc.insert(k.clone(), v.clone());
    }
    crate::compat::top_level(target, &mut doc, &mut notes);
    let mut compose = Json::Object(doc);
    crate::scalars::top_level(&mut compose);
    escape_lone_dollars(&mut compose);
    if target != Target::V2 {
        drop_unset_alternatives(&mut compose, &mut vec![], target, &mut notes);
    }

    let caddy = spec
        .caddy
        .as_ref()
        .map(|n| expand_json(&n.to_json(), &lookup));
    Rendered {
        compose,
        caddy,
        env: envs,
        warnings: notes.warnings,
        errors: notes.errors,
        seeds: notes.seeds,
    }
}

/// Publishes each routed dial's block of kata's loopback ports on its
/// service (`127.0.0.1:FIRST-LAST:<port>`, added to the service's own
/// `ports:`), so Caddy reaches every container of it on the host (see
/// [`crate::ports`]). Compose targets only: swarm keeps its own routing.
pub fn publish_routes(compose: &mut Json, ports: &crate::ports::AppPorts) {
    let Some(Json::Object(services)) = compose.get_mut("services") else {
        return;
    };
    for (name, svc) in services.iter_mut() {
        let blocks = ports.of_service(name);
        if blocks.is_empty() {
            continue;
        }
        let Json::Object(svc) = svc else { continue };
        let list = svc.entry("ports").or_insert_with(|| json!([]));
        if let Json::Array(list) = list {
            for (port, block) in blocks {
                let entry = json!(block.publish(port));
                if !list.contains(&entry) {
                    list.push(entry);
                }
            }
        }
    }
}

/// A service's `profiles`, expanded.
fn profiles_of(svc: &Service, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    svc.extra
        .get("profiles")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(|p| expand(p, lookup))
        .collect()
}

fn render_service(
    cx: &Context,
    name: &str,
    svc: &Service,
    senv: &IndexMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    target: Target,
    notes: &mut Notes,
) -> Map<String, Json> {
    let x = |v: &Json| expand_json(v, lookup);
    let mut out = Map::new();
    match (svc.runtime, &svc.image) {
        (Some(rt), _) => {
            out.insert("image".into(), json!(rt.image()));
            // kata's runtime images run the app as the deploying user, who
            // owns the bind-mounted code, data and virtualenv (a `user:` in
            // the service, copied below, still wins).
            out.insert("user".into(), json!(format!("{}:{}", cx.puid, cx.pgid)));
        }
        (None, Some(img)) => {
            out.insert("image".into(), json!(expand(img, lookup)));
        }
        (None, None) => {}
    }
    for key in ["build", "command", "entrypoint"] {
        if let Some(v) = svc.extra.get(key) {
            out.insert(key.into(), x(v));
        }
    }

    let mut environment: Map<String, Json> = Map::new();
    let mut sorted: Vec<(&String, &String)> = senv.iter().collect();
    sorted.sort();
    for (k, v) in sorted {
        environment.insert(k.clone(), json!(v));
    }
    if let Some(root) = svc
        .static_root
        .as_ref()
        .filter(|_| svc.runtime == Some(Runtime::Static))
    {
        environment.insert("KATA_STATIC_ROOT".into(), json!(expand(root, lookup)));
    }
    out.insert("environment".into(), Json::Object(environment));

    if let Some(v) = svc.extra.get("ports") {
        out.insert("ports".into(), x(v));
    }

    let mut volumes: Vec<Json> = vec![];
    let mut user_volumes: Vec<Json> = svc
        .extra
        .get("volumes")
        .map(x)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    for (i, v) in user_volumes.iter_mut().enumerate() {
        relative_bind(cx, name, i, v, notes);
    }
    if svc.runtime.is_some() {
        let taken: Vec<String> = user_volumes.iter().filter_map(container_path).collect();
        // The config reaches the container read-only: code in it must not
        // change what the next deploy runs with.
        for (vol, target_path, opts) in [
            ("app", "/app", ""),
            ("config", "/config", ":ro"),
            ("data", "/data", ""),
            ("venv", "/venv", ""),
        ] {
            if !taken.iter().any(|t| t == target_path) {
                volumes.push(json!(format!("{vol}:{target_path}{opts}")));
            }
        }
    }
    volumes.extend(user_volumes);
    if !volumes.is_empty() {
        out.insert("volumes".into(), Json::Array(volumes));
    }

    if !svc.depends_on.is_empty() {
        let dep = match (&svc.depends_on_long, target) {
            (Some(long), Target::V2 | Target::V1) => x(long),
            _ => json!(svc.depends_on),
        };
        out.insert("depends_on".into(), dep);
    }
    if let Some(Health::Compose(h)) = &svc.health {
        out.insert("healthcheck".into(), x(h));
    }

    let mut deploy = svc.extra.get("deploy").map(x).unwrap_or_else(|| json!({}));
    if let Some(n) = svc.instances {
        match target {
            Target::V1 => {
                out.insert("scale".into(), json!(n));
            }
            Target::V2 | Target::Stack => {
                deploy["replicas"] = json!(n);
            }
        }
    }
    let restart = svc.extra.get("restart").map(x);
    let restart = restart.as_ref().and_then(Json::as_str);
    if let Some(r) = restart.filter(|r| !crate::spec::restart_policy_ok(r)) {
        notes.err(
            &["services", name, "restart"],
            format!("`services.{name}.restart` is {r:?} once expanded: it must be one of no, always, on-failure[:N], unless-stopped"),
        );
    }
    // compose v2 runs the container with `deploy.restart_policy` when there
    // is one, whatever `restart:` says; docker-compose 1.x only reads
    // `restart:`, so there it is written as that.
    let policy = crate::spec::restart_of_policy(Some(&deploy));
    match restart {
        Some(r) if target == Target::Stack => {
            let (cond, max) = match r {
                "no" => ("none", None),
                "always" | "unless-stopped" => ("any", None),
                r => (
                    "on-failure",
                    r.strip_prefix("on-failure:")
                        .and_then(|n| n.parse::<u64>().ok()),
                ),
            };
            if deploy.get("restart_policy").is_none() {
                let mut p = json!({"condition": cond});
                if let Some(m) = max {
                    p["max_attempts"] = json!(m);
                }
                deploy["restart_policy"] = p;
            }
        }
        _ if target == Target::V1 && policy.is_some() => {
            let p = policy.unwrap_or_default();
            if let Some(r) = restart.filter(|r| *r != p) {
                notes.warn(
                    &["services", name, "restart"],
                    format!("`services.{name}.restart` is {r:?}, but compose applies `deploy.restart_policy` over it: kata writes `restart: {p}` for docker-compose 1.x, which reads only `restart:`"),
                );
            }
            out.insert("restart".into(), json!(p));
        }
        Some(r) => {
            out.insert("restart".into(), json!(r));
        }
        // compose v2 gives the container the policy
        None if target == Target::V2 && policy.is_some() => {}
        None if target != Target::Stack => {
            // A PaaS app comes back after a crash or a host reboot. A runtime
            // service is kata's own kind; a compose service meant `no`.
            out.insert("restart".into(), json!("unless-stopped"));
            if svc.runtime.is_none() {
                notes.warn(
                    &["services", name],
                    format!("`services.{name}` has no `restart:`; kata adds `restart: unless-stopped` so it comes back after a crash or a reboot (compose's default is `no`: write `restart: \"no\"` to keep it, e.g. for a one-shot job)"),
                );
            }
        }
        None => {
            if svc.runtime.is_none() && deploy.get("restart_policy").is_none() {
                notes.warn(
                    &["services", name],
                    format!("`services.{name}` has no `restart:`; swarm restarts a task whenever it exits (compose's default is `no`: write `restart: \"no\"` to keep that, e.g. for a one-shot job)"),
                );
            }
        }
    }

    let mut labels = match svc.extra.get("labels").map(x) {
        Some(Json::Object(m)) => m,
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(Json::as_str)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_owned(), json!(v)),
                None => (s.to_owned(), json!("")),
            })
            .collect(),
        _ => Map::new(),
    };
    labels.insert("kata.app".into(), json!(cx.app));
    labels.insert("kata.service".into(), json!(name));
    out.insert("labels".into(), Json::Object(labels));

    const HANDLED: &[&str] = &[
        "build",
        "command",
        "entrypoint",
        "ports",
        "volumes",
        "deploy",
        "restart",
        "labels",
        // resolved by kata (COMPOSE_PROFILES): a rendered service is active
        "profiles",
    ];
    for (k, v) in &svc.extra {
        if HANDLED.contains(&k.as_str()) {
            continue;
        }
        out.insert(k.clone(), x(v));
    }
    drop_dot_env(name, &mut out, notes);
    if deploy.as_object().is_some_and(|m| !m.is_empty()) {
        out.insert("deploy".into(), deploy);
    }
    out
}

/// `env_file: .env` is compose's `.env` read into the container; under kata
/// that file is the app's config, whose values every service already has
/// (and which is not in the checkout).
fn drop_dot_env(name: &str, out: &mut Map<String, Json>, notes: &mut Notes) {
    let is_dot_env = |e: &Json| {
        let p = e.as_str().or_else(|| e.get("path").and_then(Json::as_str));
        p.is_some_and(|p| p.trim_start_matches("./") == ".env")
    };
    let kept = match out.get("env_file") {
        Some(Json::String(s)) if is_dot_env(&json!(s)) => None,
        Some(Json::Array(items)) if items.iter().any(is_dot_env) => Some(
            items
                .iter()
                .filter(|e| !is_dot_env(e))
                .cloned()
                .collect::<Vec<_>>(),
        ),
        _ => return,
    };
    match kept {
        Some(items) if !items.is_empty() => {
            out.insert("env_file".into(), Json::Array(items));
        }
        _ => {
            out.remove("env_file");
        }
    }
    notes.warn(
        &["services", name, "env_file"],
        format!("`services.{name}.env_file` names `.env`: under kata that is the app's config (`kata config:set`), whose values the service already has; dropped"),
    );
}

/// compose resolves `./path` against the project directory, which under
/// kata is the release's own checkout, replaced on every deploy. Read-only
/// mounts keep that meaning (files shipped in git), and so do writable
/// files (`./nginx.conf`) and `.` itself, with a warning. A writable
/// directory holds data: it moves to the app's persistent data directory
/// (`data/<app>/<path>`), with a warning.
fn relative_bind(cx: &Context, name: &str, i: usize, v: &mut Json, notes: &mut Notes) {
    let (source, read_only) = match &*v {
        Json::String(s) => {
            let mut parts = s.splitn(3, ':');
            let src = parts.next().unwrap_or("");
            let _target = parts.next();
            let ro = parts
                .next()
                .is_some_and(|m| m.split(',').any(|o| o == "ro"));
            (src.to_owned(), ro)
        }
        Json::Object(m) if m.get("type").and_then(Json::as_str) == Some("bind") => (
            m.get("source")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            m.get("read_only").and_then(Json::as_bool) == Some(true),
        ),
        _ => return,
    };
    if !source.starts_with('.') {
        return;
    }
    let at = ["services", name, "volumes", &i.to_string()];
    let mut rel: Vec<&str> = vec![];
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if rel.pop().is_none() {
                    notes.err(&at, format!("`{source}` points outside the app's checkout"));
                    return;
                }
            }
            p => rel.push(p),
        }
    }
    if read_only {
        return;
    }
    // A file shipped in git (`./nginx.conf`, `./.htpasswd`) stays the
    // release's own: a name with an extension or a leading dot.
    let file_like = rel.last().is_some_and(|last| last.contains('.'));
    if rel.is_empty() || file_like {
        notes.warn(
            &at,
            format!("`{source}` is mounted writable from the release's checkout: what containers write there is gone after the next deploy (add `:ro` if it is only read; mount a directory such as `./data` for data kata keeps)"),
        );
        return;
    }
    // Not inside `data/<app>`: runtime services mount that writable, and a
    // container could replace the directory with a symlink Docker follows.
    let dir = crate::access::pin::mounts_dir(cx.paths.root(), cx.app).join(rel.join("/"));
    let host = crate::expand::escape(&dir.display().to_string());
    notes.warn(
        &at,
        format!("`{source}` is mounted writable: kata keeps it in {host} so it survives deploys, starting from the pushed files the first time; add `:ro` to mount the pushed files of each release instead"),
    );
    let seed = (rel.join("/"), dir);
    // A writable mount inside another: a container writing the outer one
    // could replace the inner one by a symlink, which Docker would follow.
    if let Some((other, _)) = notes.seeds.iter().find(|(o, _)| {
        o != &seed.0
            && (seed.0.starts_with(&format!("{o}/")) || o.starts_with(&format!("{}/", seed.0)))
    }) {
        let msg = format!(
            "`{source}` and `./{other}` are both mounted writable and one holds the other: a container writing the outer one could replace the inner one; mount one of them `:ro` or use directories side by side"
        );
        notes.err(&at, msg);
        return;
    }
    if !notes.seeds.contains(&seed) {
        notes.seeds.push(seed);
    }
    match v {
        Json::String(s) => *s = format!("{host}{}", &s[source.len()..]),
        Json::Object(m) => {
            m.insert("source".into(), json!(host));
        }
        _ => {}
    }
}

/// Services whose containers run the pushed code: runtime services and those
/// compose builds from the checkout.
/// The first `${VAR:?…}` or `${VAR?…}` left in `v` after expansion: a
/// variable compose would refuse to run without.
fn required_unset(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => {
            let b = s.as_bytes();
            let mut i = 0;
            while i + 1 < b.len() {
                match (b[i], b[i + 1]) {
                    (b'$', b'$') => i += 2,
                    (b'$', b'{') => {
                        let name: String = s[i + 2..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        let rest = &s[i + 2 + name.len()..];
                        if !name.is_empty() && (rest.starts_with(":?") || rest.starts_with('?')) {
                            return Some(name);
                        }
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
            None
        }
        Json::Array(a) => a.iter().find_map(required_unset),
        Json::Object(m) => m.values().find_map(required_unset),
        _ => None,
    }
}

pub fn runs_app_code(svc: &Service) -> bool {
    svc.runtime.is_some() || svc.extra.contains_key("build")
}

/// kata's `config` volume is mounted read-only wherever a service uses it:
/// code in a container must not change the config the next deploy runs with.
fn config_read_only(v: &mut Json) {
    match v {
        Json::String(s) => {
            let mut parts: Vec<&str> = s.split(':').collect();
            if parts.len() >= 2 && parts[0] == "config" {
                parts.truncate(2);
                *s = format!("{}:ro", parts.join(":"));
            }
        }
        Json::Object(m) if m.get("source").and_then(Json::as_str) == Some("config") => {
            m.insert("read_only".into(), Json::Bool(true));
        }
        _ => {}
    }
}

/// The container-side path of a service volume entry.
fn container_path(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => {
            let mut parts = s.split(':');
            let first = parts.next()?;
            Some(parts.next().unwrap_or(first).to_owned())
        }
        Json::Object(m) => m.get("target").and_then(Json::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Every string of the compose file with its literal `$`s in the form all
/// three targets read the same way (see [`crate::expand::escape_lone`]).
fn escape_lone_dollars(v: &mut Json) {
    match v {
        Json::String(s) if s.contains('$') => *s = crate::expand::escape_lone(s),
        Json::Array(a) => a.iter_mut().for_each(escape_lone_dollars),
        Json::Object(m) => m.values_mut().for_each(escape_lone_dollars),
        _ => {}
    }
}

/// Lists compose v2 reads as sets: a repeated item (`- "8080:80"` twice)
/// is one. docker-compose 1.x and swarm refuse the repetition.
const SET_LISTS: &[&str] = &[
    "ports",
    "expose",
    "cap_add",
    "cap_drop",
    "dns",
    "dns_search",
    "devices",
    "tmpfs",
    "volumes",
    "sysctls",
];

fn drop_repeated_items(out: &mut Map<String, Json>) {
    for key in SET_LISTS {
        if let Some(Json::Array(items)) = out.get_mut(*key) {
            let mut seen: Vec<Json> = Vec::with_capacity(items.len());
            items.retain(|i| {
                let first = !seen.contains(i);
                if first {
                    seen.push(i.clone());
                }
                first
            });
        }
    }
}

/// `${NAME:+alt}` for a name nothing sets is empty, as compose v2 reads it;
/// docker-compose 1.x and swarm, which have no `+` forms, get it written so.
fn drop_unset_alternatives(v: &mut Json, at: &mut Vec<String>, target: Target, notes: &mut Notes) {
    match v {
        Json::String(s) => {
            if let Some(resolved) = crate::expand::drop_unset_alternatives(s) {
                let tool = match target {
                    Target::V1 => "docker-compose 1.x",
                    _ => "docker stack deploy",
                };
                let path: Vec<&str> = at.iter().map(String::as_str).collect();
                notes.warn(
                    &path,
                    format!("`{}` has `${{NAME:+…}}` for a name neither the file's `environment` nor the app's config sets, which {tool} cannot read: kata writes it as compose resolves it, empty", path.join(".")),
                );
                *s = resolved;
            }
        }
        Json::Array(a) => {
            for (i, e) in a.iter_mut().enumerate() {
                at.push(i.to_string());
                drop_unset_alternatives(e, at, target, notes);
                at.pop();
            }
        }
        Json::Object(m) => {
            for (k, e) in m.iter_mut() {
                at.push(k.clone());
                drop_unset_alternatives(e, at, target, notes);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Expands variables in every string of a JSON value (keys stay as written).
pub fn expand_json(v: &Json, lookup: &dyn Fn(&str) -> Option<String>) -> Json {
    match v {
        Json::String(s) => Json::String(expand(s, lookup)),
        Json::Array(a) => Json::Array(a.iter().map(|e| expand_json(e, lookup)).collect()),
        Json::Object(m) => Json::Object(
            m.iter()
                .map(|(k, e)| (k.clone(), expand_json(e, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Swarm does the zero-downtime work itself: start the new task before
/// stopping the old one (stop-first for services holding data, so two
/// copies never share it), gated by the service's health check, and roll
/// back when the update fails. kata's HTTP check becomes a Docker health
/// check run inside the container, with whichever client the image has.
fn swarm_rollout(
    out: &mut Map<String, Json>,
    name: &str,
    svc: &Service,
    routed: &[(String, u16)],
    notes: &mut Notes,
) {
    // A one-shot job has no update to roll out: its task runs and completes
    // (swarm's update monitor would take that for a failure).
    if svc.extra.get("restart").and_then(Json::as_str) == Some("no") {
        return;
    }
    // kata's own mounts of a runtime service are shared by every replica
    // anyway; an image that mounts storage (a database) must not overlap.
    let stateful = !runs_app_code(svc)
        && out
            .get("volumes")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .any(|v| {
                let source = match v {
                    Json::String(s) => s.split(':').next().unwrap_or(""),
                    Json::Object(m) => m.get("source").and_then(Json::as_str).unwrap_or(""),
                    _ => "",
                };
                !matches!(source, "app" | "config" | "venv")
            });
    // A port published in `mode: host` is bound on the node itself: on a
    // single node the new task could never start beside the old one, and
    // the update would hang. Such a service updates stop-first.
    let host_port = out
        .get("ports")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .any(|p| p.get("mode").and_then(Json::as_str) == Some("host"));
    let order = if stateful || host_port {
        "stop-first"
    } else {
        "start-first"
    };
    let deploy = out.entry("deploy").or_insert_with(|| json!({}));
    if let Json::Object(d) = deploy {
        if host_port && !stateful && !d.contains_key("update_config") {
            notes.warn(
                &["services", name, "ports"],
                format!("`services.{name}` publishes a port in mode: host, so its updates stop the old task before starting the new one (a short gap)"),
            );
        }
        d.entry("update_config").or_insert_with(
            || json!({"order": order, "failure_action": "rollback", "monitor": "10s"}),
        );
        d.entry("rollback_config")
            .or_insert_with(|| json!({"order": order}));
    }
    if let Some(Health::Http(check)) = &svc.health {
        let port = routed.iter().find(|(s, _)| s == name).map(|(_, p)| *p);
        match crate::gate::gate_for(name, svc, port) {
            Ok(crate::gate::Gate::Http { check: c, port }) => {
                let url = format!("http://127.0.0.1:{port}{}", c.path);
                let probe = format!(
                    "wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url} || python3 -c \"import urllib.request; urllib.request.urlopen('{url}', timeout={t})\"",
                    t = c.timeout_secs
                );
                out.insert(
                    "healthcheck".into(),
                    json!({
                        "test": ["CMD-SHELL", probe],
                        "interval": format!("{}s", check.interval_secs.max(1)),
                        "timeout": format!("{}s", check.timeout_secs.max(1)),
                        "retries": check.attempts,
                    }),
                );
            }
            Ok(_) => {}
            Err(e) => notes.warn(&["services", name, "healthcheck"], e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    /// Renders a fixture the way snapshots see it: fixed paths and ids.
    pub(crate) fn render_fixture(text: &str, app: &str, target: Target) -> (Rendered, Vec<String>) {
        let parsed = spec::parse(text);
        let warnings = parsed
            .warnings
            .iter()
            .map(|w| w.display("kata-compose.yaml").to_string())
            .collect();
        let spec = parsed
            .spec
            .unwrap_or_else(|| panic!("fixture has errors: {:?}", parsed.errors));
        let paths = Paths::new("/home/kata");
        let mut config = Env::new();
        config.insert("SECRET".into(), "from $config file".into());
        let cx = Context {
            app,
            paths: &paths,
            config_env: &config,
            puid: 1000,
            pgid: 1000,
            release: Some((7, "0123abc")),
        };
        (render(&spec, &cx, target), warnings)
    }

    #[test]
    fn required_variables_left_unset_are_found() {
        assert_eq!(
            required_unset(&json!("${CMD:?must be set}")),
            Some("CMD".into())
        );
        assert_eq!(
            required_unset(&json!(["a", {"b": "x${V?no}"}])),
            Some("V".into())
        );
        assert_eq!(required_unset(&json!("$${CMD:?literal}")), None);
        assert_eq!(required_unset(&json!("${CMD:-d} $X ${Y}")), None);
    }

    #[test]
    fn kata_config_volume_is_always_read_only() {
        for (given, want) in [
            (json!("config:/config"), json!("config:/config:ro")),
            (json!("config:/etc/app:rw"), json!("config:/etc/app:ro")),
            (json!("data:/data"), json!("data:/data")),
            (
                json!({"type": "volume", "source": "config", "target": "/c"}),
                json!({"type": "volume", "source": "config", "target": "/c", "read_only": true}),
            ),
        ] {
            let mut v = given;
            config_read_only(&mut v);
            assert_eq!(v, want);
        }
    }

    #[test]
    fn spec_examples_render_for_every_target() {
        insta::glob!("../../tests/fixtures/spec", "*.yaml", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            for (target, tag) in [
                (Target::V2, "v2"),
                (Target::V1, "v1"),
                (Target::Stack, "stack"),
            ] {
                let (out, mut warnings) = render_fixture(&text, "demo", target);
                warnings.extend(out.warnings.iter().map(|w| w.to_string()));
                let mut shown = format!("# warnings: {warnings:#?}\n");
                if !out.errors.is_empty() {
                    shown.push_str(&format!(
                        "# errors: {:#?}\n",
                        out.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                    ));
                }
                shown.push_str(&out.yaml());
                if let Some(server) = &out.caddy {
                    let full =
                        crate::caddy::expand(server.clone(), "demo").expect("caddy block expands");
                    shown.push_str("# caddy server apps.http.servers.demo:\n");
                    shown.push_str(&serde_json::to_string_pretty(&full).unwrap());
                    shown.push('\n');
                }
                insta::assert_snapshot!(tag, shown);
            }
        });
    }

    /// The compose fixtures, each with the config its `.env` sibling holds:
    /// what each target gets, and every positioned warning and error.
    #[test]
    fn compose_fixtures_render_for_every_target() {
        insta::glob!("../../tests/fixtures/compose", "*.yaml", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let config = std::fs::read_to_string(path.with_extension("env"))
                .map(|t| crate::envfile::parse(&t).unwrap())
                .unwrap_or_default();
            let parsed = spec::parse(&text);
            let spec = parsed
                .spec
                .unwrap_or_else(|| panic!("fixture has errors: {:?}", parsed.errors));
            let paths = Paths::new("/home/kata");
            let cx = Context {
                app: "demo",
                paths: &paths,
                config_env: &config,
                puid: 1000,
                pgid: 1000,
                release: Some((7, "0123abc")),
            };
            let mut shown = String::new();
            for w in &parsed.warnings {
                shown.push_str(&format!("# parse warning: {w}\n"));
            }
            for target in [Target::V2, Target::V1, Target::Stack] {
                let out = render(&spec, &cx, target);
                shown.push_str(&format!("# ---- target {target:?}\n"));
                for w in &out.warnings {
                    shown.push_str(&format!("# warning: {w}\n"));
                }
                for e in &out.errors {
                    shown.push_str(&format!("# error: {e}\n"));
                }
                shown.push_str(&out.yaml());
            }
            insta::assert_snapshot!(shown);
        });
    }

    #[test]
    fn templates_render() {
        insta::glob!("../../templates", "*/kata-compose.yaml", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let (out, warnings) = render_fixture(&text, "demo", Target::V2);
            let mut shown = format!("# warnings: {warnings:#?}\n");
            shown.push_str(&out.yaml());
            insta::assert_snapshot!(shown);
        });
    }

    #[test]
    fn restart_is_checked_once_expanded() {
        let text =
            "services:\n  web:\n    image: x\n    restart: ${RESTART_POLICY:-unless-stopped}\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(out.compose["services"]["web"]["restart"], "unless-stopped");
        assert!(out.errors.is_empty());
        let text = "environment:\n  RESTART_POLICY: sometimes\nservices:\n  web:\n    image: x\n    restart: ${RESTART_POLICY:-unless-stopped}\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].pos.unwrap().line, 6);
    }

    #[test]
    fn writable_relative_directories_live_beside_the_data_directory() {
        let text = "services:\n  web:\n    image: x\n    restart: always\n    volumes:\n      - ./data:/d\n      - ./conf:/c:ro\n      - ./.htpasswd:/etc/htpasswd\n      - ./a/../b/./c:/e\n      - .:/src\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(
            out.compose["services"]["web"]["volumes"],
            json!([
                "/home/kata/data/.mounts/demo/data:/d",
                "./conf:/c:ro",
                "./.htpasswd:/etc/htpasswd",
                "/home/kata/data/.mounts/demo/b/c:/e",
                ".:/src"
            ])
        );
        let positions: Vec<u64> = out.warnings.iter().map(|w| w.pos.unwrap().line).collect();
        assert_eq!(positions, vec![6, 8, 9, 10], "{:?}", out.warnings);
        assert_eq!(
            out.seeds,
            vec![
                (
                    "data".to_owned(),
                    "/home/kata/data/.mounts/demo/data".into()
                ),
                ("b/c".to_owned(), "/home/kata/data/.mounts/demo/b/c".into())
            ]
        );
        // one writable mount inside another is refused
        let text = "services:\n  web:\n    image: x\n    restart: always\n    volumes:\n      - ./a:/a\n      - ./b:/b\n  w2:\n    image: x\n    restart: always\n    volumes:\n      - ./a/b:/ab\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert_eq!(out.errors[0].pos.unwrap().line, 12);
        assert!(
            out.errors[0].message.contains("one holds the other"),
            "{:?}",
            out.errors
        );
    }

    #[test]
    fn relative_mounts_that_escape_the_checkout_are_refused() {
        let text = "services:\n  web:\n    image: x\n    volumes: [\"../../etc:/x\"]\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(out.errors[0].message.contains("outside"));
    }

    #[test]
    fn rendering_is_deterministic() {
        let text = std::fs::read_to_string("tests/fixtures/spec/edge-cases.yaml").unwrap();
        let a = render_fixture(&text, "demo", Target::V2).0.yaml();
        for _ in 0..5 {
            assert_eq!(render_fixture(&text, "demo", Target::V2).0.yaml(), a);
        }
    }

    #[test]
    fn config_file_values_are_literal_and_service_keys_win() {
        let text = "environment:\n  SECRET: top\n  A: top\nservices:\n  web:\n    image: x\n    environment:\n      A: svc\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        let env = &out.compose["services"]["web"]["environment"];
        assert_eq!(env["SECRET"], "from $$config file");
        assert_eq!(env["A"], "svc");
        assert_eq!(env["PUID"], "1000");
        assert_eq!(env["DATA_ROOT"], "/home/kata/data/demo");
    }

    #[test]
    fn user_volumes_merge_with_kata_bind_mounts() {
        let text = "services:\n  web:\n    runtime: python\n    volumes: [\"db:/var/lib/db\", \"./conf:/app\"]\nvolumes:\n  db: {}\n";
        let (out, _) = render_fixture(text, "demo", Target::V2);
        let vols = &out.compose["volumes"];
        assert!(vols.get("db").is_some(), "user volume kept");
        assert_eq!(
            vols["data"]["driver_opts"]["device"],
            "/home/kata/data/demo"
        );
        assert!(
            vols.get("app").is_none(),
            "user mounts /app itself, so kata's app volume is unused"
        );
        let svc_vols = out.compose["services"]["web"]["volumes"]
            .as_array()
            .unwrap();
        assert!(svc_vols.contains(&serde_json::json!("data:/data")));
        assert!(!svc_vols.contains(&serde_json::json!("app:/app")));
    }

    #[test]
    fn instances_become_replicas_per_target() {
        let text = "services:\n  web:\n    image: x\n    instances: 3\n    restart: always\n    depends_on:\n      db: {condition: service_started}\n  db:\n    image: y\n";
        let (v2, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(v2.compose["services"]["web"]["deploy"]["replicas"], 3);
        assert_eq!(v2.compose["name"], "demo");
        let (v1, _) = render_fixture(text, "demo", Target::V1);
        assert_eq!(v1.compose["services"]["web"]["scale"], 3);
        assert!(v1.compose.get("name").is_none());
        let (st, _) = render_fixture(text, "demo", Target::Stack);
        assert_eq!(st.compose["services"]["web"]["deploy"]["replicas"], 3);
        assert_eq!(
            st.compose["services"]["web"]["deploy"]["restart_policy"]["condition"],
            "any"
        );
        assert_eq!(
            st.compose["services"]["web"]["depends_on"],
            serde_json::json!(["db"])
        );
        assert!(st.compose["services"]["web"].get("restart").is_none());
    }

    #[test]
    fn runtime_services_run_as_puid_unless_they_say_otherwise() {
        let text = "services:\n  web:\n    runtime: python\n  root:\n    runtime: python\n    user: \"0\"\n  db:\n    image: x\n";
        for target in [Target::V2, Target::V1, Target::Stack] {
            let (out, _) = render_fixture(text, "demo", target);
            let s = &out.compose["services"];
            assert_eq!(s["web"]["user"], "1000:1000");
            assert_eq!(s["root"]["user"], "0");
            assert!(s["db"].get("user").is_none(), "an image keeps its own user");
        }
    }

    #[test]
    fn swarm_host_mode_ports_update_stop_first() {
        let text = "services:\n  web:\n    image: x\n    ports:\n      - {target: 80, published: 8080, mode: host}\n  api:\n    image: x\n    ports: [\"8081:80\"]\n  own:\n    image: x\n    ports:\n      - {target: 80, published: 8082, mode: host}\n    deploy:\n      update_config: {order: start-first}\n";
        let (out, _) = render_fixture(text, "demo", Target::Stack);
        let s = &out.compose["services"];
        assert_eq!(s["web"]["deploy"]["update_config"]["order"], "stop-first");
        assert_eq!(s["api"]["deploy"]["update_config"]["order"], "start-first");
        assert_eq!(s["own"]["deploy"]["update_config"]["order"], "start-first");
        assert_eq!(
            out.warnings
                .iter()
                .filter(|w| w.message.contains("mode: host"))
                .count(),
            1,
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn routed_services_publish_their_loopback_block() {
        let text = "services:\n  web:\n    image: a\n    restart: always\n    ports: [\"8443:443\"]\n  db:\n    image: b\n    restart: always\n";
        let ports = crate::ports::AppPorts {
            blocks: [
                ("web:8000", 20000, 2),
                ("web:9000", 20002, 6),
                ("gone:1", 20008, 2),
            ]
            .into_iter()
            .map(|(k, first, len)| (k.to_owned(), crate::ports::Block { first, len }))
            .collect(),
        };
        for target in [Target::V1, Target::V2] {
            let (mut out, _) = render_fixture(text, "shop", target);
            publish_routes(&mut out.compose, &ports);
            // twice changes nothing (a redeploy of the same plan)
            publish_routes(&mut out.compose, &ports);
            assert!(out.compose["services"]["db"].get("ports").is_none());
            insta::assert_snapshot!(
                format!("ports_{target:?}"),
                to_yaml(&out.compose["services"]["web"]["ports"])
            );
        }
    }

    /// compose v2 gives the container `deploy.restart_policy` over
    /// `restart:` (measured: `on-failure` with `max_attempts: 3` runs as
    /// on-failure:3, `condition: none` beside `restart: always` as no).
    #[test]
    fn deploy_restart_policy_is_the_policy_on_every_target() {
        let text = "services:\n  web:\n    image: x\n    deploy:\n      restart_policy: {condition: on-failure, max_attempts: 3}\n  job:\n    image: x\n    restart: always\n    deploy:\n      restart_policy: {condition: none}\n";
        let (v2, _) = render_fixture(text, "demo", Target::V2);
        let s = &v2.compose["services"];
        assert!(s["web"].get("restart").is_none(), "the policy applies");
        assert_eq!(s["job"]["restart"], "always", "as written");
        assert!(v2.warnings.is_empty(), "{:?}", v2.warnings);
        let (v1, _) = render_fixture(text, "demo", Target::V1);
        let s = &v1.compose["services"];
        assert_eq!(s["web"]["restart"], "on-failure:3");
        assert_eq!(s["job"]["restart"], "no");
        let restart_warnings: Vec<u64> = v1
            .warnings
            .iter()
            .filter(|w| w.message.contains("applies `deploy.restart_policy`"))
            .map(|w| w.pos.unwrap().line)
            .collect();
        assert_eq!(restart_warnings, vec![8], "{:?}", v1.warnings);
        let (st, _) = render_fixture(text, "demo", Target::Stack);
        let s = &st.compose["services"];
        assert_eq!(s["job"]["deploy"]["restart_policy"]["condition"], "none");
        assert_eq!(s["web"]["deploy"]["restart_policy"]["max_attempts"], 3);
    }

    #[test]
    fn swarm_drops_container_name_and_runtime_with_a_warning() {
        let text = "services:\n  web:\n    image: x\n    restart: always\n    container_name: fixed\n    runtime: runc\n";
        let (st, _) = render_fixture(text, "demo", Target::Stack);
        let web = &st.compose["services"]["web"];
        assert!(
            web.get("container_name").is_none() && web.get("runtime").is_none(),
            "{web}"
        );
        let dropped: Vec<(u64, &str)> = st
            .warnings
            .iter()
            .filter(|w| w.message.contains("not supported by docker stack deploy"))
            .map(|w| (w.pos.unwrap().line, w.message.as_str()))
            .collect();
        assert_eq!(
            dropped,
            vec![
                (
                    6,
                    "`services.web.runtime` is not supported by docker stack deploy (swarm has no per-service OCI runtime); dropped"
                ),
                (
                    5,
                    "`services.web.container_name` is not supported by docker stack deploy; dropped"
                ),
            ],
            "{:?}",
            st.warnings
        );
        let (v2, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(v2.compose["services"]["web"]["container_name"], "fixed");
    }

    #[test]
    fn env_file_entries_become_paths_for_v1_and_swarm() {
        let text = "services:\n  web:\n    image: x\n    restart: always\n    env_file:\n      - path: ./default.env\n        required: true\n      - path: ./override.env\n        required: false\n      - plain.env\n      - path: ./raw.env\n        format: raw\n";
        let (v2, _) = render_fixture(text, "demo", Target::V2);
        assert_eq!(
            v2.compose["services"]["web"]["env_file"][1],
            json!({"path": "./override.env", "required": false})
        );
        for target in [Target::V1, Target::Stack] {
            let (out, _) = render_fixture(text, "demo", target);
            assert_eq!(
                out.compose["services"]["web"]["env_file"],
                json!(["./default.env", "./override.env", "plain.env", "./raw.env"])
            );
            // only the optional file and the raw one change meaning
            let lines: Vec<u64> = out
                .warnings
                .iter()
                .filter(|w| w.message.contains("env_file"))
                .map(|w| w.pos.unwrap().line)
                .collect();
            assert_eq!(lines, vec![8, 12], "{:?}", out.warnings);
        }
    }

    #[test]
    fn yaml_11_lookalikes_are_quoted_for_compose_v1() {
        let text = "services:\n  web:\n    image: x\n    environment:\n      A: \"yes\"\n      B: \"on\"\n      C: \"22:22\"\n      D: \"0777\"\n      E: \"null\"\n";
        let yaml = render_fixture(text, "demo", Target::V1).0.yaml();
        for line in [
            "A: \"yes\"",
            "B: \"on\"",
            "C: \"22:22\"",
            "D: \"0777\"",
            "E: \"null\"",
        ] {
            assert!(yaml.contains(line), "{line} missing in\n{yaml}");
        }
    }
}
