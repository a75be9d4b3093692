//! The kata-compose.yaml model: parse a spanned YAML tree into an [`AppSpec`],
//! collecting every error and warning with its line and column. Nothing here
//! touches the disk or expands variables; `render` does the latter.

use crate::model::Mode;
use crate::names;
use crate::yaml::{self, Node, Pos, Value};
use indexmap::IndexMap;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One finding about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub pos: Option<Pos>,
    pub message: String,
}

impl Diag {
    pub fn at(n: &Node, message: impl Into<String>) -> Diag {
        Diag {
            pos: Some(n.pos),
            message: message.into(),
        }
    }
    /// `file:line:column: message` (or `file: message` without a position).
    pub fn display<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct D<'a>(&'a Diag, &'a str);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0.pos {
                    Some(p) if p.line > 0 => write!(f, "{}:{}: {}", self.1, p, self.0.message),
                    _ => write!(f, "{}: {}", self.1, self.0.message),
                }
            }
        }
        D(self, file)
    }
}

/// Shown as in a deploy, where the file is always `kata-compose.yaml`.
impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display("kata-compose.yaml").fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    Python,
    Nodejs,
    Go,
    Static,
}

impl Runtime {
    pub const ALL: [Runtime; 4] = [
        Runtime::Python,
        Runtime::Nodejs,
        Runtime::Go,
        Runtime::Static,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Nodejs => "nodejs",
            Runtime::Go => "go",
            Runtime::Static => "static",
        }
    }
    pub fn parse(s: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.as_str() == s)
    }
    /// The image kata builds for this runtime.
    pub fn image(self) -> String {
        format!("kata/{}", self.as_str())
    }
}

/// kata's own health check, run from the host against each new container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpCheck {
    pub path: String,
    pub port: Option<u16>,
    pub status: u16,
    pub timeout_secs: u64,
    pub interval_secs: u64,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// `healthcheck: {path: /health, ...}`: checked by kata from the host.
    Http(HttpCheck),
    /// A compose `healthcheck:` (`test:` ...), passed through as written.
    Compose(Json),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Service {
    pub runtime: Option<Runtime>,
    pub image: Option<String>,
    /// For `type: static`: the directory (relative to the app) to serve.
    pub static_root: Option<String>,
    /// As written; a key without a value (`- KEY`, `KEY:`) is "" here and
    /// listed in `inherit_env`.
    pub environment: Vec<(String, String)>,
    /// Keys written without a value: like compose reading them from `.env`,
    /// they take the value the app's environment layers give them (empty
    /// when nothing sets them).
    pub inherit_env: Vec<String>,
    pub depends_on: Vec<String>,
    /// Long-form `depends_on` as written (conditions), for compose targets.
    pub depends_on_long: Option<Json>,
    pub health: Option<Health>,
    pub instances: Option<u32>,
    /// Every other compose key, in file order, as written (not yet expanded).
    pub extra: IndexMap<String, Json>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppSpec {
    /// `app.name`: informational; the git remote names the app.
    pub app_name: Option<String>,
    pub environment: Vec<(String, String)>,
    /// Top-level keys written without a value (see [`Service::inherit_env`]).
    pub inherit_env: Vec<String>,
    /// `build.commands`: run by the runtime before the app starts.
    pub build_commands: Vec<String>,
    pub services: IndexMap<String, Service>,
    pub volumes: IndexMap<String, Json>,
    pub networks: IndexMap<String, Json>,
    pub secrets: IndexMap<String, Json>,
    pub configs: IndexMap<String, Json>,
    /// Top-level `x-*` keys other than `x-kata-mode`.
    pub extensions: IndexMap<String, Json>,
    /// The `caddy:` server object, still as YAML (for positions).
    pub caddy: Option<Node>,
    pub mode: Option<Mode>,
    /// The whole file as parsed: where render-time findings point.
    pub source: Node,
}

/// The result of reading a file: the model (when the file is usable) plus
/// every error and warning found.
#[derive(Debug, Default)]
pub struct Parsed {
    pub spec: Option<AppSpec>,
    pub errors: Vec<Diag>,
    pub warnings: Vec<Diag>,
}

/// Volume names kata declares itself as bind mounts.
pub const KATA_VOLUMES: [&str; 4] = ["app", "config", "data", "venv"];

/// Compose service keys passed through as written.
pub const COMPOSE_SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "hostname",
    "init",
    "ipc",
    "isolation",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

const MODELS_WHY: &str = "kata runs no AI models for compose";

/// compose v2's service keys that kata leaves out, and why.
const NOT_SUPPORTED: &[(&str, &str)] = &[
    (
        "label_file",
        "kata reads no label files: write the labels under `labels:`",
    ),
    (
        "use_api_socket",
        "kata gives no container the Docker engine's socket or credentials",
    ),
    ("models", MODELS_WHY),
    (
        "provider",
        "kata runs no provider services: give the service an `image:`",
    ),
];

/// Service keys that compose v2, docker-compose 1.x and swarm all refuse
/// unless they are strings (`user: 1000` included: measured).
const STRING_KEYS: &[&str] = &[
    "user",
    "hostname",
    "domainname",
    "working_dir",
    "stop_signal",
    "ipc",
    "pid",
    "cgroup_parent",
    "network_mode",
    "container_name",
    "userns_mode",
    "isolation",
    "mac_address",
    "platform",
];

struct Ctx {
    errors: Vec<Diag>,
    warnings: Vec<Diag>,
}

impl Ctx {
    fn err(&mut self, n: &Node, msg: impl Into<String>) {
        self.errors.push(Diag::at(n, msg));
    }
    fn warn(&mut self, n: &Node, msg: impl Into<String>) {
        self.warnings.push(Diag::at(n, msg));
    }
    fn map<'a>(&mut self, n: &'a Node, path: &str) -> Option<&'a IndexMap<String, Node>> {
        match &n.value {
            Value::Map(m) => Some(m),
            _ => {
                self.err(n, format!("`{path}` must be a mapping, found {}", n.kind()));
                None
            }
        }
    }
    fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => n.scalar_string(),
            _ => {
                self.err(n, format!("`{path}` must be a string, found {}", n.kind()));
                None
            }
        }
    }
}

