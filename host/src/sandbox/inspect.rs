//! `weft plugin inspect`: what a file is, which world it fits and why not,
//! and its imports and exports as WIT. Bad bytes are described, never fatal.

use super::load::check_format;
use super::{Sandbox, StepWorld, cache, world};
use serde::Serialize;

/// Whether a component fits a world, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct WorldFit {
    /// True when the component can run as this world.
    pub fits: bool,
    /// Every reason it does not.
    pub problems: Vec<String>,
}

/// What `weft plugin inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// `sha256:` content digest.
    pub digest: String,
    /// Size in bytes.
    pub size_bytes: usize,
    /// `component`, `core_module`, `not_wasm` or `empty`.
    pub format: &'static str,
    /// The world it fits: `compute`, `effect` or `neither`.
    pub world: &'static str,
    /// Fit against the compute-step world.
    pub compute: WorldFit,
    /// Fit against the effect-step world.
    pub effect: WorldFit,
    /// Why it cannot be used at all (not a component, does not compile).
    pub error: Option<String>,
    /// Imports and exports, printed as a WIT world.
    pub wit: Option<String>,
}

impl Sandbox {
    /// Describes a file: digest, format, which world it fits and why not, and
    /// its imports and exports as WIT. Never fails on bad bytes: it says why.
    pub fn inspect(&self, bytes: &[u8]) -> Inspection {
        let digest = cache::digest(bytes);
        let format = if bytes.is_empty() {
            "empty"
        } else if wasmparser::Parser::is_component(bytes) {
            "component"
        } else if wasmparser::Parser::is_core_wasm(bytes) {
            "core_module"
        } else {
            "not_wasm"
        };
        let mut out = Inspection {
            digest: digest.clone(),
            size_bytes: bytes.len(),
            format,
            world: "neither",
            compute: WorldFit { fits: false, problems: vec![] },
            effect: WorldFit { fits: false, problems: vec![] },
            error: None,
            wit: None,
        };
        if let Err(e) = check_format(bytes, self.config.max_component_bytes) {
            out.error = Some(e.clone());
            out.compute.problems.push(e.clone());
            out.effect.problems.push(e);
            return out;
        }
        let (component, origin) = match self.compile(&digest, bytes) {
            Ok(c) => c,
            Err(e) => {
                out.error = Some(e.clone());
                out.compute.problems.push(e.clone());
                out.effect.problems.push(e);
                return out;
            }
        };
        for (world, fit) in [(StepWorld::Compute, &mut out.compute), (StepWorld::Effect, &mut out.effect)] {
            let mut problems = world::misfits(&self.engine, &component, world);
            if problems.is_empty()
                && self.loaded(&digest, world).is_none()
                && let Err(e) = self.link(&component, digest.clone(), bytes.len(), world, origin)
            {
                problems.push(super::load::explain_link_error(e, bytes, world).to_string());
            }
            fit.fits = problems.is_empty();
            fit.problems = problems;
        }
        out.world = match (out.compute.fits, out.effect.fits) {
            (true, _) => "compute",
            (false, true) => "effect",
            _ => "neither",
        };
        match world::component_wit(bytes) {
            Ok(w) => out.wit = Some(w),
            Err(e) => out.error = Some(format!("could not print the component's WIT: {e}")),
        }
        out
    }
}
