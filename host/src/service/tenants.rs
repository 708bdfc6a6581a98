//! Tenants and their tokens, kept in the run store's key-value state (so
//! every store holds them, and `weft tenant` and `weft serve` share them).
//!
//! A token is `weft_<id>_<secret>`: `<id>` finds its record, `<secret>` is
//! 32 random bytes in base64url. Only the SHA-256 of the whole token is
//! stored, and it is compared in constant time. The token names its tenant
//! and its scopes; nothing a client sends besides it can choose a tenant.
//!
//! The service's scopes start with `weft.service/`, which no workflow's
//! scope can (those start with a length: see [`kv_scope`](crate::contract::kv_scope)).

use crate::contract::{KeyValue, KvError};
use base64::Engine as _;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

/// Where tenant records are kept (key: the tenant's name).
const TENANTS: &str = "weft.service/tenants";
/// Where token records are kept (key: the token's id).
pub(super) const TOKENS: &str = "weft.service/tokens";
/// Where the service's own secret is kept.
const SECRETS: &str = "weft.service/secrets";
/// The most tenants or tokens a listing reads.
const MAX_LISTED: usize = 100_000;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// Read runs, their journals, logs and events, the DLQ.
    #[serde(rename = "runs:read")]
    RunsRead,
    /// Submit, cancel, resume and replay runs; signal gates.
    #[serde(rename = "runs:write")]
    RunsWrite,
    /// Register workflows.
    #[serde(rename = "workflows:write")]
    WorkflowsWrite,
    /// Upload components.
    #[serde(rename = "components:write")]
    ComponentsWrite,
    /// Everything the tenant may do.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in the order `weft tenant` lists them.
    pub const ALL: [Scope; 5] =
        [Self::RunsRead, Self::RunsWrite, Self::WorkflowsWrite, Self::ComponentsWrite, Self::Admin];

    /// The scope's name (`runs:read`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunsRead => "runs:read",
            Self::RunsWrite => "runs:write",
            Self::WorkflowsWrite => "workflows:write",
            Self::ComponentsWrite => "components:write",
            Self::Admin => "admin",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What one tenant may use. Going over a quota answers 429.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Runs pending or running at once.
    pub max_concurrent_runs: u32,
    /// Submissions per minute.
    pub submissions_per_minute: u32,
    /// The most fuel one attempt may be granted (None: the host's default).
    pub max_step_fuel: Option<u64>,
    /// The most linear memory one attempt may be granted, in MiB.
    pub max_step_memory_mb: Option<u64>,
    /// The longest one attempt may run, in milliseconds.
    pub max_step_timeout_ms: Option<u64>,
    /// The most fuel the tenant's attempts may consume in one clock hour,
    /// counted by every worker (None: no limit). Once it is used up, new
    /// runs are refused until the next hour.
    pub max_fuel_per_hour: Option<u64>,
    /// The most bytes of components and workflows the tenant may keep
    /// (None: no limit).
    pub max_stored_bytes: Option<u64>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 100,
            submissions_per_minute: 600,
            max_step_fuel: None,
            max_step_memory_mb: None,
            max_step_timeout_ms: None,
            max_fuel_per_hour: None,
            max_stored_bytes: Some(DEFAULT_MAX_STORED_BYTES),
        }
    }
}

/// A new tenant's `max_stored_bytes`: 1 GiB.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 1 << 30;

impl Quotas {
    /// The per-attempt ceiling these quotas set, if any.
    pub fn ceiling(&self) -> Option<crate::engine::Ceiling> {
        let c = crate::engine::Ceiling {
            fuel: self.max_step_fuel,
            memory_bytes: self.max_step_memory_mb.map(|m| m.saturating_mul(1 << 20)),
            timeout_ms: self.max_step_timeout_ms,
        };
        (c != crate::engine::Ceiling::default()).then_some(c)
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Its name: lowercase letters, digits and `-`, at most 63.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// What it may use.
    pub quotas: Quotas,
}

/// A stored token (its secret is not kept: only the hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id (the part after `weft_`).
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// The hex SHA-256 of the whole token.
    pub sha256: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// Who made a request: the tenant and scopes of its token.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The tenant.
    pub tenant: String,
    /// The token's id.
    pub token_id: String,
    /// What the token allows.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the token allows `scope` (`admin` allows everything).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }
}