/// [`parse`] for a file as read: text that is not UTF-8 is an error at the
/// first byte that is not.
pub fn parse_bytes(bytes: &[u8]) -> Parsed {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => {
            let before = String::from_utf8_lossy(&bytes[..e.valid_up_to()]);
            let line = before.matches('\n').count() as u64 + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
            Parsed {
                errors: vec![Diag {
                    pos: Some(Pos { line, column }),
                    message: "the file is not UTF-8 text (save it as UTF-8)".into(),
                }],
                ..Parsed::default()
            }
        }
    }
}

/// Parses and validates `text`. Never panics, whatever the input.
pub fn parse(text: &str) -> Parsed {
    let mut root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            return Parsed {
                errors: vec![Diag {
                    pos: e.pos,
                    message: e.message,
                }],
                ..Parsed::default()
            };
        }
    };
    let mut cx = Ctx {
        errors: crate::extends::resolve(&mut root, &crate::extends::tagged_lines(text)),
        warnings: vec![],
    };
    let mut spec = parse_root(&mut cx, &root);
    if let Some(spec) = &mut spec {
        check_references(&mut cx, spec, &root);
        mark_one_shot_jobs(spec);
        spec.source = root;
    }
    Parsed {
        spec: if cx.errors.is_empty() { spec } else { None },
        errors: cx.errors,
        warnings: cx.warnings,
    }
}

fn parse_root(cx: &mut Ctx, root: &Node) -> Option<AppSpec> {
    if matches!(root.value, Value::Null) {
        cx.err(
            root,
            "the file is empty: it needs at least a `services:` mapping",
        );
        return None;
    }
    let top = cx.map(root, "(top level)")?;
    let mut spec = AppSpec::default();
    let mut default_runtime = None;
    for (key, n) in top {
        match key.as_str() {
            "version" => cx.warn(n, "`version` is obsolete and ignored"),
            "name" => cx.warn(n, "`name` is ignored: the app is named by its git remote"),
            "app" => {
                if let Some(m) = cx.map(n, "app") {
                    for (k, v) in m {
                        match k.as_str() {
                            "name" => {
                                spec.app_name = cx.string(v, "app.name");
                                if let Some(Err(e)) = spec.app_name.as_deref().map(names::app_name)
                                {
                                    cx.err(v, format!("`app.name`: {e}"));
                                    spec.app_name = None;
                                }
                            }
                            "runtime" => default_runtime = parse_runtime(cx, v, "app.runtime"),
                            other => cx.warn(v, format!("unknown key `app.{other}` ignored")),
                        }
                    }
                }
            }
            "environment" => (spec.environment, spec.inherit_env) = parse_env(cx, n, "environment"),
            "build" => {
                if let Some(m) = cx.map(n, "build") {
                    for (k, v) in m {
                        match k.as_str() {
                            "commands" => {
                                spec.build_commands = string_list(cx, v, "build.commands")
                            }
                            other => cx.warn(v, format!("unknown key `build.{other}` ignored")),
                        }
                    }
                }
            }
            "services" => {}
            // compose would add the other files' services: without them the
            // app would deploy incomplete
            "include" => cx.err(
                n,
                "`include` is not supported: kata reads one compose file, so write the included services into this one",
            ),
            "volumes" => spec.volumes = passthrough_map(cx, n, "volumes"),
            "networks" => spec.networks = passthrough_map(cx, n, "networks"),
            "secrets" => spec.secrets = passthrough_map(cx, n, "secrets"),
            "configs" => spec.configs = passthrough_map(cx, n, "configs"),
            "caddy" => {
                spec.caddy = Some(n.clone());
                for issue in crate::caddy::validate(n) {
                    cx.errors.push(Diag {
                        pos: Some(issue.pos),
                        message: format!("`{}`: {}", issue.path, issue.message),
                    });
                }
            }
            "x-kata-mode" => match n.as_str().and_then(Mode::parse) {
                Some(m) => spec.mode = Some(m),
                None => cx.err(n, "`x-kata-mode` must be `compose` or `swarm`"),
            },
            k if k.starts_with("x-") => {
                spec.extensions.insert(k.to_owned(), n.to_json());
            }
            "models" => cx.warn(
                n,
                format!("`models` is compose's, but kata does not support it; ignored: {}", MODELS_WHY),
            ),
            other => cx.warn(n, format!("unknown top-level key `{other}` ignored")),
        }
    }
    match top.get("services") {
        None => cx.errors.push(Diag {
            pos: Some(root.pos),
            message: "missing `services:`: declare at least one service".into(),
        }),
        Some(n) => {
            if let Some(m) = cx.map(n, "services") {
                if m.is_empty() {
                    cx.err(n, "`services` is empty: declare at least one service");
                }
                for (name, sn) in m {
                    if let Err(e) = names::service_name(name) {
                        cx.err(sn, e.to_string());
                        continue;
                    }
                    if let Some(svc) = parse_service(cx, name, sn, default_runtime) {
                        spec.services.insert(name.clone(), svc);
                    }
                }
            }
        }
    }
    Some(spec)
}

