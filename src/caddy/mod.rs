//! Caddy: validation and expansion of an app's server object (pure), and the
//! admin API client that writes exactly `apps.http.servers.<app>` (shell).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EndpointError {
    #[error("invalid Caddy admin endpoint {0:?}: use http://host:port or unix//path")]
    Invalid(String),
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
            Endpoint::Http { host: "localhost".into(), port: 2019 }
        );
        assert_eq!(
            Endpoint::parse("unix//run/caddy/admin.sock").unwrap(),
            Endpoint::Unix("/run/caddy/admin.sock".into())
        );
        for bad in ["localhost:2019", "http://h", "http://h:x", "unix/rel", "https://h:1", "http://u@h:1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
