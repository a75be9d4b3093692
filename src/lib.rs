//! kata: a git-push micro-PaaS. The functional core (spec, env, render,
//! caddy planning, health gates, access rules) takes values and returns
//! values; the shell modules (git, ssh, docker, caddy admin, deploy) run
//! processes and HTTP. `tests/layout.rs` fails when a core module does I/O
//! or imports the shell.

// the command line: its grammar (pure) and the handlers that dispatch it
pub mod cli;
pub mod cmd;

// core
pub mod access;
pub mod compat;
pub mod env;
pub mod envfile;
pub mod expand;
pub mod gate;
pub mod model;
pub mod names;
pub mod notes;
pub mod output;
pub mod paths;
pub mod render;
pub mod secrets;
pub mod spec;
pub mod templates;
pub mod yaml;

// shell
pub mod apps;
pub mod audit;
pub mod caddy;
pub mod deploy;
pub mod docker;
pub mod fsutil;
pub mod git;
pub mod health;
pub mod lock;
pub mod release;
pub mod rollout;
pub mod runtime;
pub mod settings;
pub mod ssh;
pub mod state;
pub mod ui;
