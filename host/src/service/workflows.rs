//! Workflows over the API: validate one (every problem, with line and
//! column), register one under a name (validated against the tenant's
//! components and the operator's policy), read it back, and its graph.
//!
//! A body is the workflow's YAML itself (any content type but JSON), or
//! JSON `{"definition": "<yaml>"}`.

use super::Service;
use super::components::TenantComponents;
use super::extract::{ApiBytes, ApiPath};
use super::problem::{Problem, ProblemItem};
use super::tenants::{Caller, Scope};
use crate::workflow::{GraphFormat, ValidationError, Workflow, load_str, render_graph};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;

/// The records of a tenant's workflows.
pub(super) const WORKFLOWS: &str = "workflows";
/// The most workflows a listing shows.
const MAX_WORKFLOWS: usize = 10_000;

/// A workflow body as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowBody {
    /// The workflow's YAML.
    pub definition: String,
}

/// A registered workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisteredWorkflow {
    /// The name it is registered under (runs name it as `workflow`).
    pub name: String,
    /// The workflow's own `name`.
    pub workflow_name: String,
    /// Its YAML.
    pub definition: String,
    /// How many nodes it has.
    pub nodes: usize,
    /// When it was last registered (RFC 3339).
    pub registered_at: String,
}

/// What validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    /// Whether the workflow is valid (and may run here).
    pub valid: bool,
    /// Every problem, in file order.
    pub problems: Vec<ProblemItem>,
    /// The workflow's name, when it is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// How many nodes it has, when it is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
}

/// One node of a workflow's graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    /// The node's id.
    pub id: String,
    /// Its node type (`COMPUTE`, `EFFECT`, ...).
    pub node_type: String,
    /// The nodes it depends on.
    pub depends_on: Vec<String>,
}

/// A workflow's graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowGraph {
    /// The nodes, in topological order.
    pub nodes: Vec<GraphNode>,
    /// The graph as a Mermaid flowchart.
    pub mermaid: String,
}

/// A page of registered workflows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowList {
    /// Their names, in byte order.
    pub names: Vec<String>,
}

/// Each problem of a failed load, with its place.
pub(super) fn problem_items(err: &ValidationError) -> Vec<ProblemItem> {
    err.problems
        .iter()
        .map(|p| ProblemItem {
            line: p.pos.line.min(u32::MAX as u64) as u32,
            column: p.pos.column.min(u32::MAX as u64) as u32,
            node_id: p.node_id.clone(),
            message: p.message.clone(),
        })
        .collect()
}

/// The YAML of a workflow body: the body itself, or its JSON `definition`.
fn definition_of(headers: &HeaderMap, body: &[u8]) -> Result<String, Problem> {
    if body.is_empty() {
        return Err(Problem::bad_request("the body is empty: send the workflow's YAML"));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if json {
        let body: WorkflowBody = serde_json::from_slice(body)
            .map_err(|e| Problem::bad_request(format!("the body is not `{{\"definition\": \"<yaml>\"}}`: {e}")))?;
        return Ok(body.definition);
    }
    String::from_utf8(body.to_vec()).map_err(|_| Problem::bad_request("the workflow is not UTF-8 text"))
}

/// Whether `name` may name a registered workflow.
fn valid_workflow_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Service {
    /// Loads `text` as the caller's workflow: components among the
    /// tenant's, no sub-workflow files, capabilities within the policy.
    pub(super) async fn load_workflow(&self, caller: &Caller, text: &str) -> Result<Workflow, ValidationError> {
        let mut components = match self.tenant_components(caller).await {
            Ok(c) => c,
            Err(p) => return Err(one_problem(p.detail)),
        };
        let base = components.base().to_path_buf();
        let mut loaded = self.load_with(text, &base, &components);
        if loaded.is_err() {
            match self.fetch_missing(&mut components).await {
                Ok(true) => loaded = self.load_with(text, &base, &components),
                Ok(false) => {}
                Err(p) => return Err(one_problem(p.detail)),
            }
        }
        let wf = loaded?;
        let refused = crate::engine::check_capabilities(&wf, self.engine.policy_for(&caller.tenant));
        if !refused.is_empty() {
            return Err(ValidationError {
                problems: refused
                    .into_iter()
                    .map(|message| crate::workflow::Problem {
                        file: "workflow".into(),
                        pos: Default::default(),
                        node_id: None,
                        message: format!("the operator's policy refuses this: {message}"),
                    })
                    .collect(),
            });
        }
        Ok(wf)
    }

    fn load_with(
        &self,
        text: &str,
        base: &Path,
        components: &TenantComponents<'_>,
    ) -> Result<Workflow, ValidationError> {
        load_str(text, base, "workflow", Some(components))
    }

    /// The directory the caller's relative `host:` directories resolve in:
    /// `<tenant root>/<tenant>` (made when missing), or none.
    pub(super) fn tenant_dir(&self, caller: &Caller) -> Option<PathBuf> {
        let dir = self.limits.tenant_root.as_ref()?.join(&caller.tenant);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "a tenant's directory could not be made");
        }
        Some(dir)
    }

    /// The caller's workflow registered as `name`; 404 when there is none.
    pub(super) async fn registered(&self, caller: &Caller, name: &str) -> Result<RegisteredWorkflow, Problem> {
        let found: Option<RegisteredWorkflow> = self.own_record(caller, WORKFLOWS, name).await?;
        found.ok_or_else(|| Problem::not_found("workflow"))
    }
}

fn one_problem(message: String) -> ValidationError {
    ValidationError {
        problems: vec![crate::workflow::Problem {
            file: "workflow".into(),
            pos: Default::default(),
            node_id: None,
            message,
        }],
    }
}

