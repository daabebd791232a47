//! Hooks for tests that damage the store on purpose or look behind the ledger. Not API: the
//! server never uses them, and nothing else should.
//!
//! They are extension traits in a hidden module, rather than public methods, so that the
//! ledger's public surface offers no way past the single writer, while the tests keep their
//! calls (`use tradeledger::testing::*;`). A cargo feature enabled only by dev-dependencies
//! would hide them better but builds the crate twice.

use std::sync::Arc;

use crate::ledger::Ledger;
use crate::store::{LogStore, SledStore};

/// Direct access to sled's trees, to tamper with the log.
pub trait SledTesting {
    /// The raw events tree.
    fn events_tree(&self) -> sled::Tree;
    /// The raw tree of transparency log leaves.
    fn tlog_tree(&self) -> sled::Tree;
}

impl SledTesting for SledStore {
    fn events_tree(&self) -> sled::Tree {
        self.raw_events_tree()
    }

    fn tlog_tree(&self) -> sled::Tree {
        self.raw_tlog_tree()
    }
}

/// The store behind a ledger. Appending through it bypasses the writer: tests only.
pub trait LedgerTesting {
    fn store(&self) -> &Arc<dyn LogStore>;
    /// Takes the turn full verifications wait for, so that one cannot finish while the guard
    /// is held; `None` while one runs.
    fn hold_verification(&self) -> Option<tokio::sync::OwnedMutexGuard<()>>;
}

impl LedgerTesting for Ledger {
    fn store(&self) -> &Arc<dyn LogStore> {
        self.log()
    }

    fn hold_verification(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.try_hold_verification()
    }
}
