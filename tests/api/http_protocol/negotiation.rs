//! `Accept` negotiation and the status code of each kind of error, by media type.

use super::*;

/// `Accept: application/graphql-response+json` gets that media type.
#[tokio::test]
async fn accept_graphql_response_json_gets_it() {
    let app = spawn_app().await;
    let resp = post_accept(&app, Some(GRAPHQL_RESPONSE), &json!({ "query": LEDGER_QUERY })).await;
    assert_eq!(resp.status(), 200);
    assert!(
        content_type(&resp).starts_with(GRAPHQL_RESPONSE),
        "{}",
        content_type(&resp)
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({ "data": { "ledger": { "revision": 3 } } }));
}

/// `Accept: application/json` gets `application/json`.
#[tokio::test]
async fn accept_application_json_gets_it() {
    let app = spawn_app().await;
    let resp = post_accept(&app, Some("application/json"), &json!({ "query": LEDGER_QUERY })).await;
    assert_eq!(resp.status(), 200);
    assert!(
        content_type(&resp).starts_with("application/json"),
        "{}",
        content_type(&resp)
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"]["ledger"]["revision"], 3);
}

/// Quality values decide between the two media types.
#[tokio::test]
async fn accept_quality_values_are_honoured() {
    let app = spawn_app().await;
    let body = json!({ "query": LEDGER_QUERY });
    for (accept, expected) in [
        (
            "application/json;q=0.5, application/graphql-response+json;q=0.9",
            GRAPHQL_RESPONSE,
        ),
        (
            "application/graphql-response+json;q=0.4, application/json",
            "application/json",
        ),
        ("text/html, application/json;q=0.8", "application/json"),
        ("*/*", GRAPHQL_RESPONSE),
    ] {
        let resp = post_accept(&app, Some(accept), &body).await;
        assert_eq!(resp.status(), 200, "Accept: {accept}");
        assert!(
            content_type(&resp).starts_with(expected),
            "Accept: {accept} gave {}",
            content_type(&resp)
        );
    }
}

/// A request without any `Accept` header gets `application/json` (the legacy default).
#[tokio::test]
async fn no_accept_header_gets_application_json() {
    let app = spawn_app().await;
    let body = json!({ "query": LEDGER_QUERY }).to_string();
    let resp = raw(app.addr, &raw_post(app.addr, "", &body)).await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("accept").is_none());
    let ct = resp.header("content-type").unwrap();
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(resp.json()["data"]["ledger"]["revision"], 3);
}

/// An `Accept` that allows neither JSON media type is refused with 406, for POST and GET.
#[tokio::test]
async fn unacceptable_accept_is_406() {
    let app = spawn_app().await;
    let resp = post_accept(&app, Some("text/xml"), &json!({ "query": LEDGER_QUERY })).await;
    assert_eq!(resp.status(), 406);
    let resp = post_accept(&app, Some("application/json;q=0"), &json!({ "query": LEDGER_QUERY })).await;
    assert_eq!(resp.status(), 406);
    let resp = get_accept(&app, &[("query", LEDGER_QUERY)], Some("text/xml")).await;
    assert_eq!(resp.status(), 406);
}

// ---------------------------------------------------------------------------------------
// Status codes

/// A syntax error is HTTP 400 with graphql-response+json and 200 with `errors` with application/json.
#[tokio::test]
async fn syntax_error_status_depends_on_media_type() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ ledger { revision " });
    let resp = post_accept(&app, Some(GRAPHQL_RESPONSE), &body).await;
    assert_eq!(resp.status(), 400);
    assert!(content_type(&resp).starts_with(GRAPHQL_RESPONSE));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "GRAPHQL_PARSE_FAILED", "{v}");
    assert!(v.get("data").is_none_or(Value::is_null), "{v}");

    let resp = post_accept(&app, Some("application/json"), &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "GRAPHQL_PARSE_FAILED", "{v}");
}

