//! The request limits: depth, aliases, fields, batches, body sizes, the request timeout.

use super::*;

/// `{ __schema { types { fields { type { ofType^n { name } } } } } }` has n + 5 levels of
/// selection sets.
fn nested_query(n: usize) -> String {
    format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(n),
        " }".repeat(n)
    )
}

/// A query deeper than `max_depth` (12, or as configured) is `LIMIT_EXCEEDED`; one at the limit
/// runs. Selections under `__schema` may go 14 levels below it (15 in all), so that the
/// standard introspection query (14) works; beyond that they are refused too.
#[tokio::test]
async fn too_deep_query_is_limit_exceeded() {
    let app = spawn_app().await;
    for n in [7, 10] {
        let v = app.gql(&nested_query(n), json!({})).await;
        assert!(
            v.get("errors").is_none(),
            "introspection depth {} is allowed: {v}",
            n + 5
        );
    }
    for n in [11, 20] {
        let (status, v) = app.post(&nested_query(n), json!({}), None).await;
        assert_eq!(code(&v), "LIMIT_EXCEEDED", "depth {}: {v}", n + 5);
        assert_eq!(status, 400, "graphql-response+json (reqwest's */*) makes it a 400");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("deeper"), "{v}");
    }
    // Data queries: 13 levels are refused (the limit is checked before validation, so the
    // names need not exist; the schema has no data path that deep).
    let thirteen = format!("{{ {}x{} }}", "a { ".repeat(12), " }".repeat(12));
    let (status, v) = app.post(&thirteen, json!({}), None).await;
    assert_eq!((status, code(&v)), (400, "LIMIT_EXCEEDED"), "{v}");
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("limit of 12"),
        "{v}"
    );
    // Also through fragments.
    let root = query_type_name(&app).await;
    let q = format!(
        "{{ ...A }} fragment A on {root} {{ __schema {{ types {{ fields {{ type {{ ...B }} }} }} }} }}
         fragment B on __Type {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ ofType {{ name }} }} }} }} }} }} }} }} }} }} }} }}"
    );
    let v = app.gql(&q, json!({})).await;
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    // A smaller configured limit applies.
    let small = spawn_app_with(|c| c.limits.max_depth = 3, false).await;
    let v = small.gql("{ ledger { revision } }", json!({})).await;
    assert!(v.get("errors").is_none(), "{v}");
    let v = small
        .gql("{ datasets { dimensions { codes { code } } } }", json!({}))
        .await;
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
}

/// A query past the parser's recursion limit (32) is also 400 `LIMIT_EXCEEDED`, like any other limit.
#[tokio::test]
async fn very_deep_query_is_limit_exceeded_too() {
    let app = spawn_app().await;
    for n in [30, 100] {
        let (status, v) = app.post(&nested_query(n), json!({}), None).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["data"].is_null(), "{v}");
        assert_eq!(code(&v), "LIMIT_EXCEEDED", "depth {}: {v}", n + 5);
    }
}

fn aliased_typenames(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: __typename")).collect();
    format!("{{ {} }}", fields.join(" "))
}

/// 30 aliases are allowed; 31 aliased `__typename` are `LIMIT_EXCEEDED`.
#[tokio::test]
async fn too_many_aliases_is_limit_exceeded() {
    let app = spawn_app().await;
    let v = app.gql(&aliased_typenames(30), json!({})).await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["a29"], query_type_name(&app).await.as_str());
    let v = app.gql(&aliased_typenames(31), json!({})).await;
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("aliases"), "{v}");
    assert!(v["data"].is_null());
}

/// 2000 `__typename` selections are refused (`LIMIT_EXCEEDED`), as is a fragment bomb.
#[tokio::test]
async fn too_many_fields_are_refused() {
    let app = spawn_app().await;
    let q = format!("{{ {} }}", "__typename ".repeat(2000));
    let v = app.gql(&q, json!({})).await;
    assert_eq!(
        code(&v),
        "LIMIT_EXCEEDED",
        "{}",
        v.to_string().chars().take(500).collect::<String>()
    );
    assert!(v["data"].is_null());
    // 1000 fields is the limit itself.
    let q = format!("{{ {} }}", "__typename ".repeat(1000));
    let v = app.gql(&q, json!({})).await;
    assert!(
        v.get("errors").is_none(),
        "{}",
        v.to_string().chars().take(500).collect::<String>()
    );
    // Each fragment doubles the last: 2^20 fields if expanded.
    let root = query_type_name(&app).await;
    let mut bomb = format!("{{ ...F0 }} fragment F20 on {root} {{ __typename }}");
    for i in 0..20 {
        bomb.push_str(&format!(" fragment F{i} on {root} {{ ...F{n} ...F{n} }}", n = i + 1));
    }
    let v = app.gql(&bomb, json!({})).await;
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
}

