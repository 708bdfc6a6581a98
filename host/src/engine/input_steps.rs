//! The input subcontract's `steps`. With a workflow file they select nodes
//! of the definition by name (`step_name` is a `node_id`) and tune them
//! within the contract's bounds; the listed steps and everything they depend
//! on run, and every other node is skipped. Without a workflow file they
//! are the workflow: [`workflow_from_steps`] turns them into a definition.
//!
//! Checked as the contract's `_validate_workflow_input` does: an unknown
//! step, a `step_type` that differs from the node's, a value out of bounds,
//! a `depends_on` that names no listed step, and a name used twice are all
//! errors, each naming the step by its position.

use crate::workflow::{Workflow, closest, resolve_component};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The label that marks a workflow made from a run input's steps.
const FROM_STEPS: (&str, &str) = ("weft.source", "run-input-steps");

/// One entry of the input's `steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputStep {
    /// The contract's step id (a UUID); `depends_on` may name a step by it.
    pub step_id: Option<String>,
    /// The node's id.
    pub step_name: String,
    /// compute, effect, reducer, orchestrator, conditional, parallel or custom.
    pub step_type: String,
    /// Per-attempt timeout, 100..=300000 ms.
    pub timeout_ms: Option<u64>,
    /// Retries after the first attempt, 0..=10.
    pub retry_count: Option<u32>,
    /// Steps this one waits for, by `step_id` or `step_name`.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Without a workflow file: the component (relative to the input file).
    pub component: Option<String>,
    /// Without a workflow file: any further keys of a workflow node (`input`,
    /// `when`, `cases`, `world`, `workflow`, `capabilities`, ...).
    pub node: Option<Map<String, Value>>,
}

/// What the steps change for one node of the definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StepTuning {
    /// Whether the node runs (listed, or a dependency of a listed one).
    pub selected: bool,
    /// Its per-attempt timeout for this run.
    pub timeout_ms: Option<u64>,
    /// Its retries for this run.
    pub retry_count: Option<u32>,
}

/// The node id each `depends_on` entry names: a listed step's id or name.
fn step_names(steps: &[InputStep]) -> HashMap<&str, &str> {
    let mut names = HashMap::new();
    for s in steps {
        names.insert(s.step_name.as_str(), s.step_name.as_str());
        if let Some(id) = &s.step_id {
            names.insert(id.as_str(), s.step_name.as_str());
        }
    }
    names
}

/// Problems of the steps on their own: bounds, duplicate names, unknown
/// dependencies.
fn check_steps(steps: &[InputStep], problems: &mut Vec<String>) {
    if steps.is_empty() {
        problems.push("`steps` is empty; a workflow must have at least one step".into());
    }
    let names = step_names(steps);
    let all: Vec<&str> = names.keys().copied().collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let by_name: HashMap<&str, usize> = steps.iter().enumerate().map(|(k, s)| (s.step_name.as_str(), k)).collect();
    for (k, s) in steps.iter().enumerate() {
        let at = format!("steps[{k}] (`{}`)", s.step_name);
        if let Some(first) = seen.insert(&s.step_name, k) {
            problems.push(format!("{at}: the step name is used by steps[{first}] too; step names must be unique"));
        }
        if let Some(id) = &s.step_id {
            if let Some(first) = ids.insert(id, k) {
                problems.push(format!("{at}: step_id `{id}` is used by steps[{first}] too; step ids must be unique"));
            }
            if let Some(&other) = by_name.get(id.as_str()).filter(|&&o| o != k) {
                problems.push(format!(
                    "{at}: step_id `{id}` is the name of steps[{other}]; depends_on could not tell them apart"
                ));
            }
        }
        if let Some(t) = s.timeout_ms
            && !(100..=300_000).contains(&t)
        {
            problems.push(format!("{at}: timeout_ms is {t}; it must be between 100 and 300000"));
        }
        if let Some(r) = s.retry_count
            && r > 10
        {
            problems.push(format!("{at}: retry_count is {r}; it must be between 0 and 10"));
        }
        for d in &s.depends_on {
            if !names.contains_key(d.as_str()) {
                // Suggestions cost a scan of every name: the first hundred get one.
                let hint = (problems.len() < 100)
                    .then(|| closest(d, &all))
                    .flatten()
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                problems.push(format!("{at}: depends_on names `{d}`, which is not a step of this input{hint}"));
            }
        }
    }
}

