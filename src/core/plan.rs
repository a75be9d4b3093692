//! A release's plan: everything a deploy decides, computed from values the
//! shell gathered (the spec, the config, the subnet and port stores, one
//! docker snapshot, the live release's records), with no I/O. The shell
//! (`deploy`, `rollout`) writes its files and store records, records its
//! steps in the release's journal, runs them and records each outcome.

use crate::access::pin::{self, Copy};
use crate::argv::{self, BuildMounts, BuildRun};
use crate::caddy;
use crate::envfile::{self, Env};
use crate::gate::{Gate, gate_for};
use crate::model::{ComposeCli, Container, Mode, SwarmRole, Target};
use crate::paths::Paths;
use crate::ports::{self, PortRange, PortState, PortWrites};
use crate::render;
use crate::spec::{AppSpec, Runtime};
use crate::subnets::{self, DockerNet, Net, SubnetState, SubnetWrites};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The mode a deploy runs in, and where that came from (for the progress
/// line): `kata mode`, then `x-kata-mode`, then the node's swarm role.
pub fn choose_mode(
    stored: Option<Mode>,
    in_file: Option<Mode>,
    role: SwarmRole,
) -> Result<(Mode, &'static str), String> {
    let (mode, why) = match (stored, in_file) {
        (Some(m), _) => (m, "set by `kata mode`"),
        (None, Some(m)) => (m, "x-kata-mode"),
        (None, None) if role == SwarmRole::Manager => (Mode::Swarm, "this node is a swarm manager"),
        (None, None) => (Mode::Compose, "default"),
    };
    match (mode, role) {
        (Mode::Swarm, SwarmRole::Worker) => Err("this node is a swarm worker: deploy from a manager node".into()),
        (Mode::Swarm, SwarmRole::None) => Err("swarm mode was chosen but this node is not in a swarm (run `docker swarm init`, or `kata mode APP compose`)".into()),
        _ => Ok((mode, why)),
    }
}

/// The host settings a plan depends on.
#[derive(Debug, Clone)]
pub struct PlanSettings<'a> {
    pub subnet_pool: &'a str,
    pub subnet_prefix: u8,
    pub port_range: PortRange,
}

/// Everything a release's plan is computed from.
#[derive(Debug, Clone)]
pub struct PlanInputs<'a> {
    pub paths: &'a Paths,
    pub app: &'a str,
    pub release: u64,
    pub commit: &'a str,
    /// The pushed kata-compose.yaml, parsed.
    pub spec: &'a AppSpec,
    pub mode: Mode,
    /// The host's compose CLI (compose mode only).
    pub cli: Option<ComposeCli>,
    /// The pushed `.env` (empty without one).
    pub dot_env: &'a [u8],
    /// The config values the release runs with.
    pub config_env: &'a Env,
    /// The kata user's uid and gid.
    pub ids: (u32, u32),
    /// The kata user's home, for `~` in a mounted path.
    pub home: Option<&'a Path>,
    pub settings: PlanSettings<'a>,
    /// Docker's networks now (compose mode): every one, or only the app's
    /// own when `all_networks` is false. Those are enough for a release
    /// whose networks all exist; otherwise the plan fails with
    /// [`PlanError::needs_all_networks`] and is made again with every one.
    pub networks: &'a [DockerNet],
    pub all_networks: bool,
    /// The app's containers now.
    pub containers: &'a [Container],
    pub subnets: &'a SubnetState,
    pub ports: &'a PortState,
    /// The live release's records, to go back to on failure.
    pub previous: Previous,
}

/// The live release's records: its compose file (when it has one), its
/// Caddy server and the mode it runs in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Previous {
    pub file: Option<PathBuf>,
    pub caddy: Option<Json>,
    pub mode: Option<Mode>,
}

/// A file the deploy writes, with its mode (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: PathBuf,
    pub body: Vec<u8>,
    pub mode: Option<u32>,
}

/// A runtime's build step: its image must exist, then its `docker run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub runtime: Runtime,
    pub run: BuildRun,
    /// Where [`BuildRun::env_file`]'s body goes (removed after the run).
    pub env_file: PathBuf,
}

