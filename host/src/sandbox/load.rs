//! Loading a component: read the file (capped), check its format, compile
//! it (or map it from the disk cache), check it against its world, and
//! pre-link it once so that each attempt only instantiates.

use super::bindings::compute::ComputeStepPre;
use super::bindings::effect::EffectStepPre;
use super::cache::{self, Origin};
use super::state::StepState;
use super::wit_compare;
use super::{Sandbox, StepWorld, world};
use crate::contract::StepFailure;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use wasmtime::component::Component;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read component {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a usable step component.
    #[error("{0}")]
    Invalid(String),
}

impl LoadError {
    /// The failure an attempt with this component reports.
    pub fn to_failure(&self) -> StepFailure {
        StepFailure::ComponentInvalid { reason: self.to_string() }
    }
}

pub(super) enum Pre {
    Compute(ComputeStepPre<StepState>),
    Effect(EffectStepPre<StepState>),
}

/// A component that was checked against its world and pre-linked: ready to
/// instantiate once per attempt.
pub struct LoadedComponent {
    /// `sha256:` content digest of the component's bytes.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// The world it was checked against.
    pub world: StepWorld,
    /// Whether it came from the disk cache or was compiled.
    pub origin: Origin,
    /// Its imports that exist only to act (the outgoing HTTP handler, `kv`):
    /// it runs only on a node granted the matching capabilities.
    pub acts: Vec<String>,
    pub(super) pre: Pre,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("world", &self.world)
            .field("origin", &self.origin)
            .field("acts", &self.acts)
            .finish()
    }
}

impl Sandbox {
    /// Reads and loads a component file; see [`Sandbox::load_bytes`].
    pub fn load_file(&self, path: &Path, world: Option<StepWorld>) -> Result<Arc<LoadedComponent>, LoadError> {
        let bytes = read_component(path, self.config.max_component_bytes)?;
        self.load_bytes(&bytes, world)
    }

    /// Checks `bytes` against `world` (or, with `None`, whichever world it
    /// fits, compute first) and pre-links it. Loading the same bytes again is
    /// a map lookup.
    pub fn load_bytes(&self, bytes: &[u8], world: Option<StepWorld>) -> Result<Arc<LoadedComponent>, LoadError> {
        check_format(bytes, self.config.max_component_bytes).map_err(LoadError::Invalid)?;
        let digest = cache::digest(bytes);
        let candidates: &[StepWorld] = match &world {
            Some(w) => std::slice::from_ref(w),
            None => &[StepWorld::Compute, StepWorld::Effect],
        };
        if let Some(hit) = candidates.iter().find_map(|w| self.loaded(&digest, *w)) {
            return Ok(hit);
        }
        let (component, origin) = self.compile(&digest, bytes).map_err(LoadError::Invalid)?;
        let world = match world {
            Some(w) => {
                let problems = world::misfits(&self.engine, &component, w);
                if !problems.is_empty() {
                    return Err(LoadError::Invalid(misfit_message(w, &problems)));
                }
                w
            }
            None => {
                let compute = world::misfits(&self.engine, &component, StepWorld::Compute);
                let effect = world::misfits(&self.engine, &component, StepWorld::Effect);
                if compute.is_empty() {
                    StepWorld::Compute
                } else if effect.is_empty() {
                    StepWorld::Effect
                } else {
                    return Err(LoadError::Invalid(format!(
                        "{}\n{}",
                        misfit_message(StepWorld::Compute, &compute),
                        misfit_message(StepWorld::Effect, &effect)
                    )));
                }
            }
        };
        if let Some(hit) = self.loaded(&digest, world) {
            return Ok(hit);
        }
        self.link(&component, digest, bytes.len(), world, origin).map_err(|e| explain_link_error(e, bytes, world))
    }

