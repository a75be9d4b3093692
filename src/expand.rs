//! Variable expansion.
