//! The `secrets` capability: the secrets a node declares, read from the
//! operator's secret source, reach the guest as environment variables.
//! Their values are kept so that the attempt's output, logs and errors are
//! redacted.

use super::Grants;
use super::capability::{AttemptWasi, Capability};

/// The `secrets` capability.
pub struct Secrets;

impl Capability for Secrets {
    fn name(&self) -> &'static str {
        "secrets"
    }

    fn prepare(&self, attempt: &mut AttemptWasi<'_>, grants: &Grants) -> Result<(), String> {
        let secrets = grants.secret_source.resolve(&grants.capabilities.secrets)?;
        for (name, value) in &secrets {
            attempt.builder.env(name, value);
        }
        attempt.secrets.extend(secrets);
        Ok(())
    }
}
