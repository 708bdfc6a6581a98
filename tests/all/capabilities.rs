//! Effect steps that really act, and only as far as they are granted: HTTP
//! through wasi:http against a real server on 127.0.0.1, directories, env,
//! secrets (redacted everywhere) and key-value state, through the real CLI
//! and real components; and a compute step that gets none of it.

use crate::common::{TestServer, json_of, plugin, root, weft, weft_db};
use serde_json::{Value, json};
use std::path::Path;

/// The grants every probe call needs: the probe imports the HTTP handler
/// and `kv`, so its node must be granted both (this HTTP rule allows a port
/// nothing listens on).
const PROBE_BASE: &[&str] = &["--kv", "--allow-http", "http://127.0.0.1:9/unused"];

/// `weft plugin call --effect` of the probe fixture with `grants` (on top
/// of [`PROBE_BASE`]) and `ops`.
fn probe(grants: &[&str], ops: Value) -> (Value, std::process::Output) {
    let probe = plugin("probe");
    let input = json!({ "ops": ops }).to_string();
    let mut args = vec!["plugin", "call", probe.to_str().unwrap(), "--effect", "--input", &input];
    args.extend_from_slice(PROBE_BASE);
    args.extend_from_slice(grants);
    let out = weft("capabilities", &args).output().unwrap();
    (json_of(&out), out)
}

fn results(report: &Value) -> Vec<Value> {
    report["output"]["results"].as_array().cloned().unwrap_or_else(|| panic!("no results: {report:#}"))
}

fn logs(report: &Value) -> String {
    report["logs"]
        .as_array()
        .map(|l| l.iter().map(|x| x["message"].as_str().unwrap_or("").to_string() + "\n").collect())
        .unwrap_or_default()
}

