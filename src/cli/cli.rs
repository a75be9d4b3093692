//! The command line's grammar: clap definitions only, no behaviour. The
//! handlers ([`crate::cmd`], which also dispatches) and the SSH router
//! ([`crate::ssh`]) both read it; it depends on neither.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kata",
    version,
    about = "git-push micro-PaaS: deploy kata-compose.yaml apps on Docker behind Caddy",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Show every command kata runs and its output as printed.
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the KATA_ROOT skeleton and store host settings.
    Setup(SetupArgs),
    /// Register SSH public keys (FILE or - for stdin) with the kata forced command.
    #[command(name = "setup:ssh")]
    SetupSsh {
        file: String,
        /// Name for the key(s); default: the key comment.
        #[arg(long)]
        name: Option<String>,
        /// admin: everything (the default for a new key); deploy: push and
        /// manage only the apps matching --apps. Given again for a registered
        /// key, it changes the key's role.
        #[arg(long, value_enum)]
        role: Option<crate::access::Role>,
        /// For deploy keys: the apps it may push and manage, as patterns
        /// (`shop,blog-*`).
        #[arg(long, value_name = "PATTERN,...")]
        apps: Option<String>,
    },
    /// List registered SSH keys.
    #[command(name = "ssh:keys")]
    SshKeys {
        #[arg(long)]
        json: bool,
    },
    /// Remove a registered SSH key by name or fingerprint.
    #[command(name = "ssh:remove")]
    SshRemove { key: String },
    /// The forced command run by sshd for every connection.
    #[command(name = "ssh-serve", hide = true)]
    SshServe {
        #[arg(long)]
        key: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "admin")]
        role: crate::access::Role,
        #[arg(long)]
        apps: Option<String>,
    },
    /// Git hook entry point (reads `old new ref` lines on stdin): deploys
    /// (post-receive), or checks a deploy key's push (--pre-receive).
    #[command(name = "git-hook", hide = true)]
    GitHook {
        app: String,
        #[arg(long)]
        pre_receive: bool,
    },
    /// Finishes a deploy's retirement of old containers in the background
    /// (started by the deploy, detached from the push).
    #[command(name = "retire", hide = true)]
    Retire { app: String, release: u64 },
    /// Show the audit log: every SSH command and push, refusals included.
    Audit {
        /// Only events about this app.
        app: Option<String>,
        /// From this UTC time (2026-12-01, 2026-12-01T10:30:00Z) or age (30m, 2h, 7d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check a kata-compose.yaml as a push would (its render for compose v2
    /// and its Caddy server) and print `ok` or every error, warnings first;
    /// with `--target`, for those targets, each line tagged with its target.
    Validate {
        file: Option<PathBuf>,
        /// Render for this target too (repeatable: v2, v1, stack).
        #[arg(long, value_enum)]
        target: Vec<crate::model::Target>,
        /// The app whose config (`config:set` values) fills `.env`-style
        /// references; default: `app.name` in the file.
        #[arg(long)]
        app: Option<String>,
        /// Read the config values from this KEY=VALUE file instead (e.g. the
        /// `.env` the compose file was written for).
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Print the compose file a deploy would write, without deploying.
    Render {
        file: Option<PathBuf>,
        #[arg(long)]
        app: Option<String>,
        #[arg(long, value_enum, default_value = "v2")]
        target: crate::model::Target,
        /// Print the app's Caddy server JSON instead of the compose file.
        #[arg(long)]
        caddy: bool,
    },
    /// List the app templates `kata init` can write.
    Templates,
    /// Write a starter app from a template into DIR (default: the current directory).
    Init {
        template: String,
        dir: Option<PathBuf>,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// List apps and whether they are running.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show an app's containers (or swarm tasks).
    Ps {
        app: String,
        service: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show an app's logs.
    Logs {
        app: String,
        service: Option<String>,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines of each container (or `all`).
        #[arg(long, value_name = "N")]
        tail: Option<String>,
    },
    /// Start a stopped app.
    Start { app: String },
    /// Stop an app (its data stays).
    Stop { app: String },
    /// Restart an app or one of its services.
    Restart {
        app: String,
        service: Option<String>,
    },
    /// Remove an app; data/ and config/ survive unless --wipe.
    Rm {
        app: String,
        /// Do not ask (required when there is no terminal to ask on, e.g. over SSH).
        #[arg(short, long)]
        force: bool,
        /// Also delete data/<app> and config/<app>.
        #[arg(long)]
        wipe: bool,
    },
    /// Run a command inside a running service container.
    Run {
        app: String,
        service: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Redeploy the app's current commit.
    Deploy { app: String },
    /// Pass arguments to docker.
    Docker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List the swarm services of an app's stack.
    #[command(name = "docker:services")]
    DockerServices { app: String },
    /// Create or replace a swarm secret: NAME=VALUE, NAME=@file, or NAME (value on stdin).
    #[command(name = "secrets:set")]
    SecretsSet { spec: String },
    /// List swarm secrets.
    #[command(name = "secrets:ls")]
    SecretsLs,
    /// Remove a swarm secret.
    #[command(name = "secrets:rm")]
    SecretsRm { name: String },
    /// Show an app's config (config/<app>/ENV).
    Config { app: String },
    /// Print one value of an app's config.
    #[command(name = "config:get")]
    ConfigGet { app: String, key: String },
    /// Set K=V pairs and redeploy; a bare KEY reads its value from stdin.
    #[command(name = "config:set")]
    ConfigSet {
        app: String,
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Only save; the change takes effect with the next deploy.
        #[arg(long)]
        no_deploy: bool,
    },
    /// Unset keys and redeploy.
    #[command(name = "config:unset")]
    ConfigUnset {
        app: String,
        #[arg(required = true)]
        keys: Vec<String>,
        /// Only save; the change takes effect with the next deploy.
        #[arg(long)]
        no_deploy: bool,
    },
    /// Show the deployed app's kata-compose.yaml.
    #[command(name = "config:stack")]
    ConfigStack { app: String },
    /// Show the compose file the live release runs (its `docker-compose.yaml`).
    #[command(name = "config:docker")]
    ConfigDocker { app: String },
    /// Show the app's live part in Caddy as server JSON.
    #[command(name = "config:caddy")]
    ConfigCaddy { app: String },
    /// List every app's part in Caddy (or only APP's): its server, hosts,
    /// listen addresses, upstreams.
    #[command(name = "caddy:ls")]
    CaddyLs {
        app: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write every app's Caddy routes again from its live release (after
    /// Caddy lost its config, e.g. restarted without --resume).
    #[command(name = "caddy:sync")]
    CaddySync,
    /// Show or set an app's deploy mode.
    Mode {
        app: String,
        #[arg(value_enum)]
        mode: Option<crate::model::Mode>,
    },
    /// Show or set the branch whose pushes deploy the app.
    Branch {
        app: String,
        branch: Option<String>,
        /// Forget the app's own branch (back to the host default).
        #[arg(long, conflicts_with = "branch")]
        unset: bool,
    },
    /// List an app's releases, or show one release's deploy log.
    Releases {
        app: String,
        #[arg(long, conflicts_with = "log")]
        json: bool,
        /// Print the full output of release N's deploy.
        #[arg(long, value_name = "N")]
        log: Option<u64>,
    },
    /// Re-deploy a kept release (default: the one before the live one).
    Rollback { app: String, release: Option<u64> },
}

/// `kata setup`'s host settings.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Caddy admin endpoint: http://host:port or unix//path.
    #[arg(long, value_name = "URL")]
    pub caddy_admin: Option<String>,
    /// Base image the runtime images build FROM.
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,
    /// Default deploy branch (default: main, else master).
    #[arg(long, value_name = "BRANCH")]
    pub deploy_branch: Option<String>,
    /// How many releases to keep per app.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub keep_releases: Option<u64>,
    /// Time limit of quick docker calls (ps, inspect, rm, ...), in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub docker_timeout: Option<u64>,
    /// Time limit of builds, pulls, `compose up` and `docker stop`, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub build_timeout: Option<u64>,
    /// How long a new container may take to start and pass its health gate, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub start_timeout: Option<u64>,
    /// How long requests in flight to old containers may take to finish, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub drain_timeout: Option<u64>,
    /// Where apps' compose networks get their subnets (IPv4 CIDR).
    #[arg(long, value_name = "CIDR")]
    pub subnet_pool: Option<String>,
    /// Prefix length of each app network's subnet, cut from the pool.
    #[arg(long, value_name = "N")]
    pub subnet_prefix: Option<u8>,
    /// Host ports kata publishes routed services on (127.0.0.1 only), FIRST-LAST.
    #[arg(long, value_name = "FIRST-LAST")]
    pub port_range: Option<String>,
}