/// Why a tenant or token command failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The name breaks the naming rule.
    #[error(
        "`{0}` is not a tenant name: use 1 to 63 lowercase letters, digits and `-`, starting with a letter or digit"
    )]
    BadName(String),
    /// A tenant with this name exists.
    #[error("a tenant named `{0}` exists already; `weft tenant list` shows the tenants")]
    Exists(String),
    /// No tenant has this name.
    #[error("no tenant is named `{0}`; `weft tenant list` shows the tenants, `weft tenant create` makes one")]
    NoTenant(String),
    /// No token has this id.
    #[error("no token has the id `{0}` (a token's id is the part between `weft_` and the next `_`)")]
    NoToken(String),
    /// The store failed.
    #[error("the run store failed: {0}")]
    Store(#[from] KvError),
    /// A stored record does not parse.
    #[error("a stored tenant record is damaged: {0}")]
    Damaged(String),
}

/// The tenants and tokens of a store.
#[derive(Clone)]
pub struct Tenants {
    pub(super) kv: Arc<dyn KeyValue>,
}

impl Tenants {
    /// The tenants kept in `kv`.
    pub fn new(kv: Arc<dyn KeyValue>) -> Self {
        Self { kv }
    }

    /// Creates a tenant.
    pub async fn create(&self, name: &str, quotas: Quotas) -> Result<Tenant, TenantError> {
        if !valid_name(name) {
            return Err(TenantError::BadName(name.into()));
        }
        if self.get(name).await?.is_some() {
            return Err(TenantError::Exists(name.into()));
        }
        let tenant = Tenant { name: name.into(), created_at: crate::store::now_rfc3339(), quotas };
        self.put(TENANTS, name, &tenant).await?;
        Ok(tenant)
    }

    /// Replaces the quotas of the tenant `name`; returns the tenant.
    pub async fn set_quotas(&self, name: &str, quotas: Quotas) -> Result<Tenant, TenantError> {
        let Some(mut tenant) = self.get(name).await? else {
            return Err(TenantError::NoTenant(name.into()));
        };
        tenant.quotas = quotas;
        self.put(TENANTS, name, &tenant).await?;
        Ok(tenant)
    }