fn parse_runtime(cx: &mut Ctx, n: &Node, path: &str) -> Option<Runtime> {
    let s = cx.string(n, path)?;
    let r = Runtime::parse(&s);
    if r.is_none() {
        let known: Vec<_> = Runtime::ALL.iter().map(|r| r.as_str()).collect();
        cx.err(
            n,
            format!(
                "unknown runtime {s:?} in `{path}` (known: {})",
                known.join(", ")
            ),
        );
    }
    r
}

fn passthrough_map(cx: &mut Ctx, n: &Node, path: &str) -> IndexMap<String, Json> {
    if matches!(n.value, Value::Null) {
        return IndexMap::new();
    }
    let Some(m) = cx.map(n, path) else {
        return IndexMap::new();
    };
    m.iter()
        .map(|(k, v)| {
            if !matches!(v.value, Value::Null | Value::Map(_)) {
                cx.err(
                    v,
                    format!(
                        "`{path}.{k}` must be a mapping or empty, found {}",
                        v.kind()
                    ),
                );
            }
            (k.clone(), v.to_json())
        })
        .collect()
}

fn string_list(cx: &mut Ctx, n: &Node, path: &str) -> Vec<String> {
    match &n.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| cx.string(it, &format!("{path}[{i}]")))
            .collect(),
        Value::Str(s) => vec![s.clone()],
        _ => {
            cx.err(
                n,
                format!("`{path}` must be a list of strings, found {}", n.kind()),
            );
            vec![]
        }
    }
}

/// `environment:` as a mapping (`K: v`) or a list (`K=v`); a key without a
/// value (`- K`, `K:`) is "" and listed second.
fn parse_env(cx: &mut Ctx, n: &Node, path: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut out: Vec<(String, String)> = vec![];
    let mut bare: Vec<String> = vec![];
    let mut push = |cx: &mut Ctx, at: &Node, k: &str, v: Option<String>| {
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c == '=') {
            cx.err(at, format!("invalid variable name {k:?} in `{path}`"));
            return;
        }
        out.retain(|(key, _)| key != k);
        bare.retain(|key| key != k);
        if v.is_none() {
            bare.push(k.to_owned());
        }
        out.push((k.to_owned(), v.unwrap_or_default()));
    };
    match &n.value {
        Value::Null => {}
        Value::Map(m) => {
            for (k, v) in m {
                match v.scalar_string() {
                    Some(_) if matches!(v.value, Value::Null) => push(cx, v, k, None),
                    Some(s) => push(cx, v, k, Some(s)),
                    None => cx.err(
                        v,
                        format!("`{path}.{k}` must be a scalar, found {}", v.kind()),
                    ),
                }
            }
        }
        Value::Seq(items) => {
            for it in items {
                match it.as_str() {
                    Some(s) => match s.split_once('=') {
                        Some((k, v)) => push(cx, it, k, Some(v.to_owned())),
                        None => push(cx, it, s, None),
                    },
                    None => cx.err(
                        it,
                        format!(
                            "`{path}` list entries must be strings like KEY=value, found {}",
                            it.kind()
                        ),
                    ),
                }
            }
        }
        _ => cx.err(
            n,
            format!("`{path}` must be a mapping or a list, found {}", n.kind()),
        ),
    }
    (out, bare)
}

