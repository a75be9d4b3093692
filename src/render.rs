//! Render an [`AppSpec`] into the compose file for one target. Pure: the
//! caller supplies paths, the ENV file's contents and the uid/gid.

use crate::env;
use crate::envfile::Env;
use crate::expand::expand;
use crate::paths::Paths;
use crate::spec::{AppSpec, Health, KATA_VOLUMES, Runtime, Service};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// docker compose v2
    V2,
    /// docker-compose 1.29
    V1,
    /// docker stack deploy
    Stack,
}

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
    pub warnings: Vec<String>,
}

impl Rendered {
    /// The YAML text, byte-for-byte deterministic for the same inputs.
    pub fn yaml(&self) -> String {
        to_yaml(&self.compose)
    }
}

pub fn to_yaml(doc: &Json) -> String {
    serde_saphyr::to_string(doc).expect("a JSON value always serialises to YAML")
}

pub fn render(spec: &AppSpec, cx: &Context, target: Target) -> Rendered {
    let mut warnings = vec![];
    let base = env::base(cx.app, cx.paths, cx.puid, cx.pgid);
    let file = env::literal_layer(cx.config_env);
    let global = env::resolve(&env::layer([
        base.as_slice(),
        spec.environment.as_slice(),
        file.as_slice(),
    ]));

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
        let senv = env::resolve(&env::layer([
            base.as_slice(),
            spec.environment.as_slice(),
            file.as_slice(),
            svc.environment.as_slice(),
        ]));
        let mut out = render_service(cx, name, svc, &senv, target, &mut warnings);
        if !spec.volumes.contains_key("config")
            && let Some(Json::Array(vols)) = out.get_mut("volumes")
        {
            vols.iter_mut().for_each(config_read_only);
        }
        if target == Target::Stack {
            swarm_rollout(&mut out, name, svc, &routed, &mut warnings);
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

    let lookup = env::lookup(&global);
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
                let src = crate::release::src(cx.paths, cx.app, n);
                vol["name"] = json!(format!("{}_app_r{n}", cx.app));
                vol["driver_opts"]["device"] =
                    json!(crate::expand::escape(&src.display().to_string()));
            }
            volumes.insert(name.into(), vol);
        }
    }
    for (name, v) in &spec.volumes {
        if KATA_VOLUMES.contains(&name.as_str()) {
            warnings.push(format!(
                "top-level volume `{name}` replaces kata's bind mount of the same name"
            ));
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

    let caddy = spec
        .caddy
        .as_ref()
        .map(|n| expand_json(&n.to_json(), &lookup));
    Rendered {
        compose: Json::Object(doc),
        caddy,
        env: envs,
        warnings,
    }
}

fn render_service(
    cx: &Context,
    name: &str,
    svc: &Service,
    senv: &IndexMap<String, String>,
    target: Target,
    warnings: &mut Vec<String>,
) -> Map<String, Json> {
    let lookup = env::lookup(senv);
    let x = |v: &Json| expand_json(v, &lookup);
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
            out.insert("image".into(), json!(expand(img, &lookup)));
        }
        (None, None) => {}
    }
    for key in ["build", "command", "entrypoint"] {
        if let Some(v) = svc.extra.get(key) {
            if key == "build" && target == Target::Stack {
                warnings.push(format!(
                    "services.{name}.build is not supported by docker stack deploy; dropped"
                ));
                continue;
            }
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
        environment.insert("KATA_STATIC_ROOT".into(), json!(expand(root, &lookup)));
    }
    out.insert("environment".into(), Json::Object(environment));

    if let Some(v) = svc.extra.get("ports") {
        out.insert("ports".into(), x(v));
    }

    let mut volumes: Vec<Json> = vec![];
    let user_volumes: Vec<Json> = svc
        .extra
        .get("volumes")
        .map(x)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
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
    match svc.extra.get("restart").and_then(Json::as_str) {
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
        Some(r) => {
            out.insert("restart".into(), json!(r));
        }
        None if target != Target::Stack => {
            // A PaaS app comes back after a crash or a host reboot.
            out.insert("restart".into(), json!("unless-stopped"));
        }
        None => {}
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
    ];
    for (k, v) in &svc.extra {
        if HANDLED.contains(&k.as_str()) {
            continue;
        }
        if target == Target::Stack && matches!(k.as_str(), "container_name" | "scale") {
            warnings.push(format!(
                "services.{name}.{k} is not supported by docker stack deploy; dropped"
            ));
            continue;
        }
        out.insert(k.clone(), x(v));
    }
    if deploy.as_object().is_some_and(|m| !m.is_empty()) {
        if target == Target::V1 {
            warnings.push(format!(
                "services.{name}.deploy is ignored by docker-compose 1.x"
            ));
        }
        out.insert("deploy".into(), deploy);
    }
    out
}

/// Services whose containers run the pushed code: runtime services and those
/// compose builds from the checkout.
pub fn runs_app_code(svc: &Service) -> bool {
    svc.runtime.is_some() || svc.extra.contains_key("build")
}

/// The container-side path of a service volume entry.
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
    warnings: &mut Vec<String>,
) {
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
            warnings.push(format!(
                "services.{name} publishes a port in mode: host, so its updates stop the old task before starting the new one (a short gap)"
            ));
        }
        d.entry("update_config").or_insert_with(
            || json!({"order": order, "failure_action": "rollback", "monitor": "10s"}),
        );
        d.entry("rollback_config")
            .or_insert_with(|| json!({"order": order}));
    }
    if let Some(Health::Http(check)) = &svc.health {
        let port = routed.iter().find(|(s, _)| s == name).map(|(_, p)| *p);
        match crate::health::gate_for(name, svc, port) {
            Ok(crate::health::Gate::Http { check: c, port }) => {
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
            Err(e) => warnings.push(e),
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
        insta::glob!("../tests/fixtures/spec", "*.yaml", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            for (target, tag) in [
                (Target::V2, "v2"),
                (Target::V1, "v1"),
                (Target::Stack, "stack"),
            ] {
                let (out, mut warnings) = render_fixture(&text, "demo", target);
                warnings.extend(out.warnings.iter().cloned());
                let mut shown = format!("# warnings: {warnings:#?}\n");
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

    #[test]
    fn templates_render() {
        insta::glob!("../templates", "*/kata-compose.yaml", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let (out, warnings) = render_fixture(&text, "demo", Target::V2);
            let mut shown = format!("# warnings: {warnings:#?}\n");
            shown.push_str(&out.yaml());
            insta::assert_snapshot!(shown);
        });
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
                .filter(|w| w.contains("mode: host"))
                .count(),
            1,
            "{:?}",
            out.warnings
        );
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