/// A validation error is HTTP 400 with graphql-response+json and 200 with `errors` with application/json.
#[tokio::test]
async fn validation_error_status_depends_on_media_type() {
    let app = spawn_app().await;
    for query in [
        "{ noSuchField }",
        "{ ledger { revision noSuchField } }",
        "{ observation(dataset: \"KR_KNOWLEDGE_SERVICES\") { value } }",
        "query($x: Int) { ledger { revision } } ",
        "subscription { releasePublished { revision } }",
    ] {
        let body = json!({ "query": query });
        let resp = post_accept(&app, Some(GRAPHQL_RESPONSE), &body).await;
        assert_eq!(resp.status(), 400, "{query}");
        let v: Value = resp.json().await.unwrap();
        assert!(!v["errors"].as_array().unwrap().is_empty(), "{query}: {v}");
        assert!(v.get("data").is_none_or(Value::is_null), "{v}");

        let resp = post_accept(&app, Some("application/json"), &body).await;
        assert_eq!(resp.status(), 200, "{query}");
        let v: Value = resp.json().await.unwrap();
        assert!(!v["errors"].as_array().unwrap().is_empty(), "{query}: {v}");
    }
    let v: Value = post_accept(&app, Some(GRAPHQL_RESPONSE), &json!({ "query": "{ noSuchField }" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code(&v), "GRAPHQL_VALIDATION_FAILED", "{v}");
}

/// A field error with other data present is HTTP 200, also with `graphql-response+json`.
#[tokio::test]
async fn field_error_with_data_is_200() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ ledger { revision } observation(dataset: \"NOPE\", key: \"_T._T._T\", period: \"2025-S1\") { value } }" });
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let resp = post_accept(&app, Some(accept), &body).await;
        assert_eq!(resp.status(), 200, "{accept}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["data"]["ledger"]["revision"], 3, "{v}");
        assert_eq!(v["data"]["observation"], Value::Null);
        assert_eq!(code(&v), "NOT_FOUND", "{v}");
        assert_eq!(v["errors"][0]["path"], json!(["observation"]));
    }
}

/// A resolver error on the only root field (data null, but execution started) is HTTP 200.
#[tokio::test]
async fn field_error_without_data_is_still_200() {
    let app = spawn_app().await;
    let body =
        json!({ "query": "{ observation(dataset: \"NOPE\", key: \"_T._T._T\", period: \"2025-S1\") { value } }" });
    let resp = post_accept(&app, Some(GRAPHQL_RESPONSE), &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "NOT_FOUND", "{v}");
}

/// A required variable that is not supplied is `BAD_USER_INPUT`, not an internal server error.
#[tokio::test]
async fn missing_required_variable_is_bad_user_input() {
    let app = spawn_app().await;
    let body = json!({ "query": "query($n: Int!) { events(first: $n) { totalCount } }" });
    let resp = post_accept(&app, Some("application/json"), &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

/// Period, UUID and DateTime values that do not parse are `BAD_USER_INPUT`, as literals or variables.
#[tokio::test]
async fn unparseable_scalars_are_bad_user_input() {
    let app = spawn_app().await;
    let mut codes = Vec::new();
    for (query, variables) in [
        (
            "{ observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"_T._T._T\", period: \"2025-S3\") { value } }",
            json!({}),
        ),
        (
            "query($p: Period!) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"_T._T._T\", period: $p) { value } }",
            json!({ "p": "2025-13" }),
        ),
        ("{ release(id: \"not-a-uuid\") { id } }", json!({})),
        ("query($id: UUID!) { release(id: $id) { id } }", json!({ "id": "not-a-uuid" })),
        (
            "query($a: AsOf) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"_T._T._T\", period: \"2025-S1\", asOf: $a) { value } }",
            json!({ "a": { "publishedAt": "yesterday" } }),
        ),
    ] {
        let resp = post_accept(&app, Some("application/json"), &json!({ "query": query, "variables": variables })).await;
        let v: Value = resp.json().await.unwrap();
        assert!(v["data"].is_null(), "{v}");
        codes.push((format!("{query} {variables}"), code(&v).to_owned()));
    }
    let expected: Vec<(String, String)> = codes
        .iter()
        .map(|(case, _)| (case.clone(), "BAD_USER_INPUT".to_owned()))
        .collect();
    assert_eq!(codes, expected);
}
