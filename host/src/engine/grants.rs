//! A run's capabilities: every node's declaration is checked against the
//! operator's [`Policy`] when the run starts or resumes (with its secrets
//! looked up, so that a missing one stops the run before any step), then
//! handed to each of its attempts as [`Grants`], with the run's scratch
//! directory and its workflow's key-value scope.

use crate::capability::{DirSource, Policy};
use crate::contract::{KeyValue, kv_scope};
use crate::sandbox::{Grants, KvBinding};
use crate::workflow::Workflow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every reason the nodes of `wf` cannot have what they declare under
/// `policy`, each naming the node; empty when they can.
/// A sub-workflow's nodes are checked too (named `node/child_node`), so that
/// a child that would be refused stops its parent before any step runs.
pub fn check_capabilities(wf: &Workflow, policy: &Policy) -> Vec<String> {
    let mut problems = Vec::new();
    for (at, wf) in wf.levels() {
        for node in &wf.nodes {
            for p in policy.check(&node.capabilities) {
                problems.push(format!("node `{at}{}`: {p}", node.id));
            }
            if let Err(e) = policy.secrets.resolve(&node.capabilities.secrets) {
                problems.push(format!("node `{at}{}`: capability `secrets`: {e}", node.id));
            }
        }
    }
    problems
}

/// What one run's attempts are granted.
pub(super) struct RunGrants {
    /// Per node index.
    pub(super) by_node: Vec<Arc<Grants>>,
    /// The run's scratch directory, when a node uses one (removed when the
    /// run finishes).
    pub(super) scratch: Option<PathBuf>,
}

impl RunGrants {
    /// The grants of a run `run_id` of `wf` owned by `tenant`.
    pub(super) fn new(
        wf: &Workflow,
        policy: &Policy,
        kv: Arc<dyn KeyValue>,
        scratch_root: &Path,
        run_id: &str,
        tenant: &str,
    ) -> Self {
        let scratch_dir = scratch_root.join(run_id);
        let uses_scratch = wf.nodes.iter().any(|n| n.capabilities.dirs.iter().any(|d| d.host == DirSource::Scratch));
        let scope = kv_scope(tenant, &wf.name);
        let by_node = wf
            .nodes
            .iter()
            .map(|n| {
                let mut g = Grants::under(n.capabilities.clone(), policy);
                if uses_scratch {
                    g.scratch_dir = Some(scratch_dir.clone());
                }
                if n.capabilities.kv {
                    g.kv = Some(KvBinding { store: kv.clone(), scope: scope.clone() });
                }
                Arc::new(g)
            })
            .collect();
        Self { by_node, scratch: uses_scratch.then_some(scratch_dir) }
    }
}

/// Where runs' scratch directories go by default: `weft-scratch` in the
/// system's temporary directory.
pub fn default_scratch_root() -> PathBuf {
    std::env::temp_dir().join("weft-scratch")
}
