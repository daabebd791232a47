//! Fan-out to many subscribers, and back-pressure from slow ones.

use super::*;

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
