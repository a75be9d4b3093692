//! One integration-test binary; each module covers one area against real parts.

mod caddy;
mod fixtures_smoke;
mod render_compose;
mod ssh_push;
mod support;
