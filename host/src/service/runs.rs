//! Runs over the API.
//!
//! Submission is idempotent, as Obelisk's: `PUT /v1/runs/{id}` answers 201
//! for a new run, 200 for the same body again, 409 for another body under
//! that id. `POST /v1/runs` makes the id: from `Idempotency-Key` (the same
//! key and body again answer 200 with the same run; the key with another
//! body 422), or fresh. A digest of the request is journaled with the run,
//! so that every server process answers a retry alike. `?wait=SECONDS`
//! holds the answer until the run ends (or the wait does).
//!
//! The run's tenant comes from the token, never from the body; its id is
//! its `workflow_id`; a body names a registered `workflow`, or carries the
//! `definition` inline, or the input's `steps` are the workflow.

use super::Service;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::problem::{Problem, ProblemItem};
use super::tenants::{Caller, Scope};
use super::workflows::problem_items;
use crate::contract::ExecutionStatus;
use crate::engine::{Environment, RunInput, RunOptions, SignalError, StartError, workflow_from_steps};
use crate::store::{JournalEntry, RunFilter, RunView, StoreError};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A run to submit.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRun {
    /// The name of a workflow registered with `PUT /v1/workflows/{name}`.
    #[serde(default)]
    pub workflow: Option<String>,
    /// The workflow's YAML, inline (instead of `workflow`).
    #[serde(default)]
    pub definition: Option<String>,
    /// The run input: the ONEX orchestrator contract's input subcontract.
    /// Its `workflow_id` is the run's id; `metadata.tenant` is set from the token.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    /// The environment profile for defaults: `development`, `staging` or `production`.
    #[serde(default)]
    pub environment: Option<String>,
}

/// The answer to a submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunAccepted {
    /// The run's id.
    pub run_id: String,
    /// Its status now.
    pub status: String,
    /// Whether this request made it (false: it existed already).
    pub created: bool,
    /// Its output contract, when it has finished (see `?wait=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
}

/// `?wait=`: how long to hold the answer for the run's end.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait for the run to end (at most 60; 0: answer at once).
    #[serde(default)]
    pub wait: Option<u64>,
}

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

/// The stable digest of a submission (keys sorted), journaled with its run.
fn request_digest(body: &SubmitRun) -> String {
    let canonical = serde_json::to_vec(&serde_json::to_value(body).unwrap_or(Value::Null)).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(canonical)))
}

/// The id `Idempotency-Key` names for a tenant: the same key of two
/// tenants names two runs, and without the service's secret no tenant can
/// compute another's.
fn id_of_key(secret: &[u8], tenant: &str, key: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x5f0e_2a61_7c1d_4e3b_9a8f_0b6c_d2e4_f901);
    let mut h = Sha256::new();
    h.update(secret);
    h.update(format!("{}:{tenant}/{key}", tenant.len()).as_bytes());
    Uuid::new_v5(&NAMESPACE, &h.finalize())
}

/// How a request that names an existing run is answered.
enum Existing {
    /// The same request made it: answer with it.
    Same(RunAccepted),
    /// Another request made it.
    Other,
}

