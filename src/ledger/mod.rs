//! The ledger: one writer task in front of the event log, and the projections it keeps.
//!
//! Writes go through a single task so that revisions stay dense and ordered. The task
//! commits in groups: it takes every command waiting in its queue, appends their events in
//! one store transaction, waits for one flush, and only then updates the projection, answers
//! each caller and notifies subscribers. A caller is therefore never told of a write that
//! could still be lost, and a read after an acknowledged write sees it.
//!
//! When a write fails to reach the disk (a full disk, an I/O error), the callers of that
//! group are told so, further writes are refused, and the writer tries to bring the store
//! back with a growing pause ([`RECOVER_FIRST`] to [`RECOVER_MAX`]). Once a write reaches the
//! disk again, the projection takes in whatever of the failed group survived in the log (a
//! re-sent release then gets its original revision, `duplicate: true`) and writes resume,
//! without a restart.

mod command;
mod error;
mod fold;
mod gate;
mod schedule;
pub mod transparency;
mod verify_job;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockReadGuard};

use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::text::{quote_at_most, QUOTE};
use crate::domain::{Dataset, Release, ReleaseDraft};
use crate::projection::{Applied, Projection, ReleaseInfo};
use crate::store::{decode, Damage, Hash, Head, LogStore, StoredEvent};

use command::Command;
use error::{poisoned, writer_gone};
use writer::{Pending, Reply, MAX_GROUP};

pub use error::{LedgerError, OpenError};
pub use fold::{fold_log, fold_log_after, Prefold};
pub use gate::{HandedWrite, WriteGate};
pub use schedule::{Scheduled, REVEAL_POLL};
pub use verify_job::{JobPhase, JobResult, VerifyJob};
pub use writer::{RECOVER_FIRST, RECOVER_MAX};

/// The definition a release of `dataset` is validated against, and the frequency its periods
/// must have: the dataset's, or for one defined without, that of its figures (the writer
/// checks again, against the releases of its group).
pub(crate) fn definition_of(
    p: &Projection,
    dataset: &str,
) -> Result<(Arc<Dataset>, Option<crate::domain::Frequency>), LedgerError> {
    p.dataset(dataset)
        .map(|d| (d.def.clone(), d.frequency()))
        .ok_or_else(|| {
            LedgerError::bad_input(
                "dataset",
                format!("unknown dataset `{}`", quote_at_most(dataset, QUOTE)),
            )
        })
}

/// Capacity of the subscriber channel; a subscriber further behind reads from the projection.
const NOTICE_CAPACITY: usize = 4096;

impl<'a> From<&'a StoredEvent> for crate::projection::Recorded<'a> {
    fn from(e: &'a StoredEvent) -> Self {
        crate::projection::Recorded {
            revision: e.envelope.revision,
            hash: e.hash,
            recorded_at: e.envelope.recorded_at,
            actor: &e.envelope.actor,
            event: &e.envelope.event,
        }
    }
}

/// What a successful write returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub revision: u64,
    pub hash: Hash,
    /// True when the same content had been recorded before; nothing new was written.
    pub duplicate: bool,
    /// For releases: the release id (generated if the caller gave none).
    pub release: Option<Uuid>,
}

/// What [`Ledger::publish_gated`] returns: the commit, and the release as the projection
/// holds it once recorded (its position and info), taken by the writer under the lock of
/// its group, so that the caller need not read the projection again.
#[derive(Debug, Clone)]
pub struct Published {
    pub committed: Committed,
    /// `None` only if the release left the projection before the answer was made (it never
    /// does: releases are not removed).
    pub release: Option<(u32, ReleaseInfo)>,
}

/// Sent to subscribers after an event is durable and applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub revision: u64,
    pub applied: Applied,
}

/// An event with the exact bytes its hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub event: StoredEvent,
    /// The canonical JSON whose SHA-256 is the event's hash.
    pub canonical: String,
}

/// How the log looked when the ledger opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events that passed every check.
    pub checked: u64,
    /// The first damaged revision, if any.
    pub damage: Option<Damage>,
    /// True when only derived data (the projection kept in memory) disagrees with an intact
    /// chain of events: `tradeledger rebuild` repairs that.
    pub derived_only: bool,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.damage.is_none()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Serve reads from a damaged log (up to its last good revision) instead of refusing.
    pub read_only: bool,
}

/// The default of `--max-clock-skew`: five minutes.
pub const DEFAULT_MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

