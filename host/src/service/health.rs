//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`:
//! its store answers too), for a load balancer or an orchestrator's probes.

use super::Service;
use super::problem::Problem;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A probe's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The store's kind (`sqlite`, `postgres`, `memory`), on `/readyz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Runs running in the store, on `/readyz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_runs: Option<u64>,
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into(), store: None, active_runs: None })
}

/// The process and its store answer.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "The store does not answer", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn readyz(State(service): State<Arc<Service>>) -> Result<Json<Health>, Problem> {
    let info = service.engine.store().info().await?;
    Ok(Json(Health { status: "ok".into(), store: Some(info.kind), active_runs: Some(info.active_runs) }))
}
