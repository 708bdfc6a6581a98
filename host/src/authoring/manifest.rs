//! `plugin.toml`: what `weft plugin build` needs to know about a plugin
//! directory — its name, language and world — and where its WIT is.

use super::language::Language;
use super::templates::check_name;
use anyhow::Context as _;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifest's file name, at the root of a plugin directory.
pub const MANIFEST_FILE: &str = "plugin.toml";

/// A plugin directory's `plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name; the build writes `<name>.wasm` next to the manifest.
    pub name: String,
    /// The language the step is written in.
    pub language: Language,
    /// The world the step targets: `compute-step` or `effect-step`.
    pub world: String,
    /// The WIT directory, relative to the manifest (default `wit`).
    #[serde(default = "default_wit")]
    pub wit: PathBuf,
}

fn default_wit() -> PathBuf {
    PathBuf::from("wit")
}

impl Manifest {
    /// Reads `dir/plugin.toml`, naming the file and the key on any problem.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: a plugin directory has a {MANIFEST_FILE} (start one with `weft plugin new NAME --lang LANG`)",
                path.display()
            )
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if !matches!(manifest.world.as_str(), "compute-step" | "effect-step") {
            anyhow::bail!(
                "{}: world = {:?}: a Weft step targets \"compute-step\" or \"effect-step\"",
                path.display(),
                manifest.world
            );
        }
        check_name(&manifest.name).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(manifest)
    }

    /// Whether the step is an effect step.
    pub fn is_effect(&self) -> bool {
        self.world == "effect-step"
    }
}
