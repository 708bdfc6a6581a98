//! Workflow definitions: the YAML model, validation, the DAG, expressions.

pub mod expr;
mod load;
mod model;
pub mod yaml;

pub(crate) use load::closest;
pub use load::{ComponentCheck, PLUGIN_PATH_ENV, Problem, ValidationError, load_file, load_str, resolve_component};
pub use model::*;