/// The start step's commands in compose mode, planned from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPlan {
    /// `up` of the services that do not switch (all of them when none does).
    pub up: Option<Vec<String>>,
    /// Stopped leftovers of switched services, removed first: `up --scale`
    /// would start them again, and they serve nothing.
    pub stale: Vec<String>,
    /// One `up --no-recreate --scale` per switched service.
    pub scale: Vec<Vec<String>>,
}

impl StartPlan {
    /// Every command, each an argv (program first), in the order they run.
    pub fn argv(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = self.up.iter().cloned().collect();
        if !self.stale.is_empty() {
            out.push(argv::rm(&self.stale));
        }
        out.extend(self.scale.iter().cloned());
        out
    }
}

/// How the release starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Blue/green for the routed services that run now, `up` for the rest.
    Compose(ComposeStart),
    /// `docker stack deploy`: swarm's own rolling update.
    Swarm { deploy: Vec<String> },
}

impl Start {
    /// The start step's commands, in the order they run.
    pub fn argv(&self) -> Vec<Vec<String>> {
        match self {
            Start::Compose(c) => c.start.argv(),
            Start::Swarm { deploy } => vec![deploy.clone()],
        }
    }
}

/// A compose start, planned from the snapshot of the app's containers.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeStart {
    pub cli: ComposeCli,
    /// Every container of the app before the start.
    pub old_ids: Vec<String>,
    /// The services that switch (see [`switched`]).
    pub switched: Vec<String>,
    /// The old containers the switch retires.
    pub retiring: Vec<Container>,
    pub start: StartPlan,
    /// Stop, then remove, the retiring containers.
    pub retire: Vec<Vec<String>>,
}

/// Everything a release's deploy does, decided.
#[derive(Debug, Clone)]
pub struct ReleasePlan {
    pub mode: Mode,
    pub target: Target,
    /// The spec without the services of inactive profiles.
    pub spec: AppSpec,
    /// Changes of meaning kata makes for this target.
    pub warnings: Vec<String>,
    /// Where the release's compose file is (what compose or swarm runs).
    pub file: PathBuf,
    /// The compose file until the build ends: subnets and the published
    /// route ports decided.
    pub compose: Json,
    /// The compose file that runs: built images named, host paths in the
    /// release's code pointed at copies no container can change.
    pub pinned: Json,
    /// What the pin copies out of the release's code after the build.
    pub copies: Vec<Copy>,
    /// The app's Caddy server (shorthand expanded, dials not yet resolved).
    pub caddy: Option<Json>,
    /// The dials Caddy routes: (service, container port).
    pub routed: Vec<(String, u16)>,
    /// Each service's health gate (an error shows when one of its
    /// containers is gated).
    pub gates: BTreeMap<String, Result<Gate, String>>,
    /// Writable relative mounts the first deploy starts from the pushed files.
    pub seeds: Vec<(String, PathBuf)>,
    /// The files written before the build, in order.
    pub files: Vec<File>,
    pub builds: Vec<Build>,
    pub start: Start,
    /// What the subnet store records.
    pub subnets: SubnetWrites,
    /// Networks that keep a subnet kata did not give them.
    pub kept_subnets: Vec<(String, Vec<Net>)>,
    /// What the port store records.
    pub ports: PortWrites,
    pub previous: Previous,
    /// The live release's mode when it is not this release's: what runs in
    /// it is taken down before this release starts, since both modes name
    /// the app's networks `<app>_<network>`.
    pub leaves: Option<Mode>,
}

/// A plan that cannot be made, with the warnings found before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub warnings: Vec<String>,
    pub message: String,
    /// Plan again with every docker network (see [`PlanInputs::networks`]).
    pub needs_all_networks: bool,
}

impl ReleasePlan {
    /// The compose file, pinned, as written once the build is over.
    pub fn pinned_file(&self) -> File {
        File {
            path: self.file.clone(),
            body: render::to_yaml(&self.pinned).into_bytes(),
            mode: None,
        }
    }
    /// The swarm start's `docker stack deploy` (none in compose mode).
    pub fn stack_deploy(&self) -> Vec<String> {
        match &self.start {
            Start::Swarm { deploy } => deploy.clone(),
            Start::Compose(_) => vec![],
        }
    }
}

