//! How sub-workflow files nest: the chain of files a workflow is loaded
//! inside (its depth, and cycles), and the files already loaded during one
//! top-level load, so that a file many nodes name is read and validated
//! once, and the size of the whole tree is known without expanding it.

use super::super::model::{MAX_WORKFLOW_DEPTH, NodeKind, Workflow, sub_workflow_key};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// Most nodes and dependencies a workflow with sub-workflows may expand
/// to, counting a sub-workflow's once per node that runs it, at every level:
/// the engine and `weft graph` walk the expanded tree.
pub const MAX_EXPANDED: u64 = 1_000_000;

/// Most bytes of workflow text one load reads, its sub-workflow files
/// included (each distinct file once).
pub const MAX_NESTED_BYTES: u64 = 64 << 20;

/// A sub-workflow file, loaded.
#[derive(Clone)]
pub(super) struct Loaded {
    /// The workflow.
    pub(super) workflow: Arc<Workflow>,
    /// Every file it nests, itself included.
    pub(super) files: Vec<PathBuf>,
    /// How deep it nests: 1 without sub-workflows.
    pub(super) depth: usize,
    /// Its nodes and dependencies, with each sub-workflow's expanded.
    pub(super) expanded: u64,
}

/// Where a load is among nested workflow files.
#[derive(Clone, Default)]
pub(super) struct Nesting {
    /// The files it is nested in, outermost first, ending with itself when
    /// it came from a file.
    pub(super) chain: Vec<PathBuf>,
    /// The files loaded so far in this top-level load.
    loaded: Rc<RefCell<HashMap<PathBuf, Loaded>>>,
    /// The files that did not load (their problems are reported once).
    failed: Rc<RefCell<std::collections::HashSet<PathBuf>>>,
    /// The text of each file as journaled with a run, by its key, read
    /// instead of the file (a resumed run nests what it started with).
    pinned: Rc<std::collections::BTreeMap<String, String>>,
    /// This file's key: the `workflow:` values that lead to it from the top,
    /// joined as [`sub_workflow_key`] joins them ("" for the top file).
    key: String,
    /// Bytes of workflow text read so far.
    bytes: Rc<std::cell::Cell<u64>>,
}

impl Nesting {
    /// The nesting of a top-level file (`None`: text without a file).
    pub(super) fn top(path: Option<PathBuf>) -> Self {
        Self { chain: path.into_iter().collect(), ..Default::default() }
    }

    /// [`Nesting::top`] reading the sub-workflow texts `pinned` (by key) instead of their files.
    pub(super) fn pinned(pinned: std::collections::BTreeMap<String, String>) -> Self {
        Self { pinned: Rc::new(pinned), ..Default::default() }
    }

    /// The key of the sub-workflow this file names as `written`.
    pub(super) fn key_of(&self, written: &str) -> String {
        sub_workflow_key(&self.key, written)
    }

    /// The pinned text of the sub-workflow with key `key`, if the run journaled one.
    pub(super) fn pinned_text(&self, key: &str) -> Option<String> {
        self.pinned.get(key).cloned()
    }

    /// This file's pinned text, if the run journaled one.
    pub(super) fn own_pinned_text(&self) -> Option<String> {
        if self.key.is_empty() { None } else { self.pinned_text(&self.key) }
    }

    /// Counts `n` more bytes read; `Err` with the total past [`MAX_NESTED_BYTES`].
    pub(super) fn read(&self, n: u64) -> Result<(), u64> {
        let total = self.bytes.get().saturating_add(n);
        self.bytes.set(total);
        if total > MAX_NESTED_BYTES { Err(total) } else { Ok(()) }
    }

    /// The nesting of the file `path`, with key `key`, inside this one.
    pub(super) fn inside(&self, path: PathBuf, key: String) -> Self {
        let mut chain = self.chain.clone();
        chain.push(path);
        Self { chain, key, ..self.clone() }
    }

    /// Records that the file `path` did not load; false if it was recorded before.
    pub(super) fn fail(&self, path: PathBuf) -> bool {
        self.failed.borrow_mut().insert(path)
    }

    /// Whether the file `path` did not load.
    pub(super) fn has_failed(&self, path: &Path) -> bool {
        self.failed.borrow().contains(path)
    }

    /// The file `path` if this load has loaded it already.
    pub(super) fn get(&self, path: &Path) -> Option<Loaded> {
        self.loaded.borrow().get(path).cloned()
    }

    /// Records the file `path`, loaded as `wf` (its sub-workflows were loaded
    /// through this nesting, so they are recorded already).
    pub(super) fn put(&self, path: PathBuf, wf: Arc<Workflow>) -> Loaded {
        let mut files = vec![path.clone()];
        let (mut depth, mut expanded) = (1, (wf.nodes.len() + wf.graph.edges()) as u64);
        for n in &wf.nodes {
            if let NodeKind::SubWorkflow(sub) = &n.kind
                && let Some(inner) = self.get(&sub.path)
            {
                depth = depth.max(1 + inner.depth);
                expanded = expanded.saturating_add(inner.expanded);
                files.extend(inner.files);
            }
        }
        files.sort();
        files.dedup();
        let loaded = Loaded { workflow: wf, files, depth, expanded };
        self.loaded.borrow_mut().insert(path, loaded.clone());
        loaded
    }

    /// `a -> b -> path`, for messages.
    pub(super) fn names(&self, last: &Path) -> String {
        let all = self.chain.iter().map(|p| p.display().to_string()).chain([last.display().to_string()]);
        all.collect::<Vec<_>>().join(" -> ")
    }

    /// Why `loaded` cannot be nested here (a cycle, or past the depth
    /// bound), if it cannot.
    pub(super) fn refuses(&self, path: &Path, loaded: &Loaded) -> Option<String> {
        if let Some(again) = loaded.files.iter().find(|f| self.chain.contains(f)) {
            return Some(format!(
                "the workflow files form a cycle: {} (which nests {}); a workflow cannot run itself, directly or \
                 through another",
                self.names(path),
                again.display()
            ));
        }
        if self.chain.len() + loaded.depth > MAX_WORKFLOW_DEPTH {
            return Some(format!(
                "sub-workflows nest {} deep here ({}, which nests {} more level(s)), past the max_workflow_depth of \
                 {MAX_WORKFLOW_DEPTH}",
                self.chain.len() + loaded.depth,
                self.names(path),
                loaded.depth - 1
            ));
        }
        None
    }
}
