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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{Dataset, Event, Release, ReleaseDraft};
use crate::projection::{Applied, Projection};
use crate::store::{
    decode, encode, Damage, Envelope, Hash, Head, LogStore, Record, RecordIter, StoredEvent, FORMAT_VERSION,
};

/// Most commands taken into one group commit.
const MAX_GROUP: usize = 4096;
/// Capacity of the subscriber channel; a subscriber further behind reads from the projection.
const NOTICE_CAPACITY: usize = 4096;
/// First pause before the writer tries to bring a failed store back; it doubles after each
/// failed attempt, up to [`RECOVER_MAX`].
pub const RECOVER_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between two attempts to bring a failed store back.
pub const RECOVER_MAX: Duration = Duration::from_secs(5);

/// A failed write or read, with the error class clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the ledger is read-only: {0}")]
    ReadOnly(String),
    #[error("storage failure: {0}")]
    Storage(String),
}

impl LedgerError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        LedgerError::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The `extensions.code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::BadInput { .. } => "BAD_USER_INPUT",
            LedgerError::Conflict(_) => "CONFLICT",
            LedgerError::NotFound(_) => "NOT_FOUND",
            LedgerError::ReadOnly(_) => "FORBIDDEN",
            LedgerError::Storage(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl From<crate::domain::ReleaseError> for LedgerError {
    fn from(e: crate::domain::ReleaseError) -> Self {
        LedgerError::BadInput {
            field: e.field,
            message: e.message,
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
    /// True when only derived data (release index, head record) disagrees with an intact
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

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the event log is damaged at {0}; run `tradeledger verify`, or start read-only")]
    Damaged(Damage),
    #[error("storage failure: {0}")]
    Storage(String),
}

enum Change {
    Define(Dataset),
    Publish(Release),
}

struct Command {
    change: Change,
    expected_revision: Option<u64>,
    actor: String,
    reply: oneshot::Sender<Result<Committed, LedgerError>>,
}

struct Inner {
    store: Arc<dyn LogStore>,
    state: RwLock<Projection>,
    commands: mpsc::Sender<Command>,
    notices: broadcast::Sender<Arc<Notice>>,
    read_only: Option<String>,
    /// True when `read_only` is because the log is damaged.
    damaged: bool,
    /// Held by the full verification running, so that those run one at a time.
    verifying: Arc<tokio::sync::Mutex<()>>,
    /// How far verifications have covered the log. Held while one extends it.
    verified: Arc<tokio::sync::Mutex<Verified>>,
    /// Why writes are refused for now: a write did not reach the disk and the writer has not
    /// brought the store back yet. Cleared once it has.
    storage_failure: Mutex<Option<String>>,
    /// Set when a recorded event does not apply to the projection, or the store lost events
    /// that were acknowledged: no further write is accepted until a restart re-reads the log.
    poisoned: AtomicBool,
    /// The key checkpoints of the transparency log are signed with, once configured.
    signer: std::sync::OnceLock<Arc<crate::tlog::Signer>>,
}

/// The log as far as verifications have covered it: every event up to `head` was checked
/// (hash, link to the one before, release index), by the fold at start-up or since.
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

/// Reads every event from the log, checking the hash chain, and folds them into a projection.
/// Stops at the first damaged event.
pub fn fold_log(store: &dyn LogStore) -> Result<(Projection, Verification), OpenError> {
    fold_log_after(store, None)
}

/// Like [`fold_log`], continuing a fold made from the same log before `store` was opened.
pub fn fold_log_after(store: &dyn LogStore, prefold: Option<Prefold>) -> Result<(Projection, Verification), OpenError> {
    let mut fold = prefold.map_or_else(Fold::default, |p| p.0);
    fold.advance(store, None)?;
    fold.finish(store, None)
}

/// A fold of the log read other than through the store the ledger then opens: the events
/// from revision 1 on, up to the end or the first damaged one. The ledger (or
/// [`fold_log_after`]) folds whatever the store holds beyond it and runs the final checks.
pub struct Prefold(Fold);

impl Prefold {
    /// Folds `records`, which must start at revision 1 (see `store::ColdScan`).
    pub fn from_records(records: RecordIter<'_>) -> Result<Self, OpenError> {
        let mut fold = Fold::default();
        fold.advance_records(records, None)?;
        Ok(Prefold(fold))
    }
}

/// A fold of the log in progress, so that it can be continued as the log grows. The
/// projection's head is where it stands: the last revision folded and its hash.
#[derive(Default)]
struct Fold {
    projection: Projection,
    damage: Option<Damage>,
}

impl Fold {
    /// Folds the events after the current head, up to revision `upto` (inclusive) or to the
    /// end of the log. Stops at the first damaged event.
    ///
    /// Reading, hashing and decoding run on a second thread while this one applies the
    /// decoded events, so a rebuild keeps both cores busy.
    fn advance(&mut self, store: &dyn LogStore, upto: Option<u64>) -> Result<(), OpenError> {
        self.advance_records(store.scan(self.projection.head().revision + 1), upto)
    }

    /// [`Fold::advance`] over records that start right after the current head.
    fn advance_records(&mut self, records: RecordIter<'_>, upto: Option<u64>) -> Result<(), OpenError> {
        if self.damage.is_some() {
            return Ok(());
        }
        let first = self.projection.head().revision + 1;
        let prev = self.projection.head().hash;
        let mut storage_error = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Result<StoredEvent, Damage>, String>>(256);
            scope.spawn(move || {
                let mut prev = prev;
                let mut expected = first;
                for item in records {
                    let decoded = match item {
                        Err(e) => Err(e.to_string()),
                        Ok((revision, _)) if upto.is_some_and(|u| revision > u) => break,
                        Ok((revision, _)) if revision != expected => Ok(Err(Damage {
                            revision: expected,
                            reason: format!("missing: the next stored event is revision {revision}"),
                        })),
                        Ok((revision, bytes)) => Ok(decode(revision, &bytes, &prev)),
                    };
                    let stop = !matches!(decoded, Ok(Ok(_)));
                    if let Ok(Ok(event)) = &decoded {
                        prev = event.hash;
                        expected += 1;
                    }
                    // The receiver hangs up when it stops early; nothing more to do then.
                    if tx.send(decoded).is_err() || stop {
                        break;
                    }
                }
            });
            for decoded in rx {
                let event = match decoded {
                    Err(e) => {
                        storage_error = Some(e);
                        return;
                    }
                    Ok(Err(d)) => {
                        self.damage = Some(d);
                        return;
                    }
                    Ok(Ok(event)) => event,
                };
                if let Err(e) = self.projection.apply(&event) {
                    self.damage = Some(Damage {
                        revision: event.revision(),
                        reason: e.to_string(),
                    });
                    return;
                }
            }
        });
        if let Some(e) = storage_error {
            return Err(OpenError::Storage(e));
        }
        if self.damage.is_some() {
            return Ok(());
        }
        let expected = self.projection.head().revision + 1;
        if let Some(u) = upto.filter(|&u| u >= expected) {
            self.damage = Some(Damage {
                revision: expected,
                reason: format!("missing: the log ends at revision {} before {u}", expected - 1),
            });
        }
        Ok(())
    }

    /// Checks the head record and the release index against the folded events. `live` is the
    /// revision a running ledger has folded up to: its head record may be ahead of it (writes
    /// appended and still being flushed), never behind.
    fn finish(self, store: &dyn LogStore, live: Option<u64>) -> Result<(Projection, Verification), OpenError> {
        let storage = |e: crate::store::StoreError| OpenError::Storage(e.to_string());
        let Fold { projection, mut damage } = self;
        let checked = projection.head().revision;
        let prev = projection.head().hash;
        if damage.is_none() {
            // A head record ahead of the events means events were removed from the end.
            let head = store.head().map_err(storage)?;
            let in_flight = live.is_some() && head.revision > checked;
            if !in_flight && (head.revision != checked || head.hash != prev) {
                damage = Some(Damage {
                    revision: checked + 1,
                    reason: format!(
                        "the log ends at revision {checked} but its head record says {} ({})",
                        head.revision, head.hash
                    ),
                });
            }
        }
        let chain_intact = damage.is_none();
        if damage.is_none() {
            for r in projection.releases() {
                match store.release_revision(r.id).map_err(storage)? {
                    Some(rev) if rev == r.revision => {}
                    other => {
                        damage = Some(Damage {
                            revision: r.revision,
                            reason: format!("release index maps {} to {other:?}", r.id),
                        });
                        break;
                    }
                }
            }
        }
        let derived_only = chain_intact && damage.is_some();
        Ok((
            projection,
            Verification {
                checked,
                damage,
                derived_only,
            },
        ))
    }
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
        let inner = Arc::new(Inner {
            store,
            state: RwLock::new(projection),
            commands,
            notices,
            read_only,
            damaged: verification.damage.is_some(),
            verifying: Arc::default(),
            verified: Arc::new(tokio::sync::Mutex::new(verified)),
            storage_failure: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            signer: Default::default(),
        });
        tokio::spawn(writer(Arc::downgrade(&inner), rx));
        Ok((Ledger { inner }, verification))
    }

    /// Read access to the projection. The guard is a std lock: never hold it across `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Projection> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.inner.notices.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.inner.notices.receiver_count()
    }

    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.inner.store
    }

    pub fn is_read_only(&self) -> Option<&str> {
        self.inner.read_only.as_deref()
    }

    /// Whether writes are possible now, and why not.
    pub fn health(&self) -> Health {
        let failure = self.writable().err().map(|e| match e {
            LedgerError::ReadOnly(why) | LedgerError::Storage(why) => why,
            other => other.to_string(),
        });
        let failing = self.inner.poisoned.load(Ordering::Acquire) || self.storage_failure().is_some();
        Health {
            writable: failure.is_none(),
            read_only: self.inner.read_only.is_some(),
            degraded: self.inner.damaged || failing,
            reason: failure,
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
    pub fn signer(&self) -> Option<&Arc<crate::tlog::Signer>> {
        self.inner.signer.get()
    }

    /// Records a dataset definition. Re-defining with identical content is a duplicate;
    /// with different content, a conflict.
    pub async fn define_dataset(&self, dataset: Dataset, actor: &str) -> Result<Committed, LedgerError> {
        self.writable()?;
        dataset
            .validate()
            .map_err(|e| LedgerError::bad_input("input", e.to_string()))?;
        self.submit(Change::Define(dataset), None, actor).await
    }

    /// Validates and records a release; see the module docs for when it returns.
    pub async fn publish(
        &self,
        draft: ReleaseDraft,
        expected_revision: Option<u64>,
        actor: &str,
    ) -> Result<Committed, LedgerError> {
        self.writable()?;
        let release = self.validate(draft)?;
        self.submit(Change::Publish(release), expected_revision, actor).await
    }

    /// Records many releases in order, letting the writer group them; one result each.
    pub async fn publish_all(&self, drafts: Vec<ReleaseDraft>, actor: &str) -> Vec<Result<Committed, LedgerError>> {
        if let Err(e) = self.writable() {
            return drafts.iter().map(|_| Err(e.clone())).collect();
        }
        let mut pending = Vec::with_capacity(drafts.len());
        for draft in drafts {
            pending.push(match self.validate(draft) {
                Ok(release) => Ok(self.enqueue(Change::Publish(release), None, actor).await),
                Err(e) => Err(e),
            });
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Ok(Ok(rx)) => rx.await.unwrap_or_else(|_| Err(writer_gone())),
                Ok(Err(e)) | Err(e) => Err(e),
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
            Some(why) => Err(LedgerError::Storage(why)),
            None => Ok(()),
        }
    }

    /// Validates a release against its dataset without recording it.
    pub fn validate(&self, draft: ReleaseDraft) -> Result<Release, LedgerError> {
        // Definitions never change once recorded, so validating outside the writer is safe.
        let dataset = self
            .read()
            .dataset(&draft.dataset)
            .map(|d| d.def.clone())
            .ok_or_else(|| LedgerError::bad_input("dataset", format!("unknown dataset `{}`", draft.dataset)))?;
        draft.validate(&dataset).map_err(LedgerError::from)
    }

    async fn submit(&self, change: Change, expected: Option<u64>, actor: &str) -> Result<Committed, LedgerError> {
        let rx = self.enqueue(change, expected, actor).await?;
        rx.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn enqueue(
        &self,
        change: Change,
        expected_revision: Option<u64>,
        actor: &str,
    ) -> Result<oneshot::Receiver<Result<Committed, LedgerError>>, LedgerError> {
        self.writable()?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command {
                change,
                expected_revision,
                actor: actor.to_owned(),
                reply,
            })
            .await
            .map_err(|_| writer_gone())?;
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
        let storage = |e: crate::store::StoreError| LedgerError::Storage(e.to_string());
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
            let event = decode(revision, &bytes, &prev).map_err(|d| LedgerError::Storage(d.to_string()))?;
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
            .and_then(|e| match e.envelope.event {
                Event::ReleasePublished { release } => Some(release),
                Event::DatasetDefined { .. } => None,
            }))
    }

    /// Walks the whole log again, checking the chain and re-folding every event.
    ///
    /// Writes may go on meanwhile: the log is folded up to the projection's head (events past
    /// it are appended but not yet acknowledged), catching up while the head moves, and the
    /// two projections are compared while the head is held still.
    pub fn verify(&self) -> Result<Verification, LedgerError> {
        let storage = |e: OpenError| LedgerError::Storage(e.to_string());
        let store = self.inner.store.as_ref();
        let mut fold = Fold::default();
        loop {
            let target = self.read().head().revision;
            fold.advance(store, Some(target)).map_err(storage)?;
            if fold.damage.is_some() {
                return Ok(fold.finish(store, None).map_err(storage)?.1);
            }
            let live = self.read();
            if live.head().revision != target {
                continue;
            }
            let same = *live == fold.projection;
            drop(live);
            // A read-only ledger has no writes in flight but may serve a damaged log up to its
            // last good revision: check the rest of the log too.
            let live = if self.inner.read_only.is_some() {
                fold.advance(store, None).map_err(storage)?;
                None
            } else {
                Some(target)
            };
            let (_, verification) = fold.finish(store, live).map_err(storage)?;
            if verification.ok() && !same {
                return Ok(Verification {
                    checked: verification.checked,
                    damage: Some(Damage {
                        revision: verification.checked,
                        reason: "the in-memory projection differs from a fresh fold of the log".into(),
                    }),
                    derived_only: true,
                });
            }
            return Ok(verification);
        }
    }

    /// [`Ledger::verify`] on a blocking thread, one verification at a time. Each folds the
    /// whole log into a second projection (some 500 MB at 10^7 versions), so concurrent ones
    /// would multiply that. A caller waits for the one running, then runs its own: a result
    /// is never shared, so it always covers the log as it was after the call. The turn is
    /// held by the blocking task itself, so a caller that gives up does not free it early.
    /// Damage it finds is remembered: [`Ledger::verify_new`] reports it from then on.
    pub async fn verify_in_turn(&self) -> Result<Verification, LedgerError> {
        let turn = self.inner.verifying.clone().lock_owned().await;
        let ledger = self.clone();
        let v = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            ledger.verify()
        })
        .await
        .map_err(|e| LedgerError::Storage(format!("verification failed: {e}")))??;
        if v.damage.is_some() {
            let mut verified = self.inner.verified.lock().await;
            if verified.verification.damage.is_none() {
                verified.verification = v.clone();
            }
        }
        Ok(v)
    }

    /// Verifies the events recorded since the last verification, continuing the chain from
    /// the hash verified last: each new event's stored bytes are hashed again and linked to
    /// the one before, its release checked against the release index, and the last must be
    /// the projection's head. The fold at start-up verified everything before. A call at a
    /// head already verified costs nothing, and concurrent calls share the work (one extends
    /// the verified head while the others wait for it), so anyone may call it. Damage, once
    /// found, is reported by every later call. [`Ledger::verify_in_turn`] re-checks the
    /// whole log from revision 1 and re-folds it.
    pub async fn verify_new(&self) -> Result<Verification, LedgerError> {
        let mut verified = self.inner.verified.clone().lock_owned().await;
        let target = self.head();
        if verified.verification.damage.is_some() || verified.head.revision >= target.revision {
            return Ok(verified.verification.clone());
        }
        let ledger = self.clone();
        // The guard moves into the blocking task, so a caller that gives up leaves the work
        // to finish for the next one rather than starting it again.
        tokio::task::spawn_blocking(move || {
            *verified = ledger.continue_chain(verified.head, target)?;
            Ok(verified.verification.clone())
        })
        .await
        .map_err(|e| LedgerError::Storage(format!("verification failed: {e}")))?
    }

    /// The projection's head.
    fn head(&self) -> Head {
        let p = self.read();
        Head {
            revision: p.head().revision,
            hash: p.head().hash,
        }
    }

    /// Checks the events after `from` (verified) up to `target` (the projection's head).
    fn continue_chain(&self, from: Head, target: Head) -> Result<Verified, LedgerError> {
        let store = self.inner.store.as_ref();
        let storage = |e: crate::store::StoreError| LedgerError::Storage(e.to_string());
        let mut head = from;
        let mut damage = None;
        let mut derived_only = false;
        for item in store.scan(from.revision + 1) {
            let (revision, bytes) = item.map_err(storage)?;
            if revision > target.revision {
                break;
            }
            if revision != head.revision + 1 {
                damage = Some(Damage {
                    revision: head.revision + 1,
                    reason: format!("missing: the next stored event is revision {revision}"),
                });
                break;
            }
            let event = match decode(revision, &bytes, &head.hash) {
                Ok(event) => event,
                Err(d) => {
                    damage = Some(d);
                    break;
                }
            };
            if let Event::ReleasePublished { release } = &event.envelope.event {
                match store.release_revision(release.id).map_err(storage)? {
                    Some(r) if r == revision => {}
                    other => {
                        damage = Some(Damage {
                            revision,
                            reason: format!("release index maps {} to {other:?}", release.id),
                        });
                        derived_only = true;
                        break;
                    }
                }
            }
            head = Head {
                revision,
                hash: event.hash,
            };
        }
        if damage.is_none() && head.revision < target.revision {
            damage = Some(Damage {
                revision: head.revision + 1,
                reason: format!(
                    "missing: the log ends at revision {} before the ledger's head {}",
                    head.revision, target.revision
                ),
            });
        } else if damage.is_none() && head.hash != target.hash {
            damage = Some(Damage {
                revision: head.revision,
                reason: format!(
                    "the log's hash {} differs from the ledger's head {}",
                    head.hash, target.hash
                ),
            });
            head.revision -= 1;
        }
        Ok(Verified {
            head,
            verification: Verification {
                checked: head.revision,
                damage,
                derived_only,
            },
        })
    }

    /// Waits until everything appended is on stable storage.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        self.inner
            .store
            .flush()
            .await
            .map_err(|e| LedgerError::Storage(e.to_string()))
    }
}

