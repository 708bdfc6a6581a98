//! Controlling runs over the API: cancel, resume, and an approval gate's
//! decision.

use super::Service;
use super::extract::{ApiJson, ApiPath};
use super::problem::Problem;
use super::tenants::{Caller, Scope};
use crate::contract::ExecutionStatus;
use crate::engine::SignalError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// A signal for an approval gate.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    /// The signal's id: sending the same id again changes nothing.
    #[schema(min_length = 1, max_length = 255)]
    pub signal_id: String,
    /// The decision, which becomes the gate's output (e.g. `{"approved": true}`).
    #[schema(value_type = Object)]
    pub data: Value,
}

/// What a signal did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignalAnswer {
    /// False when the gate had this signal already.
    pub stored: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelAnswer {
    /// The run.
    pub run_id: String,
    /// True when the cancel was asked for; false when the run had already ended.
    pub requested: bool,
    /// Its status now.
    pub status: String,
}

/// Asks a run to cancel (compensating if its strategy says so).
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 202, description = "Cancel requested", body = CancelAnswer),
        (status = 200, description = "The run had already ended", body = CancelAnswer),
        (status = 403, description = "The token lacks `runs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn cancel(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    service.own_run(&caller, &id).await?;
    let requested = service.engine.store().request_cancel(&id).await?;
    let status = service.engine.store().get_run(&id).await?.status.as_str().to_string();
    let code = if requested { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((code, Json(CancelAnswer { run_id: id, requested, status })).into_response())
}

/// Lets a worker take a run up again now: a drained run, or one whose
/// worker is gone (workers find such runs by themselves; this says whether
/// one will).
#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 202, description = "A worker will take it up", body = CancelAnswer),
        (status = 403, description = "The token lacks `runs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It has finished, or a worker drives it now", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn resume(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    let record = service.own_run(&caller, &id).await?;
    if !matches!(record.status, ExecutionStatus::Running | ExecutionStatus::Pending) {
        return Err(Problem::conflict(format!(
            "run {id} has finished ({}); a failed run in the dead-letter queue can be replayed as a new run",
            record.status.as_str()
        )));
    }
    if record.lease_live {
        return Err(Problem::conflict(format!("a worker drives run {id} now; there is nothing to resume")));
    }
    let status = record.status.as_str().to_string();
    Ok((StatusCode::ACCEPTED, Json(CancelAnswer { run_id: id, requested: true, status })).into_response())
}

/// Delivers an approval gate's decision.
#[utoipa::path(post, path = "/v1/runs/{id}/steps/{step}/signal", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id"), ("step" = String, Path, description = "The gate's step id", min_length = 1)),
    request_body = SignalBody,
    responses(
        (status = 200, description = "Delivered (or delivered before, with this id)", body = SignalAnswer),
        (status = 403, description = "The token lacks `runs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The gate has another decision, or the run has ended", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The step is not a waiting gate", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn signal(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath((id, step)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SignalBody>,
) -> Result<Json<SignalAnswer>, Problem> {
    caller.require(Scope::RunsWrite)?;
    service.own_run(&caller, &id).await?;
    if body.signal_id.is_empty() || body.signal_id.len() > 255 {
        return Err(Problem::bad_request("`signal_id` must be 1 to 255 characters"));
    }
    match service.engine.signal(&id, &step, &body.signal_id, body.data).await {
        Ok(s) => Ok(Json(SignalAnswer { stored: s.stored })),
        Err(e @ (SignalError::Finished { .. } | SignalError::Conflict { .. })) => Err(Problem::conflict(e.to_string())),
        Err(e @ SignalError::NotWaiting { .. }) => Err(Problem::invalid(e.to_string(), Vec::new())),
        Err(SignalError::Store(e)) => Err(e.into()),
    }
}
