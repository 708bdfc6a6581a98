//! {{name}}: a Weft compute step.
//!
//! Greets `input.name`. Build it with `weft plugin build` (or
//! `cargo build --release --target wasm32-wasip2`), then try it with
//! `weft plugin call {{name}}.wasm --input '{"name": "Ada"}'`.

use serde::{Deserialize, Serialize};
use weft_plugin::{Context, StepError};

/// The step's input; a missing or mistyped field fails the attempt as
/// `plugin_error` / `invalid_input` before `greet` runs.
#[derive(Deserialize)]
struct Input {
    name: String,
}

/// The step's output.
#[derive(Serialize, Debug, PartialEq)]
struct Output {
    greeting: String,
}

fn greeting(name: &str) -> Result<Output, StepError> {
    if name.trim().is_empty() {
        return Err(StepError::InvalidInput("`name` must not be empty".into()));
    }
    Ok(Output { greeting: format!("Hello, {name}!") })
}

fn greet(_ctx: &mut Context, input: Input) -> Result<Output, StepError> {
    weft_plugin::info(&format!("greeting {}", input.name));
    let out = greeting(&input.name)?;
    // To hand work to another node of the workflow, emit an action:
    // _ctx.emit(weft_plugin::ActionKind::Compute, "announce", &weft_plugin::json!({ "greeting": out.greeting }))?;
    Ok(out)
}

weft_plugin::compute_step!(greet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name() {
        assert_eq!(greeting("Ada").map(|o| o.greeting).ok(), Some("Hello, Ada!".to_string()));
    }

    #[test]
    fn refuses_an_empty_name() {
        assert!(matches!(greeting(" "), Err(StepError::InvalidInput(_))));
    }
}
