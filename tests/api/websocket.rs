//! Live subscriptions over WebSocket: `releasePublished` (live, resumed with `afterRevision`,
//! filtered by dataset, racing with a replay), `observationRevised`, fan-out to many
//! subscribers, isolation from a subscriber that never reads, every close code and message
//! rule of `graphql-transport-ws`, the legacy `graphql-ws` protocol, and graceful shutdown.
//!
//! Every test talks to a real server (tests/support) through tokio-tungstenite, and every
//! receive has a timeout, so a broken server fails a test instead of hanging it.

use crate::support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::ws::*;
use support::*;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::{self, Message};
use tradeledger::auth::Token;
use uuid::Uuid;

const RELEASES: &str =
    "subscription($after: Int) { releasePublished(afterRevision: $after) { revision release { id title } } }";

/// `start` padded with `x` to 1,000 characters: big enough titles fill socket buffers.
fn long_title(start: String) -> String {
    format!("{start:x<1000}")
}

/// Waits until the ledger has at least `n` notice receivers, that is, `n` subscription
/// streams have been set up on the server, so a publish after this is seen live.
async fn wait_subscribers(app: &TestApp, n: usize) {
    let start = Instant::now();
    while app.ledger.subscriber_count() < n {
        // The deadline only guards against subscriptions that are never set up.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {n} subscriptions set up after 120 s",
            app.ledger.subscriber_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the ledger has at most `n` notice receivers.
async fn wait_subscribers_at_most(app: &TestApp, n: usize) {
    let start = Instant::now();
    while app.ledger.subscriber_count() > n {
        assert!(
            start.elapsed() < RECV,
            "still {} subscriptions (expected at most {n})",
            app.ledger.subscriber_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing helpers
// ---------------------------------------------------------------------------------------------

/// A release of KR_KNOWLEDGE_SERVICES with a fresh id: (id, input).
fn new_release(key: &str, period: &str, value: &str) -> (String, Value) {
    let id = Uuid::new_v4().to_string();
    let input = release_input(&id, key, period, value);
    (id, input)
}

/// Publishes over HTTP with the write token; returns the revision.
async fn publish_revision(app: &TestApp, input: Value) -> u64 {
    let r = timeout(RECV, app.publish(input)).await.expect("publish timed out");
    r["revision"].as_u64().unwrap_or_else(|| panic!("no revision in {r}"))
}

/// Publishes all `inputs`, `concurrency` at a time; returns their revisions.
async fn publish_many(app: &TestApp, inputs: Vec<Value>, concurrency: usize) -> Vec<u64> {
    stream::iter(inputs)
        .map(|input| publish_revision(app, input))
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// `n` releases of one figure with fresh ids: (ids, inputs).
fn releases(n: usize, key: &str) -> (Vec<String>, Vec<Value>) {
    (0..n).map(|i| new_release(key, "2026-S1", &i.to_string())).unzip()
}

// ---------------------------------------------------------------------------------------------
// releasePublished
// ---------------------------------------------------------------------------------------------

/// A live `releasePublished` subscription (graphql-transport-ws preferred) gets a release published over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_published_delivers_a_release_published_over_http() {
    let app = spawn_app().await;
    let (mut ws, response) = try_connect(&app.ws_url, Some(&format!("{LEGACY}, {TRANSPORT}")), None)
        .await
        .expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
        Some(TRANSPORT),
        "the server must prefer graphql-transport-ws when both are offered"
    );
    init(&mut ws).await;
    subscribe(
        &mut ws,
        "live",
        "subscription { releasePublished { revision release { id title } } }",
        json!({}),
    )
    .await;
    wait_subscribers(&app, 1).await;

    let (id, input) = new_release("_T._T._T", "2026-S1", "-5000");
    let revision = publish_revision(&app, input).await;
    assert_eq!(revision, 4, "fixtures take revisions 1 to 3");

    let (got_revision, got_id, title) = next_release(&mut ws, "live").await;
    assert_eq!((got_revision, got_id.as_str()), (revision, id.as_str()));
    assert_eq!(title, format!("SYNTHETIC test release {id}"));
    expect_quiet(&mut ws).await;
}

/// `afterRevision: 1` replays revisions 2, 3 and the missed releases in order, then continues live, no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_revision_replays_the_missed_releases_then_continues_live() {
    let app = spawn_app().await;
    let mut expected = vec![(2, PRELIMINARY_ID.to_owned()), (3, REVISION_ID.to_owned())];
    for i in 0..3 {
        let (id, input) = new_release("IPR._T._T", "2026-S1", &format!("-{i}"));
        expected.push((publish_revision(&app, input).await, id));
    }
    assert_eq!(expected.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);

    let mut sub = app.subscribe("resume", RELEASES, json!({"after": 1})).await;
    for (revision, id) in &expected {
        let (r, got, _) = sub.next_release().await;
        assert_eq!((r, &got), (*revision, id), "replay out of order or with a gap");
    }

    // Now live: two more.
    for i in 0..2 {
        let (id, input) = new_release("IPR._T._T", "2026-S1", &format!("1{i}"));
        let revision = publish_revision(&app, input).await;
        let (r, got, _) = sub.next_release().await;
        assert_eq!((r, got), (revision, id), "live release after the replay");
    }
    sub.expect_quiet().await;
}

/// `afterRevision` beyond the head is refused or skips to releases after it, never replaying earlier ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_revision_beyond_the_head_delivers_nothing_at_or_before_it() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    // The client says it has seen everything up to revision 6 (say, from a replica that is
    // further ahead); revisions 4 to 6 recorded here later are not "after" that.
    subscribe(&mut ws, "ahead", RELEASES, json!({"after": 6})).await;
    let refused = tokio::select! {
        _ = wait_subscribers(&app, 1) => None,
        msg = recv(&mut ws) => Some(msg),
    };
    if let Some(msg) = refused {
        // Refusing is fine, if it is a proper error for this subscription.
        assert_eq!(msg["id"], "ahead", "{msg}");
        let errors = match msg["type"].as_str() {
            Some("error") => &msg["payload"],
            Some("next") => &msg["payload"]["errors"],
            _ => panic!("expected an error, got {msg}"),
        };
        assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT", "{msg}");
        return;
    }
    let mut published = Vec::new();
    for i in 0..4 {
        let (id, input) = new_release("_T._T._T", "2026-S1", &i.to_string());
        published.push((publish_revision(&app, input).await, id));
    }
    assert_eq!(published.iter().map(|p| p.0).collect::<Vec<_>>(), [4, 5, 6, 7]);
    let (revision, id, _) = next_release(&mut ws, "ahead").await;
    assert_eq!(
        (revision, id),
        published[3].clone(),
        "afterRevision 6 must not deliver revision {revision}"
    );
    expect_quiet(&mut ws).await;
}

/// Releases published during a replay longer than one chunk arrive exactly once, with dense increasing revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_published_during_a_replay_arrive_exactly_once() {
    const BEFORE: usize = 300; // more than the replay chunk of 256
    const DURING: usize = 200;
    let app = spawn_app().await;
    let (before_ids, before) = releases(BEFORE, "_T._T.ASIA");
    publish_many(&app, before, 16).await;
    let (during_ids, during) = releases(DURING, "_T._T.NAM");

    let mut wanted: HashSet<String> = before_ids.into_iter().chain(during_ids).collect();
    wanted.insert(PRELIMINARY_ID.into());
    wanted.insert(REVISION_ID.into());
    let total = wanted.len();
    assert_eq!(total, BEFORE + DURING + 2);

    let mut sub = app.subscribe("all", RELEASES, json!({"after": 0})).await;

    let collect = async {
        let mut got: Vec<(u64, String)> = Vec::new();
        let mut seen = HashSet::new();
        while seen.len() < total {
            let (revision, id, _) = sub.next_release().await;
            assert!(wanted.contains(&id), "unexpected release {id}");
            assert!(
                seen.insert(id.clone()),
                "release {id} delivered twice (revision {revision})"
            );
            if let Some((last, _)) = got.last() {
                assert_eq!(revision, last + 1, "revisions must be dense and increasing");
            } else {
                assert_eq!(revision, 2, "the replay starts at the first release");
            }
            got.push((revision, id));
        }
        got
    };
    let (got, revisions) = tokio::join!(collect, publish_many(&app, during, 8));
    assert_eq!(got.len(), total);
    assert_eq!(got.last().unwrap().0, *revisions.iter().max().unwrap());
    assert_eq!(got.last().unwrap().0, (total + 1) as u64);
    sub.expect_quiet().await;
}

/// `releasePublished(dataset:)` delivers the KR_KNOWLEDGE_SERVICES release but not one of another dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_published_filters_by_dataset() {
    let app = spawn_app().await;
    let define = app
        .gql_write(
            "mutation($input: DatasetInput!) { defineDataset(input: $input) { id } }",
            json!({"input": {
                "id": "SYNTHETIC_OTHER",
                "name": "SYNTHETIC second dataset for the subscription filter test",
                "publisher": "tests",
                "unit": "USD",
                "unitMultiplier": 6,
                "dimensions": [{
                    "id": "COUNTERPART",
                    "label": "Counterpart region",
                    "codes": [
                        {"code": "_T", "label": "World"},
                        {"code": "ASIA", "label": "Asia", "parent": "_T"}
                    ]
                }],
                "measures": ["BAL"]
            }}),
        )
        .await;
    assert_eq!(define["data"]["defineDataset"]["id"], "SYNTHETIC_OTHER", "{define}");

    let mut sub = app
        .subscribe(
            "kr",
            "subscription { releasePublished(dataset: \"KR_KNOWLEDGE_SERVICES\") { revision release { id title } } }",
            json!({}),
        )
        .await;
    wait_subscribers(&app, 1).await;

    let (_, mut other) = new_release("_T", "2026-S1", "1");
    other["dataset"] = json!("SYNTHETIC_OTHER");
    let other_revision = publish_revision(&app, other).await;
    let (kr_id, kr) = new_release("_T._T._T", "2026-S1", "2");
    let kr_revision = publish_revision(&app, kr).await;
    assert!(kr_revision > other_revision);

    let (revision, id, _) = sub.next_release().await;
    assert_eq!((revision, id), (kr_revision, kr_id), "only the KR release may arrive");
    sub.expect_quiet().await;
}