impl Service {
    /// Submits `body` as the caller's run `id`.
    async fn submit(
        &self,
        caller: &Caller,
        id: Uuid,
        body: SubmitRun,
        wait: Option<u64>,
    ) -> Result<(bool, RunAccepted), Problem> {
        let digest = request_digest(&body);
        if let Some(existing) = self.existing(caller, id, &digest).await? {
            return match existing {
                Existing::Same(run) => Ok((false, self.waited(caller, run, wait).await?)),
                Existing::Other => Err(Problem::conflict(format!(
                    "a run with the id {id} exists already, made by another request; choose another id (or another \
                     Idempotency-Key)"
                ))),
            };
        }
        let mut input: RunInput = match body.input.clone() {
            None => RunInput::default(),
            Some(v) => serde_json::from_value(v)
                .map_err(|e| Problem::invalid(format!("`input` breaks the input subcontract: {e}"), Vec::new()))?,
        };
        if let Some(given) = input.workflow_id
            && given != id
        {
            return Err(Problem::invalid(
                format!("`input.workflow_id` is {given}, but the run's id is {id}; leave it out, or make them agree"),
                Vec::new(),
            ));
        }
        if input.metadata.get("tenant").is_some_and(|t| t.as_str() != Some(caller.tenant.as_str())) {
            return Err(Problem::invalid("`input.metadata.tenant` is set from the token; leave it out", vec![]));
        }
        input.workflow_id = Some(id);
        input.metadata.insert("tenant".into(), Value::String(caller.tenant.clone()));
        let environment = match body.environment.as_deref() {
            None => Environment::default(),
            Some(e) => Environment::parse(e).ok_or_else(|| {
                Problem::invalid(format!("`environment` is `{e}`; use development, staging or production"), Vec::new())
            })?,
        };
        let text = self.definition_for(caller, &body, &input).await?;
        let wf = self.load_workflow(caller, &text).await.map_err(|e| {
            Problem::invalid("the workflow does not validate; fix each problem listed", problem_items(&e))
        })?;
        // Only a submission that would make a run counts against the quotas.
        let quotas = self.admit_run(caller).await?;
        let opts = RunOptions {
            environment,
            request_digest: Some(digest.clone()),
            ceiling: quotas.ceiling(),
            ..RunOptions::default()
        };
        match self.engine.submit(Arc::new(wf), &input, opts).await {
            Ok(run_id) => {
                let run = RunAccepted { run_id, status: "pending".into(), created: true, output: None };
                Ok((true, self.waited(caller, run, wait).await?))
            }
            // Another request made it in the meantime.
            Err(StartError::Store(StoreError::Duplicate(_))) => match self.existing(caller, id, &digest).await? {
                Some(Existing::Same(run)) => Ok((false, self.waited(caller, run, wait).await?)),
                _ => Err(Problem::conflict(format!("a run with the id {id} exists already; choose another id"))),
            },
            Err(e) => Err(start_problem(e)),
        }
    }

    /// How an existing run `id` answers a request with `digest`; None when there is no run `id`.
    async fn existing(&self, caller: &Caller, id: Uuid, digest: &str) -> Result<Option<Existing>, Problem> {
        let record = match self.engine.store().get_run(&id.to_string()).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let same = record.run.tenant() == caller.tenant
            && record.run.options.get("request_digest").and_then(Value::as_str) == Some(digest);
        if !same {
            return Ok(Some(Existing::Other));
        }
        Ok(Some(Existing::Same(RunAccepted {
            run_id: record.run.run_id.clone(),
            status: record.status.as_str().into(),
            created: false,
            output: record.output.as_ref().and_then(|o| serde_json::to_value(o.as_ref()).ok()),
        })))
    }

    /// The workflow text a submission names.
    async fn definition_for(&self, caller: &Caller, body: &SubmitRun, input: &RunInput) -> Result<String, Problem> {
        match (&body.workflow, &body.definition, &input.steps) {
            (Some(_), Some(_), _) => {
                Err(Problem::invalid("give `workflow` (a registered name) or `definition`, not both", Vec::new()))
            }
            (Some(name), None, _) => Ok(self.registered(caller, name).await?.definition),
            (None, Some(text), _) => Ok(text.clone()),
            (None, None, Some(steps)) => {
                let name = input.workflow_type.clone().unwrap_or_else(|| "input".into());
                workflow_from_steps(steps, &name, input.execution_mode.as_deref(), input.workflow_type.as_deref())
                    .map_err(|problems| {
                        let items = problems
                            .into_iter()
                            .map(|message| ProblemItem { line: 0, column: 0, node_id: None, message })
                            .collect();
                        Problem::invalid("the input's `steps` do not make a workflow", items)
                    })
            }
            (None, None, None) => Err(Problem::invalid(
                "name the workflow: `workflow` (registered with PUT /v1/workflows/{name}), `definition` (its YAML), \
                 or the input's `steps`",
                Vec::new(),
            )),
        }
    }

