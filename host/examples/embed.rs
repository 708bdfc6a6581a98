//! Embedding Weft: load a workflow, start a durable run, watch its events,
//! cancel it if it takes too long, and await its output; after a crash,
//! `Engine::resume` (or `weft runs resume ID --db ...`) continues it.
//!
//! ```sh
//! ./scripts/build-plugins
//! cargo run -p weft --example embed                 # examples/fan-out with its input.json
//! cargo run -p weft --example embed -- WORKFLOW [INPUT]
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weft::engine::{Engine, RunEvent, RunInput, RunOptions, SandboxExecutor};
use weft::sandbox::{Sandbox, SandboxConfig};
use weft::store::{StoreLocation, SyncMode, open_for_writing};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (workflow_path, input_path) = match args.next() {
        Some(workflow) => (PathBuf::from(workflow), args.next().map(PathBuf::from)),
        // With no arguments: the fan-out example, with its input.
        None => {
            let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fan-out");
            (example.join("workflow.yaml"), Some(example.join("input.json")))
        }
    };

    // One sandbox per host: the wasmtime engine, the compiled-component cache, the limits.
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default())?);
    let executor = Arc::new(SandboxExecutor::new(sandbox));

    // Validation reports every problem at once, and checks each component's world.
    let workflow = weft::workflow::load_file(&workflow_path, Some(executor.as_ref()))
        .map_err(|e| anyhow::anyhow!("{e}(components missing? build them with ./scripts/build-plugins)"))?;
    let input: RunInput = match input_path {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
        None => RunInput::default(),
    };

    // Runs are journaled to SQLite (WAL): they survive a crash and can be resumed.
    // `$WEFT_DB` names one (a path or sqlite:PATH); else a file in the temp directory.
    let location = match std::env::var("WEFT_DB") {
        Ok(text) if !text.is_empty() => StoreLocation::parse(&text)?,
        _ => StoreLocation::Sqlite(std::env::temp_dir().join("weft-embed.db")),
    };
    let store = open_for_writing(&location, SyncMode::Normal)?;
    let engine = Engine::new(executor).with_store(store);
    let mut run = engine.start(Arc::new(workflow), &input, RunOptions::default()).await?;
    println!("started run {}", run.run_id);

    // Cancel the run if it has not finished within a minute.
    let cancel = run.cancel_token();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        cancel.cancel();
    });

    while let Some(event) = run.events.recv().await {
        if let RunEvent::StepCompleted { step_id, attempts } = &event {
            println!("  {step_id} completed ({attempts} attempt(s))");
        }
    }
    let output = run.wait().await;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