/// An unknown dataset or a negative `afterRevision` is reported with its code and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscription_arguments_are_reported_with_codes() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let cases = [
        (
            "unknown",
            "subscription { releasePublished(dataset: \"NOPE\") { revision } }",
            "NOT_FOUND",
        ),
        (
            "negative",
            "subscription { releasePublished(afterRevision: -1) { revision } }",
            "BAD_USER_INPUT",
        ),
    ];
    for (id, query, code) in cases {
        subscribe(&mut ws, id, query, json!({})).await;
        let msg = recv(&mut ws).await;
        assert_eq!(msg["id"], id, "{msg}");
        match msg["type"].as_str() {
            // Either an `error` message...
            Some("error") => assert_eq!(msg["payload"][0]["extensions"]["code"], code, "{msg}"),
            // ...or an execution result with the error, then `complete`.
            Some("next") => {
                assert_eq!(msg["payload"]["errors"][0]["extensions"]["code"], code, "{msg}");
                let done = recv(&mut ws).await;
                assert_eq!(done, json!({"type": "complete", "id": id}));
            }
            _ => panic!("expected error or next for {id}, got {msg}"),
        }
    }
    // The connection still works, and so does the id of a finished operation.
    subscribe(&mut ws, "unknown", RELEASES, json!({"after": 2})).await;
    let (revision, id, _) = next_release(&mut ws, "unknown").await;
    assert_eq!((revision, id.as_str()), (3, REVISION_ID));
}

