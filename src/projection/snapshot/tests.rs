//! Snapshots: a round trip gives the same projection; a torn, altered or foreign snapshot is
//! refused; an older snapshot plus the log's tail folds to what the whole log folds to.

use super::*;
use crate::ledger::{fold_log_after, OpenError, Prefold};
use crate::store::LogStore;

/// A projection of `releases` random releases over the small dataset, with its log.
fn random_log(releases: &[GenRelease]) -> (Projection, Log) {
    let ds = small_dataset();
    let mut log = Log::default();
    let mut p = Projection::new();
    p.apply(&log.push(Event::DatasetDefined { dataset: ds.clone() }))
        .unwrap();
    for g in releases {
        p.apply(&log.push(Event::ReleasePublished {
            release: build_release(&ds, g),
        }))
        .unwrap();
    }
    (p, log)
}

fn store_of(log: &Log) -> SledStore {
    let store = SledStore::temporary().unwrap();
    store.append_blocking(&log.records, Head::default()).unwrap();
    store
}

/// The fixtures' projection comes back equal, head included, and reads the same.
#[test]
fn round_trip_gives_an_equal_projection() {
    for upto in 0..=3 {
        let (p, _) = fixture_projection(upto);
        let back = Projection::from_snapshot(&p.to_snapshot()).expect("a fresh snapshot loads");
        assert_eq!(back, p, "after {upto} events");
        assert_eq!(back.head(), p.head());
    }
    let (p, _) = fixture_projection(3);
    let back = Projection::from_snapshot(&p.to_snapshot()).unwrap();
    assert_eq!(
        value_at(&back, "_T._T._T", "2025-S1", None),
        value_at(&p, "_T._T._T", "2025-S1", None)
    );
    assert!(value_at(&back, "_T._T._T", "2025-S1", None).is_some());
}

/// Every single flipped byte, and every truncation, is refused, never loaded as something
/// else (and never a panic).
#[test]
fn a_damaged_snapshot_is_refused() {
    let (p, _) = fixture_projection(3);
    let bytes = p.to_snapshot();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(
            Projection::from_snapshot(&bad).is_err(),
            "byte {i} flipped was accepted"
        );
    }
    for len in [
        0,
        10,
        crate::projection::snapshot::HEADER_LEN,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let err = Projection::from_snapshot(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, SnapshotError::NotASnapshot | SnapshotError::Length { .. }),
            "{len}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Projection::from_snapshot(&longer),
        Err(SnapshotError::Length { .. })
    ));
    let mut other_format = bytes.clone();
    other_format[8] = 99;
    assert!(matches!(
        Projection::from_snapshot(&other_format),
        Err(SnapshotError::Format { found: 99 })
    ));
}

/// A body that is well sealed but does not make sense (as a bug or a forger would write it) is
/// an error naming what is wrong, not a panic on a later read.
#[test]
fn a_sealed_but_inconsistent_body_is_refused() {
    let (p, _) = fixture_projection(3);
    // A version naming a release that does not exist.
    let mut q = p.clone();
    q.releases.pop();
    q.release_ix.clear();
    let err = Projection::from_snapshot(&q.to_snapshot()).unwrap_err();
    assert!(err.to_string().contains("unknown release"), "{err}");
    // A cell pointing past the figures.
    let mut q = p.clone();
    q.datasets[0].series[0].cells[0].2 = 1_000_000;
    let err = Projection::from_snapshot(&q.to_snapshot()).unwrap_err();
    assert!(err.to_string().contains("figure"), "{err}");
}

/// The record at the snapshot's revision must hash to the snapshot's head hash: a snapshot
/// of another log with as many events (a replaced or restored store) is refused, and so is a
/// snapshot beyond the end of the log.
#[test]
fn a_snapshot_of_another_log_is_refused() {
    let (p, log) = fixture_projection(3);
    let store = store_of(&log);
    // The same events, recorded again: other event ids, so other hashes.
    let (_, other) = fixture_projection(3);
    let other = store_of(&other);
    assert!(Prefold::from_snapshot(p.clone(), store.scan(3)).is_ok());
    match Prefold::from_snapshot(p.clone(), other.scan(3)) {
        Err(OpenError::Snapshot(why)) => assert!(why.contains("another hash"), "{why}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a snapshot of another log was accepted"),
    }
    let (_, short) = fixture_projection(2);
    let short = store_of(&short);
    match Prefold::from_snapshot(p, short.scan(3)) {
        Err(OpenError::Snapshot(why)) => assert!(why.contains("ends before"), "{why}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a snapshot beyond the log was accepted"),
    }
}

/// A tail whose chain does not continue from the snapshot's hash is damage at its first
/// event, as in a full fold.
#[test]
fn a_tail_that_does_not_chain_is_damage() {
    let (p, a) = fixture_projection(2);
    let (_, b) = fixture_projection(3);
    // Log A's first two events, then B's third, which links to B's second, not A's.
    let store = SledStore::temporary().unwrap();
    let head = store.append_blocking(&a.records, Head::default()).unwrap();
    store.append_blocking(&b.records[2..], head).unwrap();
    let prefold = Prefold::from_snapshot(p, store.scan(2)).expect("the record at the snapshot's revision matches");
    let damage = prefold.damage().expect("the tail's chain is broken");
    assert_eq!(damage.revision, 3, "{damage}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A snapshot taken after any prefix of a random log, loaded from its bytes and continued
    /// over the rest of the log, equals the fold of the whole log; so does the round trip.
    #[test]
    fn older_snapshot_plus_tail_equals_a_full_fold(
        releases in prop::collection::vec(gen_release(), 1..12),
        cut in 0usize..13,
    ) {
        let (full, log) = random_log(&releases);
        let store = store_of(&log);
        let (folded, v) = crate::ledger::fold_log(&store).unwrap();
        prop_assert!(v.ok());
        prop_assert_eq!(&folded, &full);
        prop_assert_eq!(&Projection::from_snapshot(&full.to_snapshot()).unwrap(), &full);

        // The fold of the first `cut` releases (and the definition) of the same log.
        let cut = cut.min(releases.len());
        let mut prefix = Projection::new();
        for e in &log.events[..=cut] {
            prefix.apply(e).unwrap();
        }
        let loaded = Projection::from_snapshot(&prefix.to_snapshot()).unwrap();
        let revision = loaded.head().revision;
        let prefold = Prefold::from_snapshot(loaded, store.scan(revision)).unwrap();
        let (continued, v) = fold_log_after(&store, Some(prefold)).unwrap();
        prop_assert!(v.ok(), "{:?}", v);
        prop_assert_eq!(&continued, &full);
    }
}