fn parse_service(
    cx: &mut Ctx,
    name: &str,
    n: &Node,
    default_runtime: Option<Runtime>,
) -> Option<Service> {
    let p = format!("services.{name}");
    if matches!(n.value, Value::Null) {
        cx.err(
            n,
            format!("`{p}` is empty: give it an `image:` or a `runtime:`"),
        );
        return None;
    }
    let m = cx.map(n, &p)?;
    check_durations(cx, n, &p);
    let mut svc = Service::default();
    // compose's own `runtime:` names an OCI runtime (runc, nvidia,
    // io.containerd.wasmedge.v1) for a service with an image or a build.
    let oci_runtime = m.get("runtime").filter(|v| {
        (m.contains_key("image") || m.contains_key("build"))
            && v.as_str().is_some_and(|s| Runtime::parse(s).is_none())
    });
    for (key, v) in m {
        let kp = format!("{p}.{key}");
        match key.as_str() {
            "runtime" if oci_runtime.is_some() => {
                svc.extra.insert(key.clone(), v.to_json());
            }
            "runtime" => svc.runtime = parse_runtime(cx, v, &kp),
            "image" => svc.image = cx.string(v, &kp),
            "type" => match v.as_str() {
                Some("static") => svc.runtime = Some(Runtime::Static),
                _ => cx.err(v, format!("`{kp}` must be `static`")),
            },
            "root" => svc.static_root = cx.string(v, &kp),
            "environment" => (svc.environment, svc.inherit_env) = parse_env(cx, v, &kp),
            "depends_on" => parse_depends_on(cx, v, &kp, &mut svc),
            "healthcheck" => svc.health = parse_health(cx, v, &kp),
            "instances" => match &v.value {
                Value::Int(i) if (0..=1000).contains(i) => svc.instances = Some(*i as u32),
                _ => cx.err(v, format!("`{kp}` must be a whole number from 0 to 1000")),
            },
            "restart" => {
                // `${RESTART_POLICY:-unless-stopped}` is checked once expanded.
                let ok = v
                    .as_str()
                    .is_some_and(|s| restart_policy_ok(s) || crate::expand::has_reference(s));
                if ok {
                    svc.extra.insert(key.clone(), v.to_json());
                } else {
                    cx.err(
                        v,
                        format!("`{kp}` must be one of no, always, on-failure[:N], unless-stopped"),
                    );
                }
            }
            "ports" | "volumes" | "networks" | "secrets" | "configs" | "labels" | "command"
            | "entrypoint" => {
                check_shape(cx, key, v, &kp);
                svc.extra.insert(key.clone(), v.to_json());
            }
            k if STRING_KEYS.contains(&k) && !matches!(v.value, Value::Str(_) | Value::Null) => {
                let hint = v
                    .scalar_string()
                    .map(|s| format!(": compose refuses it unquoted (write `{k}: \"{s}\"`)"))
                    .unwrap_or_default();
                cx.err(
                    v,
                    format!("`{kp}` must be a string, found {}{hint}", v.kind()),
                );
            }
            k if COMPOSE_SERVICE_KEYS.contains(&k) || k.starts_with("x-") => {
                svc.extra.insert(key.clone(), v.to_json());
            }
            k if let Some((_, why)) = NOT_SUPPORTED.iter().find(|(u, _)| *u == k) => {
                cx.warn(
                    v,
                    format!("`{kp}` is compose's, but kata does not support it; ignored: {why}"),
                );
            }
            other => cx.warn(v, format!("unknown key `{p}.{other}` ignored")),
        }
    }
    if svc.static_root.is_some() && svc.runtime != Some(Runtime::Static) {
        cx.warn(
            n,
            format!("`{p}.root` only applies to `type: static` services; ignored"),
        );
    }
    if svc.runtime.is_some() && svc.image.is_some() {
        cx.err(n, format!("`{p}` has both `runtime` and `image`: use one"));
    }
    if svc.runtime.is_none() && svc.image.is_none() {
        if svc.extra.contains_key("build") || m.contains_key("runtime") || m.contains_key("extends")
        {
            // compose builds it from the checkout, or the runtime or the
            // `extends` (left only when it could not be resolved) was
            // already reported
        } else if let Some(r) = default_runtime {
            svc.runtime = Some(r);
        } else if let Some(r) = runtime_from_command(svc.extra.get("command")) {
            cx.warn(
                n,
                format!(
                    "`{p}` has no `image` or `runtime`; using runtime `{}` for its command",
                    r.as_str()
                ),
            );
            svc.runtime = Some(r);
        } else {
            cx.err(n, format!("`{p}` has neither `image` nor `runtime` (add `runtime: python|nodejs|go|static` or `image: NAME`)"));
        }
    }
    Some(svc)
}

