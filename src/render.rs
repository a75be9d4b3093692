//! Render an app model to a compose file for one target.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// docker compose v2
    V2,
    /// docker-compose 1.29
    V1,
    /// docker stack deploy
    Stack,
}