// ---------------------------------------------------------------------------------------------
// observationRevised
// ---------------------------------------------------------------------------------------------

/// Reads `observationRevised` events until `total` has `t` and `regions` has `r` (the two
/// subscriptions interleave freely); each in arrival order.
async fn revised_events(ws: &mut Ws, t: usize, r: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut total, mut regions) = (Vec::new(), Vec::new());
    while total.len() < t || regions.len() < r {
        let msg = recv(ws).await;
        assert_eq!(msg["type"], "next", "{msg}");
        let event = msg["payload"]["data"]["observationRevised"].clone();
        match msg["id"].as_str() {
            Some("total") => total.push(event),
            Some("regions") => regions.push(event),
            _ => panic!("unexpected {msg}"),
        }
    }
    (total, regions)
}

/// `observationRevised` reports value changes of matching keys (previous, delta), not new or unchanged figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observation_revised_reports_changes_of_the_watched_figure_only() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let fields = "key period previousValue value delta version revision";
    for (id, key) in [("total", "_T._T._T"), ("regions", "_T._T.")] {
        subscribe(
            &mut ws,
            id,
            &format!(
                "subscription {{ observationRevised(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"{key}\") {{ {fields} }} }}"
            ),
            json!({}),
        )
        .await;
    }
    wait_subscribers(&app, 2).await;

    // 2025-S1 total: -4610 (synthetic revision, version 2) -> -4700.
    let r1 = publish_revision(&app, new_release("_T._T._T", "2025-S1", "-4700").1).await;
    let expected_first = json!({"key": "_T._T._T", "period": "2025-S1", "previousValue": "-4610",
        "value": "-4700", "delta": "-90", "version": 3, "revision": r1});
    let (total, regions) = revised_events(&mut ws, 1, 1).await;
    assert_eq!((total, regions), (vec![expected_first.clone()], vec![expected_first]));

    // Nothing for `total`: a new figure of the key, a revision of another key (which the
    // pattern matches), the same value again (a version 4 that changes nothing).
    publish_revision(&app, new_release("_T._T._T", "2026-S1", "100").1).await;
    let asia = publish_revision(&app, new_release("_T._T.ASIA", "2025-S1", "3600").1).await;
    publish_revision(&app, new_release("_T._T._T", "2025-S1", "-4700").1).await;
    // A second real change of the total is its next event.
    let r2 = publish_revision(&app, new_release("_T._T._T", "2025-S1", "-4650").1).await;
    let expected_second = json!({"key": "_T._T._T", "period": "2025-S1", "previousValue": "-4700",
        "value": "-4650", "delta": "50", "version": 5, "revision": r2});
    let (total, regions) = revised_events(&mut ws, 1, 2).await;
    assert_eq!(total, std::slice::from_ref(&expected_second));
    assert_eq!(
        regions,
        [
            json!({"key": "_T._T.ASIA", "period": "2025-S1", "previousValue": "3570", "value": "3600",
                   "delta": "30", "version": 3, "revision": asia}),
            expected_second
        ]
    );
    expect_quiet(&mut ws).await;
}

