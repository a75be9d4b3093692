//! Test fixtures: a temp KATA_ROOT with a builder-style command runner, free
//! loopback ports, and real sshd / Caddy / Docker helpers in sibling modules.
#![allow(dead_code)]
