//! [`SandboxExecutor`]: the production [`StepExecutor`], running each attempt
//! in the [`Sandbox`].
//!
//! A component file is read again when it changes on disk (checked when a run
//! starts or a workflow is validated), so a long-lived engine picks up a new
//! version for its next runs. An attempt runs the version its run pinned: it
//! is looked up by digest, never by whatever file is at the path now, and a
//! run holds its pinned components in memory for as long as it lives.

use super::executor::{AttemptFuture, Held, StepExecutor};
use crate::contract::{AttemptReport, StepFailure};
use crate::sandbox::{Grants, Limits, LoadedComponent, Sandbox, StepCall, StepWorld};
use crate::store::PinnedComponent;
use crate::workflow::{ComponentCheck, NodeSpec, NodeType, Workflow};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

/// Runs steps in a [`Sandbox`].
pub struct SandboxExecutor {
    sandbox: Arc<Sandbox>,
    /// Per file, what it held for each world (compute, effect).
    components: Mutex<HashMap<PathBuf, [Option<KnownFile>; 2]>>,
    /// The components that runs hold (see [`StepExecutor::hold`]), by digest
    /// and world: found here after the sandbox has dropped them from memory.
    held: Mutex<HashMap<(String, StepWorld), Weak<LoadedComponent>>>,
}

/// What a component file held when it was last read (for one world).
#[derive(Clone)]
struct KnownFile {
    stamp: Option<FileStamp>,
    digest: String,
    /// Weak: the sandbox decides how long a component stays in memory.
    component: Weak<LoadedComponent>,
}

/// What identifies one version of a file on disk without reading it: a
/// file replaced or rewritten differs in at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    size: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
}

impl FileStamp {
    /// The stamp of the file at `path` now, if it can be read.
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self { size: m.len(), modified: m.modified().ok(), inode: m.ino(), device: m.dev() })
    }
}

fn world_slot(world: StepWorld) -> usize {
    match world {
        StepWorld::Compute => 0,
        StepWorld::Effect => 1,
    }
}

fn world_of(t: NodeType) -> StepWorld {
    if t.is_effect() { StepWorld::Effect } else { StepWorld::Compute }
}

impl SandboxExecutor {
    /// Loads the components of `wf`'s own nodes (not its sub-workflows'),
    /// each file once however many nodes use it; the problems name each
    /// node as `{at}{id}`.
    fn prepare_nodes(&self, wf: &Workflow, at: &str) -> Vec<String> {
        let mut seen: HashMap<(&Path, bool), Result<Vec<String>, String>> = HashMap::new();
        let mut problems = Vec::new();
        for n in wf.nodes.iter().filter(|n| n.kind.has_component()) {
            let loaded = seen
                .entry((n.component.as_path(), n.node_type.is_effect()))
                .or_insert_with(|| self.load(&n.component, n.node_type).map(|c| c.acts.clone()));
            match loaded {
                Err(e) => problems.push(format!("node `{at}{}`: {e}", n.id)),
                Ok(acts) => problems.extend(
                    acts.iter()
                        .filter_map(|a| n.capabilities.refuses_import(a))
                        .map(|r| format!("node `{at}{}`: {r}", n.id)),
                ),
            }
        }
        problems
    }

