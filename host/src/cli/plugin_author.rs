//! `weft plugin new` and `weft plugin build`: from a template to a
//! component, in any language Weft has a template for.

use super::output::{noteln, outln};
use super::usage;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use weft::authoring::{self, Language};

/// `weft plugin new`
#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name (lowercase letters, digits and `-`); also its directory.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Language,
    /// Start from the effect-step template (HTTP and key-value state) instead
    /// of the compute-step one (js and python).
    #[arg(long)]
    effect: bool,
    /// Where to create it (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// `weft plugin build`
#[derive(Args)]
pub struct BuildArgs {
    /// The plugin directory, which holds plugin.toml (default: the current one).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

impl NewArgs {
    /// Writes the plugin and says how to build it.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from(&self.name));
        let made =
            authoring::new_plugin(&dir, &self.name, self.lang, self.effect).map_err(|e| usage(format!("{e:#}")))?;
        let world = if made.template.effect { "effect" } else { "compute" };
        outln!(
            "created {} ({} {world} step, {} files, from plugins/templates/{})",
            dir.display(),
            self.lang,
            made.files,
            made.template.dir
        );
        outln!("next:");
        outln!("  weft plugin build {}", dir.display());
        let input = if made.template.effect {
            r#"--effect --kv --allow-http 'http://127.0.0.1:8080/*:POST' --input '{"url": "http://127.0.0.1:8080/orders", "order": {"sku": "A1"}}'"#
        } else {
            r#"--input '{"name": "Ada"}'"#
        };
        outln!("  weft plugin call {}/{}.wasm {input}", dir.display(), self.name);
        Ok(ExitCode::SUCCESS)
    }
}

impl BuildArgs {
    /// Runs the plugin's build.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let manifest = authoring::Manifest::read(&self.dir).map_err(|e| usage(format!("{e:#}")))?;
        noteln!("building {} ({}, {})", manifest.name, manifest.language, manifest.world);
        let built = authoring::build(&self.dir)?;
        outln!("{} ({:.1} MB)", built.component.display(), built.size as f64 / 1e6);
        Ok(ExitCode::SUCCESS)
    }
}
