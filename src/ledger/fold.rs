//! Folding the log into a projection, and verifying it: at start-up, in full on demand, and
//! incrementally since the last verification.

use std::sync::atomic::{AtomicU64, Ordering};

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

    /// Continues the fold over `records`, which must start right after its head (a
    /// JetStream node's start: its local copy first, then what it fetches from the stream).
    pub fn then(mut self, records: RecordIter<'_>) -> Result<Self, OpenError> {
        self.0.advance_records(records, None)?;
        Ok(self)
    }

    /// The revision the fold reached.
    pub fn revision(&self) -> u64 {
        self.0.projection.head().revision
    }

    /// The first damaged event met, if any.
    pub fn damage(&self) -> Option<&Damage> {
        self.0.damage.as_ref()
    }
}

/// One record as the reading thread hands it to the applying one.
type Decoded = Result<Result<StoredEvent, Damage>, String>;

/// Events folded between two reports of a verification's progress.
const PROGRESS_STEP: u64 = 20_000;

/// Records per batch sent from the reading thread to the applying one.
const FOLD_BATCH: usize = 64;

/// Batches in flight between the two threads.
const FOLD_QUEUE: usize = 4;

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
            // Records go over in batches (one wake-up per batch, not per event), and the
            // applied batches come back so that the reading thread frees them: freeing an
            // event costs about as much as applying it, and applying is the slower side.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Decoded>>(FOLD_QUEUE);
            let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Vec<Decoded>>();
            scope.spawn(move || {
                let mut prev = prev;
                let mut expected = first;
                let mut batch = Vec::with_capacity(FOLD_BATCH);
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
                    batch.push(decoded);
                    if stop {
                        break;
                    }
                    if batch.len() == FOLD_BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(FOLD_BATCH));
                        // The receiver hangs up when it stops early; nothing more to do then.
                        if tx.send(full).is_err() {
                            return;
                        }
                        while let Ok(spent) = spent_rx.try_recv() {
                            drop(spent);
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
            for mut batch in rx {
                for decoded in &mut batch {
                    let event = match decoded {
                        Err(e) => {
                            storage_error = Some(std::mem::take(e));
                            return;
                        }
                        Ok(Err(d)) => {
                            self.damage = Some(d.clone());
                            return;
                        }
                        Ok(Ok(event)) => event,
                    };
                    if let Err(e) = self.projection.apply(&*event) {
                        self.damage = Some(Damage {
                            revision: event.revision(),
                            reason: e.to_string(),
                        });
                        return;
                    }
                }
                // The reader has gone once it sent its last batch: then free it here.
                let _ = spent_tx.send(batch);
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
        self.verify_reporting(None)
    }

    /// [`Ledger::verify`], storing in `progress` the number of events checked so far.
    pub fn verify_reporting(&self, progress: Option<&AtomicU64>) -> Result<Verification, LedgerError> {
        let storage = |e: OpenError| LedgerError::storage(e.to_string());
        let store = self.inner.store.as_ref();
        let mut fold = Fold::default();
        loop {
            let target = self.read().head().revision;
            match progress {
                None => fold.advance(store, Some(target)).map_err(storage)?,
                Some(progress) => loop {
                    let at = fold.projection.head().revision;
                    if at >= target || fold.damage.is_some() {
                        break;
                    }
                    fold.advance(store, Some(target.min(at + PROGRESS_STEP)))
                        .map_err(storage)?;
                    progress.store(fold.projection.head().revision, Ordering::Relaxed);
                    if fold.projection.head().revision == at {
                        // Nothing more to read: the fold records what is missing.
                        fold.advance(store, Some(target)).map_err(storage)?;
                        break;
                    }
                },
            }
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

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::domain::dataset::tests::sample;
    use crate::domain::{Event, ObservationDraft, ReleaseDraft, ReleaseStatus};
    use crate::store::{encode, Envelope, FORMAT_VERSION};

    /// `n` chained records: a dataset, then releases that each add a period and revise the
    /// one before. Release `duplicate_at` (a revision), if any, repeats the id of the one before.
    fn records(n: u64, duplicate_at: Option<u64>) -> Vec<(u64, Vec<u8>)> {
        let ds = sample();
        let mut prev = Hash::GENESIS;
        let mut out = Vec::new();
        let mut last_id = Uuid::nil();
        for revision in 1..=n {
            let event = if revision == 1 {
                Event::DatasetDefined { dataset: ds.clone() }
            } else {
                let obs = |year: u64, value: u64| ObservationDraft {
                    key: "IPR.ASIA".into(),
                    period: (1900 + year).to_string().into(),
                    measure: Some("CRE".into()),
                    value: rust_decimal::Decimal::from(value).into(),
                };
                let id = if duplicate_at == Some(revision) {
                    last_id
                } else {
                    Uuid::new_v4()
                };
                last_id = id;
                let release = ReleaseDraft {
                    id: Some(id),
                    dataset: ds.id.clone(),
                    status: ReleaseStatus::Preliminary,
                    title: format!("release {revision}"),
                    published_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::hours(revision as i64),
                    source: None,
                    observations: vec![obs(revision - 1, revision), obs(revision, revision)],
                    backfill: false,
                    revision_reason: None,
                }
                .validate(&ds)
                .expect("a valid release");
                Event::ReleasePublished { release }
            };
            let envelope = Envelope {
                format: FORMAT_VERSION,
                revision,
                event_id: Uuid::new_v4(),
                recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                actor: "test".into(),
                prev_hash: prev.to_hex(),
                event,
            };
            let (hash, bytes) = encode(&envelope);
            prev = hash;
            out.push((revision, bytes));
        }
        out
    }

    fn fold(records: Vec<(u64, Vec<u8>)>) -> Fold {
        let mut fold = Fold::default();
        fold.advance_records(Box::new(records.into_iter().map(Ok)), None)
            .unwrap();
        fold
    }

    /// Damage in the middle of a batch (and of a later one) is reported at its own revision,
    /// with everything before it folded, exactly as an event-by-event fold does.
    #[test]
    fn damage_in_the_middle_of_a_batch_is_reported_at_its_revision() {
        let n = 3 * FOLD_BATCH as u64 + 5;
        let good = records(n, None);
        let whole = fold(good.clone());
        assert!(whole.damage.is_none());
        assert_eq!(whole.projection.head().revision, n);
        for bad in [FOLD_BATCH as u64 / 2 + 1, FOLD_BATCH as u64 + 7, n] {
            // A flipped byte: the hash check fails.
            let mut flipped = good.clone();
            let last = flipped[bad as usize - 1].1.len() - 2;
            flipped[bad as usize - 1].1[last] ^= 1;
            let f = fold(flipped);
            let damage = f.damage.as_ref().expect("damage found");
            assert_eq!(damage.revision, bad);
            assert!(damage.reason.contains("does not match its hash"), "{damage:?}");
            let prefix = fold(good[..bad as usize - 1].to_vec());
            assert_eq!(f.projection, prefix.projection, "revision {bad}");

            // A missing record (the last one missing is the head record's business).
            if bad < n {
                let mut missing = good.clone();
                missing.remove(bad as usize - 1);
                let f = fold(missing);
                let damage = f.damage.as_ref().expect("damage found");
                assert_eq!(damage.revision, bad);
                assert!(damage.reason.starts_with("missing"), "{damage:?}");
                assert_eq!(f.projection.head().revision, bad - 1);
            }

            // A record that decodes but does not apply: a release recorded twice.
            let f = fold(records(n, Some(bad)));
            let damage = f.damage.as_ref().expect("damage found");
            assert_eq!(damage.revision, bad);
            assert!(damage.reason.contains("recorded twice"), "{damage:?}");
            assert_eq!(f.projection.head().revision, bad - 1);
        }
    }
}