/// Plans release `i.release` of `i.app`. Pure.
pub fn plan(i: &PlanInputs) -> Result<ReleasePlan, PlanError> {
    let (app, n) = (i.app, i.release);
    let dir = i.paths.release(app, n);
    let src = dir.join("src");
    let file = dir.join(argv::COMPOSE_FILE);
    let target = i.cli.map(ComposeCli::target).unwrap_or(Target::Stack);
    let cx = render::Context {
        app,
        paths: i.paths,
        config_env: i.config_env,
        puid: i.ids.0,
        pgid: i.ids.1,
        release: Some((n, i.commit)),
    };
    let mut out = render::render(i.spec, &cx, target);
    let warnings: Vec<String> = out.warnings.iter().map(|w| w.to_string()).collect();
    let error = |message: String| PlanError {
        warnings: warnings.clone(),
        message,
        needs_all_networks: false,
    };
    if !out.errors.is_empty() {
        let lines: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
        return Err(error(lines.join("\n")));
    }
    let mut spec = i.spec.clone();
    spec.services.retain(|name, _| out.deploys(name));

    let (mut subnet_writes, mut kept_subnets) = (SubnetWrites::default(), vec![]);
    if target == Target::Stack {
        crate::binds::anchor_paths(&mut out.compose, &src);
    } else {
        // swarm's overlay networks come from swarm's own pool
        let s = &i.settings;
        let (p, w) = subnets::assign(
            app,
            (s.subnet_pool, s.subnet_prefix),
            i.subnets,
            (i.networks, i.all_networks),
            &mut out.compose,
        )
        .map_err(|e| PlanError {
            needs_all_networks: matches!(e, subnets::SubnetError::NeedsAllNetworks(_)),
            ..error(e.to_string())
        })?;
        (subnet_writes, kept_subnets) = (w, p.kept);
    }
    let server = match &out.caddy {
        Some(server) => Some(caddy::expand(server.clone(), app).map_err(|e| error(e.to_string()))?),
        None => None,
    };
    let routed = server
        .as_ref()
        .map(|s| caddy::service_dials(s, spec.services.keys()))
        .unwrap_or_default();

    let mut port_writes = PortWrites::default();
    if target != Target::Stack {
        let instances = |s: &str| {
            spec.services
                .get(s)
                .and_then(|svc| svc.instances)
                .unwrap_or(1)
        };
        let wanted = ports::wanted(&routed, instances);
        let (mut blocks, w) = ports::reserve(i.settings.port_range, i.ports, &wanted)
            .map_err(|e| error(e.to_string()))?;
        port_writes = w;
        // only the dials this release routes; kept blocks stay unpublished
        blocks
            .blocks
            .retain(|k, _| wanted.iter().any(|(w, _)| w == k));
        render::publish_routes(&mut out.compose, &blocks);
    }

    let mut pinned = out.compose.clone();
    pin::name_built_images(&mut pinned, app);
    let files_dir = dir.join("files");
    let trees = pin::Trees {
        root: i.paths.root(),
        app,
        src: &src,
        files: &files_dir,
        home: i.home,
    };
    let copies = pin::plan(&mut pinned, &trees).map_err(|e| error(e.join("\n")))?;

    let gates = spec
        .services
        .iter()
        .map(|(name, svc)| {
            let port = routed.iter().find(|(s, _)| s == name).map(|(_, p)| *p);
            (name.clone(), gate_for(name, svc, port))
        })
        .collect();
    let builds = builds(i, &spec, &out, &src).map_err(error)?;
    let files = files(i, &file, &out.yaml(), server.as_ref());
    let leaves = i.previous.mode.filter(|m| *m != i.mode);
    // the old mode's containers go before the start: none is switched from
    let before = if leaves.is_some() { &[] } else { i.containers };
    let start = match i.cli {
        Some(cli) => Start::Compose(compose_start(cli, app, &file, &spec, &routed, before)),
        None => Start::Swarm {
            deploy: argv::stack_deploy(&file, app),
        },
    };
    Ok(ReleasePlan {
        mode: i.mode,
        target,
        spec,
        warnings,
        file,
        compose: out.compose,
        pinned,
        copies,
        caddy: server,
        routed,
        gates,
        seeds: out.seeds,
        files,
        builds,
        start,
        subnets: subnet_writes,
        kept_subnets,
        ports: port_writes,
        previous: i.previous.clone(),
        leaves,
    })
}

