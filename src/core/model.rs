//! Types both the planning core and the shell use: the deploy mode, the
//! render target, the host's compose CLI and swarm role, an app's
//! container. Pure values; nothing here touches the host.

/// How an app runs: compose (one host) or a swarm stack.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Compose,
    Swarm,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Compose => "compose",
            Mode::Swarm => "swarm",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "compose" => Some(Mode::Compose),
            "swarm" => Some(Mode::Swarm),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a compose file is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// docker compose v2
    V2,
    /// docker-compose 1.29
    V1,
    /// docker stack deploy
    Stack,
}

/// Which compose CLI runs an app (found by `ComposeCli::detect` in
/// [`crate::docker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeCli {
    /// `docker compose` (v2 plugin)
    V2,
    /// `docker-compose` 1.x
    V1,
}

impl ComposeCli {
    /// The render target this CLI runs.
    pub fn target(self) -> Target {
        match self {
            ComposeCli::V2 => Target::V2,
            ComposeCli::V1 => Target::V1,
        }
    }
}

/// One container of an app, found by kata's labels (`docker ps -a`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    pub state: String,
    pub status: String,
    pub release: Option<u64>,
}

/// This node's swarm role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmRole {
    None,
    Manager,
    Worker,
}
