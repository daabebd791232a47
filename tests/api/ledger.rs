//! The ledger's writer: idempotency, conflicts, optimistic concurrency, validation, group
//! commit under concurrent publishers, notices, and incremental projection versus rebuild.

use crate::common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use tradeledger::domain::{ReleaseDraft, ReleaseStatus};
use tradeledger::ledger::{fold_log, Committed, OpenOptions};
use tradeledger::projection::{Applied, AsOf, CellKey};
use tradeledger::store::{Head, LogStore, SledStore};
use tradeledger::testing::*;
use tradeledger::{Ledger, LedgerError};
use uuid::Uuid;

fn prelim_id() -> Uuid {
    Uuid::parse_str(PRELIMINARY_ID).unwrap()
}

/// The ledger's head as the projection and the store both see it.
fn heads(ledger: &Ledger) -> (u64, tradeledger::store::Hash, Head) {
    let h = ledger.read().head();
    (h.revision, h.hash, ledger.store().head().unwrap())
}

/// Re-publishing a release with the same id and content returns its original revision and
/// hash with `duplicate: true`, and writes nothing; so does re-defining the same dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_republish_returns_the_original() {
    let (_dir, _store, ledger) = fresh().await;
    let committed = load_fixtures(&ledger).await;
    let before = heads(&ledger);
    let projection = ledger.read().clone();

    let prelim = fixtures().releases.remove(0);
    let again = ledger.publish(prelim.clone(), None, "someone-else").await.unwrap();
    assert_eq!(
        again,
        Committed {
            revision: 2,
            hash: committed[1].hash,
            duplicate: true,
            release: Some(prelim_id()),
        }
    );
    // The same figures in another order are the same content.
    let mut reordered = prelim.clone();
    reordered.observations.reverse();
    let again = ledger.publish(reordered, None, "test").await.unwrap();
    assert_eq!((again.revision, again.duplicate), (2, true));
    // A stale expected revision does not turn a retry of a successful write into a conflict.
    let again = ledger.publish(prelim, Some(1), "test").await.unwrap();
    assert_eq!((again.revision, again.duplicate), (2, true));

    let again = ledger.define_dataset(dataset(), "test").await.unwrap();
    assert_eq!(
        (again.revision, again.hash, again.duplicate),
        (1, committed[0].hash, true)
    );

    assert_eq!(heads(&ledger), before);
    assert_eq!(*ledger.read(), projection);
    assert_eq!(ledger.events(0, 100).unwrap().len(), 3);
}

