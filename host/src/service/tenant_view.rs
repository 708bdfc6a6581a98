//! What a tenant may see of itself: `GET /v1/usage` (its quotas and what it
//! has used of each, as JSON) and `GET /v1/metrics` (its own metrics, in the
//! OpenMetrics text format). Both need only `runs:read`, and show nothing of
//! other tenants; the process-wide `/metrics` is the operator's.

use super::Service;
use super::problem::Problem;
use super::tenants::{Caller, Quotas, Scope};
use super::usage;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A tenant's quotas and what it has used of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantUsage {
    /// The tenant.
    pub tenant: String,
    /// Its quotas.
    pub quotas: Quotas,
    /// Its runs pending or running now (counted up to its quota, plus one).
    pub active_runs: u64,
    /// The fuel its attempts consumed this clock hour, on every worker (up
    /// to a second behind).
    pub fuel_this_hour: u64,
    /// The bytes of components and workflows it keeps (a deleted component
    /// stays charged: the store keeps it for the runs that pinned it).
    pub stored_bytes: u64,
}

impl TenantUsage {
    /// One line for people: each usage beside its quota.
    pub(super) fn summary(&self) -> String {
        let of = |used: u64, limit: Option<u64>| match limit {
            Some(l) => format!("{used} of {l}"),
            None => format!("{used} (no limit)"),
        };
        let q = &self.quotas;
        format!(
            "Runs pending or running: {}. Fuel this hour: {}. Bytes stored: {}.",
            of(self.active_runs, Some(q.max_concurrent_runs.into())),
            of(self.fuel_this_hour, q.max_fuel_per_hour),
            of(self.stored_bytes, q.max_stored_bytes)
        )
    }
}

impl Service {
    /// The caller's tenant's usage, read from the store now.
    pub(super) async fn usage_of(&self, caller: &Caller) -> Result<TenantUsage, Problem> {
        let quotas = self.quotas_of(caller).await?;
        let store = self.engine.store();
        let active_runs = self.active_runs(&caller.tenant, quotas.max_concurrent_runs as usize).await? as u64;
        Ok(TenantUsage {
            tenant: caller.tenant.clone(),
            fuel_this_hour: usage::fuel_this_hour(store.as_ref(), &caller.tenant).await?,
            stored_bytes: self.stored_bytes(caller).await?,
            active_runs,
            quotas,
        })
    }
}

/// The tenant's quotas and usage.
#[utoipa::path(get, path = "/v1/usage", tag = "operations",
    responses((status = 200, description = "Its quotas and usage", body = TenantUsage)),
    security(("token" = [])))]
pub(super) async fn show(State(service): State<Arc<Service>>, caller: Caller) -> Result<Json<TenantUsage>, Problem> {
    caller.require(Scope::RunsRead)?;
    service.usage_of(&caller).await.map(Json)
}

/// The tenant's own metrics: the ONEX orchestrator contract's five and the
/// attempts' metrics for its runs driven by this server process, its quota
/// rejections here, and `weft_tenant_*` gauges of its usage and quotas (from
/// the store, so every server answers them alike).
#[utoipa::path(get, path = "/v1/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)),
    security(("token" = [])))]
pub(super) async fn metrics(State(service): State<Arc<Service>>, caller: Caller) -> Result<Response, Problem> {
    caller.require(Scope::RunsRead)?;
    let u = service.usage_of(&caller).await?;
    let q = &u.quotas;
    let mut gauges = vec![
        ("weft_tenant_active_runs", "Runs of the tenant pending or running", u.active_runs),
        ("weft_tenant_fuel_this_hour", "Fuel the tenant's attempts consumed this clock hour", u.fuel_this_hour),
        ("weft_tenant_stored_bytes", "Bytes of components and workflows the tenant keeps", u.stored_bytes),
        (
            "weft_tenant_quota_max_concurrent_runs",
            "Quota: runs pending or running at once",
            q.max_concurrent_runs.into(),
        ),
        ("weft_tenant_quota_submissions_per_minute", "Quota: submissions per minute", q.submissions_per_minute.into()),
    ];
    // A quota without a limit has no gauge.
    if let Some(max) = q.max_fuel_per_hour {
        gauges.push(("weft_tenant_quota_max_fuel_per_hour", "Quota: fuel per clock hour", max));
    }
    if let Some(max) = q.max_stored_bytes {
        gauges.push(("weft_tenant_quota_max_stored_bytes", "Quota: bytes kept", max));
    }
    let text = service.metrics.encode_tenant(&caller.tenant, &gauges);
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
