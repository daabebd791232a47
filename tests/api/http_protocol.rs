//! The GraphQL-over-HTTP rules (content negotiation, status codes, media types, methods),
//! the request limits, health and metrics, and graceful shutdown, over real HTTP.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tradeledger::domain::{ObservationDraft, ReleaseDraft, ReleaseStatus};
use tradeledger::ledger::{Ledger, OpenOptions};
use tradeledger::store::{LogStore, SledStore};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const LEDGER_QUERY: &str = "{ ledger { revision } }";

fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// A mutation that would write revision 4 if it ran.
fn publish_body() -> Value {
    json!({
        "query": PUBLISH,
        "variables": { "input": release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000bb01", "_T._T._T", "2025-S1", "1") },
    })
}

/// POSTs `body` as JSON with the given `Accept` (reqwest sends `*/*` when `None`).
async fn post_accept(app: &TestApp, accept: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .json(body);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.expect("request")
}

/// GETs the endpoint with query-string `params` and the given `Accept` (reqwest sends `*/*`
/// when `None`).
async fn get_accept(app: &TestApp, params: &[(&str, &str)], accept: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(&app.url).query(params);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.expect("request")
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The name of the query root type, as introspection reports it.
async fn query_type_name(app: &TestApp) -> String {
    let v = app.gql("{ __schema { queryType { name } } }", json!({})).await;
    v["data"]["__schema"]["queryType"]["name"]
        .as_str()
        .expect("query type name")
        .to_owned()
}

/// A response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one HTTP/1.1 response (headers, then a `content-length` body or up to EOF).
async fn read_response(reader: &mut (impl AsyncReadExt + Unpin)) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = reader.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap());
    match length {
        Some(len) => {
            while body.len() < len {
                let n = reader.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "connection closed in the body");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            reader.read_to_end(&mut body).await.expect("read body");
        }
    }
    RawResponse { status, headers, body }
}

/// Sends raw bytes and reads the response: for requests reqwest will not make (no `Accept`).
async fn raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    read_response(&mut stream).await
}

fn raw_post(addr: SocketAddr, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A `Transfer-Encoding: chunked` request head (no `Content-Length`).
fn chunked_head(addr: SocketAddr, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json\r\n{extra_headers}Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

// ---------------------------------------------------------------------------------------
// Accept negotiation

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

// ---------------------------------------------------------------------------------------
// Media types of requests, malformed bodies

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

async fn post_raw_body(app: &TestApp, accept: &str, body: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
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
            let (status, v) = post_raw_body(&app, accept, body).await;
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
            let (status, v) = post_raw_body(&app, accept, &body.to_string()).await;
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
        let (status, v) = post_raw_body(&app, "application/json", &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(code(&v), "BAD_USER_INPUT");
    }
    // null variables are the same as none.
    let (status, v) = post_raw_body(
        &app,
        "application/json",
        &json!({ "query": "{ __typename }", "variables": null }).to_string(),
    )
    .await;
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

// ---------------------------------------------------------------------------------------
// Limits

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
    let (status, v) = post_raw_body(&app, "application/json", &batch.to_string()).await;
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
    let (status, v) = post_raw_body(&app, "application/json", &Value::Array(ten).to_string()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 10);

    let eleven: Vec<Value> = (0..11).map(|_| json!({ "query": "{ __typename }" })).collect();
    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let (status, v) = post_raw_body(&app, accept, &Value::Array(eleven.clone()).to_string()).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(code(&v), "LIMIT_EXCEEDED", "{v}");
    }
    let (status, v) = post_raw_body(&app, "application/json", "[]").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post_raw_body(&app, "application/json", "[1]").await;
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
    let (status, v) = post_raw_body(&small, "application/json", &Value::Array(three).to_string()).await;
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
    let (status, _) = post_raw_body(&app, "application/json", &exact).await;
    assert_eq!(status, 200);
    body["extensions"]["padding"] = json!("x".repeat(1025 - overhead));
    let (status, v) = post_raw_body(&app, "application/json", &body.to_string()).await;
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

// ---------------------------------------------------------------------------------------
// Health and metrics

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
