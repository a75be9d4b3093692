//! One integration-test binary; each module covers one area against real parts.

mod support;
mod render_compose;
mod fixtures_smoke;
