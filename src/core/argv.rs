//! The docker and compose command lines kata runs, built as values (an
//! argv, program first) so a deploy can plan them, record them in its
//! journal and have them tested as strings. The shell only runs them.

use crate::model::ComposeCli;
use crate::paths::Paths;
use crate::spec::Runtime;
use std::path::{Path, PathBuf};

/// The name of a release's compose file in its release dir. Compose runs it
/// with `src/` beside it as project directory and [`COMPOSE_ENV`] beside it
/// as env file (see [`compose`]), never a `.env` inside `src/`.
pub const COMPOSE_FILE: &str = "docker-compose.yaml";
pub const COMPOSE_ENV: &str = "compose.env";

/// Where compose runs a recorded compose file: the project directory (the
/// release's code) and the env file to interpolate from, both derived from
/// the file's place. `None` for any other file.
pub fn compose_layout(file: &std::path::Path) -> Option<(PathBuf, PathBuf)> {
    if file.file_name()? != COMPOSE_FILE {
        return None;
    }
    let dir = file.parent()?;
    Some((dir.join("src"), dir.join(COMPOSE_ENV)))
}

/// `compose -p PROJECT -f FILE ... REST` for the host's compose CLI.
pub fn compose(cli: ComposeCli, project: &str, file: &Path, rest: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = match cli {
        ComposeCli::V2 => vec!["docker".into(), "compose".into()],
        ComposeCli::V1 => vec!["docker-compose".into()],
    };
    argv.extend([
        "-p".into(),
        project.into(),
        "-f".into(),
        file.display().to_string(),
    ]);
    // A release's recorded compose file runs with the release's code as
    // project directory, and interpolates from the `.env` recorded when
    // the release was made, never from one a container wrote into it.
    if let Some((dir, env_file)) = compose_layout(file) {
        argv.extend([
            "--project-directory".into(),
            dir.display().to_string(),
            "--env-file".into(),
            env_file.display().to_string(),
        ]);
    }
    argv.extend(rest.iter().map(|s| s.to_string()));
    argv
}

fn docker<S: AsRef<str>>(words: &[&str], ids: &[S]) -> Vec<String> {
    let mut argv: Vec<String> = ["docker"]
        .iter()
        .chain(words)
        .map(|s| s.to_string())
        .collect();
    argv.extend(ids.iter().map(|s| s.as_ref().to_owned()));
    argv
}

/// `docker rm -f IDS`: removes containers, running or not.
pub fn rm<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    docker(&["rm", "-f"], ids)
}

/// Retiring old containers: `docker stop` (their own grace period), then
/// `docker rm -f`; nothing for none.
pub fn retire<S: AsRef<str>>(ids: &[S]) -> Vec<Vec<String>> {
    if ids.is_empty() {
        return vec![];
    }
    vec![docker(&["stop"], ids), rm(ids)]
}

/// `docker stack deploy`: swarm's rolling update of the whole stack.
pub fn stack_deploy(file: &Path, app: &str) -> Vec<String> {
    let f = file.display().to_string();
    docker(
        &["stack", "deploy", "--prune", "-c", &f, app],
        &[] as &[&str],
    )
}

/// Whether an image is on this host (fails when it is not).
pub fn image_inspect(image: &str) -> Vec<String> {
    docker(
        &["image", "inspect", "--format", "{{.Id}}", image],
        &[] as &[&str],
    )
}

/// Builds runtime image `tag` from the context `dir`, on `base`, labelled
/// with the fingerprint `hash` of what it is built from.
pub fn runtime_build(base: &str, hash: &str, tag: &str, dir: &Path) -> Vec<String> {
    let (base, hash, dir) = (
        format!("BASE={base}"),
        format!("kata.runtime.hash={hash}"),
        dir.display().to_string(),
    );
    let words = [
        "build",
        "--build-arg",
        &base,
        "--label",
        &hash,
        "-t",
        tag,
        &dir,
    ];
    docker(&words, &[] as &[&str])
}

/// Removes runtime images a rebuild untagged and no container uses.
pub fn prune_runtime_images() -> Vec<String> {
    let words = [
        "image",
        "prune",
        "--force",
        "--filter",
        "label=kata.runtime.hash",
    ];
    docker(&words, &[] as &[&str])
}