// ---------------------------------------------------------------------------------------------
// Fan-out and back-pressure
// ---------------------------------------------------------------------------------------------

/// The soft limit on open files of this process, from /proc (None elsewhere).
fn open_files_soft_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One publish reaches 1,000 concurrent subscribers (fewer only under a low open-file limit); prints the latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_reaches_a_thousand_subscribers() {
    // TRADELEDGER_TEST_FANOUT raises (or lowers) the count for a manual measurement.
    let wanted: usize = std::env::var("TRADELEDGER_TEST_FANOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    // Each subscriber costs two descriptors here (client and server side of the socket);
    // leave room for the store, the HTTP client and the other tests running alongside.
    let n = match open_files_soft_limit() {
        Some(limit) => wanted.min(limit.saturating_sub(1_024) / 2),
        None => wanted,
    };
    if n < wanted {
        println!(
            "fan-out: open-file limit {:?} only allows {n} subscribers",
            open_files_soft_limit()
        );
    }
    assert!(n >= 100, "the open-file limit is too low for a fan-out test");
    let app = spawn_app().await;

    let started = Instant::now();
    let conns: Vec<Ws> = stream::iter(0..n)
        .map(|_| async { app.subscribe("fan", RELEASES, json!({})).await.ws })
        .buffer_unordered(64)
        .collect()
        .await;
    wait_subscribers(&app, n).await;
    let setup = started.elapsed();

    let mut readers = tokio::task::JoinSet::new();
    for mut ws in conns {
        readers.spawn(async move {
            let (revision, id, _) = next_release(&mut ws, "fan").await;
            (Instant::now(), revision, id, ws)
        });
    }
    let (id, input) = new_release("_T._T._T", "2026-S1", "-1");
    let revision = publish_revision(&app, input).await;
    let acked = Instant::now();

    let mut latencies = Vec::with_capacity(n);
    let mut keep = Vec::with_capacity(n);
    while let Some(joined) = readers.join_next().await {
        let (at, r, got, ws) = joined.expect("reader task");
        assert_eq!((r, got.as_str()), (revision, id.as_str()));
        latencies.push(at.saturating_duration_since(acked));
        keep.push(ws);
    }
    assert_eq!(latencies.len(), n, "every subscriber must be notified");
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "fan-out: {n} subscribers set up in {:.0} ms; publish ack -> last notified {:.1} ms \
         (first {:.1} ms, median {:.1} ms, p99 {:.1} ms)",
        ms(setup),
        ms(latencies[n - 1]),
        ms(latencies[0]),
        ms(latencies[n / 2]),
        ms(latencies[n * 99 / 100]),
    );
    drop(keep);
}

/// A subscriber that never reads does not hold up a healthy one receiving 2,000 big-title
/// releases: the healthy one gets them all while the stalled one is still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_does_not_block_the_others() {
    const N: usize = 2_000;
    // The server never gives up on the stalled client during the test, so that it is the
    // isolation of connections, not the stalled one's disconnection, that lets the healthy
    // one through, however slow the machine.
    let app = spawn_app_with(|c| c.ws_send_timeout = Duration::from_secs(3600), true).await;

    let mut stalled = connect(&app).await;
    init(&mut stalled).await;
    let aliases: String = (0..20).map(|i| format!(" t{i}: title")).collect();
    subscribe(
        &mut stalled,
        "big",
        &format!("subscription {{ releasePublished {{ revision release {{{aliases} }} }} }}"),
        json!({}),
    )
    .await;
    // From here on `stalled` is never polled again until the end of the test.

    let mut sub = app.subscribe("ok", RELEASES, json!({})).await;
    wait_subscribers(&app, 2).await;

    let inputs: Vec<Value> = (0..N)
        .map(|i| {
            let id = Uuid::new_v4().to_string();
            let mut input = release_input(&id, "_T._T.EUR", "2026-S1", &i.to_string());
            input["title"] = json!(long_title(format!("SYNTHETIC big-title release {i} ")));
            input
        })
        .collect();

    let started = Instant::now();
    let receive = async {
        let mut last = 3;
        for _ in 0..N {
            let (revision, _, title) = sub.next_release().await;
            assert_eq!(revision, last + 1, "releases must arrive in order, without gaps");
            assert_eq!(title.len(), 1_000);
            last = revision;
        }
        started.elapsed()
    };
    let (took, _) = tokio::join!(receive, publish_many(&app, inputs, 16));
    println!(
        "slow reader: sub.ws subscriber got {N} releases in {:.2} s",
        took.as_secs_f64()
    );
    // The stalled client is still connected and subscribed: the sub.ws one was not let
    // through by the server giving up on it.
    assert_eq!(
        app.ledger.subscriber_count(),
        2,
        "the stalled subscription ended before the sub.ws one had every release"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "tradeledger_websocket_connections 2"),
        "both WebSockets are still open: {metrics}"
    );
    drop(stalled);
}

