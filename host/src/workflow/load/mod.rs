//! From YAML text to a validated [`Workflow`], reporting every problem at
//! once: the `walker` and its primitives, the `document`'s sections, each
//! `node`, and the `graph`.

mod capabilities;
mod document;
mod graph;
mod kind;
mod node;
mod stream;
mod walker;

use super::component::ComponentCheck;
use super::model::Workflow;
use super::problem::{Problem, ValidationError};
use super::yaml::{self, Pos};
use std::path::{Path, PathBuf};
use walker::Walker;

/// Reads and validates a workflow file, with the sub-workflows it nests.
pub fn load_file(path: &Path, checker: Option<&dyn ComponentCheck>) -> Result<Workflow, ValidationError> {
    let chain = std::fs::canonicalize(path).map(|p| vec![p]).unwrap_or_default();
    load_file_in(path, checker, chain)
}

/// [`load_file`] for a file nested in the workflow files of `chain` (which ends with it).
fn load_file_in(
    path: &Path,
    checker: Option<&dyn ComponentCheck>,
    chain: Vec<PathBuf>,
) -> Result<Workflow, ValidationError> {
    let label = path.display().to_string();
    let one = |message: String| ValidationError {
        problems: vec![Problem { file: label.clone(), pos: Pos::default(), node_id: None, message }],
    };
    let text = crate::files::read_text_capped(path, yaml::MAX_FILE_BYTES).map_err(|e| match e {
        crate::files::ReadError::TooLarge { size, max } => {
            one(format!("the file is {size} bytes; workflow files larger than {max} bytes are refused"))
        }
        e => one(format!("cannot read the workflow file: {e}")),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut wf = load_str_in(&text, &base, &label, checker, chain)?;
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
    load_str_in(text, base_dir, label, checker, Vec::new())
}

/// [`load_str`] for text nested in the workflow files of `chain`.
fn load_str_in(
    text: &str,
    base_dir: &Path,
    label: &str,
    checker: Option<&dyn ComponentCheck>,
    chain: Vec<PathBuf>,
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
    w.chain = chain;
    let wf = w.workflow(&doc, base_dir, checker);
    match wf {
        Some(mut wf) if w.problems.is_empty() => {
            wf.definition = std::sync::Arc::from(text);
            Ok(wf)
        }
        _ => {
            let mut problems = w.problems;
            problems.sort_by_key(|p| (p.pos.line, p.pos.column));
            Err(ValidationError { problems })
        }
    }
}
