//! HTTP caching of GraphQL answers (Cache-Control, ETag, 304, surrogate keys), persisted
//! queries (automatic, manifest, safelist) and cache purges, over real HTTP.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tradeledger::auth::Token;
use tradeledger::http::persisted::Manifest;

const HEAD_QUERY: &str =
    r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { value revision } }"#;
const PINNED_QUERY: &str = r#"query($at: Int) { observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: { revision: $at }) { value revision } }"#;
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn header<'r>(r: &'r reqwest::Response, name: &str) -> &'r str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// GETs `/graphql` with the given parameters and extra headers.
async fn get(app: &TestApp, params: &[(&str, String)], headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(&app.url).query(params);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

async fn get_query(app: &TestApp, query: &str, variables: Value) -> reqwest::Response {
    get(
        app,
        &[("query", query.to_owned()), ("variables", variables.to_string())],
        &[],
    )
    .await
}

/// The value of counter `name` (a `tradeledger_` metric without labels) on `/metrics`.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app.metrics().await;
    let prefix = format!("tradeledger_{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// An answer as of revision 2 can never change: public, immutable for a year, a strong
/// ETag, the pinned surrogate key; a revision beyond the head or a `knownAt` still to come is
/// not pinned.
#[tokio::test]
async fn an_answer_as_of_a_past_revision_is_immutable() {
    let app = spawn_app().await;
    let r = get_query(&app, PINNED_QUERY, json!({ "at": 2 })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), IMMUTABLE);
    let etag = header(&r, "etag").to_owned();
    assert!(etag.starts_with("\"p-") && !etag.starts_with("W/"), "{etag}");
    assert_eq!(header(&r, "vary"), "Accept, Authorization");
    assert!(header(&r, "xkey").split(' ').any(|k| k == "tl:pinned"));
    assert_eq!(header(&r, "surrogate-key"), header(&r, "xkey"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["observation"]["revision"], 2, "{body}");

    // The same request once more: the same tag.
    let again = get_query(&app, PINNED_QUERY, json!({ "at": 2 })).await;
    assert_eq!(header(&again, "etag"), etag);

    // Beyond the head: an error, not stored.
    let beyond = get_query(&app, PINNED_QUERY, json!({ "at": 1_000_000 })).await;
    assert_eq!(header(&beyond, "cache-control"), "no-store");
    // A knownAt not yet past, and publishedAt alone (a back-fill may change it): head answers.
    for as_of in [
        json!({ "knownAt": "2999-01-01T00:00:00Z" }),
        json!({ "publishedAt": "2025-09-01T00:00:00Z" }),
    ] {
        let q = r#"query($at: AsOf) { observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: $at) { value } }"#;
        let r = get_query(&app, q, json!({ "at": as_of })).await;
        assert_eq!(r.status(), 200);
        let cc = header(&r, "cache-control");
        assert!(cc.starts_with("public, max-age=2,"), "{as_of}: {cc}");
        assert!(header(&r, "etag").starts_with("\"r"), "{as_of}");
    }
    // A knownAt long past is pinned.
    let q = r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: { knownAt: "2020-01-01T00:00:00Z" }) { value } }"#;
    let r = get_query(&app, q, json!({})).await;
    assert_eq!(header(&r, "cache-control"), IMMUTABLE);
    // A recorded release, and a diff between two past points, are pinned; a diff to the head
    // and a release's dataset (its definition may be amended) are not.
    let cases = [
        (format!(r#"{{ release(id: "{PRELIMINARY_ID}") {{ id title revision }} }}"#), true),
        (format!(r#"{{ release(id: "{PRELIMINARY_ID}") {{ dataset {{ name }} }} }}"#), false),
        (
            r#"{ changes(dataset: "KR_KNOWLEDGE_SERVICES", from: { revision: 2 }, to: { release: "6b1f0c2e-4d3a-4e51-9a57-2025a0000002" }) { nodes { key } } }"#.to_owned(),
            true,
        ),
        (
            r#"{ changes(dataset: "KR_KNOWLEDGE_SERVICES", from: { revision: 2 }) { nodes { key } } }"#.to_owned(),
            false,
        ),
        (
            r#"{ ...F } fragment F on Query { observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: { revision: 2 }) { value } }"#.to_owned(),
            true,
        ),
        (
            r#"{ ...F } fragment F on Query { observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: { revision: 2 }) { value } ledger { revision } }"#.to_owned(),
            false,
        ),
    ];
    for (query, pinned) in cases {
        let r = get_query(&app, &query, json!({})).await;
        assert_eq!(r.status(), 200, "{query}");
        assert_eq!(header(&r, "cache-control") == IMMUTABLE, pinned, "{query}");
    }
    // Labels are read from the definition as it is now: not pinned.
    let q = r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: { revision: 2 }) { dimensions { label } } }"#;
    let r = get_query(&app, q, json!({})).await;
    assert!(header(&r, "cache-control").starts_with("public, max-age=2,"));
}

/// A head answer's ETag names the revision it read: a publish changes it, and the old tag no
/// longer gets a 304. Head answers carry the dataset's surrogate key.
#[tokio::test]
async fn the_head_etag_changes_after_a_publish() {
    let app = spawn_app().await;
    let r = get_query(&app, HEAD_QUERY, json!({})).await;
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=2, stale-while-revalidate=10"
    );
    let before = header(&r, "etag").to_owned();
    assert!(header(&r, "xkey")
        .split(' ')
        .any(|k| k == "tl:ds:KR_KNOWLEDGE_SERVICES"));
    let r = get(&app, &[("query", HEAD_QUERY.to_owned())], &[("if-none-match", &before)]).await;
    assert_eq!(r.status(), 304);

    app.publish(release_input(
        "0f6a3c1e-2b7d-4c1a-9e55-00000000c001",
        "_T._T._T",
        "2025-S1",
        "-4000",
    ))
    .await;
    let r = get(&app, &[("query", HEAD_QUERY.to_owned())], &[("if-none-match", &before)]).await;
    assert_eq!(r.status(), 200, "the old tag no longer matches");
    let after = header(&r, "etag").to_owned();
    assert_ne!(before, after);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["observation"]["value"], "-4000", "{body}");
}