fn writer_gone() -> LedgerError {
    LedgerError::Storage("the ledger is shutting down".into())
}

fn poisoned() -> LedgerError {
    LedgerError::Storage("the ledger stopped taking writes after an inconsistency; restart the server".into())
}

/// The single writer. Holds only a weak reference so dropping every `Ledger` stops it.
///
/// After a group fails to reach the disk, it refuses every command and, with a pause that
/// doubles from [`RECOVER_FIRST`] to [`RECOVER_MAX`], tries to bring the store back.
async fn writer(inner: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Command>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    // While the store fails: when to try to bring it back next, and the pause after that.
    let mut retry: Option<(Instant, Duration)> = None;
    loop {
        let closed = match retry {
            None => rx.recv_many(&mut group, MAX_GROUP).await == 0,
            // `recv_many` is cancel-safe: losing the race to the timer loses no command.
            Some((at, _)) => tokio::select! {
                n = rx.recv_many(&mut group, MAX_GROUP) => n == 0,
                () = tokio::time::sleep_until(at.into()) => false,
            },
        };
        if closed {
            return;
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Some((at, pause)) = retry {
            if Instant::now() >= at {
                retry = match recover(&inner).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "the store still fails");
                        set_storage_failure(&inner, &e);
                        Some((Instant::now() + pause, (pause * 2).min(RECOVER_MAX)))
                    }
                };
            }
        }
        if group.is_empty() {
            continue;
        }
        let commands = std::mem::take(&mut group);
        if retry.is_some() {
            let why = inner
                .storage_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            for c in commands {
                let _ = c.reply.send(Err(LedgerError::Storage(why.clone())));
            }
            continue;
        }
        if let Err(e) = commit_group(&inner, commands).await {
            set_storage_failure(&inner, &e);
            retry = Some((Instant::now() + RECOVER_FIRST, (RECOVER_FIRST * 2).min(RECOVER_MAX)));
        }
    }
}

