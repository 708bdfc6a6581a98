//! End-to-end tests of the `weft` binary: real components, real processes.

use crate::common;
use common::plugin;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// The run database of this test process (runs get fresh ids, so tests share it).
fn test_db() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("weft-cli-test-{}.db", std::process::id()))
}

fn weft(args: &[&str]) -> Output {
    common::weft("cli", args).env("WEFT_DB", test_db()).output().expect("run weft")
}

fn call(name: &str, extra: &[&str]) -> (i32, Value, String) {
    let path = plugin(name);
    let mut args = vec!["plugin", "call", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = weft(&args);
    let json = common::json_of(&out);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn call_prints_the_outcome_and_exits_zero_on_success() {
    let (code, json, _) = call(
        "price_cart",
        &["--input", r#"{"items":[{"sku":"A","qty":3,"unit_price_cents":1000}],"tax_rate_bps":1000}"#],
    );
    assert_eq!(code, 0);
    assert_eq!(json["status"], "succeeded");
    assert_eq!(json["output"]["total_cents"], 3300);
    assert!(json["stats"]["fuel_consumed"].as_u64().unwrap() > 0);
    assert!(json["stats"]["peak_memory_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn call_reads_input_from_a_file() {
    let dir = common::temp_cache("cli-input");
    let file = dir.join("input.json");
    std::fs::write(&file, r#"{"hello": "file"}"#).unwrap();
    let at = format!("@{}", file.display());
    let (code, json, _) = call("echo", &["--input", &at]);
    assert_eq!(code, 0);
    assert_eq!(json["output"]["hello"], "file");
}

#[test]
fn every_hostile_plugin_gets_its_kind_and_exit_code() {
    let cases: &[(&str, &[&str], &str, i32)] = &[
        ("infinite_loop", &["--fuel", "10000000000000", "--timeout-ms", "300"], "timeout", 10),
        ("infinite_loop", &["--fuel", "100000000"], "out_of_fuel", 11),
        ("cpu_burn", &["--fuel", "100000000"], "out_of_fuel", 11),
        ("memory_bomb", &["--memory-mb", "32"], "memory_limit", 12),
        ("stack_overflow", &[], "trap", 13),
        ("panic", &[], "trap", 13),
        ("huge_output", &["--fuel", "100000000000", "--memory-mb", "256"], "invalid_output", 15),
        ("invalid_json", &[], "invalid_output", 15),
        ("flaky", &["--input", r#"{"fail_until_attempt": 5, "error": "fatal"}"#], "plugin_error", 14),
        ("wrong_world", &[], "component_invalid", 16),
    ];
    for (name, args, kind, code) in cases {
        let (got_code, json, stderr) = call(name, args);
        assert_eq!(json["status"], "failed", "{name}: {json}");
        assert_eq!(json["failure"]["kind"], *kind, "{name}: {json}");
        assert_eq!(got_code, *code, "{name}: exit code");
        assert!(stderr.contains(kind), "{name}: stderr names the failure: {stderr}");
    }
}

#[test]
fn stack_overflow_is_flagged_in_the_json() {
    let (_, json, _) = call("stack_overflow", &[]);
    assert_eq!(json["failure"]["stack_overflow"], true);
}

#[test]
fn escape_runs_to_completion_with_every_door_shut() {
    let (code, json, _) = call("escape", &[]);
    assert_eq!(code, 0, "{json}");
    assert!(json["output"]["passwd"]["err"].is_string(), "{json}");
    assert!(json["output"]["tcp_connect"]["err"].is_string(), "{json}");
    assert_eq!(json["output"]["env_count"], 0);
}

#[test]
fn an_effect_step_runs_and_compensates_through_the_cli() {
    let input = r#"{"order_id":"o-1","amount_cents":500,"currency":"EUR","account":"a-1"}"#;
    let (code, json, _) = call("charge_payment", &["--effect", "--input", input, "--idempotency-key", "r1/charge"]);
    assert_eq!(code, 0, "{json}");
    let receipt = json["output"].to_string();
    let (code, json, _) =
        call("charge_payment", &["--compensate", &receipt, "--input", input, "--idempotency-key", "r1/charge"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["output"], Value::Null);
    assert!(json["logs"].as_array().unwrap().iter().any(|l| l["message"].as_str().unwrap().contains("refunded")));
    // A compute step called as an effect is refused with the reason.
    let (code, json, _) = call("echo", &["--effect"]);
    assert_eq!(code, 16);
    assert!(json["failure"]["reason"].as_str().unwrap().contains("weft:step/effect"), "{json}");
}

fn write_temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = common::temp_cache("cli-files");
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn malformed_files_are_component_invalid_with_a_reason() {
    let cases = [
        ("core.wasm", common::core_module_bytes(), "core WebAssembly module"),
        ("random.wasm", common::random_bytes(), "not a WebAssembly binary"),
        ("empty.wasm", Vec::new(), "empty"),
        ("truncated.wasm", common::truncated_component_bytes(), "not a valid WebAssembly component"),
    ];
    for (name, bytes, needle) in cases {
        let p = write_temp(name, &bytes);
        let out = weft(&["plugin", "call", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(16), "{name}");
        let json: Value = common::json_of(&out);
        assert_eq!(json["failure"]["kind"], "component_invalid");
        let reason = json["failure"]["reason"].as_str().unwrap();
        assert!(reason.contains(needle), "{name}: {reason}");

        let out = weft(&["plugin", "inspect", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(16), "{name}: inspect");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("world:   neither"), "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
    }
}

#[test]
fn inspect_shows_digest_world_and_wit() {
    let path = plugin("validate_order");
    let out = weft(&["plugin", "inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes = std::fs::read(&path).unwrap();
    assert!(text.contains(&weft::sandbox::digest(&bytes)), "{text}");
    assert!(text.contains(&format!("{} bytes", bytes.len())), "{text}");
    assert!(text.contains("world:   compute"), "{text}");
    assert!(text.contains("fits compute-step"), "{text}");
    assert!(text.contains("does not fit effect-step"), "{text}");
    assert!(text.contains("export weft:step/compute@0.1.2;"), "{text}");
    assert!(text.contains("import weft:step/log@0.1.2;"), "{text}");

    let effect = plugin("charge_payment");
    let out = weft(&["plugin", "inspect", "--json", effect.to_str().unwrap()]);
    let json: Value = common::json_of(&out);
    assert_eq!(json["world"], "effect");
    assert_eq!(json["effect"]["fits"], true);
    assert_eq!(json["format"], "component");
}

#[test]
fn inspect_explains_a_wrong_world() {
    let out = weft(&["plugin", "inspect", plugin("wrong_world").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(16));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("world:   neither"), "{text}");
    assert!(text.contains("unexpected import `evil:plugin/secrets@1.0.0`"), "{text}");
    assert!(text.contains("missing export `weft:step/effect@0.1.2`"), "{text}");
    assert!(text.contains("export evil:plugin/greeter@1.0.0;"), "{text}");
}

#[test]
fn bad_arguments_get_a_clear_error_and_exit_2() {
    let echo = plugin("echo");
    let e = echo.to_str().unwrap();
    let out = weft(&["plugin", "call", e, "--input", "{\"a\": "]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--input") && err.contains("line 1"), "{err}");

    let out = weft(&["plugin", "call", e, "--input", "[1, 2]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("must be a JSON object (a step's input is always an object), not an array")
    );

    let out = weft(&["plugin", "call", "/nonexistent/step.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read component /nonexistent/step.wasm"), "{err}");

    for (flag, value, said) in [
        ("--memory-mb", "99999", "--memory-mb 99999 is over this host's limit of 4096 MiB"),
        ("--timeout-ms", "999999999999", "--timeout-ms 999999999999 is over the sandbox's limit"),
    ] {
        let out = weft(&["plugin", "call", e, flag, value]);
        assert_eq!(out.status.code(), Some(2), "limits are refused, not silently lowered");
        assert!(String::from_utf8_lossy(&out.stderr).contains(said), "{}", String::from_utf8_lossy(&out.stderr));
    }

    let out = weft(&["plugin", "call", e, "--input", "@/nonexistent/input.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/input.json"));
    assert!(Path::new(e).exists());
}

#[test]
fn devices_and_directories_named_as_files_are_refused_not_read() {
    // /dev/zero never ends: reading it whole would take all memory.
    // `plugin call` reports an unusable component as component_invalid (16), the rest are usage errors (2).
    let cases: [(&[&str], i32, &str); 5] = [
        (&["validate", "/dev/zero"], 2, "/dev/zero: cannot read the workflow file: it is a device, not a regular file"),
        (&["validate", "/"], 2, "/: cannot read the workflow file: it is a directory, not a regular file"),
        (&["plugin", "inspect", "/dev/zero"], 2, "cannot read /dev/zero: it is a device, not a regular file"),
        (&["plugin", "call", "/dev/zero"], 16, "component_invalid: /dev/zero: it is a device, not a regular file"),
        (
            &["run", "examples/onex-pipeline/workflow.yaml", "--in-memory", "--input", "/dev/zero"],
            2,
            "--input: cannot read /dev/zero: it is a device, not a regular file",
        ),
    ];
    for (args, code, want) in cases {
        let out = common::weft("cli", args).current_dir(common::root()).env("WEFT_DB", test_db()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
#[test]
fn pooling_falls_back_to_on_demand_when_the_address_space_is_short() {
    // 8 GB of address space cannot hold the pool's reservation (several 4 GiB
    // slots), but can hold one on-demand instance.
    let echo = plugin("echo");
    let script = format!(
        "ulimit -v 8000000 && exec '{}' plugin call '{}' --input '{{\"a\": 1}}' --compact",
        env!("CARGO_BIN_EXE_weft"),
        echo.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("WEFT_CACHE_DIR", common::root().join("target/test-cache/cli"))
        .env("WEFT_DB", test_db())
        .env_remove("WEFT_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("falling back to on-demand allocation"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {stderr}");
    let json: Value = common::json_of(&out);
    assert_eq!(json["output"]["a"], 1);
}

// ------------------------------------------------------------ weft run

fn run_example(name: &str) -> (i32, Value, String) {
    plugin("echo"); // builds the plugins the examples use
    let root = common::root();
    let wf = root.join("examples").join(name).join("workflow.yaml");
    let input = root.join("examples").join(name).join("input.json");
    let out = weft(&["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", "json"]);
    let json = common::json_of(&out);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn the_onex_pipeline_example_runs_as_written() {
    let (code, out, stderr) = run_example("onex-pipeline");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out["execution_status"], "completed");
    assert_eq!(
        out["completed_steps"],
        serde_json::json!(["validate_input", "fetch_data", "process_data", "persist_results", "notify_completion"])
    );
    assert_eq!(out["step_outputs"]["process_data"]["total_cents"], 8599);
    assert_eq!(out["actions_emitted"][0]["target_node"], "process_data");
    assert!(out["output_variables"].get("undelivered_actions").is_none(), "{}", out["output_variables"]);
    let id = out["output_variables"]["run"]["workflow_id"].as_str().unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a fresh run id: {id}");
    assert!(stderr.contains(&format!("weft runs resume {id}")), "how to resume is printed: {stderr}");
    assert!(stderr.contains("validate_input: completed after 1 attempt(s)"), "progress on stderr: {stderr}");
    assert!(stderr.contains("run finished: Completed"), "{stderr}");
}

#[test]
fn the_order_saga_example_compensates_in_reverse_order() {
    let (code, out, _) = run_example("order-saga");
    assert_eq!(code, 3, "a failed run exits 3");
    assert_eq!(out["execution_status"], "failed");
    assert_eq!(out["failed_steps"], serde_json::json!(["book_shipping"]));
    let comp: Vec<&str> = out["output_variables"]["compensation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(comp, ["reserve_stock", "charge"]);
}

#[test]
fn the_fan_out_example_runs_branches_in_parallel() {
    let (code, out, _) = run_example("fan-out");
    assert_eq!(code, 0);
    assert_eq!(out["parallel_executions"], 2);
    for k in ["by_region", "by_product", "by_channel"] {
        assert!(out["final_result"][k]["groups"].is_array(), "{k}: {}", out["final_result"]);
    }
}

#[test]
fn the_approval_example_approves_a_small_order_by_policy_without_waiting() {
    // Over the limit, the example waits for a person (tests/all/contract.rs);
    // within it, the conditional node routes around the gate.
    plugin("echo");
    let dir = common::root().join("examples/approval");
    let mut input: Value = serde_json::from_slice(&std::fs::read(dir.join("input.json")).unwrap()).unwrap();
    input["context"]["approval_limit_cents"] = serde_json::json!(1_000_000);
    let path = write_temp("small-order.json", input.to_string().as_bytes());
    let wf = dir.join("workflow.yaml");
    let out =
        weft(&["run", wf.to_str().unwrap(), "--input", path.to_str().unwrap(), "--output", "json", "--in-memory"]);
    let out = common::json_of(&out);
    assert_eq!(out["execution_status"], "completed");
    assert_eq!(out["skipped_steps"], serde_json::json!(["manager_review", "notify_rejection"]));
    assert_eq!(
        out["completed_steps"],
        serde_json::json!(["validate", "price_cart", "route", "auto_approve", "record_approval"])
    );
    assert_eq!(out["step_outputs"]["route"], serde_json::json!({"case": "default", "chosen": ["auto_approve"]}));
    assert_eq!(out["actions_emitted"].as_array().unwrap().len(), 1, "validate's action to price_cart");
    assert_eq!(out["step_outputs"]["auto_approve"]["by"], "policy");
}

#[test]
fn validate_reports_problems_with_file_line_and_column() {
    let ok = common::root().join("examples/onex-pipeline/workflow.yaml");
    plugin("echo");
    let out = weft(&["validate", ok.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: workflow"));

    let bad = write_temp(
        "bad.yaml",
        b"kind: WorkflowDefinition\nexecution_graph:\n  nodes:\n    - node_id: a\n      node_type: compute\n      component: nowhere.wasm\n      depends_on: [b]\n",
    );
    let out = weft(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:6:18: node `a`: component `nowhere.wasm` not found"), "{err}");
    assert!(err.contains("bad.yaml:7:20: node `a`: depends on `b`"), "{err}");
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let wf = common::root().join("examples/approval/workflow.yaml");
    let out = weft(&["graph", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("flowchart LR"), "{text}");
    assert!(text.contains("n2{\"route (conditional)\"}"), "{text}");
    assert!(text.contains("n4{{\"manager_review (approval gate)\"}}"), "{text}");
    assert!(text.contains("n4 -->|\"steps.manager_review.approved != true\"| n6"), "{text}");
    let out = weft(&["graph", wf.to_str().unwrap(), "--format", "dot"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("digraph"), "{text}");
    assert!(text.contains("\"validate\" -> \"price_cart\";"), "{text}");
}

/// Starts `weft run` of a compensate-strategy saga: effect `pay` (component
/// `pay`, input `pay_input`), then `wait`, which sleeps 30 s.
fn spawn_saga(file: &str, pay: &str, pay_input: &str) -> std::process::Child {
    let yaml = format!(
        "kind: WorkflowDefinition\nexecution_graph:\n  nodes:\n    - {{node_id: pay, node_type: effect, component: '{}', input: \"{pay_input}\"}}\n    - {{node_id: wait, node_type: compute, component: '{}', timeout_ms: 60000, depends_on: [pay], input: \"{{'sleep_ms': 30000}}\"}}\ncoordination_rules: {{failure_recovery_strategy: compensate}}\n",
        plugin(pay).display(),
        plugin("flaky").display()
    );
    let wf = write_temp(file, yaml.as_bytes());
    common::weft("cli", &["run", wf.to_str().unwrap(), "--output", "json"])
        .env("WEFT_DB", test_db())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ctrl_c_cancels_a_run() {
    use std::io::{BufRead, BufReader};
    let mut child = spawn_saga("cancel.yaml", "ledger", "{'kind': 'pay'}");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("wait: attempt 1 started");
        seen.push(line);
        if started {
            let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
            assert!(status.success());
            break;
        }
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "cancelled runs exit 4: {seen:?} {rest:?}");
    let json: Value = common::json_of(&out);
    assert_eq!(json["execution_status"], "cancelled");
    assert_eq!(json["output_variables"]["compensation"][0]["step_id"], "pay");
    assert!(rest.iter().any(|l| l.contains("pay: compensated")), "{rest:?}");
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_the_run_resumes_where_it_was() {
    use std::io::{BufRead, BufReader};
    // `pay` takes 4 s to undo: the first Ctrl-C starts that, the second must
    // not wait for it (if it did, the run would end `cancelled` with exit 4).
    let mut child = spawn_saga("double-cancel.yaml", "slow_effect", "{'compensate_sleep_ms': 4000}");
    let interrupt = |pid: u32| {
        let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    };
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut run_id = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("run ") {
            run_id = rest.split_whitespace().next().unwrap_or_default().to_string();
        }
        if line.contains("wait: attempt 1 started") {
            interrupt(child.id());
        }
        let compensating = line.contains("pay: compensating");
        seen.push(line);
        if compensating {
            interrupt(child.id());
            break;
        }
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{seen:?} {rest:?}");
    assert!(out.stdout.is_empty(), "no output contract for a run that did not finish");
    let said = rest.join("\n");
    assert!(said.contains(&format!("`weft runs resume {run_id}` finishes it")), "{said}");
    assert!(!said.contains("pay: compensated"), "{said}");

    // The run was left unfinished; resuming it finishes the cancellation.
    let out = weft(&["runs", "show", &run_id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"status\": \"running\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = weft(&["runs", "resume", &run_id, "--output", "json"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = common::json_of(&out);
    assert_eq!(json["execution_status"], "cancelled");
    assert_eq!(json["output_variables"]["compensation"][0]["step_id"], "pay");
    assert_eq!(json["output_variables"]["compensation"][0]["status"], "compensated");
}

#[test]
fn a_terminal_gets_a_live_view_of_step_states() {
    // `script` gives the child a pseudo-terminal, as an interactive shell would.
    plugin("echo");
    let root = common::root();
    let cmd = format!(
        "'{}' run '{}' --input '{}' --output json > /dev/null",
        env!("CARGO_BIN_EXE_weft"),
        root.join("examples/fan-out/workflow.yaml").display(),
        root.join("examples/fan-out/input.json").display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("WEFT_CACHE_DIR", root.join("target/test-cache/cli"))
        .env("WEFT_DB", test_db())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("steps: 4 completed, 0 failed, 0 skipped, 0 running, of 4"), "{screen}");
    assert!(screen.contains("\u{1b}[2K"), "redrawn in place: {screen}");
}

// -------------------------------------------------- the command line as a user meets it

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // Far more output than a pipe holds, so the writer meets the closed pipe.
    let echo = plugin("echo");
    let mut y = String::from("kind: WorkflowDefinition\nexecution_graph:\n  nodes:\n");
    for i in 0..3000 {
        y.push_str(&format!(
            "    - {{node_id: node_number_{i}, node_type: compute, component: '{}'}}\n",
            echo.display()
        ));
    }
    let wf = write_temp("wide.yaml", y.as_bytes());
    let script = format!(
        "'{}' graph '{}' | head -c 100 > /dev/null; echo \"exit ${{PIPESTATUS[0]}}\" >&2",
        env!("CARGO_BIN_EXE_weft"),
        wf.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert!(stderr.contains("exit 141"), "exits as a tool killed by SIGPIPE would: {stderr}");
}

#[test]
fn commands_that_only_read_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nowhere").join("runs.db");
    let db = db.to_str().unwrap();
    for args in [&["runs", "show", "some-id"][..], &["runs", "logs", "some-id"]] {
        let out = common::weft("cli", args).args(["--db", db]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("no run database at {db}")), "{args:?}: {err}");
    }
    for (args, empty) in [(&["runs", "list"][..], "no runs"), (&["dlq", "list"], "the dead-letter queue is empty")] {
        let out = common::weft("cli", args).args(["--db", db]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains(&format!("{empty} (there is no database at {db} yet)")), "{args:?}: {err}");
    }
    let json = common::weft("cli", &["runs", "list", "--json", "--db", db]).output().unwrap();
    assert_eq!(common::json_of(&json), serde_json::json!([]));
    let health = common::weft("cli", &["health", "--db", db]).output().unwrap();
    assert_eq!(
        health.status.code(),
        Some(0),
        "a store not created yet is healthy: {}",
        String::from_utf8_lossy(&health.stdout)
    );
    let note = common::json_of(&health)["notes"][0].as_str().unwrap_or_default().to_string();
    assert!(note.contains(&format!("there is no database at {db} yet")), "and the report says so: {note}");
    assert!(!dir.path().join("nowhere").exists(), "neither the database nor its directory was created");
}

#[test]
fn a_command_offers_only_the_options_that_mean_something_for_it() {
    for args in [&["runs", "show", "x", "--in-memory"][..], &["runs", "list", "--sync", "full"], &["resume"]] {
        let out = weft(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let help = String::from_utf8_lossy(&weft(&["runs", "show", "--help"]).stdout).to_string();
    assert!(help.contains("--db") && !help.contains("--sync") && !help.contains("--in-memory"), "{help}");
}

#[test]
fn runs_show_on_a_terminal_is_a_table_of_steps_and_json_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = common::chain(dir.path(), "shown", &plugin("counter"), 3, "");
    let run = common::weft_db("cli", &db, &["run", wf.to_str().unwrap(), "-q", "--output", "json"]).output().unwrap();
    let id = common::json_of(&run)["output_variables"]["run"]["run_id"].as_str().unwrap().to_string();
    let cmd = format!("'{}' runs show {id} --db '{}'", env!("CARGO_BIN_EXE_weft"), db.display());
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("Status:     completed"), "{screen}");
    let header = screen.lines().find(|l| l.starts_with("STEP")).unwrap_or_default();
    for column in ["STATUS", "ATTEMPTS", "TIME", "FUEL", "MEMORY"] {
        assert!(header.contains(column), "{screen}");
    }
    let row = screen.lines().find(|l| l.starts_with("s02 ")).unwrap_or_default();
    assert!(row.contains("completed") && row.contains(" 1 "), "{screen}");
    let json = common::weft_db("cli", &db, &["runs", "show", &id]).output().unwrap();
    assert_eq!(common::json_of(&json)["steps"][2]["step_id"], "s03", "not a terminal: the whole document");
}
