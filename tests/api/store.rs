//! The event log on disk: dense revisions, the hash chain, tamper detection, and durability
//! across a reopen.

use crate::common;

use std::sync::Arc;

use common::*;
use tradeledger::domain::Event;
use tradeledger::ledger::{fold_log, fold_log_after, OpenError, OpenOptions, Prefold};
use tradeledger::projection::AsOf;
use tradeledger::store::{decode, encode, ColdScan, Hash, LogStore, SledStore};
use tradeledger::testing::*;
use tradeledger::{Ledger, LedgerError};
use uuid::Uuid;

/// Runs `fold_log` and returns the first bad revision (if any) and the number checked.
fn first_bad(store: &SledStore) -> (Option<u64>, u64) {
    let (_, v) = fold_log(store).expect("the store is readable");
    (v.damage.map(|d| d.revision), v.checked)
}

fn raw(store: &SledStore, revision: u64) -> Vec<u8> {
    store.get(revision).unwrap().expect("event exists")
}

fn put(store: &SledStore, revision: u64, value: &[u8]) {
    store.events_tree().insert(revision.to_be_bytes(), value).unwrap();
}

/// Loads the fixtures into a fresh store and drops the ledger, keeping the store handle.
async fn loaded_store() -> (tempfile::TempDir, SledStore) {
    let (dir, store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    drop(ledger);
    (dir, store)
}

/// Opening a ledger over a damaged store is refused, naming the damaged revision.
fn assert_refused(store: &SledStore, revision: u64) {
    match Ledger::open(Arc::new(store.clone()), OpenOptions::default()) {
        Err(OpenError::Damaged(d)) => assert_eq!(d.revision, revision, "{d}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a damaged log was opened for writing"),
    }
}

/// The fixtures get revisions 1, 2, 3, each event chained to the one before, and the store
/// head, the projection head and the commit answers agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_are_dense_and_chained() {
    let (_dir, store, ledger) = fresh().await;
    let committed = load_fixtures(&ledger).await;
    let revisions: Vec<u64> = committed.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, [1, 2, 3]);
    assert!(committed.iter().all(|c| !c.duplicate));
    assert_eq!(committed[1].release, Some(Uuid::parse_str(PRELIMINARY_ID).unwrap()));

    let events = ledger.events(0, 100).unwrap();
    assert_eq!(events.iter().map(|e| e.revision()).collect::<Vec<_>>(), [1, 2, 3]);
    let mut prev = Hash::GENESIS;
    for (e, c) in events.iter().zip(&committed) {
        assert_eq!(e.envelope.prev_hash, prev.to_hex(), "revision {}", e.revision());
        assert_eq!(e.hash, c.hash, "revision {}", e.revision());
        assert_eq!(e.envelope.actor, "test");
        prev = e.hash;
    }
    assert!(matches!(events[0].envelope.event, Event::DatasetDefined { .. }));
    assert!(matches!(events[2].envelope.event, Event::ReleasePublished { .. }));
    let head = store.head().unwrap();
    assert_eq!((head.revision, head.hash), (3, prev));
    assert_eq!(ledger.read().head().revision, 3);
    assert_eq!(ledger.read().head().hash, prev);
    // Paging through the log from the middle gives the rest.
    assert_eq!(ledger.events(1, 1).unwrap()[0].revision(), 2);
    assert_eq!(ledger.events(2, 100).unwrap().len(), 1);
    assert!(ledger.events(3, 100).unwrap().is_empty());
}

/// An untouched log verifies, both through the ledger and through `fold_log`, and the fresh
/// fold equals the live projection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untouched_log_verifies() {
    let (_dir, store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let v = ledger.verify().unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.checked, 3);
    let (projection, v) = fold_log(&store).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.checked, 3);
    assert_eq!(projection, *ledger.read());
}

/// Flipping any one byte of any stored event makes verification name exactly that revision
/// as the first bad one; restoring the byte makes the log whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_reported_at_its_revision() {
    let (_dir, store) = loaded_store().await;
    for revision in 1..=3u64 {
        let original = raw(&store, revision);
        let n = original.len();
        // The stored hash, the start of the JSON body, its middle and its last byte.
        for pos in [0, 31, 32, n / 2, n - 1] {
            let mut bad = original.clone();
            bad[pos] ^= 0x01;
            put(&store, revision, &bad);
            assert_eq!(
                first_bad(&store),
                (Some(revision), revision - 1),
                "byte {pos} of revision {revision}"
            );
        }
        put(&store, revision, &original);
        assert_eq!(first_bad(&store), (None, 3));
    }
}