/// A subscriber lagging past the 4,096-notice buffer still gets every release and revision once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_lagging_past_the_notice_buffer_still_gets_every_event_once() {
    // The first releases have 1,000-character titles, asked for 25 times per event, so they
    // fill the socket buffers and stall the server's sends; the small ones then pile up far
    // beyond the notice buffer while the subscription streams wait.
    const BIG: usize = 300;
    const SMALL: usize = 4_800;
    const N: usize = BIG + SMALL;
    // The client reads nothing until every release is published, which may take minutes on
    // a loaded machine: the server must not give up on it meanwhile (the subject here is the
    // notice buffer, not the send timeout).
    let app = spawn_app_with(|c| c.ws_send_timeout = Duration::from_secs(3600), true).await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let titles: String = (0..25).map(|i| format!(" t{i}: title")).collect();
    subscribe(
        &mut ws,
        "rel",
        &format!("subscription {{ releasePublished {{ revision release {{ id{titles} }} }} }}"),
        json!({}),
    )
    .await;
    subscribe(
        &mut ws,
        "obs",
        &format!(
            "subscription {{ observationRevised(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"_T._T._T\") \
             {{ revision previousValue value release {{{titles} }} }} }}"
        ),
        json!({}),
    )
    .await;
    wait_subscribers(&app, 2).await;

    // Every release changes the 2025-S1 total (currently -4610) to a value never used before.
    let inputs: Vec<Value> = (0..N)
        .map(|i| {
            let id = Uuid::new_v4().to_string();
            let mut input = release_input(&id, "_T._T._T", "2025-S1", &(i + 1).to_string());
            if i < BIG {
                input["title"] = json!(long_title(format!("SYNTHETIC lag test release {i} ")));
            }
            input
        })
        .collect();
    let started = Instant::now();
    let mut revisions = publish_many(&app, inputs, 16).await;
    revisions.sort_unstable();
    assert_eq!(revisions, (4..4 + N as u64).collect::<Vec<_>>());
    println!(
        "lag: published {N} releases in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Now read everything; the two subscriptions interleave freely.
    let mut last_release = 3;
    let mut last_observation = 3;
    let mut last_value = "-4610".to_owned();
    let (mut releases, mut observations) = (0, 0);
    while releases < N || observations < N {
        let msg = recv(&mut ws).await;
        assert_eq!(msg["type"], "next", "{msg}");
        let data = &msg["payload"]["data"];
        match msg["id"].as_str() {
            Some("rel") => {
                let revision = data["releasePublished"]["revision"].as_u64().expect("revision");
                assert_eq!(revision, last_release + 1, "releasePublished: gap or duplicate");
                last_release = revision;
                releases += 1;
            }
            Some("obs") => {
                let e = &data["observationRevised"];
                let revision = e["revision"].as_u64().expect("revision");
                assert_eq!(revision, last_observation + 1, "observationRevised: gap or duplicate");
                assert_eq!(e["previousValue"], json!(last_value), "at revision {revision}");
                last_observation = revision;
                last_value = e["value"].as_str().expect("value").to_owned();
                observations += 1;
            }
            _ => panic!("unexpected message {msg}"),
        }
    }
    assert_eq!((last_release, last_observation), (3 + N as u64, 3 + N as u64));
    println!(
        "lag: read back 2 x {N} events after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    expect_quiet(&mut ws).await;
}

// ---------------------------------------------------------------------------------------------
// graphql-transport-ws protocol rules
// ---------------------------------------------------------------------------------------------

/// `subscribe` before `connection_init` closes with 4401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_before_init_closes_4401() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    subscribe(&mut ws, "1", RELEASES, json!({})).await;
    assert_eq!(expect_close(&mut ws).await, 4401);
}

