//! `/healthz`, `/metrics`, and graceful shutdown.

use super::*;

/// `/healthz` answers 200 with JSON naming the head revision and whether writes are possible.
#[tokio::test]
async fn healthz_is_200_json() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        content_type(&resp).starts_with("application/json"),
        "{}",
        content_type(&resp)
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({ "status": "ok", "revision": 3, "readOnly": false, "writable": true })
    );
}

/// `/metrics` is Prometheus text with request counters and the head revision.
#[tokio::test]
async fn metrics_count_requests_and_show_the_head() {
    let app = spawn_app().await;
    let _ = app.head().await;
    let _ = post_accept(&app, Some("text/xml"), &json!({ "query": LEDGER_QUERY })).await;
    let resp = app
        .client
        .get(format!("http://{}/metrics", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("tradeledger_http_requests_total"), "{text}");
    assert!(
        text.contains("tradeledger_http_requests_total{route=\"/graphql\",method=\"POST\",status=\"200\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("tradeledger_http_requests_total{route=\"/graphql\",method=\"POST\",status=\"406\"} 1\n"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "tradeledger_ledger_head_revision 3"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "tradeledger_ledger_releases 2"), "{text}");

    // The gauge follows writes.
    let v = app
        .gql_write(
            PUBLISH,
            json!({ "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000bb03", "_T._T._T", "2025-S1", "1") }),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    let text = app.metrics().await;
    assert!(
        text.lines().any(|l| l == "tradeledger_ledger_head_revision 4"),
        "{text}"
    );
}

/// `/metrics` counts the response cache's hits and misses: the first asking of a query
/// misses, the same query again at the same revision hits, and after a write it misses again.
#[tokio::test]
async fn metrics_count_response_cache_hits_and_misses() {
    let app = spawn_app().await;
    let counts = || async {
        let text = app.metrics().await;
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .trim()
                .parse()
                .unwrap()
        };
        (
            value("tradeledger_response_cache_hits_total "),
            value("tradeledger_response_cache_misses_total "),
        )
    };
    let (hits, misses) = counts().await;
    let query = json!({ "query": "{ datasets { id } }" });
    for _ in 0..3 {
        assert_eq!(post_accept(&app, None, &query).await.status(), 200);
    }
    assert_eq!(counts().await, (hits + 2, misses + 1));
    let v = app
        .gql_write(
            PUBLISH,
            json!({ "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000bb07", "_T._T._T", "2025-S1", "1") }),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(post_accept(&app, None, &query).await.status(), 200);
    assert_eq!(counts().await, (hits + 2, misses + 2));
}

/// `/metrics` is Prometheus text 0.0.4 for a browser or `curl` (so it is shown, not
/// downloaded), and OpenMetrics for a scraper that asks for it.
#[tokio::test]
async fn metrics_negotiate_the_format_by_accept() {
    let app = spawn_app().await;
    let url = format!("http://{}/metrics", app.addr);
    for (accept, expected) in [
        (None, "text/plain; version=0.0.4"),
        (
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
            "text/plain; version=0.0.4",
        ),
        (
            Some("application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            "application/openmetrics-text",
        ),
    ] {
        let mut req = app.client.get(&url);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(expected), "Accept {accept:?}: {ct}");
        assert!(resp.text().await.unwrap().contains("tradeledger_ledger_head_revision"));
    }
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown

/// `stop()` finishes an in-flight request, closes the listener, and the ledger reopens with every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_and_the_store_reopens() {
    let mut app = spawn_app().await;
    let r = app
        .gql_write(
            PUBLISH,
            json!({ "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000bb04", "_T._T._T", "2025-S1", "-4650") }),
        )
        .await;
    assert_eq!(r["data"]["publishRelease"]["revision"], 4, "{r}");
    let head = app.head().await;

    // A request whose body is still arriving when the shutdown starts.
    let addr = app.addr;
    let body = json!({ "query": LEDGER_QUERY }).to_string();
    let (first, rest) = body.as_bytes().split_at(5);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = chunked_head(addr, "");
    request.extend(chunk(first));
    stream.write_all(&request).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let rest = rest.to_vec();
    let in_flight = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut tail = chunk(&rest);
        tail.extend_from_slice(b"0\r\n\r\n");
        stream.write_all(&tail).await.unwrap();
        read_response(&mut stream).await
    };
    let (_, resp) = tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(app.stop(), in_flight) })
        .await
        .expect("shutdown completes");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["data"]["ledger"]["revision"], 4);

    // No longer listening.
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");

    // Reopen the log from the same directory once this process lets go of it.
    let path = app.dir.path().join("log");
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    drop(app);
    let mut attempts = 0;
    let store = loop {
        match SledStore::open(&path) {
            Ok(s) => break s,
            Err(e) => {
                attempts += 1;
                assert!(attempts < 250, "cannot reopen the store: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (ledger, verification) =
        Ledger::open(Arc::new(store) as Arc<dyn LogStore>, OpenOptions::default()).expect("ledger reopens");
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 4);
    assert_eq!(ledger.read().head().revision, head.0);
    assert_eq!(ledger.read().head().hash.to_hex(), head.1);
    drop(ledger);
    drop(dir);
}