/// The code volumes (`<app>_app_r<N>`) whose names start with `prefix`.
pub fn code_volumes(prefix: &str) -> Vec<String> {
    let filter = format!("name={prefix}");
    docker(&["volume", "ls", "-q", "--filter", &filter], &[] as &[&str])
}

/// `docker network rm ID`.
pub fn network_rm(id: &str) -> Vec<String> {
    docker(&["network", "rm", id], &[] as &[&str])
}

/// `docker volume rm NAME` (docker refuses one in use).
pub fn volume_rm(name: &str) -> Vec<String> {
    docker(&["volume", "rm", name], &[] as &[&str])
}

/// The host directories a build step mounts.
#[derive(Debug, Clone)]
pub struct BuildMounts {
    pub app: PathBuf,
    pub venv: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
}

impl BuildMounts {
    pub fn of(paths: &Paths, app: &str, src: &Path) -> BuildMounts {
        BuildMounts {
            app: src.to_path_buf(),
            venv: paths.envs(app),
            config: paths.config(app),
            data: paths.data(app),
        }
    }
}

/// A planned `docker run` of a runtime's build step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRun {
    /// The command line, program first.
    pub args: Vec<String>,
    /// Set in the docker CLI's environment and named by `-e KEY` alone.
    pub env: Vec<(String, String)>,
    /// Variables the docker CLI would itself act on (`DOCKER_*`, `PATH`,
    /// `HOME`): written to this body in a kata-owned 0600 file, passed with
    /// `--env-file`.
    pub env_file: Option<String>,
}