#[test]
fn an_allowed_get_and_post_succeed() {
    let server = TestServer::start(&[]);
    let rule = format!("{}:GET,POST", server.url("/*"));
    let (report, _) = probe(
        &["--allow-http", &rule],
        json!([
            {"op": "get", "url": server.url("/records/o-1001")},
            {"op": "post", "url": server.url("/notify"), "body": {"total": 5}},
        ]),
    );
    let r = results(&report);
    assert_eq!(r[0]["ok"]["status"], 200, "{report:#}");
    assert!(r[0]["ok"]["body"].as_str().unwrap().contains("o-1001"), "{report:#}");
    assert_eq!(r[1]["ok"]["status"], 200, "{report:#}");
    let seen = server.seen();
    assert_eq!(seen[1]["method"], "POST");
    assert_eq!(seen[1]["body"], r#"{"total":5}"#);
    assert_eq!(report["stats"]["capability_denials"], Value::Null, "nothing was denied: {report:#}");
}

#[test]
fn other_hosts_ports_paths_methods_and_redirects_are_denied_with_a_log_line() {
    let server = TestServer::start(&[]);
    let other_port = TestServer::start(&[]);
    let rule = format!("http://127.0.0.1:{}/records/*:GET", server.port);
    let away = server.url(&format!("/redirect?to=http://127.0.0.2:{}/records/o-1001", server.port));
    let (report, _) = probe(
        &["--allow-http", &rule],
        json!([
            {"op": "get", "url": format!("http://localhost:{}/records/o-1001", server.port)},
            {"op": "get", "url": other_port.url("/records/o-1001")},
            {"op": "get", "url": server.url("/big")},
            {"op": "post", "url": server.url("/records/o-1001"), "body": {}},
            {"op": "get", "url": server.url("/records/../big")},
            {"op": "get", "url": away},
        ]),
    );
    let r = results(&report);
    for (i, what) in ["another host", "another port", "another path", "a POST", "a dot-dot path"].iter().enumerate() {
        assert!(r[i]["err"].as_str().unwrap_or("").contains("denied"), "{what} was not denied: {report:#}");
    }
    // The redirect itself is outside the grant (another path).
    assert!(r[5]["err"].as_str().unwrap_or("").contains("denied"), "{report:#}");
    let log = logs(&report);
    assert_eq!(log.matches("capability_denied http").count(), 6, "{log}");
    assert!(log.contains(&format!("GET http://localhost:{}/records/o-1001", server.port)), "{log}");
    assert!(log.contains("not granted; the node may send"), "{log}");
    assert_eq!(report["stats"]["capability_denials"], 6, "{report:#}");
    assert!(other_port.seen().as_array().unwrap().is_empty(), "a denied request reached the other server");
    assert!(server.seen().as_array().unwrap().is_empty(), "a denied request reached the server");

    // A redirect the grant allows is followed; one to another host is a new, denied request.
    let wide = format!("{}:GET", server.url("/*"));
    let (report, _) = probe(&["--allow-http", &wide], json!([{"op": "get", "url": away}]));
    assert!(results(&report)[0]["err"].as_str().unwrap().contains("denied"), "{report:#}");
    assert!(logs(&report).contains("GET http://127.0.0.2:"), "{report:#}");
    let home = server.url("/redirect?to=/records/o-1001");
    let relative = server.url("/redirect?to=records/o-1001");
    let (report, _) =
        probe(&["--allow-http", &wide], json!([{"op": "get", "url": home}, {"op": "get", "url": relative}]));
    assert_eq!(results(&report)[0]["ok"]["status"], 200, "{report:#}");
    assert!(results(&report)[1]["ok"]["body"].as_str().unwrap().contains("o-1001"), "{report:#}");
}

#[test]
fn too_many_requests_and_an_oversized_response_hit_their_limits() {
    let server = TestServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[http]\nallow = [{{ url = \"{}\" }}, {{ url = \"http://127.0.0.1:9/unused\" }}]\nmax_requests = 2\n\
             max_response_bytes = 1000\n[kv]\nallow = true\n",
            server.url("/*")
        ),
    )
    .unwrap();
    let rule = server.url("/*");
    let get = |path: &str| json!({"op": "get", "url": server.url(path)});
    let (report, _) = probe(
        &["--allow-http", &rule, "--policy", policy.to_str().unwrap()],
        json!([get("/records/o-1001"), get("/big?bytes=5000"), get("/records/o-1001")]),
    );
    let r = results(&report);
    assert_eq!(r[0]["ok"]["status"], 200, "{report:#}");
    assert!(r[1]["err"].as_str().unwrap().contains("too large"), "{report:#}");
    assert!(r[2]["err"].as_str().unwrap().contains("denied"), "{report:#}");
    let log = logs(&report);
    assert!(log.contains("over the limit of 1000 bytes"), "{log}");
    assert!(log.contains("its limit of 2 requests"), "{log}");
}

#[test]
fn directories_are_preopened_read_only_or_read_write_and_cannot_be_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("order.json"), "{\"id\": 1}").unwrap();
    std::fs::write(dir.path().join("outside.txt"), "secret stuff").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), data.join("link")).unwrap();
    let ro = format!("{}:/data:ro", data.display());
    let rw = format!("{}:/out:rw", out.display());
    let (report, _) = probe(
        &["--dir", &ro, "--dir", &rw],
        json!([
            {"op": "read", "path": "/data/order.json"},
            {"op": "write", "path": "/data/new.txt", "text": "no"},
            {"op": "write", "path": "/out/result.txt", "text": "yes"},
            {"op": "read", "path": "/data/../outside.txt"},
            {"op": "read", "path": "/data/link"},
            {"op": "read", "path": dir.path().join("outside.txt").display().to_string()},
            {"op": "list", "path": "/data"},
        ]),
    );
    let r = results(&report);
    assert_eq!(r[0]["ok"], "{\"id\": 1}", "{report:#}");
    assert!(r[1]["err"].is_string(), "a read-only directory was written: {report:#}");
    assert!(!data.join("new.txt").exists());
    assert_eq!(r[2]["ok"], Value::Null, "{report:#}");
    assert_eq!(std::fs::read_to_string(out.join("result.txt")).unwrap(), "yes");
    for (i, escape) in [(3, "`..`"), (4, "a symlink"), (5, "an absolute host path")] {
        assert!(r[i]["err"].is_string(), "{escape} escaped the preopen: {report:#}");
    }
    assert!(!report.to_string().contains("secret stuff"));
}

