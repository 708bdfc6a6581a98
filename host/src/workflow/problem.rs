//! What a workflow file gets wrong: every [`Problem`], with the file, the
//! line and column, the node, and what to do.

use super::yaml::Pos;
use std::fmt;

/// One thing wrong with a workflow file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file (or `<input>`).
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// The node it concerns, if any.
    pub node_id: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a problem with the whole file, not a place in it.
        if self.pos.line == 0 {
            write!(f, "{}", self.file)?;
        } else {
            write!(f, "{}:{}", self.file, self.pos)?;
        }
        if let Some(id) = &self.node_id {
            write!(f, ": node `{id}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the workflow has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}