/// `subscribe` with the id of an active subscription closes with 4409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscription_id_closes_4409() {
    let app = spawn_app().await;
    let mut sub = app.subscribe("dup", RELEASES, json!({})).await;
    wait_subscribers(&app, 1).await;
    subscribe(&mut sub.ws, "dup", RELEASES, json!({})).await;
    assert_eq!(expect_close(&mut sub.ws).await, 4409);
}

/// A second `connection_init` closes with 4429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connection_init_closes_4429() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(expect_close(&mut ws).await, 4429);
}

/// Invalid JSON, unknown types, missing fields, a non-object init payload and binary frames close with 4400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_close_4400() {
    let app = spawn_app().await;
    let texts = [
        (false, "{not json"),
        (false, "[]"),
        (false, r#"{"type": "bogus"}"#),
        (true, r#"{"type": "bogus"}"#),
        (true, r#"{"type": "subscribe", "id": "1"}"#),
        (
            true,
            r#"{"type": "subscribe", "payload": {"query": "subscription { releasePublished { revision } }"}}"#,
        ),
        (
            true,
            r#"{"type": "subscribe", "id": "1", "payload": {"variables": {}}}"#,
        ),
        (true, r#"{"type": "complete"}"#),
        (false, r#"{"type": "connection_init", "payload": [1]}"#),
    ];
    for (initialised, text) in texts {
        let mut ws = connect(&app).await;
        if initialised {
            init(&mut ws).await;
        }
        send_text(&mut ws, text).await;
        assert_eq!(
            expect_close(&mut ws).await,
            4400,
            "for {text} (after init: {initialised})"
        );
    }
    for initialised in [false, true] {
        let mut ws = connect(&app).await;
        if initialised {
            init(&mut ws).await;
        }
        timeout(RECV, ws.send(Message::binary(b"{\"type\":\"ping\"}".to_vec())))
            .await
            .expect("send timed out")
            .expect("send");
        assert_eq!(
            expect_close(&mut ws).await,
            4400,
            "binary frame (after init: {initialised})"
        );
    }
}

/// A message over the size limit (`max_body_bytes`) closes with 1009 (message too big), not 1000 (normal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_closes_1009() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024, true).await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    // A small message is fine...
    send(&mut ws, json!({"type": "ping", "payload": {"x": "y".repeat(100)}})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    // ...a big one is refused.
    send(&mut ws, json!({"type": "ping", "payload": {"x": "y".repeat(4_000)}})).await;
    let (code, reason) = expect_close_with_reason(&mut ws).await;
    assert_eq!(code, 1009, "close reason {reason:?}");
}

/// Messages far larger than the server's initial per-connection read buffer (a few KiB) but
/// within the size limit arrive whole: a padded subscribe and a big ping both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_read_buffer_are_read_whole() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    let pad = "y".repeat(100_000);
    send(&mut ws, json!({"type": "ping", "payload": {"x": pad}})).await;
    let pong = recv(&mut ws).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["payload"]["x"].as_str().map(str::len), Some(100_000));
    let padded = format!(
        "subscription {{ releasePublished {{ revision release {{ id }} }} }} # {}",
        "z".repeat(50_000)
    );
    subscribe(&mut ws, "big", &padded, json!({})).await;
    wait_subscribers(&app, 1).await;
    let (id, input) = new_release("_T._T._T", "2026-S1", "7");
    let revision = publish_revision(&app, input).await;
    let (got_revision, got_id, _) = next_release(&mut ws, "big").await;
    assert_eq!((got_revision, got_id.as_str()), (revision, id.as_str()));
}

/// No `connection_init` within `ws_init_timeout` closes with 4408; an initialised connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_init_closes_4408_after_the_init_timeout() {
    let app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_millis(300), true).await;
    // A server whose init timeout is an hour, and an idle connection to it opened first: were
    // the setting ignored (both servers on the default), this one would be closed first.
    let patient_app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_secs(3600), true).await;
    let mut patient = connect(&patient_app).await;
    // The server's timer starts once the upgrade is done, after this instant.
    let started = Instant::now();
    let mut idle = connect(&app).await;
    let mut prompt = connect(&app).await;
    init(&mut prompt).await;

    // `expect_close` gives up after RECV, which only guards against a connection that is
    // never closed.
    assert_eq!(expect_close(&mut idle).await, 4408);
    let waited = started.elapsed();
    // Not closed at once for some other reason: the init timeout ran out first.
    assert!(
        waited >= Duration::from_millis(300),
        "closed with 4408 after {waited:?}, before the 300 ms init timeout"
    );
    // The connection with the longer init timeout, older than `idle`, is still open.
    expect_quiet(&mut patient).await;

    tokio::time::sleep(Duration::from_millis(400)).await;
    send(&mut prompt, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut prompt).await["type"], "pong");
}