#[test]
fn only_declared_variables_are_visible_and_secrets_are_redacted() {
    let probe_path = plugin("probe");
    let input = json!({"ops": [
        {"op": "env", "name": "WEFT_TEST_REGION"},
        {"op": "env", "name": "WEFT_TEST_UNDECLARED"},
        {"op": "env", "name": "PATH"},
        {"op": "secret", "name": "API_TOKEN"},
    ]})
    .to_string();
    let out = weft(
        "capabilities",
        &[
            "plugin",
            "call",
            probe_path.to_str().unwrap(),
            "--effect",
            "--input",
            &input,
            "--env",
            "WEFT_TEST_REGION",
            "--secret",
            "API_TOKEN",
            "--kv",
            "--allow-http",
            "http://127.0.0.1:9/unused",
        ],
    )
    .env("WEFT_TEST_REGION", "eu-west")
    .env("WEFT_TEST_UNDECLARED", "hidden")
    .env("WEFT_SECRET_API_TOKEN", "tok-5ecr3t-value")
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let report = json_of(&out);
    let r = results(&report);
    assert_eq!(r[0]["ok"], "eu-west", "{report:#}");
    assert!(r[1]["err"].is_string(), "an undeclared variable is visible: {report:#}");
    assert!(r[2]["err"].is_string(), "the host's PATH is visible: {report:#}");
    assert_eq!(r[3]["ok"], "[redacted:API_TOKEN]", "{report:#}");
    assert!(!text.contains("tok-5ecr3t-value"), "the secret leaked: {text}");
    assert!(logs(&report).contains("the secret is [redacted:API_TOKEN]"), "{report:#}");
    assert!(logs(&report).contains("stdout has [redacted:API_TOKEN] too"), "{report:#}");
}

/// Writes a workflow `name` of one probe node with `caps` (YAML flow
/// mapping) and the node's `input`, in `dir`.
fn probe_workflow(dir: &Path, name: &str, caps: &str, input: Value) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let yaml = format!(
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: {name}, version: 1.0.0}}\n\
         workflow_metadata: {{workflow_name: {name}, execution_mode: sequential}}\nexecution_graph:\n  nodes:\n\
         \x20   - node_id: probe\n      node_type: effect\n      component: {}\n      capabilities: {caps}\n\
         \x20     input: {:?}\n",
        plugin("probe").display(),
        format!("{input}")
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_secret_is_used_on_the_wire_but_is_in_no_log_output_journal_or_database_byte() {
    let server = TestServer::start(&["--token", "tok-wire-5ecret"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let caps =
        format!("{{http: [{{url: \"{}\", methods: [POST]}}], secrets: [API_TOKEN], kv: true}}", server.url("/*"));
    let input = json!({"ops": [
        {"op": "post", "url": server.url("/notify"), "body": {"n": 1}, "bearer_secret": "API_TOKEN"},
        {"op": "secret", "name": "API_TOKEN"},
    ]});
    let wf = probe_workflow(dir.path(), "secret-flow", &caps, json!({"ops": input["ops"]}));
    let out = weft_db("capabilities", &db, &["run", wf.to_str().unwrap()])
        .env("WEFT_SECRET_API_TOKEN", "tok-wire-5ecret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let seen = server.seen();
    assert_eq!(seen[0]["headers"]["authorization"], "Bearer tok-wire-5ecret", "the token was not sent: {seen:#}");
    assert!(text.contains("[redacted:API_TOKEN]"), "{text}");
    assert!(text.contains("grant: node `probe`: secrets API_TOKEN"), "{text}");
    assert!(!text.contains("tok-wire-5ecret"), "the secret is in the CLI's output: {text}");
    let journal = weft_db("capabilities", &db, &["runs", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&journal.stdout).contains("tok-wire-5ecret"));
    drop(journal);
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(15).any(|w| w == b"tok-wire-5ecret"),
            "the secret is in the bytes of {}",
            path.display()
        );
    }
}

#[test]
fn kv_round_trips_survives_runs_is_isolated_per_workflow_and_enforces_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = |name: &str, ops: Value| {
        let caps = "{kv: true, http: [{url: \"http://127.0.0.1:9/unused\"}]}";
        let wf = probe_workflow(dir.path(), name, caps, json!({ "ops": ops }));
        let out =
            weft_db("capabilities", &db, &["run", "-q", wf.to_str().unwrap(), "--output", "json"]).output().unwrap();
        let v = json_of(&out);
        v["step_outputs"]["probe"]["results"].as_array().cloned().unwrap_or_else(|| panic!("{v:#}"))
    };
    let r = run(
        "kv-a",
        json!([
            {"op": "kv_set", "key": "count", "value": "1"},
            {"op": "kv_get", "key": "count"},
            {"op": "kv_set", "key": "big", "size": 1_048_577},
            {"op": "kv_set", "key": "k".repeat(600), "value": "x"},
            {"op": "kv_keys", "prefix": ""},
        ]),
    );
    assert_eq!(r[0]["ok"], Value::Null, "{r:?}");
    assert_eq!(r[1]["ok"], "1", "{r:?}");
    assert!(r[2]["err"].as_str().unwrap().contains("values are at most 1048576 bytes"), "{r:?}");
    assert!(r[3]["err"].as_str().unwrap().contains("keys are at most 512 bytes"), "{r:?}");
    assert_eq!(r[4]["ok"], json!(["count"]), "{r:?}");
    // A later run of the same workflow sees the key; another workflow does not.
    let again = run("kv-a", json!([{"op": "kv_get", "key": "count"}]));
    assert_eq!(again[0]["ok"], "1", "{again:?}");
    let other = run("kv-b", json!([{"op": "kv_get", "key": "count"}, {"op": "kv_keys", "prefix": ""}]));
    assert_eq!(other[0]["ok"], Value::Null, "another workflow saw the key: {other:?}");
    assert_eq!(other[1]["ok"], json!([]), "{other:?}");
}

