//! tradeledger: a GraphQL server over an event-sourced ledger of official trade-statistics
//! releases.
//!
//! # Layout
//!
//! Imports point one way, top to bottom (checked by the `layers` unit test):
//! `cli` → `app` → [`http`] → [`auth`] → [`graphql`] → [`tlog`] → [`ledger`] → [`projection`]
//! → [`store`] → [`domain`].
//!
//! - [`cli`]: the command line; `serve` runs [`app::App`]; [`logging`]: where and how
//!   diagnostics are written; [`healthcheck`]: the container's health check, a client of
//!   `/healthz` and `/readyz`.
//! - [`app`]: the composition root: [`app::App::build`] opens the store and the keys, loads
//!   the fixtures and binds the listener, for `serve` and the tests alike.
//! - [`settings`]: every limit of `serve` as one clap struct, defaults included.
//! - [`snapshot`]: the local projection snapshot, read at start-up and written in the
//!   background and on shutdown, so that a start folds only the log's tail.
//! - [`web`]: the browser side: GraphiQL, the web interface and their embedded assets.
//! - [`http`]: the router, GraphQL over HTTP, the WebSocket protocols, the per-revision
//!   response cache, the accept loop (connection cap, timeouts, shutdown with a deadline),
//!   Prometheus metrics, health and the checkpoint endpoint.
//! - [`sdmx`]: SDMX-REST 1.5 structure and data queries over the ledger, in SDMX-ML 2.1 and
//!   SDMX-CSV 1.0, and SDMX-REST 2.2 data queries in SDMX-JSON 2.0, SDMX-ML 3.0 and
//!   SDMX-CSV 2.0, streamed.
//! - [`auth`]: tokens, and who a presented token makes the caller.
//! - [`graphql`]: the schema: query, mutation and subscription roots, scalars, limits,
//!   request parsing and error codes.
//! - [`import`]: release files (JSON and CSV).
//! - [`export`]: the log as JSON Lines (`export`, `import --event-log`): audit and backup.
//! - [`tlog`]: the transparency log: a Merkle tree over the events, signed checkpoints,
//!   proofs, and the witness.
//! - [`ledger`]: the single writer (group commit, idempotency, optimistic concurrency) and the
//!   shared handle readers and subscribers use.
//! - [`projection`]: in-memory views folded from the log: version lists per figure, as-of
//!   lookups, breakdowns, revision statistics.
//! - [`store`]: the append-only event log with its SHA-256 hash chain; sled by default,
//!   behind the small [`store::LogStore`] trait.
//! - [`domain`]: pure types: periods, datasets and series keys, releases, events, validation.
//! - [`error_code`]: the one enum of error classes clients see; mapped to strings only in
//!   `graphql::error`.
//! - [`generate`]: synthetic release files for benchmarks.
//! - `pool` (private): the bounded pool GraphQL operations run on, away from the I/O
//!   threads, with admission control and deadlines that cancel; `bounded` (private): a map
//!   bounded in entries and bytes.

pub mod app;
pub mod auth;
mod bounded;
pub mod cli;
pub mod domain;
pub mod error_code;
pub mod export;
pub mod generate;
pub mod graphql;
pub mod healthcheck;
pub mod http;
pub mod import;
#[cfg(test)]
mod layers;
pub mod ledger;
pub mod logging;
pub mod online;
mod pool;
pub mod projection;
pub mod sdmx;
pub mod settings;
pub mod snapshot;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod tlog;
pub mod web;

pub use ledger::{Ledger, LedgerError};
