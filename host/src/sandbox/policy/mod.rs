//! What an attempt's WASI imports grant, and where capabilities plug in.
//!
//! Every attempt starts from one baseline: no preopens, no environment, no
//! arguments, no sockets and no DNS, an HTTP gate that denies everything, a
//! closed key-value session, and stdout and stderr captured under the
//! attempt's log budget. The imports are all satisfied, so a guest that
//! tries a door gets an error inside the guest, not a link failure.
//!
//! On top of the baseline, each [`Capability`] adds what the node's
//! [`Grants`] allow. A capability has two phases, as Spin's factors do:
//! [`Capability::link`] adds its host functions once per sandbox, and
//! [`Capability::prepare`] builds one attempt's state from the grants. The
//! checks before anything runs are [`WasiPolicy::check`]: a compute step is
//! granted nothing, and a component that imports an interface that exists
//! only to act (the outgoing HTTP handler, `kv`) runs only on a node granted
//! it. The pieces:
//! - `determinism`: the compute world's frozen clocks and seeded randomness;
//! - `environment`: declared host variables;
//! - `secrets`: declared secrets, from the operator's source (redacted);
//! - `dirs`: preopened directories (cap-std beneath each one);
//! - `http`: the outbound HTTP gate, checked on every request;
//! - `kv`: `weft:step/kv`, answered by the run store in the workflow's scope;
//! - `denials`: what was refused, logged as `capability_denied`.

mod capability;
mod denials;
mod determinism;
mod dirs;
mod environment;
mod http;
mod kv;
mod secrets;
mod stream;

pub use capability::{AttemptWasi, Capability};
pub use denials::Denials;
pub use determinism::Determinism;
pub use http::HttpGate;
pub use kv::{KvSession, MAX_KV_CALLS, MAX_LISTED_KEYS};
pub use stream::StreamSession;

use super::StepWorld;
use super::call::StepContext;
use super::state::CapturePipe;
use crate::capability::{Capabilities, HttpLimits, KvLimits, Policy, Redactor, SecretSource};
use crate::contract::{KeyValue, StreamSink};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// The store and scope behind a node's `kv`.
#[derive(Clone)]
pub struct KvBinding {
    /// The store (the run store, in practice).
    pub store: Arc<dyn KeyValue>,
    /// The scope: see [`kv_scope`](crate::contract::kv_scope).
    pub scope: String,
}

/// What one node is granted beyond its world's baseline: its declared
/// capabilities (already checked against the operator's policy), the
/// policy's limits, and the run's handles they need. Compute nodes are
/// granted nothing.
#[derive(Clone, Default)]
pub struct Grants {
    /// What the node may use.
    pub capabilities: Capabilities,
    /// HTTP limits per attempt.
    pub http_limits: HttpLimits,
    /// Key-value limits.
    pub kv_limits: KvLimits,
    /// Where the node's secrets are read.
    pub secret_source: SecretSource,
    /// The run's scratch directory, for `host: scratch` entries.
    pub scratch_dir: Option<PathBuf>,
    /// The store and scope behind `kv`.
    pub kv: Option<KvBinding>,
    /// Where the node's emitted items go (streaming mode); given to either
    /// world, since emitting reaches only the run's own consumers.
    pub stream: Option<Arc<dyn StreamSink>>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("capabilities", &self.capabilities)
            .field("scratch_dir", &self.scratch_dir)
            .field("kv_scope", &self.kv.as_ref().map(|k| k.scope.as_str()))
            .finish_non_exhaustive()
    }
}

impl Grants {
    /// No grant at all: the world's baseline only.
    pub fn none() -> Self {
        Self::default()
    }

    /// `capabilities` under `policy`'s limits and secret source (check them
    /// with [`Policy::check`] first).
    pub fn under(capabilities: Capabilities, policy: &Policy) -> Self {
        Self {
            capabilities,
            http_limits: policy.http_limits,
            kv_limits: policy.kv_limits,
            secret_source: policy.secrets.clone(),
            scratch_dir: None,
            kv: None,
            stream: None,
        }
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.capabilities.is_empty()
    }
}

/// The WASI state one attempt was given.
pub struct PreparedWasi {
    /// The attempt's WASI context.
    pub ctx: WasiCtx,
    /// The guest's stdout, kept up to the log budget.
    pub stdout: CapturePipe,
    /// The guest's stderr, kept up to the log budget.
    pub stderr: CapturePipe,
    /// The outbound HTTP gate.
    pub http: HttpGate,
    /// The key-value session.
    pub kv: KvSession,
    /// Where emitted items go.
    pub stream: StreamSession,
    /// Replaces the attempt's secret values wherever the host writes.
    pub redactor: Redactor,
    /// What was refused.
    pub denials: Denials,
}

/// The baseline and the capabilities, in the order they are applied.
pub struct WasiPolicy {
    pieces: Vec<Box<dyn Capability>>,
}

/// Most bytes of randomness a guest may ask for in one call.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

impl WasiPolicy {
    /// The policy every sandbox uses.
    pub fn standard() -> Self {
        Self {
            pieces: vec![
                Box::new(Determinism),
                Box::new(environment::Environment),
                Box::new(secrets::Secrets),
                Box::new(dirs::Dirs),
                Box::new(http::Http),
                Box::new(kv::Kv),
                Box::new(stream::Stream),
            ],
        }
    }