/// A compose `restart:` value.
pub fn restart_policy_ok(s: &str) -> bool {
    matches!(s, "no" | "always" | "on-failure" | "unless-stopped")
        || s.strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Services others wait for with `condition: service_completed_successfully`
/// are one-shot jobs (migrations, setup): compose runs them once, so with no
/// `restart:` of their own they get compose's default, `no`, written out
/// (kata adds `unless-stopped` only to long-running services).
fn mark_one_shot_jobs(spec: &mut AppSpec) {
    let jobs: BTreeSet<String> = spec
        .services
        .values()
        .filter_map(|s| s.depends_on_long.as_ref()?.as_object())
        .flat_map(|m| m.iter())
        .filter(|(_, c)| {
            c.get("condition").and_then(Json::as_str) == Some("service_completed_successfully")
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in jobs {
        if let Some(svc) = spec.services.get_mut(&name) {
            svc.extra
                .entry("restart".to_owned())
                .or_insert_with(|| Json::String("no".into()));
        }
    }
}

/// `deploy.restart_policy` as the `restart:` value it means: compose v2
/// gives it to the container, over the service's own `restart:`.
pub fn restart_of_policy(deploy: Option<&Json>) -> Option<String> {
    let p = deploy?.get("restart_policy")?.as_object()?;
    Some(match p.get("condition").and_then(Json::as_str) {
        Some("none") => "no".into(),
        Some("on-failure") => match p.get("max_attempts").and_then(Json::as_u64) {
            Some(n) if n > 0 => format!("on-failure:{n}"),
            _ => "on-failure".into(),
        },
        _ => "always".into(),
    })
}

/// `deploy.restart_policy.condition`, when the service sets one.
fn restart_condition(svc: &Service) -> Option<&str> {
    svc.extra
        .get("deploy")?
        .get("restart_policy")?
        .get("condition")?
        .as_str()
}

/// Whether kata treats `svc` as a one-shot job: its restart policy lets it
/// exit. `deploy.restart_policy.condition` wins over `restart:`, as in
/// compose v2 and swarm.
pub fn is_one_shot(svc: &Service) -> bool {
    match restart_condition(svc) {
        Some(c) => c == "none" || c == "on-failure",
        None => {
            matches!(svc.extra.get("restart").and_then(Json::as_str), Some(r) if r == "no" || r.starts_with("on-failure"))
        }
    }
}

/// Whether `svc` is never restarted (`restart: "no"`, or a restart policy
/// of `condition: none`): swarm is done with it once its task completed.
pub fn runs_once(svc: &Service) -> bool {
    match restart_condition(svc) {
        Some(c) => c == "none",
        None => svc.extra.get("restart").and_then(Json::as_str) == Some("no"),
    }
}

/// A runtime guessed from the program a service runs (`node server.js`).
fn runtime_from_command(cmd: Option<&Json>) -> Option<Runtime> {
    let first = match cmd? {
        Json::String(s) => s.split_whitespace().next()?.to_owned(),
        Json::Array(a) => a.first()?.as_str()?.to_owned(),
        _ => return None,
    };
    let prog = first.rsplit('/').next().unwrap_or(&first);
    match prog {
        "node" | "npm" | "npx" | "yarn" => Some(Runtime::Nodejs),
        p if p.starts_with("python") => Some(Runtime::Python),
        "gunicorn" | "uvicorn" | "flask" | "celery" | "hypercorn" | "waitress-serve" => {
            Some(Runtime::Python)
        }
        _ => None,
    }
}

/// compose's durations, below a service. Every compose refuses a number or
/// a duration without a unit (`interval: 30`, `"30"`), docker-compose 1.x
/// with a traceback; kata says so at the value.
const DURATIONS: &[&[&str]] = &[
    &["healthcheck", "interval"],
    &["healthcheck", "timeout"],
    &["healthcheck", "start_period"],
    &["healthcheck", "start_interval"],
    &["stop_grace_period"],
    &["deploy", "update_config", "delay"],
    &["deploy", "update_config", "monitor"],
    &["deploy", "rollback_config", "delay"],
    &["deploy", "rollback_config", "monitor"],
    &["deploy", "restart_policy", "delay"],
    &["deploy", "restart_policy", "window"],
];

fn check_durations(cx: &mut Ctx, svc: &Node, p: &str) {
    // kata's own HTTP check (`path:`) reads its durations itself
    let kata_check = svc.get("healthcheck").and_then(|h| h.get("path")).is_some();
    for path in DURATIONS {
        if kata_check && path[0] == "healthcheck" {
            continue;
        }
        let Some(v) = path.iter().try_fold(svc, |n, step| n.get(step)) else {
            continue;
        };
        let ok = match &v.value {
            Value::Str(s) => is_duration(s) || crate::expand::has_reference(s),
            Value::Null => true,
            _ => false,
        };
        if !ok {
            let found = match &v.value {
                Value::Str(s) => format!("{s:?}"),
                _ => v.kind().to_owned(),
            };
            cx.err(
                v,
                format!("`{p}.{}` must be a duration with a unit, like 30s, 1m30s or 500ms; found {found}", path.join(".")),
            );
        }
    }
    // Byte sizes compose reads only as strings (`512M`), and option maps
    // whose values every compose refuses as booleans.
    for path in [
        ["deploy", "resources", "limits", "memory"],
        ["deploy", "resources", "reservations", "memory"],
    ] {
        let v = path.iter().try_fold(svc, |n, step| n.get(step));
        if let Some(v) = v.filter(|v| !matches!(v.value, Value::Str(_) | Value::Null)) {
            cx.err(
                v,
                format!("`{p}.{}` must be a size like 512M or 1G, found {}: compose refuses it unquoted", path.join("."), v.kind()),
            );
        }
    }
    let options = svc.get("logging").and_then(|l| l.get("options"));
    for (k, v) in options.and_then(Node::as_map).into_iter().flatten() {
        if matches!(v.value, Value::Bool(_)) {
            cx.err(
                v,
                format!("`{p}.logging.options.{k}` must be a string or a number, found a boolean: compose refuses it unquoted (write \"{}\")", v.scalar_string().unwrap_or_default()),
            );
        }
    }
}

/// A Go duration as compose reads it: `0`, or numbers each with a unit
/// (`1h2m3.5s`, `500ms`, `10us`).
fn is_duration(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if num == 0 || rest[..num].matches('.').count() > 1 || &rest[..num] == "." {
            return false;
        }
        rest = &rest[num..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// Type checks for the passthrough keys whose references kata verifies.
fn check_shape(cx: &mut Ctx, key: &str, v: &Node, kp: &str) {
    let ok = match key {
        "command" | "entrypoint" => matches!(v.value, Value::Str(_) | Value::Seq(_) | Value::Null),
        "labels" => matches!(v.value, Value::Map(_) | Value::Seq(_)),
        "networks" => matches!(v.value, Value::Map(_) | Value::Seq(_)),
        _ => matches!(v.value, Value::Seq(_)),
    };
    if !ok {
        let want = match key {
            "command" | "entrypoint" => "a string or a list",
            "labels" | "networks" => "a mapping or a list",
            _ => "a list",
        };
        cx.err(v, format!("`{kp}` must be {want}, found {}", v.kind()));
    }
}

fn parse_depends_on(cx: &mut Ctx, v: &Node, kp: &str, svc: &mut Service) {
    match &v.value {
        Value::Seq(items) => {
            for it in items {
                if let Some(s) = cx.string(it, kp) {
                    svc.depends_on.push(s);
                }
            }
        }
        Value::Map(m) => {
            svc.depends_on = m.keys().cloned().collect();
            svc.depends_on_long = Some(v.to_json());
        }
        _ => cx.err(
            v,
            format!("`{kp}` must be a list or a mapping, found {}", v.kind()),
        ),
    }
}

fn parse_health(cx: &mut Ctx, v: &Node, kp: &str) -> Option<Health> {
    let m = cx.map(v, kp)?;
    if m.contains_key("test") || m.contains_key("disable") {
        if m.contains_key("path") {
            cx.err(
                v,
                format!("`{kp}` mixes kata's `path:` form with compose's `test:` form"),
            );
        }
        return Some(Health::Compose(v.to_json()));
    }
    let mut check = HttpCheck {
        path: "/".into(),
        port: None,
        status: 200,
        timeout_secs: 5,
        interval_secs: 1,
        attempts: 30,
    };
    for (k, n) in m {
        let p = format!("{kp}.{k}");
        match k.as_str() {
            "path" => match n.as_str() {
                Some(s) if s.starts_with('/') => check.path = s.to_owned(),
                _ => cx.err(n, format!("`{p}` must be a path starting with /")),
            },
            "port" => match int_in(n, 1, 65535) {
                Some(i) => check.port = Some(i as u16),
                None => cx.err(n, format!("`{p}` must be a port number")),
            },
            "status" => match int_in(n, 100, 599) {
                Some(i) => check.status = i as u16,
                None => cx.err(n, format!("`{p}` must be an HTTP status code")),
            },
            "timeout" | "interval" => match duration_secs(n) {
                Some(s) if k == "timeout" => check.timeout_secs = s,
                Some(s) => check.interval_secs = s,
                None => cx.err(
                    n,
                    format!("`{p}` must be a duration like 5s, 1m or a number of seconds"),
                ),
            },
            "attempts" | "retries" => match int_in(n, 1, 1000) {
                Some(i) => check.attempts = i as u32,
                None => cx.err(n, format!("`{p}` must be a whole number from 1 to 1000")),
            },
            other => cx.warn(n, format!("unknown key `{kp}.{other}` ignored")),
        }
    }
    Some(Health::Http(check))
}

fn int_in(n: &Node, lo: i64, hi: i64) -> Option<i64> {
    let i = match &n.value {
        Value::Int(i) => *i,
        Value::Str(s) => s.parse().ok()?,
        _ => return None,
    };
    (lo..=hi).contains(&i).then_some(i)
}

/// `5`, `"5s"`, `"2m"`, `"1h"` → seconds.
fn duration_secs(n: &Node) -> Option<u64> {
    match &n.value {
        Value::Int(i) if *i >= 0 => Some(*i as u64),
        Value::Str(s) => {
            let s = s.trim();
            let (num, mul) = if let Some(x) = s.strip_suffix("ms") {
                return x.parse::<u64>().ok().map(|ms| ms.div_ceil(1000));
            } else if let Some(x) = s.strip_suffix('s') {
                (x, 1)
            } else if let Some(x) = s.strip_suffix('m') {
                (x, 60)
            } else if let Some(x) = s.strip_suffix('h') {
                (x, 3600)
            } else {
                (s, 1)
            };
            num.parse::<u64>().ok().map(|v| v * mul)
        }
        _ => None,
    }
}

/// Cross-references: depends_on targets and cycles, named volumes, networks, secrets.
fn check_references(cx: &mut Ctx, spec: &AppSpec, root: &Node) {
    let services_node = root.as_map().and_then(|m| m.get("services"));
    let node_of = |svc: &str, key: &str| -> Option<&Node> {
        let s = services_node?.as_map()?.get(svc)?;
        s.as_map()?.get(key).or(Some(s))
    };
    for (name, svc) in &spec.services {
        for dep in &svc.depends_on {
            if !spec.services.contains_key(dep)
                && let Some(n) = node_of(name, "depends_on")
            {
                cx.err(
                    n,
                    format!("`services.{name}.depends_on` names unknown service `{dep}`"),
                );
            }
        }
        if let Some(vols) = svc.extra.get("volumes").and_then(Json::as_array) {
            for v in vols {
                if let Some(src) = named_volume(v)
                    && !spec.volumes.contains_key(&src)
                    && !KATA_VOLUMES.contains(&src.as_str())
                    && let Some(n) = node_of(name, "volumes")
                {
                    cx.err(n, format!("`services.{name}.volumes` uses volume `{src}`, which is not declared under top-level `volumes:`"));
                }
            }
        }
        for (key, declared) in [
            ("networks", &spec.networks),
            ("secrets", &spec.secrets),
            ("configs", &spec.configs),
        ] {
            for r in referenced_names(svc.extra.get(key)) {
                let implicit = key == "networks" && r == "default";
                if !implicit
                    && !declared.contains_key(&r)
                    && let Some(n) = node_of(name, key)
                {
                    cx.err(n, format!("`services.{name}.{key}` uses `{r}`, which is not declared under top-level `{key}:`"));
                }
            }
        }
    }
    if let Some(cycle) = depends_cycle(spec) {
        let n = node_of(&cycle[0], "depends_on").unwrap_or(root);
        cx.err(n, format!("`depends_on` cycle: {}", cycle.join(" -> ")));
    }
}

/// The volume name in a service volume entry, if it names a volume (not a path).
fn named_volume(v: &Json) -> Option<String> {
    let src = match v {
        Json::String(s) => {
            let (src, _) = s.split_once(':')?;
            src.to_owned()
        }
        Json::Object(m) => {
            if m.get("type")
                .and_then(Json::as_str)
                .is_some_and(|t| t != "volume")
            {
                return None;
            }
            m.get("source")?.as_str()?.to_owned()
        }
        _ => return None,
    };
    let is_path = src.is_empty() || src.starts_with(['/', '.', '~', '$']);
    (!is_path).then_some(src)
}

fn referenced_names(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|e| match e {
                Json::String(s) => Some(s.clone()),
                Json::Object(m) => m.get("source").and_then(Json::as_str).map(str::to_owned),
                _ => None,
            })
            .collect(),
        Some(Json::Object(m)) => m.keys().cloned().collect(),
        _ => vec![],
    }
}

/// A `depends_on` cycle, as the list of services walked (first repeated last).
pub fn depends_cycle(spec: &AppSpec) -> Option<Vec<String>> {
    fn visit(
        spec: &AppSpec,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        if let Some(svc) = spec.services.get(n) {
            for d in &svc.depends_on {
                if let Some(c) = visit(spec, d, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for name in spec.services.keys() {
        if let Some(c) = visit(spec, name, &mut vec![], &mut done) {
            return Some(c);
        }
    }
    None
}

/// Services in dependency order (dependencies first; ties in file order).
pub fn start_order(spec: &AppSpec) -> Vec<String> {
    let mut placed: Vec<String> = vec![];
    let mut left: BTreeMap<usize, &String> = spec.services.keys().enumerate().collect();
    while !left.is_empty() {
        let next = left
            .iter()
            .find(|(_, n)| {
                spec.services[n.as_str()]
                    .depends_on
                    .iter()
                    .all(|d| placed.contains(d) || !spec.services.contains_key(d))
            })
            .map(|(i, _)| *i)
            .unwrap_or(*left.keys().next().expect("non-empty"));
        placed.push(left.remove(&next).expect("present").clone());
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_runtime_passes_through_and_kata_runtimes_stay_kata_runtimes() {
        let text = "services:\n  gpu:\n    image: cuda\n    runtime: nvidia\n  web:\n    runtime: python\n  bad:\n    runtime: pyhton\n";
        let p = parse(text);
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert_eq!(
            p.errors[0].pos,
            Some(Pos {
                line: 8,
                column: 14
            })
        );
        let p = parse(
            "services:\n  gpu:\n    image: cuda\n    runtime: nvidia\n  web:\n    runtime: python\n",
        );
        let spec = p.spec.unwrap();
        assert_eq!(spec.services["gpu"].extra["runtime"], "nvidia");
        assert_eq!(spec.services["gpu"].runtime, None);
        assert_eq!(spec.services["web"].runtime, Some(Runtime::Python));
    }

    #[test]
    fn durations_need_a_unit() {
        for (d, ok) in [
            ("30s", true),
            ("1m30s", true),
            ("1h2m3.5s", true),
            ("500ms", true),
            ("10us", true),
            ("0", true),
            ("30", false),
            ("1.5", false),
            ("5 s", false),
            ("s", false),
            ("", false),
            ("1d", false),
        ] {
            assert_eq!(is_duration(d), ok, "{d}");
        }
        assert_eq!(
            errors_of(
                "services:\n  s:\n    image: x\n    stop_grace_period: ${GRACE:-10s}\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 30\n      timeout: \"5\"\n    deploy:\n      restart_policy: {delay: 5s, window: 2m}\n  k:\n    image: x\n    healthcheck: {path: /, interval: 5}\n"
            ),
            [
                "kata-compose.yaml:7:17: `services.s.healthcheck.interval` must be a duration with a unit, like 30s, 1m30s or 500ms; found an integer",
                "kata-compose.yaml:8:16: `services.s.healthcheck.timeout` must be a duration with a unit, like 30s, 1m30s or 500ms; found \"5\"",
            ]
        );
    }

    #[test]
    fn string_keys_written_as_numbers_are_refused_where_they_stand() {
        assert_eq!(
            errors_of(
                "services:\n  s:\n    image: x\n    user: 1000\n    hostname: true\n    pid:\n    working_dir: /srv\n"
            ),
            [
                "kata-compose.yaml:4:11: `services.s.user` must be a string, found an integer: compose refuses it unquoted (write `user: \"1000\"`)",
                "kata-compose.yaml:5:15: `services.s.hostname` must be a string, found a boolean: compose refuses it unquoted (write `hostname: \"true\"`)",
            ]
        );
        assert!(errors_of("services:\n  s:\n    image: x\n    user: 1000:1000\n").is_empty());
    }

    #[test]
    fn compose_keys_kata_leaves_out_say_so() {
        let p = parse(
            "services:\n  s:\n    image: x\n    label_file: ./labels\n    use_api_socket: true\nmodels:\n  llm: {model: ai/x}\n",
        );
        let got: Vec<String> = p.warnings.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "kata-compose.yaml:7:3: `models` is compose's, but kata does not support it; ignored: kata runs no AI models for compose",
                "kata-compose.yaml:4:17: `services.s.label_file` is compose's, but kata does not support it; ignored: kata reads no label files: write the labels under `labels:`",
                "kata-compose.yaml:5:21: `services.s.use_api_socket` is compose's, but kata does not support it; ignored: kata gives no container the Docker engine's socket or credentials",
            ]
        );
    }

    #[test]
    fn sizes_and_logging_options_in_the_types_compose_reads() {
        assert_eq!(
            errors_of(
                "services:\n  s:\n    image: x\n    logging:\n      options: {compress: true, max-file: 3}\n    deploy:\n      resources:\n        limits: {memory: 536870912}\n        reservations: {memory: 64M}\n"
            ),
            [
                "kata-compose.yaml:8:26: `services.s.deploy.resources.limits.memory` must be a size like 512M or 1G, found an integer: compose refuses it unquoted",
                "kata-compose.yaml:5:27: `services.s.logging.options.compress` must be a string or a number, found a boolean: compose refuses it unquoted (write \"true\")",
            ]
        );
    }

    fn errors_of(text: &str) -> Vec<String> {
        parse(text).errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn bare_keys_are_inherited_and_one_shot_jobs_keep_restart_no() {
        let text = "environment:\n  T:\nservices:\n  web:\n    image: x\n    environment: [A, B=1, \"C=\"]\n    depends_on:\n      job: {condition: service_completed_successfully}\n  job:\n    image: x\n    environment: {D: , E: \"\"}\n";
        let spec = parse(text).spec.unwrap();
        assert_eq!(spec.inherit_env, vec!["T"]);
        assert_eq!(spec.services["web"].inherit_env, vec!["A"]);
        assert_eq!(spec.services["job"].inherit_env, vec!["D"]);
        assert_eq!(spec.services["job"].extra["restart"], "no");
        assert!(is_one_shot(&spec.services["job"]));
        assert!(!spec.services["web"].extra.contains_key("restart"));
    }

    #[test]
    fn a_deploy_restart_policy_decides_what_is_a_one_shot_job() {
        let svc = |keys: &str| {
            let text = format!("services:\n  s:\n    image: x\n{keys}");
            parse(&text).spec.unwrap().services["s"].clone()
        };
        let policy = |c: &str| format!("    deploy: {{restart_policy: {{condition: {c}}}}}\n");
        assert!(is_one_shot(&svc(&policy("none"))));
        assert!(is_one_shot(&svc(&policy("on-failure"))));
        assert!(!is_one_shot(&svc(&policy("any"))));
        // the policy wins over `restart:`
        let both = format!("    restart: \"no\"\n{}", policy("any"));
        assert!(!is_one_shot(&svc(&both)));
        assert!(!is_one_shot(&svc("    restart: always\n")));
        // never restarted: swarm's task completes
        assert!(runs_once(&svc(&policy("none"))));
        assert!(runs_once(&svc("    restart: \"no\"\n")));
        assert!(!runs_once(&svc(&policy("on-failure"))));
        assert!(!runs_once(&svc("    restart: on-failure\n")));
    }

    #[test]
    fn text_that_is_not_utf8_is_an_error_at_its_first_byte() {
        let p = parse_bytes(b"services:\n  web:\n    image: \xff\xfe\n");
        assert!(p.spec.is_none());
        assert_eq!(
            p.errors[0].pos,
            Some(Pos {
                line: 3,
                column: 12
            })
        );
        assert!(
            parse_bytes(b"services:\n  web: {image: x}\n")
                .spec
                .is_some()
        );
    }

    #[test]
    fn include_is_refused_at_its_position() {
        let p = parse("include:\n  - other.yaml\nservices:\n  web:\n    image: x\n");
        assert!(p.spec.is_none());
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert_eq!(p.errors[0].pos.map(|p| p.line), Some(2));
        assert!(p.errors[0].message.contains("`include` is not supported"));
    }

    #[test]
    fn interpolated_restart_is_accepted_and_a_bad_literal_is_not() {
        let ok = parse(
            "services:\n  web:\n    image: x\n    restart: ${RESTART_POLICY:-unless-stopped}\n",
        );
        assert!(ok.errors.is_empty(), "{:?}", ok.errors);
        let bad = parse("services:\n  web:\n    image: x\n    restart: sometimes\n");
        assert_eq!(bad.errors.len(), 1);
    }
}
