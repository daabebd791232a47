//! The media types of requests, malformed bodies, and queries over GET.

use super::*;

/// A `text/plain` (or form) POST carrying a mutation is refused with 415 and writes nothing.
#[tokio::test]
async fn text_plain_post_is_415_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.head().await;
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "text/plain")
        .bearer_auth(WRITE_SECRET)
        .body(publish_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(app.head().await, before);
    // Form encodings, the other simple content types, too.
    for ct in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ] {
        let resp = app
            .client
            .post(&app.url)
            .header("content-type", ct)
            .bearer_auth(WRITE_SECRET)
            .body(publish_body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{ct}");
    }
    assert_eq!(app.head().await, before);
}

/// A POST without `Content-Type` is refused with 415.
#[tokio::test]
async fn missing_content_type_is_415() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(&app.url)
        .body(json!({ "query": LEDGER_QUERY }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let v: Value = resp.json().await.unwrap();
    assert!(!v["errors"].as_array().unwrap().is_empty());
}

/// `application/json` with parameters and in other letter case is accepted.
#[tokio::test]
async fn json_content_type_with_charset_is_accepted() {
    let app = spawn_app().await;
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let resp = app
            .client
            .post(&app.url)
            .header("content-type", ct)
            .body(json!({ "query": LEDGER_QUERY }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{ct}");
    }
}

/// A body that is not JSON is 400, whatever the `Accept`.
#[tokio::test]
async fn unparseable_json_is_400() {
    let app = spawn_app().await;
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        for body in [
            "{\"query\": ",
            "not json",
            "",
            "{\"query\": \"{ __typename }\"} trailing",
        ] {
            let (status, v) = app.post_raw(accept, body).await.json();
            assert_eq!(status, 400, "{accept} {body:?}: {v}");
            assert_eq!(code(&v), "BAD_USER_INPUT");
        }
    }
}

/// A `query` that is missing or not a string is 400.
#[tokio::test]
async fn query_not_a_string_is_400() {
    let app = spawn_app().await;
    for body in [
        json!({ "query": 1 }),
        json!({ "query": ["{ __typename }"] }),
        json!({ "query": null }),
        json!({}),
        json!("{ __typename }"),
        json!(42),
    ] {
        for accept in [GRAPHQL_RESPONSE, "application/json"] {
            let (status, v) = app.post_raw(accept, &body.to_string()).await.json();
            assert_eq!(status, 400, "{accept} {body}: {v}");
        }
    }
}

/// `variables` (and `operationName`, `extensions`) of the wrong JSON type are 400.
#[tokio::test]
async fn variables_not_an_object_is_400() {
    let app = spawn_app().await;
    for body in [
        json!({ "query": "{ __typename }", "variables": [1] }),
        json!({ "query": "{ __typename }", "variables": "{}" }),
        json!({ "query": "{ __typename }", "variables": 3 }),
        json!({ "query": "{ __typename }", "operationName": 3 }),
        json!({ "query": "{ __typename }", "extensions": [] }),
    ] {
        let (status, v) = app.post_raw("application/json", &body.to_string()).await.json();
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(code(&v), "BAD_USER_INPUT");
    }
    // null variables are the same as none.
    let (status, v) = app
        .post_raw(
            "application/json",
            &json!({ "query": "{ __typename }", "variables": null }).to_string(),
        )
        .await
        .json();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["__typename"], query_type_name(&app).await.as_str());
}

// ---------------------------------------------------------------------------------------
// GET

/// A query over GET works, with variables and operationName from the query string.
#[tokio::test]
async fn get_with_query_parameter_works() {
    let app = spawn_app().await;
    let resp = get_accept(&app, &[("query", LEDGER_QUERY)], Some("application/json")).await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("application/json"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({ "data": { "ledger": { "revision": 3 } } }));

    let q = "query A { ledger { revision } } query B($key: String!) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $key, period: \"2025-S1\") { value } }";
    let resp = get_accept(
        &app,
        &[
            ("query", q),
            ("operationName", "B"),
            ("variables", &json!({ "key": "_T.ICT._T" }).to_string()),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({ "data": { "observation": { "value": "1600" } } }));

    let resp = get_accept(&app, &[("query", "{ __typename }"), ("variables", "not json")], None).await;
    assert_eq!(resp.status(), 400);
}

/// A mutation over GET is 405 with `Allow: POST` and writes nothing, even with a write token.
#[tokio::test]
async fn mutation_over_get_is_405_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.head().await;
    let body = publish_body();
    let variables = body["variables"].to_string();
    let inline = "mutation { publishRelease(input: { id: \"0f6a3c1e-2b7d-4c1a-9e55-00000000bb02\", dataset: \"KR_KNOWLEDGE_SERVICES\", status: REVISED, title: \"t\", publishedAt: \"2026-01-01T00:00:00Z\", observations: [{ key: \"_T._T._T\", period: \"2025-S1\", value: \"1\" }] }) { revision } }";
    let named = format!("query Q {{ __typename }} {inline}").replace("mutation {", "mutation M {");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("query", PUBLISH), ("variables", &variables)],
        vec![("query", inline)],
        vec![("query", &named), ("operationName", "M")],
    ];
    for params in cases {
        for accept in ["application/json", GRAPHQL_RESPONSE] {
            let resp = app
                .client
                .get(&app.url)
                .query(&params)
                .bearer_auth(WRITE_SECRET)
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{params:?}");
            assert_eq!(resp.headers().get("allow").map(|v| v.to_str().unwrap()), Some("POST"));
        }
    }
    assert_eq!(app.head().await, before);
    // The query of a document that also holds a mutation may still be run over GET.
    let resp = get_accept(&app, &[("query", named.as_str()), ("operationName", "Q")], None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.head().await, before);
}

/// A browser GET (`Accept: text/html`) without a query gets the GraphiQL page.
#[tokio::test]
async fn get_html_without_query_serves_graphiql() {
    let app = spawn_app().await;
    let resp = get_accept(
        &app,
        &[],
        Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/html"), "{}", content_type(&resp));
    let html = resp.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"), "{html}");
    assert!(html.contains("/graphql"), "the page points at the endpoint");
    assert!(html.contains("<title>tradeledger</title>"));

    // Not when GraphiQL is turned off.
    let off = spawn_app_with(|c| c.graphiql = false, false).await;
    let resp = get_accept(&off, &[], Some("text/html")).await;
    assert_ne!(resp.status(), 200);
}

/// Other methods than GET and POST are 405.
#[tokio::test]
async fn other_methods_are_405() {
    let app = spawn_app().await;
    let resp = app
        .client
        .put(&app.url)
        .header("content-type", "application/json")
        .body(publish_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}
