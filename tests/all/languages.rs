//! Plugins in every language: each template, written by `weft plugin new`
//! and built by `weft plugin build` with the language's own toolchain,
//! passes `weft plugin call`, fails with a `plugin_error` on bad input and
//! stops at a fuel limit; the polyglot example runs its five languages in
//! one workflow; exceptions carry their stack; a component built against
//! another WIT is told which function differs.

use crate::common::{self, json_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `weft plugin call FILE` with `args`, in the shared `languages` cache.
fn call(component: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut cmd = common::weft("languages", &["plugin", "call"]);
    cmd.arg(component).args(args);
    let out = cmd.output().unwrap();
    (out.status.code(), json_of(&out))
}

/// A fresh directory for a new plugin named `name`, under target/.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = common::root().join("target/plugin-new").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// `weft plugin new NAME --lang LANG [--effect] --dir DIR`, then the build.
fn new_and_build(name: &str, lang: &str, effect: bool) -> PathBuf {
    let dir = fresh_dir(name);
    let mut args = vec!["plugin", "new", name, "--lang", lang, "--dir", dir.to_str().unwrap()];
    if effect {
        args.push("--effect");
    }
    let out = common::weft("languages", &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("weft plugin build {}", dir.display())), "it says how to build: {said}");
    assert!(dir.join("wit/step.wit").is_file(), "the contract's WIT is written beside the plugin");
    if lang == "rust" {
        // Only for speed: resolve the same crate versions as the workspace,
        // so that target/plugins already holds them compiled.
        std::fs::copy(common::root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let component = common::plugin_build(&dir);
    assert_eq!(component, dir.join(format!("{name}.wasm")), "the component lands next to plugin.toml");
    component
}

/// What every compute template does: greet by name, refuse a missing name,
/// log what it did, and stop at its fuel budget.
fn check_compute_template(component: &Path, expected_log: &str) {
    let (code, ok) = call(component, &["--input", r#"{"name": "Ada"}"#]);
    assert_eq!(code, Some(0), "{ok}");
    assert_eq!(ok["output"]["greeting"], "Hello, Ada!", "{ok}");
    let logs = ok["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains(expected_log))),
        "the step's own output reaches its log: {ok}"
    );

    let (code, bad) = call(component, &["--input", r#"{"name": 7}"#]);
    assert_eq!(code, Some(14), "{bad}");
    assert_eq!(bad["failure"]["kind"], "plugin_error", "{bad}");
    assert_eq!(bad["failure"]["error_kind"], "invalid_input", "{bad}");
    assert!(bad["failure"]["message"].as_str().unwrap().contains("string"), "says what `name` must be: {bad}");

    let (code, starved) = call(component, &["--input", r#"{"name": "Ada"}"#, "--fuel", "2000"]);
    assert_eq!(code, Some(11), "{starved}");
    assert_eq!(starved["failure"]["kind"], "out_of_fuel", "{starved}");
}

#[test]
fn a_new_rust_plugin_builds_and_runs() {
    let c = new_and_build("greet-rust", "rust", false);
    check_compute_template(&c, "greeting Ada");
}

#[test]
fn a_new_javascript_plugin_builds_and_runs() {
    let c = new_and_build("greet-js", "js", false);
    check_compute_template(&c, "greeting Ada");
    // Its tests run with node's own runner.
    own_tests(&c, "npm", &["test", "--silent"]);
}

#[test]
fn a_new_typescript_plugin_builds_and_runs() {
    let c = new_and_build("greet-ts", "ts", false);
    check_compute_template(&c, "greeting Ada");
    // Its tests: tsc type-checks, then node's own runner.
    own_tests(&c, "npm", &["test", "--silent"]);
}

#[test]
fn a_new_python_plugin_builds_and_runs() {
    let c = new_and_build("greet-python", "python", false);
    check_compute_template(&c, "greeting Ada");
    own_tests(&c, "python3", &["-m", "unittest", "-q"]);
}

#[test]
fn a_new_c_plugin_builds_and_runs() {
    let c = new_and_build("greet-c", "c", false);
    check_compute_template(&c, "greeting Ada");
}

#[test]
fn a_new_go_plugin_builds_and_runs() {
    let c = new_and_build("greet-go", "go", false);
    check_compute_template(&c, "greeting Ada");
    own_tests(&c, "go", &["test", "./..."]);
}

/// What both effect templates do: POST once per idempotency key through
/// the granted HTTP, remember it in KV, and be refused a URL outside the
/// grant. A refused request is a `plugin_error` in Python; componentize-js's
/// runtime aborts on a failed `fetch` instead of rejecting its promise, so in
/// JavaScript it is a trap (`denied_exit` says which), the host's log naming
/// the denial either way.
fn check_effect_template(component: &Path, denied_exit: i32) {
    let server = common::TestServer::start(&[]);
    let input = format!(r#"{{"url": "{}", "order": {{"sku": "A1"}}}}"#, server.url("/orders"));
    let grant = format!("http://127.0.0.1:{}/orders:POST", server.port);
    let (code, ok) = call(component, &["--effect", "--kv", "--allow-http", &grant, "--input", &input]);
    assert_eq!(code, Some(0), "{ok}");
    assert_eq!(ok["output"]["replayed"], false, "{ok}");
    let seen = server.seen();
    let post = seen.as_array().unwrap().iter().find(|r| r["method"] == "POST").expect("a POST reached the server");
    assert_eq!(post["path"], "/orders");
    let body: serde_json::Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"sku": "A1"}), "the server got the order's JSON: {seen}");
    assert_eq!(ok["output"]["receipt"]["posted"], post["body"].as_str().unwrap().len(), "{ok}");

    let other = format!("http://127.0.0.1:{}/other:POST", server.port);
    let (code, denied) = call(component, &["--effect", "--kv", "--allow-http", &other, "--input", &input]);
    assert_eq!(code, Some(denied_exit), "a request outside the grant fails: {denied}");
    assert!(denied["logs"][0]["message"].as_str().unwrap().starts_with("capability_denied http: POST"), "{denied}");

    let (code, bad) = call(component, &["--effect", "--kv", "--allow-http", &grant, "--input", "{}"]);
    assert_eq!(code, Some(14), "{bad}");
    assert_eq!(bad["failure"]["error_kind"], "invalid_input", "{bad}");

    let (code, compensated) =
        call(component, &["--effect", "--kv", "--allow-http", &grant, "--compensate", "{}", "--input", &input]);
    assert_eq!(code, Some(0), "compensate runs: {compensated}");

    let (code, slow) =
        call(component, &["--effect", "--kv", "--allow-http", &grant, "--input", &input, "--fuel", "5000"]);
    assert_eq!(code, Some(11), "{slow}");
}

/// Runs a plugin's own unit tests (`program args` in its directory).
fn own_tests(component: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).current_dir(component.parent().unwrap()).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_new_javascript_effect_plugin_posts_once_and_remembers_it() {
    let c = new_and_build("record-js", "js", true);
    // Its unit tests cover the replay under one idempotency key and the
    // compensation (each `plugin call` has a fresh key-value scope).
    own_tests(&c, "npm", &["test", "--silent"]);
    check_effect_template(&c, 13);
}

#[test]
fn a_new_python_effect_plugin_posts_once_and_remembers_it() {
    let c = new_and_build("record-python", "python", true);
    own_tests(&c, "python3", &["-m", "unittest", "-q"]);
    check_effect_template(&c, 14);
}

#[test]
fn a_go_step_keeps_working_past_a_few_mebibytes_of_heap() {
    // Go's heap grows over any page it did not allocate itself; the
    // preview-1 adapter's state must not be one of them.
    let dir = fresh_dir("churn-go");
    let out = common::weft("languages", &["plugin", "new", "churn-go", "--lang", "go", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(
        dir.join("main.go"),
        r#"package main

import (
	"fmt"

	"weft.example/weft"
)

func init() { weft.Handle(churn) }

// Allocates `mb` MiB in 1 MiB pieces, keeping the last eight alive.
func churn(ctx *weft.Context, input map[string]any) (any, error) {
	mb := int(input["mb"].(float64))
	var keep [8][]byte
	sum := 0
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		b[i%len(b)] = byte(i)
		keep[i%8] = b
		sum += int(b[i%len(b)])
	}
	fmt.Printf("churned %d MiB\n", mb)
	return map[string]any{"sum": sum, "kept": len(keep)}, nil
}

func main() {}
"#,
    )
    .unwrap();
    std::fs::remove_file(dir.join("main_test.go")).unwrap();
    let component = common::plugin_build(&dir);
    let (code, out) = call(&component, &["--input", r#"{"mb": 400}"#, "--memory-mb", "128", "--fuel", "1000000000000"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["output"]["kept"], 8, "{out}");
    assert!(out["stats"]["peak_memory_bytes"].as_u64().unwrap() > 8 << 20, "the heap really grew: {out}");
}

#[test]
fn a_missing_toolchain_is_named_with_the_command_that_installs_it() {
    let dir = fresh_dir("no-toolchain");
    let out = common::weft(
        "languages",
        &["plugin", "new", "no-toolchain", "--lang", "python", "--dir", dir.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["plugin", "build"])
        .arg(&dir)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("`componentize-py` is not on PATH") && err.contains("pip install componentize-py"), "{err}");
}

#[test]
fn plugin_new_refuses_a_bad_name_an_occupied_directory_and_an_effect_template_that_does_not_exist() {
    let bad = common::weft("languages", &["plugin", "new", "Bad_Name", "--lang", "js"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("lowercase letters"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let dir = fresh_dir("occupied");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let taken =
        common::weft("languages", &["plugin", "new", "occupied", "--lang", "c", "--dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
    assert_eq!(taken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("not empty"));
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine", "nothing is overwritten");

    let none =
        common::weft("languages", &["plugin", "new", "x", "--lang", "go", "--effect", "--dir", "/nonexistent/x"])
            .output()
            .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no effect-step template for go"));
}

#[test]
fn the_polyglot_workflow_runs_five_languages_with_a_condition_and_an_action() {
    common::polyglot();
    let dir = common::temp_cache("polyglot-run");
    let db = dir.join("runs.db");
    let example = common::root().join("examples/polyglot");
    let out = common::weft_db(
        "languages",
        &db,
        &[
            "run",
            example.join("workflow.yaml").to_str().unwrap(),
            "--input",
            example.join("input.json").to_str().unwrap(),
            "--output",
            "json",
        ],
    )
    .output()
    .unwrap();
    let run = json_of(&out);
    assert_eq!(run["execution_status"], "completed", "{run}");
    let steps = &run["step_outputs"];
    assert_eq!(steps["tally"]["total_cents"], 11500, "Rust totals: {run}");
    assert_eq!(steps["classify"]["tier"], "large", "JavaScript classifies: {run}");
    assert_eq!(steps["score"]["average_line_cents"], 5750, "Python scores: {run}");
    assert_eq!(steps["checksum"]["checksum"].as_str().unwrap().len(), 16, "C seals: {run}");
    assert_eq!(steps["checksum"]["order"]["risk"], steps["score"]["risk"], "data passes along: {run}");
    assert_eq!(steps["decide"]["reviews"], serde_json::json!(["total 11500 >= 10000"]), "the action reached Go: {run}");
    assert_eq!(steps["decide"]["decision"], "approve", "{run}");
    assert_eq!(run["actions_emitted"][0]["target_node"], "decide", "{run}");

    // Every language's stderr reaches its step's log.
    let id = run["output_variables"]["run"]["run_id"].as_str().unwrap();
    let logs = common::weft_db("languages", &db, &["runs", "logs", id]).output().unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    for step in ["tally", "classify", "score", "checksum", "decide"] {
        assert!(
            logs.lines().any(|l| l.starts_with(&format!("{step} #1"))
                && l.contains("stderr")
                && l.contains(&format!("{step}:"))),
            "{step}'s stderr is in the log:\n{logs}"
        );
    }

    // A risky order fails the `when`: checksum is skipped, and decide with it.
    let input = dir.join("risky.json");
    std::fs::write(
        &input,
        r#"{"context": {"order": {"order_id": "ord-9", "lines": [{"sku": "car", "qty": 1, "unit_cents": 9000000}]}}}"#,
    )
    .unwrap();
    let out = common::weft_db(
        "languages",
        &db,
        &[
            "run",
            example.join("workflow.yaml").to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            "json",
        ],
    )
    .output()
    .unwrap();
    let risky = json_of(&out);
    assert_eq!(risky["step_outputs"]["score"]["risk"], 1.0, "{risky}");
    let skipped = risky["skipped_steps"].as_array().unwrap();
    assert!(skipped.contains(&"checksum".into()) && skipped.contains(&"decide".into()), "{risky}");
}

#[test]
fn a_javascript_exception_is_a_plugin_error_with_its_message_and_stack() {
    let classify = &common::polyglot()[1].1;
    let (code, out) = call(classify, &["--input", r#"{"order_id": "x", "lines": 0}"#]);
    assert_eq!(code, Some(14), "{out}");
    assert_eq!(out["failure"]["error_kind"], "fatal", "{out}");
    let message = out["failure"]["message"].as_str().unwrap();
    assert!(message.starts_with("TypeError:"), "the exception's message: {message}");
    assert!(message.contains("classify@src/index.js:"), "and its stack, with file and line: {message}");
}

#[test]
fn a_python_exception_is_a_plugin_error_with_its_message_and_traceback() {
    let score = &common::polyglot()[2].1;
    let (code, out) = call(score, &["--input", r#"{"total_cents": 100, "lines": 0, "tier": "small"}"#]);
    assert_eq!(code, Some(14), "{out}");
    let message = out["failure"]["message"].as_str().unwrap();
    assert!(message.starts_with("ZeroDivisionError: division by zero"), "the exception's message: {message}");
    assert!(message.contains("Traceback") && message.contains("app.py\", line"), "and its traceback: {message}");
}

#[test]
fn a_component_built_against_another_wit_is_told_which_function_differs_and_which_world_was_expected() {
    let (code, out) = call(&common::plugin("old_wit"), &[]);
    assert_eq!(code, Some(16), "{out}");
    let reason = out["failure"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "export `weft:step/compute@0.1.0` function `run` has the type `run: func(input: string) -> string`"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("compute-step world (weft:step/compute-step@0.1.2) gives it `run: func(ctx: step-context, input: json) -> result<step-output, step-error>`"),
        "{reason}"
    );
    assert!(reason.contains("import `weft:step/log@0.1.0` function `log`"), "{reason}");
}
