//! The dead-letter queue over the API: the tenant's failed runs, and a
//! replay of one as a new run.

use super::Service;
use super::extract::ApiPath;
use super::problem::Problem;
use super::runs::{RunAccepted, accepted, start_problem};
use super::tenants::{Caller, Scope};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A run in the dead-letter queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DlqLine {
    /// The failed run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// The first step that failed.
    pub step_id: String,
    /// Its failure kind.
    pub error_type: String,
    /// Its message.
    pub message: String,
    /// When it went to the queue.
    pub at: String,
    /// The run that replayed it, once replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_as: Option<String>,
}

/// The tenant's runs in the dead-letter queue, oldest first.
#[utoipa::path(get, path = "/v1/dlq", tag = "runs",
    responses(
        (status = 200, description = "The queue", body = Vec<DlqLine>),
    ),
    security(("token" = [])))]
pub(super) async fn list(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<Vec<DlqLine>>, Problem> {
    caller.require(Scope::RunsRead)?;
    let mut out = Vec::new();
    for d in service.engine.store().dlq_list_of(&caller.tenant).await? {
        out.push(DlqLine {
            run_id: d.run_id,
            workflow: d.workflow,
            step_id: d.step_id,
            error_type: d.error_type,
            message: d.message,
            at: d.at,
            replayed_as: d.replayed_as,
        });
    }
    Ok(Json(out))
}

/// Replays a run of the dead-letter queue as a new run: the steps that
/// completed keep their outputs, the failed ones run again.
#[utoipa::path(post, path = "/v1/dlq/{id}/replay", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The failed run's id")),
    responses(
        (status = 201, description = "The new run", body = RunAccepted),
        (status = 404, description = "This tenant has no such run in the queue", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It was replayed already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "It cannot be replayed here (its workflow or components changed)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn replay(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    service.own_run(&caller, &id).await?;
    let listed = service.engine.store().dlq_list_of(&caller.tenant).await?;
    let Some(entry) = listed.into_iter().find(|d| d.run_id == id) else {
        return Err(Problem::not_found("run in the dead-letter queue"));
    };
    if let Some(new) = entry.replayed_as {
        return Err(Problem::conflict(format!("run {id} was replayed already, as run {new}")));
    }
    service.admit_run(&caller).await?;
    let mut handle = service.engine.replay(&id, Default::default()).await.map_err(start_problem)?;
    let run = RunAccepted { run_id: handle.run_id.clone(), status: "running".into(), created: true, output: None };
    // The replay goes on in this process (nobody reads its events); its
    // handle is not waited for.
    handle.events.close();
    drop(handle);
    Ok(accepted(true, run))
}