/// With reads protected, a wrong or missing token closes with 4403; the read token (payload or header) is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_init_is_authenticated_when_reads_are_protected() {
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    for payload in [
        Some(json!({"authorization": "Bearer wrong-secret-123"})),
        Some(json!({})),
        None,
    ] {
        let mut ws = connect(&app).await;
        let mut msg = json!({"type": "connection_init"});
        if let Some(p) = &payload {
            msg["payload"] = p.clone();
        }
        send(&mut ws, msg).await;
        assert_eq!(expect_close(&mut ws).await, 4403, "payload {payload:?}");
    }

    let mut ws = connect(&app).await;
    init_with(&mut ws, Some(json!({"authorization": format!("Bearer {READ_SECRET}")}))).await;
    subscribe(&mut ws, "r", RELEASES, json!({"after": 2})).await;
    let (revision, id, _) = next_release(&mut ws, "r").await;
    assert_eq!((revision, id.as_str()), (3, REVISION_ID));

    let (mut ws, _) = try_connect(&app.ws_url, Some(TRANSPORT), Some(&format!("Bearer {READ_SECRET}")))
        .await
        .expect("upgrade");
    init(&mut ws).await;
}

/// An invalid document gets an `error` message for its id and the connection (and the id) stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_document_gets_an_error_and_the_connection_stays() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    init(&mut ws).await;
    for (id, query) in [
        ("syntax", "subscription {"),
        ("validation", "subscription { releasePublished { noSuchField } }"),
    ] {
        subscribe(&mut ws, id, query, json!({})).await;
        let msg = recv(&mut ws).await;
        assert_eq!(msg["type"], "error", "{msg}");
        assert_eq!(msg["id"], id, "{msg}");
        let errors = msg["payload"]
            .as_array()
            .unwrap_or_else(|| panic!("payload must be a list: {msg}"));
        assert!(!errors.is_empty() && errors[0]["message"].is_string(), "{msg}");
    }
    // Our own limits apply over WebSocket too: 40 aliased `__typename` fields pass
    // async-graphql's checks (which count neither) but not the alias limit.
    let flood: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let query = format!("subscription {{ releasePublished {{ {flood} revision }} }}");
    subscribe(&mut ws, "flood", &query, json!({})).await;
    let msg = recv(&mut ws).await;
    assert_eq!(
        (msg["type"].as_str(), msg["id"].as_str()),
        (Some("error"), Some("flood")),
        "{msg}"
    );
    assert_eq!(msg["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{msg}");
    assert!(
        msg["payload"][0]["message"].as_str().unwrap().contains("aliases"),
        "{msg}"
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    subscribe(&mut ws, "validation", RELEASES, json!({"after": 2})).await;
    let (revision, _, _) = next_release(&mut ws, "validation").await;
    assert_eq!(revision, 3);
}

/// `ping` is answered with `pong` echoing the payload, before and after init.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_pong() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "pong"}));
    init(&mut ws).await;
    send(&mut ws, json!({"type": "ping", "payload": {"n": 7}})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "pong", "payload": {"n": 7}}));
}

/// A client `complete` drops that subscription's stream and events, keeps the others, and frees the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_complete_stops_the_subscription() {
    let app = spawn_app().await;
    let mut sub = app.subscribe("a", RELEASES, json!({})).await;
    subscribe(&mut sub.ws, "b", RELEASES, json!({})).await;
    wait_subscribers(&app, 2).await;

    send(&mut sub.ws, json!({"type": "complete", "id": "a"})).await;
    wait_subscribers_at_most(&app, 1).await;
    let (id, input) = new_release("_T._T._T", "2026-S1", "1");
    let revision = publish_revision(&app, input).await;
    let msg = loop {
        let msg = sub.recv().await;
        match msg["id"].as_str() {
            // The protocol does not ask the server to confirm a client's `complete`, but
            // doing so is harmless; any other message for "a" is not.
            Some("a") => assert_eq!(msg["type"], "complete", "event after complete: {msg}"),
            _ => break msg,
        }
    };
    assert_eq!((&msg["type"], &msg["id"]), (&json!("next"), &json!("b")), "{msg}");
    let event = &msg["payload"]["data"]["releasePublished"];
    assert_eq!(
        (&event["revision"], &event["release"]["id"]),
        (&json!(revision), &json!(id))
    );
    sub.expect_quiet().await;

    // The id is free again.
    subscribe(&mut sub.ws, "a", RELEASES, json!({"after": revision - 1})).await;
    let (r, _, _) = sub.next_release().await;
    assert_eq!(r, revision);
}

/// A query sent with `subscribe` gets one `next` with its result, then `complete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_websocket_gets_next_then_complete() {
    let app = spawn_app().await;
    let mut sub = app.subscribe("q", "{ ledger { revision } }", json!({})).await;
    assert_eq!(sub.next_data().await, json!({"ledger": {"revision": 3}}));
    assert_eq!(sub.recv().await, json!({"type": "complete", "id": "q"}));
    sub.expect_quiet().await;
}

