//! tradeledger: a GraphQL server over an event-sourced ledger of official trade-statistics
//! releases.
//!
//! # Layout
//!
//! - [`error_code`]: the one enum of error classes clients see; mapped to strings only in
//!   `graphql::error`.
//! - [`domain`]: pure types: periods, datasets and series keys, releases, events, validation.
//! - [`store`]: the append-only event log with its SHA-256 hash chain; sled by default,
//!   behind the small [`store::LogStore`] trait.
//! - [`projection`]: in-memory views folded from the log: version lists per figure, as-of
//!   lookups, breakdowns, revision statistics.
//! - [`ledger`]: the single writer (group commit, idempotency, optimistic concurrency) and the
//!   shared handle readers and subscribers use.
//! - [`import`]: release files (JSON and CSV).
//! - [`export`]: the log as JSON Lines (`export`, `import --event-log`): audit and backup.
//! - [`graphql`]: the schema: query, mutation and subscription roots, scalars, limits.
//! - [`server`], [`ws`], [`auth`], [`metrics`], [`cache`]: HTTP and WebSocket serving, tokens,
//!   Prometheus metrics, and the per-revision response cache.
//! - [`conn`]: the accept loop: connection cap, header-read and idle timeouts, shutdown
//!   with a deadline.
//! - [`pool`]: the bounded pool GraphQL operations run on, away from the I/O threads, with
//!   admission control and deadlines that cancel.
//! - [`tlog`]: the transparency log: a Merkle tree over the events, signed checkpoints,
//!   proofs, and the witness.
//! - [`web`]: the browser side: GraphiQL, the start page and their embedded assets.
//! - [`cli`]: the command line; [`logging`]: where and how diagnostics are written.

pub mod auth;
pub mod cache;
pub mod cli;
pub mod conn;
pub mod domain;
pub mod error_code;
pub mod export;
pub mod generate;
pub mod graphql;
pub mod import;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod pool;
pub mod projection;
pub mod server;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod tlog;
pub mod web;
pub mod ws;

pub use ledger::{Ledger, LedgerError};
