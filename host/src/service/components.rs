//! Components over the API: `PUT /v1/components/sha256:<hex>` takes an
//! upload whose bytes must hash to the digest in the path and be a
//! component that fits a step world; it is kept once (in the store, for
//! every worker) and made visible to the uploading tenant. Another
//! tenant's upload of the same bytes is visible to that tenant only, and
//! both answer alike, so an upload reveals nothing about other tenants.
//!
//! A workflow that came over the API names its components by digest
//! (`component: sha256:<hex>`), and only among its tenant's uploads:
//! [`TenantComponents`] is the loader's [`ComponentCheck`] that says so.

use super::Service;
use super::extract::{ApiBytes, ApiPath};
use super::problem::{Problem, ProblemItem};
use super::stored::DELETED_COMPONENTS;
use super::tenants::{Caller, Scope};
use crate::engine::SandboxExecutor;
use crate::workflow::{ComponentCheck, HostDirs, NodeType};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;

/// The records of a tenant's components.
pub(super) const COMPONENTS: &str = "components";
/// The most components one tenant may have visible.
const MAX_COMPONENTS: usize = 10_000;

/// An uploaded component, as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComponentInfo {
    /// Its `sha256:` digest.
    pub digest: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The step world it fits: `compute` or `effect`.
    pub world: String,
    /// When this tenant uploaded it (RFC 3339).
    pub uploaded_at: String,
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits.
pub(super) fn well_formed(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn bad_digest(digest: &str) -> Problem {
    Problem::bad_request(format!(
        "`{digest}` is not a component digest: write `sha256:` and the 64 lowercase hex digits of the file's SHA-256 \
         (`sha256sum FILE`)"
    ))
}

/// Uploads a component by digest.
#[utoipa::path(put, path = "/v1/components/{digest}", tag = "components",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits", pattern = "^sha256:[0-9a-f]{64}$")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The component's bytes (any content type, `application/wasm` too)"),
    responses(
        (status = 201, description = "Uploaded: new for this tenant", body = ComponentInfo),
        (status = 200, description = "This tenant had it already", body = ComponentInfo),
        (status = 400, description = "Not a digest", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `components:write`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The bytes do not hash to the digest, or are no step component", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn upload(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(digest): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Response, Problem> {
    caller.require(Scope::ComponentsWrite)?;
    if !well_formed(&digest) {
        return Err(bad_digest(&digest));
    }
    // Hashing up to 64 MiB is kept off the runtime's threads.
    let hashed = body.clone();
    let actual = tokio::task::spawn_blocking(move || crate::sandbox::digest(&hashed))
        .await
        .map_err(|_| Problem::unavailable("the upload could not be hashed; try again"))?;
    if actual != digest {
        return Err(Problem::invalid(
            format!("the body hashes to {actual}, not to the digest in the path; upload the file the digest names"),
            Vec::new(),
        ));
    }
    // The same upload again answers at once, without checking it again.
    let existing: Option<ComponentInfo> = service.own_record(&caller, COMPONENTS, &digest).await?;
    if let Some(info) = existing {
        return Ok((StatusCode::OK, Json(info)).into_response());
    }
    let sandbox = service.sandbox.clone();
    let checked = body.clone();
    let inspection = tokio::task::spawn_blocking(move || sandbox.inspect(&checked))
        .await
        .map_err(|_| Problem::unavailable("the component check stopped; try again"))?;
    if inspection.world == "neither" {
        let mut reasons: Vec<String> = inspection.error.into_iter().collect();
        if reasons.is_empty() {
            reasons.extend(inspection.compute.problems.iter().map(|p| format!("as a compute step: {p}")));
            reasons.extend(inspection.effect.problems.iter().map(|p| format!("as an effect step: {p}")));
        }
        let items = reasons.into_iter().map(|message| ProblemItem { line: 0, column: 0, node_id: None, message });
        return Err(Problem::invalid(
            "the upload is not a component that fits a step world (build it with `weft plugin build`)",
            items.collect(),
        ));
    }
    let bytes = body.to_vec();
    let size_bytes = bytes.len() as u64;
    let info = ComponentInfo {
        digest: digest.clone(),
        size_bytes,
        world: inspection.world.to_string(),
        uploaded_at: crate::store::now_rfc3339(),
    };
    let _turn = service.write_turn(&caller).await;
    let existing: Option<ComponentInfo> = service.own_record(&caller, COMPONENTS, &digest).await?;
    if let Some(info) = existing {
        return Ok((StatusCode::OK, Json(info)).into_response());
    }
    // A component deleted before is still charged: no second charge.
    let tombstone: Option<ComponentInfo> = service.own_record(&caller, DELETED_COMPONENTS, &digest).await?;
    let charged = if tombstone.is_some() { 0 } else { size_bytes };
    service.charge_stored(&caller, charged, size_bytes, "the component").await?;
    let stored = async {
        service.engine.put_component(bytes).await?;
        service.put_own_record(&caller, COMPONENTS, &digest, &info).await?;
        service.delete_own_record(&caller, DELETED_COMPONENTS, &digest).await
    };
    if let Err(p) = stored.await {
        service.give_back_stored(&caller, charged).await?;
        return Err(p);
    }
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Deletes the tenant's upload under a digest: its new workflows may no
/// longer name it. Runs already submitted keep it (their workers fetch it
/// by digest), so its bytes stay charged to `max_stored_bytes`; uploading it
/// again is free.
#[utoipa::path(delete, path = "/v1/components/{digest}", tag = "components",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits", pattern = "^sha256:[0-9a-f]{64}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a digest", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `components:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such component", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn delete(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(digest): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    caller.require(Scope::ComponentsWrite)?;
    if !well_formed(&digest) {
        return Err(bad_digest(&digest));
    }
    let _turn = service.write_turn(&caller).await;
    let info: Option<ComponentInfo> = service.own_record(&caller, COMPONENTS, &digest).await?;
    let Some(info) = info else { return Err(Problem::not_found("component")) };
    service.put_own_record(&caller, DELETED_COMPONENTS, &digest, &info).await?;
    service.delete_own_record(&caller, COMPONENTS, &digest).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the tenant uploaded under a digest.
#[utoipa::path(get, path = "/v1/components/{digest}", tag = "components",
    params(("digest" = String, Path, description = "`sha256:` and 64 lowercase hex digits", pattern = "^sha256:[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The component", body = ComponentInfo),
        (status = 400, description = "Not a digest", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This tenant has no such component", body = Problem, content_type = "application/problem+json"),
    ),
    security(("token" = [])))]
pub(super) async fn show(
    State(service): State<Arc<Service>>,
    caller: Caller,
    ApiPath(digest): ApiPath<String>,
) -> Result<Json<ComponentInfo>, Problem> {
    caller.require(Scope::RunsRead)?;
    if !well_formed(&digest) {
        return Err(bad_digest(&digest));
    }
    let info: Option<ComponentInfo> = service.own_record(&caller, COMPONENTS, &digest).await?;
    info.map(Json).ok_or_else(|| Problem::not_found("component"))
}

/// The loader's view of one tenant's components: a node names one by
/// digest, among the tenant's uploads, and never a path of the host.
pub(super) struct TenantComponents<'a> {
    executor: &'a SandboxExecutor,
    /// The tenant's digests.
    visible: BTreeSet<String>,
    /// Local files of the tenant's components, by digest.
    files: HashMap<String, PathBuf>,
    /// Digests a load asked for that are the tenant's but not kept here yet.
    missing: RefCell<BTreeSet<String>>,
    /// The tenant's own directory, the only place `dirs` may take from.
    dir: Option<PathBuf>,
}

impl Service {
    /// The caller's components (and directory), for loading a workflow.
    pub(super) async fn tenant_components(&self, caller: &Caller) -> Result<TenantComponents<'_>, Problem> {
        let visible = self.own_keys(caller, COMPONENTS, MAX_COMPONENTS).await?.into_iter().collect();
        Ok(TenantComponents {
            executor: &self.executor,
            visible,
            files: HashMap::new(),
            missing: RefCell::new(BTreeSet::new()),
            dir: self.tenant_dir(caller),
        })
    }

    /// Keeps the components a load found missing here, so that loading
    /// again finds them; false when there were none.
    pub(super) async fn fetch_missing(&self, components: &mut TenantComponents<'_>) -> Result<bool, Problem> {
        let missing = std::mem::take(&mut *components.missing.borrow_mut());
        for digest in &missing {
            if let Some(file) = self.engine.component_file(digest).await? {
                components.files.insert(digest.clone(), file);
            } else {
                tracing::error!(%digest, "a tenant's component is missing from the store");
            }
        }
        Ok(!missing.is_empty())
    }
}