fn set_storage_failure(inner: &Inner, error: &str) {
    *inner.storage_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
        "writes are refused until the store takes them again (retried every few seconds; GET /readyz \
         says when): {error}"
    ));
}

/// Brings a failed store back: reopens it, checks that it takes a write, and folds into the
/// projection whatever the failed group left in the log. Writes resume when this succeeds.
async fn recover(inner: &Arc<Inner>) -> Result<(), String> {
    inner.store.recover().await.map_err(|e| e.to_string())?;
    let notices = catch_up(inner)?;
    *inner.storage_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
    tracing::info!(
        revision = inner.state.read().unwrap_or_else(|e| e.into_inner()).head().revision,
        recovered_events = notices.len(),
        "the store takes writes again"
    );
    for n in notices {
        let _ = inner.notices.send(n);
    }
    Ok(())
}

/// Applies to the projection the events the store holds beyond it: those of a group whose
/// flush failed but which reached the disk all the same. Their callers were told the write
/// failed; a re-send gets the original revision. The log and the projection agree after.
fn catch_up(inner: &Inner) -> Result<Vec<Arc<Notice>>, String> {
    let store = inner.store.as_ref();
    let (from, prev) = {
        let state = inner.state.read().unwrap_or_else(|e| e.into_inner());
        (state.head().revision, state.head().hash)
    };
    let stored = store.head().map_err(|e| e.to_string())?;
    let poison = |why: String| {
        tracing::error!(error = %why, "the log and the projection disagree after a storage failure");
        inner.poisoned.store(true, Ordering::Release);
        why
    };
    if stored.revision < from {
        return Err(poison(format!(
            "the store's head is revision {} but revision {from} was acknowledged",
            stored.revision
        )));
    }
    // Only the writer changes the projection, so decoding before taking the lock is safe.
    let mut events = Vec::new();
    let mut prev = prev;
    for item in store.scan(from + 1) {
        let (revision, bytes) = item.map_err(|e| e.to_string())?;
        let event = decode(revision, &bytes, &prev).map_err(|d| poison(d.to_string()))?;
        prev = event.hash;
        events.push(event);
    }
    if from + events.len() as u64 != stored.revision || prev != stored.hash {
        return Err(poison(format!(
            "the store's head record ({}) does not match its events",
            stored.revision
        )));
    }
    let mut state = inner.state.write().unwrap_or_else(|e| e.into_inner());
    let mut notices = Vec::with_capacity(events.len());
    for event in &events {
        let applied = state.apply(event).map_err(|e| poison(e.to_string()))?;
        notices.push(Arc::new(Notice {
            revision: event.revision(),
            applied,
        }));
    }
    Ok(notices)
}

