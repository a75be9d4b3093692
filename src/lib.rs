//! kata: a git-push micro-PaaS. The functional core (`src/core/`: spec,
//! env, render, caddy planning, health gates, access rules) takes values and
//! returns values; the shell (`src/shell/`: git, docker, caddy admin, deploy,
//! files) runs processes and HTTP; `src/cli/` holds the command line's
//! grammar, its handlers and the SSH router. `tests/layout.rs` fails when a
//! core module does I/O or imports the shell.
//!
//! The rooms are directories only: every module keeps its path at the crate
//! root (`crate::render`, `crate::docker`, ...), so `#[path]` names its file.

// the command line: its grammar (pure), the handlers, the SSH router
#[path = "cli/cli.rs"]
pub mod cli;
#[path = "cli/cmd/mod.rs"]
pub mod cmd;
#[path = "cli/ssh.rs"]
pub mod ssh;

// core
#[path = "core/access/mod.rs"]
pub mod access;
#[path = "core/argv.rs"]
pub mod argv;
#[path = "core/binds.rs"]
pub mod binds;
#[path = "core/caddy/mod.rs"]
pub mod caddy;
#[path = "core/compat.rs"]
pub mod compat;
#[path = "core/env.rs"]
pub mod env;
#[path = "core/envfile.rs"]
pub mod envfile;
#[path = "core/expand.rs"]
pub mod expand;
#[path = "core/extends.rs"]
pub mod extends;
#[path = "core/gate.rs"]
pub mod gate;
#[path = "core/model.rs"]
pub mod model;
#[path = "core/names.rs"]
pub mod names;
#[path = "core/notes.rs"]
pub mod notes;
#[path = "core/output.rs"]
pub mod output;
#[path = "core/paths.rs"]
pub mod paths;
#[path = "core/plan.rs"]
pub mod plan;
#[path = "core/ports.rs"]
pub mod ports;
#[path = "core/render.rs"]
pub mod render;
#[path = "core/route_status.rs"]
pub mod route_status;
#[path = "core/scalars.rs"]
pub mod scalars;
#[path = "core/secrets.rs"]
pub mod secrets;
#[path = "core/spec.rs"]
pub mod spec;
#[path = "core/subnets.rs"]
pub mod subnets;
#[path = "core/templates.rs"]
pub mod templates;
#[path = "core/yaml.rs"]
pub mod yaml;

// shell
#[path = "shell/apps.rs"]
pub mod apps;
#[path = "shell/audit.rs"]
pub mod audit;
#[path = "shell/deploy.rs"]
pub mod deploy;
#[path = "shell/deploy_error.rs"]
pub mod deploy_error;
#[path = "shell/docker.rs"]
pub mod docker;
#[path = "shell/fsutil.rs"]
pub mod fsutil;
#[path = "shell/git.rs"]
pub mod git;
#[path = "shell/health.rs"]
pub mod health;
#[path = "shell/journal.rs"]
pub mod journal;
#[path = "shell/lock.rs"]
pub mod lock;
#[path = "shell/pin_files.rs"]
pub mod pin_files;
#[path = "shell/port_store.rs"]
pub mod port_store;
#[path = "shell/recovery.rs"]
pub mod recovery;
#[path = "shell/release.rs"]
pub mod release;
#[path = "shell/rollout.rs"]
pub mod rollout;
#[path = "shell/runtime.rs"]
pub mod runtime;
#[path = "shell/settings.rs"]
pub mod settings;
#[path = "shell/state.rs"]
pub mod state;
#[path = "shell/subnet_store.rs"]
pub mod subnet_store;
#[path = "shell/ui.rs"]
pub mod ui;
