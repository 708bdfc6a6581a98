//! The health check of the ONEX orchestrator contract, on this host: the run
//! store is reachable, the sandbox starts, and the components of the given
//! workflows, and those pinned by active runs, load as pinned.

use super::SandboxExecutor;
use crate::contract::{ExecutionStatus, now_rfc3339};
use crate::sandbox::Sandbox;
use crate::store::{RunFilter, RunStore, SCHEMA_VERSION, StoreError, StoreInfo, StoreLocation, open_for_reading};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What [`check_health`] found.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    /// Per part (`store`, `step_executor`, `components`), `healthy` or `unhealthy`.
    pub components: Map<String, Value>,
    /// Runs with status `running` in the store.
    pub active_workflows: Option<u64>,
    /// Whether workflows were given and all of them loaded.
    pub workflow_definition_loaded: bool,
    /// How many components loaded as their nodes or pins need.
    pub components_checked: usize,
    /// The store's description.
    pub store: Option<StoreInfo>,
    /// Every problem found, each naming its part.
    pub problems: Vec<String>,
    /// What is worth knowing and is no problem (a store not created yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// When the check ran.
    pub timestamp: String,
}

impl HealthReport {
    /// Whether nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the store at `location` (or why there is none; read only: a store
/// not created yet is healthy and empty), the `sandbox` (or why it did not
/// start), and the components of `workflows` and of the store's active runs.
pub async fn check_health(
    location: Result<StoreLocation, String>,
    sandbox: Result<Arc<Sandbox>, String>,
    workflows: &[PathBuf],
) -> HealthReport {
    let mut components = Map::new();
    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let opened = match location {
        Err(e) => Err(e),
        Ok(at) => match open_for_reading(&at) {
            Ok(store) => Ok((at, Some(store))),
            Err(StoreError::Missing(_)) => Ok((at, None)),
            Err(e @ StoreError::Incompatible(_)) => Err(e.to_string()),
            Err(e) => Err(format!("cannot open the run database {at}: {e}")),
        },
    };
    let store_info = match opened {
        Ok((_, Some(s))) => match s.info().await {
            Ok(info) => Some((Some(s), info)),
            Err(e) => {
                problems.push(format!("store: {e}"));
                None
            }
        },
        // Created by the first run; nothing is wrong with it yet.
        Ok((at, None)) => {
            notes.push(format!("store: there is no database at {at} yet; the first run creates it"));
            let location = at.to_string();
            Some((None, StoreInfo { kind: "sqlite".into(), location, schema_version: SCHEMA_VERSION, active_runs: 0 }))
        }
        Err(e) => {
            problems.push(format!("store: {e}"));
            None
        }
    };
    components.insert("store".into(), json!(if store_info.is_some() { "healthy" } else { "unhealthy" }));
    let sandbox = match sandbox {
        Ok(s) => {
            components.insert("step_executor".into(), json!("healthy"));
            Some(s)
        }
        Err(e) => {
            components.insert("step_executor".into(), json!("unhealthy"));
            problems.push(format!("sandbox: {e}"));
            None
        }
    };
    let mut loadable = 0usize;
    if let Some(sandbox) = &sandbox {
        let executor = SandboxExecutor::new(sandbox.clone());
        for wf in workflows {
            match crate::workflow::load_file(wf, Some(&executor)) {
                Ok(w) => loadable += w.nodes.len(),
                Err(e) => problems.push(format!("{}: {e}", wf.display())),
            }
        }
        if let Some((Some(store), _)) = &store_info {
            loadable += pinned_components(store.as_ref(), sandbox, &mut problems).await;
        }
        // Problems of the store or the sandbox are theirs, not the components'.
        let theirs = |p: &String| p.starts_with("store") || p.starts_with("sandbox");
        let status = if problems.iter().any(|p| !theirs(p)) { "unhealthy" } else { "healthy" };
        components.insert("components".into(), json!(status));
    }
    let healthy = problems.is_empty();
    HealthReport {
        status: if healthy { "healthy" } else { "unhealthy" },
        components,
        active_workflows: store_info.as_ref().map(|(_, i)| i.active_runs),
        workflow_definition_loaded: !workflows.is_empty() && healthy,
        components_checked: loadable,
        store: store_info.map(|(_, i)| i),
        problems,
        notes,
        timestamp: now_rfc3339(),
    }
}

/// Loads the components pinned by the store's active runs, reporting each
/// one that is gone or changed; returns how many loaded as pinned.
async fn pinned_components(store: &dyn RunStore, sandbox: &Sandbox, problems: &mut Vec<String>) -> usize {
    let active = store.list_runs(&RunFilter { status: Some(ExecutionStatus::Running), ..Default::default() }).await;
    let active = active.unwrap_or_else(|e| {
        problems.push(format!("store: cannot list the active runs: {e}"));
        Vec::new()
    });
    let mut loadable = 0;
    for r in active {
        let rec = match store.get_run(&r.run_id).await {
            Ok(rec) => rec,
            Err(e) => {
                problems.push(format!("run {}: cannot be read from the store: {e}", r.run_id));
                continue;
            }
        };
        // Each file is read once per run, however many nodes pin it.
        let mut now: HashMap<&str, Result<String, String>> = HashMap::new();
        for (node, pin) in &rec.run.components {
            let digest = now.entry(pin.path.as_str()).or_insert_with(|| {
                sandbox.load_file(Path::new(&pin.path), None).map(|c| c.digest.clone()).map_err(|e| e.to_string())
            });
            match digest {
                Ok(d) if *d == pin.digest => loadable += 1,
                Ok(d) => problems.push(format!(
                    "run {} node `{node}`: {} changed ({} pinned, {d} now)",
                    r.run_id, pin.path, pin.digest
                )),
                Err(e) => problems.push(format!("run {} node `{node}`: {e}", r.run_id)),
            }
        }
    }
    loadable
}
