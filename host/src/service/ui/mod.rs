//! The web UI of `weft serve`, at `/ui`: server-rendered pages (maud) and
//! one script and one stylesheet of its own, all embedded in the binary
//! and served under `Content-Security-Policy: default-src 'self'` (no CDN,
//! no inline script).
//!
//! - `/ui/login` exchanges a tenant token for a session (`sessions.rs`: 12
//!   hours at most, ended by signing out or by revoking the token), kept in
//!   an HttpOnly, SameSite=Strict cookie (an EventSource cannot send an
//!   `Authorization` header). The API reads the session as it reads a
//!   token, so the pages' script calls the same `/v1` endpoints as any
//!   client, as that tenant. A sign-in posted from another site's page is
//!   refused (its `Origin` names another host).
//! - `/ui/runs`: the tenant's runs, refreshed live, with a form that starts
//!   a run of a registered workflow.
//! - `/ui/runs/{id}`: the DAG (`dag.rs`), each step's state updated from
//!   the run's server-sent events; attempts with kind, fuel, time and
//!   memory; logs; the output; cancel, and approve or reject on a waiting
//!   gate.
//! - `/ui/dlq` and `/ui/workflows` (each registered workflow's graph).

mod dag;

use super::Service;
use super::auth::SESSION_COOKIE;
use super::sessions::SESSION_SECONDS;
use super::tenants::Caller;
use crate::workflow::{ComponentCheck, NodeType, load_str};
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path as UrlPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON: &str = include_str!("assets/icon.svg");
/// What the pages may load: only this server's own files.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

/// The UI's routes.
pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/runs", get(runs_page))
        .route("/ui/runs/{id}", get(run_page))
        .route("/ui/dlq", get(dlq_page))
        .route("/ui/workflows", get(workflows_page))
        .route("/ui/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/assets/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/ui/assets/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .route("/favicon.ico", get(|| async { asset("image/svg+xml", ICON) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A signed-in page's caller; anyone else is sent to the login page.
struct Viewer(Caller);

impl FromRequestParts<Arc<Service>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, service)
            .await
            .map(Viewer)
            .map_err(|_| Redirect::to("/ui/login").into_response())
    }
}

