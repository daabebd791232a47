//! Hostile inputs: a corpus of bad requests against a real server (tests/support). Each one
//! must get a clear error (an HTTP 4xx, or a GraphQL error with a known `extensions.code`
//! and a message), must leave the server up (`/healthz` answers 200), and none of them may
//! change the ledger. A table of what each class got is printed for the record
//! (`cargo test --test hostile -- --nocapture`).
//!
//! The second half keeps the inputs that fuzzing (fuzz/) found or guards, as regression
//! tests calling the same functions the fuzz targets call.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::*;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

/// Codes a hostile request may be answered with.
const CLEAR_CODES: [&str; 8] = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "CONFLICT",
    "NOT_FOUND",
    "LIMIT_EXCEEDED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
];

/// Longest wait for any one answer.
const WAIT: Duration = Duration::from_secs(30);
/// A refusal slower than this counts as a failure: hostile input must be cheap to refuse
/// (generous, for a debug build on a loaded 2-core machine).
const SLOW: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How a hostile request is sent.
enum Send {
    /// `POST /graphql` with a raw body, an optional `Content-Type` and `Authorization`.
    Raw {
        body: Vec<u8>,
        content_type: Option<&'static str>,
        authorization: Option<Vec<u8>>,
    },
    /// `GET /graphql?query=...`.
    Get { query: String },
    /// A WebSocket speaking graphql-transport-ws: optionally initialised, then one frame.
    Ws { init: bool, frame: Message },
}

struct Case {
    class: &'static str,
    name: String,
    send: Send,
    /// The code (or, for WebSockets, the close code) the case must get; `None` when any
    /// clear error will do.
    expect: Option<&'static str>,
}

/// What came back.
struct Outcome {
    status: u16,
    code: String,
    message: String,
}

fn case(class: &'static str, name: impl Into<String>, send: Send, expect: Option<&'static str>) -> Case {
    Case {
        class,
        name: name.into(),
        send,
        expect,
    }
}

fn raw(body: impl Into<Vec<u8>>, content_type: Option<&'static str>) -> Send {
    Send::Raw {
        body: body.into(),
        content_type,
        authorization: None,
    }
}

fn json_body(body: impl Into<Vec<u8>>) -> Send {
    raw(body, Some("application/json"))
}

/// A GraphQL request as JSON, with an optional bearer token.
fn gql(query: &str, variables: Value, token: Option<&str>) -> Send {
    Send::Raw {
        body: serde_json::to_vec(&json!({ "query": query, "variables": variables })).unwrap(),
        content_type: Some("application/json"),
        authorization: token.map(|t| format!("Bearer {t}").into_bytes()),
    }
}

fn query(q: &str) -> Send {
    gql(q, json!({}), None)
}

/// `publishRelease` with the write token and a release input adjusted by `edit`.
fn publish(edit: impl FnOnce(&mut Value)) -> Send {
    let mut input = release_input("6b1f0c2e-4d3a-4e51-9a57-00000000bad0", "IPR._T._T", "2025-S2", "-1");
    edit(&mut input);
    gql(PUBLISH, json!({ "input": input }), Some(WRITE_SECRET))
}

fn observation_field(field: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |input| input["observations"][0][field] = value
}

/// A `publishRelease` whose arguments are written inline in the document (no variables).
fn publish_inline(value_literal: &str, period_literal: &str, published_at: &str) -> Send {
    let q = format!(
        r#"mutation {{ publishRelease(input: {{ dataset: "{DATASET}", status: REVISED, title: "SYNTHETIC hostile",
           publishedAt: {published_at}, observations: [{{ key: "IPR._T._T", period: {period_literal}, value: {value_literal} }}] }})
           {{ revision }} }}"#
    );
    gql(&q, json!({}), Some(WRITE_SECRET))
}

