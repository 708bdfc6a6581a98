//! The web UI's sessions. Signing in with a token makes a session; its
//! cookie is `s_<hour>_<secret>`, never the token. Only the SHA-256 of the
//! cookie is stored, under a key that starts with the hour it expires in,
//! so expired sessions are found (and dropped) by reading the scope's first
//! keys. A session acts for its token while the token is valid, for 12
//! hours at most; signing out ends it.

use super::tenants::{Caller, TOKENS, TenantError, Tenants, TokenRecord};
use base64::Engine as _;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where sessions are kept (key: `<expiry hour>/<sha256 of the cookie>`).
const SESSIONS: &str = "weft.service/sessions";
/// How long a session lasts.
pub const SESSION_SECONDS: u64 = 12 * 3600;
/// The most expired sessions one sign-in drops.
const PRUNED_PER_SIGN_IN: usize = 100;

/// A stored session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRecord {
    /// The token it acts for.
    token_id: String,
    /// When it ends (milliseconds since the Unix epoch).
    expires_ms: u64,
}

/// The store key of a session cookie; None when it has not the shape.
fn key_of(cookie: &str) -> Option<String> {
    let rest = cookie.strip_prefix("s_")?;
    let (hour, secret) = rest.split_once('_')?;
    let well_formed = hour.len() == 12 && hour.bytes().all(|b| b.is_ascii_digit()) && (40..=64).contains(&secret.len());
    well_formed.then(|| format!("{hour}/{}", hex::encode(Sha256::digest(cookie.as_bytes()))))
}

impl Tenants {
    /// Signs in with `token`: the new session's cookie value, or None when
    /// the token is not valid.
    pub async fn start_session(&self, token: &str) -> Result<Option<String>, TenantError> {
        let Some(caller) = self.authenticate(token).await? else { return Ok(None) };
        let now = crate::store::now_ms();
        self.drop_expired(now).await?;
        let expires_ms = now + SESSION_SECONDS * 1000;
        let secret: [u8; 32] = rand::rng().random();
        let cookie = format!(
            "s_{:012}_{}",
            expires_ms / 3_600_000,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let Some(key) = key_of(&cookie) else { return Ok(None) };
        self.put(SESSIONS, &key, &SessionRecord { token_id: caller.token_id, expires_ms }).await?;
        Ok(Some(cookie))
    }

    /// The caller a session cookie stands for; None when it is unknown,
    /// expired or ended, or its token is no longer valid.
    pub async fn session(&self, cookie: &str) -> Result<Option<Caller>, TenantError> {
        let Some(key) = key_of(cookie) else { return Ok(None) };
        let Some(session) = self.read::<SessionRecord>(SESSIONS, &key).await? else { return Ok(None) };
        if session.expires_ms <= crate::store::now_ms() {
            self.kv.kv_delete(SESSIONS, &key).await?;
            return Ok(None);
        }
        let Some(token) = self.read::<TokenRecord>(TOKENS, &session.token_id).await? else { return Ok(None) };
        self.caller_of(token).await
    }

    /// Signs out: the session ends (an unknown cookie is no error).
    pub async fn end_session(&self, cookie: &str) -> Result<(), TenantError> {
        if let Some(key) = key_of(cookie) {
            self.kv.kv_delete(SESSIONS, &key).await?;
        }
        Ok(())
    }

    /// Drops sessions whose expiry hour has passed (the oldest first).
    async fn drop_expired(&self, now_ms: u64) -> Result<(), TenantError> {
        let this_hour = format!("{:012}", now_ms / 3_600_000);
        for key in self.kv.kv_keys(SESSIONS, "", PRUNED_PER_SIGN_IN).await? {
            if key.as_str() >= this_hour.as_str() {
                break;
            }
            self.kv.kv_delete(SESSIONS, &key).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::service::{Quotas, Scope};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_session_acts_for_its_token_until_it_ends_or_the_token_is_revoked() {
        let tenants = Tenants::new(Arc::new(crate::store::MemoryStore::new()));
        tenants.create("acme", Quotas::default()).await.unwrap();
        let (token, _) = tenants.create_token("acme", vec![Scope::RunsRead]).await.unwrap();
        assert_eq!(tenants.start_session("weft_00_bad").await.unwrap(), None);
        let cookie = tenants.start_session(&token).await.unwrap().unwrap();
        assert!(!cookie.contains(&token), "the cookie is not the token");
        assert_eq!(tenants.session(&cookie).await.unwrap().unwrap().tenant, "acme");
        assert_eq!(tenants.session(&token).await.unwrap(), None, "a token is no session cookie");
        tenants.end_session(&cookie).await.unwrap();
        assert_eq!(tenants.session(&cookie).await.unwrap(), None, "signed out");
        let again = tenants.start_session(&token).await.unwrap().unwrap();
        tenants.revoke_token(&token).await.unwrap();
        assert_eq!(tenants.session(&again).await.unwrap(), None, "its token was revoked");
    }
}
