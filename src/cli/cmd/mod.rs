//! Command handlers, one file per area. [`run`] (the binary's entry, and
//! the SSH router's for kata commands) and `dispatch` are the only router.
//! This is the binary's edge, so handlers return `anyhow::Result`; the
//! modules they call use typed errors.

pub mod apps;
pub mod caddy;
pub mod config;
pub mod releases;
pub mod setup;
pub mod spec;
pub mod ssh;
pub mod templates;

use crate::cli::{Cli, Command};

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if cli.verbose {
        crate::ui::set_verbose();
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        println!();
        return Ok(0);
    };
    dispatch(command)
}

pub fn dispatch(command: Command) -> anyhow::Result<i32> {
    use Command::*;
    match command {
        Setup(args) => setup::setup(args),
        SetupSsh {
            file,
            name,
            role,
            apps,
        } => ssh::setup_ssh(&file, name.as_deref(), role, apps.as_deref()),
        SshKeys { json } => ssh::keys(json),
        SshRemove { key } => ssh::remove(&key),
        SshServe {
            key,
            name,
            role,
            apps,
        } => ssh::serve(&key, &name, role, apps.as_deref()),
        GitHook { app, pre_receive } => ssh::git_hook(&app, pre_receive),
        Retire { app, release } => releases::retire(&app, release),
        Audit { app, since, json } => ssh::audit(app.as_deref(), since.as_deref(), json),
        Validate {
            file,
            target,
            app,
            env_file,
        } => spec::validate(file, &target, app, env_file),
        Render {
            file,
            app,
            target,
            caddy,
        } => spec::render(file, app, target, caddy),
        Templates => templates::list(),
        Init {
            template,
            dir,
            force,
        } => templates::init(&template, dir, force),
        Ls { json } => apps::ls(json),
        Ps { app, service, json } => apps::ps(&app, service.as_deref(), json),
        Logs {
            app,
            service,
            follow,
            tail,
        } => apps::logs(&app, service.as_deref(), follow, tail),
        Start { app } => apps::start(&app),
        Stop { app } => apps::stop(&app),
        Restart { app, service } => apps::restart(&app, service.as_deref()),
        Rm { app, force, wipe } => apps::rm(&app, force, wipe),
        Run { app, service, cmd } => apps::run(&app, &service, &cmd),
        Deploy { app } => apps::deploy(&app),
        Docker { args } => apps::docker(&args),
        DockerServices { app } => apps::docker_services(&app),
        SecretsSet { spec } => apps::secrets_set(&spec),
        SecretsLs => apps::secrets_ls(),
        SecretsRm { name } => apps::secrets_rm(&name),
        Config { app } => config::show(&app),
        ConfigGet { app, key } => config::get(&app, &key),
        ConfigSet {
            app,
            pairs,
            no_deploy,
        } => config::set(&app, &pairs, !no_deploy),
        ConfigUnset {
            app,
            keys,
            no_deploy,
        } => config::unset(&app, &keys, !no_deploy),
        ConfigStack { app } => config::stack(&app),
        ConfigDocker { app } => config::docker(&app),
        ConfigCaddy { app } => caddy::config_caddy(&app),
        CaddyLs { app, json } => caddy::ls(app.as_deref(), json),
        CaddySync => caddy::sync(),
        Mode { app, mode } => apps::mode(&app, mode),
        Branch { app, branch, unset } => apps::branch(&app, branch.as_deref(), unset),
        Releases {
            app,
            json,
            log: None,
        } => releases::list(&app, json),
        Releases {
            app, log: Some(n), ..
        } => releases::log(&app, n),
        Rollback { app, release } => releases::rollback(&app, release),
    }
}

/// Validates an app name typed by a user, before any file is touched.
pub fn app_arg(raw: &str) -> anyhow::Result<String> {
    Ok(crate::names::app_name(raw)?)
}