enum Decision {
    /// Answer now (an error, or a duplicate of something already durable).
    Answer(Result<Committed, LedgerError>),
    /// A duplicate of an event appended earlier in this same group.
    SameAs(usize),
    Append(usize),
}

/// Decides, appends, flushes, applies and answers one group. `Err` when the group did not
/// reach the disk: the store must then be brought back before the next write.
async fn commit_group(inner: &Arc<Inner>, group: Vec<Command>) -> Result<(), String> {
    if inner.poisoned.load(Ordering::Acquire) {
        for c in group {
            let _ = c.reply.send(Err(poisoned()));
        }
        return Ok(());
    }
    let mut records: Vec<Record> = Vec::new();
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut decisions = Vec::with_capacity(group.len());
    {
        let state = inner.state.read().unwrap_or_else(|e| e.into_inner());
        let mut head = Head {
            revision: state.head().revision,
            hash: state.head().hash,
        };
        // What this group adds, for duplicate checks between its own commands.
        let mut new_datasets: HashMap<String, usize> = HashMap::new();
        let mut new_releases: HashMap<Uuid, usize> = HashMap::new();
        for cmd in &group {
            let decision = decide(inner, &state, &events, &new_datasets, &new_releases, head, cmd);
            if let Decision::Append(_) = decision {
                let event = match &cmd.change {
                    Change::Define(d) => Event::DatasetDefined { dataset: d.clone() },
                    Change::Publish(r) => Event::ReleasePublished { release: r.clone() },
                };
                let envelope = Envelope {
                    format: FORMAT_VERSION,
                    revision: head.revision + 1,
                    event_id: Uuid::new_v4(),
                    recorded_at: Utc::now(),
                    actor: cmd.actor.clone(),
                    prev_hash: head.hash.to_hex(),
                    event,
                };
                let (hash, bytes) = encode(&envelope);
                let index = events.len();
                match &cmd.change {
                    Change::Define(d) => new_datasets.insert(d.id.clone(), index),
                    Change::Publish(r) => new_releases.insert(r.id, index),
                };
                records.push(Record {
                    revision: envelope.revision,
                    hash,
                    bytes,
                    release_id: match &cmd.change {
                        Change::Publish(r) => Some(r.id),
                        Change::Define(_) => None,
                    },
                });
                head = Head {
                    revision: envelope.revision,
                    hash,
                };
                events.push(StoredEvent { envelope, hash });
                decisions.push(Decision::Append(index));
            } else {
                decisions.push(decision);
            }
        }
    }

    if !records.is_empty() {
        let store = inner.store.clone();
        let appended = tokio::task::spawn_blocking(move || store.append(&records))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let durable = match appended {
            Ok(_) => inner.store.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            // The group may or may not be in the log: the projection is left as it was, and
            // takes in whatever the store holds once it is back (see `catch_up`).
            tracing::error!(error = %e, "a write did not reach the disk; the group is refused");
            let in_doubt = format!(
                "the write did not reach the disk and is not acknowledged ({e}); it may still be \
                 recorded once storage recovers: re-send it with the same release id to learn its revision"
            );
            for (cmd, decision) in group.into_iter().zip(decisions) {
                let answer = match decision {
                    Decision::Answer(a) => a,
                    _ => Err(LedgerError::Storage(in_doubt.clone())),
                };
                let _ = cmd.reply.send(answer);
            }
            return Err(e);
        }
    }

    let mut notices = Vec::with_capacity(events.len());
    {
        let mut state = inner.state.write().unwrap_or_else(|e| e.into_inner());
        for event in &events {
            match state.apply(event) {
                Ok(applied) => notices.push(Arc::new(Notice {
                    revision: event.revision(),
                    applied,
                })),
                Err(e) => {
                    // Validated events always apply; if one does not, stop accepting writes.
                    tracing::error!(error = %e, "projection rejected a recorded event");
                    inner.poisoned.store(true, Ordering::Release);
                }
            }
        }
    }
    for (cmd, decision) in group.into_iter().zip(decisions) {
        let answer = match decision {
            Decision::Answer(a) => a,
            Decision::Append(i) | Decision::SameAs(i) => Ok(Committed {
                revision: events[i].revision(),
                hash: events[i].hash,
                duplicate: matches!(decision, Decision::SameAs(_)),
                release: match &cmd.change {
                    Change::Publish(r) => Some(r.id),
                    Change::Define(_) => None,
                },
            }),
        };
        let _ = cmd.reply.send(answer);
    }
    for n in notices {
        // No receivers is fine: nobody is subscribed.
        let _ = inner.notices.send(n);
    }
    Ok(())
}

