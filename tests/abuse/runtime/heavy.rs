//! Class 3: heavy work must not freeze everyone, and the timeout cancels it.

use super::*;

/// Waits until the process `pid` stops using CPU: two samples of its CPU time, `WINDOW`
/// apart, equal. Returns how long after the call that was seen, or `None` if its CPU time
/// still grew in every window until `until`.
async fn cpu_quiet_before(pid: u32, until: Instant) -> Option<Duration> {
    const WINDOW: Duration = Duration::from_millis(200);
    let started = Instant::now();
    let mut before = cpu_time(pid);
    loop {
        tokio::time::sleep(WINDOW).await;
        let now = cpu_time(pid);
        if now == before {
            return Some(started.elapsed());
        }
        if Instant::now() >= until {
            return None;
        }
        before = now;
    }
}

/// While three heavy queries run (on the query pool's slow lane), `/healthz` and a cheap
/// uncached query are answered: each probe is answered while every heavy request sent before
/// it is still running, none of them finishing in between. Without the pool (operations
/// run on the I/O threads, in one poll) a probe waits for a heavy query to end.
///
/// No latency is compared with a constant: a probe counts as clean when the three heavy
/// requests were in flight when it was sent and none had completed when its answer came. A
/// heavy query that finishes during a probe makes the probe dirty, and makes the heavy
/// query heavier (more aliases, up to the limit), so a fast machine only makes the clean
/// probes come easier. The test passes at `CLEAN` clean probes and fails at `DIRTY` dirty
/// ones (a protected server has about one dirty probe in a hundred).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_queries_do_not_freeze_health_or_cheap_queries() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    const HEAVY: usize = 3;
    const CLEAN: usize = 30;
    const DIRTY: usize = 15;
    let store = generated_store().await;
    let server = Server::start(store.path(), &["--response-cache-entries", "0"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Heavy requests sent and not yet answered, and heavy requests answered so far.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let aliases = Arc::new(AtomicUsize::new(5));
    let mut heavy = Vec::new();
    for _ in 0..HEAVY {
        let (client, url) = (server.client.clone(), server.url.clone());
        let (stop, in_flight, completed, aliases) =
            (stop.clone(), in_flight.clone(), completed.clone(), aliases.clone());
        heavy.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while !stop.load(SeqCst) {
                let n = aliases.load(SeqCst);
                let started = Instant::now();
                in_flight.fetch_add(1, SeqCst);
                let resp = client
                    .post(&url)
                    .json(&json!({ "query": heavy_query(n) }))
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await
                    .expect("heavy request (no answer within 600 s)");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.expect("heavy body");
                completed.fetch_add(1, SeqCst);
                in_flight.fetch_sub(1, SeqCst);
                assert_eq!(status, 200, "{}", &body.to_string()[..body.to_string().len().min(500)]);
                assert!(body.get("errors").is_none(), "heavy query failed");
                done.push((n, started.elapsed()));
            }
            done
        }));
    }
    let health = format!("http://{}/healthz", server.addr);
    let (mut clean, mut dirty, mut skipped) = (Vec::new(), Vec::new(), 0usize);
    while clean.len() < CLEAN && dirty.len() < DIRTY {
        assert!(
            heavy.iter().all(|h| !h.is_finished()),
            "a heavy query failed while probing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let done_before = completed.load(SeqCst);
        if in_flight.load(SeqCst) < HEAVY {
            // A heavy client is between two requests: no probe now.
            skipped += 1;
            continue;
        }
        let started = Instant::now();
        let resp = server.client.get(&health).send().await.expect("healthz");
        assert_eq!(resp.status(), 200);
        let data = server.query("{ ledger { revision } }", json!({})).await;
        assert!(data["ledger"]["revision"].as_u64().unwrap() > 1000);
        let took = started.elapsed();
        let finished_meanwhile = completed.load(SeqCst) - done_before;
        if finished_meanwhile == 0 {
            clean.push(took);
        } else {
            dirty.push((took, finished_meanwhile));
            // The heavy queries are not heavy enough to outlast a probe on this machine.
            let n = aliases.load(SeqCst);
            aliases.store((n * 2).min(30), SeqCst);
        }
    }
    stop.store(true, SeqCst);
    let mut heavy_times = Vec::new();
    for h in heavy {
        heavy_times.extend(h.await.expect("heavy task"));
    }
    eprintln!(
        "probes: {} clean {clean:?}, {} dirty (took, heavy queries finished meanwhile) {dirty:?}, \
         {skipped} skipped; heavy queries (aliases, took) {heavy_times:?}",
        clean.len(),
        dirty.len()
    );
    assert!(
        clean.len() >= CLEAN,
        "only {} probes were answered while the heavy queries ran; {} waited for a heavy query \
         to finish (took, heavy queries finished meanwhile): {dirty:?}",
        clean.len(),
        dirty.len()
    );
}

/// A query past a 200 ms timeout is answered 503 before it could have run to the end (the
/// same query with a sixth of the work takes longer without a timeout), and the server then
/// stops using CPU long before the whole query would have ended.
#[tokio::test]
async fn a_query_past_its_timeout_is_answered_503_and_stops_using_cpu() {
    // heavy_query(30) does six times the work of heavy_query(5).
    let yardstick = full_run(5).await;
    let store = generated_store().await;
    let server = Server::start(store.path(), &["--request-timeout-ms", "200"]).await;
    let pid = server.child.id();
    let started = Instant::now();
    let resp = server
        .client
        .post(&server.url)
        .json(&json!({ "query": heavy_query(30) }))
        .send()
        .await
        .expect("heavy request");
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
    assert!(
        took < yardstick,
        "the 503 came after {took:?}, later than a sixth of the query takes in full \
         ({yardstick:?}): the answer waited for the work"
    );
    // Left running, the work would go on for about six yardsticks from `started`; it must
    // stop well before: the server's CPU time stops growing within two yardsticks.
    let quiet = cpu_quiet_before(pid, started + 2 * yardstick).await;
    assert!(
        quiet.is_some(),
        "the server's CPU time still grew {:?} after the timeout (a sixth of the query takes \
         {yardstick:?} in full): the work went on",
        started.elapsed()
    );
}

/// Beyond the running and waiting bounds of the query pool, requests get 503 with Retry-After.
#[tokio::test]
async fn beyond_the_admission_bound_requests_get_503_with_retry_after() {
    let store = generated_store().await;
    let server = Server::start(
        store.path(),
        &[
            "--max-concurrent-queries",
            "1",
            "--max-queued-queries",
            "1",
            "--response-cache-entries",
            "0",
        ],
    )
    .await;
    let requests = (0..6).map(|_| {
        let (client, url) = (server.client.clone(), server.url.clone());
        async move {
            let resp = client
                .post(&url)
                .json(&json!({ "query": heavy_query(3) }))
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = resp.json().await.unwrap();
            (status, retry_after, body)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let refused: Vec<_> = results.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(results.iter().any(|(s, _, _)| *s == 200), "some were served");
    assert!(
        refused.len() >= 3,
        "at most 2 admitted at once; got {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for (_, retry_after, body) in refused {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains("busy"),
            "{body}"
        );
    }
    // Once the load is gone, queries are served again.
    server.query("{ ledger { revision } }", json!({})).await;
}