/// Idle connections get keep-alives at the configured interval: `ping` (transport) and `ka` (legacy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_get_keepalives() {
    let app = spawn_app_with(|c| c.ws_keepalive = Duration::from_millis(100), true).await;
    let mut ws = connect(&app).await;
    for initialised in [false, true] {
        if initialised {
            init(&mut ws).await;
        }
        match recv_raw(&mut ws).await {
            Got::Json(v) => assert_eq!(v, json!({"type": "ping", "payload": {"reason": "keepalive"}})),
            other => panic!("expected a keep-alive ping, got {other:?}"),
        }
    }
    let mut legacy = connect_with(&app, LEGACY).await;
    send(&mut legacy, json!({"type": "connection_init"})).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match recv_raw(&mut legacy).await {
            Got::Json(v) => seen.push(v["type"].as_str().unwrap_or("").to_owned()),
            other => panic!("expected ack and keep-alives, got {other:?}"),
        }
    }
    assert_eq!(seen, ["connection_ack", "ka", "ka"]);
}

/// A keep-alive interval of zero does not break connections: they still initialise and subscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_keepalive_interval_does_not_break_connections() {
    let app = spawn_app_with(|c| c.ws_keepalive = Duration::ZERO, true).await;
    let mut sub = app.subscribe("r", RELEASES, json!({"after": 2})).await;
    let (revision, _, _) = sub.next_release().await;
    assert_eq!(revision, 3);
}

/// An upgrade offering no supported subprotocol, or none, is refused with HTTP 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_subprotocol_is_refused_with_400() {
    let app = spawn_app().await;
    assert_eq!(
        refused_status(try_connect(&app.ws_url, Some("graphql-sse"), None).await),
        400
    );
    assert_eq!(refused_status(try_connect(&app.ws_url, None, None).await), 400);
}

/// Over `max_ws_connections` an upgrade is refused with 503 and Retry-After; a freed slot is reusable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_with_503() {
    let app = spawn_app_with(|c| c.max_ws_connections = 2, true).await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    init(&mut first).await;
    init(&mut second).await;
    assert_eq!(
        refused_status(try_connect(&app.ws_url, Some(TRANSPORT), None).await),
        503
    );

    timeout(RECV, first.close(None))
        .await
        .expect("close timed out")
        .expect("close");
    let start = Instant::now();
    let mut third = loop {
        match try_connect(&app.ws_url, Some(TRANSPORT), None).await {
            Ok((ws, _)) => break ws,
            Err(tungstenite::Error::Http(r)) if r.status() == 503 && start.elapsed() < RECV => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the freed slot was not given back: {e}"),
        }
    };
    init(&mut third).await;
}

// ---------------------------------------------------------------------------------------------
// Legacy protocol and shutdown
// ---------------------------------------------------------------------------------------------

/// Legacy `graphql-ws`: connection_init -> connection_ack, start -> data, stop -> complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_graphql_ws_protocol() {
    let app = spawn_app().await;
    let (mut ws, response) = try_connect(&app.ws_url, Some(LEGACY), None).await.expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
        Some(LEGACY)
    );
    send(&mut ws, json!({"type": "connection_init", "payload": {}})).await;
    assert_eq!(recv(&mut ws).await["type"], "connection_ack");
    send(
        &mut ws,
        json!({"type": "start", "id": "1", "payload": {"query": "subscription { releasePublished { revision release { id } } }"}}),
    )
    .await;
    wait_subscribers(&app, 1).await;

    let (id, input) = new_release("_T._T._T", "2026-S1", "3");
    let revision = publish_revision(&app, input).await;
    let data = recv(&mut ws).await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["id"], "1");
    assert_eq!(
        data["payload"]["data"]["releasePublished"],
        json!({"revision": revision, "release": {"id": id}})
    );

    send(&mut ws, json!({"type": "stop", "id": "1"})).await;
    assert_eq!(recv(&mut ws).await, json!({"type": "complete", "id": "1"}));
    wait_subscribers_at_most(&app, 0).await;
}

/// Graceful shutdown sends `complete` for every subscription, then closes every connection with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_completes_subscriptions_then_closes_1001() {
    let mut app = spawn_app().await;
    let mut sub = app.subscribe("live", RELEASES, json!({})).await;
    wait_subscribers(&app, 1).await;

    timeout(RECV, app.stop())
        .await
        .expect("the server did not stop in time");
    assert_eq!(sub.recv().await, json!({"type": "complete", "id": "live"}));
    let (code, reason) = expect_close_with_reason(&mut sub.ws).await;
    assert_eq!(code, 1001, "close reason {reason:?}");
}
