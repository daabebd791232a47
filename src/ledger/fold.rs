//! Folding the log into a projection, and verifying it: at start-up, in full on demand, and
//! incrementally since the last verification.

use sha2::{Digest, Sha256};

use crate::projection::Projection;
use crate::store::{decode, Damage, Hash, Head, LogStore, RecordIter, StoredEvent};

use super::{Ledger, LedgerError, OpenError, Verification, Verified};

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

    /// Continues a projection loaded from a snapshot, for any log: `records` must start at the
    /// snapshot's revision R (`store.scan(R)`, or `store::ColdScan` from R). The record at R
    /// must hash to the snapshot's head hash, else the snapshot is not of this log (the store
    /// was replaced or restored) and `Err` says why; then the events after R are folded, their
    /// chain checked from that hash. The prefix up to R is taken on the strength of that
    /// match; a full verification ([`Ledger::verify`]) still re-reads the whole log.
    pub fn from_snapshot(projection: Projection, mut records: RecordIter<'_>) -> Result<Self, OpenError> {
        let head = projection.head();
        if head.revision > 0 {
            let mismatch = |why: String| {
                Err(OpenError::Snapshot(format!(
                    "it covers revision {} ({}), but {why}",
                    head.revision, head.hash
                )))
            };
            match records.next() {
                None => return mismatch("the log ends before it".into()),
                Some(Err(e)) => return Err(OpenError::Storage(e.to_string())),
                Some(Ok((revision, _))) if revision != head.revision => {
                    return mismatch(format!("the log has no event at that revision (next: {revision})"))
                }
                Some(Ok((_, bytes))) => {
                    let hashed = bytes.get(32..).map(|body| Hash(Sha256::digest(body).into()));
                    if hashed != Some(head.hash) || bytes[..32] != head.hash.0 {
                        return mismatch("the log's event at that revision has another hash".into());
                    }
                }
            }
        }
        let mut fold = Fold {
            projection,
            damage: None,
        };
        fold.advance_records(records, None)?;
        Ok(Prefold(fold))
    }

    /// The first damaged event met, if any.
    pub fn damage(&self) -> Option<&Damage> {
        self.0.damage.as_ref()
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

    /// Checks the head record against the folded events. `live` is the
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
            // A shared log (other nodes append to it) may grow while it is folded, too.
            let in_flight = (live.is_some() || store.watch_head().is_some()) && head.revision > checked;
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
        // The release index is the projection's, folded from the events: nothing to compare.
        Ok((
            projection,
            Verification {
                checked,
                damage,
                derived_only: false,
            },
        ))
    }
}

impl Ledger {
    /// Walks the whole log again, checking the chain and re-folding every event.
    ///
    /// Writes may go on meanwhile: the log is folded up to the projection's head (events past
    /// it are appended but not yet acknowledged), catching up while the head moves, and the
    /// two projections are compared while the head is held still.
    pub fn verify(&self) -> Result<Verification, LedgerError> {
        let storage = |e: OpenError| LedgerError::storage(e.to_string());
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
        .map_err(|e| LedgerError::storage(format!("verification failed: {e}")))??;
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
    /// the one before, and the last must be
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
        .map_err(|e| LedgerError::storage(format!("verification failed: {e}")))?
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
        let storage = LedgerError::from;
        let mut head = from;
        let mut damage = None;
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
                derived_only: false,
            },
        })
    }
}