struct Inner {
    store: Arc<dyn LogStore>,
    state: RwLock<Projection>,
    commands: mpsc::Sender<Pending>,
    notices: broadcast::Sender<Arc<Notice>>,
    read_only: Option<String>,
    /// True when `read_only` is because the log is damaged.
    damaged: bool,
    /// Held by the full verification running, so that those run one at a time.
    verifying: Arc<tokio::sync::Mutex<()>>,
    /// How far verifications have covered the log. Held while one extends it.
    verified: Arc<tokio::sync::Mutex<Verified>>,
    /// The last full verification started in the background.
    job: Mutex<Option<Arc<verify_job::VerifyJob>>>,
    /// Why writes are refused for now: a write did not reach the disk and the writer has not
    /// brought the store back yet. Cleared once it has.
    storage_failure: Mutex<Option<String>>,
    /// Set when a recorded event does not apply to the projection, or the store lost events
    /// that were acknowledged: no further write is accepted until a restart re-reads the log.
    poisoned: AtomicBool,
    /// The key checkpoints of the transparency log are signed with, once configured.
    signer: std::sync::OnceLock<Arc<crate::tlog::Signer>>,
    /// The witnesses that cosign checkpoints, and their latest cosignatures, once configured.
    witnessing: std::sync::OnceLock<Arc<transparency::Witnessing>>,
    /// How far in the future a release's `publishedAt` may be, in milliseconds.
    max_clock_skew_ms: std::sync::atomic::AtomicU64,
    /// The head revision the last reader of `state` saw ([`Ledger::head_revision`]).
    seen_head: AtomicU64,
    /// Times `state` was taken for reading by [`Ledger::read`], [`Ledger::try_read`] or the
    /// writer deciding a group, for the tests that count them.
    #[cfg(test)]
    reads: AtomicU64,
}

/// The log as far as verifications have covered it: every event up to `head` was checked
/// (hash, link to the one before), by the fold at start-up or since.
#[derive(Debug, Clone)]
struct Verified {
    head: Head,
    verification: Verification,
}

/// Whether the ledger takes writes, for health and readiness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// True when a write would be attempted now.
    pub writable: bool,
    /// Started read-only (`--read-only`, or a damaged log).
    pub read_only: bool,
    /// Something is wrong: a damaged log, a store that failed to write, a ledger that needs
    /// a restart. False for a ledger that is read-only by choice.
    pub degraded: bool,
    /// Why writes are refused, when they are.
    pub reason: Option<String>,
}

