//! Reads order records from a directory and writes results to another, as
//! an effect step granted only those directories (`capabilities: dirs:`).
//!
//! - `{"action": "fetch", "order_id": ID}` reads `/data/<ID>.json` (a
//!   read-only preopen) and returns it.
//! - `{"action": "persist", "data": {...}}` writes the data to
//!   `/out/<idempotency key>.json` (a read-write preopen), so a retried
//!   attempt overwrites the same file, and returns `{"file", "bytes"}`.
//! - `compensate` of a persist removes the file it wrote.

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError, Value};

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Request {
    Fetch { order_id: String },
    Persist { data: Value },
}

#[derive(Serialize, Deserialize)]
struct Written {
    file: String,
    bytes: usize,
}

fn safe_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn run(ctx: &mut Context, req: Request) -> Result<Value, StepError> {
    match req {
        Request::Fetch { order_id } => {
            let path = format!("/data/{}.json", safe_name(&order_id));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| StepError::fatal(format!("cannot read {path}: {e} (is /data granted?)")))?;
            weft_plugin::info(&format!("read {} bytes from {path}", text.len()));
            serde_json::from_str(&text).map_err(|e| StepError::fatal(format!("{path} is not JSON: {e}")))
        }
        Request::Persist { data } => {
            let file = format!("/out/{}.json", safe_name(&ctx.idempotency_key));
            let text = serde_json::to_string_pretty(&data).map_err(|e| StepError::fatal(e.to_string()))?;
            std::fs::write(&file, &text)
                .map_err(|e| StepError::retryable(format!("cannot write {file}: {e} (is /out granted rw?)")))?;
            weft_plugin::info(&format!("wrote {} bytes to {file}", text.len()));
            serde_json::to_value(Written { file, bytes: text.len() }).map_err(|e| StepError::fatal(e.to_string()))
        }
    }
}

fn undo(_ctx: &mut Context, _req: Value, output: Value) -> Result<(), StepError> {
    let Ok(written) = serde_json::from_value::<Written>(output) else {
        return Ok(()); // a fetch wrote nothing
    };
    match std::fs::remove_file(&written.file) {
        Ok(()) => {
            weft_plugin::info(&format!("removed {}", written.file));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StepError::retryable(format!("cannot remove {}: {e}", written.file))),
    }
}

weft_plugin::effect_step!(run = run, compensate = undo);
