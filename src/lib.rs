//! tradeledger: a GraphQL server over an event-sourced ledger of official trade-statistics
//! releases.
//!
//! # Layout
//!
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
//! - [`cli`]: the command line.

pub mod app;
pub mod auth;
mod bounded;
pub mod cli;
pub mod domain;
pub mod export;
pub mod generate;
pub mod graphql;
pub mod http;
pub mod import;
pub mod ledger;
pub mod pool;
pub mod projection;
pub mod settings;
pub mod store;
pub mod tlog;

pub use ledger::{Ledger, LedgerError};
