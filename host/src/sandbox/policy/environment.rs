//! The `env` and `secrets` capabilities: only the names a node declares are
//! visible to it, as environment variables. Host variables are passed
//! through by name; secrets come from the operator's secret source, and
//! their values are kept so that the attempt's output, logs and errors are
//! redacted.

use super::Grants;
use super::capability::{AttemptWasi, Capability};

/// The `env` and `secrets` capabilities.
pub struct Environment;

impl Capability for Environment {
    fn name(&self) -> &'static str {
        "env"
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String> {
        for name in &grants.capabilities.env {
            // A declared variable the host does not have is simply absent.
            if let Ok(value) = std::env::var(name) {
                attempt.builder.env(name, value);
            }
        }
        let secrets = grants.secret_source.resolve(&grants.capabilities.secrets)?;
        for (name, value) in &secrets {
            attempt.builder.env(name, value);
        }
        attempt.secrets.extend(secrets);
        Ok(())
    }
}