    /// The tenant named `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Tenant>, TenantError> {
        self.read(TENANTS, name).await
    }

    /// Every tenant, by name.
    pub async fn list(&self) -> Result<Vec<Tenant>, TenantError> {
        let mut out = Vec::new();
        for name in self.kv.kv_keys(TENANTS, "", MAX_LISTED).await? {
            if let Some(t) = self.get(&name).await? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Makes a token for `tenant` with `scopes`; returns it (shown once:
    /// only its hash is kept) and its record.
    pub async fn create_token(&self, tenant: &str, scopes: Vec<Scope>) -> Result<(String, TokenRecord), TenantError> {
        if self.get(tenant).await?.is_none() {
            return Err(TenantError::NoTenant(tenant.into()));
        }
        let mut rng = rand::rng();
        let id: [u8; 6] = rng.random();
        let secret: [u8; 32] = rng.random();
        let id = hex::encode(id);
        let token = format!("weft_{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        let record = TokenRecord {
            id: id.clone(),
            tenant: tenant.into(),
            scopes,
            sha256: hex::encode(Sha256::digest(token.as_bytes())),
            created_at: crate::store::now_rfc3339(),
            revoked_at: None,
        };
        self.put(TOKENS, &id, &record).await?;
        Ok((token, record))
    }

    /// Every token of `tenant` (all tenants': None), revoked ones included.
    pub async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRecord>, TenantError> {
        let mut out = Vec::new();
        for id in self.kv.kv_keys(TOKENS, "", MAX_LISTED).await? {
            if let Some(t) = self.read::<TokenRecord>(TOKENS, &id).await?
                && tenant.is_none_or(|name| name == t.tenant)
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Revokes the token `id` (or a whole token, whose id is read from it).
    /// Revoking twice is no error.
    pub async fn revoke_token(&self, id_or_token: &str) -> Result<TokenRecord, TenantError> {
        let id = token_id(id_or_token).unwrap_or(id_or_token);
        let Some(mut record) = self.read::<TokenRecord>(TOKENS, id).await? else {
            return Err(TenantError::NoToken(id.into()));
        };
        if record.revoked_at.is_none() {
            record.revoked_at = Some(crate::store::now_rfc3339());
            self.put(TOKENS, id, &record).await?;
        }
        Ok(record)
    }

    /// The service's secret (32 random bytes, made on first use and kept
    /// in the store, so that every server process shares it): what makes
    /// ids derived from clients' keys unguessable to other tenants.
    pub async fn service_secret(&self) -> Result<Vec<u8>, TenantError> {
        if let Some(s) = self.kv.kv_get(SECRETS, "derivation").await? {
            return Ok(s);
        }
        let fresh: [u8; 32] = rand::rng().random();
        self.kv.kv_set(SECRETS, "derivation", &fresh, u64::MAX).await?;
        // Two processes may have raced: the stored one is the one.
        Ok(self.kv.kv_get(SECRETS, "derivation").await?.unwrap_or_else(|| fresh.to_vec()))
    }

    /// The caller a token stands for; None when it is malformed, unknown,
    /// revoked, or its tenant is gone.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, TenantError> {
        let Some(id) = token_id(token) else { return Ok(None) };
        let Some(record) = self.read::<TokenRecord>(TOKENS, id).await? else { return Ok(None) };
        let presented = hex::encode(Sha256::digest(token.as_bytes()));
        let same: bool = presented.as_bytes().ct_eq(record.sha256.as_bytes()).into();
        if !same {
            return Ok(None);
        }
        self.caller_of(record).await
    }

    /// The caller of a token's record; None when it is revoked or its
    /// tenant is gone.
    pub(super) async fn caller_of(&self, record: TokenRecord) -> Result<Option<Caller>, TenantError> {
        if record.revoked_at.is_some() || self.get(&record.tenant).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(Caller { tenant: record.tenant, token_id: record.id, scopes: record.scopes }))
    }

    /// The record `key` of `scope`, if any.
    pub(super) async fn read<T: serde::de::DeserializeOwned>(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<T>, TenantError> {
        match self.kv.kv_get(scope, key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| TenantError::Damaged(e.to_string())),
            None => Ok(None),
        }
    }

    /// Stores `value` as the record `key` of `scope`.
    pub(super) async fn put<T: Serialize>(&self, scope: &str, key: &str, value: &T) -> Result<(), TenantError> {
        let bytes = serde_json::to_vec(value).map_err(|e| TenantError::Damaged(e.to_string()))?;
        Ok(self.kv.kv_set(scope, key, &bytes, u64::MAX).await?)
    }
}

/// The id inside a token `weft_<id>_<secret>`, if it has that shape.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("weft_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty()).then_some(id)
}

/// Whether `name` may name a tenant.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_authenticates_until_it_is_revoked() {
        let tenants = Tenants::new(Arc::new(crate::store::MemoryStore::new()));
        tenants.create("acme", Quotas::default()).await.unwrap();
        let (token, record) = tenants.create_token("acme", vec![Scope::RunsRead]).await.unwrap();
        assert!(token.starts_with(&format!("weft_{}_", record.id)));
        let caller = tenants.authenticate(&token).await.unwrap().unwrap();
        assert_eq!(caller.tenant, "acme");
        assert!(caller.may(Scope::RunsRead) && !caller.may(Scope::RunsWrite));
        // One character off is another token.
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(tenants.authenticate(&forged).await.unwrap(), None);
        tenants.revoke_token(&token).await.unwrap();
        assert_eq!(tenants.authenticate(&token).await.unwrap(), None);
    }

    #[tokio::test]
    async fn names_are_checked_and_unique() {
        let tenants = Tenants::new(Arc::new(crate::store::MemoryStore::new()));
        assert!(matches!(tenants.create("Acme", Quotas::default()).await, Err(TenantError::BadName(_))));
        tenants.create("acme", Quotas::default()).await.unwrap();
        assert!(matches!(tenants.create("acme", Quotas::default()).await, Err(TenantError::Exists(_))));
        assert!(matches!(tenants.create_token("nobody", vec![]).await, Err(TenantError::NoTenant(_))));
    }
}
