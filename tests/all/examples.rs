//! Every folder of `examples/` is a runnable workflow: it holds
//! `workflow.yaml`, `input.json` and a `README.md`, and it runs to the status
//! its README promises. So does the plugin example under `plugins/examples/`.

use crate::common::{self, json_of};

/// An approval gate's step and the decision delivered to it.
type Decision = (&'static str, &'static str);

/// The status each example's README promises, and the decision its README
/// gives an approval gate it waits at (step, data); a new example is added here.
const EXPECTED: &[(&str, &str, Option<Decision>)] = &[
    ("approval", "completed", Some(("manager_review", r#"{"approved": true, "by": "m.hopper"}"#))),
    ("batch-fan-out", "completed", None),
    ("fan-out", "completed", None),
    // Against its own server (server.py), started here as its run.sh starts it.
    ("http-pipeline", "completed", None),
    ("onex-pipeline", "completed", None),
    // A saga that fails on purpose and compensates.
    ("order-saga", "failed", None),
    // Its five steps in five languages are built first (`common::polyglot`).
    ("polyglot", "completed", None),
    ("streaming-pipeline", "completed", None),
    ("sub-workflow", "completed", None),
];

/// Runs `cmd` (a `weft run` on `db`); when it pauses at a gate, delivers `decision`.
fn run_deciding(
    mut cmd: std::process::Command,
    db: &std::path::Path,
    decision: Option<(&str, &str)>,
) -> std::process::Output {
    let Some((step, data)) = decision else { return cmd.output().unwrap() };
    // Bounded: a run that waits for a person cannot outlive the test.
    let config = common::short_config(db.parent().unwrap());
    cmd.args(["--config", config.to_str().unwrap()]);
    let child = common::Reaped::spawn(cmd);
    let start = std::time::Instant::now();
    let id = loop {
        let list = common::weft_db("examples", db, &["runs", "list", "--status", "paused", "--json"]).output().unwrap();
        if let Some(r) = serde_json::from_slice::<serde_json::Value>(&list.stdout).ok().and_then(|v| v.get(0).cloned())
        {
            break r["run_id"].as_str().unwrap().to_string();
        }
        assert!(start.elapsed().as_secs() < 60, "the run never paused at `{step}`");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let signal = common::weft_db("examples", db, &["runs", "signal", &id, step, "--data", data]).output().unwrap();
    assert_eq!(signal.status.code(), Some(0), "{}", String::from_utf8_lossy(&signal.stderr));
    child.output_within(std::time::Duration::from_secs(120))
}

#[test]
fn every_example_folder_is_a_workflow_that_runs_as_its_readme_says() {
    common::plugin("echo");
    common::polyglot();
    let mut folders: Vec<_> = std::fs::read_dir(common::root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert!(folders.len() >= EXPECTED.len(), "{folders:?}");
    for dir in folders {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        for file in ["workflow.yaml", "input.json", "README.md"] {
            assert!(dir.join(file).is_file(), "examples/{name} has no {file}: each example folder is a workflow");
        }
        let Some((_, status, decision)) = EXPECTED.iter().find(|(n, _, _)| *n == name) else {
            panic!("examples/{name} is new: add the status its README promises to EXPECTED in this test");
        };
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains(&format!("examples/{name}/workflow.yaml")), "its README shows how to run it");
        let wf = dir.join("workflow.yaml");
        let mut input = dir.join("input.json");
        let scratch = tempfile::tempdir().unwrap();
        let server = dir.join("server.py").is_file().then(|| common::TestServer::start(&["--token", "example-token"]));
        if let Some(server) = &server {
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
            v["context"]["base_url"] = server.url("").into();
            input = scratch.path().join("input.json");
            std::fs::write(&input, v.to_string()).unwrap();
        }
        // A run that waits for a person is in a database the decision can reach.
        let db = scratch.path().join("runs.db");
        let store: &[&str] = if decision.is_some() { &["--db", db.to_str().unwrap()] } else { &["--in-memory"] };
        let mut cmd = common::weft(
            "examples",
            &[&["run", wf.to_str().unwrap(), "--input", input.to_str().unwrap(), "-q", "--output", "json"], store]
                .concat(),
        );
        cmd.env("WEFT_SECRET_API_TOKEN", "example-token");
        let out = run_deciding(cmd, &db, *decision);
        let json = json_of(&out);
        assert_eq!(json["execution_status"], *status, "examples/{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(json["completed_steps"].as_array().is_some_and(|s| !s.is_empty()), "examples/{name}: {json}");
    }
}

#[test]
fn the_price_cart_plugin_example_prices_its_cart_as_its_readme_says() {
    let component = common::plugin("price_cart");
    let input = common::root().join("plugins/examples/price-cart/example-input.json");
    let at = format!("@{}", input.display());
    let out =
        common::weft("examples", &["plugin", "call", component.to_str().unwrap(), "--input", &at]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json = json_of(&out);
    assert_eq!(json["output"]["subtotal_cents"], 7499);
    assert_eq!(json["output"]["total_cents"], 8100);
    assert_eq!(json["output"]["shipping_cents"], 0);
}

#[test]
fn the_embedding_example_runs_with_no_arguments() {
    common::plugin("echo");
    // `cargo test` builds the examples beside the binaries it tests.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_weft")).with_file_name("examples").join("embed");
    assert!(
        bin.is_file(),
        "{} was not built: run the tests with `cargo test`, which builds the examples",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&bin)
        .env("WEFT_DB", dir.path().join("embed.db"))
        .env("WEFT_CACHE_DIR", common::root().join("target/test-cache/examples"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("started run") && stdout.contains("report completed"), "{stdout}");
    assert!(stdout.contains("\"execution_status\": \"completed\""), "{stdout}");
}
