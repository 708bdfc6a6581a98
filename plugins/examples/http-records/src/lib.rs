//! Fetches order records over HTTP and posts a summary, as an effect step
//! granted only those URLs (`capabilities: http:`) and one secret.
//!
//! - `{"action": "fetch", "url": URL}` GETs the URL and returns its JSON.
//! - `{"action": "notify", "url": URL, "summary": {...}, "token_secret": NAME}`
//!   POSTs the summary with `Authorization: Bearer <secret NAME>` and
//!   returns the server's JSON reply.
//! - `compensate` does nothing: a notification cannot be taken back.

use serde::Deserialize;
use weft_plugin::{Context, StepError, Value};

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Request {
    Fetch { url: String },
    Notify { url: String, summary: Value, token_secret: String },
}

fn run(_ctx: &mut Context, req: Request) -> Result<Value, StepError> {
    match req {
        Request::Fetch { url } => Ok(weft_plugin::http::get_json(&url, &[])?),
        Request::Notify { url, summary, token_secret } => {
            let token = weft_plugin::secret(&token_secret)
                .ok_or_else(|| StepError::fatal(format!("secret {token_secret} is not granted")))?;
            let bearer = format!("Bearer {token}");
            Ok(weft_plugin::http::post_json(&url, &summary, &[("authorization", &bearer)])?)
        }
    }
}

fn undo(_ctx: &mut Context, _req: Value, _output: Value) -> Result<(), StepError> {
    Ok(())
}

weft_plugin::effect_step!(run = run, compensate = undo);