    /// An executor on `sandbox`.
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox, components: Mutex::new(HashMap::new()), held: Mutex::new(HashMap::new()) }
    }

    /// The component at `path`, read again if the file changed since.
    fn load(&self, path: &Path, t: NodeType) -> Result<Arc<LoadedComponent>, String> {
        let world = world_of(t);
        // Taken before reading: a change while reading shows up next time.
        let stamp = FileStamp::of(path);
        let slot = world_slot(world);
        let known =
            self.components.lock().unwrap_or_else(PoisonError::into_inner).get(path).and_then(|w| w[slot].clone());
        if let Some(k) = known
            && stamp.is_some()
            && k.stamp == stamp
            && let Some(c) = self.sandbox.loaded(&k.digest, world)
        {
            return Ok(c);
        }
        let c = self.sandbox.load_file(path, Some(world)).map_err(|e| e.to_string())?;
        let known = KnownFile { stamp, digest: c.digest.clone(), component: Arc::downgrade(&c) };
        self.components.lock().unwrap_or_else(PoisonError::into_inner).entry(path.to_path_buf()).or_default()[slot] =
            Some(known);
        Ok(c)
    }

    /// The component an attempt runs: the pinned version, found by digest
    /// (no file check per attempt). When the sandbox has dropped it from
    /// memory, the file is read again, and used only if it still holds that
    /// version.
    fn for_attempt(&self, path: &Path, t: NodeType, pinned: Option<&str>) -> Result<Arc<LoadedComponent>, String> {
        let world = world_of(t);
        let Some(digest) = pinned else {
            // Nothing pinned (an executor used without a run): the version last read.
            let cached = {
                let known = self.components.lock().unwrap_or_else(PoisonError::into_inner);
                known.get(path).and_then(|w| w[world_slot(world)].as_ref()).and_then(|k| k.component.upgrade())
            };
            return match cached {
                Some(c) => Ok(c),
                None => self.load(path, t),
            };
        };
        if let Some(c) = self.sandbox.loaded(digest, world) {
            return Ok(c);
        }
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner).get(&(digest.to_string(), world)).cloned();
        if let Some(c) = held.and_then(|w| w.upgrade()) {
            return Ok(c);
        }
        let c = self.load(path, t)?;
        if c.digest == digest {
            Ok(c)
        } else {
            Err(format!(
                "{} changed while the run was going: the run pinned {digest}, the file now holds {}, and the pinned \
                 version is no longer loaded; put the pinned version back, or start a new run",
                path.display(),
                c.digest
            ))
        }
    }
}

impl ComponentCheck for SandboxExecutor {
    fn check(&self, path: &Path, node_type: NodeType) -> Result<Vec<String>, String> {
        self.load(path, node_type).map(|c| c.acts.clone())
    }
}

impl StepExecutor for SandboxExecutor {
    fn prepare(&self, wf: &Workflow) -> Result<(), Vec<String>> {
        // A sub-workflow's components are checked now too (each distinct one
        // once): its run would refuse them later, after the parent had started.
        let problems: Vec<String> = wf.levels().into_iter().flat_map(|(at, w)| self.prepare_nodes(w, &at)).collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn pins(&self, wf: &Workflow) -> BTreeMap<String, PinnedComponent> {
        let known = self.components.lock().unwrap_or_else(PoisonError::into_inner);
        wf.nodes
            .iter()
            .filter(|n| n.kind.has_component())
            .filter_map(|n| {
                let k = known.get(&n.component)?[world_slot(world_of(n.node_type))].as_ref()?;
                Some((
                    n.id.clone(),
                    PinnedComponent { path: n.component.display().to_string(), digest: k.digest.clone() },
                ))
            })
            .collect()
    }

    fn check_component(&self, path: &Path, node_type: NodeType) -> Result<Vec<String>, String> {
        self.load(path, node_type).map(|c| c.acts.clone())
    }

    fn hold(&self, wf: &Workflow) -> Held {
        let mut kept: Vec<Arc<LoadedComponent>> = Vec::new();
        let mut seen: HashSet<(&Path, bool)> = HashSet::new();
        for n in wf.nodes.iter().filter(|n| n.kind.has_component()) {
            if !seen.insert((n.component.as_path(), n.node_type.is_effect())) {
                continue;
            }
            let known = {
                let map = self.components.lock().unwrap_or_else(PoisonError::into_inner);
                map.get(&n.component).and_then(|w| w[world_slot(world_of(n.node_type))].clone())
            };
            // What `prepare` read, which is what `pins` reported.
            if let Some(c) = known.and_then(|k| k.component.upgrade()) {
                kept.push(c);
            }
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, w| w.strong_count() > 0);
        for c in &kept {
            held.insert((c.digest.clone(), c.world), Arc::downgrade(c));
        }
        Box::new(kept)
    }

    fn execute(
        &self,
        node: &NodeSpec,
        pinned: Option<&str>,
        call: StepCall,
        limits: Limits,
        granted: Arc<Grants>,
    ) -> AttemptFuture {
        let sandbox = self.sandbox.clone();
        let component = self.for_attempt(&node.component, node.node_type, pinned);
        Box::pin(async move {
            match component {
                Ok(c) => sandbox.execute_granted(&c, &call, &limits, &granted).await,
                Err(reason) => AttemptReport::failed_early(StepFailure::ComponentInvalid { reason }),
            }
        })
    }
}
