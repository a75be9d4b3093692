//! Caddy: validation and expansion of an app's server object (pure), the
//! planning of each app's part of a shared server (pure), and the admin API
//! client that executes those plans (shell).
//!
//! - [`validate`]: structural checks on the `caddy:` YAML (before variable
//!   expansion), each issue with a key path and line:column.
//! - [`expand`]: kata's shorthand (`domains`, `service`, `port`, `https`) →
//!   a full Caddy server object.
//! - [`resolve_upstreams`] / [`service_dials`]: `<service>:<port>` dials →
//!   the service's published loopback ports, or its container addresses.
//! - [`shared`]: many apps on one listen address: each app's part, found by
//!   its `@id`, and the admin calls that write, replace or remove it.
//! - [`Admin`]: targeted admin API calls over ureq (TCP, or a unix socket
//!   through [`unix`]'s connector).
//! - [`summarize`]: what `caddy:ls` shows about one server.

#[path = "../../shell/caddy/admin.rs"]
mod admin;
#[path = "../../shell/caddy/guard.rs"]
mod guard;
mod listen;
pub mod shared;
mod shorthand;
mod summary;
#[path = "../../shell/caddy/unix.rs"]
mod unix;
mod upstreams;
mod validate;

pub use admin::{Admin, CaddyLock, UpstreamStatus};
pub use guard::{AdminReach, Machine, admin_reach, refuse_admin_reach};
pub use listen::{canonical as canonical_address, same_address};
pub use shared::{Plan, Refusal};
pub use shorthand::expand;
pub use summary::{ServerSummary, summarize, summarize_entry};
pub use upstreams::{Upstreams, resolve_upstreams, service_dials};
pub use validate::{CaddyIssue, validate};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EndpointError {
    #[error("invalid Caddy admin endpoint {0:?}: use http://host:port or unix//path")]
    Invalid(String),
}

/// Everything that can go wrong planning or writing an app's Caddy server.
/// Errors from the admin API always name the endpoint; when Caddy answered
/// with an error status, its body is included verbatim.
#[derive(Debug, Error)]
pub enum CaddyError {
    /// The server object (after variable expansion) is not usable.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A `<service>:<port>` dial names a service with no running container.
    #[error(
        "caddy: service {service:?} is routed (dial {dial:?}) but has no live container address"
    )]
    NoAddresses { service: String, dial: String },
    /// The app's part cannot be written (a host, an address or a
    /// server-level setting another app has); nothing was sent.
    #[error("{refusal} (nothing was sent to Caddy at {endpoint})")]
    Plan {
        endpoint: String,
        refusal: Box<shared::Refusal>,
    },
    /// A name that cannot be an app's name.
    #[error("invalid app name for Caddy {0:?}")]
    BadName(String),
    /// Connecting, sending or reading failed (refused, timed out, ...).
    #[error("Caddy admin API at {endpoint} is unreachable: {detail}")]
    Unreachable { endpoint: String, detail: String },
    /// Caddy answered with an error status; `body` is Caddy's own words.
    #[error(
        "Caddy admin API at {endpoint} refused {method} {path} (HTTP {status}): {body}{}",
        hint(body)
    )]
    Refused {
        endpoint: String,
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    /// Caddy answered 2xx with something kata cannot read.
    #[error("Caddy admin API at {endpoint}: unexpected answer to {method} {path}: {detail}")]
    Protocol {
        endpoint: String,
        method: String,
        path: String,
        detail: String,
    },
    /// The config kept changing under us (another writer) and retries ran out.
    #[error(
        "Caddy admin API at {endpoint}: config changed concurrently {attempts} times while writing {path}; try again"
    )]
    Conflict {
        endpoint: String,
        path: String,
        attempts: u32,
    },
    /// The host-wide Caddy lock could not be taken.
    #[error("cannot take the Caddy lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// A short explanation for Caddy errors whose cause is not obvious.
fn hint(body: &str) -> &'static str {
    if body.contains("listener address repeated") {
        "\nhint: Caddy allows only one server per listen address; another server (app) already listens there"
    } else {
        ""
    }
}

/// Where Caddy's admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://host:port` (scheme, host and port; no path).
    Http { host: String, port: u16 },
    /// `unix//path/to/socket`.
    Unix(std::path::PathBuf),
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let bad = || EndpointError::Invalid(s.to_owned());
        if let Some(p) = s.strip_prefix("unix/") {
            if p.starts_with('/') && p.len() > 1 {
                return Ok(Endpoint::Unix(p.into()));
            }
            return Err(bad());
        }
        let rest = s.strip_prefix("http://").ok_or_else(bad)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(bad());
        }
        Ok(Endpoint::Http {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Http { host, port } => write!(f, "http://{host}:{port}"),
            Endpoint::Unix(p) => write!(f, "unix/{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("http://localhost:2019").unwrap(),
            Endpoint::Http {
                host: "localhost".into(),
                port: 2019
            }
        );
        assert_eq!(
            Endpoint::parse("unix//run/caddy/admin.sock").unwrap(),
            Endpoint::Unix("/run/caddy/admin.sock".into())
        );
        for bad in [
            "localhost:2019",
            "http://h",
            "http://h:x",
            "unix/rel",
            "https://h:1",
            "http://u@h:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        for s in [
            "http://localhost:2019",
            "unix//run/caddy/admin.sock",
            "http://[::1]:2019",
        ] {
            assert_eq!(Endpoint::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn refused_error_keeps_body_and_hints() {
        let e = CaddyError::Refused {
            endpoint: "http://127.0.0.1:1".into(),
            method: "POST".into(),
            path: "/config/apps/http/servers/a".into(),
            status: 500,
            body: "{\"error\":\"... listener address repeated: tcp/:80 ...\"}".into(),
        };
        let s = e.to_string();
        assert!(s.contains("http://127.0.0.1:1"), "{s}");
        assert!(
            s.contains("{\"error\":\"... listener address repeated: tcp/:80 ...\"}"),
            "{s}"
        );
        assert!(
            s.contains("hint: Caddy allows only one server per listen address"),
            "{s}"
        );
    }
}
