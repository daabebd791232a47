use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use tradeledger::domain::{ObservationDraft, ReleaseDraft, ReleaseStatus};
use tradeledger::ledger::{Ledger, OpenOptions};
use tradeledger::projection::{AsOf, CellKey};
use tradeledger::store::{LogStore, SledStore};

use crate::common::dataset;

const KEYS: [&str; 3] = ["_T._T._T", "IPR._T._T", "_T._T.ASIA"];
const PERIODS: [&str; 2] = ["2025-S1", "2025-S2"];

#[derive(Debug, Clone)]
struct Write {
    /// Days after 2025-01-01.
    day: i64,
    backfill: bool,
    /// Scheduled a moment ahead (instead of published on `day`), and revealed then.
    scheduled: bool,
    obs: Vec<(usize, usize, i64)>,
}

fn write() -> impl Strategy<Value = Write> {
    (
        0i64..200,
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::collection::btree_map((0..KEYS.len(), 0..PERIODS.len()), -3i64..4, 1..4),
    )
        .prop_map(|(day, backfill, scheduled, m)| Write {
            day,
            backfill,
            scheduled,
            obs: m.into_iter().map(|((k, p), v)| (k, p, v)).collect(),
        })
}

/// Every figure's value at (publishedAt `t`, knownAt `k`), in a fixed order.
fn answers(ledger: &Ledger, t: Option<DateTime<Utc>>, k: DateTime<Utc>) -> Vec<Option<Decimal>> {
    let p = ledger.read();
    let as_of = AsOf::KnownAt {
        known_at: k,
        published_at: t,
    };
    let bound = p.bound(Some(as_of)).unwrap();
    let ds = p.dataset("KR_KNOWLEDGE_SERVICES").unwrap();
    let mut out = Vec::new();
    for key in KEYS {
        for period in PERIODS {
            let cell = CellKey {
                key: ds.def.parse_key(key).unwrap(),
                period: period.parse().unwrap(),
                measure: ds.measure("BAL").unwrap(),
            };
            out.push(ds.get(&cell, bound).map(|o| o.current().value));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random releases, some back-dated (refused unless they say `backfill`), some
    /// scheduled (sealed until revealed a moment later), interleaved with as-of reads: an answer for a (T, K) whose K was past when it was read never
    /// changes as writes continue.
    #[test]
    fn answers_for_a_past_known_at_never_change(writes in prop::collection::vec(write(), 1..10)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let store = SledStore::temporary().unwrap();
            let (ledger, _) = Ledger::open(Arc::new(store) as Arc<dyn LogStore>, OpenOptions::default()).unwrap();
            ledger.define_dataset(dataset(), "test").await.unwrap();
            let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
            let times: Vec<Option<DateTime<Utc>>> =
                [None, Some(0), Some(50), Some(100), Some(150), Some(250)].iter().map(|d| d.map(|d| start + Duration::days(d))).collect();
            // (publishedAt, knownAt, the answers read then)
            type Seen = (Option<DateTime<Utc>>, DateTime<Utc>, Vec<Option<Decimal>>);
            let mut seen: Vec<Seen> = Vec::new();
            let mut latest: Option<DateTime<Utc>> = None;
            for w in writes {
                let draft = ReleaseDraft {
                    id: None,
                    dataset: "KR_KNOWLEDGE_SERVICES".into(),
                    status: ReleaseStatus::Revised,
                    title: "SYNTHETIC property test".into(),
                    published_at: start + Duration::days(w.day),
                    source: None,
                    observations: w
                        .obs
                        .iter()
                        .map(|&(k, p, v)| ObservationDraft {
                            key: KEYS[k].into(),
                            period: PERIODS[p].into(),
                            measure: None,
                            value: v.to_string().into(),
                        })
                        .collect(),
                    backfill: w.backfill,
                    revision_reason: None,
                };
                if w.scheduled {
                    let mut draft = draft;
                    draft.id = Some(uuid::Uuid::new_v4());
                    draft.backfill = false;
                    // 100 ms ahead; on a loaded machine that time can pass before the writer
                    // decides, and the schedule is then refused as not in the future: try
                    // again further ahead.
                    let mut ahead = 100;
                    loop {
                        draft.published_at = Utc::now() + Duration::milliseconds(ahead);
                        match ledger.schedule_gated(draft.clone(), false, "test", None).await {
                            Ok(_) => break,
                            Err(e) => {
                                prop_assert!(Utc::now() >= draft.published_at && ahead < 10_000, "scheduling failed: {}", e);
                                ahead *= 4;
                            }
                        }
                    }
                    let due = draft.published_at;
                    // Read while sealed; the reveal must not change these answers.
                    let k = Utc::now();
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    for &t in &times {
                        seen.push((t, k, answers(&ledger, t, k)));
                    }
                    let waited = std::time::Instant::now();
                    while ledger.read().release(&draft.id.unwrap()).is_none() {
                        prop_assert!(waited.elapsed() < std::time::Duration::from_secs(60), "never revealed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    prop_assert!(ledger.read().last_recorded_at().unwrap() >= due, "revealed early");
                    latest = Some(due);
                    for (t, k, answer) in &seen {
                        prop_assert_eq!(&answers(&ledger, *t, *k), answer, "after a reveal, at publishedAt {:?}, knownAt {}", t, k);
                    }
                    continue;
                }
                let before = ledger.read().head();
                let backdated = latest.is_some_and(|l| draft.published_at < l);
                match ledger.publish(draft.clone(), None, "test").await {
                    Ok(_) => {
                        prop_assert!(!backdated || w.backfill, "a back-dated release without backfill was recorded");
                        if !backdated {
                            latest = Some(draft.published_at);
                        }
                    }
                    Err(e) => {
                        prop_assert!(backdated && !w.backfill, "refused: {e}");
                        prop_assert_eq!(ledger.read().head(), before, "a refusal changed nothing");
                    }
                }
                // K: now, then let the clock move past it before anything else happens.
                let k = Utc::now();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                for &t in &times {
                    seen.push((t, k, answers(&ledger, t, k)));
                }
                for (t, k, answer) in &seen {
                    prop_assert_eq!(&answers(&ledger, *t, *k), answer, "at publishedAt {:?}, knownAt {}", t, k);
                }
            }
            Ok(())
        })?;
    }
}