/// Validates a workflow: every problem, with line and column.
#[utoipa::path(post, path = "/v1/workflows:validate", tag = "workflows",
    request_body(content = String, content_type = "application/yaml", description = "The workflow's YAML, or JSON `{\"definition\": …}`"),
    responses(
        (status = 200, description = "What validation found", body = Validation),
        (status = 400, description = "The body is not text", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn validate(
    State(service): State<Arc<Service>>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Validation>, Problem> {
    // Validation compiles components: only a token that may submit or register may ask.
    if !caller.may(Scope::WorkflowsWrite) {
        caller.require(Scope::RunsWrite)?;
    }
    let text = definition_of(&headers, &body)?;
    Ok(Json(match service.load_workflow(&caller, &text).await {
        Ok(wf) => Validation {
            valid: true,
            problems: vec![],
            workflow_name: Some(wf.name.clone()),
            nodes: Some(wf.nodes.len()),
        },
        Err(e) => Validation { valid: false, problems: problem_items(&e), workflow_name: None, nodes: None },
    }))
}

/// Registers a workflow under a name (validated first).
#[utoipa::path(put, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "1 to 128 letters, digits, `-`, `_` or `.`", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    request_body(content = String, content_type = "application/yaml", description = "The workflow's YAML, or JSON `{\"definition\": …}`"),
    responses(
        (status = 201, description = "Registered", body = RegisteredWorkflow),
        (status = 200, description = "Registered again (replaced)", body = RegisteredWorkflow),
        (status = 400, description = "A bad name or body", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `workflows:write`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The workflow does not validate", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn register(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, Problem> {
    caller.require(Scope::WorkflowsWrite)?;
    if !valid_workflow_name(&name) {
        return Err(Problem::bad_request(format!(
            "`{name}` cannot name a workflow: use 1 to 128 letters, digits, `-`, `_` or `.`"
        )));
    }
    let text = definition_of(&headers, &body)?;
    let wf = service
        .load_workflow(&caller, &text)
        .await
        .map_err(|e| Problem::invalid("the workflow does not validate; fix each problem listed", problem_items(&e)))?;
    let _turn = service.write_turn(&caller).await;
    let existed: Option<RegisteredWorkflow> = service.own_record(&caller, WORKFLOWS, &name).await?;
    let record = RegisteredWorkflow {
        name: name.clone(),
        workflow_name: wf.name.clone(),
        definition: text,
        nodes: wf.nodes.len(),
        registered_at: crate::store::now_rfc3339(),
    };
    let (size, before) = (record.definition.len() as u64, existed.as_ref().map_or(0, |w| w.definition.len() as u64));
    service.charge_stored(&caller, size.saturating_sub(before), size, "the workflow").await?;
    if let Err(p) = service.put_own_record(&caller, WORKFLOWS, &name, &record).await {
        service.give_back_stored(&caller, size.saturating_sub(before)).await?;
        return Err(p);
    }
    // A smaller replacement gives the difference back.
    service.give_back_stored(&caller, before.saturating_sub(size)).await?;
    let status = if existed.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(record)).into_response())
}

/// Deletes a registered workflow (runs of it keep their own copy).
#[utoipa::path(delete, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "The name it is registered under", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The token lacks `workflows:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such workflow", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn delete(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    caller.require(Scope::WorkflowsWrite)?;
    let _turn = service.write_turn(&caller).await;
    let wf = service.registered(&caller, &name).await?;
    if service.delete_own_record(&caller, WORKFLOWS, &name).await? {
        service.give_back_stored(&caller, wf.definition.len() as u64).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A registered workflow.
#[utoipa::path(get, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "The name it is registered under", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "The workflow", body = RegisteredWorkflow),
        (status = 404, description = "This tenant has no such workflow", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn show(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RegisteredWorkflow>, Problem> {
    caller.require(Scope::RunsRead)?;
    service.registered(&caller, &name).await.map(Json)
}

/// The tenant's registered workflows.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    responses(
        (status = 200, description = "Their names", body = WorkflowList),
    ),
    security(("token" = [])))]
pub(super) async fn list(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<WorkflowList>, Problem> {
    caller.require(Scope::RunsRead)?;
    Ok(Json(WorkflowList { names: service.own_keys(&caller, WORKFLOWS, MAX_WORKFLOWS).await? }))
}

/// A registered workflow's graph.
#[utoipa::path(get, path = "/v1/workflows/{name}/graph", tag = "workflows",
    params(("name" = String, Path, description = "The name it is registered under", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Its nodes and dependencies", body = WorkflowGraph),
        (status = 404, description = "This tenant has no such workflow", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "It no longer validates", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn graph(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<WorkflowGraph>, Problem> {
    caller.require(Scope::RunsRead)?;
    let registered = service.registered(&caller, &name).await?;
    let wf = service
        .load_workflow(&caller, &registered.definition)
        .await
        .map_err(|e| Problem::invalid("the registered workflow no longer validates here", problem_items(&e)))?;
    Ok(Json(graph_of(&wf)))
}

/// The graph of `wf`.
pub(super) fn graph_of(wf: &Workflow) -> WorkflowGraph {
    let nodes = wf
        .graph
        .topo_order
        .iter()
        .map(|&i| {
            let n = &wf.nodes[i];
            let depends_on = wf.graph.dependencies[i].iter().map(|&d| wf.nodes[d].id.clone()).collect();
            GraphNode { id: n.id.clone(), node_type: n.type_name.to_string(), depends_on }
        })
        .collect();
    WorkflowGraph { nodes, mermaid: render_graph(wf, GraphFormat::Mermaid) }
}
