//! Workflow definitions: from YAML to a validated [`Workflow`] the engine runs.
//!
//! - `yaml`: the YAML tree, every node with its line and column;
//! - `load`: the walk over that tree that reports every problem at once
//!   ([`Problem`], [`ValidationError`]);
//! - `model`: what a valid workflow is ([`Workflow`], [`NodeSpec`], the
//!   [`Graph`], policies and modes);
//! - `expr`: conditions and input mappings in CEL;
//! - `component`: where a node's component file is, and the
//!   [`ComponentCheck`] that asks whether it fits;
//! - `render`: the graph as Mermaid or Graphviz dot;
//! - `suggest`: did-you-mean, for keys, ids and action targets.

mod component;
pub mod expr;
mod load;
mod model;
mod problem;
mod render;
mod suggest;
pub mod yaml;

pub use component::{ComponentCheck, HostDirs, PLUGIN_PATH_ENV, lexical, resolve_component};
pub use load::{MAX_EXPANDED, MAX_NESTED_BYTES, load_file, load_str, load_str_pinned};
pub use model::*;
pub use problem::{Problem, ValidationError};
pub use render::{GraphFormat, render_graph};
pub use suggest::closest;