impl TenantComponents<'_> {
    /// What relative paths of a load resolve against: the tenant's own
    /// directory, or one that does not exist (components are named by
    /// digest and files are not nested, whatever it is).
    pub(super) fn base(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("/nonexistent"))
    }
}

impl ComponentCheck for TenantComponents<'_> {
    fn check(&self, path: &Path, node_type: NodeType) -> Result<Vec<String>, String> {
        self.executor.check(path, node_type)
    }

    fn resolve(&self, name: &str, _base: &Path) -> Result<PathBuf, String> {
        if !well_formed(name) {
            return Err(format!(
                "over the API a node names its component by digest: `component: sha256:<hex>`, of a component \
                 uploaded with PUT /v1/components/sha256:<hex> (`{name}` is not one)"
            ));
        }
        if !self.visible.contains(name) {
            return Err(format!(
                "no component of this tenant has the digest {name}; upload it first with PUT /v1/components/{name}"
            ));
        }
        match self.files.get(name) {
            Some(file) => Ok(file.clone()),
            None => {
                self.missing.borrow_mut().insert(name.to_string());
                Err(format!("the component {name} is being fetched; try again"))
            }
        }
    }

    fn host_dirs(&self) -> HostDirs<'_> {
        match &self.dir {
            Some(dir) => HostDirs::Within(dir),
            None => HostDirs::Nowhere,
        }
    }

    fn may_nest_files(&self) -> Result<(), String> {
        Err("over the API a workflow cannot nest sub-workflow files (`workflow:` names a file of the host); run the \
             sub-workflow's steps in this workflow instead"
            .into())
    }
}