fn decide(
    inner: &Inner,
    state: &Projection,
    pending: &[StoredEvent],
    new_datasets: &HashMap<String, usize>,
    new_releases: &HashMap<Uuid, usize>,
    head: Head,
    cmd: &Command,
) -> Decision {
    // Idempotency comes before the revision check: a retry of a write that succeeded must
    // get its original answer even though the head has moved since.
    match &cmd.change {
        Change::Define(d) => {
            if let Some(existing) = state.dataset(&d.id) {
                return Decision::Answer(if *existing.def == *d {
                    hash_of(inner, existing.revision).map(|hash| Committed {
                        revision: existing.revision,
                        hash,
                        duplicate: true,
                        release: None,
                    })
                } else {
                    Err(LedgerError::Conflict(format!(
                        "dataset `{}` is already defined (revision {}) with different content",
                        d.id, existing.revision
                    )))
                });
            }
            if let Some(&i) = new_datasets.get(&d.id) {
                let same = matches!(&pending[i].envelope.event, Event::DatasetDefined { dataset } if dataset == d);
                return if same {
                    Decision::SameAs(i)
                } else {
                    Decision::Answer(Err(LedgerError::Conflict(format!(
                        "dataset `{}` is being defined with different content",
                        d.id
                    ))))
                };
            }
        }
        Change::Publish(r) => {
            if let Some((_, info)) = state.release(&r.id) {
                let revision = info.revision;
                return Decision::Answer(original_release(inner, revision).and_then(|(original, hash)| {
                    if original == *r {
                        Ok(Committed {
                            revision,
                            hash,
                            duplicate: true,
                            release: Some(r.id),
                        })
                    } else {
                        Err(LedgerError::Conflict(format!(
                            "release {} was already recorded at revision {revision} with different content",
                            r.id
                        )))
                    }
                }));
            }
            if let Some(&i) = new_releases.get(&r.id) {
                let same = matches!(&pending[i].envelope.event, Event::ReleasePublished { release } if release == r);
                return if same {
                    Decision::SameAs(i)
                } else {
                    Decision::Answer(Err(LedgerError::Conflict(format!(
                        "release {} is being recorded with different content",
                        r.id
                    ))))
                };
            }
        }
    }
    if let Some(expected) = cmd.expected_revision {
        if expected != head.revision {
            return Decision::Answer(Err(LedgerError::Conflict(format!(
                "expectedRevision {expected} does not match the ledger head {}",
                head.revision
            ))));
        }
    }
    Decision::Append(pending.len())
}

fn hash_of(inner: &Inner, revision: u64) -> Result<Hash, LedgerError> {
    match inner.store.get(revision) {
        Ok(Some(bytes)) if bytes.len() >= 32 => Ok(Hash(bytes[..32].try_into().expect("32 bytes"))),
        Ok(_) => Err(LedgerError::Storage(format!(
            "revision {revision} is missing from the log"
        ))),
        Err(e) => Err(LedgerError::Storage(e.to_string())),
    }
}

fn original_release(inner: &Inner, revision: u64) -> Result<(Release, Hash), LedgerError> {
    let bytes = inner
        .store
        .get(revision)
        .map_err(|e| LedgerError::Storage(e.to_string()))?
        .ok_or_else(|| LedgerError::Storage(format!("revision {revision} is missing from the log")))?;
    let prev = if revision == 1 {
        Hash::GENESIS
    } else {
        hash_of(inner, revision - 1)?
    };
    let event = decode(revision, &bytes, &prev).map_err(|d| LedgerError::Storage(d.to_string()))?;
    match event.envelope.event {
        Event::ReleasePublished { release } => Ok((release, event.hash)),
        Event::DatasetDefined { .. } => Err(LedgerError::Storage(format!("revision {revision} is not a release"))),
    }
}
