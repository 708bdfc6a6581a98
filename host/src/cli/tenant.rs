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
    /// Change a tenant's quotas.
    Quotas(QuotasArgs),
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
    #[command(flatten)]
    quotas: QuotaArgs,
    #[command(flatten)]
    store: DriveStoreArgs,
}

/// `weft tenant quotas`
#[derive(Args)]
pub struct QuotasArgs {
    /// The tenant whose quotas change (only the ones given; `none` lifts a limit).
    name: String,
    #[command(flatten)]
    quotas: QuotaArgs,
    #[command(flatten)]
    store: DriveStoreArgs,
}

/// A tenant's quotas, as flags; each one given replaces that quota.
#[derive(Args)]
pub struct QuotaArgs {
    /// Runs pending or running at once (default 100).
    #[arg(long)]
    max_concurrent_runs: Option<u32>,
    /// Submissions per minute (default 600).
    #[arg(long)]
    submissions_per_minute: Option<u32>,
    /// The most fuel one attempt of its runs may be granted, or `none` (default: the host's).
    #[arg(long, value_parser = limit)]
    max_step_fuel: Option<Limit>,
    /// The most linear memory one attempt may be granted, in MiB, or `none`.
    #[arg(long, value_parser = limit)]
    max_step_memory_mb: Option<Limit>,
    /// The longest one attempt may run, in milliseconds, or `none`.
    #[arg(long, value_parser = limit)]
    max_step_timeout_ms: Option<Limit>,
    /// The most fuel its attempts may consume in one clock hour, or `none` (default none).
    #[arg(long, value_parser = limit)]
    max_fuel_per_hour: Option<Limit>,
    /// The most bytes of components and workflows it may keep, as a
    /// number with an optional KiB, MiB or GiB, or `none` (default 1GiB).
    #[arg(long, value_parser = size_limit)]
    max_stored_bytes: Option<Limit>,
}

/// A limit given on the command line: a number, or `none` for no limit.
#[derive(Clone, Copy)]
struct Limit(Option<u64>);

fn limit(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    s.parse().map(|n| Limit(Some(n))).map_err(|_| format!("`{s}` is neither a whole number nor `none`"))
}

fn size_limit(s: &str) -> Result<Limit, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale: u64 = match unit.trim() {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ if t == "none" => return Ok(Limit(None)),
        other => {
            return Err(format!(
                "`{other}` is not a unit here: write a whole number of bytes, KiB, MiB or GiB (`512MiB`, not `1.5GiB`), or `none`"
            ));
        }
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("`{s}` is not a size: write a whole number and a unit, like `512MiB`"))?;
    n.checked_mul(scale).map(|b| Limit(Some(b))).ok_or_else(|| format!("`{s}` is too large"))
}

impl QuotaArgs {
    /// `q` with every quota given here replaced.
    fn apply(&self, mut q: Quotas) -> Quotas {
        let set = |slot: &mut Option<u64>, given: Option<Limit>| {
            if let Some(Limit(v)) = given {
                *slot = v;
            }
        };
        if let Some(n) = self.max_concurrent_runs {
            q.max_concurrent_runs = n;
        }
        if let Some(n) = self.submissions_per_minute {
            q.submissions_per_minute = n;
        }
        set(&mut q.max_step_fuel, self.max_step_fuel);
        set(&mut q.max_step_memory_mb, self.max_step_memory_mb);
        set(&mut q.max_step_timeout_ms, self.max_step_timeout_ms);
        set(&mut q.max_fuel_per_hour, self.max_fuel_per_hour);
        set(&mut q.max_stored_bytes, self.max_stored_bytes);
        q
    }
}

/// One line of quotas, as `weft tenant list` and `quotas` print them.
fn quota_line(q: &Quotas) -> String {
    let shown = |v: Option<u64>| v.map_or("none".to_string(), |n| n.to_string());
    format!(
        "max_concurrent_runs {}\tsubmissions_per_minute {}\tmax_step_fuel {}\tmax_step_memory_mb {}\t\
         max_step_timeout_ms {}\tmax_fuel_per_hour {}\tmax_stored_bytes {}",
        q.max_concurrent_runs,
        q.submissions_per_minute,
        shown(q.max_step_fuel),
        shown(q.max_step_memory_mb),
        shown(q.max_step_timeout_ms),
        shown(q.max_fuel_per_hour),
        shown(q.max_stored_bytes),
    )
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
                let quotas = a.quotas.apply(Quotas::default());
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
                        outln!("{}\tcreated {}\t{}", t.name, t.created_at, quota_line(&t.quotas));
                    }
                    if all.is_empty() {
                        noteln!("no tenants yet; `weft tenant create NAME` makes one");
                    }
                }
            }
            Self::Quotas(a) => {
                let tenants = tenants(&a.store)?;
                let Some(t) = tenants.get(&a.name).await.map_err(tenant_error)? else {
                    return Err(tenant_error(TenantError::NoTenant(a.name)));
                };
                let t = tenants.set_quotas(&t.name, a.quotas.apply(t.quotas.clone())).await.map_err(tenant_error)?;
                outln!("{}\t{}", t.name, quota_line(&t.quotas));
                noteln!("the new quotas apply to `{}`'s next requests, on every server", t.name);
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
