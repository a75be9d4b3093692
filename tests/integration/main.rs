//! One integration-test binary; each module covers one area against real parts.

mod caddy;
mod docker_deploy;
mod docker_lifecycle;
mod fixtures_smoke;
mod releases;
mod render_compose;
mod ssh_push;
mod support;
