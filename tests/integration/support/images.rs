//! The local base images the tests run. No registry is reachable, so
//! `scripts/install-deps` builds them (busybox-static root and an mmdebstrap
//! bookworm, both through `docker import`); tests only check they are there.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Small image with `sh`, `httpd`, `nc`, `sleep`, ... (busybox applets).
pub const BUSYBOX: &str = "kata-test/busybox:latest";
/// kata's default base image (minbase bookworm with python3).
pub const DEBIAN: &str = "debian:bookworm-slim";

const HINT: &str = "run `sudo scripts/install-deps` (it starts dockerd and builds the test images)";

/// Checks, once per test process, that the Docker engine answers and that the
/// test images exist; panics with what to do otherwise. Tests never skip
/// silently when the engine or an image is missing.
pub fn ensure_test_images() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(msg) = CHECKED.get_or_init(check) {
        panic!("{msg}");
    }
}

fn docker_succeeds(args: &[&str]) -> Result<bool, String> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .map_err(|e| format!("cannot run `docker`: {e}; {HINT}"))
}

fn check() -> Result<(), String> {
    if !docker_succeeds(&["info"])? {
        return Err(format!(
            "the Docker engine does not answer `docker info`; {HINT}"
        ));
    }
    let missing: Vec<&str> = [BUSYBOX, DEBIAN]
        .into_iter()
        .filter(|image| !matches!(docker_succeeds(&["image", "inspect", image]), Ok(true)))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "test image(s) missing: {}; {HINT}",
            missing.join(", ")
        ));
    }
    Ok(())
}
