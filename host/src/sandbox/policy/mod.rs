//! What an attempt's WASI imports grant, and where capabilities plug in.
//!
//! Every attempt starts from one baseline: no preopens, no environment, no
//! arguments, no sockets, and stdout and stderr captured under the attempt's
//! log budget. The imports are all satisfied, so a guest that tries a door
//! gets an error inside the guest, not a link failure.
//!
//! On top of the baseline, each [`Capability`] adds what its world or the
//! node's [`Grants`] allow. A capability has three phases, as Spin's factors
//! do:
//! 1. [`Capability::link`], once per sandbox: add its host functions;
//! 2. [`Capability::check`], when a node is loaded: read the node's grant as
//!    plain data and refuse what cannot be given, before anything runs;
//! 3. [`Capability::prepare`], per attempt: build that attempt's state.
//!
//! The compute world's determinism (frozen clocks, randomness seeded from the
//! idempotency key) is one such piece. A new capability (outbound HTTP,
//! directories, env and secrets, key-value state) is one more module here,
//! added to [`WasiPolicy::standard`].

mod capability;
mod determinism;

pub use capability::{AttemptWasi, Capability};
pub use determinism::Determinism;

use super::StepWorld;
use super::call::StepContext;
use super::state::{CapturePipe, StepState};
use serde_json::Value;
use std::collections::BTreeMap;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// What one node is granted beyond its world's baseline, as plain data: one
/// section per capability, by the capability's name. Compute nodes are
/// granted nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    sections: BTreeMap<String, Value>,
}

impl Grants {
    /// No grant at all: the world's baseline only.
    pub fn none() -> Self {
        Self::default()
    }

    /// These grants plus `section` for the capability `name`.
    pub fn with(mut self, name: &str, section: Value) -> Self {
        self.sections.insert(name.to_string(), section);
        self
    }

    /// The section granted to capability `name`, if any.
    pub fn section(&self, name: &str) -> Option<&Value> {
        self.sections.get(name)
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

/// The WASI state one attempt was given: its context, and the pipes its
/// stdout and stderr are captured in.
pub struct PreparedWasi {
    /// The attempt's WASI context.
    pub ctx: WasiCtx,
    /// The guest's stdout, kept up to the log budget.
    pub stdout: CapturePipe,
    /// The guest's stderr, kept up to the log budget.
    pub stderr: CapturePipe,
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
        Self { pieces: vec![Box::new(Determinism)] }
    }

    /// Phase 1: WASI 0.2, `weft:step/log`, and every capability's own host
    /// functions, linked once.
    pub fn link(&self, linker: &mut Linker<StepState>) -> anyhow::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker).map_err(anyhow::Error::from)?;
        super::bindings::compute::weft::step::log::add_to_linker::<StepState, wasmtime::component::HasSelf<StepState>>(
            linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
        for piece in &self.pieces {
            piece.link(linker)?;
        }
        Ok(())
    }

    /// Phase 2: every reason `grants` cannot be given to a node of `world`,
    /// each naming the capability; empty when they can.
    pub fn check(&self, world: StepWorld, grants: &Grants) -> Vec<String> {
        let mut problems = Vec::new();
        for name in grants.sections.keys() {
            let known = self.pieces.iter().any(|p| p.grantable() && p.name() == name);
            if !known {
                let names: Vec<&str> = self.pieces.iter().filter(|p| p.grantable()).map(|p| p.name()).collect();
                let offered = if names.is_empty() { "none".to_string() } else { names.join(", ") };
                problems.push(format!("unknown capability `{name}`; this host offers: {offered}"));
            } else if world == StepWorld::Compute {
                problems.push(format!(
                    "capability `{name}` is granted to a compute step; compute steps have no authority: make the \
                     node an effect node"
                ));
            }
        }
        for piece in &self.pieces {
            if let Err(e) = piece.check(world, grants.section(piece.name())) {
                problems.push(format!("capability `{}`: {e}", piece.name()));
            }
        }
        problems
    }

    /// Phase 3: the WASI context of one attempt of a `world` step called as
    /// `ctx`, with `grants`, keeping at most `log_budget` bytes of each of
    /// stdout and stderr.
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
        let mut attempt = AttemptWasi { world, ctx, builder };
        for piece in &self.pieces {
            piece.prepare(&mut attempt, grants.section(piece.name()))?;
        }
        Ok(PreparedWasi { ctx: attempt.builder.build(), stdout, stderr })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unknown_capability_is_refused_with_what_the_host_offers() {
        let problems = WasiPolicy::standard().check(StepWorld::Effect, &Grants::none().with("teleport", json!({})));
        assert_eq!(problems, vec!["unknown capability `teleport`; this host offers: none".to_string()]);
    }

    #[test]
    fn the_baseline_is_granted_to_both_worlds() {
        let policy = WasiPolicy::standard();
        assert!(policy.check(StepWorld::Compute, &Grants::none()).is_empty());
        assert!(policy.check(StepWorld::Effect, &Grants::none()).is_empty());
    }

    #[test]
    fn determinism_is_not_a_capability_a_node_can_be_granted() {
        let problems =
            WasiPolicy::standard().check(StepWorld::Effect, &Grants::none().with("determinism", json!(false)));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("unknown capability `determinism`"), "{problems:?}");
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
}
