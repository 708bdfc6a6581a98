//! `weft tenant`: the operator's tenants and their tokens, kept in the run
//! store that `weft serve` uses. A token is printed once, on stdout, and
//! only its hash is kept.

use super::args::DriveStoreArgs;
use super::exit;
use super::output::{noteln, outln, print_json};
use super::usage;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use weft::service::{Quotas, Scope, TenantError, Tenants};

/// `weft tenant …`
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create(CreateArgs),
    /// List the tenants.
    List(ListArgs),
    /// Make, list and revoke a tenant's API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `weft tenant token …`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token for a tenant, printed once on stdout.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(TokenListArgs),
    /// Revoke a token, by its id or the token itself.
    Revoke(TokenRevokeArgs),
}

/// `weft tenant create`
#[derive(Args)]
pub struct CreateArgs {
    /// The tenant's name: lowercase letters, digits and `-`.
    name: String,
    /// Runs pending or running at once.
    #[arg(long, default_value_t = Quotas::default().max_concurrent_runs)]
    max_concurrent_runs: u32,
    /// Submissions per minute.
    #[arg(long, default_value_t = Quotas::default().submissions_per_minute)]
    submissions_per_minute: u32,
    /// The most fuel one attempt of its runs may be granted (default: the host's).
    #[arg(long)]
    max_step_fuel: Option<u64>,
    /// The most linear memory one attempt may be granted, in MiB.
    #[arg(long)]
    max_step_memory_mb: Option<u64>,
    /// The longest one attempt may run, in milliseconds.
    #[arg(long)]
    max_step_timeout_ms: Option<u64>,
    #[command(flatten)]
    store: DriveStoreArgs,
}

/// `weft tenant list`
#[derive(Args)]
pub struct ListArgs {
    /// Print JSON instead of a line per tenant.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: DriveStoreArgs,
}

/// `weft tenant token create`
#[derive(Args)]
pub struct TokenCreateArgs {
    /// The tenant the token acts for.
    tenant: String,
    /// What it allows (repeatable): runs:read, runs:write, workflows:write,
    /// components:write, admin. Default: all but admin.
    #[arg(long = "scope", value_parser = parse_scope)]
    scopes: Vec<Scope>,
    #[command(flatten)]
    store: DriveStoreArgs,
}

/// `weft tenant token list`
#[derive(Args)]
pub struct TokenListArgs {
    /// Only this tenant's tokens.
    tenant: Option<String>,
    #[command(flatten)]
    store: DriveStoreArgs,
}

/// `weft tenant token revoke`
#[derive(Args)]
pub struct TokenRevokeArgs {
    /// The token's id (between `weft_` and the next `_`), or the whole token.
    token: String,
    #[command(flatten)]
    store: DriveStoreArgs,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("`{s}` is not a scope; use one of {}", all.join(", "))
    })
}

/// A tenant error: the operator's to fix (exit 2) unless the store failed.
fn tenant_error(e: TenantError) -> anyhow::Error {
    match e {
        TenantError::Store(_) | TenantError::Damaged(_) => anyhow::Error::new(e),
        other => usage(other.to_string()),
    }
}

fn tenants(store: &DriveStoreArgs) -> anyhow::Result<Tenants> {
    let store = store.open()?;
    let kv: std::sync::Arc<dyn weft::contract::KeyValue> = store;
    Ok(Tenants::new(kv))
}

impl TenantCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Create(a) => {
                let quotas = Quotas {
                    max_concurrent_runs: a.max_concurrent_runs,
                    submissions_per_minute: a.submissions_per_minute,
                    max_step_fuel: a.max_step_fuel,
                    max_step_memory_mb: a.max_step_memory_mb,
                    max_step_timeout_ms: a.max_step_timeout_ms,
                };
                let t = tenants(&a.store)?.create(&a.name, quotas).await.map_err(tenant_error)?;
                outln!("{}", t.name);
                noteln!("tenant `{}` created; make it a token with `weft tenant token create {}`", t.name, t.name);
            }
            Self::List(a) => {
                let all = tenants(&a.store)?.list().await.map_err(tenant_error)?;
                if a.json {
                    print_json(&all, "pretty")?;
                } else {
                    for t in &all {
                        outln!(
                            "{}\tcreated {}\tmax_concurrent_runs {}\tsubmissions_per_minute {}",
                            t.name,
                            t.created_at,
                            t.quotas.max_concurrent_runs,
                            t.quotas.submissions_per_minute
                        );
                    }
                    if all.is_empty() {
                        noteln!("no tenants yet; `weft tenant create NAME` makes one");
                    }
                }
            }
            Self::Token(TokenCommand::Create(a)) => {
                let scopes = if a.scopes.is_empty() {
                    Scope::ALL.into_iter().filter(|s| *s != Scope::Admin).collect()
                } else {
                    a.scopes
                };
                let (token, record) = tenants(&a.store)?.create_token(&a.tenant, scopes).await.map_err(tenant_error)?;
                outln!("{token}");
                let scopes: Vec<&str> = record.scopes.iter().map(|s| s.as_str()).collect();
                noteln!(
                    "token {} for tenant `{}` ({}); it is shown only now: keep it, or revoke it with `weft tenant \
                     token revoke {}`",
                    record.id,
                    record.tenant,
                    scopes.join(", "),
                    record.id
                );
            }
            Self::Token(TokenCommand::List(a)) => {
                for t in tenants(&a.store)?.tokens(a.tenant.as_deref()).await.map_err(tenant_error)? {
                    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                    let state = t.revoked_at.as_deref().map_or("active".to_string(), |at| format!("revoked {at}"));
                    outln!("{}\t{}\t{}\tcreated {}\t{state}", t.id, t.tenant, scopes.join(","), t.created_at);
                }
            }
            Self::Token(TokenCommand::Revoke(a)) => {
                let t = tenants(&a.store)?.revoke_token(&a.token).await.map_err(tenant_error)?;
                noteln!("token {} of tenant `{}` is revoked", t.id, t.tenant);
            }
        }
        Ok(exit::code(exit::OK))
    }
}
