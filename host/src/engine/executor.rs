//! The seam between the engine and whatever runs a step: [`StepExecutor`].
//! The engine knows nothing of wasm; the sandbox implements this
//! ([`SandboxExecutor`](super::SandboxExecutor)), and so does the scripted
//! executor that tests the engine without wasm
//! ([`ScriptedExecutor`](super::scripted::ScriptedExecutor)).

use crate::contract::AttemptReport;
use crate::sandbox::{Grants, Limits, StepCall};
use crate::store::PinnedComponent;
use crate::workflow::{ComponentCheck, NodeSpec, NodeType, Workflow};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed attempt future.
pub type AttemptFuture = Pin<Box<dyn Future<Output = AttemptReport> + Send>>;

/// What an executor keeps loaded for a run, for as long as the run holds it
/// (see [`StepExecutor::hold`]).
pub type Held = Box<dyn std::any::Any + Send + Sync>;

/// Executes one attempt of one step.
pub trait StepExecutor: Send + Sync + 'static {
    /// Loads everything the workflow's nodes need; `Err` lists what failed.
    fn prepare(&self, wf: &Workflow) -> Result<(), Vec<String>>;
    /// Runs one attempt of `node` with what it is `granted`. `pinned` is the
    /// digest of the component version the run pinned for it (from
    /// [`StepExecutor::pins`]): the attempt runs that version, whatever the
    /// file holds now.
    fn execute(
        &self,
        node: &NodeSpec,
        pinned: Option<&str>,
        call: StepCall,
        limits: Limits,
        granted: Arc<Grants>,
    ) -> AttemptFuture;
    /// Per node id, the component it runs and its digest (pinned by the run).
    /// Call after [`StepExecutor::prepare`]. None by default.
    fn pins(&self, _wf: &Workflow) -> BTreeMap<String, PinnedComponent> {
        BTreeMap::new()
    }
    /// Keeps what the attempts of a run of `wf` need (its pinned components)
    /// loaded while the run holds the returned value. Call after
    /// [`StepExecutor::prepare`]. Holds nothing by default.
    fn hold(&self, _wf: &Workflow) -> Held {
        Box::new(())
    }
    /// Whether the component at `path` can run as `node_type` (used when a
    /// journaled workflow is loaded again), with its acting imports when it
    /// can. Accepts everything, with none, by default.
    fn check_component(&self, _path: &Path, _node_type: NodeType) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// Lets workflow validation ask a [`StepExecutor`] about components, each
/// read from where `remap` says its path's pinned version is (a component
/// fetched from the store), or from its path. A node that names its
/// component by digest (a workflow submitted over the API) finds the path
/// the run pinned for that digest.
pub(super) struct CheckWith<'a> {
    pub(super) executor: &'a dyn StepExecutor,
    pub(super) remap: &'a BTreeMap<std::path::PathBuf, std::path::PathBuf>,
    pub(super) pins: &'a BTreeMap<String, PinnedComponent>,
}

impl ComponentCheck for CheckWith<'_> {
    fn check(&self, path: &Path, node_type: NodeType) -> Result<Vec<String>, String> {
        self.executor.check_component(self.remap.get(path).map_or(path, |p| p.as_path()), node_type)
    }

    fn resolve(&self, name: &str, base: &Path) -> Result<std::path::PathBuf, String> {
        if name.starts_with("sha256:")
            && let Some(pin) = self.pins.values().find(|p| p.digest == name)
        {
            return Ok(std::path::PathBuf::from(&pin.path));
        }
        crate::workflow::resolve_component(name, base).or_else(|missing| {
            let pinned = crate::workflow::lexical(&base.join(name));
            if self.remap.contains_key(&pinned) { Ok(pinned) } else { Err(missing) }
        })
    }
}
