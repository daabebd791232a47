//! Issue 10, items 2 and 6: queries whose lists multiply into millions of objects, responses
//! past a byte cap, and unused variables as a memory sink in the response cache.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::proc_support::{generated_store, memory_kb, Server};
use crate::support::code;

/// The attack: eight aliases of a page of 1000 releases with all their figures.
fn eight_aliases(first: u32) -> String {
    let one = |i: u32| {
        format!("a{i}: releases(first: {first}, after: \"0\") {{ nodes {{ observations {{ key period measure value }} }} }}")
    };
    format!("{{ {} }}", (0..8).map(one).collect::<Vec<_>>().join(" "))
}

/// Item 2: the eight-alias query is refused before anything runs, with its computed cost and
/// the limit in `extensions`; a query under the limit on the same server runs.
#[tokio::test]
async fn eight_aliased_pages_of_observations_are_refused_with_their_cost() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_store(dir.path(), 200, 100).await;
    let server = Server::start(&data, &["--no-fixtures", "--max-cost", "100000"]).await;
    let (_, hwm_before) = memory_kb(server.child.id());

    let (status, v) = server.post(&eight_aliases(1000), json!({}), None).await.unwrap();
    assert_eq!(status, 200, "application/json: {v}");
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    assert!(
        v["data"].is_null() && v["errors"][0].get("path").is_none(),
        "refused before executing: {v}"
    );
    let ext = &v["errors"][0]["extensions"];
    // 200 releases (fewer than `first`), 100 observations each, eight times.
    assert_eq!(ext["cost"], 8 * (1 + 200 + 200 * 100), "{v}");
    assert_eq!(ext["maxCost"], 100_000, "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("161608") && message.contains("100000"), "{message}");
    // Nothing was built: peak memory did not move by the ~100 MB the answer would take.
    let (_, hwm_after) = memory_kb(server.child.id());
    assert!(
        hwm_after < hwm_before + 40_000,
        "peak RSS {hwm_before} -> {hwm_after} kB"
    );

    // The same shape with small pages is under the limit and answers.
    let data = server.query(&eight_aliases(10), json!({})).await;
    assert_eq!(data["a7"]["nodes"].as_array().unwrap().len(), 10);
    assert_eq!(data["a7"]["nodes"][0]["observations"].as_array().unwrap().len(), 100);
    // A page size passed as a variable counts the same.
    let q = "query($n: Int) { releases(first: $n) { nodes { observations { value } } } }";
    let (_, v) = server.post(q, json!({"n": 1000}), None).await.unwrap();
    assert!(
        v["data"]["releases"]["nodes"].is_array(),
        "20,201 is under the limit: {v}"
    );
    let many = format!(
        "query($n: Int) {{ {} }}",
        (0..5)
            .map(|i| format!("a{i}: releases(first: $n) {{ nodes {{ observations {{ value }} }} }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (_, v) = server.post(&many, json!({"n": 1000}), None).await.unwrap();
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    assert_eq!(v["errors"][0]["extensions"]["cost"], 5 * 20_201, "{v}");
}

/// Item 2: a response larger than `--max-response-bytes` is replaced by a `LIMIT_EXCEEDED`
/// error naming the cap (never a partial document), over HTTP and in a WebSocket `next`.
#[tokio::test]
async fn responses_over_the_byte_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-response-bytes", "4000"]).await;
    let big = "{ events(first: 100) { nodes { canonical } } }";

    let (status, v) = server.post(big, json!({}), None).await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    assert!(v["data"].is_null() && v["errors"].as_array().unwrap().len() == 1, "{v}");
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("4000 bytes"),
        "{v}"
    );
    assert_eq!(v["errors"][0]["extensions"]["maxResponseBytes"], 4000, "{v}");
    // With graphql-response+json a response without `data` is a 4xx.
    let resp = server
        .client
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": big }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A small answer still comes through.
    let data = server
        .query("{ events(first: 1) { nodes { revision } } }", json!({}))
        .await;
    assert_eq!(data["events"]["nodes"][0]["revision"], 1);

    // Over WebSocket: refused before it runs (its estimated size is over the cap), with an
    // `error` message; a response found too large only once built would come as a `next`
    // whose payload is the error.
    let ws_url = format!("ws://{}/graphql/ws", server.addr);
    let mut request = ws_url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    for message in [
        json!({"type": "connection_init"}),
        json!({"type": "subscribe", "id": "1", "payload": {"query": big}}),
    ] {
        ws.send(Message::text(message.to_string())).await.unwrap();
    }
    let next = loop {
        // Only guards against a server that never answers.
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("no WebSocket message within 60 s")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "next" || v["type"] == "error" {
            break v;
        }
    };
    let errors = if next["type"] == "next" {
        assert!(next["payload"]["data"].is_null(), "{next}");
        &next["payload"]["errors"]
    } else {
        &next["payload"]
    };
    assert_eq!(errors[0]["extensions"]["code"], "LIMIT_EXCEEDED", "{next}");
}

/// The Prometheus gauge of the response cache's bytes.
async fn cache_bytes(server: &Server) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("tradeledger_response_cache_bytes "))
        .unwrap_or_else(|| panic!("no cache gauge in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Item 6: 500 requests of `{ ledger { revision } }`, each with 128 KiB of different unused
/// variables, share one cache entry; distinct cacheable queries never take the cache past
/// its byte bound; resident memory does not keep the variables.
#[tokio::test]
async fn unused_variables_do_not_grow_the_cache() {
    const BUDGET: u64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-body-bytes",
            "200000",
            "--response-cache-bytes",
            &BUDGET.to_string(),
        ],
    )
    .await;
    let q = "{ ledger { revision } }";
    server.query(q, json!({})).await;
    let one_entry = cache_bytes(&server).await;
    assert!(one_entry > 0 && one_entry < 1024, "one small entry: {one_entry}");
    let (rss_before, _) = memory_kb(server.child.id());
    for i in 0..500 {
        let junk = format!("{i}{}", "x".repeat(128 * 1024));
        let data = server.query(q, json!({ "unused": junk })).await;
        assert!(data["ledger"]["revision"].is_u64());
    }
    assert_eq!(
        cache_bytes(&server).await,
        one_entry,
        "unused variables are not part of the key"
    );
    let (rss_after, _) = memory_kb(server.child.id());
    // 500 x 128 KiB = 64 MiB of variables went through; none of it is kept.
    assert!(
        rss_after < rss_before + 32 * 1024,
        "VmRSS {rss_before} -> {rss_after} kB"
    );

    // Distinct queries fill the cache only up to its bound.
    for i in 0..2000 {
        let q = format!("{{ a{i}: ledger {{ revision hash }} }}");
        server.query(&q, json!({})).await;
        if i % 500 == 0 {
            assert!(cache_bytes(&server).await <= BUDGET);
        }
    }
    let held = cache_bytes(&server).await;
    assert!(held <= BUDGET && held > BUDGET / 2, "held {held} of {BUDGET}");
}