/// The same release sent twice in one group commit (and twice concurrently) is recorded
/// once; both callers get the same revision and exactly one of them is not a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_within_one_group_are_recorded_once() {
    let (_dir, _store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let mut d = draft(vec![obs("_T._T._T", "2025-S2", None, "-4000")]);
    d.id = Some(Uuid::new_v4());
    let results = ledger.publish_all(vec![d.clone(), d.clone()], "test").await;
    let results: Vec<Committed> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(results[0].revision, 4);
    assert_eq!(results[1].revision, 4);
    assert_eq!(results[0].hash, results[1].hash);
    assert_eq!((results[0].duplicate, results[1].duplicate), (false, true));

    let mut e = draft(vec![obs("_T._T._T", "2026-S1", None, "-1")]);
    e.id = Some(Uuid::new_v4());
    let (a, b) = tokio::join!(ledger.publish(e.clone(), None, "a"), ledger.publish(e, None, "b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.revision, 5);
    assert_eq!(b.revision, 5);
    assert!(a.duplicate != b.duplicate, "{a:?} {b:?}");
    assert_eq!(ledger.read().head().revision, 5);
    assert!(ledger.verify().unwrap().ok());
}

/// The same release id with different content is a conflict and changes nothing; so is a
/// different definition of an existing dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_republish_changes_nothing() {
    let (_dir, _store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let before = heads(&ledger);
    let projection = ledger.read().clone();

    let prelim = fixtures().releases.remove(0);
    let mut changed_value = prelim.clone();
    changed_value.observations[0].value = "-4531".into();
    let mut changed_title = prelim.clone();
    changed_title.title = "another title".into();
    let mut fewer = prelim.clone();
    fewer.observations.pop();
    let mut changed_status = prelim;
    changed_status.status = ReleaseStatus::Final;
    for d in [changed_value, changed_title, fewer, changed_status] {
        let e = ledger.publish(d, None, "test").await.unwrap_err();
        assert!(
            matches!(&e, LedgerError::Conflict(m) if m.contains(PRELIMINARY_ID)),
            "{e:?}"
        );
        assert_eq!(e.code(), "CONFLICT");
        assert_eq!(heads(&ledger), before);
        assert_eq!(*ledger.read(), projection);
    }
    // Also when the conflicting copy arrives in the same group as the original.
    let mut d = draft(vec![obs("_T._T._T", "2025-S2", None, "-4000")]);
    d.id = Some(Uuid::new_v4());
    let mut other = d.clone();
    other.observations[0].value = "-4001".into();
    let results = ledger.publish_all(vec![d, other], "test").await;
    assert_eq!(results[0].as_ref().unwrap().revision, 4);
    assert!(matches!(results[1], Err(LedgerError::Conflict(_))), "{:?}", results[1]);
    assert_eq!(figure(&ledger, "_T._T._T", "2025-S2", None), Some(dec("-4000")));
    assert_eq!(ledger.read().head().revision, 4);

    let before = heads(&ledger);
    let mut ds = dataset();
    ds.name = "Renamed".into();
    let e = ledger.define_dataset(ds, "test").await.unwrap_err();
    assert!(matches!(&e, LedgerError::Conflict(m) if m.contains(DATASET)), "{e:?}");
    assert_eq!(heads(&ledger), before);
    assert_eq!(figure(&ledger, "_T._T._T", "2025-S1", None), Some(dec("-4610")));
    assert_eq!(
        figure(&ledger, "_T._T._T", "2025-S1", Some(AsOf::Release(prelim_id()))),
        Some(dec("-4530"))
    );
}

/// A write whose `expected_revision` is not the head is a conflict and changes nothing; with
/// the right one it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_revision_mismatch_changes_nothing() {
    let (_dir, _store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let before = heads(&ledger);
    let projection = ledger.read().clone();
    let d = || draft(vec![obs("_T._T._T", "2025-S2", None, "-4000")]);
    for expected in [0, 2, 4, 100] {
        let e = ledger.publish(d(), Some(expected), "test").await.unwrap_err();
        match &e {
            LedgerError::Conflict(m) => {
                assert!(m.contains(&format!("expectedRevision {expected}")), "{m}")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(heads(&ledger), before);
        assert_eq!(*ledger.read(), projection);
    }
    let c = ledger.publish(d(), Some(3), "test").await.unwrap();
    assert_eq!((c.revision, c.duplicate), (4, false));
    // The head moved, so 3 is now stale.
    let e = ledger.publish(d(), Some(3), "test").await.unwrap_err();
    assert!(matches!(e, LedgerError::Conflict(_)));
    assert_eq!(ledger.read().head().revision, 4);

    // Racing writers that all expect revision 4: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.publish(d(), Some(4), "test").await })
        })
        .collect();
    let mut wins = Vec::new();
    for r in racers {
        match r.await.unwrap() {
            Ok(c) => wins.push(c.revision),
            Err(e) => assert!(matches!(e, LedgerError::Conflict(_)), "{e:?}"),
        }
    }
    assert_eq!(wins, [5]);
    assert_eq!(ledger.read().head().revision, 5);
}

/// Each kind of invalid release is `BAD_USER_INPUT` naming the offending item (field and
/// message), and leaves the head revision and hash unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_failures_name_the_item_and_change_nothing() {
    let (_dir, _store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let before = heads(&ledger);
    let ok = obs("_T._T._T", "2025-S2", None, "1");
    let mut unknown_dataset = draft(vec![ok.clone()]);
    unknown_dataset.dataset = "NO_SUCH_DATASET".into();
    let cases: Vec<(ReleaseDraft, &str, &str)> = vec![
        (unknown_dataset, "dataset", "NO_SUCH_DATASET"),
        (
            draft(vec![ok.clone(), obs("_T._T.MARS", "2025-S1", None, "1")]),
            "observations[1].key",
            "MARS",
        ),
        (
            draft(vec![obs("ASIA._T._T", "2025-S1", None, "1")]),
            "observations[0].key",
            "ASIA",
        ),
        (
            draft(vec![obs("IPR._T", "2025-S1", None, "1")]),
            "observations[0].key",
            "IPR._T",
        ),
        (
            draft(vec![obs("IPR._T._T._T", "2025-S1", None, "1")]),
            "observations[0].key",
            "3 dimensions",
        ),
        (
            draft(vec![ok.clone(), obs("IPR._T._T", "2025-S3", None, "1")]),
            "observations[1].period",
            "2025-S3",
        ),
        (
            draft(vec![obs("IPR._T._T", "S1-2025", None, "1")]),
            "observations[0].period",
            "S1-2025",
        ),
        (
            draft(vec![obs("IPR._T._T", "2025-S1", Some("NET"), "1")]),
            "observations[0].measure",
            "NET",
        ),
        (
            draft(vec![
                obs("IPR._T._T", "2025-S1", None, "1"),
                ok.clone(),
                obs("IPR._T._T", "2025H1", Some("BAL"), "2"),
            ]),
            "observations[2].key",
            "duplicate observation IPR._T._T 2025-S1 BAL",
        ),
        (
            draft(vec![obs("IPR._T._T", "2025-S1", None, "1e3")]),
            "observations[0].value",
            "1e3",
        ),
        (
            draft(vec![ok.clone(), obs("IPR._T._T", "2025-S1", None, "NaN")]),
            "observations[1].value",
            "NaN",
        ),
        (
            draft(vec![obs("IPR._T._T", "2025-S1", None, "1,000")]),
            "observations[0].value",
            "1,000",
        ),
        (
            draft(vec![obs("IPR._T._T", "2025-S1", None, "")]),
            "observations[0].value",
            "invalid decimal",
        ),
        (draft(vec![]), "observations", "at least one observation"),
        (
            draft(vec![
                obs("IPR._T._T", "2025-S1", Some("CRE"), "10"),
                obs("IPR._T._T", "2025-S1", Some("DEB"), "4"),
                obs("IPR._T._T", "2025-S1", Some("BAL"), "5"),
            ]),
            "observations",
            "IPR._T._T 2025-S1",
        ),
    ];
    for (d, field, needle) in cases {
        let what = format!("{field} / {needle}");
        let e = ledger.publish(d, None, "test").await.unwrap_err();
        assert_eq!(e.code(), "BAD_USER_INPUT", "{what}: {e:?}");
        let LedgerError::BadInput { field: f, message } = &e else {
            panic!("{what}: {e:?}");
        };
        assert_eq!(f, field, "{what}: {e}");
        assert!(message.contains(needle), "{what}: `{message}` should name `{needle}`");
        assert_eq!(heads(&ledger), before, "{what} changed the ledger");
    }
    // publish_all validates each release the same way.
    let results = ledger
        .publish_all(vec![draft(vec![obs("IPR._T._T", "2025-S3", None, "1")])], "test")
        .await;
    assert!(matches!(&results[0], Err(LedgerError::BadInput { field, .. }) if field == "observations[0].period"));
    assert_eq!(heads(&ledger), before);
    assert_eq!(ledger.events(0, 100).unwrap().len(), 3);
    assert!(ledger.verify().unwrap().ok());
}

/// Fifty concurrent publishers get the revisions 2..=51 exactly once each, and the figure
/// they all wrote keeps its versions in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_dense_unique_revisions() {
    let (_dir, store, ledger) = fresh().await;
    ledger.define_dataset(dataset(), "test").await.unwrap();
    let tasks: Vec<_> = (0..50i64)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let d = draft(vec![
                    obs("_T._T._T", "2030-S1", None, &i.to_string()),
                    obs("IPR._T._T", "2030-S1", None, &(i * 10).to_string()),
                ]);
                (i, ledger.publish(d, None, &format!("writer-{i}")).await.unwrap())
            })
        })
        .collect();
    let mut by_revision = std::collections::BTreeMap::new();
    for t in tasks {
        let (i, c) = t.await.unwrap();
        assert!(!c.duplicate);
        assert!(
            by_revision.insert(c.revision, i).is_none(),
            "revision {} given twice",
            c.revision
        );
    }
    assert_eq!(
        by_revision.keys().copied().collect::<Vec<_>>(),
        (2..=51).collect::<Vec<u64>>()
    );
    assert_eq!(store.head().unwrap().revision, 51);
    let events = ledger.events(0, 1000).unwrap();
    assert_eq!(
        events.iter().map(|e| e.revision()).collect::<Vec<_>>(),
        (1..=51).collect::<Vec<u64>>()
    );
    for e in &events[1..] {
        let i = by_revision[&e.revision()];
        assert_eq!(e.envelope.actor, format!("writer-{i}"));
    }

    let p = ledger.read();
    let ds = p.dataset(DATASET).unwrap();
    let cell = CellKey {
        key: ds.def.total_key(),
        period: "2030-S1".parse().unwrap(),
        measure: 0,
    };
    let history = ds.history(&cell).unwrap();
    assert_eq!(history.versions.len(), 50);
    for (n, v) in history.versions.iter().enumerate() {
        let revision = p.release_at(v.release).revision;
        assert_eq!(revision, n as u64 + 2);
        assert_eq!(v.value, Decimal::from(by_revision[&revision]));
    }
    drop(p);
    assert!(ledger.verify().unwrap().ok());
}