/// A batch within `max_batch` runs in order; one over it is 400 `LIMIT_EXCEEDED` and runs nothing.
#[tokio::test]
async fn batches_are_bounded() {
    let app = spawn_app().await;
    let item = |key: &str| {
        json!({
            "query": "query($k: String!) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $k, period: \"2025-S1\") { value } }",
            "variables": { "k": key },
        })
    };
    let batch = json!([item("IPR._T._T"), item("ICT._T._T"), { "query": LEDGER_QUERY }]);
    let (status, v) = app.post_raw("application/json", &batch.to_string()).await.json();
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!([
            { "data": { "observation": { "value": "-2530" } } },
            { "data": { "observation": { "value": "1960" } } },
            { "data": { "ledger": { "revision": 3 } } },
        ])
    );

    let ten: Vec<Value> = (0..10).map(|_| json!({ "query": "{ __typename }" })).collect();
    let (status, v) = app
        .post_raw("application/json", &Value::Array(ten).to_string())
        .await
        .json();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 10);

    let eleven: Vec<Value> = (0..11).map(|_| json!({ "query": "{ __typename }" })).collect();
    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let (status, v) = app
            .post_raw(accept, &Value::Array(eleven.clone()).to_string())
            .await
            .json();
        assert_eq!(status, 400, "{v}");
        assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    }
    let (status, v) = app.post_raw("application/json", "[]").await.json();
    assert_eq!(status, 400, "{v}");
    let (status, v) = app.post_raw("application/json", "[1]").await.json();
    assert_eq!(status, 400, "{v}");

    // A mutation inside an over-long batch does not run.
    let before = app.head().await;
    let mut items: Vec<Value> = (0..10).map(|_| json!({ "query": "{ __typename }" })).collect();
    items.push(publish_body());
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .bearer_auth(WRITE_SECRET)
        .body(Value::Array(items).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(app.head().await, before);

    // A configured limit applies.
    let small = spawn_app_with(|c| c.max_batch = 2, false).await;
    let three: Vec<Value> = (0..3).map(|_| json!({ "query": "{ __typename }" })).collect();
    let (status, v) = small
        .post_raw("application/json", &Value::Array(three).to_string())
        .await
        .json();
    assert_eq!((status, code(&v)), (400, "LIMIT_EXCEEDED"), "{v}");
}

/// A body over the default 2 MiB is 413 and writes nothing, even carrying a valid mutation.
#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let before = app.head().await;
    let mut body = publish_body();
    body["extensions"] = json!({ "padding": "x".repeat(2 * 1024 * 1024) });
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .bearer_auth(WRITE_SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // The unread rest of the body leaves the connection unusable: the client is told.
    assert_eq!(
        resp.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    assert_eq!(app.head().await, before);

    // Just under the limit is fine.
    let mut body = json!({ "query": "{ __typename }", "extensions": { "padding": "" } });
    let overhead = body.to_string().len();
    body["extensions"]["padding"] = json!("x".repeat(2 * 1024 * 1024 - overhead));
    assert_eq!(body.to_string().len(), 2 * 1024 * 1024);
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A configured `max_body_bytes` applies: one byte over is 413, at the limit is fine.
#[tokio::test]
async fn configured_body_limit_is_enforced() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024, true).await;
    let mut body = json!({ "query": "{ __typename }", "extensions": { "padding": "" } });
    let overhead = body.to_string().len();
    body["extensions"]["padding"] = json!("x".repeat(1024 - overhead));
    let exact = body.to_string();
    assert_eq!(exact.len(), 1024);
    let (status, _) = app.post_raw("application/json", &exact).await.json();
    assert_eq!(status, 200);
    body["extensions"]["padding"] = json!("x".repeat(1025 - overhead));
    let (status, v) = app.post_raw("application/json", &body.to_string()).await.json();
    assert_eq!(status, 413, "{v}");
    assert_eq!(code(&v), "LIMIT_EXCEEDED");
}

