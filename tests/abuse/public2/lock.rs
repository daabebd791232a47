//! Item 3: the projection's lock, held by the fast path, and /healthz.

use super::*;

/// With a reader holding the projection's lock and a write waiting for it (the lock lets
/// the write go first, so any new reader queues behind it), `/healthz` and `/readyz` still
/// answer, with the head before the write; once the reader lets go, the write lands and
/// `/healthz` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_healthz_answers_while_a_write_waits_for_the_projection() {
    use tradeledger::http::{run, ServerConfig};
    use tradeledger::ledger::OpenOptions;
    use tradeledger::store::{LogStore, SledStore};
    use tradeledger::Ledger;

    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(&dir.path().join("log")).unwrap());
    let (ledger, _) = Ledger::open(store as std::sync::Arc<dyn LogStore>, OpenOptions::default()).unwrap();
    crate::support::common::load_fixtures(&ledger).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, ledger.clone(), ServerConfig::default(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = |path: &'static str| {
        let client = client.clone();
        async move {
            let resp = client.get(format!("http://{addr}{path}")).send().await;
            match resp {
                Ok(r) => Ok((r.status().as_u16(), r.json::<Value>().await.unwrap())),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    assert_eq!(health("/healthz").await.unwrap().1["revision"], 3);

    // A reader holds the lock (on a thread of its own: the guard is a std lock's).
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = std::sync::mpsc::channel::<()>();
    let reader = {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            let guard = ledger.read();
            held.send(()).unwrap();
            let _ = released.recv_timeout(Duration::from_secs(60));
            drop(guard);
        })
    };
    holding.recv().unwrap();
    // A write, which waits for the lock.
    let write = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let draft =
                crate::support::common::draft(vec![crate::support::common::obs("IPR._T._T", "2031-S1", None, "17")]);
            ledger.publish(draft, None, "test").await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "the write should be waiting for the lock");

    let healthz = health("/healthz").await;
    let readyz = health("/readyz").await;
    release.send(()).unwrap();
    reader.join().unwrap();
    let (status, body) = healthz.expect("/healthz answers while a write waits for the lock");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 3, "{body}");
    let (status, body) = readyz.expect("/readyz answers while a write waits for the lock");
    assert_eq!((status, &body["revision"]), (200, &json!(3)), "{body}");

    let committed = write.await.unwrap().expect("the write lands once the reader is done");
    assert_eq!(committed.revision, 4);
    assert_eq!(health("/healthz").await.unwrap().1["revision"], 4);
    let _ = stop.send(());
    let _ = server.await;
}

/// A fast-path query of thirty aliased pages of 5,000 figures (the projection's lock taken
/// per page, not across all thirty) lets writes through while it runs: of writes sent one
/// after the other once the query is under way, some complete in the first half of the
/// query's time (holding the lock throughout, the first would wait to about its end). It
/// also fails with a lock that lets a new reader in ahead of a waiting writer (std's
/// `RwLock`: its unlock wakes the writer, and the query, still on its core, takes the lock for
/// its next page before the writer gets to run, page after page).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_a_long_aliased_fast_path_query_lets_a_write_through() {
    const WRITER: &str = "writer:lock-secret";
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), RELEASES, PER_RELEASE).await;
    // Pages of 5,000 (limits raised to allow them), so that the query runs long enough. Its
    // first run, through async-graphql, may take longer than the default request timeout on
    // a loaded machine: the timeout is not what this test is about.
    let server = Server::start(
        &data,
        &[
            "--request-timeout-ms",
            "100000",
            "--write-tokens",
            WRITER,
            "--response-cache-entries",
            "0",
            "--max-page-size",
            "5000",
            "--max-cost",
            "1000000",
            "--max-response-bytes",
            "200000000",
        ],
    )
    .await;
    let aliases: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "a{i}: observations(dataset: \"SYNTHETIC_TRADE\", first: 5000) {{ nodes {{ key period measure value revisionCount publishedAt release {{ id title status }} }} }}"
            )
        })
        .collect();
    let long = format!("{{ {} }}", aliases.join(" "));
    let fast_answers = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("tradeledger_graphql_fast_path_answers_total "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    // Learned from async-graphql's clean answer; then answered on the fast path.
    let first = server.query(&long, json!({})).await;
    let figure = first["a0"]["nodes"][0].clone();
    let before = fast_answers(server.metrics().await);

    let input = |n: usize| {
        json!({
            "dataset": "SYNTHETIC_TRADE",
            "status": "REVISED",
            "title": format!("SYNTHETIC lock test release {n}"),
            "publishedAt": "2026-01-15T00:00:00Z",
            "source": "SYNTHETIC: tests through the binary",
            "observations": [{ "key": figure["key"], "period": figure["period"], "measure": figure["measure"], "value": format!("{n}.5") }]
        })
    };
    let started = Instant::now();
    let query = {
        let client = server.client.clone();
        let url = server.url.clone();
        let long = long.clone();
        tokio::spawn(async move {
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .json(&json!({ "query": long }))
                .send()
                .await
                .unwrap();
            // The answer is built whole before its head is sent: the query is done here.
            let done = Instant::now();
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap();
            (status, body.len(), done)
        })
    };
    // Once the query is under way (it runs for a second or more in a debug build), writes
    // one after the other until it is done.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut writes = Vec::new();
    while !query.is_finished() {
        let (_, written) = server
            .post(
                crate::proc_support::PUBLISH,
                json!({ "input": input(writes.len()) }),
                Some("lock-secret"),
            )
            .await
            .unwrap();
        assert!(written.get("errors").is_none(), "{written}");
        writes.push(Instant::now());
    }
    let (status, len, query_done) = query.await.unwrap();
    assert_eq!(status, 200);
    assert!(len > 1_000_000, "the long query's answer: {len} bytes");
    let took = query_done - started;
    let first_half = writes.iter().filter(|w| **w - started < took / 2).count();
    let during = writes.iter().filter(|w| **w < query_done).count();
    println!(
        "query took {took:?}; of {} writes, {during} were done before it, {first_half} in its first half",
        writes.len()
    );
    assert_eq!(
        fast_answers(server.metrics().await),
        before + 1,
        "the long query ran on the fast path"
    );
    // Holding the lock for the whole query, the first write waits for all of it (and lands
    // about when it ends); per root field, writes go through between pages.
    assert!(
        first_half >= 1,
        "no write was done in the first half of the fast-path query ({took:?}); {during} before its end"
    );
}