/// Plans the build step's `docker run`. Pure. No config value is put on the
/// command line, where every user on the host could read it.
pub fn build_run(
    app: &str,
    mounts: BuildMounts,
    rt: Runtime,
    (puid, pgid): (u32, u32),
    env: Vec<(String, String)>,
    env_file: &Path,
) -> Result<BuildRun, String> {
    let mut args: Vec<String> = vec![
        "docker".into(),
        "run".into(),
        "--rm".into(),
        "--user".into(),
        format!("{puid}:{pgid}"),
        "--label".into(),
        format!("kata.build={app}"),
        "-v".into(),
        format!("{}:/app", mounts.app.display()),
        "-v".into(),
        format!("{}:/venv", mounts.venv.display()),
        "-v".into(),
        format!("{}:/config:ro", mounts.config.display()),
        "-v".into(),
        format!("{}:/data", mounts.data.display()),
    ];
    let (for_file, env): (Vec<_>, Vec<_>) = env
        .into_iter()
        .partition(|(k, _)| k == "PATH" || k == "HOME" || k.starts_with("DOCKER_"));
    let mut body = String::new();
    for (k, v) in &for_file {
        if v.contains('\n') || v.contains('\r') {
            return Err(format!(
                "{k}: a variable the docker CLI itself reads cannot hold a line break in a build step"
            ));
        }
        body.push_str(&format!("{k}={v}\n"));
    }
    if !for_file.is_empty() {
        args.push("--env-file".into());
        args.push(env_file.display().to_string());
    }
    for (k, _) in &env {
        args.push("-e".into());
        args.push(k.clone());
    }
    args.push(rt.image());
    args.push("build".into());
    Ok(BuildRun {
        args,
        env,
        env_file: (!for_file.is_empty()).then_some(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(argv: &[String]) -> String {
        argv.join(" ")
    }

    #[test]
    fn compose_runs_a_recorded_file_with_its_code_and_env() {
        let plain = Path::new("/x/c.yaml");
        insta::assert_snapshot!(line(&compose(ComposeCli::V2, "demo", plain, &["up", "-d"])), @"docker compose -p demo -f /x/c.yaml up -d");
        insta::assert_snapshot!(line(&compose(ComposeCli::V1, "demo", plain, &["ps"])), @"docker-compose -p demo -f /x/c.yaml ps");
        let recorded = Path::new("/k/releases/4/docker-compose.yaml");
        insta::assert_snapshot!(line(&compose(ComposeCli::V1, "demo", recorded, &["down"])), @"docker-compose -p demo -f /k/releases/4/docker-compose.yaml --project-directory /k/releases/4/src --env-file /k/releases/4/compose.env down");
    }

    #[test]
    fn container_stack_image_and_volume_commands() {
        let ids = ["a1", "b2"];
        insta::assert_snapshot!(line(&rm(&ids)), @"docker rm -f a1 b2");
        let retire: Vec<String> = retire(&ids).iter().map(|a| line(a)).collect();
        insta::assert_snapshot!(retire.join("\n"), @r"
        docker stop a1 b2
        docker rm -f a1 b2
        ");
        assert!(super::retire::<&str>(&[]).is_empty());
        insta::assert_snapshot!(line(&stack_deploy(Path::new("/k/r/2/docker-compose.yaml"), "shop")), @"docker stack deploy --prune -c /k/r/2/docker-compose.yaml shop");
        insta::assert_snapshot!(line(&image_inspect("busybox:1")), @"docker image inspect --format {{.Id}} busybox:1");
        insta::assert_snapshot!(line(&code_volumes("shop_app_r")), @"docker volume ls -q --filter name=shop_app_r");
        insta::assert_snapshot!(line(&volume_rm("shop_app_r3")), @"docker volume rm shop_app_r3");
        insta::assert_snapshot!(line(&network_rm("0a1b")), @"docker network rm 0a1b");
        let build = runtime_build(
            "debian:bookworm-slim",
            "f00d",
            "kata/python",
            Path::new("/tmp/ctx"),
        );
        insta::assert_snapshot!(line(&build), @"docker build --build-arg BASE=debian:bookworm-slim --label kata.runtime.hash=f00d -t kata/python /tmp/ctx");
        insta::assert_snapshot!(line(&prune_runtime_images()), @"docker image prune --force --filter label=kata.runtime.hash");
    }

    #[test]
    fn build_step_keeps_config_values_off_its_argv() {
        let mounts = BuildMounts {
            app: "/k/state/apps/a/releases/3/src".into(),
            venv: "/k/envs/a".into(),
            config: "/k/config/a".into(),
            data: "/k/data/a".into(),
        };
        let env: Vec<(String, String)> = [
            ("SECRET", "hunter2"),
            ("DOCKER_TOKEN", "tok-value"),
            ("PATH", "/venv/bin:/usr/bin"),
            ("KATA_BUILD_COMMANDS", "make\nmake install"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let run = build_run(
            "a",
            mounts.clone(),
            Runtime::Python,
            (1000, 1000),
            env,
            Path::new("/k/state/apps/a/releases/3/build.env"),
        )
        .unwrap();
        let argv = run.args.join(" ");
        for value in ["hunter2", "tok-value", "/venv/bin:/usr/bin", "make install"] {
            assert!(!argv.contains(value), "{value} on argv: {argv}");
        }
        insta::assert_snapshot!(argv, @"docker run --rm --user 1000:1000 --label kata.build=a -v /k/state/apps/a/releases/3/src:/app -v /k/envs/a:/venv -v /k/config/a:/config:ro -v /k/data/a:/data --env-file /k/state/apps/a/releases/3/build.env -e SECRET -e KATA_BUILD_COMMANDS kata/python build");
        assert_eq!(
            run.env_file.as_deref(),
            Some("DOCKER_TOKEN=tok-value\nPATH=/venv/bin:/usr/bin\n")
        );
        assert_eq!(run.env.len(), 2);
        // nothing for the file: no --env-file at all
        let plain = build_run(
            "a",
            mounts.clone(),
            Runtime::Python,
            (0, 0),
            vec![("A".into(), "1".into())],
            Path::new("/x"),
        )
        .unwrap();
        assert!(!plain.args.iter().any(|a| a == "--env-file"));
        assert_eq!(plain.env_file, None);
        let bad = build_run(
            "a",
            mounts,
            Runtime::Python,
            (0, 0),
            vec![("DOCKER_X".into(), "a\nb".into())],
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(bad.contains("DOCKER_X"), "{bad}");
        assert!(!bad.contains("a\nb"));
    }
}