/// Every hostile request, by class.
fn corpus() -> Vec<Case> {
    let ok_query = r#"{"query": "{ ledger { revision } }"}"#;
    let mut cases = vec![
        // Malformed JSON.
        case(
            "malformed JSON",
            "truncated",
            json_body(&ok_query[..20]),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "trailing garbage",
            json_body(format!("{ok_query} }}garbage")),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "invalid UTF-8",
            json_body(b"{\"query\": \"{ ledger \xff\xfe { revision } }\"}".to_vec()),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "raw NUL byte in a string",
            json_body(b"{\"query\": \"{ ledger\x00 { revision } }\"}".to_vec()),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "escaped NUL in the query",
            query("{ ledger\u{0} { revision } }"),
            Some("GRAPHQL_PARSE_FAILED"),
        ),
        case("malformed JSON", "empty body", json_body(""), Some("BAD_USER_INPUT")),
        case(
            "malformed JSON",
            "a number, not an object",
            json_body("42"),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "query is not a string",
            json_body(r#"{"query": 5}"#),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "malformed JSON",
            "variables is an array",
            json_body(r#"{"query": "{ ledger { revision } }", "variables": [1]}"#),
            Some("BAD_USER_INPUT"),
        ),
        // Content types.
        case(
            "wrong content type",
            "text/plain",
            raw(ok_query, Some("text/plain")),
            None,
        ),
        case(
            "wrong content type",
            "form-urlencoded",
            raw(
                "query=%7B+ledger+%7B+revision+%7D+%7D",
                Some("application/x-www-form-urlencoded"),
            ),
            None,
        ),
        case(
            "wrong content type",
            "multipart",
            raw(
                "--b\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n--b--\r\n",
                Some("multipart/form-data; boundary=b"),
            ),
            None,
        ),
        case("wrong content type", "missing", raw(ok_query, None), None),
        case(
            "wrong content type",
            "application/graphql",
            raw("{ ledger { revision } }", Some("application/graphql")),
            None,
        ),
        // Sizes.
        case(
            "huge body",
            "3 MiB string",
            json_body(format!(
                r#"{{"query": "{{ ledger {{ revision }} }}", "extensions": {{"pad": "{}"}}}}"#,
                "x".repeat(3 << 20)
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "huge body",
            "3 MiB of whitespace",
            json_body(format!("{}{ok_query}", " ".repeat(3 << 20))),
            Some("LIMIT_EXCEEDED"),
        ),
        // Document shapes.
        case(
            "deep nesting",
            "depth 50 (introspection ofType)",
            query(&format!(
                "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }}",
                "ofType { ".repeat(46),
                "} ".repeat(46)
            )),
            None,
        ),
        case(
            "deep nesting",
            "depth 50 (unknown fields)",
            query(&format!("{}{}", "{ a ".repeat(50), "}".repeat(50))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "aliases",
            "500 aliases",
            query(&format!(
                "{{ {} }}",
                (0..500)
                    .map(|i| format!("a{i}: ledger {{ revision }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "__typename flood",
            "5000 __typename",
            query(&format!("{{ {} }}", "__typename ".repeat(5000))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "__typename flood",
            "300 000 __typename (1.8 MiB)",
            query(&format!("{{ {} }}", "__typename ".repeat(180_000))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "fragments",
            "cycle",
            query("{ ...A } fragment A on Query { ledger { revision } ...B } fragment B on Query { ...A }"),
            None,
        ),
        case(
            "fragments",
            "self-spread",
            query("{ ...A } fragment A on Query { ...A }"),
            None,
        ),
        case(
            "fragments",
            "bomb (2^30 expansions)",
            query(&{
                let mut q = String::from("{ ...F0 } fragment F30 on Query { __typename }");
                for i in 0..30 {
                    q.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
                }
                q
            }),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "fragments",
            "unknown fragment",
            query("{ ...Nope }"),
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
        // Batches.
        case(
            "batch",
            "11 items",
            json_body(format!("[{}]", vec![ok_query; 11].join(","))),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "batch",
            "1000 items",
            json_body(format!("[{}]", vec![ok_query; 1000].join(","))),
            Some("LIMIT_EXCEEDED"),
        ),
        case("batch", "empty", json_body("[]"), Some("BAD_USER_INPUT")),
        case(
            "batch",
            "item not an object",
            json_body(format!("[{ok_query}, 7]")),
            Some("BAD_USER_INPUT"),
        ),
        // Introspection floods.
        case(
            "introspection flood",
            "100 aliased __schema",
            query(&format!(
                "{{ {} }}",
                (0..100)
                    .map(|i| format!("s{i}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        case(
            "introspection flood",
            "__type with 200 aliased fields lists",
            query(&format!(
                "{{ {} }}",
                (0..200)
                    .map(|i| format!("t{i}: __type(name: \"Query\") {{ fields {{ name type {{ name }} }} }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Some("LIMIT_EXCEEDED"),
        ),
        // Scalars.
        case(
            "invalid Decimal",
            "\"1e400\"",
            publish(observation_field("value", json!("1e400"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "\"NaN\"",
            publish(observation_field("value", json!("NaN"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "\"Infinity\"",
            publish(observation_field("value", json!("Infinity"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "1.5 as a JSON number",
            publish(observation_field("value", json!(1.5))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "35 nines",
            publish(observation_field("value", json!("99999999999999999999999999999999999"))),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "1.5 inline literal",
            publish_inline("1.5", "\"2025-S2\"", "\"2026-01-15T00:00:00Z\""),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "\"1e400\" inline literal",
            publish_inline("\"1e400\"", "\"2025-S2\"", "\"2026-01-15T00:00:00Z\""),
            Some("BAD_USER_INPUT"),
        ),
        case(
            "invalid Decimal",
            "boolean",
            publish(observation_field("value", json!(true))),
            Some("BAD_USER_INPUT"),
        ),
    ];
    for p in ["2025-S0", "2025-S3", "2025-13", "0000", ""] {
        cases.push(case(
            "invalid Period",
            format!("{p:?} in a release"),
            publish(observation_field("period", json!(p))),
            Some("BAD_USER_INPUT"),
        ));
    }
    cases.extend([
        case("invalid Period", "\"2025-S3\" as a query argument", query(&format!(r#"{{ observation(dataset: "{DATASET}", key: "_T._T._T", period: "2025-S3") {{ value }} }}"#)), Some("BAD_USER_INPUT")),
        case("invalid Period", "\"2025-13\" inline in a release", publish_inline("\"1\"", "\"2025-13\"", "\"2026-01-15T00:00:00Z\""), Some("BAD_USER_INPUT")),
        case("invalid UUID", "\"not-a-uuid\" as release(id:)", query(r#"{ release(id: "not-a-uuid") { id } }"#), Some("BAD_USER_INPUT")),
        case("invalid UUID", "\"not-a-uuid\" as a release id", publish(|i| i["id"] = json!("not-a-uuid")), Some("BAD_USER_INPUT")),
        case("invalid DateTime", "\"yesterday\" as publishedAt", publish(|i| i["publishedAt"] = json!("yesterday")), Some("BAD_USER_INPUT")),
        case("invalid DateTime", "\"yesterday\" inline", publish_inline("\"1\"", "\"2025-S2\"", "\"yesterday\""), Some("BAD_USER_INPUT")),
        case("invalid DateTime", "\"yesterday\" in asOf", query(&format!(r#"{{ observation(dataset: "{DATASET}", key: "_T._T._T", period: "2025-S1", asOf: {{ publishedAt: "yesterday" }}) {{ value }} }}"#)), Some("BAD_USER_INPUT")),
        // Keys, codes and datasets.
        case("key arity", "2 parts in a release", publish(observation_field("key", json!("IPR._T"))), Some("BAD_USER_INPUT")),
        case("key arity", "4 parts in a release", publish(observation_field("key", json!("IPR._T._T._T"))), Some("BAD_USER_INPUT")),
        case("key arity", "1 part in observation(key:)", query(&format!(r#"{{ observation(dataset: "{DATASET}", key: "IPR", period: "2025-S1") {{ value }} }}"#)), Some("BAD_USER_INPUT")),
        case("unknown code", "XXX in a release", publish(observation_field("key", json!("IPR.XXX._T"))), Some("BAD_USER_INPUT")),
        case("unknown code", "lower-case code", publish(observation_field("key", json!("ipr._T._T"))), Some("BAD_USER_INPUT")),
        case("unknown code", "in an observations filter", query(&format!(r#"{{ observations(dataset: "{DATASET}", filter: {{ key: "MARS.._T" }}) {{ totalCount }} }}"#)), None),
        case("unknown code", "unknown measure", publish(observation_field("measure", json!("PROFIT"))), Some("BAD_USER_INPUT")),
        case("unknown code", "unknown dataset in a release", publish(|i| i["dataset"] = json!("NOPE")), Some("BAD_USER_INPUT")),
        case("unknown code", "unknown dimension in breakdown", query(&format!(r#"{{ breakdown(dataset: "{DATASET}", dimension: "COLOUR", period: "2025-S1") {{ sumOfItems }} }}"#)), None),
        // Control characters.
        case("control characters", "NUL in a key", publish(observation_field("key", json!("IPR\u{0}._T._T"))), Some("BAD_USER_INPUT")),
        case("control characters", "BEL in a key", publish(observation_field("key", json!("IPR._T._T\u{7}"))), Some("BAD_USER_INPUT")),
        case("control characters", "RTL override in a key", publish(observation_field("key", json!("\u{202e}IPR._T._T"))), Some("BAD_USER_INPUT")),
        case("control characters", "NUL in a title", publish(|i| i["title"] = json!("SYNTHETIC\u{0} hostile")), Some("BAD_USER_INPUT")),
        case("control characters", "BEL in a title", publish(|i| i["title"] = json!("SYNTHETIC\u{7} hostile")), Some("BAD_USER_INPUT")),
        case("control characters", "ESC sequence in a source", publish(|i| i["source"] = json!("\u{1b}[31mred")), Some("BAD_USER_INPUT")),
        case("control characters", "title of only whitespace", publish(|i| i["title"] = json!(" \t ")), Some("BAD_USER_INPUT")),
        case("control characters", "NUL in a dataset argument", query("{ observations(dataset: \"KR\u{0}\") { totalCount } }"), None),
        // Authorization.
        case("auth", "mutation without a token", gql(PUBLISH, json!({ "input": release_input("6b1f0c2e-4d3a-4e51-9a57-00000000bad1", "IPR._T._T", "2025-S2", "-1") }), None), Some("UNAUTHENTICATED")),
        case("auth", "mutation with a wrong token", gql(PUBLISH, json!({ "input": release_input("6b1f0c2e-4d3a-4e51-9a57-00000000bad2", "IPR._T._T", "2025-S2", "-1") }), Some("not-the-secret")), Some("UNAUTHENTICATED")),
        case("auth", "Basic instead of Bearer", Send::Raw { body: serde_json::to_vec(&json!({ "query": PUBLISH, "variables": { "input": release_input("6b1f0c2e-4d3a-4e51-9a57-00000000bad3", "IPR._T._T", "2025-S2", "-1") } })).unwrap(), content_type: Some("application/json"), authorization: Some(b"Basic dGVzdGVyOnRlc3Qtd3JpdGUtc2VjcmV0".to_vec()) }, Some("UNAUTHENTICATED")),
        case("auth", "Bearer without a token", Send::Raw { body: ok_query.into(), content_type: Some("application/json"), authorization: Some(b"Bearer".to_vec()) }, Some("UNAUTHENTICATED")),
        case("auth", "non-ASCII bytes in Authorization", Send::Raw { body: ok_query.into(), content_type: Some("application/json"), authorization: Some(b"Bearer \xfftest-write-secret".to_vec()) }, Some("UNAUTHENTICATED")),
        case("auth", "secret with the name prefix", gql(PUBLISH, json!({ "input": release_input("6b1f0c2e-4d3a-4e51-9a57-00000000bad4", "IPR._T._T", "2025-S2", "-1") }), Some(&format!("tester:{WRITE_SECRET}"))), Some("UNAUTHENTICATED")),
        case("auth", "mutation over GET", Send::Get { query: format!("mutation {{ publishRelease(input: {{ dataset: \"{DATASET}\", status: REVISED, title: \"x\", publishedAt: \"2026-01-15T00:00:00Z\", observations: [{{ key: \"IPR._T._T\", period: \"2025-S2\", value: \"1\" }}] }}) {{ revision }} }}") }, None),
        // Documents and variables.
        case("query", "unknown field", query("{ nope }"), Some("GRAPHQL_VALIDATION_FAILED")),
        case("query", "unknown argument", query("{ ledger(colour: 1) { revision } }"), Some("GRAPHQL_VALIDATION_FAILED")),
        case("query", "syntax error", query("{ ledger { revision "), Some("GRAPHQL_PARSE_FAILED")),
        case("query", "empty document", query(""), Some("GRAPHQL_PARSE_FAILED")),
        case("query", "unknown operationName", json_body(r#"{"query": "query A { ledger { revision } }", "operationName": "B"}"#), None),
        case("query", "undeclared variable", query("{ releases(first: $n) { totalCount } }"), None),
        case("query", "string for an Int variable", gql("query($n: Int) { releases(first: $n) { totalCount } }", json!({ "n": "ten" }), None), Some("BAD_USER_INPUT")),
        case("query", "missing required variable", gql("query($d: ID!) { dataset(id: $d) { id } }", json!({}), None), Some("BAD_USER_INPUT")),
        case("query", "object for a String variable", gql("query($k: String!) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $k, period: \"2025-S1\") { value } }", json!({ "k": { "a": 1 } }), None), Some("BAD_USER_INPUT")),
        case("query", "unknown enum value", query("{ releases(status: DRAFT) { totalCount } }"), None),
        case("query", "subscription over HTTP POST", query("subscription { releasePublished { revision } }"), None),
        // Pagination.
        case("pagination", "first: -1", query("{ releases(first: -1) { totalCount } }"), Some("BAD_USER_INPUT")),
        case("pagination", "first: 2147483647", query("{ releases(first: 2147483647) { totalCount } }"), Some("BAD_USER_INPUT")),
        case("pagination", "first beyond Int", query("{ releases(first: 99999999999) { totalCount } }"), None),
        case("pagination", "observations first: -5", query(&format!(r#"{{ observations(dataset: "{DATASET}", first: -5) {{ totalCount }} }}"#)), Some("BAD_USER_INPUT")),
        case("pagination", "garbage after cursor", query(r#"{ releases(after: "garbage!") { totalCount } }"#), Some("BAD_USER_INPUT")),
        case("pagination", "garbage observations cursor", query(&format!(r#"{{ observations(dataset: "{DATASET}", after: "////") {{ totalCount }} }}"#)), Some("BAD_USER_INPUT")),
        case("pagination", "huge base64 cursor", query(&format!(r#"{{ observations(dataset: "{DATASET}", after: "{}") {{ totalCount }} }}"#, "QUFB".repeat(10_000))), Some("BAD_USER_INPUT")),
        case("pagination", "events after: -5", query("{ events(after: -5) { totalCount } }"), Some("BAD_USER_INPUT")),
        // WebSocket frames.
        case("websocket", "invalid JSON", Send::Ws { init: false, frame: Message::text("{not json") }, Some("4400")),
        case("websocket", "invalid JSON after init", Send::Ws { init: true, frame: Message::text("[1, 2") }, Some("4400")),
        case("websocket", "binary frame", Send::Ws { init: false, frame: Message::binary(b"\x00\x01\x02".to_vec()) }, Some("4400")),
        case("websocket", "binary frame after init", Send::Ws { init: true, frame: Message::binary(br#"{"type":"ping"}"#.to_vec()) }, Some("4400")),
        case("websocket", "unknown message type", Send::Ws { init: true, frame: Message::text(r#"{"type":"hello"}"#) }, Some("4400")),
        case("websocket", "subscribe before init", Send::Ws { init: false, frame: Message::text(r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { releasePublished { revision } }"}}"#) }, Some("4401")),
        case("websocket", "second connection_init", Send::Ws { init: true, frame: Message::text(r#"{"type":"connection_init"}"#) }, Some("4429")),
        case("websocket", "connection_init payload is a string", Send::Ws { init: false, frame: Message::text(r#"{"type":"connection_init","payload":"x"}"#) }, Some("4400")),
        case("websocket", "connection_init with a wrong token", Send::Ws { init: false, frame: Message::text(r#"{"type":"connection_init","payload":{"authorization":"Bearer nope"}}"#) }, Some("4403")),
    ]);
    cases
}

/// Sends one request; the outcome, or a description of a transport failure.
async fn run(app: &TestApp, send: Send) -> Result<Outcome, String> {
    match send {
        Send::Raw {
            body,
            content_type,
            authorization,
        } => {
            let mut req = app.client.post(&app.url).timeout(WAIT).body(body);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            if let Some(a) = authorization {
                let value = reqwest::header::HeaderValue::from_bytes(&a).map_err(|e| e.to_string())?;
                req = req.header("authorization", value);
            }
            http_outcome(req.send().await.map_err(|e| format!("request failed: {e}"))?).await
        }
        Send::Get { query } => {
            let req = app.client.get(&app.url).timeout(WAIT).query(&[("query", query)]);
            http_outcome(req.send().await.map_err(|e| format!("request failed: {e}"))?).await
        }
        Send::Ws { init, frame } => ws_outcome(app, init, frame).await,
    }
}

async fn http_outcome(resp: reqwest::Response) -> Result<Outcome, String> {
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("reading the body failed: {e}"))?;
    let (code, message) = match serde_json::from_str::<Value>(&text) {
        Ok(v) => {
            if v.get("errors").is_none() {
                return Err(format!("HTTP {status} without errors: {}", truncate(&text)));
            }
            let e = &v["errors"][0];
            (
                e["extensions"]["code"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        }
        // A plain-text 4xx still counts when it says something.
        Err(_) => (String::new(), text),
    };
    Ok(Outcome { status, code, message })
}

async fn ws_outcome(app: &TestApp, init: bool, frame: Message) -> Result<Outcome, String> {
    let mut request = app.ws_url.as_str().into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = timeout(WAIT, connect_async(request))
        .await
        .map_err(|_| "upgrade timed out".to_owned())?
        .map_err(|e| format!("upgrade failed: {e}"))?;
    if init {
        ws_send(&mut ws, Message::text(r#"{"type":"connection_init"}"#)).await?;
        match ws_next(&mut ws).await? {
            Message::Text(t) if t.as_str().contains("connection_ack") => {}
            other => return Err(format!("expected connection_ack, got {other:?}")),
        }
    }
    ws_send(&mut ws, frame).await?;
    loop {
        match ws_next(&mut ws).await? {
            Message::Close(Some(f)) => {
                return Ok(Outcome {
                    status: 101,
                    code: u16::from(f.code).to_string(),
                    message: f.reason.to_string(),
                })
            }
            Message::Close(None) => return Err("closed without a code".into()),
            Message::Text(t) if t.as_str().contains("\"ping\"") => continue,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Err(format!("expected a close frame, got {other:?}")),
        }
    }
}

async fn ws_send(ws: &mut Ws, frame: Message) -> Result<(), String> {
    timeout(WAIT, ws.send(frame))
        .await
        .map_err(|_| "send timed out".to_owned())?
        .map_err(|e| format!("send failed: {e}"))
}

async fn ws_next(ws: &mut Ws) -> Result<Message, String> {
    match timeout(WAIT, ws.next()).await {
        Err(_) => Err("timed out waiting for the server".into()),
        Ok(None) => Err("the connection ended without a close frame".into()),
        Ok(Some(Err(e))) => Err(format!("the connection failed: {e}")),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Why an outcome is not a clear error, if it is not.
fn judge(websocket: bool, expect: Option<&str>, o: &Outcome) -> Option<String> {
    if o.message.trim().is_empty() {
        return Some("the error has no message".into());
    }
    if websocket {
        let expected = expect.expect("WebSocket cases name their close code");
        return (o.code != expected).then(|| format!("expected close {expected}, got {}", o.code));
    }
    if o.status >= 500 {
        return Some(format!("server error {}", o.status));
    }
    let clear = (400..500).contains(&o.status) || CLEAR_CODES.contains(&o.code.as_str());
    if !clear {
        return Some(format!("HTTP {} with code {:?} is not a clear error", o.status, o.code));
    }
    if !o.code.is_empty() && !CLEAR_CODES.contains(&o.code.as_str()) && !(400..500).contains(&o.status) {
        return Some(format!("unexpected code {:?}", o.code));
    }
    match expect {
        Some(expected) if o.code != expected => Some(format!("expected code {expected}, got {:?}", o.code)),
        _ => None,
    }
}

async fn healthz(app: &TestApp) -> u16 {
    match app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .timeout(WAIT)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Every hostile request gets a clear error, the server stays up, the ledger is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_errors_and_change_nothing() {
    let app = spawn_app().await;
    let head_before = app.head().await;
    let events_before = app.gql("{ ledger { eventCount } }", json!({})).await["data"]["ledger"]["eventCount"].clone();
    let cases = corpus();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for c in cases {
        let Case {
            class,
            name,
            send,
            expect,
        } = c;
        let websocket = matches!(send, Send::Ws { .. });
        let started = Instant::now();
        let result = run(&app, send).await;
        let elapsed = started.elapsed();
        let (status, code, mut verdict) = match result {
            Ok(o) => {
                let verdict = judge(websocket, expect, &o);
                (
                    o.status.to_string(),
                    o.code.clone(),
                    verdict.map(|v| format!("{v}; message: {}", truncate(&o.message))),
                )
            }
            Err(e) => ("-".into(), "-".into(), Some(e)),
        };
        if elapsed > SLOW {
            verdict = Some(format!(
                "{}took {} ms to refuse",
                verdict.map(|p| format!("{p}; ")).unwrap_or_default(),
                elapsed.as_millis()
            ));
        }
        let health = healthz(&app).await;
        let mut problem = verdict;
        if health != 200 {
            problem = Some(format!(
                "{}healthz answered {health} afterwards",
                problem.map(|p| format!("{p}; ")).unwrap_or_default()
            ));
        }
        if let Some(p) = &problem {
            failures.push(format!("[{class}] {name}: {p}"));
        }
        rows.push((class, name, status, code, elapsed.as_millis(), problem.is_none()));
    }

    println!("\n| class | input | status | code / close | ms |\n|---|---|---|---|---|");
    for (class, name, status, code, ms, ok) in &rows {
        let mark = if *ok { "" } else { " FAILED" };
        println!("| {class} | {name} | {status} | {code}{mark} | {ms} |");
    }
    println!("{} hostile inputs, {} failed\n", rows.len(), failures.len());

    assert_eq!(app.head().await, head_before, "the ledger head changed");
    let events_after = app.gql("{ ledger { eventCount } }", json!({})).await["data"]["ledger"]["eventCount"].clone();
    assert_eq!(events_after, events_before, "the event count changed");
    assert!(
        failures.is_empty(),
        "{} hostile inputs were not refused clearly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A release title with a Unicode bidi override (U+202E, "Trojan Source" style) is stored and
/// served as it is: `ReleaseDraft::validate` refuses only `char::is_control` (category Cc),
/// and the bidi controls are format characters (Cf). Titles and sources end up in audit
/// logs and UIs, where such a character reverses the text shown after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "BUG: bidi override (U+202E) and other Cf format characters are accepted in release titles and sources (src/domain/release.rs, ReleaseDraft::validate)"]
async fn bidi_override_in_a_title_is_refused() {
    let app = spawn_app().await;
    let head = app.head().await;
    for (field, text) in [
        ("title", "SYNTHETIC \u{202e}esaeler"),
        ("title", "SYNTHETIC \u{2066}isolate\u{2069}"),
        ("source", "tests \u{202e}txt.exe"),
    ] {
        let mut input = release_input("6b1f0c2e-4d3a-4e51-9a57-00000000b1d1", "IPR._T._T", "2025-S2", "-1");
        input[field] = json!(text);
        let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
        assert_eq!(
            v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{field} {text:?} was accepted: {v}"
        );
    }
    assert_eq!(app.head().await, head);
}