/// The files written before the build, in order: the pushed `.env` as
/// compose reads it, the config values, the Caddy server, the compose file
/// and its copy for people.
fn files(i: &PlanInputs, file: &Path, yaml: &str, server: Option<&Json>) -> Vec<File> {
    let dir = i.paths.release(i.app, i.release);
    let mut files = vec![
        File {
            path: dir.join(argv::COMPOSE_ENV),
            body: compose_env(i.dot_env),
            mode: Some(0o600),
        },
        File {
            path: dir.join("ENV"),
            body: envfile::render(i.config_env).into_bytes(),
            mode: Some(0o600),
        },
    ];
    if let Some(server) = server {
        let mut json = serde_json::to_vec_pretty(server).expect("JSON serialises");
        json.push(b'\n');
        files.push(File {
            path: dir.join("caddy.json"),
            body: json,
            mode: None,
        });
    }
    files.push(File {
        path: file.to_path_buf(),
        body: yaml.as_bytes().to_vec(),
        mode: None,
    });
    // a copy for people to read; kata never reads it back
    files.push(File {
        path: dir.join("src").join(".docker-compose.yaml"),
        body: yaml.as_bytes().to_vec(),
        mode: Some(0o444),
    });
    files
}

/// A compose start from the snapshot `before`: which services switch, the
/// containers they retire, and the commands.
fn compose_start(
    cli: ComposeCli,
    app: &str,
    file: &Path,
    spec: &AppSpec,
    routed: &[(String, u16)],
    before: &[Container],
) -> ComposeStart {
    let switch = switched(spec, routed, before);
    let retiring = retiring(before, &switch);
    let ids: Vec<&str> = retiring.iter().map(|c| c.id.as_str()).collect();
    ComposeStart {
        cli,
        old_ids: before.iter().map(|c| c.id.clone()).collect(),
        start: plan_start(cli, app, file, spec, before, &switch),
        retire: argv::retire(&ids),
        switched: switch.iter().map(|s| (*s).to_owned()).collect(),
        retiring: retiring.into_iter().cloned().collect(),
    }
}

/// The pushed `.env` as compose gets it: without the variables that steer
/// docker or compose themselves (`DOCKER_HOST`, `COMPOSE_FILE`, ...), which
/// docker-compose 1.29 would take from it.
pub fn compose_env(dot_env: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(dot_env);
    let mut out = String::new();
    for line in text.lines() {
        let key = line.trim_start();
        let key = key.strip_prefix("export ").unwrap_or(key).trim_start();
        if key.starts_with("DOCKER_") || key.starts_with("COMPOSE_") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// One build step per runtime the app uses, run with the environment of
/// its first service (compose form made literal for `docker run`).
fn builds(
    i: &PlanInputs,
    spec: &AppSpec,
    out: &render::Rendered,
    src: &Path,
) -> Result<Vec<Build>, String> {
    let mut seen: Vec<Runtime> = vec![];
    let mut builds = vec![];
    for (name, svc) in &spec.services {
        let Some(rt) = svc.runtime else { continue };
        if seen.contains(&rt) {
            continue;
        }
        seen.push(rt);
        let mut env: Vec<(String, String)> = out
            .env
            .get(name)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.replace("$$", "$")))
            .collect();
        if !spec.build_commands.is_empty() {
            env.push(("KATA_BUILD_COMMANDS".into(), spec.build_commands.join("\n")));
        }
        let env_file = i.paths.release(i.app, i.release).join("build.env");
        let mounts = BuildMounts::of(i.paths, i.app, src);
        let run = argv::build_run(i.app, mounts, rt, i.ids, env, &env_file)?;
        builds.push(Build {
            runtime: rt,
            run,
            env_file,
        });
    }
    Ok(builds)
}

