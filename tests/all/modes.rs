//! End-to-end tests of issue-12 features through the real `weft` binary:
//! the CEL budget, batch waves, `for_each` fan-out and memoized steps.

use crate::common;
use common::plugin;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

fn weft(args: &[&str]) -> Output {
    common::weft("modes", args).output().expect("run weft")
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-modes-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("make the test directory");
    d
}

/// A one-node workflow around `echo` whose node has `extra` (YAML, indented
/// for the node's map).
fn one_node(d: &Path, extra: &str) -> PathBuf {
    let y = format!(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: one, version: 1.0.0}}\n\
         workflow_metadata: {{workflow_name: one, execution_mode: sequential}}\nexecution_graph:\n  nodes:\n\
         \x20   - node_id: s\n      node_type: compute\n      component: \"{}\"\n      retry_count: 0\n{extra}",
        plugin("echo").display()
    );
    let path = d.join("one.yaml");
    std::fs::write(&path, y).expect("write the workflow");
    path
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_cel_bomb_is_refused_at_validation_with_its_place() {
    let d = dir("bomb");
    let wf = one_node(
        &d,
        "      input:\n        n: \"context.l.map(a, context.l.map(b, context.l.map(c, a+b+c))).size()\"\n",
    );
    let out = weft(&["validate", wf.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("one.yaml:12:12") && said.contains("`input.n`"), "names the file, line and key: {said}");
    assert!(said.contains("nests comprehensions") && said.contains("3 deep"), "{said}");
}

#[test]
fn an_expression_past_its_budget_fails_its_step_naming_node_key_and_budget() {
    let d = dir("budget");
    let wf = one_node(&d, "      input:\n        pairs: \"context.l.map(a, context.l.map(b, a * b)).size()\"\n");
    let input = d.join("input.json");
    let numbers: Vec<u32> = (0..200).collect();
    std::fs::write(&input, json!({"context": {"l": numbers}}).to_string()).unwrap();
    // 200 x 200 iterations: within the default budget.
    let out =
        weft(&["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "--in-memory", "--output", "json"]);
    let o = common::json_of(&out);
    assert_eq!(o["execution_status"], "completed", "{}", text(&out));
    assert_eq!(o["step_outputs"]["s"]["pairs"], 200);
    // An operator budget of 10,000 iterations stops it.
    let policy = d.join("policy.toml");
    std::fs::write(&policy, "[expressions]\nmax_steps = 10000\n").unwrap();
    let out = weft(&[
        "run",
        wf.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--in-memory",
        "--output",
        "json",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let o = common::json_of(&out);
    assert_eq!(o["execution_status"], "failed", "{}", text(&out));
    let error = &o["errors"][0];
    assert_eq!(error["step_id"], "s");
    assert_eq!(error["error_type"], "expression");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`input.pairs`") && message.contains("budget of 10000 comprehension iterations"),
        "{message}"
    );
    // A budget out of bounds is refused, naming the key.
    std::fs::write(&policy, "[expressions]\nmax_steps = 0\n").unwrap();
    let out = weft(&["validate", wf.to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("[expressions] max_steps is 0"), "{}", text(&out));
}
