//! From YAML text to a validated [`Workflow`], reporting every problem at
//! once: the `walker` and its primitives, the `document`'s sections, each
//! `node`, and the `graph`.

mod capabilities;
mod document;
mod graph;
mod kind;
mod nesting;
mod node;
mod stream;
mod walker;

use super::component::ComponentCheck;
use super::model::Workflow;
use super::problem::{Problem, ValidationError};
use super::yaml::{self, Pos};
use nesting::Nesting;
pub use nesting::{MAX_EXPANDED, MAX_NESTED_BYTES};
use std::path::Path;
use walker::Walker;

/// Reads and validates a workflow file, with the sub-workflows it nests.
pub fn load_file(path: &Path, checker: Option<&dyn ComponentCheck>) -> Result<Workflow, ValidationError> {
    let nesting = Nesting::top(std::fs::canonicalize(path).ok());
    let wf = load_file_in(path, checker, &nesting)?;
    bounded(wf, &nesting, &path.display().to_string())
}

/// `wf`, unless its nodes with each sub-workflow's expanded (from what
/// `nesting` loaded) are too many for the engine to walk.
fn bounded(wf: Workflow, nesting: &Nesting, label: &str) -> Result<Workflow, ValidationError> {
    let own = (wf.nodes.len() + wf.graph.edges()) as u64;
    let mut nests = false;
    let expanded = wf.nodes.iter().fold(own, |sum, n| match &n.kind {
        super::model::NodeKind::SubWorkflow(sub) => {
            nests = true;
            sum.saturating_add(nesting.get(&sub.path).map_or(0, |l| l.expanded))
        }
        _ => sum,
    });
    if !nests || expanded <= MAX_EXPANDED {
        return Ok(wf);
    }
    Err(ValidationError {
        problems: vec![Problem {
            file: label.to_string(),
            pos: Pos::default(),
            node_id: None,
            message: format!(
                "with its sub-workflows expanded (each once per node that runs it), the workflow has {expanded} nodes \
                 and dependencies; at most {MAX_EXPANDED} are allowed: nest fewer copies, or fan out with `for_each`"
            ),
        }],
    })
}

/// [`load_file`] for a file nested as `nesting` says (its chain ends with
/// it); a file the run journaled is read from the journal.
fn load_file_in(
    path: &Path,
    checker: Option<&dyn ComponentCheck>,
    nesting: &Nesting,
) -> Result<Workflow, ValidationError> {
    let label = path.display().to_string();
    let one = |message: String| ValidationError {
        problems: vec![Problem { file: label.clone(), pos: Pos::default(), node_id: None, message }],
    };
    let text = match nesting.own_pinned_text() {
        Some(text) => text,
        None => crate::files::read_text_capped(path, yaml::MAX_FILE_BYTES).map_err(|e| match e {
            crate::files::ReadError::TooLarge { size, max } => {
                one(format!("the file is {size} bytes; workflow files larger than {max} bytes are refused"))
            }
            e => one(format!("cannot read the workflow file: {e}")),
        })?,
    };
    if let Err(total) = nesting.read(text.len() as u64) {
        return Err(one(format!(
            "with its sub-workflow files, this load has read {total} bytes of workflow text; at most \
             {MAX_NESTED_BYTES} are allowed"
        )));
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut wf = load_str_in(&text, &base, &label, checker, nesting)?;
    wf.source = Some(path.to_path_buf());
    Ok(wf)
}

/// Validates workflow YAML; relative component paths are resolved against `base_dir`.
pub fn load_str(
    text: &str,
    base_dir: &Path,
    label: &str,
    checker: Option<&dyn ComponentCheck>,
) -> Result<Workflow, ValidationError> {
    load_str_pinned(text, base_dir, label, checker, Default::default())
}

/// [`load_str`] for a journaled run: its sub-workflows are read from
/// `pinned` (the texts it started with, by path) rather than from their files.
pub fn load_str_pinned(
    text: &str,
    base_dir: &Path,
    label: &str,
    checker: Option<&dyn ComponentCheck>,
    pinned: std::collections::BTreeMap<String, String>,
) -> Result<Workflow, ValidationError> {
    let nesting = Nesting::pinned(pinned);
    let wf = load_str_in(text, base_dir, label, checker, &nesting)?;
    bounded(wf, &nesting, label)
}

/// [`load_str`] for text nested in the workflow files of `chain`.
fn load_str_in(
    text: &str,
    base_dir: &Path,
    label: &str,
    checker: Option<&dyn ComponentCheck>,
    nesting: &Nesting,
) -> Result<Workflow, ValidationError> {
    let doc = yaml::parse(text).map_err(|e| ValidationError {
        problems: vec![Problem {
            file: label.to_string(),
            pos: e.pos,
            node_id: None,
            message: format!("not valid YAML for a workflow: {}", e.message),
        }],
    })?;
    let mut w = Walker::new(label);
    w.nesting = nesting.clone();
    let wf = w.workflow(&doc, base_dir, checker);
    match wf {
        Some(mut wf) if w.problems.is_empty() => {
            wf.definition = std::sync::Arc::from(text);
            Ok(wf)
        }
        _ => {
            let mut problems = w.problems;
            // This file's problems first, then each nested file's, each in order.
            problems.sort_by(|a, b| {
                let key = |p: &Problem| (p.file != label, p.file.clone(), p.pos.line, p.pos.column);
                key(a).cmp(&key(b))
            });
            Err(ValidationError { problems })
        }
    }
}