/// The tuning of each node of `wf` by `steps`, or every problem.
pub(super) fn tune(wf: &Workflow, steps: &[InputStep], problems: &mut Vec<String>) -> Vec<StepTuning> {
    let before = problems.len();
    check_steps(steps, problems);
    let names = step_names(steps);
    let ids: Vec<&str> = wf.nodes.iter().map(|n| n.id.as_str()).collect();
    let mut tuning = vec![StepTuning::default(); wf.nodes.len()];
    for (k, s) in steps.iter().enumerate() {
        let at = format!("steps[{k}] (`{}`)", s.step_name);
        let Some(&i) = wf.graph.index.get(&s.step_name) else {
            // Suggestions cost a scan of every id: the first hundred get one.
            let hint = (problems.len() < 100)
                .then(|| closest(&s.step_name, &ids))
                .flatten()
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            problems.push(format!("{at}: `{}` is not a node of workflow `{}`{hint}", s.step_name, wf.name));
            continue;
        };
        let node = &wf.nodes[i];
        let step_type = if s.step_type == "reduce" { "reducer" } else { s.step_type.as_str() };
        if step_type != node.type_name {
            problems.push(format!(
                "{at}: step_type is `{}`, but node `{}` is a `{}` node in the workflow",
                s.step_type, node.id, node.type_name
            ));
        }
        if !node.kind.has_component() && (s.timeout_ms.is_some() || s.retry_count.is_some()) {
            problems.push(format!(
                "{at}: a `{}` node runs no component, so `timeout_ms` and `retry_count` do not apply to it",
                node.type_name
            ));
        }
        // Given with a workflow file, a component must be the node's own (a
        // run without one gives each node the component of its step).
        let from_steps = wf.labels.get(FROM_STEPS.0).is_some_and(|v| v == FROM_STEPS.1);
        match &s.component {
            _ if from_steps => {}
            Some(c) if resolve_component(c, &wf.base_dir).ok().as_ref() != Some(&node.component) => {
                problems.push(format!(
                    "{at}: `component` `{c}` is not node `{}`'s component ({}); the workflow file gives each node's \
                     component: leave `component` out",
                    node.id,
                    node.component.display()
                ));
            }
            None if s.node.is_some() => problems.push(format!(
                "{at}: `node` belongs to a run without a workflow file; the workflow file gives each node's keys"
            )),
            _ => {}
        }
        let above = if s.depends_on.is_empty() { Vec::new() } else { ancestors(wf, i) };
        for d in &s.depends_on {
            let Some(&name) = names.get(d.as_str()) else { continue };
            let Some(&j) = wf.graph.index.get(name) else { continue };
            if !above.get(j).copied().unwrap_or(false) {
                problems.push(format!(
                    "{at}: depends_on names `{name}`, but `{}` does not depend on it in the workflow; a run input \
                     selects and tunes the workflow's nodes, it does not rewire them",
                    node.id
                ));
            }
        }
        tuning[i] = StepTuning { selected: true, timeout_ms: s.timeout_ms, retry_count: s.retry_count };
    }
    if problems.len() > before {
        return Vec::new();
    }
    // What a listed step depends on runs too, with the definition's settings.
    // One walk up from every listed step at once.
    let mut stack: Vec<usize> = (0..wf.nodes.len()).filter(|&i| tuning[i].selected).collect();
    while let Some(i) = stack.pop() {
        for &j in &wf.graph.dependencies[i] {
            if !std::mem::replace(&mut tuning[j].selected, true) {
                stack.push(j);
            }
        }
    }
    tuning
}

/// Per node, whether node `i` depends on it, directly or not.
fn ancestors(wf: &Workflow, i: usize) -> Vec<bool> {
    let mut seen = vec![false; wf.nodes.len()];
    let mut stack = wf.graph.dependencies[i].clone();
    while let Some(j) = stack.pop() {
        if !std::mem::replace(&mut seen[j], true) {
            stack.extend(wf.graph.dependencies[j].iter().copied());
        }
    }
    seen
}

/// The workflow definition (as JSON text, which is YAML) that an input's
/// `steps` describe when there is no workflow file, or every problem.
pub fn workflow_from_steps(
    steps: &[InputStep],
    name: &str,
    execution_mode: Option<&str>,
    workflow_type: Option<&str>,
) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    check_steps(steps, &mut problems);
    let names = step_names(steps);
    let mut nodes = Vec::new();
    for (k, s) in steps.iter().enumerate() {
        let mut node = s.node.clone().unwrap_or_default();
        for key in ["node_id", "node_type", "component", "timeout_ms", "retry_count", "depends_on"] {
            if node.contains_key(key) {
                problems.push(format!(
                    "steps[{k}] (`{}`): `node.{key}` repeats a field of the step; give it as the step's own field",
                    s.step_name
                ));
            }
        }
        node.insert("node_id".into(), json!(s.step_name));
        node.insert("node_type".into(), json!(s.step_type));
        if let Some(c) = &s.component {
            node.insert("component".into(), json!(c));
        }
        if let Some(t) = s.timeout_ms {
            node.insert("timeout_ms".into(), json!(t));
        }
        if let Some(r) = s.retry_count {
            node.insert("retry_count".into(), json!(r));
        }
        let deps: Vec<&str> = s.depends_on.iter().filter_map(|d| names.get(d.as_str()).copied()).collect();
        if !deps.is_empty() {
            node.insert("depends_on".into(), json!(deps));
        }
        nodes.push(Value::Object(node));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut meta = Map::new();
    meta.insert("workflow_name".into(), json!(name));
    if let Some(m) = execution_mode {
        meta.insert("execution_mode".into(), json!(m));
    }
    if let Some(t) = workflow_type {
        meta.insert("workflow_type".into(), json!(t));
    }
    let doc = json!({
        "api_version": "v1.0.0",
        "kind": "WorkflowDefinition",
        "metadata": { "name": name, "description": "the steps of a run input", "labels": { FROM_STEPS.0: FROM_STEPS.1 } },
        "workflow_metadata": meta,
        "execution_graph": { "nodes": nodes },
    });
    serde_json::to_string_pretty(&doc).map_err(|e| vec![e.to_string()])
}
