//! `weft serve` end to end: real components uploaded by digest, real
//! workflows submitted over HTTP and run by the server's own workers on a
//! real SQLite store; tenants made with the real `weft tenant`.

use crate::common::http::{Served, component, tenant_cmd};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CACHE: &str = "service";

/// A fresh database with tenants `acme` and `other` (the latter with one
/// submission a minute), and a full token for each.
struct Setup {
    _dir: tempfile::TempDir,
    served: Served,
    acme: String,
    other: String,
}

fn setup(tag: &str) -> Setup {
    setup_with(tag, &[])
}

/// [`setup`], the server started with `args` too.
fn setup_with(tag: &str, args: &[&str]) -> Setup {
    let dir = tempfile::Builder::new().prefix(&format!("weft-service-{tag}-")).tempdir().unwrap();
    let db = dir.path().join("weft.db");
    tenant_cmd(CACHE, &db, &["create", "acme"]);
    tenant_cmd(CACHE, &db, &["create", "other", "--submissions-per-minute", "1"]);
    let acme = tenant_cmd(CACHE, &db, &["token", "create", "acme"]);
    let other = tenant_cmd(CACHE, &db, &["token", "create", "other"]);
    let served = Served::start(CACHE, &db, args);
    Setup { _dir: dir, served, acme, other }
}

fn db_of(s: &Setup) -> std::path::PathBuf {
    s._dir.path().join("weft.db")
}

/// Uploads the plugin `name` for the tenant of `token`; returns its digest.
fn upload(served: &Served, token: &str, name: &str) -> String {
    let (bytes, digest) = component(name);
    let a = served.request("PUT", &format!("/v1/components/{digest}"), Some(token), Some(("application/wasm", &bytes)));
    assert!(a.status == 201 || a.status == 200, "upload {name}: {}", a.text());
    digest
}

/// Two echo steps, the second reading the first.
fn two_steps(echo: &str) -> String {
    format!(
        "metadata: {{name: greet, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: hello, node_type: compute, component: \"{echo}\", input: {{who: \"context.who\"}}}}\n\
         \x20   - {{node_id: again, node_type: compute, component: \"{echo}\", depends_on: [hello], input: {{was: \"steps.hello.who\"}}}}\n"
    )
}

fn submission(definition: &str, who: &str) -> Value {
    json!({ "definition": definition, "input": { "context": { "who": who } } })
}