/// A matching If-None-Match is answered 304 with the caching headers and no body, before
/// the query runs: the response cache is not even looked at.
#[tokio::test]
async fn a_matching_if_none_match_is_answered_304_without_executing() {
    let app = spawn_app().await;
    let r = get_query(&app, PINNED_QUERY, json!({ "at": 2 })).await;
    let etag = header(&r, "etag").to_owned();
    let lookups = counter(&app, "response_cache_hits").await + counter(&app, "response_cache_misses").await;
    assert_eq!(counter(&app, "http_not_modified").await, 0);

    let params = [
        ("query", PINNED_QUERY.to_owned()),
        ("variables", json!({ "at": 2 }).to_string()),
    ];
    let r = get(&app, &params, &[("if-none-match", &format!("\"other\", {etag}"))]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(header(&r, "cache-control"), IMMUTABLE);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(counter(&app, "http_not_modified").await, 1);
    let after = counter(&app, "response_cache_hits").await + counter(&app, "response_cache_misses").await;
    assert_eq!(after, lookups, "the query did not run");

    // Another variable is another answer.
    let other = [
        ("query", PINNED_QUERY.to_owned()),
        ("variables", json!({ "at": 3 }).to_string()),
    ];
    assert_eq!(get(&app, &other, &[("if-none-match", &etag)]).await.status(), 200);
    // A POST is not answered 304 (RFC 9110: 412 for methods other than GET).
    let r = app
        .client
        .post(&app.url)
        .header("if-none-match", &etag)
        .json(&json!({ "query": PINNED_QUERY, "variables": { "at": 2 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
}

/// Under `--read-tokens` answers are private (no shared cache keeps them) and carry no
/// surrogate keys; POST answers and mutations are handled as well.
#[tokio::test]
async fn answers_are_private_under_read_tokens() {
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse(&format!("reader:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    let auth = format!("Bearer {READ_SECRET}");
    let params = [
        ("query", PINNED_QUERY.to_owned()),
        ("variables", json!({ "at": 2 }).to_string()),
    ];
    let r = get(&app, &params, &[("authorization", &auth)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "private, max-age=31536000, immutable");
    assert_eq!(header(&r, "xkey"), "");
    let r = get(&app, &[("query", HEAD_QUERY.to_owned())], &[("authorization", &auth)]).await;
    assert!(header(&r, "cache-control").starts_with("private, max-age=2,"));
    assert_eq!(header(&r, "vary"), "Accept, Authorization");
    // Refused without a token: not stored.
    let r = get(&app, &[("query", HEAD_QUERY.to_owned())], &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "cache-control"), "no-store");
}

/// Mutations, errors and POST answers: mutations and errors are `no-store`; a POSTed query
/// gets the same headers as a GET.
#[tokio::test]
async fn mutations_and_errors_are_not_stored() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(&app.url)
        .bearer_auth(WRITE_SECRET)
        .json(&json!({ "query": PUBLISH, "variables": { "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000c002", "_T._T._T", "2025-S1", "1") } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let r = get_query(&app, "{ dataset(id: 1) { nope } }", json!({})).await;
    assert_eq!(header(&r, "cache-control"), "no-store");
    let r = get_query(&app, "{ verifyLedger { ok } }", json!({})).await;
    assert_eq!(header(&r, "cache-control"), "no-store");
    let r = app
        .client
        .post(&app.url)
        .json(&json!({ "query": PINNED_QUERY, "variables": { "at": 2 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "cache-control"), IMMUTABLE);
}

/// Apollo's automatic persisted queries over GET: an unknown hash is PERSISTED_QUERY_NOT_FOUND
/// (not stored by caches), the retry with the text registers it, and the hash alone then runs
/// it, cacheable. A hash that is not the text's is refused.
#[tokio::test]
async fn automatic_persisted_queries_round_trip() {
    let app = spawn_app().await;
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(HEAD_QUERY) } }).to_string();
    let r = get(&app, &[("extensions", ext.clone())], &[("accept", "application/json")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{body}"
    );
    // graphql-response+json clients get a 4xx other than 400.
    let r = get(
        &app,
        &[("extensions", ext.clone())],
        &[("accept", "application/graphql-response+json")],
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "cache-control"), "no-store");

    let r = get(
        &app,
        &[("query", HEAD_QUERY.to_owned()), ("extensions", ext.clone())],
        &[],
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["observation"]["value"], "-4610", "{body}");

    let r = get(&app, &[("extensions", ext.clone())], &[]).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "cache-control").starts_with("public, max-age=2,"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["observation"]["value"], "-4610", "{body}");
    // Over POST too.
    let r = app
        .client
        .post(&app.url)
        .json(&json!({ "extensions": serde_json::from_str::<Value>(&ext).unwrap() }))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["observation"]["value"], "-4610", "{body}");
    assert_eq!(counter(&app, "persisted_query_registrations").await, 1);

    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha("{ ledger { revision } }") } });
    let r = get(
        &app,
        &[("query", HEAD_QUERY.to_owned()), ("extensions", wrong.to_string())],
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("SHA-256 of `query`"),
        "{body}"
    );
}

fn manifest() -> Arc<Manifest> {
    let limits = tradeledger::graphql::Limits::from(&tradeledger::settings::LimitArgs::default());
    let file = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{ "id": sha(PINNED_QUERY), "name": "AsOf", "type": "query", "body": PINNED_QUERY }],
    });
    Arc::new(Manifest::parse(file.to_string().as_bytes(), &limits).unwrap())
}