/// A damaged log is refused by `Ledger::open`, but opens read-only: reads are served up to the
/// last good revision, writes are refused, and `verify` names the damaged revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_log_is_refused_unless_read_only() {
    let (_dir, store) = loaded_store().await;
    let mut bad = raw(&store, 3);
    let last = bad.len() - 2;
    bad[last] ^= 0x20;
    put(&store, 3, &bad);
    assert_refused(&store, 3);

    let (ledger, v) = Ledger::open(Arc::new(store.clone()), OpenOptions { read_only: true }).unwrap();
    assert_eq!(v.damage.as_ref().map(|d| d.revision), Some(3));
    assert_eq!(v.checked, 2);
    assert!(ledger.is_read_only().unwrap().contains("damaged"));
    assert_eq!(ledger.read().head().revision, 2);
    // The preliminary figures are served; the damaged revision's are not.
    assert_eq!(figure(&ledger, "_T._T._T", "2025-S1", None), Some(dec("-4530")));
    assert!(ledger.read().release(&Uuid::parse_str(REVISION_ID).unwrap()).is_none());
    let v = ledger.verify().unwrap();
    assert!(!v.ok());
    assert_eq!(v.damage.unwrap().revision, 3);
    let e = ledger
        .publish(draft(vec![obs("_T._T._T", "2026-S1", None, "1")]), None, "test")
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::ReadOnly(_)), "{e:?}");
    assert_eq!(e.code(), "FORBIDDEN");
    let e = ledger.define_dataset(dataset(), "test").await.unwrap_err();
    assert!(matches!(e, LedgerError::ReadOnly(_)), "{e:?}");
    drop(ledger);
    // Nothing was written: the same damage is found again.
    assert_eq!(first_bad(&store), (Some(3), 2));
    assert_eq!(store.head().unwrap().revision, 3);
}

/// Deleting an event, in the middle or at the end of the log, is detected at its revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_event_is_detected() {
    let (_dir, store) = loaded_store().await;
    for revision in [2u64, 3, 1] {
        let original = raw(&store, revision);
        store.events_tree().remove(revision.to_be_bytes()).unwrap();
        assert_eq!(
            first_bad(&store),
            (Some(revision), revision - 1),
            "revision {revision} deleted"
        );
        assert_refused(&store, revision);
        put(&store, revision, &original);
        assert_eq!(first_bad(&store), (None, 3));
    }
}

/// Swapping two stored events is detected at the first of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_events_are_detected() {
    let (_dir, store) = loaded_store().await;
    for (a, b) in [(2u64, 3u64), (1, 2), (1, 3)] {
        let (va, vb) = (raw(&store, a), raw(&store, b));
        put(&store, a, &vb);
        put(&store, b, &va);
        assert_eq!(first_bad(&store), (Some(a), a - 1), "{a} <-> {b}");
        assert_refused(&store, a);
        put(&store, a, &va);
        put(&store, b, &vb);
        assert_eq!(first_bad(&store), (None, 3));
    }
}

/// Rewriting an event with a recomputed, self-consistent hash still breaks the chain: the next
/// event's `prev_hash` (or, for the last event, the head record) no longer matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehashed_event_breaks_the_chain() {
    let (_dir, store) = loaded_store().await;
    let forge = |revision: u64| {
        let prev = if revision == 1 {
            Hash::GENESIS
        } else {
            Hash(raw(&store, revision - 1)[..32].try_into().unwrap())
        };
        let mut event = decode(revision, &raw(&store, revision), &prev).unwrap();
        match &mut event.envelope.event {
            Event::ReleasePublished { release } | Event::ReleaseRevealed { release, .. } => {
                release.observations[0].value = dec("-1")
            }
            Event::DatasetDefined { dataset } | Event::DatasetAmended { dataset } => dataset.name = "forged".into(),
            Event::ReleaseScheduled { schedule } => schedule.title = "forged".into(),
            Event::ScheduledReleaseWithdrawn { withdrawal } => withdrawal.reason = Some("forged".into()),
        }
        let (_, bytes) = encode(&event.envelope);
        // The forged record is valid on its own.
        decode(revision, &bytes, &prev).unwrap();
        bytes
    };
    let original = raw(&store, 2);
    put(&store, 2, &forge(2));
    let (_, v) = fold_log(&store).unwrap();
    let d = v.damage.expect("forgery detected");
    assert_eq!(d.revision, 3, "{d}");
    assert!(d.reason.contains("prev_hash"), "{d}");
    assert_refused(&store, 3);
    put(&store, 2, &original);

    put(&store, 3, &forge(3));
    let (_, v) = fold_log(&store).unwrap();
    assert!(!v.ok(), "a forged last event went unnoticed");
    assert!(Ledger::open(Arc::new(store.clone()), OpenOptions::default()).is_err());
}

