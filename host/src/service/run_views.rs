//! Reading runs over the API: the tenant's runs newest first in keyset
//! pages, one run (its output contract, each step's state and attempts),
//! its journal, and its logs.

use super::Service;
use super::extract::{ApiPath, ApiQuery};
use super::problem::Problem;
use super::tenants::{Caller, Scope};
use crate::contract::ExecutionStatus;
use crate::store::{JournalEntry, RunFilter, RunView};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Which runs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only runs with this status.
    #[param(pattern = "^(pending|running|paused|completed|failed|cancelled|timeout)$")]
    pub status: Option<String>,
    /// Only runs of this workflow (its name).
    pub workflow: Option<String>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    pub cursor: Option<String>,
}

/// A line of a run listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunLine {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Its status.
    pub status: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunLine>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One log line of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunLogLine {
    /// The step.
    pub step_id: String,
    /// The attempt.
    pub attempt: u32,
    /// The shard of a `for_each` node, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    #[schema(value_type = String)]
    pub level: Value,
    /// The text.
    pub message: String,
}

/// Lists the tenant's runs, newest first (keyset pages).
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn list(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RunPage>, Problem> {
    caller.require(Scope::RunsRead)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| {
            Problem::bad_request(format!(
                "`status` is `{s}`; use pending, running, paused, completed, failed, cancelled or timeout"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_request(format!("`limit` is {limit}; give 1 to 500")));
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            Problem::bad_request("`cursor` is not one this server gave; pass a page's `next_cursor` as it is")
        })?),
    };
    let filter =
        RunFilter { status, workflow: q.workflow, tenant: Some(caller.tenant.clone()), before, limit: limit + 1 };
    let mut rows = service.engine.store().list_runs(&filter).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(|r| r.seq.to_string()) } else { None };
    let runs = rows
        .into_iter()
        .map(|r| RunLine {
            run_id: r.run_id,
            workflow: r.workflow,
            status: r.status.as_str().into(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    Ok(Json(RunPage { runs, next_cursor }))
}

/// A run: its output contract, and per step its state and attempts.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = Object),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn show(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(Scope::RunsRead)?;
    let record = service.own_run(&caller, &id).await?;
    let journal = service.engine.store().journal(&id).await?;
    let view = RunView::build(record, &journal).map_err(|e| {
        tracing::error!(run_id = %id, error = %e, "a run's journal does not fold");
        Problem::unavailable("the run's journal could not be read; the operator's log has the cause")
    })?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

/// A run's journal, in order.
#[utoipa::path(get, path = "/v1/runs/{id}/journal", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Its entries, each with `seq`, `at` and `kind`", body = Vec<Object>),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn journal(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Value>>, Problem> {
    caller.require(Scope::RunsRead)?;
    service.own_run(&caller, &id).await?;
    let journal = service.engine.store().journal(&id).await?;
    Ok(Json(journal.iter().map(|j| serde_json::to_value(j).unwrap_or(Value::Null)).collect()))
}

/// What a run's attempts logged, in journal order.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Its log lines", body = Vec<RunLogLine>),
        (status = 404, description = "This tenant has no such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn logs(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<RunLogLine>>, Problem> {
    caller.require(Scope::RunsRead)?;
    service.own_run(&caller, &id).await?;
    let journal = service.engine.store().journal(&id).await?;
    let mut out = Vec::new();
    for j in &journal {
        let (step_id, attempt, shard, report) = match &j.entry {
            JournalEntry::AttemptFinished { step_id, attempt, report } => (step_id, *attempt, None, report),
            JournalEntry::ShardFinished { step_id, shard, attempt, report, .. } => {
                (step_id, *attempt, Some(*shard), report)
            }
            _ => continue,
        };
        out.extend(report.logs.iter().map(|l| RunLogLine {
            step_id: step_id.clone(),
            attempt,
            shard,
            level: serde_json::to_value(l.level).unwrap_or(Value::Null),
            message: l.message.clone(),
        }));
    }
    Ok(Json(out))
}