    /// WASI 0.2, `weft:step/log`, and every capability's own host
    /// functions, linked once.
    pub fn link(&self, linker: &mut Linker<super::state::StepState>) -> anyhow::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker).map_err(anyhow::Error::from)?;
        super::bindings::compute::weft::step::log::add_to_linker::<
            super::state::StepState,
            wasmtime::component::HasSelf<super::state::StepState>,
        >(linker, |s| s)
        .map_err(anyhow::Error::from)?;
        for piece in &self.pieces {
            piece.link(linker)?;
        }
        Ok(())
    }

    /// Every reason `grants` cannot be given to a `world` step whose
    /// component has the acting imports `acts`; empty when they can.
    pub fn check(&self, world: StepWorld, grants: &Grants, acts: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        if world == StepWorld::Compute && !grants.is_empty() {
            problems.push(
                "a compute step is granted capabilities; compute steps have no authority: run it as an effect step"
                    .to_string(),
            );
        }
        problems.extend(acts.iter().filter_map(|import| grants.capabilities.refuses_import(import)));
        problems
    }

    /// The WASI state of one attempt of a `world` step called as `ctx`,
    /// with `grants`, keeping at most `log_budget` bytes of each of stdout
    /// and stderr.
    pub fn prepare(
        &self,
        world: StepWorld,
        ctx: &StepContext,
        grants: &Grants,
        log_budget: usize,
    ) -> Result<PreparedWasi, String> {
        let stdout = CapturePipe::new(log_budget);
        let stderr = CapturePipe::new(log_budget);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES);
        let denials = Denials::default();
        let mut attempt = AttemptWasi {
            world,
            ctx,
            builder,
            secrets: Vec::new(),
            http: HttpGate::closed(denials.clone()),
            kv: KvSession::closed(denials.clone()),
            stream: StreamSession::default(),
            denials: denials.clone(),
        };
        // A compute step gets the baseline whatever it is handed (and its stream).
        let none = Grants { stream: grants.stream.clone(), ..Grants::none() };
        let grants = if world == StepWorld::Compute { &none } else { grants };
        for piece in &self.pieces {
            piece.prepare(&mut attempt, grants).map_err(|e| format!("capability `{}`: {e}", piece.name()))?;
        }
        Ok(PreparedWasi {
            ctx: attempt.builder.build(),
            stdout,
            stderr,
            http: attempt.http,
            kv: attempt.kv,
            stream: attempt.stream,
            redactor: Redactor::new(&attempt.secrets),
            denials,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_compute_step_is_granted_nothing() {
        let caps = Capabilities { env: vec!["HOME".into()], ..Default::default() };
        let grants = Grants::under(caps, &Policy::operator());
        let problems = WasiPolicy::standard().check(StepWorld::Compute, &grants, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("compute steps have no authority"), "{problems:?}");
        assert!(WasiPolicy::standard().check(StepWorld::Effect, &grants, &[]).is_empty());
    }

    #[test]
    fn an_acting_import_needs_its_capability() {
        let acts = vec!["wasi:http/outgoing-handler@0.2.12".to_string(), "weft:step/kv@0.1.1".to_string()];
        let problems = WasiPolicy::standard().check(StepWorld::Effect, &Grants::none(), &acts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("`wasi:http/outgoing-handler@0.2.12`") && problems[0].contains("`http`"));
        assert!(problems[1].contains("`kv: true`"), "{problems:?}");
    }

    #[test]
    fn an_attempt_is_prepared_for_either_world() {
        let ctx = StepContext::adhoc("s");
        let policy = WasiPolicy::standard();
        for world in [StepWorld::Compute, StepWorld::Effect] {
            let prepared = policy.prepare(world, &ctx, &Grants::none(), 1024).unwrap();
            assert_eq!(prepared.stdout.take(), (String::new(), 0));
        }
    }

    #[test]
    fn a_missing_secret_fails_the_prepare_naming_where_it_was_looked_for() {
        let caps = Capabilities { secrets: vec!["NO_SUCH_WEFT_TEST_SECRET".into()], ..Default::default() };
        let grants = Grants::under(caps, &Policy::operator());
        let e =
            WasiPolicy::standard().prepare(StepWorld::Effect, &StepContext::adhoc("s"), &grants, 1024).err().unwrap();
        assert!(e.contains("WEFT_SECRET_NO_SUCH_WEFT_TEST_SECRET"), "{e}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod dir_tests {
    use super::*;
    use crate::capability::{DirGrant, DirMode, DirSource};

    #[test]
    fn a_directory_swapped_for_a_symlink_after_validation_is_not_opened() {
        let root = tempfile::tempdir().unwrap();
        let granted = root.path().join("granted");
        std::fs::create_dir(&granted).unwrap();
        let canonical = std::fs::canonicalize(&granted).unwrap();
        let caps = Capabilities {
            dirs: vec![DirGrant { host: DirSource::Path(canonical), guest: "/d".into(), mode: DirMode::Rw }],
            ..Default::default()
        };
        let grants = Grants::under(caps, &Policy::operator());
        let ctx = StepContext::adhoc("s");
        assert!(WasiPolicy::standard().prepare(StepWorld::Effect, &ctx, &grants, 1024).is_ok());
        std::fs::remove_dir(&granted).unwrap();
        std::os::unix::fs::symlink("/etc", &granted).unwrap();
        let e = WasiPolicy::standard().prepare(StepWorld::Effect, &ctx, &grants, 1024).err().unwrap();
        assert!(e.contains("a symlink changed since the run started"), "{e}");
    }
}
