//! A full verification in the background: started by one request, its progress and result
//! read by later ones, so that no request is held open while the whole log is walked.
//! One runs at a time; starting one while another runs gives the one running. Only the last
//! job is kept.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use super::{Ledger, LedgerError, Verification};
use crate::store::Damage;
use crate::tlog::Node;

/// What a finished job found: the chain and fold, the transparency log's leaves, its root.
#[derive(Debug, Clone)]
pub struct JobResult {
    pub verification: Verification,
    pub tree_damage: Option<Damage>,
    pub root: Node,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    /// Checking the hash chain and folding the events again.
    Chain,
    /// Recomputing the transparency log's leaves.
    Tree,
    Done,
}

/// A full verification started in the background.
#[derive(Debug)]
pub struct VerifyJob {
    pub id: u64,
    pub started_at: DateTime<Utc>,
    /// The head revision when it started: what it covers at least.
    pub total: u64,
    checked: AtomicU64,
    phase: AtomicU8,
    finished_at: OnceLock<DateTime<Utc>>,
    result: OnceLock<Result<JobResult, String>>,
    /// Turns true when the job is done, for [`VerifyJob::wait`].
    done: tokio::sync::watch::Sender<bool>,
}

impl VerifyJob {
    /// Events checked so far (in the chain phase; the total once past it).
    pub fn checked(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    pub fn phase(&self) -> JobPhase {
        match self.phase.load(Ordering::Acquire) {
            0 => JobPhase::Chain,
            1 => JobPhase::Tree,
            _ => JobPhase::Done,
        }
    }

    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.finished_at.get().copied()
    }

    /// The outcome once done: `Err` when the verification could not run (a store error).
    pub fn result(&self) -> Option<&Result<JobResult, String>> {
        self.result.get()
    }

    /// Waits at most `budget` for the job to finish; true if it has.
    pub async fn wait(&self, budget: std::time::Duration) -> bool {
        let mut done = self.done.subscribe();
        let finished = matches!(tokio::time::timeout(budget, done.wait_for(|d| *d)).await, Ok(Ok(_)));
        finished
    }

    fn finish(&self, result: Result<JobResult, String>) {
        let _ = self.result.set(result);
        let _ = self.finished_at.set(Utc::now());
        self.phase.store(2, Ordering::Release);
        self.done.send_replace(true);
    }
}

impl Ledger {
    /// Starts a full verification ([`Ledger::verify_in_turn`] and the transparency log's
    /// leaves) in the background, or gives the one running.
    pub fn start_verification(&self) -> Arc<VerifyJob> {
        let mut current = self.inner.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = current.as_ref().filter(|j| j.phase() != JobPhase::Done) {
            return job.clone();
        }
        let job = Arc::new(VerifyJob {
            id: current.as_ref().map_or(1, |j| j.id + 1),
            started_at: Utc::now(),
            total: self.read().head().revision,
            checked: AtomicU64::new(0),
            phase: AtomicU8::new(0),
            finished_at: OnceLock::new(),
            result: OnceLock::new(),
            done: tokio::sync::watch::channel(false).0,
        });
        *current = Some(job.clone());
        drop(current);
        let ledger = self.clone();
        let running = job.clone();
        tokio::spawn(async move {
            let outcome = ledger.run_job(&running).await;
            running.finish(outcome.map_err(|e| e.to_string()));
        });
        job
    }

    /// The turn full verifications take, held by the caller (tests: a verification that
    /// cannot finish); `None` while one runs.
    pub(crate) fn try_hold_verification(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.inner.verifying.clone().try_lock_owned().ok()
    }

    /// The last job started, if any.
    pub fn verification_job(&self) -> Option<Arc<VerifyJob>> {
        self.inner.job.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn run_job(&self, job: &Arc<VerifyJob>) -> Result<JobResult, LedgerError> {
        let turn = self.inner.verifying.clone().lock_owned().await;
        let ledger = self.clone();
        let progress = job.clone();
        let (verification, tree) = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let v = ledger.verify_reporting(Some(&progress.checked))?;
            progress.checked.store(v.checked, Ordering::Relaxed);
            progress.phase.store(1, Ordering::Release);
            let tree = crate::store::check_tree(ledger.inner.store.as_ref(), v.checked).map_err(LedgerError::from)?;
            Ok::<_, LedgerError>((v, tree))
        })
        .await
        .map_err(|e| LedgerError::storage(format!("verification failed: {e}")))??;
        if verification.damage.is_some() {
            let mut verified = self.inner.verified.lock().await;
            if verified.verification.damage.is_none() {
                verified.verification = verification.clone();
            }
        }
        Ok(JobResult {
            verification,
            tree_damage: tree.damage,
            root: tree.root,
        })
    }
}
