//! ENV files.