#[test]
fn submission_is_idempotent_and_a_run_can_be_listed_shown_and_watched() {
    let s = setup("idempotent");
    let echo = upload(&s.served, &s.acme, "echo");
    let wf = two_steps(&echo);
    let id = uuid::Uuid::new_v4().to_string();
    let path = format!("/v1/runs/{id}?wait=30");

    // PUT: 201 new, 200 the same body again, 409 another body.
    let first = s.served.json("PUT", &path, &s.acme, &submission(&wf, "ada"));
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.header("location"), Some(format!("/v1/runs/{id}").as_str()));
    let out = first.json();
    assert_eq!(out["run_id"], id);
    assert_eq!(out["status"], "completed", "?wait=30 holds the answer for the end: {out}");
    assert_eq!(out["output"]["step_outputs"]["again"]["was"], "ada");
    let again = s.served.json("PUT", &path, &s.acme, &submission(&wf, "ada"));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["created"], false);
    s.served.json("PUT", &path, &s.acme, &submission(&wf, "bob")).problem(409, "conflict");

    // POST with Idempotency-Key: 201, 200 for the same body, 422 for another.
    let key = [("Idempotency-Key", "order-77")];
    let body = submission(&wf, "cy").to_string();
    let post = |b: &str| {
        s.served.request_with("POST", "/v1/runs?wait=30", Some(&s.acme), &key, Some(("application/json", b.as_bytes())))
    };
    let made = post(&body);
    assert_eq!(made.status, 201, "{}", made.text());
    let keyed_id = made.json()["run_id"].as_str().unwrap().to_string();
    let same = post(&body);
    assert_eq!(same.status, 200, "{}", same.text());
    assert_eq!(same.json()["run_id"], keyed_id.as_str());
    post(&submission(&wf, "dee").to_string()).problem(422, "invalid");
    // Without a key, every POST is a new run.
    let fresh = s.served.json("POST", "/v1/runs?wait=30", &s.acme, &submission(&wf, "eve"));
    assert_eq!(fresh.status, 201);
    assert_ne!(fresh.json()["run_id"], keyed_id.as_str());

    // The list: newest first, in keyset pages.
    let page = s.served.get("/v1/runs?limit=2", &s.acme).json();
    assert_eq!(page["runs"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(page["runs"][0]["run_id"], fresh.json()["run_id"]);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
    let rest = s.served.get(&format!("/v1/runs?limit=2&cursor={cursor}"), &s.acme).json();
    let ids: Vec<&str> = rest["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "the last page holds the oldest run: {rest}");
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let completed = s.served.get("/v1/runs?status=completed&workflow=greet", &s.acme).json();
    assert_eq!(completed["runs"].as_array().unwrap().len(), 3);

    // The run: output contract, steps and attempts; the journal; the logs.
    let run = s.served.get(&format!("/v1/runs/{id}"), &s.acme).json();
    assert_eq!(run["status"], "completed");
    let steps: Vec<&str> = run["steps"].as_array().unwrap().iter().map(|st| st["step_id"].as_str().unwrap()).collect();
    assert_eq!(steps, ["hello", "again"]);
    assert_eq!(run["steps"][0]["state"], "completed");
    assert!(run["steps"][0]["attempts"][0]["stats"]["fuel_consumed"].as_u64().unwrap() > 0, "{run}");
    let journal = s.served.get(&format!("/v1/runs/{id}/journal"), &s.acme).json();
    let kinds: Vec<&str> = journal.as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_created"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(s.served.get(&format!("/v1/runs/{id}/logs"), &s.acme).status, 200);

    // Events: every journal entry, ids its sequence numbers; resumable.
    let mut events = s.served.events(&format!("/v1/runs/{id}/events"), &s.acme, None);
    assert!(events.status_line.contains("200"), "{}", events.status_line);
    let all = events.until_end(Duration::from_secs(30));
    let ids: Vec<u64> = all.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, (1..=journal.as_array().unwrap().len() as u64).collect::<Vec<_>>());
    assert_eq!(all.last().unwrap().event, "run_finished");
    assert!(all.iter().any(|e| e.event == "step_completed" && e.data["step_id"] == "again"));
    let resumed = s
        .served
        .events(&format!("/v1/runs/{id}/events"), &s.acme, Some(ids[ids.len() - 3]))
        .until_end(Duration::from_secs(30));
    assert_eq!(resumed.iter().map(|e| e.id.unwrap()).collect::<Vec<_>>(), ids[ids.len() - 2..].to_vec());
}

#[test]
fn a_live_run_streams_its_steps_and_cancel_stops_it() {
    let s = setup("cancel");
    let slow = upload(&s.served, &s.acme, "slow_effect");
    let wf = format!(
        "metadata: {{name: slow, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: nap, node_type: effect, component: \"{slow}\", input: {{sleep_ms: \"400\"}}}}\n\
         \x20   - {{node_id: long_nap, node_type: effect, component: \"{slow}\", depends_on: [nap], input: {{sleep_ms: \"60000\"}}}}\n"
    );
    let made = s.served.json("POST", "/v1/runs", &s.acme, &json!({ "definition": wf }));
    assert_eq!(made.status, 201, "{}", made.text());
    let id = made.json()["run_id"].as_str().unwrap().to_string();
    let mut events = s.served.events(&format!("/v1/runs/{id}/events"), &s.acme, None);
    // Watch `nap` start and complete, and `long_nap` start.
    let mut seen = Vec::new();
    while let Some(e) = events.next_event() {
        let step = e.data["step_id"].as_str().unwrap_or_default().to_string();
        seen.push(format!("{} {step}", e.event));
        if e.event == "attempt_started" && step == "long_nap" {
            break;
        }
    }
    let nap_started = seen.iter().position(|e| e == "attempt_started nap").expect("nap started");
    let nap_done = seen.iter().position(|e| e == "step_completed nap").expect("nap completed");
    assert!(nap_started < nap_done, "{seen:?}");
    let cancel = s.served.request("POST", &format!("/v1/runs/{id}/cancel"), Some(&s.acme), None);
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    assert_eq!(cancel.json()["requested"], true);
    let rest = events.until_end(Duration::from_secs(30));
    let end = rest.last().expect("the stream ends with the run");
    assert_eq!(end.event, "run_finished");
    assert_eq!(end.data["output"]["execution_status"], "cancelled", "{:?}", end.data);
    // A cancel of a finished run changes nothing, and says so.
    let late = s.served.request("POST", &format!("/v1/runs/{id}/cancel"), Some(&s.acme), None);
    assert_eq!(late.status, 200);
    assert_eq!(late.json()["requested"], false);
}

#[test]
fn every_error_is_a_problem_with_the_status_that_fits() {
    let s = setup("errors");
    let echo = upload(&s.served, &s.acme, "echo");
    let db = db_of(&s);
    let reader = tenant_cmd(CACHE, &db, &["token", "create", "acme", "--scope", "runs:read"]);
    let sv = &s.served;

    // 401: no token, a malformed one, a forged one, a revoked one.
    sv.request("GET", "/v1/runs", None, None).problem(401, "unauthorized");
    assert_eq!(sv.request("GET", "/v1/runs", None, None).header("www-authenticate"), Some("Bearer realm=\"weft\""));
    sv.get("/v1/runs", "not-a-token").problem(401, "unauthorized");
    let mut forged = s.acme.clone();
    forged.pop();
    forged.push('x');
    sv.get("/v1/runs", &forged).problem(401, "unauthorized");
    let revoked = tenant_cmd(CACHE, &db, &["token", "create", "acme"]);
    assert_eq!(sv.get("/v1/runs", &revoked).status, 200);
    tenant_cmd(CACHE, &db, &["token", "revoke", &revoked]);
    sv.get("/v1/runs", &revoked).problem(401, "unauthorized");
    // 403: a read-only token may read, not submit.
    assert_eq!(sv.get("/v1/runs", &reader).status, 200);
    sv.json("POST", "/v1/runs", &reader, &submission(&two_steps(&echo), "x")).problem(403, "forbidden");
    // 400: a bad id, bad JSON, bad filters.
    sv.json("PUT", "/v1/runs/not-a-uuid", &s.acme, &submission(&two_steps(&echo), "x")).problem(400, "bad-request");
    sv.request("POST", "/v1/runs", Some(&s.acme), Some(("application/json", b"{not json"))).problem(400, "bad-request");
    sv.get("/v1/runs?limit=100000", &s.acme).problem(400, "bad-request");
    sv.get("/v1/runs?status=sideways", &s.acme).problem(400, "bad-request");
    sv.get("/v1/runs?cursor=abc", &s.acme).problem(400, "bad-request");
    sv.get("/v1/components/sha256:xyz", &s.acme).problem(400, "bad-request");
    // 404: nothing there, and no such path.
    sv.get(&format!("/v1/runs/{}", uuid::Uuid::new_v4()), &s.acme).problem(404, "not-found");
    sv.get("/v1/nothing-here", &s.acme).problem(404, "not-found");
    sv.get("/v1/workflows/never-registered", &s.acme).problem(404, "not-found");
    // 405.
    sv.request("DELETE", "/v1/runs", Some(&s.acme), None).problem(405, "method-not-allowed");
    // 403: the web UI's cookie alone does not make a change (CSRF); with the UI's header it does.
    let form = format!("token={}", s.acme);
    let signed_in = sv.request("POST", "/ui/login", None, Some(("application/x-www-form-urlencoded", form.as_bytes())));
    let set = signed_in.header("set-cookie").expect("a session cookie").to_string();
    assert!(!set.contains(&s.acme) && set.contains("HttpOnly"), "the cookie holds a session, not the token: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    // A sign-in posted by another site's page is refused.
    let elsewhere = sv.request_with(
        "POST",
        "/ui/login",
        None,
        &[("Origin", "https://evil.example")],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    );
    assert_eq!(elsewhere.status, 403);
    assert!(elsewhere.header("set-cookie").is_none());
    let id = uuid::Uuid::new_v4();
    let forged = sv.request_with("POST", &format!("/v1/runs/{id}/cancel"), None, &[("Cookie", &cookie)], None);
    forged.problem(403, "forbidden");
    let from_ui = sv.request_with(
        "POST",
        &format!("/v1/runs/{id}/cancel"),
        None,
        &[("Cookie", &cookie), ("X-Weft-UI", "1")],
        None,
    );
    from_ui.problem(404, "not-found");
    assert_eq!(sv.request_with("GET", "/v1/runs", None, &[("Cookie", &cookie)], None).status, 200);
    // Signing out ends the session: the same cookie no longer answers.
    sv.request_with("POST", "/ui/logout", None, &[("Cookie", &cookie), ("X-Weft-UI", "1")], None);
    sv.request_with("GET", "/v1/runs", None, &[("Cookie", &cookie)], None).problem(401, "unauthorized");
    // 413: past the body limit (4 MiB).
    let big = vec![b' '; 5 << 20];
    sv.request("POST", "/v1/runs", Some(&s.acme), Some(("application/json", &big))).problem(413, "too-large");
    // 415: a JSON endpoint given something else.
    sv.request("POST", "/v1/runs", Some(&s.acme), Some(("text/plain", b"{}"))).problem(415, "unsupported-media-type");
    // 422: a workflow that does not validate lists every problem with its place.
    let bad = format!(
        "metadata: {{name: bad}}\nexecution_graph:\n  nodes:\n    - {{node_id: a, node_type: compute, component: \"{echo}\", depends_on: [ghost]}}\n"
    );
    let p = sv.json("POST", "/v1/runs", &s.acme, &json!({ "definition": bad })).problem(422, "invalid");
    let first = &p["errors"][0];
    assert_eq!(first["line"], 4, "{p}");
    assert!(first["column"].as_u64().unwrap() > 0, "{p}");
    assert!(first["message"].as_str().unwrap().contains("ghost"), "{p}");
    // A component named by a host path is refused: only the tenant's digests.
    let by_path = format!(
        "metadata: {{name: p}}\nexecution_graph:\n  nodes:\n    - {{node_id: a, node_type: compute, component: \"{}\"}}\n",
        crate::common::plugin("echo").display()
    );
    let p = sv.json("POST", "/v1/runs", &s.acme, &json!({ "definition": by_path })).problem(422, "invalid");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("by digest"), "{p}");
    // An upload whose bytes are not the digest's, or no component.
    let (bytes, _) = component("echo");
    let wrong = format!("sha256:{}", "0".repeat(64));
    sv.request("PUT", &format!("/v1/components/{wrong}"), Some(&s.acme), Some(("application/wasm", &bytes)))
        .problem(422, "invalid");
    let junk = b"not wasm at all";
    let junk_digest = weft::sandbox::digest(junk);
    sv.request("PUT", &format!("/v1/components/{junk_digest}"), Some(&s.acme), Some(("application/wasm", junk)))
        .problem(422, "invalid");
    // 409: a signal to a gate of a finished run.
    let done = sv.json("POST", "/v1/runs?wait=30", &s.acme, &submission(&two_steps(&echo), "x"));
    let done_id = done.json()["run_id"].as_str().unwrap().to_string();
    sv.json(
        "POST",
        &format!("/v1/runs/{done_id}/steps/hello/signal"),
        &s.acme,
        &json!({"signal_id": "s1", "data": {}}),
    )
    .problem(409, "conflict");
    // 429 with Retry-After: `other` may submit once a minute.
    let other_echo = upload(sv, &s.other, "echo");
    let wf = two_steps(&other_echo);
    assert_eq!(sv.json("POST", "/v1/runs", &s.other, &submission(&wf, "1")).status, 201);
    let limited = sv.json("POST", "/v1/runs", &s.other, &submission(&wf, "2"));
    limited.problem(429, "quota-exceeded");
    let wait: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait));
}