/// After the ledger and store are dropped, reopening the directory gives the same head, the
/// same projection and the same figures, and the log continues the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything() {
    let (dir, store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let head = store.head().unwrap();
    let projection = ledger.read().clone();
    let events = ledger.events(0, 100).unwrap();
    drop(ledger);
    drop(store);

    let store = open_store(dir.path()).await;
    assert_eq!(store.head().unwrap(), head);
    let ledger = open_ledger(&store);
    assert_eq!(*ledger.read(), projection);
    assert_eq!(ledger.events(0, 100).unwrap(), events);
    assert_eq!(figure(&ledger, "_T._T._T", "2025-S1", None), Some(dec("-4610")));
    let prelim = Some(AsOf::Release(Uuid::parse_str(PRELIMINARY_ID).unwrap()));
    assert_eq!(figure(&ledger, "_T._T._T", "2025-S1", prelim), Some(dec("-4530")));
    assert!(ledger.verify().unwrap().ok());

    // A re-sent fixture is still recognised after the restart (the release index survived).
    let again = ledger
        .publish(fixtures().releases.remove(0), None, "test")
        .await
        .unwrap();
    assert_eq!((again.revision, again.duplicate), (2, true));
    let c = ledger
        .publish(draft(vec![obs("_T._T._T", "2025-S2", None, "-4000")]), None, "test")
        .await
        .unwrap();
    assert_eq!(c.revision, 4);
    let e = &ledger.events(3, 1).unwrap()[0];
    assert_eq!(e.envelope.prev_hash, head.hash.to_hex());
    drop(ledger);
    drop(store);

    let store = open_store(dir.path()).await;
    let ledger = open_ledger(&store);
    assert_eq!(ledger.read().head().revision, 4);
    assert_eq!(figure(&ledger, "_T._T._T", "2025-S2", None), Some(dec("-4000")));
}

/// At start-up the log is read through short-lived handles (`ColdScan`), because sled keeps
/// every page one handle has read in memory until it is closed. Wherever the chunks break,
/// that scan yields exactly what one handle's scan yields; a fold continued from it equals a
/// fresh fold; and damage it meets is reported like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_scan_in_chunks_reads_the_same_log() {
    let (dir, store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    for i in 0..5 {
        let value = format!("{}", 100 + i);
        ledger
            .publish(
                draft(vec![obs("_T._T._T", "2025-S2", Some("BAL"), &value)]),
                None,
                "test",
            )
            .await
            .expect("published");
    }
    let expected: Vec<(u64, Vec<u8>)> = store.scan(1).map(Result::unwrap).collect();
    assert_eq!(expected.len(), 8);
    let (live, _) = fold_log(&store).unwrap();
    drop(ledger);
    drop(store);
    let path = dir.path();
    // Wait until the writer task has let go of its handle.
    drop(open_store(path).await);

    // 1 byte: a fresh handle per record; 40 KB: a few records per handle; a whole-log chunk.
    for chunk in [1, 40_000, usize::MAX] {
        let got: Vec<(u64, Vec<u8>)> = ColdScan::new(path, 1, chunk).map(Result::unwrap).collect();
        assert_eq!(got, expected, "chunk {chunk}");
        let from_4: Vec<u64> = ColdScan::new(path, 4, chunk).map(|r| r.unwrap().0).collect();
        assert_eq!(from_4, (4..=8).collect::<Vec<_>>(), "chunk {chunk}");
    }

    let prefold = Prefold::from_records(Box::new(ColdScan::new(path, 1, 1))).unwrap();
    let store = open_store(path).await;
    let (projection, v) = fold_log_after(&store, Some(prefold)).unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.checked, 8);
    assert_eq!(projection, live);

    // Damage in the middle: the cold scan stops there and the check names the revision.
    let mut bad = raw(&store, 5);
    let n = bad.len();
    bad[n / 2] ^= 0x01;
    put(&store, 5, &bad);
    store.flush_blocking().unwrap();
    drop(store);
    let prefold = Prefold::from_records(Box::new(ColdScan::new(path, 1, 1))).unwrap();
    let store = open_store(path).await;
    let (projection, v) = fold_log_after(&store, Some(prefold)).unwrap();
    assert_eq!(v.damage.map(|d| d.revision), Some(5));
    assert_eq!((v.checked, projection.head().revision), (4, 4));
}