    /// `run`, after waiting up to `wait` seconds for it to end.
    async fn waited(&self, caller: &Caller, run: RunAccepted, wait: Option<u64>) -> Result<RunAccepted, Problem> {
        let Some(secs) = wait.filter(|s| *s > 0) else { return Ok(run) };
        if run.output.is_some() {
            return Ok(run);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs).min(self.limits.max_wait);
        let mut pause = Duration::from_millis(5);
        loop {
            let record = self.own_run(caller, &run.run_id).await?;
            if let Some(out) = &record.output {
                return Ok(RunAccepted {
                    status: record.status.as_str().into(),
                    output: serde_json::to_value(out.as_ref()).ok(),
                    ..run
                });
            }
            if tokio::time::Instant::now() + pause > deadline || self.engine.is_draining() {
                return Ok(RunAccepted { status: record.status.as_str().into(), ..run });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

/// The answer for a run that could not be submitted.
fn start_problem(e: StartError) -> Problem {
    let items = |list: Vec<String>| {
        list.into_iter().map(|message| ProblemItem { line: 0, column: 0, node_id: None, message }).collect()
    };
    match e {
        StartError::Input(p) => Problem::invalid("the run input is not valid", items(p)),
        StartError::Capabilities(p) => Problem::invalid("the operator's policy refuses what nodes declare", items(p)),
        StartError::Components(p) => Problem::invalid("the workflow's components cannot be loaded", items(p)),
        StartError::Store(e) => e.into(),
        other => Problem::invalid(other.to_string(), Vec::new()),
    }
}

/// The answer for a submission: 201 (with `Location`) or 200.
fn accepted(created: bool, run: RunAccepted) -> Response {
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let location = HeaderValue::from_str(&format!("/v1/runs/{}", run.run_id)).ok();
    let mut response = (status, Json(run)).into_response();
    if let Some(l) = location {
        response.headers_mut().insert(header::LOCATION, l);
    }
    response
}

/// Submits a run under a chosen id (idempotent).
#[utoipa::path(put, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id: a UUID"), WaitQuery),
    request_body = SubmitRun,
    responses(
        (status = 201, description = "A new run", body = RunAccepted),
        (status = 200, description = "The same request again: the same run", body = RunAccepted),
        (status = 400, description = "The id is no UUID, or the body no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `runs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another request made a run with this id", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The workflow or input is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn put(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<SubmitRun>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| Problem::bad_request(format!("`{id}` is not a run id: a run's id is a UUID")))?;
    let (created, run) = service.submit(&caller, id, body, q.wait).await?;
    Ok(accepted(created, run))
}

/// Submits a run; `Idempotency-Key` makes a retry safe.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    params(WaitQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key and body again answer with the same run", pattern = "^[!-~]([ -~]{0,253}[!-~])?$")),
    request_body = SubmitRun,
    responses(
        (status = 201, description = "A new run", body = RunAccepted),
        (status = 200, description = "The same key and body again: the same run", body = RunAccepted),
        (status = 400, description = "The body is no JSON, or the key is empty", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `runs:write`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No workflow of this tenant is registered under `workflow`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The workflow or input is not valid, or the key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn post(
    State(service): State<Arc<Service>>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<SubmitRun>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str().map(str::trim) {
            Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
            _ => return Err(Problem::bad_request("`Idempotency-Key` must be 1 to 255 visible ASCII characters")),
        },
    };
    let id = match &key {
        Some(k) => {
            let secret = service.secret.get_or_try_init(|| service.tenants.service_secret()).await.map_err(|e| {
                tracing::error!(error = %e, "the service's secret could not be read");
                Problem::unavailable("the service's records could not be read; try again shortly")
            })?;
            id_of_key(secret, &caller.tenant, k)
        }
        None => Uuid::new_v4(),
    };
    match service.submit(&caller, id, body, q.wait).await {
        Ok((created, run)) => Ok(accepted(created, run)),
        Err(p) if key.is_some() && p.status() == StatusCode::CONFLICT => Err(Problem::invalid(
            "this Idempotency-Key was used with another body; use a new key for a new request",
            Vec::new(),
        )),
        Err(p) => Err(p),
    }
}

/// Lists the tenant's runs, newest first (keyset pages).
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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

/// Asks a run to cancel (compensating if its strategy says so).
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 202, description = "Cancel requested", body = CancelAnswer),
        (status = 200, description = "The run had already ended", body = CancelAnswer),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
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

/// The tenant's runs in the dead-letter queue, oldest first.
#[utoipa::path(get, path = "/v1/dlq", tag = "runs",
    responses(
        (status = 200, description = "The queue", body = Vec<DlqLine>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn dlq(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<Vec<DlqLine>>, Problem> {
    caller.require(Scope::RunsRead)?;
    let mut out = Vec::new();
    for d in service.engine.store().dlq_list().await? {
        if service.own_run(&caller, &d.run_id).await.is_ok() {
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
pub(super) async fn dlq_replay(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    service.own_run(&caller, &id).await?;
    let listed = service.engine.store().dlq_list().await?;
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