#[test]
fn tenants_see_only_their_own_runs_workflows_and_components() {
    let s = setup("isolation");
    let sv = &s.served;
    let echo = upload(sv, &s.acme, "echo");
    let wf = two_steps(&echo);
    let made = sv.json("POST", "/v1/runs?wait=30", &s.acme, &submission(&wf, "a"));
    let id = made.json()["run_id"].as_str().unwrap().to_string();
    let reg = sv.request("PUT", "/v1/workflows/greeting", Some(&s.acme), Some(("application/yaml", wf.as_bytes())));
    assert_eq!(reg.status, 201, "{}", reg.text());
    assert_eq!(sv.get("/v1/workflows/greeting/graph", &s.acme).json()["nodes"][1]["depends_on"], json!(["hello"]));
    // A registered workflow runs by name.
    let by_name = sv.json(
        "POST",
        "/v1/runs?wait=30",
        &s.acme,
        &json!({"workflow": "greeting", "input": {"context": {"who": "z"}}}),
    );
    assert_eq!(by_name.json()["status"], "completed", "{}", by_name.text());

    // `other` gets 404 on every one of them, exactly as for what does not exist.
    for path in [
        format!("/v1/runs/{id}"),
        format!("/v1/runs/{id}/journal"),
        format!("/v1/runs/{id}/logs"),
        format!("/v1/runs/{id}/events"),
        "/v1/workflows/greeting".to_string(),
        "/v1/workflows/greeting/graph".to_string(),
        format!("/v1/components/{echo}"),
    ] {
        let a = sv.get(&path, &s.other);
        let p = a.problem(404, "not-found");
        let missing =
            sv.get(&path.replace(&id, &uuid::Uuid::new_v4().to_string()).replace("greeting", "nothing"), &s.other);
        if !path.contains("components") {
            assert_eq!(missing.json()["detail"], p["detail"], "another tenant's {path} reads as missing");
        }
    }
    sv.request("POST", &format!("/v1/runs/{id}/cancel"), Some(&s.other), None).problem(404, "not-found");
    sv.json("POST", &format!("/v1/runs/{id}/steps/hello/signal"), &s.other, &json!({"signal_id": "x", "data": {}}))
        .problem(404, "not-found");
    assert_eq!(sv.get("/v1/runs", &s.other).json()["runs"], json!([]));
    assert_eq!(sv.get("/v1/workflows", &s.other).json()["names"], json!([]));
    assert_eq!(sv.get("/v1/workflows", &s.acme).json()["names"], json!(["greeting"]));
    // `other` cannot name acme's component, nor run acme's workflow by name.
    let p = sv.json("POST", "/v1/runs", &s.other, &submission(&wf, "b")).problem(422, "invalid");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("no component of this tenant"), "{p}");
    sv.json("POST", "/v1/runs", &s.other, &json!({"workflow": "greeting"})).problem(404, "not-found");
    // Its own upload of the same bytes answers as a first upload does.
    let (bytes, digest) = component("echo");
    let mine =
        sv.request("PUT", &format!("/v1/components/{digest}"), Some(&s.other), Some(("application/wasm", &bytes)));
    assert_eq!(mine.status, 201, "an upload reveals nothing about other tenants: {}", mine.text());
    // The tenant comes from the token alone.
    let spoof = json!({"definition": two_steps(&digest), "input": {"metadata": {"tenant": "acme"}}});
    sv.json("POST", "/v1/runs", &s.other, &spoof).problem(422, "invalid");
}