/// Subscribers hear of each durable event once, in revision order, with the figures a
/// release revised; duplicates and refused writes send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_follow_durable_writes() {
    let (_dir, _store, ledger) = fresh().await;
    let mut rx = ledger.subscribe();
    load_fixtures(&ledger).await;
    let _ = ledger
        .publish(fixtures().releases.remove(0), None, "test")
        .await
        .unwrap();
    let _ = ledger.publish(draft(vec![]), None, "test").await.unwrap_err();
    let mut got = Vec::new();
    while let Ok(n) = rx.try_recv() {
        got.push(n);
    }
    assert_eq!(got.iter().map(|n| n.revision).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(got[0].applied, Applied::DatasetDefined { id: DATASET.into() });
    let Applied::ReleasePublished { release, revised } = &got[2].applied else {
        panic!("{:?}", got[2]);
    };
    assert_eq!(*release, 1);
    assert_eq!(revised.len(), 5);
    let total = revised
        .iter()
        .find(|r| r.key == "_T._T._T" && r.period.to_string() == "2025-S1")
        .unwrap();
    assert_eq!(
        (total.previous, total.value, total.version),
        (dec("-4530"), dec("-4610"), 2)
    );
}

// ---------------------------------------------------------------------------------------
// Property test: the ledger's incrementally maintained projection equals a rebuild.

