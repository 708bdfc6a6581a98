//! Turns per tenant: requests of one tenant that must not interleave in
//! this process (a quota's check and the write it admits) wait for their
//! turn; other tenants' requests do not wait. Across server processes the
//! store's own atomic steps are the guard; a turn only closes the window
//! inside one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One lock per tenant, made on first use.
#[derive(Default)]
pub(super) struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    /// Waits for `tenant`'s turn; it lasts while the guard lives.
    pub(super) async fn take(&self, tenant: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            all.entry(tenant.to_string()).or_insert_with(|| Arc::new(tokio::sync::Mutex::new(()))).clone()
        };
        lock.lock_owned().await
    }
}
