//! `weft validate` and `weft graph`: a workflow file, before anything runs.

use super::args::{HostArgs, PolicyArgs, grant_lines};
use super::exit;
use super::load_workflow;
use super::output::{out, outln};
use super::usage;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use weft::engine::{SandboxExecutor, check_capabilities};
use weft::workflow::{ComponentCheck, GraphFormat, render_graph};

/// `weft validate`
#[derive(Args)]
pub struct ValidateArgs {
    /// The workflow file.
    workflow: PathBuf,
    /// Do not load the components (syntax, graph and expressions only).
    #[arg(long)]
    skip_components: bool,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// `weft graph`
#[derive(Args)]
pub struct GraphArgs {
    /// The workflow file.
    workflow: PathBuf,
    /// `mermaid` or `dot`.
    #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
    format: String,
}

impl ValidateArgs {
    /// Runs the command.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let executor;
        let checker: Option<&dyn ComponentCheck> = if self.skip_components {
            None
        } else {
            executor = SandboxExecutor::new(Arc::new(self.host.sandbox()?));
            Some(&executor)
        };
        let wf = load_workflow(&self.workflow, checker)?;
        let policy = self.policy.load()?;
        let refused = check_capabilities(&wf, &policy);
        if !refused.is_empty() {
            return Err(usage(format!(
                "{}: the operator policy refuses what these nodes declare:\n  - {}",
                self.workflow.display(),
                refused.join("\n  - ")
            )));
        }
        outln!(
            "{}: ok: workflow `{}` v{}, {} nodes, {} dependencies, execution_mode {:?}",
            self.workflow.display(),
            wf.name,
            wf.version,
            wf.nodes.len(),
            wf.graph.edges(),
            wf.execution_mode
        );
        for line in grant_lines(&wf, &policy) {
            outln!("grant: {line}");
        }
        Ok(exit::code(exit::OK))
    }
}

impl GraphArgs {
    /// Runs the command.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let wf = load_workflow(&self.workflow, None)?;
        let format = GraphFormat::parse(&self.format).unwrap_or(GraphFormat::Mermaid);
        out(&render_graph(&wf, format));
        Ok(exit::code(exit::OK))
    }
}