#[derive(Debug, Clone)]
enum Step {
    /// A new release: (key, period, value) triples; published `day` days after 2025-01-01.
    Publish { day: i64, obs: Vec<(usize, usize, i64)> },
    /// Re-send the n-th earlier release unchanged (a duplicate), or changed (a conflict).
    Resend { nth: usize, change: bool },
}

const KEYS: [&str; 6] = [
    "_T._T._T",
    "IPR._T._T",
    "ICT._T._T",
    "_T.MFG._T",
    "_T._T.ASIA",
    "PBS.DIP.EUR",
];
const PERIODS: [&str; 3] = ["2024-S2", "2025-S1", "2025-S2"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0i64..300, prop::collection::btree_map((0..KEYS.len(), 0..PERIODS.len()), -5i64..5, 1..6))
            .prop_map(|(day, m)| Step::Publish { day, obs: m.into_iter().map(|((k, p), v)| (k, p, v)).collect() }),
        1 => (0usize..8, any::<bool>()).prop_map(|(nth, change)| Step::Resend { nth, change }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// For random sequences of releases (revising earlier figures, re-sent and conflicting
    /// copies included, some sent as one group), the projection the ledger keeps up to date
    /// equals a fresh `fold_log` of its sled store, and the log verifies.
    #[test]
    fn ledger_projection_equals_rebuild(steps in prop::collection::vec(step(), 1..14), grouped in 0usize..4) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let store = SledStore::temporary().unwrap();
            let (ledger, _) = Ledger::open(Arc::new(store.clone()) as Arc<dyn LogStore>, OpenOptions::default()).unwrap();
            ledger.define_dataset(dataset(), "test").await.unwrap();
            let mut sent: Vec<ReleaseDraft> = Vec::new();
            let mut expected_revision = 1u64;
            let mut batch = Vec::new();
            for (n, s) in steps.into_iter().enumerate() {
                let d = match s {
                    Step::Publish { day, obs: o } => {
                        let mut d = draft(o.iter().map(|&(k, p, v)| obs(KEYS[k], PERIODS[p], None, &v.to_string())).collect());
                        d.id = Some(Uuid::new_v4());
                        d.status = if sent.is_empty() { ReleaseStatus::Preliminary } else { ReleaseStatus::Revised };
                        d.published_at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::days(day);
                        // Publication times come in any order: the older ones are back-fills.
                        d.backfill = true;
                        sent.push(d.clone());
                        d
                    }
                    Step::Resend { nth, change } => {
                        let Some(original) = sent.get(nth % sent.len().max(1)) else { continue };
                        let mut d = original.clone();
                        if change {
                            d.title.push_str(" (changed)");
                        }
                        d
                    }
                };
                if n < grouped {
                    batch.push(d);
                    continue;
                }
                if !batch.is_empty() {
                    let before = ledger.read().head().revision;
                    let results = ledger.publish_all(std::mem::take(&mut batch), "test").await;
                    let fresh = results.iter().filter(|r| matches!(r, Ok(c) if !c.duplicate)).count() as u64;
                    expected_revision = before + fresh;
                    prop_assert_eq!(ledger.read().head().revision, expected_revision);
                }
                let changed = d.title.ends_with("(changed)");
                let id = d.id;
                match ledger.publish(d, None, "test").await {
                    Ok(c) if c.duplicate => {
                        prop_assert!(!changed);
                        prop_assert_eq!(c.release, id);
                        prop_assert!(c.revision <= expected_revision);
                    }
                    Ok(c) => {
                        expected_revision += 1;
                        prop_assert_eq!(c.revision, expected_revision);
                    }
                    Err(e) => prop_assert!(changed && matches!(e, LedgerError::Conflict(_)), "{:?}", e),
                }
            }
            if !batch.is_empty() {
                ledger.publish_all(batch, "test").await;
            }
            let (rebuilt, verification) = fold_log(&store).unwrap();
            prop_assert!(verification.ok(), "{:?}", verification);
            prop_assert_eq!(&rebuilt, &*ledger.read());
            prop_assert_eq!(store.head().unwrap().revision, rebuilt.head().revision);
            prop_assert!(ledger.verify().unwrap().ok());
            Ok(())
        })?;
    }
}

