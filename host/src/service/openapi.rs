//! The OpenAPI 3.1 document, generated from the handlers' annotations
//! (utoipa), at `/openapi.json`, and a docs page at `/docs` rendered from
//! it on the server (no script, no CDN).

use super::components::ComponentInfo;
use super::dlq::DlqLine;
use super::health::Health;
use super::problem::{Problem, ProblemItem};
use super::run_control::{CancelAnswer, SignalAnswer, SignalBody};
use super::run_views::{RunLine, RunLogLine, RunPage};
use super::runs::{RunAccepted, SubmitRun};
use super::workflows::{GraphNode, RegisteredWorkflow, Validation, WorkflowBody, WorkflowGraph, WorkflowList};
use axum::Json;
use axum::response::Html;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Adds the bearer-token scheme the endpoints name.
struct TokenScheme;

impl Modify for TokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("weft_<id>_<secret>")
                    .description(Some("A tenant token, from `weft tenant token create TENANT`"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weft",
        description = "Run workflows whose steps are sandboxed WebAssembly components. Every error is RFC 9457 \
                       `application/problem+json`. Request bodies are capped (4 MiB; components 64 MiB), and a \
                       request that takes longer than 30 s is cut off (streams and `?wait=` excepted)."
    ),
    paths(
        super::runs::put,
        super::runs::post,
        super::run_views::list,
        super::run_views::show,
        super::run_views::journal,
        super::run_views::logs,
        super::events::stream,
        super::run_control::cancel,
        super::run_control::resume,
        super::run_control::signal,
        super::dlq::list,
        super::dlq::replay,
        super::workflows::validate,
        super::workflows::list,
        super::workflows::register,
        super::workflows::show,
        super::workflows::delete,
        super::workflows::graph,
        super::components::upload,
        super::components::show,
        super::components::delete,
        super::tenant_view::show,
        super::tenant_view::metrics,
        super::health::healthz,
        super::health::readyz,
        super::metrics::render,
    ),
    components(schemas(
        Problem,
        ProblemItem,
        SubmitRun,
        RunAccepted,
        RunLine,
        RunPage,
        RunLogLine,
        SignalBody,
        SignalAnswer,
        CancelAnswer,
        DlqLine,
        WorkflowBody,
        RegisteredWorkflow,
        Validation,
        GraphNode,
        WorkflowGraph,
        WorkflowList,
        ComponentInfo,
        Health,
        super::tenant_view::TenantUsage,
        super::tenants::Quotas,
    )),
    modifiers(&TokenScheme),
    tags(
        (name = "runs", description = "Submit, watch and control runs"),
        (name = "workflows", description = "Validate and register workflows"),
        (name = "components", description = "Upload components by digest"),
        (name = "operations", description = "Probes and metrics"),
    )
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn openapi_json() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    add_common_problems(&mut doc);
    doc
}

/// Documents, on every operation, the problems any request may answer:
/// 400 (a bad parameter), 401 (where a token is needed), 404 (where the
/// path names something), 413 and 415 (where there is a body), 503 (the
/// store failed, or the request took too long).
fn add_common_problems(doc: &mut Value) {
    let problem = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": { super::problem::PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } }
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let names_something = path.contains('{');
        for (_, op) in item.as_object_mut().into_iter().flatten() {
            let secured = op.get("security").is_some();
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            let mut add = |code: &str, description: &str| {
                responses.entry(code.to_string()).or_insert_with(|| problem(description));
            };
            if secured || has_body || names_something {
                add("400", "A parameter or the body is malformed");
            }
            if secured {
                add("401", "No valid token");
                add("403", "The token lacks the scope this needs");
            }
            if names_something {
                add("404", "Nothing of this tenant has this name");
            }
            if has_body {
                add("413", "The body is too large");
                add("415", "The body has the wrong media type");
            }
            if secured || has_body {
                add("429", "A quota is used up (see `Retry-After`)");
            }
            add("503", "The store failed, or the request took too long (see `Retry-After`)");
        }
    }
}

/// `GET /openapi.json`.
pub(super) async fn document() -> Json<Value> {
    Json(openapi_json())
}

/// `GET /docs`: every endpoint, with its summary and answers.
pub(super) async fn docs_page() -> Html<String> {
    let doc = openapi_json();
    let mut body = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Weft API</title>\
         <style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .2em}.m{display:inline-block;width:4.5em;font-weight:600}\
         li{margin:.3em 0}</style></head><body><h1>Weft API</h1>\
         <p>The machine-readable document is <a href=\"/openapi.json\">/openapi.json</a>.</p>",
    );
    if let Some(d) = doc.pointer("/info/description").and_then(Value::as_str) {
        body.push_str(&format!("<p>{}</p>", escape(d)));
    }
    body.push_str("<ul>");
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                let summary = op.get("summary").and_then(Value::as_str).unwrap_or_default();
                let statuses: Vec<&str> = op
                    .get("responses")
                    .and_then(Value::as_object)
                    .map(|r| r.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                body.push_str(&format!(
                    "<li><span class=\"m\">{}</span><code>{}</code> {} <small>({})</small></li>",
                    escape(&method.to_uppercase()),
                    escape(path),
                    escape(summary),
                    escape(&statuses.join(", "))
                ));
            }
        }
    }
    body.push_str("</ul></body></html>");
    Html(body)
}

/// `s` safe in HTML text.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