/// A page with the UI's frame.
fn page(title: &str, caller: Option<&Caller>, body_attrs: (&str, &str), content: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Weft" }
                link rel="stylesheet" href="/ui/assets/app.css";
                link rel="icon" href="/ui/assets/icon.svg" type="image/svg+xml";
                script src="/ui/assets/app.js" defer {}
            }
            body data-page=(body_attrs.0) data-run=(body_attrs.1) {
                header {
                    strong { "Weft" }
                    @if let Some(c) = caller {
                        nav {
                            a href="/ui/runs" { "Runs" }
                            a href="/ui/workflows" { "Workflows" }
                            a href="/ui/dlq" { "Dead letters" }
                        }
                        span class="tenant" { "tenant " b { (c.tenant) } }
                        form method="post" action="/ui/logout" class="inline" { button type="submit" { "Sign out" } }
                    }
                }
                main { (content) }
            }
        }
    };
    let mut response = (StatusCode::OK, markup.into_string()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn login_page() -> Response {
    login_form(None)
}

fn login_form(error: Option<&str>) -> Response {
    page(
        "Sign in",
        None,
        ("login", ""),
        html! {
            h1 { "Sign in" }
            p { "Paste a tenant token (" code { "weft tenant token create TENANT" } " makes one)." }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/ui/login" {
                label { "Token " input type="password" name="token" autocomplete="off" required size="60"; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Whether a form post comes from this server's own pages: its `Origin`
/// (which browsers send on a POST) names the host it was sent to. A page
/// of another site could otherwise sign a browser in as its own tenant.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// The session cookie's attributes: `Secure` when the page was served
/// over HTTPS (by a proxy in front, which says so).
fn cookie_attributes(headers: &HeaderMap, max_age: u64) -> String {
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p == "https");
    let secure = if https { "; Secure" } else { "" };
    format!("HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

async fn login(State(service): State<Arc<Service>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        let mut r = login_form(Some("Sign in from this server's own page."));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    match service.tenants.start_session(form.token.trim()).await {
        Ok(Some(session)) => {
            let cookie = format!("{SESSION_COOKIE}={session}; {}", cookie_attributes(&headers, SESSION_SECONDS));
            let mut r = Redirect::to("/ui/runs").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(None) => login_form(Some("That token is not valid (unknown, revoked, or its tenant is gone).")),
        Err(_) => login_form(Some("The token could not be checked; try again shortly.")),
    }
}

async fn logout(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if let Some(session) = super::auth::session_cookie(&headers)
        && let Err(e) = service.tenants.end_session(session).await
    {
        tracing::warn!(error = %e, "a UI session could not be ended in the store");
    }
    let mut r = Redirect::to("/ui/login").into_response();
    let cookie = format!("{SESSION_COOKIE}=; {}", cookie_attributes(&headers, 0));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn runs_page(State(service): State<Arc<Service>>, Viewer(caller): Viewer) -> Response {
    let workflows = service.own_keys(&caller, super::workflows::WORKFLOWS, 1000).await.unwrap_or_default();
    let usage = service.usage_of(&caller).await.ok();
    page(
        "Runs",
        Some(&caller),
        ("runs", ""),
        html! {
            h1 { "Runs" }
            @if let Some(u) = &usage { p class="usage" id="usage" { (u.summary()) } }
            section class="start" {
                h2 { "Start a run" }
                @if workflows.is_empty() {
                    p { "Register a workflow first (" code { "PUT /v1/workflows/{name}" } ")." }
                } @else {
                    form id="start-run" {
                        label { "Workflow "
                            select name="workflow" id="start-workflow" {
                                @for w in &workflows { option value=(w) { (w) } }
                            }
                        }
                        label { "Input (JSON) " textarea name="input" id="start-input" rows="3" cols="50" { "{}" } }
                        button type="submit" id="start-button" { "Start" }
                        span class="error" id="start-error" role="alert" {}
                    }
                }
            }
            form id="run-filters" class="filters" {
                label { "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for s in ["pending", "running", "paused", "completed", "failed", "cancelled", "timeout"] {
                            option value=(s) { (s) }
                        }
                    }
                }
                label { "Workflow " input name="workflow" size="20"; }
            }
            table class="runs" {
                thead { tr { th { "Run" } th { "Workflow" } th { "Status" } th { "Created" } th { "Updated" } } }
                tbody id="runs-body" { tr { td colspan="5" { "Loading…" } } }
            }
        },
    )
}

/// A loader check that takes any component (the page draws the graph only).
struct GraphOnly;

impl ComponentCheck for GraphOnly {
    fn check(&self, _path: &Path, _node_type: NodeType) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    fn resolve(&self, name: &str, _base: &Path) -> Result<PathBuf, String> {
        Ok(PathBuf::from(name))
    }

    fn may_nest_files(&self) -> Result<(), String> {
        Err("a graph drawn by the UI nests no files".into())
    }
}

/// The DAG of a workflow's text, as SVG; a note when it does not load.
fn dag_of(definition: &str) -> Markup {
    match load_str(definition, Path::new("/nonexistent"), "workflow", Some(&GraphOnly)) {
        Ok(wf) => {
            let graph = super::workflows::graph_of(&wf);
            let steps: Vec<(String, String, Vec<String>)> =
                graph.nodes.into_iter().map(|n| (n.id, n.node_type, n.depends_on)).collect();
            dag::layout(&steps).svg()
        }
        Err(e) => html! { p class="error" { "The workflow's graph cannot be drawn: " (e.to_string()) } },
    }
}

async fn run_page(
    State(service): State<Arc<Service>>,
    Viewer(caller): Viewer,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let record = match service.own_run(&caller, &id).await {
        Ok(r) => r,
        Err(p) => {
            let status = p.status();
            let mut r =
                page("Run", Some(&caller), ("missing", ""), html! { h1 { "Run" } p class="error" { (p.detail) } });
            *r.status_mut() = status;
            return r;
        }
    };
    page(
        "Run",
        Some(&caller),
        ("run", &id),
        html! {
            h1 { "Run " code { (id) } }
            p class="meta" {
                "Workflow " b { (record.run.workflow) } " · status "
                span id="run-status" class={ "status " (record.status.as_str()) } { (record.status.as_str()) }
                " · created " (record.created_at)
            }
            p class="actions" {
                button type="button" id="cancel-run" { "Cancel" }
                button type="button" id="resume-run" title="Let a worker take the run up again (a drained or orphaned run)" { "Resume" }
                span id="action-note" role="status" {}
            }
            section { h2 { "Steps" } div class="dag-wrap" { (dag_of(&record.run.definition)) } }
            section id="gates" {}
            section { h2 { "Attempts" }
                table class="attempts" {
                    thead { tr { th { "Step" } th { "Attempt" } th { "Outcome" } th { "Fuel" } th { "Time (ms)" } th { "Peak memory (KiB)" } } }
                    tbody id="attempts-body" {}
                }
            }
            section { h2 { "Logs" } pre id="logs" class="logs" {} }
            section { h2 { "Output" } pre id="output" class="output" { "(not finished)" } }
        },
    )
}

async fn dlq_page(Viewer(caller): Viewer) -> Response {
    page(
        "Dead letters",
        Some(&caller),
        ("dlq", ""),
        html! {
            h1 { "Dead-letter queue" }
            table class="dlq" {
                thead { tr { th { "Run" } th { "Workflow" } th { "Step" } th { "Kind" } th { "Message" } th { "At" } } }
                tbody id="dlq-body" { tr { td colspan="6" { "Loading…" } } }
            }
        },
    )
}

async fn workflows_page(State(service): State<Arc<Service>>, Viewer(caller): Viewer) -> Response {
    let names = service.own_keys(&caller, super::workflows::WORKFLOWS, 1000).await.unwrap_or_default();
    let mut drawn = Vec::new();
    for name in names {
        if let Ok(w) = service.registered(&caller, &name).await {
            drawn.push((name, w.workflow_name, dag_of(&w.definition)));
        }
    }
    page(
        "Workflows",
        Some(&caller),
        ("workflows", ""),
        html! {
            h1 { "Workflows" }
            @if drawn.is_empty() { p { "No workflow is registered yet (" code { "PUT /v1/workflows/{name}" } ")." } }
            @for (name, own, svg) in &drawn {
                section class="workflow" {
                    h2 { (name) " " small { "(" (own) ")" } }
                    div class="dag-wrap" { (svg) }
                }
            }
        },
    )
}