/// A trusted document of the manifest runs by its id, as Apollo's hash or as `documentId`.
#[tokio::test]
async fn a_manifest_document_runs_by_id() {
    let app = spawn_app_with(|c| c.persisted_queries = Some(manifest()), true).await;
    let vars = json!({ "at": 2 }).to_string();
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(PINNED_QUERY) } }).to_string();
    for params in [
        vec![("extensions", ext), ("variables", vars.clone())],
        vec![
            ("documentId", format!("sha256:{}", sha(PINNED_QUERY))),
            ("variables", vars.clone()),
        ],
    ] {
        let r = get(&app, &params, &[]).await;
        assert_eq!(header(&r, "cache-control"), IMMUTABLE);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["data"]["observation"]["revision"], 2, "{body}");
    }
    let r = get(&app, &[("documentId", "nope".to_owned())], &[]).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST",
        "{body}"
    );
}

/// `--only-persisted` refuses any other document, with a clear error, and registers nothing.
#[tokio::test]
async fn only_persisted_refuses_unknown_documents() {
    let app = spawn_app_with(
        |c| {
            c.persisted_queries = Some(manifest());
            c.only_persisted = true;
        },
        true,
    )
    .await;
    let r = get_query(&app, HEAD_QUERY, json!({})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_ID_REQUIRED",
        "{body}"
    );
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("only its persisted documents"));
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(HEAD_QUERY) } }).to_string();
    for params in [
        vec![("extensions", ext.clone())],
        vec![("query", HEAD_QUERY.to_owned()), ("extensions", ext.clone())],
    ] {
        let body: Value = get(&app, &params, &[]).await.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST",
            "{body}"
        );
    }
    // The manifest's own document, by id or by its exact text, runs.
    let r = get_query(&app, PINNED_QUERY, json!({ "at": 2 })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["observation"]["revision"], 2, "{body}");

    // Over WebSocket too: another document is refused, the manifest's runs.
    let mut ws = support::ws::connect(&app).await;
    support::ws::init(&mut ws).await;
    support::ws::subscribe(&mut ws, "1", HEAD_QUERY, json!({})).await;
    let msg = support::ws::recv(&mut ws).await;
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(
        msg["payload"][0]["extensions"]["code"], "PERSISTED_QUERY_ID_REQUIRED",
        "{msg}"
    );
    support::ws::send(
        &mut ws,
        json!({ "type": "subscribe", "id": "2", "payload": { "documentId": sha(PINNED_QUERY), "variables": { "at": 2 } } }),
    )
    .await;
    let data = support::ws::next_data(&mut ws, "2").await;
    assert_eq!(data["observation"]["revision"], 2, "{data}");
}

