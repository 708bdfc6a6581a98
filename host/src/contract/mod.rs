//! The types every layer passes around, and nothing else: this module
//! imports no other module of the crate.
//!
//! - [`RunOutput`] is the ONEX orchestrator contract's output subcontract; its
//!   [`ExecutionStatus`], [`ErrorRecord`]s and [`ActionRecord`]s (and the
//!   [`UndeliveredAction`]s listed beside them) are what the engine builds,
//!   the store keeps and the CLI prints.
//! - [`AttemptReport`] is what the sandbox returns for one attempt of one
//!   step: a [`StepSuccess`] or a [`StepFailure`], its [`AttemptStats`] and
//!   the guest's [`LogLine`]s. The engine journals it as it is.
//! - [`FailureKind`] names a failure without its details: retry policies,
//!   journals and exit codes all speak it.
//! - [`ExprBudget`] bounds one CEL evaluation; the policy sets it and the
//!   engine enforces it.
//! - [`KeyValue`] is the key-value state effect steps may be granted: the
//!   stores implement it and the sandbox calls it.
//! - [`StreamSink`] takes the items a step emits while it runs (streaming
//!   mode): the engine implements it and the sandbox calls it.
//! - [`wit`] is the plugin contract's WIT itself, embedded.
//! - [`now_ms`] and [`now_rfc3339`] are the one clock every record is
//!   stamped with.
//!
//! Imports flow one way: `contract ← workflow ← engine → sandbox` and
//! `engine → store`; `store` imports only `contract`, and `sandbox` only
//! `contract` and the capped file reader (`files`).

mod attempt;
mod config;
mod expr_budget;
mod failure;
mod kv;
mod output;
mod records;
mod status;
mod stream;
mod time;
pub mod wit;

pub use attempt::{ActionKind, AttemptReport, AttemptStats, EmittedAction, LogLevel, LogLine, LogSource, StepSuccess};
pub use config::{ConfigLayer, ParallelLayer, RetryLayer, TimeoutLayer};
pub use expr_budget::ExprBudget;
pub use failure::{FailureKind, PluginErrorKind, StepFailure};
pub use kv::{KV_ROW_OVERHEAD, KeyValue, KvError, KvFuture, kv_row_cost, kv_scope, quota_message};
pub use output::RunOutput;
pub use records::{ActionRecord, ErrorRecord, UndeliveredAction};
pub use status::ExecutionStatus;
pub use stream::{StreamFuture, StreamSink};
pub use time::{now_ms, now_rfc3339, parse_rfc3339_ms};