#[test]
fn a_component_that_imports_http_or_kv_is_refused_on_a_node_not_granted_them() {
    let dir = tempfile::tempdir().unwrap();
    let wf = probe_workflow(dir.path(), "ungranted", "{}", json!({"ops": []}));
    let out = weft("capabilities", &["validate", wf.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("imports `wasi:http/outgoing-handler@0.2"), "{text}");
    assert!(text.contains("declare `http:` with the URLs it may call"), "{text}");
    assert!(text.contains("imports `weft:step/kv@0.1"), "{text}");
    // As a compute step, the same component is refused outright.
    let probe_path = plugin("probe");
    let out = weft("capabilities", &["plugin", "call", probe_path.to_str().unwrap()]).output().unwrap();
    let report = json_of(&out);
    let reason = report["failure"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("compute steps have no authority"), "{report:#}");
}

#[test]
fn a_compute_node_that_declares_capabilities_does_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.yaml");
    std::fs::write(
        &path,
        "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {name: w, version: 1.0.0}\n\
         workflow_metadata: {workflow_name: w}\nexecution_graph:\n  nodes:\n\
         \x20   - {node_id: a, node_type: compute, component: x.wasm, capabilities: {env: [HOME]}}\n\
         \x20   - {node_id: b, node_type: effect, component: x.wasm, capabilities: {teleport: true, http: [{url: \"ftp://x/\"}], dirs: [{host: nowhere, guest: /d, mode: rx}]}}\n",
    )
    .unwrap();
    let out = weft("capabilities", &["validate", "--skip-components", path.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("w.yaml:7:") && text.contains("compute steps have no authority"), "{text}");
    assert!(text.contains("unknown key `teleport` in `capabilities`"), "{text}");
    assert!(text.contains("only http and https"), "{text}");
    assert!(text.contains("`mode` is `rx`; it must be ro or rw"), "{text}");
    assert!(text.contains("host directory `nowhere`"), "{text}");
}

#[test]
fn a_policy_that_denies_a_declaration_fails_validation_naming_node_capability_and_allowance() {
    let dir = tempfile::tempdir().unwrap();
    let wf = probe_workflow(
        dir.path(),
        "capped",
        "{http: [{url: \"http://127.0.0.1:*/*\", methods: [GET, POST]}], kv: true}",
        json!({"ops": []}),
    );
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[http]\nallow = [{ url = \"http://127.0.0.1:*/records/*\", methods = [\"GET\"] }]\n")
        .unwrap();
    let out = weft("capabilities", &["validate", wf.to_str().unwrap(), "--policy", policy.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("node `probe`: capability `http`: `http://127.0.0.1:*/* [GET, POST]` is not allowed"),
        "{text}"
    );
    assert!(text.contains("which allows http://127.0.0.1:*/records/* [GET]"), "{text}");
    assert!(text.contains("node `probe`: capability `kv`"), "{text}");
    // Without the policy the same file validates and prints what it grants.
    let out = weft("capabilities", &["validate", wf.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("grant: node `probe`: http http://127.0.0.1:*/* [GET, POST]"), "{text}");
    assert!(text.contains("grant: node `probe`: kv"), "{text}");
    // WEFT_POLICY is the same as --policy.
    let out = weft("capabilities", &["run", wf.to_str().unwrap(), "--in-memory"])
        .env("WEFT_POLICY", &policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_component_built_against_the_first_wit_still_runs() {
    let old = root().join("tests/fixtures/wit-0.1.0");
    let echo = old.join("echo.wasm");
    let out = weft("capabilities", &["plugin", "inspect", echo.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("export weft:step/compute@0.1.0;"));
    let out =
        weft("capabilities", &["plugin", "call", echo.to_str().unwrap(), "--input", "{\"a\": 1}"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out)["output"]["a"], 1);
    let ledger = old.join("ledger.wasm");
    let input = r#"{"kind": "persist", "data": {"x": 1}}"#;
    let out = weft("capabilities", &["plugin", "call", ledger.to_str().unwrap(), "--effect", "--input", input])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out)["output"]["kind"], "persist");
}

#[test]
fn compensation_removes_what_a_persist_step_wrote() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let wf = dir.path().join("saga.yaml");
    std::fs::write(
        &wf,
        format!(
            "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: saga-files, version: 1.0.0}}\n\
             workflow_metadata: {{workflow_name: saga-files}}\ncoordination_rules: {{failure_recovery_strategy: compensate}}\n\
             execution_graph:\n  nodes:\n\
             \x20   - node_id: persist\n      node_type: effect\n      component: {}\n\
             \x20     capabilities: {{dirs: [{{host: out, guest: /out, mode: rw}}]}}\n\
             \x20     input: {{action: \"'persist'\", data: \"{{'n': 1}}\"}}\n\
             \x20   - node_id: boom\n      node_type: effect\n      depends_on: [persist]\n      component: {}\n\
             \x20     input: {{kind: \"'x'\", fail: \"'fatal'\"}}\n",
            plugin("file_records").display(),
            plugin("ledger").display()
        ),
    )
    .unwrap();
    let out =
        weft("capabilities", &["run", wf.to_str().unwrap(), "--in-memory", "-q", "--output", "json"]).output().unwrap();
    let v = json_of(&out);
    assert_eq!(v["execution_status"], "failed", "{v:#}");
    let written = v["step_outputs"]["persist"]["file"].as_str().unwrap_or_default().to_string();
    assert!(written.starts_with("/out/"), "{v:#}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().collect();
    assert!(left.is_empty(), "compensation left {left:?} (the step wrote {written})");
}

#[test]
fn kv_and_the_scratch_directory_survive_a_crash_and_the_scratch_directory_goes_when_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let db = dir.path().join("runs.db");
    let caps =
        "{kv: true, http: [{url: \"http://127.0.0.1:9/unused\"}], dirs: [{host: scratch, guest: /scratch, mode: rw}]}";
    let ops = |ops: Value| format!("{:?}", json!({ "ops": ops }).to_string());
    let put = ops(json!([
        {"op": "kv_set", "key": "stage", "value": "put"},
        {"op": "write", "path": "/scratch/handoff.txt", "text": "from put"},
    ]));
    let get = ops(json!([{"op": "kv_get", "key": "stage"}, {"op": "read", "path": "/scratch/handoff.txt"}]));
    let wf = dir.path().join("crash-kv.yaml");
    std::fs::write(
        &wf,
        format!(
            "api_version: v1.0.0\nkind: WorkflowDefinition\nmetadata: {{name: crash-kv, version: 1.0.0}}\n\
             workflow_metadata: {{workflow_name: crash-kv}}\nexecution_graph:\n  nodes:\n\
             \x20   - {{node_id: put, node_type: effect, component: {probe}, capabilities: {caps}, input: {put}}}\n\
             \x20   - {{node_id: wait, node_type: effect, component: {slow}, depends_on: [put], input: {{sleep_ms: \"3000\"}}}}\n\
             \x20   - {{node_id: get, node_type: effect, component: {probe}, capabilities: {caps}, depends_on: [wait], input: {get}}}\n",
            probe = plugin("probe").display(),
            slow = plugin("slow_effect").display(),
        ),
    )
    .unwrap();
    let mut run = weft_db("capabilities", &db, &["run", wf.to_str().unwrap()]);
    run.env("TMPDIR", &tmp);
    assert!(crate::common::kill_when_seen(run, "wait: attempt", 100), "killed while `wait` ran");
    let scratch_root = tmp.join("weft-scratch");
    let left: Vec<_> = std::fs::read_dir(&scratch_root).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(left.len(), 1, "the interrupted run keeps its scratch directory: {left:?}");
    let out = weft_db("capabilities", &db, &["resume", "--all", "-q", "--output", "json"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let outs = json_of(&out);
    let r = outs[0]["step_outputs"]["get"]["results"].as_array().cloned().unwrap_or_else(|| panic!("{outs:#}"));
    assert_eq!(r[0]["ok"], "put", "the resumed run does not see the key: {outs:#}");
    assert_eq!(r[1]["ok"], "from put", "the resumed run does not see the scratch file: {outs:#}");
    assert_eq!(std::fs::read_dir(&scratch_root).unwrap().count(), 0, "the finished run left its scratch directory");
}

#[test]
fn a_guest_that_loops_on_a_denied_request_is_counted_not_logged_without_end() {
    let server = TestServer::start(&[]);
    let ops: Vec<Value> = (0..40).map(|_| json!({"op": "get", "url": server.url("/secret/path?token=abc")})).collect();
    let (report, _) = probe(&[], json!(ops));
    assert_eq!(report["stats"]["capability_denials"], 40, "{report:#}");
    let log = logs(&report);
    assert_eq!(log.matches("capability_denied http: GET").count(), 16, "{log}");
    assert!(log.contains("capability_denied: 24 more denial(s) not listed"), "{log}");
    assert!(!log.contains("token=abc"), "a query (where secrets travel) was logged: {log}");
    assert!(server.seen().as_array().unwrap().is_empty());
    // Denied requests count against the attempt's request limit too: after
    // 10 denied ones, 54 allowed ones use up the default limit of 64.
    let mut ops: Vec<Value> = (0..10).map(|_| json!({"op": "get", "url": server.url("/denied")})).collect();
    ops.extend((0..60).map(|_| json!({"op": "get", "url": server.url("/x")})));
    let rule = server.url("/x");
    let (report, _) = probe(&["--allow-http", &rule], json!(ops));
    let r = results(&report);
    assert!(r[63]["ok"].is_object(), "{:#}", r[63]);
    assert!(r[64]["err"].as_str().unwrap().contains("denied"), "{:#}", r[64]);
    assert_eq!(server.seen().as_array().unwrap().len(), 54);
}

#[test]
fn a_request_that_outlasts_the_policy_timeout_fails_with_a_log_line() {
    let server = TestServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let allow =
        format!("[http]\nallow = [{{ url = \"{}\" }}, {{ url = \"http://127.0.0.1:9/unused\" }}]\n", server.url("/*"));
    std::fs::write(&policy, allow + "timeout_ms = 200\n[kv]\nallow = true\n").unwrap();
    let rule = server.url("/*");
    let (report, _) = probe(
        &["--allow-http", &rule, "--policy", policy.to_str().unwrap()],
        json!([{"op": "get", "url": server.url("/slow?ms=3000")}]),
    );
    assert!(results(&report)[0]["err"].as_str().unwrap().contains("failed"), "{report:#}");
    assert!(logs(&report).contains("no response within 200 ms"), "{report:#}");
}