/// A stand-in cache: answers PURGE requests (the first with 500, to exercise the retry) and
/// reports each one's `xkey-purge` and dataset headers.
async fn purge_listener() -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            n += 1;
            let mut buf = vec![0u8; 8192];
            let mut got = 0;
            while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            let text = String::from_utf8_lossy(&buf[..got]).to_string();
            let find = |name: &str| {
                text.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let status = if n == 1 { "500 Internal Server Error" } else { "200 OK" };
            let _ = s
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                .await;
            if text.starts_with("PURGE ") && n > 1 {
                let _ = tx.send((find("xkey-purge"), find("x-tradeledger-dataset")));
            }
        }
    });
    (url, rx)
}

/// A publish sends the configured cache a PURGE of the dataset's surrogate keys, retried
/// after a failure and counted.
#[tokio::test]
async fn a_publish_purges_the_configured_caches() {
    let (url, mut purges) = purge_listener().await;
    let app = spawn_app_with(|c| c.purge_urls = vec![url], true).await;
    app.publish(release_input(
        "0f6a3c1e-2b7d-4c1a-9e55-00000000c003",
        "_T._T._T",
        "2025-S1",
        "-4100",
    ))
    .await;
    let (keys, dataset) = tokio::time::timeout(Duration::from_secs(60), purges.recv())
        .await
        .expect("a purge within the deadline")
        .expect("a purge");
    assert_eq!(dataset, DATASET);
    let keys: Vec<&str> = keys.split(' ').collect();
    assert!(
        keys.contains(&"tl:ds:KR_KNOWLEDGE_SERVICES") && keys.contains(&"tl:ledger"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"tl:pinned"));
    assert!(counter(&app, "cache_purge_retries").await >= 1);
    assert_eq!(counter(&app, "cache_purges").await, 1);
}

/// A burst of events (an import's batch of 40 releases) is purged once per dataset, not
/// once per event, and the purge comes after the last of them.
#[tokio::test]
async fn a_batch_of_releases_is_purged_once_per_dataset() {
    let (url, mut purges) = purge_listener().await;
    let app = spawn_app_with(|c| c.purge_urls = vec![url], true).await;
    let releases: Vec<Value> = (0..40)
        .map(|i| {
            json!({ "release": release_input(
                &format!("0f6a3c1e-2b7d-4c1a-9e55-0000000b{i:04}"),
                "ICT._T._T",
                "2025-S1",
                &format!("{}", 2000 + i),
            )})
        })
        .collect();
    let r = app
        .client
        .post(format!("http://{}/admin/releases", app.addr))
        .bearer_auth(ADMIN_SECRET)
        .header("content-type", "application/json")
        .body(json!({ "releases": releases }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, dataset) = tokio::time::timeout(Duration::from_secs(60), purges.recv())
        .await
        .expect("a purge within the deadline")
        .expect("a purge");
    assert_eq!(dataset, DATASET);
    // Whatever else comes within a while (the first attempt failed and was retried above).
    let mut sent = 1;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1500), purges.recv()).await {
        sent += 1;
    }
    assert!(sent <= 5, "{sent} purges for one batch of 40 releases");
}