/// A chunked body works under the limit and is 413 past `max_body_bytes`; its mutation does not run.
#[tokio::test]
async fn streamed_chunked_body_over_the_limit_is_413() {
    let app = spawn_app_with(|c| c.max_body_bytes = 8 * 1024, true).await;

    // Under the limit, in several chunks.
    let body = json!({ "query": LEDGER_QUERY }).to_string();
    let (a, b) = body.as_bytes().split_at(7);
    let mut request = chunked_head(app.addr, "");
    request.extend(chunk(a));
    request.extend(chunk(b));
    request.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(app.addr, &request).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["data"]["ledger"]["revision"], 3);

    // Over the limit: a mutation padded to 64 KiB, streamed 1 KiB at a time.
    let before = app.head().await;
    let mut body = publish_body();
    body["extensions"] = json!({ "padding": "x".repeat(64 * 1024) });
    let bytes = body.to_string().into_bytes();
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = chunked_head(app.addr, &format!("Authorization: Bearer {WRITE_SECRET}\r\n"));
    let sender = tokio::spawn(async move {
        writer.write_all(&head).await?;
        for part in bytes.chunks(1024) {
            writer.write_all(&chunk(part)).await?;
            writer.flush().await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(writer)
    });
    let resp = tokio::time::timeout(Duration::from_secs(20), read_response(&mut reader))
        .await
        .expect("the server answers before the stream ends");
    assert_eq!(resp.status, 413, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    sender.abort();
    assert_eq!(app.head().await, before);
}

/// A request running past `request_timeout` is cut off with 503 `LIMIT_EXCEEDED`; quick ones still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_cuts_off_slow_requests() {
    let timeout = Duration::from_millis(5);
    let app = spawn_app_with(|c| c.request_timeout = timeout, true).await;
    // Grow the log until a full verification takes at least 40 times the limit.
    let mut n = 0u32;
    loop {
        let drafts: Vec<ReleaseDraft> = (0..1000)
            .map(|i| {
                n += 1;
                ReleaseDraft {
                    id: None,
                    dataset: DATASET.into(),
                    status: ReleaseStatus::Revised,
                    title: format!("SYNTHETIC filler {n}"),
                    published_at: "2026-02-01T00:00:00Z".parse().unwrap(),
                    source: None,
                    observations: vec![ObservationDraft {
                        key: "_T._T._T".into(),
                        period: "2025-S1".into(),
                        measure: None,
                        value: format!("-{}", 4000 + i).into(),
                    }],
                    backfill: false,
                    revision_reason: None,
                }
            })
            .collect();
        for r in app.ledger.publish_all(drafts, "filler").await {
            r.expect("filler release");
        }
        let ledger = app.ledger.clone();
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || ledger.verify())
            .await
            .unwrap()
            .unwrap();
        if started.elapsed() >= timeout * 40 {
            break;
        }
        assert!(n < 100_000, "verification stays too fast to test the timeout");
    }
    let (status, v) = app.post("{ verifyLedger { ok checked } }", json!({}), None).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("5 ms"), "{v}");
    // Quick requests still go through. On a loaded machine a quick query can itself miss a
    // 5 ms deadline now and then (the thread that would run it is not scheduled in time), so
    // it gets a bounded number of tries; each miss must be this same timeout, nothing else,
    // and a server that cuts off every request fails all of them.
    const TRIES: usize = 20;
    let mut missed = Vec::new();
    loop {
        let (status, v) = app.post(LEDGER_QUERY, json!({}), None).await;
        if status == 200 {
            assert_eq!(v["data"]["ledger"]["revision"], u64::from(n) + 3, "{v}");
            break;
        }
        assert_eq!((status, code(&v)), (503, "LIMIT_EXCEEDED"), "a quick query failed: {v}");
        missed.push(v);
        assert!(
            missed.len() < TRIES,
            "a quick query was cut off by the 5 ms timeout {TRIES} times in a row: {missed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