/// `verify` on a live ledger reports no damage while writes are going on: the writes that
/// are in flight are not mistaken for a divergence between the log and the projection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_during_writes_reports_no_false_damage() {
    let (_dir, _store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let d = draft(vec![obs("_T._T._T", "2030-S1", None, &format!("{w}{i}"))]);
                    ledger.publish(d, None, "test").await.unwrap();
                }
            })
        })
        .collect();
    let checker = {
        let ledger = ledger.clone();
        tokio::task::spawn_blocking(move || {
            let mut checks = 0;
            while ledger.read().head().revision < 3 + 160 {
                let v = ledger.verify().unwrap();
                assert!(v.ok(), "after {checks} good checks: {v:?}");
                checks += 1;
            }
            checks
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let checks = checker.await.unwrap();
    eprintln!("{checks} verifications while writing");
    assert!(checks > 0);
    assert!(ledger.verify().unwrap().ok());
}

/// Verifications asked for at once (they take turns) each get a result of their own: every
/// one reports the intact log and covers at least the revision that was the head when it
/// was asked for, even while writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_each_cover_the_log() {
    let (_dir, _store, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let writer = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let d = draft(vec![obs("_T._T._T", "2031-S1", None, &i.to_string())]);
                ledger.publish(d, None, "test").await.unwrap();
            }
        })
    };
    let checks: Vec<_> = (0..6)
        .map(|_| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let asked_at = ledger.read().head().revision;
                (asked_at, ledger.verify_in_turn().await.unwrap())
            })
        })
        .collect();
    for c in checks {
        let (asked_at, v) = c.await.unwrap();
        assert!(v.ok(), "{v:?}");
        assert!(
            v.checked >= asked_at,
            "checked {} < head {asked_at} when asked",
            v.checked
        );
    }
    writer.await.unwrap();
    let v = ledger.verify_in_turn().await.unwrap();
    assert_eq!((v.ok(), v.checked), (true, 33));
}