/// Which services get a blue/green switch: routed by Caddy, running now,
/// and scalable (a fixed `container_name` cannot have two containers).
pub fn switched<'a>(
    spec: &'a AppSpec,
    routed: &[(String, u16)],
    before: &[Container],
) -> Vec<&'a str> {
    spec.services
        .iter()
        .filter(|(name, svc)| {
            routed.iter().any(|(s, _)| s == *name)
                && svc.instances != Some(0)
                && !svc.extra.contains_key("container_name")
                && before
                    .iter()
                    .any(|c| &c.service == *name && c.state == "running")
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The old containers a switch retires: the running ones of switched
/// services (stopped leftovers are removed before the new ones start).
fn retiring<'a>(before: &'a [Container], switch: &[&str]) -> Vec<&'a Container> {
    before
        .iter()
        .filter(|c| switch.contains(&c.service.as_str()) && c.state == "running")
        .collect()
}

/// `up` builds the images of services that have a `build:`.
fn with_build<'a>(spec: &AppSpec, rest: &[&'a str]) -> Vec<&'a str> {
    let mut rest: Vec<&str> = rest.to_vec();
    if rest.first() == Some(&"up")
        && spec
            .services
            .values()
            .any(|s| s.extra.contains_key("build"))
    {
        rest.insert(1, "--build");
    }
    rest
}

