//! One integration-test binary; each module covers one area against real parts.

mod caddy;
mod caddy_deploy;
mod caddy_edge;
mod caddy_guard;
mod compose_deploy;
mod containment;
mod crash;
mod docker_deploy;
mod docker_lifecycle;
mod docker_swarm;
mod fixtures_smoke;
mod push_output;
mod releases;
mod render_compose;
mod restarts;
mod roles;
mod runtime_signals;
mod ssh_push;
mod subnets;
mod support;
mod templates;
