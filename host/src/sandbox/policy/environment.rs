//! The `env` capability: only the host variables a node declares are
//! visible to it, passed through by name.

use super::Grants;
use super::capability::{AttemptWasi, Capability};

/// The `env` capability.
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
        Ok(())
    }
}
