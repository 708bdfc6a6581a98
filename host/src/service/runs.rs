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
use crate::engine::{Environment, RunInput, RunOptions, StartError, workflow_from_steps};
use crate::store::StoreError;
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
        traceparent: Option<String>,
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
        // The count and the submission take turns in this process, so that
        // concurrent submissions cannot all pass one last free slot.
        let turn = self.submit_turns.take(&caller.tenant).await;
        let quotas = self.admit_run(caller).await?;
        let opts = RunOptions {
            environment,
            request_digest: Some(digest.clone()),
            ceiling: quotas.ceiling(),
            traceparent,
            ..RunOptions::default()
        };
        let submitted = self.engine.submit(Arc::new(wf), &input, opts).await;
        drop(turn);
        match submitted {
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
        // Woken when this process ends the run; a run driven elsewhere is polled.
        let wake = self.wakers.watch(&run.run_id);
        let mut pause = Duration::from_millis(5);
        loop {
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
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
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

/// The W3C `traceparent` a request carries, when it is a valid one (an
/// invalid one is ignored, as the W3C recommendation says).
fn traceparent_of(headers: &HeaderMap) -> Option<String> {
    let tp = headers.get("traceparent")?.to_str().ok()?.trim();
    super::traces::valid_traceparent(tp).then(|| tp.to_string())
}

/// The answer for a run that could not be submitted.
pub(super) fn start_problem(e: StartError) -> Problem {
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
pub(super) fn accepted(created: bool, run: RunAccepted) -> Response {
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
    params(("id" = uuid::Uuid, Path, description = "The run's id: a UUID"), WaitQuery,
        ("traceparent" = Option<String>, Header, description = "A W3C trace context: the parent of the run's spans")),
    request_body = SubmitRun,
    responses(
        (status = 201, description = "A new run", body = RunAccepted),
        (status = 200, description = "The same request again: the same run", body = RunAccepted),
        (status = 400, description = "The id is no UUID, or the body no JSON", body = Problem, content_type = "application/problem+json"),
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
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitRun>,
) -> Result<Response, Problem> {
    caller.require(Scope::RunsWrite)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| Problem::bad_request(format!("`{id}` is not a run id: a run's id is a UUID")))?;
    let (created, run) = service.submit(&caller, id, body, q.wait, traceparent_of(&headers)).await?;
    Ok(accepted(created, run))
}

/// Submits a run; `Idempotency-Key` makes a retry safe.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    params(WaitQuery, ("Idempotency-Key" = Option<String>, Header, description = "The same key and body again answer with the same run", pattern = "^[!-~]([ -~]{0,253}[!-~])?$"),
        ("traceparent" = Option<String>, Header, description = "A W3C trace context: the parent of the run's spans")),
    request_body = SubmitRun,
    responses(
        (status = 201, description = "A new run", body = RunAccepted),
        (status = 200, description = "The same key and body again: the same run", body = RunAccepted),
        (status = 400, description = "The body is no JSON, or the key is empty", body = Problem, content_type = "application/problem+json"),
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
    match service.submit(&caller, id, body, q.wait, traceparent_of(&headers)).await {
        Ok((created, run)) => Ok(accepted(created, run)),
        Err(p) if key.is_some() && p.status() == StatusCode::CONFLICT => Err(Problem::invalid(
            "this Idempotency-Key was used with another body; use a new key for a new request",
            Vec::new(),
        )),
        Err(p) => Err(p),
    }
}
