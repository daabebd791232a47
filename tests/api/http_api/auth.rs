//! Write and read tokens: who may write, who may read.

use super::*;

/// A mutation without a token is `UNAUTHENTICATED` and leaves the head unchanged.
#[tokio::test]
async fn mutation_without_token_is_unauthenticated() {
    let app = spawn_app().await;
    let before = app.head().await;
    let (status, v) = app
        .post(
            PUBLISH,
            json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S1", "1") }),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(code(&v), "UNAUTHENTICATED", "{v}");
    assert_eq!(v["data"], Value::Null);
    assert_eq!(app.head().await, before);
    let data = app
        .query(
            "{ release(id: \"0f6a3c1e-2b7d-4c1a-9e55-00000000aa01\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(data["release"], Value::Null);
}

/// A wrong token is refused with HTTP 401 `UNAUTHENTICATED`, and nothing is written.
#[tokio::test]
async fn wrong_token_is_http_401() {
    let app = spawn_app().await;
    let before = app.head().await;
    let input = json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S1", "1") });
    let (status, v) = app.post(PUBLISH, input.clone(), Some("not-the-secret")).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(code(&v), "UNAUTHENTICATED", "{v}");
    // The name part of `name:secret` is not a credential.
    let (status, _) = app.post(PUBLISH, input, Some("tester:test-write-secret")).await;
    assert_eq!(status, 401);
    // Not even reads go through with a bad token.
    let (status, _) = app
        .post("{ ledger { revision } }", json!({}), Some("not-the-secret"))
        .await;
    assert_eq!(status, 401);
    // A malformed Authorization header is refused too.
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .header("authorization", "Basic dGVzdGVyOnNlY3JldA==")
        .body(r#"{"query":"{ ledger { revision } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(app.head().await, before);
}

/// With read tokens configured reads need a token, and a read token cannot write (`FORBIDDEN`).
#[tokio::test]
async fn read_tokens_protect_reads_and_cannot_write() {
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    let q = "{ ledger { revision hash } }";
    let (status, v) = app.post(q, json!({}), None).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(code(&v), "UNAUTHENTICATED");
    let (status, v) = app.post(q, json!({}), Some(READ_SECRET)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["ledger"]["revision"], 3);
    let before = v["data"]["ledger"].clone();
    // A write token may read too.
    let (status, v) = app.post(q, json!({}), Some(WRITE_SECRET)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["ledger"], before);

    let input = json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S1", "1") });
    let (status, v) = app.post(PUBLISH, input.clone(), Some(READ_SECRET)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(code(&v), "FORBIDDEN", "{v}");
    let (status, _) = app.post(PUBLISH, input, None).await;
    assert_eq!(status, 401);
    let (_, v) = app.post(q, json!({}), Some(READ_SECRET)).await;
    assert_eq!(v["data"]["ledger"], before, "nothing was written");
}
