//! The kata-compose.yaml model.