/// Cheap-to-clone handle to the ledger.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl Ledger {
    /// Opens the ledger over `store`: folds the whole log, refusing a damaged one unless
    /// `options.read_only`. Must be called inside a tokio runtime (it spawns the writer).
    pub fn open(store: Arc<dyn LogStore>, options: OpenOptions) -> Result<(Ledger, Verification), OpenError> {
        Self::open_after(store, options, None)
    }

    /// [`Ledger::open`], continuing a fold of the same log made before `store` was opened.
    pub fn open_after(
        store: Arc<dyn LogStore>,
        options: OpenOptions,
        prefold: Option<Prefold>,
    ) -> Result<(Ledger, Verification), OpenError> {
        let (projection, verification) = fold_log_after(store.as_ref(), prefold)?;
        let read_only = match (&verification.damage, options.read_only) {
            (Some(d), false) => return Err(OpenError::Damaged(d.clone())),
            (Some(d), true) => Some(format!("the log is damaged at {d}")),
            (None, true) => Some("started with --read-only".to_owned()),
            (None, false) => None,
        };
        let (commands, rx) = mpsc::channel(MAX_GROUP);
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        let verified = Verified {
            head: Head {
                revision: projection.head().revision,
                hash: projection.head().hash,
            },
            verification: verification.clone(),
        };
        let seen_head = projection.head().revision;
        let inner = Arc::new(Inner {
            store,
            state: RwLock::new(projection),
            commands,
            notices,
            read_only,
            damaged: verification.damage.is_some(),
            verifying: Arc::default(),
            verified: Arc::new(tokio::sync::Mutex::new(verified)),
            job: Mutex::new(None),
            storage_failure: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            signer: Default::default(),
            witnessing: Default::default(),
            max_clock_skew_ms: (DEFAULT_MAX_CLOCK_SKEW.as_millis() as u64).into(),
            seen_head: AtomicU64::new(seen_head),
            #[cfg(test)]
            reads: AtomicU64::new(0),
        });
        tokio::spawn(writer::writer(Arc::downgrade(&inner), rx));
        if inner.read_only.is_none() {
            tokio::spawn(schedule::reveal_task(Arc::downgrade(&inner)));
        }
        Ok((Ledger { inner }, verification))
    }

    /// Read access to the projection. The guard blocks the thread: never hold it across
    /// `.await`. A write waiting for the lock keeps new readers out until it is done.
    pub fn read(&self) -> RwLockReadGuard<'_, Projection> {
        #[cfg(test)]
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let p = self.inner.state.read();
        self.saw(p.head().revision);
        p
    }

    /// [`Ledger::read`] when the lock is free for reading now, `None` when a reader would wait
    /// (a write waits for it): for background tasks that must never block a runtime thread.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, Projection>> {
        #[cfg(test)]
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let p = self.inner.state.try_read()?;
        self.saw(p.head().revision);
        Some(p)
    }

    /// Runs `f` over the projection from async code on a runtime worker. When the lock is not
    /// free for reading at once (a write waits for a long reader), the wait happens with the
    /// worker handed over to a blocking thread ([`tokio::task::block_in_place`]), so that the
    /// other tasks of that worker (`/healthz`, other connections) go on elsewhere meanwhile.
    /// On a current-thread runtime, or outside one, it simply waits.
    pub fn read_on_runtime<T>(&self, f: impl FnOnce(&Projection) -> T) -> T {
        f(&self.read_in_place())
    }

    /// The guard of [`Ledger::read_on_runtime`], for code that reads the projection over a
    /// whole function on a runtime worker: taken at once when the lock is free for reading,
    /// else waited for with the worker handed over to a blocking thread. On a blocking thread,
    /// a current-thread runtime or outside one, it is [`Ledger::read`].
    pub fn read_in_place(&self) -> RwLockReadGuard<'_, Projection> {
        if let Some(p) = self.try_read() {
            return p;
        }
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| self.read())
        } else {
            self.read()
        }
    }

    fn saw(&self, revision: u64) {
        let seen = &self.inner.seen_head;
        if seen.load(Ordering::Relaxed) != revision {
            seen.fetch_max(revision, Ordering::Relaxed);
        }
    }

    /// The head revision, without waiting for the projection's lock: that lock lets a
    /// waiting write go first, so a reader would queue behind it (and behind the readers the
    /// write waits for). When the lock is not free for reading, this is the head the last
    /// reader saw: with a write waiting, some reader holds the lock, and the head is what it
    /// saw when it took it. For `/healthz` and `/readyz`.
    pub fn head_revision(&self) -> u64 {
        match self.inner.state.try_read() {
            Some(p) => {
                let revision = p.head().revision;
                drop(p);
                self.saw(revision);
                revision
            }
            None => self.inner.seen_head.load(Ordering::Relaxed),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.inner.notices.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.inner.notices.receiver_count()
    }

    /// The log, for reads (proofs, exports). Appends go through the writer only.
    pub(crate) fn log(&self) -> &Arc<dyn LogStore> {
        &self.inner.store
    }

    pub fn is_read_only(&self) -> Option<&str> {
        self.inner.read_only.as_deref()
    }

    /// Whether writes are possible now, and why not.
    pub fn health(&self) -> Health {
        let failure = self.writable().err().map(|e| match e {
            LedgerError::ReadOnly(why) | LedgerError::Storage { message: why, .. } => why,
            other => other.to_string(),
        });
        let failing = self.inner.poisoned.load(Ordering::Acquire) || self.storage_failure().is_some();
        // A shared log found without a quorum by its probe: not ready, before any write fails.
        let unavailable = if self.inner.read_only.is_none() {
            self.inner.store.unavailable()
        } else {
            None
        };
        Health {
            writable: failure.is_none(),
            read_only: self.inner.read_only.is_some(),
            degraded: self.inner.damaged || failing || unavailable.is_some(),
            reason: failure.or(unavailable),
        }
    }

    fn storage_failure(&self) -> Option<String> {
        self.inner
            .storage_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the key that signs checkpoints; false if one was set already (it never changes).
    pub fn set_signer(&self, signer: Arc<crate::tlog::Signer>) -> bool {
        self.inner.signer.set(signer).is_ok()
    }

    /// The key that signs checkpoints, if one was set.
    /// Sets how far in the future a release's `publishedAt` may be (`--max-clock-skew`).
    pub fn set_max_clock_skew(&self, skew: std::time::Duration) {
        let ms = u64::try_from(skew.as_millis()).unwrap_or(u64::MAX);
        self.inner.max_clock_skew_ms.store(ms, Ordering::Relaxed);
    }

    pub fn signer(&self) -> Option<&Arc<crate::tlog::Signer>> {
        self.inner.signer.get()
    }

    /// Sets the witness policy whose cosignatures checkpoints carry; false if one was set.
    pub fn set_witnessing(&self, witnessing: Arc<transparency::Witnessing>) -> bool {
        self.inner.witnessing.set(witnessing).is_ok()
    }

    /// The witness policy and cosignatures, if a policy was set.
    pub fn witnessing(&self) -> Option<&Arc<transparency::Witnessing>> {
        self.inner.witnessing.get()
    }

    /// Records a dataset definition. Re-defining with identical content is a duplicate;
    /// with different content, a conflict.
    pub async fn define_dataset(&self, dataset: Dataset, actor: &str) -> Result<Committed, LedgerError> {
        self.define_dataset_gated(dataset, actor, None).await
    }

    /// [`Ledger::define_dataset`], handing the write to the writer through `gate` (see
    /// [`WriteGate`]).
    pub async fn define_dataset_gated(
        &self,
        dataset: Dataset,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<Committed, LedgerError> {
        self.writable()?;
        dataset
            .validate()
            .map_err(|e| LedgerError::bad_input("input", e.to_string()))?;
        self.submit(Command::DefineDataset(dataset), None, actor, gate).await
    }

    /// Records a new definition of a recorded dataset: a changed name, description or labels,
    /// codes appended. Removing or moving a code, or changing anything else, is refused
    /// (`BadInput`, naming it); the same definition again is a duplicate.
    pub async fn amend_dataset(&self, dataset: Dataset, actor: &str) -> Result<Committed, LedgerError> {
        self.amend_dataset_gated(dataset, actor, None).await
    }

    /// [`Ledger::amend_dataset`], handing the write to the writer through `gate` (see
    /// [`WriteGate`]).
    pub async fn amend_dataset_gated(
        &self,
        dataset: Dataset,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<Committed, LedgerError> {
        self.writable()?;
        dataset
            .validate()
            .map_err(|e| LedgerError::bad_input("input", e.to_string()))?;
        self.submit(Command::AmendDataset(dataset), None, actor, gate).await
    }

    /// Validates and records a release; see the module docs for when it returns.
    pub async fn publish(
        &self,
        draft: ReleaseDraft,
        expected_revision: Option<u64>,
        actor: &str,
    ) -> Result<Committed, LedgerError> {
        self.publish_gated(draft, expected_revision, actor, None)
            .await
            .map(|p| p.committed)
    }

    /// [`Ledger::publish`], handing the write to the writer through `gate` (see
    /// [`WriteGate`]). Gives the draft an id if it has none: the one a retry must carry when
    /// the outcome is not known.
    ///
    /// The draft is validated by the writer, against the dataset definition in the
    /// projection it reads once for its whole group (the draft's periods and values are
    /// parsed already), and the answer carries the recorded release.
    pub async fn publish_gated(
        &self,
        mut draft: ReleaseDraft,
        expected_revision: Option<u64>,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<Published, LedgerError> {
        self.writable()?;
        draft.id.get_or_insert_with(Uuid::new_v4);
        let rx = self
            .enqueue(Command::PublishRelease(draft), expected_revision, actor, gate)
            .await?;
        let reply = rx.await.unwrap_or_else(|_| Err(writer_gone()))?;
        Ok(Published {
            committed: reply.committed,
            release: reply.release.map(|r| *r),
        })
    }

    /// Records many releases in order, letting the writer group them (and validate each
    /// against the projection it reads once per group); one result each.
    pub async fn publish_all(&self, drafts: Vec<ReleaseDraft>, actor: &str) -> Vec<Result<Committed, LedgerError>> {
        if let Err(e) = self.writable() {
            return drafts.iter().map(|_| Err(e.clone())).collect();
        }
        let mut pending = Vec::with_capacity(drafts.len());
        for mut draft in drafts {
            draft.id.get_or_insert_with(Uuid::new_v4);
            pending.push(self.enqueue(Command::PublishRelease(draft), None, actor, None).await);
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Ok(rx) => rx.await.unwrap_or_else(|_| Err(writer_gone())).map(|r| r.committed),
                Err(e) => Err(e),
            });
        }
        out
    }

    /// Refuses writes to a read-only ledger, or while the store fails, before anything else
    /// is checked.
    fn writable(&self) -> Result<(), LedgerError> {
        if let Some(why) = &self.inner.read_only {
            return Err(LedgerError::ReadOnly(why.clone()));
        }
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(poisoned());
        }
        match self.storage_failure() {
            Some(why) => Err(LedgerError::storage(why)),
            None => Ok(()),
        }
    }

    /// Validates a release against its dataset without recording it (an import's check, a
    /// schedule's sealed content; a publication is validated by the writer).
    pub fn validate(&self, draft: ReleaseDraft) -> Result<Release, LedgerError> {
        // Amendments only append codes and change labels, so a release valid against the
        // definition read here stays valid against any later one: validating outside the
        // writer is safe.
        let (dataset, frequency) = definition_of(&self.read(), &draft.dataset)?;
        draft.validate_at(&dataset, frequency).map_err(LedgerError::from)
    }

    async fn submit(
        &self,
        command: Command,
        expected: Option<u64>,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<Committed, LedgerError> {
        let rx = self.enqueue(command, expected, actor, gate).await?;
        rx.await.unwrap_or_else(|_| Err(writer_gone())).map(|r| r.committed)
    }

    /// Puts a command in the writer's queue. With a `gate`, the command is handed over
    /// through it once there is room in the queue, and enters the queue in the same step,
    /// with nothing awaited in between: a request cancelled before that step hands nothing
    /// over, and one whose gate is closed is refused (see [`WriteGate`]).
    async fn enqueue(
        &self,
        command: Command,
        expected_revision: Option<u64>,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<oneshot::Receiver<Result<Reply, LedgerError>>, LedgerError> {
        self.writable()?;
        let permit = self.inner.commands.reserve().await.map_err(|_| writer_gone())?;
        if let Some(gate) = gate {
            gate.hand_over(match &command {
                Command::PublishRelease(d) => HandedWrite::Release(d.id.unwrap_or_default()),
                Command::RevealRelease { release: r, .. } => HandedWrite::Release(r.id),
                Command::ScheduleRelease(s) => HandedWrite::Release(s.id),
                Command::WithdrawSchedule(w) => HandedWrite::Release(w.id),
                Command::DefineDataset(d) | Command::AmendDataset(d) => HandedWrite::Dataset(d.id.clone()),
            })?;
        }
        let (reply, rx) = oneshot::channel();
        permit.send(Pending {
            command,
            expected_revision,
            actor: actor.to_owned(),
            reply,
        });
        Ok(rx)
    }

    /// Reads events after `after`, at most `limit`, checking each against the one before.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, LedgerError> {
        Ok(self.audit_events(after, limit)?.into_iter().map(|a| a.event).collect())
    }

    /// Like [`Ledger::events`], with each event's canonical bytes, so that auditors can
    /// recompute its hash.
    pub fn audit_events(&self, after: u64, limit: usize) -> Result<Vec<AuditEvent>, LedgerError> {
        let store = &self.inner.store;
        let storage = LedgerError::from;
        let mut prev = if after == 0 {
            Hash::GENESIS
        } else {
            match store.get(after).map_err(storage)? {
                Some(bytes) if bytes.len() >= 32 => Hash(bytes[..32].try_into().expect("32 bytes")),
                _ => return Ok(Vec::new()),
            }
        };
        let mut out = Vec::new();
        // Only acknowledged events: the store may already hold a group that is still being
        // flushed, and the projection head moves only once the group is durable.
        let head = self.read().head().revision;
        let acknowledged = store
            .scan(after + 1)
            .take_while(|item| item.as_ref().map_or(true, |(revision, _)| *revision <= head));
        for item in acknowledged.take(limit) {
            let (revision, bytes) = item.map_err(storage)?;
            let event = decode(revision, &bytes, &prev).map_err(|d| LedgerError::storage(d.to_string()))?;
            prev = event.hash;
            out.push(AuditEvent {
                event,
                canonical: String::from_utf8_lossy(&bytes[32..]).into_owned(),
            });
        }
        Ok(out)
    }

    /// Reads the release recorded at `revision` from the log.
    pub fn release_event(&self, revision: u64) -> Result<Option<Release>, LedgerError> {
        Ok(self
            .events(revision - 1, 1)?
            .into_iter()
            .next()
            .and_then(|e| e.envelope.event.release().cloned()))
    }

    /// Waits until everything appended is on stable storage, with whatever the store keeps
    /// for its next start ([`LogStore::flush_all`]).
    pub async fn flush(&self) -> Result<(), LedgerError> {
        self.inner.store.flush_all().await.map_err(LedgerError::from)
    }
}
