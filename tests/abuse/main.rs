//! The abuse suite: each numbered class of the hostile-clients issue reproduced against the
//! real `tradeledger` binary (started on port 0 over a temp data directory), and the
//! protection that stops it. Every test here fails when its protection is removed.
//!
//! One binary with a module per class, so that the suite links once.

mod audit_log;
mod cost;
mod fastpath;
mod frontdoor;
mod jetstream;
mod ledger;
mod memory;
mod public2;
mod round2;
mod runtime;
mod snapshot;
mod store_damage;
#[path = "../support/mod.rs"]
mod support;
mod witness;

use support::proc_support;
