//! What [`crate::render`] and [`crate::compat`] find while rendering: each
//! warning or error pointed at the node of the file it is about.

use crate::spec::Diag;
use crate::yaml::Node;

/// Findings made while rendering, pointed at the file's nodes.
pub(crate) struct Notes<'a> {
    pub(crate) source: &'a Node,
    pub warnings: Vec<Diag>,
    pub errors: Vec<Diag>,
    pub(crate) seeds: Vec<(String, std::path::PathBuf)>,
}

impl Notes<'_> {
    pub fn warn(&mut self, path: &[&str], msg: impl Into<String>) {
        self.warnings.push(Diag::at(self.source.find(path), msg));
    }
    pub fn err(&mut self, path: &[&str], msg: impl Into<String>) {
        self.errors.push(Diag::at(self.source.find(path), msg));
    }
}
