//! Runtime images (`kata/<runtime>`), built from the Dockerfiles in
//! `runtimes/` that are embedded in the binary. An image is rebuilt only when
//! its Dockerfile, the entrypoint script or the base image changed.

use crate::argv;
use crate::docker::{self, DockerError};
use crate::spec::Runtime;
use sha2::{Digest, Sha256};

const ENTRYPOINT: &str = include_str!("../../runtimes/kata-runtime");

pub fn dockerfile(rt: Runtime) -> &'static str {
    match rt {
        Runtime::Python => include_str!("../../runtimes/python/Dockerfile"),
        Runtime::Nodejs => include_str!("../../runtimes/nodejs/Dockerfile"),
        Runtime::Go => include_str!("../../runtimes/go/Dockerfile"),
        Runtime::Static => include_str!("../../runtimes/static/Dockerfile"),
    }
}

/// The fingerprint an up-to-date image carries in its `kata.runtime.hash` label.
pub fn fingerprint(rt: Runtime, base_image: &str, base_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [dockerfile(rt), ENTRYPOINT, base_image, base_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Builds `kata/<rt>` unless an image with the same fingerprint exists.
/// Returns whether it built.
pub fn ensure(rt: Runtime, base_image: &str) -> Result<bool, DockerError> {
    let base_id = docker::run(&argv::image_inspect(base_image))
        .map_err(|e| DockerError::Other(format!(
            "base image {base_image} is not available on this host (set another with `kata setup --base-image IMAGE`): {e}"
        )))?;
    let want = fingerprint(rt, base_image, base_id.trim());
    // Trusted is the image kata built and recorded, never a label: a label
    // can be inherited (`FROM kata/python`) by an image someone else tagged.
    let record = crate::paths::Paths::from_env()
        .root()
        .join("state/runtimes")
        .join(rt.as_str());
    let tagged = || {
        docker::run(&argv::image_inspect(&rt.image()))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let recorded = std::fs::read_to_string(&record).unwrap_or_default();
    if is_recorded(&recorded, &want, &tagged()) {
        return Ok(false);
    }
    let dir = tempfile::tempdir().map_err(|e| DockerError::Other(format!("temp dir: {e}")))?;
    let write = |name: &str, body: &str, mode: u32| -> Result<(), DockerError> {
        crate::fsutil::write_atomic_mode(&dir.path().join(name), body.as_bytes(), Some(mode))
            .map_err(|e| DockerError::Other(format!("writing build context: {e}")))
    };
    write("Dockerfile", dockerfile(rt), 0o644)?;
    write("kata-runtime", ENTRYPOINT, 0o755)?;
    let build = argv::runtime_build(base_image, &want, &rt.image(), dir.path());
    docker::run_streamed(&build, &[("DOCKER_BUILDKIT", "0")])?;
    let id = tagged();
    if let Some(dir) = record.parent() {
        let _ = crate::fsutil::private_dir(dir);
    }
    crate::fsutil::write_atomic(&record, format!("{want} {id}\n").as_bytes())
        .map_err(|e| DockerError::Other(format!("recording {}: {e}", rt.image())))?;
    Ok(true)
}

/// Whether the image now tagged (`tagged`, its ID) is the one kata recorded
/// building for fingerprint `want`. Pure.
fn is_recorded(recorded: &str, want: &str, tagged: &str) -> bool {
    !tagged.is_empty() && recorded.trim() == format!("{want} {tagged}")
}

/// Removes runtime images that a rebuild untagged and no container uses any
/// more (run after a deploy has stopped the old containers). Best effort:
/// never fails a deploy.
pub fn prune_replaced() {
    let _ = docker::run(&argv::prune_runtime_images());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_image_kata_recorded_is_up_to_date() {
        assert!(is_recorded("fp sha256:a\n", "fp", "sha256:a"));
        // another image under the tag, even with kata's label inherited
        assert!(!is_recorded("fp sha256:a\n", "fp", "sha256:b"));
        assert!(!is_recorded("old sha256:a\n", "fp", "sha256:a"));
        assert!(!is_recorded("", "fp", "sha256:a"));
        assert!(!is_recorded("fp \n", "fp", ""));
    }

    #[test]
    fn fingerprint_changes_with_inputs() {
        let a = fingerprint(Runtime::Python, "debian:bookworm-slim", "sha256:1");
        assert_eq!(
            a,
            fingerprint(Runtime::Python, "debian:bookworm-slim", "sha256:1")
        );
        assert_ne!(
            a,
            fingerprint(Runtime::Python, "debian:bookworm-slim", "sha256:2")
        );
        assert_ne!(
            a,
            fingerprint(Runtime::Nodejs, "debian:bookworm-slim", "sha256:1")
        );
        for rt in Runtime::ALL {
            assert!(dockerfile(rt).contains("kata-runtime"));
        }
    }
}