/// The start step's commands, planned from the snapshot `before`.
pub fn plan_start(
    cli: ComposeCli,
    app: &str,
    file: &Path,
    spec: &AppSpec,
    before: &[Container],
    switch: &[&str],
) -> StartPlan {
    let compose = |rest: &[&str]| argv::compose(cli, app, file, &with_build(spec, rest));
    let others: Vec<&str> = spec
        .services
        .keys()
        .map(String::as_str)
        .filter(|s| !switch.contains(s))
        .collect();
    let up = if switch.is_empty() {
        Some(compose(&["up", "-d", "--remove-orphans"]))
    } else if !others.is_empty() {
        let mut rest = vec!["up", "-d", "--no-deps", "--remove-orphans"];
        rest.extend(&others);
        Some(compose(&rest))
    } else {
        None
    };
    let mut stale = vec![];
    let mut scale = vec![];
    for s in switch {
        let (running, stopped): (Vec<&Container>, Vec<&Container>) = before
            .iter()
            .filter(|c| c.service == *s)
            .partition(|c| c.state == "running");
        stale.extend(stopped.iter().map(|c| c.id.clone()));
        let wanted = spec.services[*s].instances.unwrap_or(1) as usize;
        let n = format!("{s}={}", running.len() + wanted);
        scale.push(compose(&[
            "up",
            "-d",
            "--no-deps",
            "--no-recreate",
            "--scale",
            &n,
            s,
        ]));
    }
    StartPlan { up, stale, scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, state: &str) -> Container {
        Container {
            id: format!("{service}-{state}"),
            name: service.into(),
            service: service.into(),
            state: state.into(),
            status: String::new(),
            release: None,
        }
    }

    const SPEC: &str = r#"services:
  web:
    image: kata-test/busybox:latest
    command: httpd -f -p 8080
    restart: unless-stopped
    volumes:
      - ./conf:/etc/conf:ro
      - ./uploads:/srv/uploads
    healthcheck:
      path: /index.html
  db:
    image: kata-test/busybox:latest
    command: sleep 1000000
    restart: unless-stopped
  worker:
    runtime: python
    command: python worker.py
    restart: unless-stopped
build:
  commands: [make assets]
caddy:
  listen: ["127.0.0.1:8000"]
  automatic_https: {disable: true}
  routes:
    - match: [{host: ["shop.example"]}]
      handle:
        - handler: reverse_proxy
          upstreams: [{dial: "web:8080"}]
"#;

    /// A plan as people read it: mode, the files with their modes, the
    /// compose file that runs, Caddy, gates, the steps' argv, the stores.
    fn show(p: &ReleasePlan) -> String {
        let mut out = format!("mode: {} ({:?})\n", p.mode, p.target);
        for w in &p.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.push_str("files:\n");
        for f in &p.files {
            let mode = f.mode.map(|m| format!(" {m:o}")).unwrap_or_default();
            out.push_str(&format!("  {}{mode}\n", f.path.display()));
        }
        for c in &p.copies {
            out.push_str(&format!(
                "copy: {} -> {}\n",
                c.rel.display(),
                c.to.display()
            ));
        }
        out.push_str(&format!("pinned:\n{}", render::to_yaml(&p.pinned)));
        if let Some(c) = &p.caddy {
            out.push_str(&format!("caddy: {c}\n"));
        }
        for (s, g) in &p.gates {
            out.push_str(&format!("gate {s}: {g:?}\n"));
        }
        for b in &p.builds {
            out.push_str(&format!("build: {}\n", b.run.args.join(" ")));
        }
        for a in p.start.argv() {
            out.push_str(&format!("start: {}\n", a.join(" ")));
        }
        if let Start::Compose(c) = &p.start {
            out.push_str(&format!("switched: {:?}\n", c.switched));
            for a in &c.retire {
                out.push_str(&format!("retire: {}\n", a.join(" ")));
            }
        }
        for (key, net) in p.subnets.record.iter().flatten() {
            out.push_str(&format!("subnet record: {key} {net}\n"));
        }
        if let Some(c) = p.subnets.cursor {
            out.push_str(&format!("subnet cursor: {c}\n"));
        }
        for (key, b) in p.ports.ports.iter().flat_map(|p| &p.blocks) {
            out.push_str(&format!("port block: {key} {}-{}\n", b.first, b.last()));
        }
        if let Some(c) = p.ports.cursor {
            out.push_str(&format!("port cursor: {c}\n"));
        }
        out
    }

    fn plan_for(spec_text: &str, cli: Option<ComposeCli>, containers: &[Container]) -> ReleasePlan {
        plan_after(spec_text, cli, containers, Previous::default())
    }

    fn plan_after(
        spec_text: &str,
        cli: Option<ComposeCli>,
        containers: &[Container],
        previous: Previous,
    ) -> ReleasePlan {
        let spec = crate::spec::parse(spec_text).spec.unwrap();
        let paths = Paths::new("/k");
        let config = envfile::parse("SECRET=hunter2\n").unwrap();
        let networks = [DockerNet {
            name: "bridge".into(),
            project: String::new(),
            key: String::new(),
            subnets: vec!["172.17.0.0/16".parse().unwrap()],
        }];
        let subnets = SubnetState {
            cursor: Some(Some("198.18.0.0/26".parse().unwrap())),
            ..SubnetState::default()
        };
        let ports = PortState {
            cursor: 20000,
            ..PortState::default()
        };
        let inputs = PlanInputs {
            paths: &paths,
            app: "shop",
            release: 3,
            commit: "0123456789abcdef",
            spec: &spec,
            mode: if cli.is_some() {
                Mode::Compose
            } else {
                Mode::Swarm
            },
            cli,
            dot_env: b"GREETING=hi\nDOCKER_HOST=tcp://elsewhere:2375\n",
            config_env: &config,
            ids: (1000, 1000),
            home: Some(Path::new("/k")),
            settings: PlanSettings {
                subnet_pool: subnets::DEFAULT_POOL,
                subnet_prefix: subnets::DEFAULT_PREFIX,
                port_range: ports::DEFAULT_RANGE,
            },
            networks: &networks,
            all_networks: true,
            containers,
            subnets: &subnets,
            ports: &ports,
            previous,
        };
        plan(&inputs).unwrap()
    }

    #[test]
    fn a_compose_release_is_planned_whole() {
        let running = [container("web", "running"), container("db", "running")];
        let p = plan_for(SPEC, Some(ComposeCli::V2), &running);
        insta::assert_snapshot!(show(&p));
        // the same inputs give the same plan
        assert_eq!(
            show(&plan_for(SPEC, Some(ComposeCli::V2), &running)),
            show(&p)
        );
        let env = &p.files[0];
        assert_eq!(
            env.body, b"GREETING=hi\n",
            "docker's own variables stay out"
        );
        let argv: Vec<String> = p.builds.iter().map(|b| b.run.args.join(" ")).collect();
        assert!(
            !argv.concat().contains("hunter2"),
            "no config value on an argv"
        );
    }

    #[test]
    fn a_swarm_release_is_planned_whole() {
        let p = plan_for(SPEC, None, &[]);
        insta::assert_snapshot!(show(&p));
        assert_eq!(p.subnets, SubnetWrites::default(), "swarm's own pool");
        assert_eq!(
            p.ports,
            PortWrites::default(),
            "swarm publishes no route port"
        );
    }

    #[test]
    fn a_release_in_another_mode_takes_the_live_one_down_first() {
        let live = |mode| Previous {
            file: Some("/k/state/apps/shop/releases/2/docker-compose.yaml".into()),
            caddy: None,
            mode: Some(mode),
        };
        // swarm's tasks carry kata's labels too: none is switched from
        let tasks = [container("web", "running"), container("db", "running")];
        let p = plan_after(SPEC, Some(ComposeCli::V2), &tasks, live(Mode::Swarm));
        assert_eq!(p.leaves, Some(Mode::Swarm));
        let Start::Compose(c) = &p.start else {
            panic!("a compose start")
        };
        assert!(c.switched.is_empty() && c.retiring.is_empty() && c.old_ids.is_empty());
        assert_eq!(
            plan_after(SPEC, None, &[], live(Mode::Compose)).leaves,
            Some(Mode::Compose)
        );
        // the same mode, or no live release: nothing is taken down
        let p = plan_after(SPEC, Some(ComposeCli::V2), &tasks, live(Mode::Compose));
        assert_eq!(p.leaves, None);
        assert_eq!(plan_for(SPEC, None, &[]).leaves, None);
    }

    /// Compose v2 inputs of release 3 of `shop`: no network, container,
    /// port or live release.
    fn bare_inputs<'a>(
        paths: &'a Paths,
        spec: &'a AppSpec,
        config: &'a Env,
        subnet_state: &'a SubnetState,
    ) -> PlanInputs<'a> {
        static PORTS: std::sync::LazyLock<PortState> = std::sync::LazyLock::new(PortState::default);
        PlanInputs {
            paths,
            app: "shop",
            release: 3,
            commit: "c",
            spec,
            mode: Mode::Compose,
            cli: Some(ComposeCli::V2),
            dot_env: b"",
            config_env: config,
            ids: (0, 0),
            home: None,
            settings: PlanSettings {
                subnet_pool: subnets::DEFAULT_POOL,
                subnet_prefix: subnets::DEFAULT_PREFIX,
                port_range: ports::DEFAULT_RANGE,
            },
            networks: &[],
            all_networks: true,
            containers: &[],
            subnets: subnet_state,
            ports: &PORTS,
            previous: Previous::default(),
        }
    }

    #[test]
    fn a_render_error_keeps_its_warnings_and_plans_nothing() {
        let spec = "services:\n  web:\n    image: a\n    volumes: [\"/k/data/shop/pg:/pg\"]\n";
        let spec = crate::spec::parse(spec).spec.unwrap();
        let paths = Paths::new("/k");
        let config = Env::default();
        let subnets = SubnetState::default();
        let inputs = bare_inputs(&paths, &spec, &config, &subnets);
        let e = plan(&inputs).unwrap_err();
        assert!(e.message.contains("app shop's data directory"), "{e:?}");
    }

    #[test]
    fn a_network_that_does_not_exist_asks_for_every_network() {
        let spec = crate::spec::parse("services:\n  web:\n    image: a\n")
            .spec
            .unwrap();
        let paths = Paths::new("/k");
        let config = Env::default();
        let own = [DockerNet {
            name: "shop_default".into(),
            project: "shop".into(),
            key: "default".into(),
            subnets: vec!["198.18.0.64/26".parse().unwrap()],
        }];
        let subnets = SubnetState {
            recorded: [("default".to_owned(), "198.18.0.64/26".parse().unwrap())].into(),
            ..SubnetState::default()
        };
        let inputs = PlanInputs {
            networks: &own,
            all_networks: false,
            ..bare_inputs(&paths, &spec, &config, &subnets)
        };
        // its network exists: the app's own networks were enough
        let p = plan(&inputs).unwrap();
        assert_eq!(p.subnets, SubnetWrites::default());
        // gone (e.g. after `docker network prune`): plan again with all
        let e = plan(&PlanInputs {
            networks: &[],
            ..inputs.clone()
        })
        .unwrap_err();
        assert!(e.needs_all_networks, "{e:?}");
        let p = plan(&PlanInputs {
            networks: &[],
            all_networks: true,
            ..inputs
        })
        .unwrap();
        assert!(p.subnets.record.is_none(), "its recorded subnet comes back");
    }

    #[test]
    fn compose_env_keeps_no_variable_that_steers_docker_or_compose() {
        let got = compose_env(b"A=1\nDOCKER_HOST=tcp://x:1\n export COMPOSE_FILE=/etc/x\n# c\nB=2");
        assert_eq!(String::from_utf8(got).unwrap(), "A=1\n# c\nB=2\n");
    }

    #[test]
    fn mode_precedence() {
        use Mode::*;
        use SwarmRole as R;
        assert_eq!(choose_mode(None, None, R::None).unwrap().0, Compose);
        assert_eq!(choose_mode(None, None, R::Manager).unwrap().0, Swarm);
        assert_eq!(
            choose_mode(None, Some(Compose), R::Manager).unwrap().0,
            Compose
        );
        assert_eq!(
            choose_mode(Some(Compose), Some(Swarm), R::Manager)
                .unwrap()
                .0,
            Compose
        );
        assert!(
            choose_mode(None, Some(Swarm), R::Worker)
                .unwrap_err()
                .contains("worker")
        );
        assert!(choose_mode(None, Some(Swarm), R::None).is_err());
        assert_eq!(
            choose_mode(None, Some(Compose), R::Worker).unwrap().0,
            Compose
        );
    }

    #[test]
    fn only_running_routed_scalable_services_switch() {
        let spec = crate::spec::parse(
            "services:\n  web:\n    image: a\n  api:\n    image: a\n    container_name: fixed\n  db:\n    image: a\n  new:\n    image: a\n",
        )
        .spec
        .unwrap();
        let routed = vec![
            ("web".to_owned(), 80),
            ("api".to_owned(), 80),
            ("new".to_owned(), 80),
        ];
        let before = vec![
            container("web", "running"),
            container("api", "running"),
            container("db", "running"),
        ];
        assert_eq!(switched(&spec, &routed, &before), vec!["web"]);
        assert!(switched(&spec, &routed, &[container("web", "exited")]).is_empty());
    }

    #[test]
    fn the_start_step_is_planned_from_the_snapshot() {
        let spec = crate::spec::parse(
            "services:\n  web:\n    image: a\n    instances: 2\n  db:\n    image: b\n",
        )
        .spec
        .unwrap();
        let file = Path::new("/k/state/apps/shop/releases/4/docker-compose.yaml");
        let before = vec![
            container("web", "running"),
            container("web", "exited"),
            container("db", "running"),
        ];
        let plan = plan_start(ComposeCli::V2, "shop", file, &spec, &before, &["web"]);
        let argv: Vec<String> = plan.argv().iter().map(|a| a.join(" ")).collect();
        let rel = "/k/state/apps/shop/releases/4";
        let compose = format!(
            "docker compose -p shop -f {rel}/docker-compose.yaml --project-directory {rel}/src --env-file {rel}/compose.env"
        );
        assert_eq!(
            argv,
            [
                format!("{compose} up -d --no-deps --remove-orphans db"),
                "docker rm -f web-exited".to_owned(),
                format!("{compose} up -d --no-deps --no-recreate --scale web=3 web"),
            ]
        );
        // nothing to switch: one plain `up`
        let plan = plan_start(ComposeCli::V1, "shop", file, &spec, &before, &[]);
        assert_eq!(plan.scale.len() + plan.stale.len(), 0);
        assert!(
            plan.up
                .unwrap()
                .join(" ")
                .starts_with("docker-compose -p shop")
        );
    }

    #[test]
    fn retiring_stops_then_removes_the_running_old_containers_only() {
        let before = vec![
            container("web", "running"),
            container("web", "exited"),
            container("db", "running"),
        ];
        let old = retiring(&before, &["web"]);
        let argv: Vec<String> =
            argv::retire(&old.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
                .iter()
                .map(|a| a.join(" "))
                .collect();
        assert_eq!(
            argv,
            ["docker stop web-running", "docker rm -f web-running"]
        );
    }
}