    /// Pre-links a compiled component for `world` and remembers it by digest.
    pub(super) fn link(
        &self,
        component: &Component,
        digest: String,
        size: usize,
        world: StepWorld,
        origin: Origin,
    ) -> Result<Arc<LoadedComponent>, LoadError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Invalid(format!("the component's imports do not link: {e:#}")))?;
        let pre = match world {
            StepWorld::Compute => ComputeStepPre::new(instance_pre).map(Pre::Compute),
            StepWorld::Effect => EffectStepPre::new(instance_pre).map(Pre::Effect),
        }
        .map_err(|e| LoadError::Invalid(format!("the component's exports do not match the {world} world: {e:#}")))?;
        let acts = world::acting_imports(&self.engine, component);
        let loaded = Arc::new(LoadedComponent { digest: digest.clone(), size, world, origin, acts, pre });
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(loaded.clone(), self.config.max_loaded_components);
        Ok(loaded)
    }

    /// The pre-linked component with `digest` for `world`, if it is still in
    /// memory (see [`SandboxConfig::max_loaded_components`](super::SandboxConfig::max_loaded_components)).
    pub fn loaded(&self, digest: &str, world: StepWorld) -> Option<Arc<LoadedComponent>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(digest, world)
    }

    pub(super) fn compile(&self, digest: &str, bytes: &[u8]) -> Result<(Component, Origin), String> {
        let r = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, digest, bytes),
            None => Component::new(&self.engine, bytes).map(|c| (c, Origin::Compiled)),
        };
        r.map_err(|e| format!("not a valid WebAssembly component: {e:#}"))
    }

    /// Compiles `bytes` without the disk cache (for benchmarks and tools).
    pub fn compile_uncached(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Component::new(&self.engine, bytes).map_err(anyhow::Error::from)
    }
}

/// Puts the two signatures of each `weft:step` function whose type differs
/// from the contract's in front of wasmtime's link error.
pub(super) fn explain_link_error(e: LoadError, bytes: &[u8], world: StepWorld) -> LoadError {
    let LoadError::Invalid(detail) = e else { return e };
    let mismatches = wit_compare::signature_mismatches(bytes, world);
    if mismatches.is_empty() {
        return LoadError::Invalid(detail);
    }
    LoadError::Invalid(format!(
        "{}
  ({detail})",
        misfit_message(world, &mismatches)
    ))
}

fn misfit_message(world: StepWorld, problems: &[String]) -> String {
    let mut s = format!("the component does not fit the {world} world ({}):", world.wit_name());
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(p);
    }
    s
}

/// Reads a component file: a regular file of at most `max` bytes.
fn read_component(path: &Path, max: usize) -> Result<Vec<u8>, LoadError> {
    use crate::files::ReadError;
    crate::files::read_capped(path, max).map_err(|e| match e {
        ReadError::Io(source) => LoadError::Io { path: path.display().to_string(), source },
        ReadError::TooLarge { size, max } => LoadError::Invalid(format!(
            "{} is {size} bytes; components larger than {max} bytes are refused",
            path.display()
        )),
        e @ ReadError::NotAFile(_) => {
            LoadError::Invalid(format!("{}: {e}; a component is a .wasm file built for wasm32-wasip2", path.display()))
        }
    })
}

/// Cheap checks with clear messages before handing bytes to the compiler.
pub(super) fn check_format(bytes: &[u8], max: usize) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty (0 bytes): expected a WebAssembly component built for wasm32-wasip2".into());
    }
    if bytes.len() > max {
        return Err(format!("the component is {} bytes; components larger than {max} bytes are refused", bytes.len()));
    }
    if !bytes.starts_with(b"\0asm") {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "not a WebAssembly binary: it starts with bytes {} instead of the `\\0asm` magic",
            head.join(" ")
        ));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err("this is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 \
                    (or wrap the module with `wasm-tools component new`)"
            .into());
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err("unknown WebAssembly binary version: expected a component (layer 1)".into());
    }
    Ok(())
}
