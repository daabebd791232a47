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

pub mod domain;
pub mod import;
pub mod ledger;
pub mod projection;
pub mod store;

pub use ledger::{Ledger, LedgerError};
