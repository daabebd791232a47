//! The two time axes over real HTTP: what was public at a time (`publishedAt`) and what the
//! ledger showed at a time (`knownAt`); back-dated releases refused unless they say they are
//! back-fills, which then take their place in publication order; the dataset's frequency;
//! a `publishedAt` in the future. Each test fails when its rule is removed.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tradeledger::domain::{Dataset, Event, Release, ReleaseDraft};
use tradeledger::import::Batch;
use tradeledger::store::{encode, Envelope, Hash, Head, Record, SledStore, FORMAT_VERSION};
use uuid::Uuid;

use crate::support::{fixtures_dir, release_input, spawn_app, TestApp, PUBLISH};

const TOTAL_2025_S1: &str = r#"observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1""#;

/// The total for 2025-S1 as of `as_of` (a GraphQL object literal), with its times.
async fn total(app: &TestApp, as_of: &str) -> Value {
    let q = format!(
        "{{ {TOTAL_2025_S1}, asOf: {as_of}) {{ value status publishedAt recordedAt backfilled versionCount }} }}"
    );
    let v = app.gql(&q, json!({})).await;
    assert!(v.get("errors").is_none(), "{v}");
    v["data"]["observation"].clone()
}

/// The total's history: (value, publishedAt, backfilled) per version, in the order served.
async fn history(app: &TestApp) -> Vec<(String, String, bool)> {
    let q = r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") {
        version value publishedAt recordedAt backfilled delta } }"#;
    let v = app.gql(q, json!({})).await;
    assert!(v.get("errors").is_none(), "{v}");
    v["data"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert!(
                h["recordedAt"].is_string(),
                "every version shows its recording time: {h}"
            );
            (
                h["value"].as_str().unwrap().to_owned(),
                h["publishedAt"].as_str().unwrap().to_owned(),
                h["backfilled"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The 2025-S1 total at `value`, published at `published_at`.
fn typo_release(published_at: &str, value: &str) -> Value {
    let mut input = release_input(&Uuid::new_v4().to_string(), "_T._T._T", "2025-S1", value);
    input["publishedAt"] = json!(published_at);
    input
}

fn error_of(v: &Value) -> (&str, &str) {
    let e = &v["errors"][0];
    (
        e["extensions"]["code"].as_str().unwrap_or(""),
        e["message"].as_str().unwrap_or(""),
    )
}

/// The write seen in the field: a release dated 2020 (a typo of the year) for a figure whose
/// latest publication is 2025-12-10. Refused, naming the field and the latest publication,
/// and the as-of answer it would have rewritten stays -4530.
#[tokio::test]
async fn a_back_dated_release_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let before = app.head().await;
    assert_eq!(
        total(&app, r#"{publishedAt: "2025-10-01T00:00:00Z"}"#).await["value"],
        "-4530"
    );
    let v = app
        .gql_write(
            PUBLISH,
            json!({ "input": typo_release("2020-01-01T00:00:00Z", "-9999") }),
        )
        .await;
    let (code, message) = error_of(&v);
    assert_eq!(code, "BAD_USER_INPUT", "{v}");
    assert!(message.contains("publishedAt"), "names the field: {message}");
    assert!(
        message.contains("2025-12-10T03:00:00Z"),
        "names the latest publication: {message}"
    );
    assert!(
        message.contains("backfill: true"),
        "says how to record an older vintage: {message}"
    );
    assert_eq!(app.head().await, before, "nothing was recorded");
    assert_eq!(
        total(&app, r#"{publishedAt: "2025-10-01T00:00:00Z"}"#).await["value"],
        "-4530"
    );
}

/// With `backfill: true` the older vintage is recorded, marked, and placed by publication
/// time: first in the history, so it becomes the preliminary; the deltas follow that order;
/// and as of a time between it and the real preliminary, it is the answer.
#[tokio::test]
async fn a_backfill_takes_its_place_in_publication_order_and_is_marked() {
    let app = spawn_app().await;
    let mut input = typo_release("2025-07-01T00:00:00Z", "-4400");
    input["backfill"] = json!(true);
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(
        history(&app).await,
        vec![
            ("-4400".to_owned(), "2025-07-01T00:00:00+00:00".to_owned(), true),
            ("-4530".to_owned(), "2025-09-03T03:00:00+00:00".to_owned(), false),
            ("-4610".to_owned(), "2025-12-10T03:00:00+00:00".to_owned(), false),
        ]
    );
    // The preliminary is the first in publication order; the current value is unchanged.
    let q = format!("{{ {TOTAL_2025_S1}) {{ value preliminaryValue revisionCount backfilled }} }}");
    let now = app.gql(&q, json!({})).await;
    assert_eq!(
        now["data"]["observation"],
        json!({"value": "-4610", "preliminaryValue": "-4400", "revisionCount": 2, "backfilled": false}),
        "{now}"
    );
    let at = total(&app, r#"{publishedAt: "2025-08-01T00:00:00Z"}"#).await;
    assert_eq!(
        (&at["value"], &at["backfilled"]),
        (&json!("-4400"), &json!(true)),
        "{at}"
    );
    assert_eq!(
        total(&app, r#"{publishedAt: "2025-10-01T00:00:00Z"}"#).await["value"],
        "-4530"
    );
    // The release is marked too, and the event says so.
    let r = app
        .gql("{ releases(first: 10) { nodes { title backfilled } } }", json!({}))
        .await;
    let marked: Vec<bool> = r["data"]["releases"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["backfilled"].as_bool().unwrap())
        .collect();
    assert_eq!(marked.iter().filter(|b| **b).count(), 1, "{r}");
    let recorded = app
        .ledger
        .release_event(4)
        .unwrap()
        .expect("revision 4 is the back-fill");
    assert!(recorded.backfill, "the event records the back-fill");
}

/// An answer for (publishedAt T, knownAt K) never changes once K is past: a back-fill
/// recorded after K changes the answer as known now, not the one as known at K.
#[tokio::test]
async fn an_answer_known_at_a_past_time_never_changes() {
    let app = spawn_app().await;
    let t = "2025-08-01T00:00:00Z";
    let k: DateTime<Utc> = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let pinned = format!(r#"{{publishedAt: "{t}", knownAt: "{}"}}"#, k.to_rfc3339());
    let before = total(&app, &pinned).await;
    assert_eq!(
        before,
        json!(null),
        "nothing was public on {t} as the ledger knew it at {k}"
    );
    let head_before = total(&app, &format!(r#"{{knownAt: "{}"}}"#, k.to_rfc3339())).await;
    assert_eq!(head_before["value"], "-4610");

    let mut input = typo_release("2025-07-01T00:00:00Z", "-4400");
    input["backfill"] = json!(true);
    assert!(app
        .gql_write(PUBLISH, json!({ "input": input }))
        .await
        .get("errors")
        .is_none());
    let mut later = typo_release("2026-02-01T00:00:00Z", "-4700");
    later["id"] = json!(Uuid::new_v4().to_string());
    assert!(app
        .gql_write(PUBLISH, json!({ "input": later }))
        .await
        .get("errors")
        .is_none());

    // As known now, the back-fill answers for T; as known at K, nothing still does.
    assert_eq!(
        total(&app, &format!(r#"{{publishedAt: "{t}"}}"#)).await["value"],
        "-4400"
    );
    assert_eq!(total(&app, &pinned).await, before);
    assert_eq!(
        total(&app, &format!(r#"{{knownAt: "{}"}}"#, k.to_rfc3339())).await,
        head_before
    );
    // The recording times bound the answer: a `knownAt` after the writes sees them.
    let after = format!(r#"{{knownAt: "{}"}}"#, Utc::now().to_rfc3339());
    assert_eq!(total(&app, &after).await["value"], "-4700");
}

/// A period of another frequency than the dataset's is refused, naming the frequency, and
/// the refusal of a quarterly period in queries stays a refusal.
#[tokio::test]
async fn a_period_of_another_frequency_is_refused() {
    let app = spawn_app().await;
    let before = app.head().await;
    let v = app
        .gql_write(
            PUBLISH,
            json!({ "input": release_input(&Uuid::new_v4().to_string(), "_T._T._T", "2025-Q3", "1") }),
        )
        .await;
    let (code, message) = error_of(&v);
    assert_eq!(code, "BAD_USER_INPUT", "{v}");
    assert!(
        message.contains("half-yearly"),
        "names the dataset's frequency: {message}"
    );
    assert!(message.contains("observations[0].period"), "names the field: {message}");
    assert_eq!(app.head().await, before);
    let q = r#"{ dataset(id: "KR_KNOWLEDGE_SERVICES") { frequency } }"#;
    assert_eq!(app.gql(q, json!({})).await["data"]["dataset"]["frequency"], "HALF_YEAR");
}

/// A `publishedAt` beyond the allowed clock skew (2099) is refused; one within it is not.
#[tokio::test]
async fn a_publication_time_in_the_future_is_refused() {
    let app = spawn_app().await;
    let before = app.head().await;
    let v = app
        .gql_write(PUBLISH, json!({ "input": typo_release("2099-01-01T00:00:00Z", "-1") }))
        .await;
    let (code, message) = error_of(&v);
    assert_eq!(code, "BAD_USER_INPUT", "{v}");
    assert!(
        message.contains("publishedAt") && message.contains("future"),
        "{message}"
    );
    assert_eq!(app.head().await, before);
    let soon = (Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let v = app
        .gql_write(PUBLISH, json!({ "input": typo_release(&soon, "-1") }))
        .await;
    assert!(v.get("errors").is_none(), "a minute of clock skew is allowed: {v}");
}

/// A data directory written before these rules, holding the back-dated write they now
/// refuse: it opens, and its versions are ordered and marked by the same rules.
#[tokio::test]
async fn a_log_written_before_the_rules_is_read_by_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("log")).unwrap();
    let batch = Batch::read_dir(&fixtures_dir()).unwrap();
    // As such a log has it: the definition without a frequency, releases as they came.
    let mut dataset: Dataset = batch.datasets[0].clone();
    dataset.frequency = None;
    let mut events = vec![Event::DatasetDefined {
        dataset: dataset.clone(),
    }];
    for draft in batch.releases.iter().cloned() {
        events.push(Event::ReleasePublished {
            release: draft.validate(&dataset).unwrap(),
        });
    }
    let typo: ReleaseDraft = serde_json::from_value(typo_release("2020-01-01T00:00:00Z", "-9999")).unwrap();
    let typo: Release = typo.validate(&dataset).unwrap();
    assert!(!typo.backfill);
    events.push(Event::ReleasePublished { release: typo });
    let mut head = Head::default();
    let mut prev = Hash::GENESIS;
    for (i, event) in events.into_iter().enumerate() {
        let envelope = Envelope {
            format: FORMAT_VERSION,
            revision: i as u64 + 1,
            event_id: Uuid::new_v4(),
            recorded_at: Utc::now(),
            actor: "before".into(),
            prev_hash: prev.to_hex(),
            event,
        };
        let (hash, bytes) = encode(&envelope);
        head = store
            .append_blocking(
                &[Record {
                    revision: envelope.revision,
                    hash,
                    bytes,
                }],
                head,
            )
            .unwrap();
        prev = hash;
    }
    drop(store);
    let app = crate::support::spawn_app_on(dir).await;
    assert_eq!(
        history(&app).await,
        vec![
            ("-9999".to_owned(), "2020-01-01T00:00:00+00:00".to_owned(), true),
            ("-4530".to_owned(), "2025-09-03T03:00:00+00:00".to_owned(), false),
            ("-4610".to_owned(), "2025-12-10T03:00:00+00:00".to_owned(), false),
        ]
    );
    // What was public on 2025-10-01 is the preliminary again, not the 2020 typo.
    assert_eq!(
        total(&app, r#"{publishedAt: "2025-10-01T00:00:00Z"}"#).await["value"],
        "-4530"
    );
    // The frequency of a definition without one is that of its figures.
    let q = r#"{ dataset(id: "KR_KNOWLEDGE_SERVICES") { frequency } }"#;
    assert_eq!(app.gql(q, json!({})).await["data"]["dataset"]["frequency"], "HALF_YEAR");
}

mod property {
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
}

/// A release's revision reason is shown with the versions it set (not on a first version),
/// on the release, and counted by reason in the revision statistics; a note that shows
/// nothing is refused naming the field.
#[tokio::test]
async fn revision_reasons_are_shown_and_counted() {
    let app = spawn_app().await;
    let mut input = typo_release("2026-01-15T00:00:00Z", "-4600");
    input["revisionReason"] =
        json!({"kind": "ERROR_CORRECTION", "note": "a transposed digit in the SYNTHETIC revision"});
    input["observations"] = json!([
        {"key": "_T._T._T", "period": "2025-S1", "value": "-4600"},
        {"key": "IPR._T._T", "period": "2025-S2", "value": "-1"}
    ]);
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(v.get("errors").is_none(), "{v}");
    let q = r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { version revisionReason { kind note } } }"#;
    let h = app.gql(q, json!({})).await;
    assert_eq!(
        h["data"]["history"],
        json!([
            {"version": 1, "revisionReason": null},
            {"version": 2, "revisionReason": null},
            {"version": 3, "revisionReason": {"kind": "ERROR_CORRECTION", "note": "a transposed digit in the SYNTHETIC revision"}}
        ]),
        "{h}"
    );
    // The new figure (IPR 2025-S2) has one version: no reason to show there.
    let q = r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "IPR._T._T", period: "2025-S2") { revisionReason { kind } } }"#;
    assert_eq!(
        app.gql(q, json!({})).await["data"]["history"],
        json!([{"revisionReason": null}])
    );
    let q = r#"{ revisionSummary(dataset: "KR_KNOWLEDGE_SERVICES") { revisionCount byReason { reason revisionCount meanAbsoluteDelta } } }"#;
    let s = app.gql(q, json!({})).await;
    let summary = &s["data"]["revisionSummary"];
    // The fixtures' SYNTHETIC revision changed 5 figures without a reason (by 80, 80, 40, 30
    // and 30); this one, 1 (by 10).
    assert_eq!(summary["revisionCount"], 6, "{s}");
    assert_eq!(
        summary["byReason"],
        json!([
            {"reason": null, "revisionCount": 5, "meanAbsoluteDelta": "52"},
            {"reason": "ERROR_CORRECTION", "revisionCount": 1, "meanAbsoluteDelta": "10"}
        ]),
        "{s}"
    );
    let mut bad = typo_release("2026-01-16T00:00:00Z", "-4601");
    bad["revisionReason"] = json!({"kind": "ROUTINE", "note": "\u{200b}\u{200b}"});
    let (code, message) = {
        let v = app.gql_write(PUBLISH, json!({ "input": bad })).await;
        let (c, m) = error_of(&v);
        (c.to_owned(), m.to_owned())
    };
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("revisionReason.note"), "{message}");
}

/// `observationRevised` announces a back-fill that becomes the figure's latest version, and
/// not one placed before later versions (the figure's value did not change); the release
/// itself is announced either way, marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_hear_of_a_back_fill_only_when_it_changes_the_current_value() {
    use crate::support::ws::{connect, init, recv, subscribe};
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    subscribe(
        &mut ws,
        "obs",
        r#"subscription { observationRevised(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T") { period value previousValue version backfilled } }"#,
        json!({}),
    )
    .await;
    subscribe(
        &mut ws,
        "rel",
        "subscription { releasePublished { revision release { backfilled } } }",
        json!({}),
    )
    .await;
    while app.ledger.subscriber_count() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Another figure moves the dataset's latest publication to 2026-02-01.
    let mut other = release_input(&Uuid::new_v4().to_string(), "IPR._T._T", "2025-S2", "-1");
    other["publishedAt"] = json!("2026-02-01T00:00:00Z");
    assert!(app
        .gql_write(PUBLISH, json!({ "input": other }))
        .await
        .get("errors")
        .is_none());
    // A back-fill dated 2026-01-01 comes after the total's latest version (2025-12-10): it
    // is the total's new current value.
    let mut last = typo_release("2026-01-01T00:00:00Z", "-4620");
    last["backfill"] = json!(true);
    assert!(app
        .gql_write(PUBLISH, json!({ "input": last }))
        .await
        .get("errors")
        .is_none());
    // One dated 2025-07-01 goes first: the current value stays -4620.
    let mut first = typo_release("2025-07-01T00:00:00Z", "-4400");
    first["backfill"] = json!(true);
    assert!(app
        .gql_write(PUBLISH, json!({ "input": first }))
        .await
        .get("errors")
        .is_none());
    // A plain revision after them, announced with the previous value in publication order.
    let plain = typo_release("2026-02-02T00:00:00Z", "-4630");
    assert!(app
        .gql_write(PUBLISH, json!({ "input": plain }))
        .await
        .get("errors")
        .is_none());

    let mut releases = Vec::new();
    let mut revisions = Vec::new();
    while releases.len() < 4 || revisions.len() < 2 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(30), recv(&mut ws))
            .await
            .expect("a message in time");
        match msg["id"].as_str() {
            Some("rel") => releases.push(msg["payload"]["data"]["releasePublished"]["release"]["backfilled"].clone()),
            Some("obs") => revisions.push(msg["payload"]["data"]["observationRevised"].clone()),
            _ => panic!("unexpected {msg}"),
        }
    }
    assert_eq!(releases, vec![json!(false), json!(true), json!(true), json!(false)]);
    assert_eq!(
        revisions,
        vec![
            json!({"period": "2025-S1", "value": "-4620", "previousValue": "-4610", "version": 3, "backfilled": true}),
            json!({"period": "2025-S1", "value": "-4630", "previousValue": "-4620", "version": 5, "backfilled": false}),
        ]
    );
}

/// A data directory written by tradeledger before the two time axes (`tests/data/`, with its
/// back-dated 2020 write and an older snapshot), opened by the current binary: it verifies,
/// reads by the current rules, and takes writes under them.
#[tokio::test]
async fn a_data_directory_of_the_previous_release_opens_and_answers_by_the_rules() {
    use crate::proc_support::{copy_dir, run_cli, Server};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-time-axes"),
        &data,
    );
    let out = run_cli(["verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]).await;
    assert_eq!(out.code(), Some(0), "verify: {out:?}");
    let server = Server::start(&data, &["--write-tokens", "t:legacy-secret"]).await;
    let q = r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { value publishedAt backfilled recordedAt }
        then: observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: {publishedAt: "2025-10-01T00:00:00Z"}) { value }
        dataset(id: "KR_KNOWLEDGE_SERVICES") { frequency } }"#;
    let v = server.query(q, json!({})).await;
    let shape: Vec<(Value, Value)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["value"].clone(), h["backfilled"].clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (json!("-9999"), json!(true)),
            (json!("-4530"), json!(false)),
            (json!("-4610"), json!(false))
        ],
        "{v}"
    );
    // The old server answered -9999 here; by the rules, the preliminary was public then.
    assert_eq!(v["then"]["value"], "-4530", "{v}");
    assert_eq!(v["dataset"]["frequency"], "HALF_YEAR", "{v}");
    // Writes follow the rules: the same kind of back-dated write is refused now.
    let (_, body) = server
        .post(
            PUBLISH,
            json!({ "input": typo_release("2020-01-02T00:00:00Z", "-9998") }),
            Some("legacy-secret"),
        )
        .await
        .unwrap();
    assert_eq!(error_of(&body).0, "BAD_USER_INPUT", "{body}");
    let (_, body) = server
        .post(
            PUBLISH,
            json!({ "input": typo_release("2026-01-02T00:00:00Z", "-4615") }),
            Some("legacy-secret"),
        )
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
}
