//! `startLedgerVerification` and `ledgerVerification`: the full verification as a background
//! job, with its progress and its result.

use std::sync::Arc;

use async_graphql::{Enum, Object, ID};
use chrono::{DateTime, Utc};

use super::query::{verification, LedgerVerification};
use crate::ledger::{JobPhase, VerifyJob};

/// Where a background verification stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum VerificationPhase {
    /// Checking every hash and link of the chain and folding the events again.
    Chain,
    /// Recomputing every leaf of the transparency log.
    Tree,
    /// Finished: see `result` (or `error`).
    Done,
}

/// A full verification running in the background (`startLedgerVerification`).
pub struct VerificationJob(pub Arc<VerifyJob>);

#[Object]
impl VerificationJob {
    /// Its id (`ledgerVerification(id:)`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn phase(&self) -> VerificationPhase {
        match self.0.phase() {
            JobPhase::Chain => VerificationPhase::Chain,
            JobPhase::Tree => VerificationPhase::Tree,
            JobPhase::Done => VerificationPhase::Done,
        }
    }

    /// Events checked so far.
    async fn checked(&self) -> u64 {
        self.0.checked()
    }

    /// The head revision when it started: it checks at least these events (and those
    /// recorded while it runs).
    async fn total(&self) -> u64 {
        self.0.total
    }

    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }

    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at()
    }

    /// The result once `phase` is `DONE`, as `verifyLedgerFull` gives it; null before, and
    /// when it could not run (`error`).
    async fn result(&self) -> Option<LedgerVerification> {
        match self.0.result()? {
            Ok(r) => Some(verification(r.verification.clone(), r.tree_damage.clone(), r.root)),
            Err(_) => None,
        }
    }

    /// Why it could not run (a store error), when it could not.
    async fn error(&self) -> Option<String> {
        self.0.result()?.as_ref().err().cloned()
    }
}
