//! The rest of the ONEX orchestrator contract, scripted, a file per part:
//! `node_types` (`conditional`, `parallel`, `custom`, and every node in
//! exactly one list of the output), `gates` (approval gates),
//! `sub_workflows` (`orchestrator`) and `input` (the input's `steps` and the
//! contract's config). The helpers here write workflow files and check the
//! output's lists.

use super::*;

mod gates;
mod input;
mod node_types;
mod sub_workflows;
use crate::engine::{SignalError, StepTuning};
use crate::workflow::NodeKind;

/// Writes `files` (name, YAML) into a fresh directory with `step.wasm`.
fn files(tag: &str, files: &[(&str, String)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-contract-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("step.wasm"), b"").unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// A workflow document named `name` with `nodes` (and `rest` after them).
fn doc(name: &str, mode: &str, nodes: &str, rest: &str) -> String {
    format!(
        "kind: WorkflowDefinition\nmetadata: {{name: {name}}}\nworkflow_metadata: {{workflow_name: {name}, \
         execution_mode: {mode}}}\nexecution_graph:\n  nodes:\n{nodes}{rest}"
    )
}

fn load(dir: &std::path::Path, name: &str) -> Arc<Workflow> {
    Arc::new(crate::workflow::load_file(&dir.join(name), None).unwrap_or_else(|e| panic!("{e}")))
}

/// Every node in exactly one of the output's lists.
fn accounted(out: &RunOutput, all: &[&str]) {
    let tolerated: Vec<String> = out
        .output_variables
        .get("tolerated_failures")
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default();
    let mut seen: Vec<&String> =
        out.completed_steps.iter().chain(&out.failed_steps).chain(&out.skipped_steps).chain(&tolerated).collect();
    seen.sort();
    let mut want: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want.iter().collect::<Vec<_>>(), "each node in exactly one list: {out:?}");
}
