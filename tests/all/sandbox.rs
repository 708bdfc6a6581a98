//! End-to-end tests of the sandbox through the library: real components built
//! from plugins/, run under real limits.

use crate::common;
use common::plugin;
use serde_json::{Map, Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weft::sandbox::{
    ActionKind, AttemptReport, CallKind, Limits, LoadedComponent, LogSource, Origin, PluginErrorKind, Sandbox,
    SandboxConfig, StepCall, StepContext, StepFailure, StepWorld,
};

/// One sandbox for the whole test binary: every hostile plugin runs on the
/// same host, which must keep serving the others.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| common::sandbox("sandbox", 16))
}

fn load(name: &str, world: StepWorld) -> Arc<LoadedComponent> {
    sandbox().load_file(&plugin(name), Some(world)).unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn limits() -> Limits {
    Limits { memory_bytes: 64 << 20, timeout: Duration::from_secs(20), ..Limits::default() }
}

async fn run(name: &str, input: Value, limits: &Limits) -> AttemptReport {
    let c = load(name, StepWorld::Compute);
    sandbox().execute(&c, &StepCall::run(obj(input)), limits).await
}

fn output(r: &AttemptReport) -> &Value {
    match &r.outcome {
        Ok(s) => &s.output,
        Err(f) => panic!("expected success, got {f}"),
    }
}

fn failure(r: &AttemptReport) -> &StepFailure {
    r.failure().unwrap_or_else(|| panic!("expected a failure, got {:?}", r.outcome))
}

// ---------------------------------------------------------------- examples

#[tokio::test]
async fn price_cart_computes_totals_in_cents() {
    let r = run(
        "price_cart",
        json!({
            "items": [{"sku": "A", "qty": 2, "unit_price_cents": 1250}, {"sku": "B", "qty": 1, "unit_price_cents": 9999}],
            "discount_codes": ["SAVE10", "NOPE"],
            "tax_rate_bps": 2000,
            "shipping_cents": 499,
            "free_shipping_over_cents": 5000
        }),
        &limits(),
    )
    .await;
    let out = output(&r);
    assert_eq!(out["subtotal_cents"], 12499);
    assert_eq!(out["discount_code"], "SAVE10");
    assert_eq!(out["discount_cents"], 1249);
    assert_eq!(out["tax_cents"], 2250);
    assert_eq!(out["shipping_cents"], 0);
    assert_eq!(out["total_cents"], 13500);
    assert_eq!(out["unknown_codes"], json!(["NOPE"]));
    assert!(r.stats.fuel_consumed > 0, "fuel is reported");
    assert!(r.stats.peak_memory_bytes > 0, "peak memory is reported");
    assert!(r.stats.wall_time_us > 0, "wall time is reported");
}

#[tokio::test]
async fn price_cart_rejects_a_bad_tax_rate_as_invalid_input() {
    let r = run("price_cart", json!({"items": [], "tax_rate_bps": 20000}), &limits()).await;
    match failure(&r) {
        StepFailure::PluginError { error_kind, message } => {
            assert_eq!(*error_kind, PluginErrorKind::InvalidInput);
            assert!(message.contains("tax_rate_bps"), "{message}");
        }
        other => panic!("wrong failure {other:?}"),
    }
    assert!(!failure(&r).is_retryable());
}

#[tokio::test]
async fn validate_order_normalises_and_emits_an_action() {
    let r = run(
        "validate_order",
        json!({
            "order_id": "o-17", "currency": "eur",
            "customer": {"id": "c-1", "email": "ada@example.org"},
            "items": [{"sku": " ab-1 ", "qty": 3, "unit_price_cents": 500}]
        }),
        &limits(),
    )
    .await;
    let ok = r.outcome.as_ref().unwrap();
    assert_eq!(ok.output["valid"], true);
    assert_eq!(ok.output["currency"], "EUR");
    assert_eq!(ok.output["items"][0]["sku"], "AB-1");
    assert_eq!(ok.output["total_qty"], 3);
    assert_eq!(ok.actions.len(), 1);
    assert_eq!(ok.actions[0].action_type, ActionKind::Compute);
    assert_eq!(ok.actions[0].target_node, "price_cart");
    assert_eq!(ok.actions[0].payload, json!({"order_id": "o-17"}));
    assert!(
        r.logs.iter().any(|l| l.source == LogSource::Log && l.message.contains("o-17 is valid")),
        "the log import reaches the report: {:?}",
        r.logs
    );
}

#[tokio::test]
async fn validate_order_reports_every_problem_at_once() {
    let r = run(
        "validate_order",
        json!({
            "order_id": "", "currency": "XXX",
            "customer": {"id": "c", "email": "nope"},
            "items": [{"sku": "", "qty": 0, "unit_price_cents": -1}]
        }),
        &limits(),
    )
    .await;
    let StepFailure::PluginError { error_kind, message } = failure(&r) else { panic!("wrong failure {:?}", r.outcome) };
    assert_eq!(*error_kind, PluginErrorKind::InvalidInput);
    for needle in [
        "order_id is empty",
        "currency `XXX`",
        "customer.email",
        "items[0].sku",
        "items[0].qty",
        "unit_price_cents is negative",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
}

#[tokio::test]
async fn validate_order_input_of_the_wrong_shape_is_invalid_input() {
    let r = run("validate_order", json!({"order": 1}), &limits()).await;
    let StepFailure::PluginError { error_kind, message } = failure(&r) else { panic!("wrong failure {:?}", r.outcome) };
    assert_eq!(*error_kind, PluginErrorKind::InvalidInput);
    assert!(message.contains("missing field"), "{message}");
}

#[tokio::test]
async fn aggregate_records_groups_and_sums() {
    let r = run(
        "aggregate_records",
        json!({
            "records": [
                {"region": "eu", "amount": 10.0, "n": 1},
                {"region": "us", "amount": 5.5},
                {"region": "eu", "amount": 2.5, "n": 3},
                {"amount": 100}
            ],
            "group_by": "region",
            "sum": ["amount", "n"]
        }),
        &limits(),
    )
    .await;
    let out = output(&r);
    assert_eq!(out["total_records"], 4);
    assert_eq!(out["ungrouped"], 1);
    let groups = out["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["key"], "eu");
    assert_eq!(groups[0]["count"], 2);
    assert_eq!(groups[0]["fields"]["amount"]["sum"], 12.5);
    assert_eq!(groups[0]["fields"]["amount"]["min"], 2.5);
    assert_eq!(groups[0]["fields"]["amount"]["max"], 10.0);
    assert_eq!(groups[0]["fields"]["amount"]["mean"], 6.25);
    assert_eq!(groups[0]["fields"]["n"]["sum"], 4.0);
    assert_eq!(groups[1]["key"], "us");
    assert_eq!(groups[1]["fields"]["amount"]["sum"], 5.5);
}

#[tokio::test]
async fn echo_returns_its_input() {
    let input = json!({"nested": {"list": [1, 2, {"x": null}]}, "unicode": "żółw 🐢"});
    let r = run("echo", input.clone(), &limits()).await;
    assert_eq!(output(&r), &input);
}

#[tokio::test]
async fn charge_payment_charges_and_compensates_its_own_charge() {
    let c = load("charge_payment", StepWorld::Effect);
    assert_eq!(c.world, StepWorld::Effect);
    let input = obj(json!({"order_id": "o-9", "amount_cents": 1999, "currency": "EUR", "account": "acct-1"}));
    let mut ctx = StepContext::adhoc("charge");
    ctx.idempotency_key = "run-1/charge".into();
    let call = StepCall { ctx: ctx.clone(), input: input.clone(), kind: CallKind::Run };
    let first = sandbox().execute(&c, &call, &limits()).await;
    let receipt = output(&first).clone();
    assert_eq!(receipt["status"], "captured");
    // A retry under the same idempotency key names the same charge.
    let retry = StepCall { ctx: StepContext { attempt: 2, ..ctx.clone() }, ..call.clone() };
    let second = sandbox().execute(&c, &retry, &limits()).await;
    assert_eq!(output(&second)["charge_id"], receipt["charge_id"]);

    let undo =
        StepCall { ctx: ctx.clone(), input: input.clone(), kind: CallKind::Compensate { output: receipt.clone() } };
    let comp = sandbox().execute(&c, &undo, &limits()).await;
    assert!(comp.outcome.is_ok(), "compensate succeeds: {:?}", comp.outcome);
    assert!(comp.logs.iter().any(|l| l.message.contains("refunded charge")), "{:?}", comp.logs);

    // Compensating a charge made under another key is refused.
    let mut other = ctx.clone();
    other.idempotency_key = "run-2/charge".into();
    let wrong = StepCall { ctx: other, input, kind: CallKind::Compensate { output: receipt } };
    let refused = sandbox().execute(&c, &wrong, &limits()).await;
    assert!(
        matches!(failure(&refused), StepFailure::PluginError { error_kind: PluginErrorKind::InvalidInput, message } if message.contains("not made under this step's idempotency key")),
        "{:?}",
        refused.outcome
    );
}

#[tokio::test]
async fn plugin_error_kinds_are_kept_apart() {
    for (kind, expected, retryable) in [
        ("retryable", PluginErrorKind::Retryable, true),
        ("fatal", PluginErrorKind::Fatal, false),
        ("invalid_input", PluginErrorKind::InvalidInput, false),
    ] {
        let r = run("flaky", json!({"fail_until_attempt": 2, "error": kind}), &limits()).await;
        match failure(&r) {
            StepFailure::PluginError { error_kind, message } => {
                assert_eq!(*error_kind, expected);
                assert!(message.contains("attempt 1 failed on purpose"), "{message}");
            }
            other => panic!("wrong failure {other:?}"),
        }
        assert_eq!(failure(&r).is_retryable(), retryable);
    }
    // The second attempt of the same step succeeds.
    let c = load("flaky", StepWorld::Compute);
    let mut call = StepCall::run(obj(json!({"fail_until_attempt": 2})));
    call.ctx.attempt = 2;
    let r = sandbox().execute(&c, &call, &limits()).await;
    assert_eq!(output(&r)["attempt"], 2);
}

// ----------------------------------------------------------------- hostile

#[tokio::test]
async fn infinite_loop_times_out_when_fuel_is_plentiful() {
    let l = Limits { fuel: 10_000_000_000_000, timeout: Duration::from_millis(300), ..limits() };
    let r = run("infinite_loop", json!({}), &l).await;
    assert_eq!(failure(&r), &StepFailure::Timeout { limit_ms: 300 });
    assert!(r.stats.fuel_consumed > 1_000_000, "fuel burnt before the timeout is reported: {:?}", r.stats);
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel_first_when_fuel_is_small() {
    let l = Limits { fuel: 50_000_000, ..limits() };
    let r = run("infinite_loop", json!({}), &l).await;
    assert_eq!(failure(&r), &StepFailure::OutOfFuel { budget: 50_000_000 });
    assert_eq!(r.stats.fuel_consumed, 50_000_000);
}

#[tokio::test]
async fn cpu_burn_over_budget_is_out_of_fuel_and_under_budget_succeeds() {
    let l = Limits { fuel: 200_000_000, ..limits() };
    let r = run("cpu_burn", json!({}), &l).await;
    assert_eq!(failure(&r).kind(), "out_of_fuel");
    let small = run("cpu_burn", json!({"iterations": 1000}), &l).await;
    assert_eq!(output(&small)["iterations"], 1000);
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let l = Limits { memory_bytes: 32 << 20, ..limits() };
    let r = run("memory_bomb", json!({}), &l).await;
    match failure(&r) {
        StepFailure::MemoryLimit { limit_bytes, requested_bytes } => {
            assert_eq!(*limit_bytes, 32 << 20);
            assert!(*requested_bytes > 32 << 20);
        }
        other => panic!("wrong failure {other:?}"),
    }
    assert!(r.stats.peak_memory_bytes <= 32 << 20, "peak within the limit: {:?}", r.stats);
    assert!(r.stats.peak_memory_bytes > 16 << 20, "the bomb did grow: {:?}", r.stats);
}

#[tokio::test]
async fn stack_overflow_is_a_recognisable_trap() {
    let r = run("stack_overflow", json!({}), &limits()).await;
    match failure(&r) {
        StepFailure::Trap { stack_overflow, message } => {
            assert!(stack_overflow, "{message}");
            assert!(message.contains("stack"), "{message}");
        }
        other => panic!("wrong failure {other:?}"),
    }
}

#[tokio::test]
async fn panic_is_a_trap_carrying_the_panic_message() {
    let r = run("panic", json!({}), &limits()).await;
    match failure(&r) {
        StepFailure::Trap { stack_overflow, message } => {
            assert!(!stack_overflow);
            assert!(message.contains("this step always panics"), "{message}");
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("wrong failure {other:?}"),
    }
    assert!(r.logs.iter().any(|l| l.source == LogSource::Stderr && l.message.contains("panicked")));
}

#[tokio::test]
async fn a_100_mb_output_is_refused() {
    let l = Limits { fuel: u64::MAX / 2, memory_bytes: 256 << 20, ..limits() };
    let r = run("huge_output", json!({}), &l).await;
    match failure(&r) {
        StepFailure::InvalidOutput { reason } => {
            assert!(reason.contains("in one call"), "{reason}");
            assert!(reason.contains("the output limit is 1048576 bytes"), "{reason}");
        }
        other => panic!("wrong failure {other:?}"),
    }
    // Just over the limit but within one transfer: refused by the size check.
    let l2 = Limits { max_output_bytes: 500_000, ..l.clone() };
    let r = run("huge_output", json!({"mb": 0.51}), &l2).await;
    match failure(&r) {
        StepFailure::InvalidOutput { reason } => {
            assert!(reason.contains("the limit is 500000 bytes"), "{reason}");
        }
        other => panic!("wrong failure {other:?}"),
    }
    // The same plugin with a small output passes the limit.
    let small = run("huge_output", json!({"mb": 0}), &l).await;
    assert_eq!(output(&small), &json!(""));
}

#[tokio::test]
async fn invalid_json_output_is_invalid_output() {
    let r = run("invalid_json", json!({}), &limits()).await;
    match failure(&r) {
        StepFailure::InvalidOutput { reason } => assert!(reason.contains("not valid JSON"), "{reason}"),
        other => panic!("wrong failure {other:?}"),
    }
    assert!(!failure(&r).is_retryable());
}

#[tokio::test]
async fn escape_attempts_fail_inside_the_guest_and_the_step_completes() {
    let c = load("escape", StepWorld::Compute);
    let mut call = StepCall::run(Map::new());
    call.ctx.idempotency_key = "run-x/escape".into();
    let r = sandbox().execute(&c, &call, &limits()).await;
    let out = output(&r).clone();
    for door in ["passwd", "read_dir_root", "relative_file", "home", "tcp_connect", "tcp_listen", "dns"] {
        assert!(out[door].get("err").is_some(), "{door} should have failed inside the guest: {}", out[door]);
        assert!(out[door].get("ok").is_none(), "{door} must not succeed: {}", out[door]);
    }
    assert_eq!(out["env_count"], 0, "no environment variables");
    assert_eq!(out["wall_clock_nanos"], "0", "compute steps see a frozen wall clock");
    assert_eq!(out["monotonic_elapsed_nanos"], "0", "and a monotonic clock that does not move");
    // Random is seeded from the idempotency key: same key, same bytes.
    let again = sandbox().execute(&c, &call, &limits()).await;
    assert_eq!(output(&again)["random_hex"], out["random_hex"]);
    let mut other = call.clone();
    other.ctx.idempotency_key = "run-y/escape".into();
    let different = sandbox().execute(&c, &other, &limits()).await;
    assert_ne!(output(&different)["random_hex"], out["random_hex"]);
}

#[tokio::test]
async fn time_blocked_in_a_host_call_counts_toward_the_timeout() {
    let l = Limits { timeout: Duration::from_millis(200), ..limits() };
    let r = run("flaky", json!({"sleep_ms": 30_000}), &l).await;
    assert_eq!(failure(&r), &StepFailure::Timeout { limit_ms: 200 });
    assert!(r.stats.fuel_consumed < 10_000_000, "a sleeping guest burns little fuel: {:?}", r.stats);
}

#[tokio::test]
async fn logs_are_bounded_and_dropping_is_reported() {
    let l = Limits { max_log_bytes: 4096, ..limits() };
    let r = run("chatty", json!({"lines": 2000, "bytes": 64}), &l).await;
    assert_eq!(output(&r)["written"], 2000, "the guest is not failed by the log budget");
    let kept: usize = r.logs.iter().filter(|l| l.source != LogSource::Host).map(|l| l.message.len()).sum();
    assert!(kept <= 4096, "kept {kept} bytes");
    let host: Vec<_> = r.logs.iter().filter(|l| l.source == LogSource::Host).collect();
    assert!(host.iter().any(|l| l.message.contains("log line(s) dropped")), "{host:?}");
    assert!(host.iter().any(|l| l.message.contains("of stdout dropped")), "{host:?}");

    // Empty lines are not free: a flood of them is cut at the line cap.
    let flood = run("chatty", json!({"lines": 200_000, "empty": true}), &limits()).await;
    assert_eq!(output(&flood)["written"], 200_000);
    assert!(flood.logs.len() <= 1001, "{} lines kept", flood.logs.len());
    assert!(flood.logs.iter().any(|l| l.source == LogSource::Host && l.message.contains("dropped")));

    let small = run("chatty", json!({"lines": 5}), &limits()).await;
    let sources: Vec<_> = small.logs.iter().map(|l| l.source).collect();
    assert_eq!(sources.iter().filter(|s| **s == LogSource::Log).count(), 5);
    assert_eq!(sources.iter().filter(|s| **s == LogSource::Stdout).count(), 5);
    assert_eq!(sources.iter().filter(|s| **s == LogSource::Stderr).count(), 5);
}

#[tokio::test]
async fn actions_are_checked_against_the_contract() {
    let ok = run("emitter", json!({"count": 2, "target": "next", "payload": {"k": 1}}), &limits()).await;
    let actions = &ok.outcome.as_ref().unwrap().actions;
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[1].target_node, "next");
    assert_eq!(actions[1].payload, json!({"k": 1}));

    let cases = [
        (json!({"count": 101, "target": "next", "payload": {}}), "at most 100 are allowed"),
        (json!({"count": 1, "target": " ", "payload": {}}), "empty target node"),
        (json!({"count": 1, "target": "next", "payload": [1, 2]}), "not a JSON object"),
    ];
    for (input, needle) in cases {
        let r = run("emitter", input, &limits()).await;
        match failure(&r) {
            StepFailure::InvalidOutput { reason } => assert!(reason.contains(needle), "{reason}"),
            other => panic!("wrong failure {other:?}"),
        }
    }
}

#[tokio::test]
async fn compensate_on_a_compute_component_is_refused() {
    let c = load("echo", StepWorld::Compute);
    let call = StepCall::compensate(Map::new(), json!({}));
    let r = sandbox().execute(&c, &call, &limits()).await;
    match failure(&r) {
        StepFailure::ComponentInvalid { reason } => assert!(reason.contains("only effect-step components"), "{reason}"),
        other => panic!("wrong failure {other:?}"),
    }
}

// ----------------------------------------------------- invalid components

fn load_error(bytes: &[u8], world: Option<StepWorld>) -> String {
    match sandbox().load_bytes(bytes, world) {
        Ok(c) => panic!("expected a load error, loaded {c:?}"),
        Err(e) => {
            assert_eq!(e.to_failure().kind(), "component_invalid");
            e.to_string()
        }
    }
}

#[test]
fn wrong_world_names_the_missing_export_and_the_unexpected_import() {
    let bytes = std::fs::read(plugin("wrong_world")).unwrap();
    let msg = load_error(&bytes, Some(StepWorld::Compute));
    assert!(msg.contains("unexpected import `evil:plugin/secrets@1.0.0`"), "{msg}");
    assert!(msg.contains("missing export `weft:step/compute@0.1.2`"), "{msg}");
    assert!(msg.contains("evil:plugin/greeter"), "{msg}");
    let any = load_error(&bytes, None);
    assert!(any.contains("compute-step") && any.contains("effect-step"), "{any}");
}

#[test]
fn a_compute_step_is_not_an_effect_step_and_vice_versa() {
    let compute = std::fs::read(plugin("echo")).unwrap();
    let msg = load_error(&compute, Some(StepWorld::Effect));
    assert!(msg.contains("missing export `weft:step/effect@0.1.2`"), "{msg}");
    let effect = std::fs::read(plugin("charge_payment")).unwrap();
    let msg = load_error(&effect, Some(StepWorld::Compute));
    assert!(msg.contains("missing export `weft:step/compute@0.1.2`"), "{msg}");
    // Without a world, each is recognised as what it is.
    assert_eq!(sandbox().load_bytes(&compute, None).unwrap().world, StepWorld::Compute);
    assert_eq!(sandbox().load_bytes(&effect, None).unwrap().world, StepWorld::Effect);
}

#[test]
fn malformed_inputs_are_component_invalid_with_a_reason() {
    let msg = load_error(&common::core_module_bytes(), Some(StepWorld::Compute));
    assert!(msg.contains("core WebAssembly module, not a component"), "{msg}");
    let msg = load_error(&common::random_bytes(), Some(StepWorld::Compute));
    assert!(msg.contains("not a WebAssembly binary"), "{msg}");
    let msg = load_error(&[], Some(StepWorld::Compute));
    assert!(msg.contains("empty"), "{msg}");
    let msg = load_error(&common::truncated_component_bytes(), Some(StepWorld::Compute));
    assert!(msg.contains("not a valid WebAssembly component"), "{msg}");
}

#[test]
fn an_oversized_component_is_refused_before_reading_it() {
    let sb = Sandbox::new(SandboxConfig {
        cache_dir: None,
        max_instances: 1,
        max_component_bytes: 1024,
        ..SandboxConfig::default()
    })
    .unwrap();
    let err = sb.load_file(&plugin("echo"), Some(StepWorld::Compute)).unwrap_err().to_string();
    assert!(err.contains("larger than 1024 bytes are refused"), "{err}");
}

// ------------------------------------------------------------ host health

#[tokio::test]
async fn the_host_survives_every_hostile_plugin_at_once_and_then_runs_a_good_one() {
    let l =
        Limits { fuel: 500_000_000, timeout: Duration::from_millis(500), memory_bytes: 32 << 20, ..Limits::default() };
    let hostile = [
        "infinite_loop",
        "cpu_burn",
        "memory_bomb",
        "stack_overflow",
        "panic",
        "huge_output",
        "invalid_json",
        "escape",
    ];
    let mut set = tokio::task::JoinSet::new();
    for (i, name) in hostile.into_iter().enumerate() {
        let l = l.clone();
        set.spawn(async move { (i, run(name, json!({}), &l).await) });
    }
    let mut reports: Vec<Option<AttemptReport>> = vec![None; hostile.len()];
    while let Some(done) = set.join_next().await {
        let (i, r) = done.expect("no task panicked");
        reports[i] = Some(r);
    }
    let expected = [
        "timeout|out_of_fuel",
        // 5·10^8 fuel is ~40 ms of work; on a loaded machine the timeout may come first.
        "out_of_fuel|timeout",
        "memory_limit",
        "trap",
        "trap",
        // 100 MB built in a 32 MiB memory: the memory limit comes first.
        "memory_limit",
        "invalid_output",
        "ok",
    ];
    for ((name, r), want) in hostile.iter().zip(&reports).zip(expected) {
        let r = r.as_ref().expect("every run reported");
        let got = r.failure().map_or("ok", |f| f.kind().as_str());
        assert!(want.split('|').any(|w| w == got), "{name}: expected {want}, got {got}: {:?}", r.outcome);
    }
    let r = run("price_cart", json!({"items": [{"sku": "A", "qty": 1, "unit_price_cents": 100}]}), &limits()).await;
    assert_eq!(output(&r)["total_cents"], 100);
}

// ------------------------------------------------------------------ cache

#[test]
fn the_compiled_cache_is_used_and_survives_corruption() {
    let dir = common::temp_cache("cache");
    let config = SandboxConfig { cache_dir: Some(dir.clone()), max_instances: 2, ..SandboxConfig::default() };
    let bytes = std::fs::read(plugin("echo")).unwrap();
    let first = Sandbox::new(config.clone()).unwrap();
    assert_eq!(first.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap().origin, Origin::Compiled);
    // Loading again in the same host is a lookup of the same pre-linked component.
    let a = first.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
    let b = first.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    drop(first);

    let second = Sandbox::new(config.clone()).unwrap();
    assert_eq!(second.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap().origin, Origin::Cache);
    drop(second);

    // A cache directory others can write to is not trusted.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let shared = Sandbox::new(config.clone()).unwrap();
        let c = shared.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
        assert_eq!(c.origin, Origin::Compiled, "a world-writable cache is not loaded from");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    // Corrupt every entry: the next host recompiles instead of failing.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Sandbox::new(config).unwrap();
    let c = third.load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
    assert_eq!(c.origin, Origin::Compiled);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rt.block_on(third.execute(&c, &StepCall::run(obj(json!({"a": 1}))), &Limits::default()));
    assert_eq!(output(&r), &json!({"a": 1}));
}

#[test]
fn digests_name_the_content() {
    let bytes = std::fs::read(plugin("echo")).unwrap();
    let c = sandbox().load_bytes(&bytes, Some(StepWorld::Compute)).unwrap();
    assert_eq!(c.digest, weft::sandbox::digest(&bytes));
    assert!(c.digest.starts_with("sha256:") && c.digest.len() == 7 + 64);
    assert_eq!(c.size, bytes.len());
}

#[tokio::test]
async fn the_least_recently_used_component_leaves_memory_beyond_the_cap_and_comes_back() {
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(common::temp_cache("sandbox-lru")),
        max_instances: 4,
        max_loaded_components: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let load = |name: &str| sandbox.load_file(&plugin(name), Some(StepWorld::Compute)).unwrap();
    let echo = load("echo");
    let price = load("price_cart");
    assert!(sandbox.loaded(&echo.digest, StepWorld::Compute).is_some(), "echo is used again: now the most recent");
    let _aggregate = load("aggregate_records");
    assert!(sandbox.loaded(&price.digest, StepWorld::Compute).is_none(), "price_cart was the least recently used");
    assert!(sandbox.loaded(&echo.digest, StepWorld::Compute).is_some());
    // A component dropped from memory still runs (the caller's handle keeps it),
    // and loading it again comes from the disk cache, not the compiler.
    let report = sandbox.execute(&price, &StepCall::run(obj(json!({"items": []}))), &limits()).await;
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    drop(price);
    let again = load("price_cart");
    assert_eq!(again.origin, Origin::Cache);
}

#[test]
fn wit_deps_match_the_host() {
    // The WASI packages in wit/deps must be the ones the host implements:
    // byte for byte the copies the wasmtime-wasi-http crate ships.
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(common::root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wasmtime-wasi-http")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("wasmtime-wasi-http is a dependency");
    let crate_wit = std::path::Path::new(manifest).parent().unwrap().join("wit/deps");
    for pkg in ["cli", "clocks", "filesystem", "http", "io", "random", "sockets"] {
        let ours = std::fs::read(common::root().join(format!("wit/deps/{pkg}/{pkg}.wit"))).unwrap();
        let theirs = std::fs::read(crate_wit.join(format!("{pkg}.wit"))).unwrap();
        assert!(ours == theirs, "wit/deps/{pkg} differs from {}; copy it again", crate_wit.display());
    }
}
