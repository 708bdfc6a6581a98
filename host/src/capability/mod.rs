//! Capabilities: what an effect step may be given beyond the sandbox's
//! baseline, as plain data, with no wasm in it.
//!
//! The rule: a compute step has no authority. An effect step gets exactly
//! what its node declares ([`Capabilities`]), and only when the operator's
//! [`Policy`] allows it; otherwise the workflow does not validate. The tour:
//! - `declared`: the node's `capabilities:` section (http rules, directory
//!   preopens, env names, secret names, kv);
//! - `acting`: the imports that exist only to act, and what each needs;
//! - `url_pattern`: `scheme://host[:port|:*]/path-glob`, matched against
//!   every outgoing request and tested for cover against the policy;
//! - `policy`: the operator's TOML file, its caps and limits;
//! - `secrets`: the secret source (env with a prefix, or a 0600 file);
//! - `redact`: secret values replaced by `[redacted:NAME]` wherever the host
//!   writes what a step produced.
//!
//! The sandbox enforces a grant at run time (`sandbox::policy`); the
//! workflow loader parses declarations into these types.

mod acting;
mod declared;
mod policy;
mod redact;
mod secrets;
mod url_pattern;

pub use acting::{ACTING_IMPORTS, acting_capability};
pub use declared::{Capabilities, DirGrant, DirMode, DirSource, HttpRule, MAX_HTTP_RULES, METHODS, NAMES};
pub use policy::{FanOutLimits, HttpLimits, KvLimits, POLICY_ENV, Policy};
pub use redact::Redactor;
pub use secrets::SecretSource;
pub use url_pattern::{PortPattern, UrlPattern, default_port};