#[test]
fn metrics_name_the_contract_five_after_a_run() {
    let s = setup("metrics");
    let emitter = upload(&s.served, &s.acme, "emitter");
    let echo = upload(&s.served, &s.acme, "echo");
    let wf = format!(
        "metadata: {{name: emits, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: src, node_type: compute, component: \"{emitter}\", input: {{count: \"2\", target: \"'sink'\", payload: \"{{'n': 1}}\"}}}}\n\
         \x20   - {{node_id: sink, node_type: compute, component: \"{echo}\", depends_on: [src]}}\n"
    );
    let out = s.served.json("POST", "/v1/runs?wait=30", &s.acme, &json!({ "definition": wf }));
    assert_eq!(out.json()["status"], "completed", "{}", out.text());
    // A run that fails: its errors are counted by kind.
    let burn = upload(&s.served, &s.acme, "cpu_burn");
    let failing = format!(
        "metadata: {{name: burns, version: 1.0.0}}
coordination_rules: {{circuit_breaker_enabled: true, circuit_breaker_failure_threshold: 1}}
execution_graph:
  nodes:
             - {{node_id: hot, node_type: compute, component: \"{burn}\", fuel: 100000, retry_count: 0}}
"
    );
    let out = s.served.json("POST", "/v1/runs?wait=30", &s.acme, &json!({ "definition": failing }));
    assert_eq!(out.json()["status"], "failed", "{}", out.text());
    let m = s.served.request("GET", "/metrics", None, None);
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = m.text();
    for (name, kind) in [
        ("workflow_duration_seconds", "histogram"),
        ("workflow_step_count", "gauge"),
        ("actions_emitted", "counter"),
        ("workflow_errors", "counter"),
        ("active_workflows", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} {kind} in:\n{text}");
    }
    let line = |prefix: &str| -> f64 {
        let l = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(line("workflow_duration_seconds_count{workflow_type=\"emits\",execution_status=\"completed\"}"), 1.0);
    assert_eq!(line("actions_emitted_total{action_type=\"compute\"}"), 2.0);
    assert_eq!(line("workflow_errors_total{error_type=\"out_of_fuel\",workflow_type=\"burns\"}"), 1.0);
    assert_eq!(line("weft_attempts_total{outcome=\"out_of_fuel\"}"), 1.0);
    // The steps of the workflow that ended last.
    assert_eq!(line("workflow_step_count "), 1.0);
    assert_eq!(line("active_workflows "), 0.0);
    assert_eq!(line("weft_attempts_total{outcome=\"succeeded\"}"), 2.0);
    assert!(line("weft_fuel_consumed_total ") > 0.0);
    // Steps from scheduling to end, commits, instantiations, breakers.
    assert_eq!(line("weft_step_duration_seconds_count{outcome=\"completed\"}"), 2.0);
    assert_eq!(line("weft_step_duration_seconds_count{outcome=\"failed\"}"), 1.0);
    assert!(line("weft_store_commit_seconds_count ") >= 6.0, "{text}");
    assert_eq!(line("weft_sandbox_instantiate_seconds_count "), 3.0, "every attempt instantiates once");
    assert_eq!(line(&format!("weft_breaker_state{{component=\"{burn}\"}}")), 2.0, "one failure opened it");
}

#[test]
fn the_openapi_document_lists_every_endpoint_and_probes_answer() {
    let s = setup("openapi");
    let doc = s.served.request("GET", "/openapi.json", None, None).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/journal",
        "/v1/runs/{id}/logs",
        "/v1/runs/{id}/events",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/steps/{step}/signal",
        "/v1/dlq",
        "/v1/workflows:validate",
        "/v1/workflows/{name}",
        "/v1/workflows/{name}/graph",
        "/v1/components/{digest}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing from /openapi.json");
    }
    assert_eq!(doc["components"]["securitySchemes"]["token"]["scheme"], "bearer");
    let docs = s.served.request("GET", "/docs", None, None);
    assert!(docs.text().contains("/v1/runs/{id}/events"), "{}", docs.text());
    assert_eq!(s.served.request("GET", "/healthz", None, None).json()["status"], "ok");
    assert_eq!(s.served.request("GET", "/readyz", None, None).json()["store"], "sqlite");
    // Validation answers every problem with line and column, as JSON.
    let v =
        s.served.request("POST", "/v1/workflows:validate", Some(&s.acme), Some(("application/yaml", b"metadata: [\n")));
    let v = v.json();
    assert_eq!(v["valid"], false);
    assert!(v["problems"][0]["line"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn tenant_commands_list_and_refuse_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    tenant_cmd(CACHE, &db, &["create", "blue"]);
    let listed = tenant_cmd(CACHE, &db, &["list"]);
    assert!(listed.starts_with("blue\t"), "{listed}");
    let token = tenant_cmd(CACHE, &db, &["token", "create", "blue", "--scope", "runs:read"]);
    assert!(token.starts_with("weft_") && token.len() > 50, "{token}");
    let id = token.split('_').nth(1).unwrap();
    let tokens = tenant_cmd(CACHE, &db, &["token", "list"]);
    assert!(tokens.contains(id) && tokens.contains("runs:read") && !tokens.contains(&token), "{tokens}");
    for (args, needle) in [
        (vec!["create", "Blue!"], "not a tenant name"),
        (vec!["create", "blue"], "exists already"),
        (vec!["token", "create", "nobody"], "no tenant is named"),
        (vec!["token", "revoke", "ffff"], "no token has the id"),
        (vec!["token", "create", "blue", "--scope", "everything"], "not a scope"),
        (vec!["create", "green", "--max-stored-bytes", "5 parsecs"], "not a unit here"),
        (vec!["create", "green", "--max-fuel-per-hour", "lots"], "neither a whole number nor `none`"),
        (vec!["quotas", "nobody", "--max-concurrent-runs", "3"], "no tenant is named"),
    ] {
        let mut all = vec!["tenant"];
        all.extend(args.iter());
        let out = crate::common::weft_db(CACHE, &db, &all).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn sigterm_drains_the_server_and_the_next_one_finishes_the_run_in_the_same_trace() {
    let (port, got) = collector();
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = setup_with("drain", &["--otlp-endpoint", &endpoint]);
    let slow = upload(&s.served, &s.acme, "slow_effect");
    let wf = format!(
        "metadata: {{name: drained, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: first, node_type: effect, component: \"{slow}\", input: {{sleep_ms: \"1500\"}}}}\n\
         \x20   - {{node_id: second, node_type: effect, component: \"{slow}\", depends_on: [first], input: {{sleep_ms: \"10\"}}}}\n"
    );
    let made = s.served.json("POST", "/v1/runs", &s.acme, &json!({ "definition": wf }));
    let id = made.json()["run_id"].as_str().unwrap().to_string();
    let mut events = s.served.events(&format!("/v1/runs/{id}/events"), &s.acme, None);
    while let Some(e) = events.next_event() {
        if e.event == "attempt_started" {
            break;
        }
    }
    let db = db_of(&s);
    let Setup { served, acme, _dir, .. } = s;
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("weft serve: drained"), "{stderr}");
    // The stream ended with the server; the step in flight finished first.
    let rest = events.until_end(Duration::from_secs(5));
    assert!(rest.iter().any(|e| e.event == "step_completed" && e.data["step_id"] == "first"), "{rest:?}");
    assert!(!rest.iter().any(|e| e.event == "step_scheduled" && e.data["step_id"] == "second"), "{rest:?}");
    // Another server takes the run up and finishes it.
    let next = Served::start(CACHE, &db, &["--otlp-endpoint", &endpoint]);
    let start = std::time::Instant::now();
    loop {
        let run = next.get(&format!("/v1/runs/{id}"), &acme).json();
        if run["status"] == "completed" {
            assert_eq!(run["output"]["step_outputs"]["first"]["slept_ms"], 1500);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the run was not finished: {run}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both processes' spans of the run are in one trace (kept with the run).
    let (code, next_stderr) = next.terminate();
    assert_eq!(code, Some(0), "{next_stderr}");
    let spans = spans_of(&got, &next_stderr);
    let runs: Vec<&OtlpSpan> =
        spans.iter().filter(|sp| sp.name == "run" && text(attr(sp, "weft.run_id")) == id).collect();
    assert_eq!(runs.len(), 2, "a run span from each server");
    assert_eq!(runs[0].trace_id, runs[1].trace_id);
    let step_ids: Vec<String> = spans
        .iter()
        .filter(|sp| sp.name == "attempt" && sp.trace_id == runs[0].trace_id)
        .map(|sp| text(attr(sp, "weft.step_id")))
        .collect();
    assert!(step_ids.contains(&"first".to_string()) && step_ids.contains(&"second".to_string()), "{step_ids:?}");
}

/// Chromium's path: $WEFT_CHROMIUM, or `chromium` on PATH; the test fails
/// with the command that installs it when there is none.
fn chromium() -> String {
    if let Ok(p) = std::env::var("WEFT_CHROMIUM") {
        return p;
    }
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate.display().to_string();
            }
        }
    }
    panic!(
        "the web UI test needs Chromium and found none on PATH: install it with `apt-get install chromium` \
         (scripts/install-toolchains does), or set WEFT_CHROMIUM to a Chromium binary"
    );
}

/// `tests/ui`, with playwright-core installed (npm) on first use.
fn ui_tests() -> std::path::PathBuf {
    let dir = crate::common::root().join("tests/ui");
    if !dir.join("node_modules/playwright-core").is_dir() {
        let out = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("npm is needed for the web UI test (it installs playwright-core)");
        assert!(out.status.success(), "npm install in tests/ui failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

#[test]
fn the_web_ui_shows_a_run_live_and_cancels_one_in_headless_chromium() {
    let browser = chromium();
    let ui = ui_tests();
    let s = setup("ui");
    let sv = &s.served;
    let echo = upload(sv, &s.acme, "echo");
    let slow = upload(sv, &s.acme, "slow_effect");
    let steps = format!(
        "metadata: {{name: three-steps, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: first, node_type: compute, component: \"{echo}\", input: {{who: \"context.who\"}}}}\n\
         \x20   - {{node_id: middle, node_type: effect, component: \"{slow}\", depends_on: [first], input: {{sleep_ms: \"1500\"}}}}\n\
         \x20   - {{node_id: last, node_type: compute, component: \"{echo}\", depends_on: [middle], input: {{done: \"steps.middle.slept_ms\"}}}}\n"
    );
    let slow_wf = format!(
        "metadata: {{name: slow, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: nap, node_type: effect, component: \"{slow}\", input: {{sleep_ms: \"60000\"}}}}\n"
    );
    for (name, wf) in [("steps", &steps), ("slow", &slow_wf)] {
        let a = sv.request(
            "PUT",
            &format!("/v1/workflows/{name}"),
            Some(&s.acme),
            Some(("application/yaml", wf.as_bytes())),
        );
        assert_eq!(a.status, 201, "{}", a.text());
    }
    // Another tenant's run, which acme must not see.
    let other_echo = upload(sv, &s.other, "echo");
    let other = sv.json("POST", "/v1/runs", &s.other, &submission(&two_steps(&other_echo), "o"));
    let other_run = other.json()["run_id"].as_str().unwrap().to_string();
    let shots = crate::common::root().join("target/ui-screenshots");
    let out = std::process::Command::new("node")
        .arg(ui.join("ui.mjs"))
        .env("WEFT_URL", format!("http://{}", sv.addr))
        .env("WEFT_TOKEN", &s.acme)
        .env("WEFT_OTHER_RUN", &other_run)
        .env("WEFT_SHOTS", &shots)
        .env("WEFT_CHROMIUM", &browser)
        .output()
        .expect("node is needed for the web UI test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the UI test failed:\n{stdout}\n{}\nweft serve said:\n{}",
        String::from_utf8_lossy(&out.stderr),
        sv.stderr.lock().unwrap()
    );
    assert!(stdout.contains("ui: all passed"), "{stdout}");
    assert!(shots.join("run-completed.png").is_file() && shots.join("run-cancelled.png").is_file());
}

#[test]
fn the_onex_pipeline_runs_over_http_as_the_readme_shows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weft.db");
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(tenants.join("acme/out")).unwrap();
    let example = crate::common::root().join("examples/onex-pipeline");
    std::fs::create_dir_all(tenants.join("acme/data")).unwrap();
    for f in std::fs::read_dir(example.join("data")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tenants.join("acme/data").join(f.file_name().unwrap())).unwrap();
    }
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("[dirs]\nroots = [{{ path = \"{}\", rw = true }}]\n", tenants.display())).unwrap();
    tenant_cmd(CACHE, &db, &["create", "acme"]);
    let token = tenant_cmd(CACHE, &db, &["token", "create", "acme"]);
    crate::common::plugin("ledger");
    let served =
        Served::start(CACHE, &db, &["--tenant-root", tenants.to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    let out = std::process::Command::new("bash")
        .arg(example.join("submit-over-http.sh"))
        .args([format!("http://{}", served.addr), token.clone()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(answer["output"]["completed_steps"].as_array().unwrap().len(), 5, "{answer}");
    let id = answer["run_id"].as_str().unwrap();
    assert!(
        tenants.join(format!("acme/out/{id}_persist_results.json")).is_file(),
        "persisted in the tenant's own out/"
    );
    // A directory outside the policy is refused before anything runs.
    let (_, file_records) = component("file_records");
    let escape = format!(
        "metadata: {{name: escape}}\nexecution_graph:\n  nodes:\n    - node_id: a\n      node_type: effect\n      \
         component: \"{file_records}\"\n      capabilities: {{dirs: [{{host: \"/etc\", guest: \"/etc\", mode: ro}}]}}\n"
    );
    let p = served.json("POST", "/v1/runs", &token, &json!({ "definition": escape })).problem(422, "invalid");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("inside your own"), "{p}");
    // So is another tenant's directory, by `..` or by a symlink out of this one.
    std::fs::create_dir_all(tenants.join("bob/secrets")).unwrap();
    std::os::unix::fs::symlink(tenants.join("bob"), tenants.join("acme/link")).unwrap();
    for (host, says) in [("../bob", "inside your own"), ("link/secrets", "leads outside")] {
        let wf = escape.replace("\"/etc\"", &format!("\"{host}\""));
        let p = served.json("POST", "/v1/workflows:validate", &token, &json!({ "definition": wf }));
        let v = p.json();
        assert_eq!(v["valid"], false, "{host}: {v}");
        assert!(v["problems"][0]["message"].as_str().unwrap().contains(says), "{host}: {v}");
    }
}

/// The schemathesis command: $WEFT_SCHEMATHESIS, or `schemathesis` on
/// PATH; the test fails with the command that installs it when there is none.
fn schemathesis() -> String {
    if let Ok(p) = std::env::var("WEFT_SCHEMATHESIS") {
        return p;
    }
    let found = std::process::Command::new("schemathesis").arg("--version").output();
    if found.is_ok_and(|o| o.status.success()) {
        return "schemathesis".into();
    }
    panic!(
        "the API fuzz test needs schemathesis: install it with `python3 -m pip install schemathesis==4.32.5` \
         (scripts/install-toolchains does), or set WEFT_SCHEMATHESIS to its command"
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let st = schemathesis();
    let s = setup("fuzz");
    let echo = upload(&s.served, &s.acme, "echo");
    let wf = two_steps(&echo);
    let reg =
        s.served.request("PUT", "/v1/workflows/greeting", Some(&s.acme), Some(("application/yaml", wf.as_bytes())));
    assert_eq!(reg.status, 201);
    let done = s.served.json("POST", "/v1/runs?wait=30", &s.acme, &submission(&wf, "fuzz"));
    assert_eq!(done.status, 201);
    // Bounded: a fixed seed and 25 examples an operation, plus the stateful phase.
    let out = std::process::Command::new(st)
        .args(["run", &format!("http://{}/openapi.json", s.served.addr)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
             response_schema_conformance",
        ])
        .args(["--header", &format!("Authorization: Bearer {}", s.acme)])
        .args(["--max-examples", "25", "--seed", "20261202", "--no-color"])
        .output()
        .expect("run schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers off the schema or server errors:\n{text}\n{}\nweft serve said:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.served.stderr.lock().unwrap()
    );
    assert!(text.contains("passed"), "{text}");
}

#[test]
fn a_tenants_ceiling_caps_what_a_node_asks_for_and_dead_letters_replay() {
    let s = setup("ceiling");
    let db = db_of(&s);
    tenant_cmd(CACHE, &db, &["create", "capped", "--max-step-fuel", "200000"]);
    let capped = tenant_cmd(CACHE, &db, &["token", "create", "capped"]);
    let burn = upload(&s.served, &capped, "cpu_burn");
    // The node asks for ten billion units and a short loop; the tenant's ceiling wins.
    let wf = format!(
        "metadata: {{name: greedy, version: 1.0.0}}\ncoordination_rules: {{dead_letter_queue_enabled: true}}\n\
         execution_graph:\n  nodes:\n\
         \x20   - {{node_id: hot, node_type: compute, component: \"{burn}\", fuel: 10000000000, retry_count: 0, input: {{iterations: \"1000000\"}}}}\n"
    );
    let out = s.served.json("POST", "/v1/runs?wait=30", &capped, &json!({ "definition": wf }));
    let out = out.json();
    assert_eq!(out["status"], "failed", "{out}");
    assert_eq!(out["output"]["errors"][0]["error_type"], "out_of_fuel", "{out}");
    let id = out["run_id"].as_str().unwrap().to_string();
    // Without the ceiling, the same node completes.
    let burn_acme = upload(&s.served, &s.acme, "cpu_burn");
    let free =
        s.served.json("POST", "/v1/runs?wait=30", &s.acme, &json!({ "definition": wf.replace(&burn, &burn_acme) }));
    assert_eq!(free.json()["status"], "completed", "{}", free.text());

    // The failed run is in the tenant's dead-letter queue, and only there.
    let dlq = s.served.get("/v1/dlq", &capped).json();
    assert_eq!(dlq[0]["run_id"], id.as_str(), "{dlq}");
    assert_eq!(s.served.get("/v1/dlq", &s.acme).json(), json!([]));
    s.served.request("POST", &format!("/v1/dlq/{id}/replay"), Some(&s.acme), None).problem(404, "not-found");
    let replay = s.served.request("POST", &format!("/v1/dlq/{id}/replay"), Some(&capped), None);
    assert_eq!(replay.status, 201, "{}", replay.text());
    let new_id = replay.json()["run_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    s.served.request("POST", &format!("/v1/dlq/{id}/replay"), Some(&capped), None).problem(409, "conflict");
    // The replay runs under the same ceiling, and fails the same way.
    let start = std::time::Instant::now();
    loop {
        let run = s.served.get(&format!("/v1/runs/{new_id}"), &capped).json();
        if run["status"] != "running" && run["status"] != "pending" {
            assert_eq!(run["output"]["errors"][0]["error_type"], "out_of_fuel", "{run}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{run}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_serves_its_own_metrics() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let wf = crate::common::chain(dir.path(), "metered", &crate::common::plugin("echo"), 3, "");
    let mut worker =
        crate::common::weft_db(CACHE, &db, &["worker", "--metrics-listen", "127.0.0.1:0", "--poll-ms", "50"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(worker.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.split("http://").nth(1).and_then(|r| r.strip_suffix("/metrics")).unwrap().to_string();
    std::thread::spawn(move || for _ in lines {});
    let scrape = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    // Gauges show from the start; a family with labels shows once it has a sample.
    assert!(scrape().contains("# TYPE active_workflows gauge"));
    let out = crate::common::weft_db(CACHE, &db, &["submit", wf.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = std::time::Instant::now();
    loop {
        let text = scrape();
        if text.contains("workflow_duration_seconds_count{workflow_type=\"metered\",execution_status=\"completed\"} 1")
        {
            assert!(text.contains("weft_worker_events_total{event=\"claimed\"} 1"), "{text}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the worker's metrics never showed the run:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn metrics_can_move_to_an_operators_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("weft.db");
    let served = Served::start(CACHE, &db, &["--metrics-listen", "127.0.0.1:0"]);
    let said = served.stderr.lock().unwrap().clone();
    let metrics = said.split("metrics at http://").nth(1).and_then(|r| r.split("/metrics").next()).unwrap().to_string();
    served.request("GET", "/metrics", None, None).problem(404, "not-found");
    let mut s = std::net::TcpStream::connect(&metrics).unwrap();
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    assert!(text.starts_with("HTTP/1.0 200") && text.contains("# TYPE active_workflows gauge"), "{text}");
}

/// The path and body of every request a collector got.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A fake OTLP/HTTP collector on 127.0.0.1: the path and body of every
/// request it gets, each answered 200.
fn collector() -> (u16, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    sink.lock().unwrap().push((path, body));
                    conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
                    )
                    .unwrap();
                }
            });
        }
    });
    (port, got)
}

type OtlpSpan = opentelemetry_proto::tonic::trace::v1::Span;
type Any = opentelemetry_proto::tonic::common::v1::any_value::Value;

/// Every span the collector got, decoded from the OTLP protobuf bodies.
fn spans_of(got: &Mutex<Vec<(String, Vec<u8>)>>, stderr: &str) -> Vec<OtlpSpan> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let got = got.lock().unwrap();
    assert!(!got.is_empty(), "the collector got nothing; weft serve said:\n{stderr}");
    let mut spans = Vec::new();
    for (path, body) in got.iter() {
        assert_eq!(path, "/v1/traces");
        let req = ExportTraceServiceRequest::decode(&body[..]).expect("an OTLP protobuf export");
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    spans
}

/// The attribute `key` of `span`.
fn attr(span: &OtlpSpan, key: &str) -> Option<Any> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value)
}

/// A string attribute's text.
fn text(v: Option<Any>) -> String {
    match v {
        Some(Any::StringValue(s)) => s,
        other => format!("{other:?}"),
    }
}

#[test]
fn traces_reach_an_otlp_collector_as_run_step_attempt_under_the_callers_traceparent() {
    let (port, got) = collector();
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = setup_with("traces", &["--otlp-endpoint", &endpoint]);
    let echo = upload(&s.served, &s.acme, "echo");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{parent}-01");
    let body = submission(&two_steps(&echo), "traced").to_string();
    let made = s.served.request_with(
        "POST",
        "/v1/runs?wait=30",
        Some(&s.acme),
        &[("traceparent", &traceparent)],
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(made.json()["status"], "completed", "{}", made.text());
    let id = made.json()["run_id"].as_str().unwrap().to_string();
    let Setup { served, _dir, .. } = s;
    let (code, stderr) = served.terminate();
    assert_eq!(code, Some(0), "{stderr}");

    let spans = spans_of(&got, &stderr);
    let run = spans
        .iter()
        .find(|sp| sp.name == "run" && text(attr(sp, "weft.run_id")) == id)
        .unwrap_or_else(|| panic!("no run span for {id} among {} spans", spans.len()));
    assert_eq!(hex::encode(&run.trace_id), trace, "the run continues the caller's trace");
    assert_eq!(hex::encode(&run.parent_span_id), parent, "the caller's span is the run's parent");
    assert_eq!(text(attr(run, "weft.execution_status")), "completed");
    let steps: Vec<_> = spans.iter().filter(|sp| sp.name == "step" && sp.parent_span_id == run.span_id).collect();
    assert_eq!(steps.len(), 2, "a step span for hello and again");
    for step in steps {
        let step_id = text(attr(step, "weft.step_id"));
        let attempts: Vec<_> =
            spans.iter().filter(|sp| sp.name == "attempt" && sp.parent_span_id == step.span_id).collect();
        assert_eq!(attempts.len(), 1, "{step_id}");
        let a = attempts[0];
        assert_eq!(text(attr(a, "weft.step_id")), step_id);
        assert_eq!(attr(a, "weft.attempt"), Some(Any::IntValue(1)));
        assert_eq!(text(attr(a, "weft.outcome")), "succeeded");
        assert!(matches!(attr(a, "weft.fuel_consumed"), Some(Any::IntValue(n)) if n > 0));
        assert!(matches!(attr(a, "weft.peak_memory_bytes"), Some(Any::IntValue(n)) if n > 0));
        assert!(a.start_time_unix_nano <= a.end_time_unix_nano && a.trace_id == run.trace_id);
    }
}

#[test]
fn stored_bytes_are_a_quota_and_deleting_gives_them_back() {
    let s = setup("stored");
    let db = db_of(&s);
    let (bytes, _) = component("echo");
    let wf = two_steps(&component("echo").1);
    // Room for the component and one copy of the workflow, not two.
    let room = bytes.len() + wf.len() + wf.len() / 2;
    tenant_cmd(CACHE, &db, &["create", "small", "--max-stored-bytes", &room.to_string()]);
    let small = tenant_cmd(CACHE, &db, &["token", "create", "small"]);
    let sv = &s.served;
    let echo = upload(sv, &small, "echo");
    assert_eq!(sv.get("/v1/usage", &small).json()["stored_bytes"], bytes.len(), "the upload is charged");
    upload(sv, &small, "echo");
    assert_eq!(sv.get("/v1/usage", &small).json()["stored_bytes"], bytes.len(), "the same upload again is not");
    let put = |name: &str| {
        sv.request("PUT", &format!("/v1/workflows/{name}"), Some(&small), Some(("application/yaml", wf.as_bytes())))
    };
    assert_eq!(put("first").status, 201);
    assert_eq!(put("first").status, 200, "registering the same name again replaces it");
    assert_eq!(sv.get("/v1/usage", &small).json()["stored_bytes"], bytes.len() + wf.len());
    let refused = put("second");
    let p = refused.problem(429, "quota-exceeded");
    assert!(refused.header("retry-after").is_some());
    assert!(p["detail"].as_str().unwrap().contains("max_stored_bytes"), "{p}");
    assert_eq!(sv.get("/v1/workflows", &small).json()["names"], json!(["first"]), "nothing was stored");
    // Deleting gives the space back.
    assert_eq!(sv.request("DELETE", "/v1/workflows/first", Some(&small), None).status, 204);
    sv.request("DELETE", "/v1/workflows/first", Some(&small), None).problem(404, "not-found");
    assert_eq!(put("second").status, 201);
    sv.request("DELETE", &format!("/v1/components/{echo}"), Some(&s.acme), None).problem(404, "not-found");
    assert_eq!(sv.request("DELETE", &format!("/v1/components/{echo}"), Some(&small), None).status, 204);
    sv.get(&format!("/v1/components/{echo}"), &small).problem(404, "not-found");
    // A deleted component can no longer be named by a new workflow...
    let p = sv.json("POST", "/v1/runs", &small, &submission(&wf, "x")).problem(422, "invalid");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("no component of this tenant"), "{p}");
    // ...but the store keeps its bytes for the runs that pinned it: they stay charged, and uploading it again is free.
    assert_eq!(sv.get("/v1/usage", &small).json()["stored_bytes"], bytes.len() + wf.len());
    assert_eq!(upload_status(sv, &small, "echo"), 201);
    assert_eq!(sv.get("/v1/usage", &small).json()["stored_bytes"], bytes.len() + wf.len());
    // The operator lowers the quota, then lifts it.
    tenant_cmd(CACHE, &db, &["quotas", "small", "--max-stored-bytes", "1"]);
    assert_eq!(upload_status(sv, &small, "emitter"), 429);
    tenant_cmd(CACHE, &db, &["quotas", "small", "--max-stored-bytes", "none"]);
    let listed = tenant_cmd(CACHE, &db, &["list"]);
    assert!(listed.lines().any(|l| l.starts_with("small\t") && l.contains("max_stored_bytes none")), "{listed}");
    assert_eq!(upload_status(sv, &small, "emitter"), 201);
    assert_eq!(sv.get("/v1/usage", &small).json()["quotas"]["max_stored_bytes"], Value::Null);
}

/// The status of an upload of the plugin `name` for the tenant of `token`.
fn upload_status(served: &Served, token: &str, name: &str) -> u16 {
    let (bytes, digest) = component(name);
    served.request("PUT", &format!("/v1/components/{digest}"), Some(token), Some(("application/wasm", &bytes))).status
}

#[test]
fn fuel_per_hour_is_counted_by_the_workers_and_a_tenant_sees_only_its_own_metrics() {
    let s = setup("fuel");
    let db = db_of(&s);
    tenant_cmd(CACHE, &db, &["create", "frugal", "--max-fuel-per-hour", "1000"]);
    let frugal = tenant_cmd(CACHE, &db, &["token", "create", "frugal"]);
    let sv = &s.served;
    let echo = upload(sv, &frugal, "echo");
    let first = sv.json("POST", "/v1/runs?wait=30", &frugal, &submission(&two_steps(&echo), "a"));
    assert_eq!(first.json()["status"], "completed", "{}", first.text());
    let spent = first.json()["output"]["metrics"]["total_fuel_consumed"].as_f64().unwrap() as u64;
    assert!(spent > 1000, "two echo steps spend more than 1000 fuel: {spent}");
    // The workers write the fuel within about a second: all of the run's, and no more.
    let start = std::time::Instant::now();
    let used = loop {
        let u = sv.get("/v1/usage", &frugal).json();
        let used = u["fuel_this_hour"].as_u64().unwrap();
        if used >= spent {
            break used;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the run's {spent} fuel was never counted: {u}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(used, spent, "the count is the run's own fuel");
    let refused = sv.json("POST", "/v1/runs", &frugal, &submission(&two_steps(&echo), "b"));
    let p = refused.problem(429, "quota-exceeded");
    assert!(p["detail"].as_str().unwrap().contains("max_fuel_per_hour"), "{p}");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "until the next hour: {wait}");
    // acme has no such quota, and its own count.
    let acme_echo = upload(sv, &s.acme, "echo");
    let other = sv.json("POST", "/v1/runs?wait=30", &s.acme, &submission(&two_steps(&acme_echo), "c"));
    assert_eq!(other.json()["status"], "completed");

    // Each tenant's metrics show its own runs and usage, and nobody else's.
    let mine = sv.get("/v1/metrics", &frugal);
    assert_eq!(mine.status, 200);
    assert!(mine.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = mine.text();
    let value = |text: &str, prefix: &str| -> f64 {
        let l = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        value(&text, "workflow_duration_seconds_count{workflow_type=\"greet\",execution_status=\"completed\"}"),
        1.0
    );
    assert_eq!(value(&text, "weft_attempts_total{outcome=\"succeeded\"}"), 2.0);
    assert_eq!(value(&text, "weft_tenant_fuel_this_hour "), used as f64);
    assert_eq!(value(&text, "weft_tenant_quota_max_fuel_per_hour "), 1000.0);
    assert_eq!(value(&text, "weft_quota_rejections_total{tenant=\"frugal\",quota=\"fuel_per_hour\"}"), 1.0);
    assert!(!text.contains("acme"), "no other tenant's name:\n{text}");
    let theirs = sv.get("/v1/metrics", &s.acme).text();
    assert_eq!(
        value(&theirs, "workflow_duration_seconds_count{workflow_type=\"greet\",execution_status=\"completed\"}"),
        1.0
    );
    assert!(!theirs.contains("frugal"), "{theirs}");
    assert!(!theirs.contains("weft_tenant_quota_max_fuel_per_hour"), "a quota without a limit has no gauge: {theirs}");
    sv.request("GET", "/v1/metrics", None, None).problem(401, "unauthorized");
    // The operator's page counts both.
    let all = sv.request("GET", "/metrics", None, None).text();
    assert_eq!(
        value(&all, "workflow_duration_seconds_count{workflow_type=\"greet\",execution_status=\"completed\"}"),
        2.0
    );
}

#[test]
fn a_tenant_can_have_an_operator_policy_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("acme.toml"),
        "[env]\nallow = [\"PATH\"]\n[kv]\nallow = true\n[http]\nallow = [{ url = \"http://127.0.0.1:9/*\" }]\n",
    )
    .unwrap();
    let s = setup_with("tenant-policy", &["--tenant-policies", policies.to_str().unwrap()]);
    let sv = &s.served;
    let wf_for = |probe: &str| {
        format!(
            "metadata: {{name: reads-env, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
             \x20   - {{node_id: look, node_type: effect, component: \"{probe}\", capabilities: {{env: [PATH], kv: true, http: [{{url: \"http://127.0.0.1:9/*\"}}]}}, input: {{ops: \"[{{'op': 'env', 'name': 'PATH'}}]\"}}}}\n"
        )
    };
    // acme's own policy lets its node read PATH.
    let probe = upload(sv, &s.acme, "probe");
    let out = sv.json("POST", "/v1/runs?wait=30", &s.acme, &json!({ "definition": wf_for(&probe) }));
    let out = out.json();
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["output"]["step_outputs"]["look"]["results"][0]["ok"], std::env::var("PATH").unwrap(), "{out}");
    // Every other tenant is under the default: nothing.
    let theirs = upload(sv, &s.other, "probe");
    let p = sv.json("POST", "/v1/runs", &s.other, &json!({ "definition": wf_for(&theirs) })).problem(422, "invalid");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("the operator's policy refuses this"), "{p}");
}

#[test]
fn concurrent_submissions_cannot_pass_the_last_free_slot_together() {
    let s = setup("concurrent");
    tenant_cmd(CACHE, &db_of(&s), &["create", "pair", "--max-concurrent-runs", "2"]);
    let pair = tenant_cmd(CACHE, &db_of(&s), &["token", "create", "pair"]);
    let slow = upload(&s.served, &pair, "slow_effect");
    let wf = format!(
        "metadata: {{name: slow, version: 1.0.0}}\nexecution_graph:\n  nodes:\n\
         \x20   - {{node_id: nap, node_type: effect, component: \"{slow}\", input: {{sleep_ms: \"5000\"}}}}\n"
    );
    let body = json!({ "definition": wf });
    // Eight submissions at once, for two slots.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let sent: Vec<_> =
            (0..8).map(|_| scope.spawn(|| s.served.json("POST", "/v1/runs", &pair, &body).status)).collect();
        sent.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let made = statuses.iter().filter(|&&st| st == 201).count();
    let refused = statuses.iter().filter(|&&st| st == 429).count();
    assert_eq!((made, refused), (2, 6), "exactly the quota's two are taken: {statuses:?}");
    assert_eq!(s.served.get("/v1/usage", &pair).json()["active_runs"], 2);
}
