//! Issue 10, items 1, 8, 9 and 11: the front door.
//!
//! 1. A list or object literal nested 2,000 deep (about 3 KB) overflowed a runtime thread's
//!    stack in async-graphql's parser and aborted the process, over GET (before any token
//!    check), POST, a batch and a WebSocket `subscribe`. Each is now refused with 400 /
//!    `LIMIT_EXCEEDED` by the guard before parsing, and the same process keeps serving.
//! 8. Ten figures at 9999999999999999999999999999 under `_T` made `breakdown` panic on
//!    "Addition overflowed": such values are refused at publish time.
//! 9. With `--no-introspection`, validation errors no longer suggest names.
//! 11. A title made only of zero-width joiners is refused.

use std::path::Path;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{timeout, Duration};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::proc_support::{release_input, Server, PUBLISH};

const WRITER: &str = "writer:frontdoor-secret";
const WRITE_SECRET: &str = "frontdoor-secret";
const DEPTH: usize = 2_000;
const RECV: Duration = Duration::from_secs(20);
const INTROSPECTION: &str = include_str!("../../fuzz/corpus/front_door/introspection.graphql");

/// `{ ledger(x: [[[...]]]) { revision } }` with the list nested `depth` deep.
fn deep_list(depth: usize) -> String {
    format!(
        "{{ ledger(x: {}{}) {{ revision }} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// `{ ledger(x: {a: {a: ... 1}}) { revision } }` with the object nested `depth` deep.
fn deep_object(depth: usize) -> String {
    format!(
        "{{ ledger(x: {}1{}) {{ revision }} }}",
        "{a: ".repeat(depth),
        "}".repeat(depth)
    )
}

async fn start(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--write-tokens", WRITER];
    args.extend_from_slice(extra);
    Server::start(dir, &args).await
}

/// Asserts a refusal by the front door: 400, `LIMIT_EXCEEDED`, a message with `needle`.
fn assert_refused(what: &str, status: u16, body: &Value, needle: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    let e = &body["errors"][0];
    assert_eq!(e["extensions"]["code"], "LIMIT_EXCEEDED", "{what}: {body}");
    let message = e["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what}: `{message}` should mention `{needle}`"
    );
}

/// The same process is still up and serving.
async fn assert_alive(server: &mut Server) {
    assert!(
        server.child.try_wait().is_none(),
        "the server died:\n{}",
        server.stderr()
    );
    let url = format!("http://{}/healthz", server.addr);
    let resp = server.client.get(&url).send().await.expect("healthz answers");
    assert_eq!(resp.status().as_u16(), 200);
}

async fn get(server: &Server, query: &str, variables: Option<&str>, token: Option<&str>) -> (u16, Value) {
    let mut params = vec![("query", query)];
    if let Some(v) = variables {
        params.push(("variables", v));
    }
    let mut req = server
        .client
        .get(&server.url)
        .query(&params)
        .header("accept", "application/json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET failed (did the server die?): {}", e.without_url()));
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

/// A 2,000-deep list or object literal over GET (with and without read tokens) is refused
/// before parsing, and the process keeps serving.
#[tokio::test]
async fn deep_literals_over_get_are_refused_before_any_token_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &["--read-tokens", "reader:frontdoor-reader"]).await;
    for (what, q) in [("list", deep_list(DEPTH)), ("object", deep_object(DEPTH))] {
        let (status, body) = get(&server, &q, None, None).await;
        assert_refused(
            &format!("GET {what}, no token"),
            status,
            &body,
            "deeper than the limit of 64",
        );
        let (status, body) = get(&server, &q, None, Some("frontdoor-reader")).await;
        assert_refused(
            &format!("GET {what}, read token"),
            status,
            &body,
            "deeper than the limit of 64",
        );
        assert_alive(&mut server).await;
    }
    // Below the bound, the request goes on to the token check as before.
    let (status, _) = get(&server, "{ ledger { revision } }", None, None).await;
    assert_eq!(status, 401);
}

/// The same literals over POST and inside a batch; deep variables too.
#[tokio::test]
async fn deep_literals_over_post_and_in_a_batch_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]).await;
    for (what, q) in [("list", deep_list(DEPTH)), ("object", deep_object(DEPTH))] {
        let (status, body) = server.post(&q, json!({}), None).await.expect("POST answers");
        assert_refused(&format!("POST {what}"), status, &body, "deeper than the limit of 64");
        let batch = json!([{ "query": "{ ledger { revision } }" }, { "query": q }]).to_string();
        let (status, body) = server.post_raw("application/json", batch).await.json();
        assert_refused(&format!("batch {what}"), status, &body, "batch item 1");
        assert_alive(&mut server).await;
    }
    // One level below the bound parses: it fails validation (no such argument), not the guard.
    let (_, body) = server.post(&deep_list(62), json!({}), None).await.unwrap();
    assert_ne!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
    assert_alive(&mut server).await;
}

/// Variables nested deeper than `--max-variables-depth` (or than serde_json's 128) and a
/// body of 100,000 `[` are refused with `LIMIT_EXCEEDED`.
#[tokio::test]
async fn deep_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]).await;
    let nested = |depth: usize| -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    };
    let q = "query($x: Int) { ledger { revision } }";
    let (status, body) = server.post(q, json!({ "x": nested(100) }), None).await.unwrap();
    assert_refused("POST variables", status, &body, "`variables` nests");
    let (status, body) = get(&server, q, Some(&json!({ "x": nested(100) }).to_string()), None).await;
    assert_refused("GET variables", status, &body, "`variables` nests");
    let body = json!({ "query": q, "extensions": { "x": nested(100) } }).to_string();
    let (status, body) = server.post_raw("application/json", body).await.json();
    assert_refused("POST extensions", status, &body, "`extensions` nests");
    let body = format!(
        r#"{{"query": "{{ ledger {{ revision }} }}", "variables": {{"x": {}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let (status, body) = server.post_raw("application/json", body).await.json();
    assert_refused("POST 200-deep variables", status, &body, "128");
    let (status, body) = server.post_raw("application/json", "[".repeat(100_000)).await.json();
    assert_refused("POST 100,000 [", status, &body, "128");
    let many = json!({ "x": vec![0; 100_001] });
    let (status, body) = server.post(q, many, None).await.unwrap();
    assert_refused("POST 100,001 values", status, &body, "100000 JSON values");
    assert_alive(&mut server).await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a `graphql-transport-ws` connection and waits for its `connection_ack`.
async fn ws_connect(server: &Server) -> Ws {
    let mut request = format!("ws://{}/graphql/ws", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = timeout(RECV, tokio_tungstenite::connect_async(request))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    ws_send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(ws_recv(&mut ws).await["type"], "connection_ack");
    ws
}

async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next protocol message, keep-alive pings skipped; panics if the connection ends.
async fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        match timeout(RECV, ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["type"] != "ping" {
                    return v;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

/// A deep literal in a WebSocket `subscribe` is an `error` for that id (`LIMIT_EXCEEDED`);
/// the connection stays and serves the next operation.
#[tokio::test]
async fn deep_literals_over_websocket_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]).await;
    let mut ws = ws_connect(&server).await;
    for (id, q) in [("list", deep_list(DEPTH)), ("object", deep_object(DEPTH))] {
        ws_send(&mut ws, json!({"type": "subscribe", "id": id, "payload": {"query": q}})).await;
        let v = ws_recv(&mut ws).await;
        assert_eq!((&v["type"], &v["id"]), (&json!("error"), &json!(id)), "{v}");
        assert_eq!(v["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{v}");
        let message = v["payload"][0]["message"].as_str().unwrap();
        assert!(message.contains("deeper than the limit of 64"), "{message}");
    }
    // Deep variables in a subscribe too.
    let mut x = json!(1);
    for _ in 0..100 {
        x = json!([x]);
    }
    let q = "query($x: Int) { ledger { revision } }";
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "id": "vars", "payload": {"query": q, "variables": {"x": x}}}),
    )
    .await;
    let v = ws_recv(&mut ws).await;
    assert_eq!(v["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{v}");
    // The same connection still runs operations.
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "id": "ok", "payload": {"query": "{ ledger { revision } }"}}),
    )
    .await;
    let v = ws_recv(&mut ws).await;
    assert_eq!((&v["type"], &v["id"]), (&json!("next"), &json!("ok")), "{v}");
    assert!(v["payload"]["data"]["ledger"]["revision"].as_u64().is_some(), "{v}");
    assert_alive(&mut server).await;
}

/// The standard introspection query (what GraphiQL sends) passes the front door and the
/// depth limit at their defaults and runs: graphql-js's `getIntrospectionQuery()` (16.15,
/// kept verbatim in `tests/abuse/introspection-graphql-js.graphql`; its `TypeRef` fragment
/// makes it 14 selection sets deep), the same with every option on, and GraphiQL's variant.
/// Data queries stay under `--max-depth`: one 13 levels deep is still refused.
#[tokio::test]
async fn the_introspection_query_passes_at_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    for (name, query) in [
        ("graphql-js", include_str!("introspection-graphql-js.graphql")),
        (
            "graphql-js, every option",
            include_str!("introspection-graphql-js-all-options.graphql"),
        ),
        ("GraphiQL", INTROSPECTION),
    ] {
        let (status, body) = server.post(query, json!({}), None).await.expect("introspection");
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body["errors"].is_null(), "{name}: {body}");
        assert!(
            body["data"]["__schema"]["types"]
                .as_array()
                .is_some_and(|t| t.len() > 10),
            "{name}: {body}"
        );
    }
    // Outside introspection the default depth of 12 holds (the walk runs before validation,
    // so the field names need not exist).
    let thirteen = format!("{{ {}x{} }}", "a { ".repeat(12), " }".repeat(12));
    let (status, body) = server.post(&thirteen, json!({}), None).await.expect("deep query");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("limit of 12"),
        "{body}"
    );
    // And introspection has a bound of its own.
    let too_deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(13),
        " }".repeat(13)
    );
    let (status, body) = server
        .post(&too_deep, json!({}), None)
        .await
        .expect("deep introspection");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
}

const DEFINE: &str = "mutation($input: DatasetInput!) { defineDataset(input: $input) { id } }";
const TEN_CODES: &str = "SYNTHETIC_TEN_CODES";

/// A SYNTHETIC dataset with ten codes under `_T` in its one dimension.
fn ten_codes() -> Value {
    let mut codes = vec![json!({"code": "_T", "label": "All"})];
    codes.extend(
        (0..10).map(|i| json!({"code": format!("C{i}"), "label": format!("SYNTHETIC code {i}"), "parent": "_T"})),
    );
    json!({"input": {
        "id": TEN_CODES,
        "name": "SYNTHETIC ten codes for the overflow test",
        "publisher": "tests",
        "unit": "USD",
        "unitMultiplier": 6,
        "dimensions": [{"id": "ITEM", "label": "Item", "codes": codes}],
        "measures": ["BAL"]
    }})
}

fn ten_values(value: &str) -> Value {
    let observations: Vec<Value> = (0..10)
        .map(|i| json!({"key": format!("C{i}"), "period": "2025-S1", "value": value}))
        .collect();
    json!({"input": {
        "dataset": TEN_CODES,
        "status": "PRELIMINARY",
        "title": "SYNTHETIC ten large values",
        "publishedAt": "2026-01-15T00:00:00Z",
        "observations": observations
    }})
}

const BREAKDOWN: &str = "{ breakdown(dataset: \"SYNTHETIC_TEN_CODES\", dimension: \"ITEM\", period: \"2025-S1\") {
    items { key } sumOfItems } }";

/// Ten codes at 9999999999999999999999999999 would overflow a breakdown's sum: publishing
/// them is refused (`BAD_USER_INPUT` naming the value and the bound), nothing is recorded, and
/// values at the bound add up.
#[tokio::test]
async fn values_whose_sums_could_overflow_are_refused_at_publish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]).await;
    let (_, body) = server.post(DEFINE, ten_codes(), Some(WRITE_SECRET)).await.unwrap();
    assert_eq!(body["data"]["defineDataset"]["id"], TEN_CODES, "{body}");
    let head = server.query("{ ledger { revision } }", json!({})).await["ledger"]["revision"].clone();
    let (_, body) = server
        .post(PUBLISH, ten_values("9999999999999999999999999999"), Some(WRITE_SECRET))
        .await
        .unwrap();
    let e = &body["errors"][0];
    assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(e["extensions"]["field"], "observations[0].value", "{body}");
    assert!(e["message"].as_str().unwrap().contains("10^20"), "{body}");
    let after = server.query("{ ledger { revision } }", json!({})).await["ledger"]["revision"].clone();
    assert_eq!(head, after, "nothing recorded");
    // The breakdown still answers (nothing published: a sum of zero).
    let data = server.query(BREAKDOWN, json!({})).await;
    assert_eq!(data["breakdown"]["sumOfItems"], "0", "{data}");
    // Ten values at the bound are accepted, and their sum fits.
    let (_, body) = server
        .post(PUBLISH, ten_values("-100000000000000000000"), Some(WRITE_SECRET))
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let data = server.query(BREAKDOWN, json!({})).await;
    assert_eq!(data["breakdown"]["sumOfItems"], "-1000000000000000000000", "{data}");
    assert_eq!(data["breakdown"]["items"].as_array().unwrap().len(), 10);
    assert_alive(&mut server).await;
}

/// Misspelt names a client might guess with.
const GUESSES: [&str; 3] = [
    "{ ledgr { revision } }",
    "mutation { publishRelese(input: {}) { revision } }",
    "{ datasets { dimensions { cods { code } } } }",
];
const GUESS_WS: &str = "subscription { releasePublishd { revision } }";

/// Every answer to the misspelt names, over HTTP and WebSocket, as text.
async fn answers_to_guesses(server: &Server) -> Vec<String> {
    let mut out = Vec::new();
    for q in GUESSES {
        let (_, body) = server.post(q, json!({}), Some(WRITE_SECRET)).await.unwrap();
        assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{q}: {body}");
        out.push(body.to_string());
    }
    let mut ws = ws_connect(server).await;
    ws_send(
        &mut ws,
        json!({"type": "subscribe", "id": "1", "payload": {"query": GUESS_WS}}),
    )
    .await;
    let v = ws_recv(&mut ws).await;
    assert_eq!(v["type"], "error", "{v}");
    out.push(v.to_string());
    out
}

/// With `--no-introspection`, no answer suggests a name (`Did you mean`); with introspection
/// on, the same guesses do get suggestions (so the check can see them).
#[tokio::test]
async fn no_introspection_means_no_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--no-introspection"]).await;
    for answer in answers_to_guesses(&server).await {
        assert!(!answer.contains("Did you mean"), "{answer}");
    }
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let open = start(dir.path(), &[]).await;
    let answers = answers_to_guesses(&open).await;
    for (answer, name) in answers
        .iter()
        .zip(["ledger", "publishRelease", "codes", "releasePublished"])
    {
        assert!(answer.contains(&format!("Did you mean \\\"{name}\\\"")), "{answer}");
    }
}

/// Titles, sources and labels with nothing visible (zero-width joiners, spaces, combining
/// marks) are `BAD_USER_INPUT` naming the field, and nothing is recorded.
#[tokio::test]
async fn visibly_empty_text_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]).await;
    let head = server.query("{ ledger { revision } }", json!({})).await;
    for (field, text) in [
        ("title", "\u{200D}\u{200D}\u{200D}"),
        ("title", "\u{200B}\u{2060}\u{FEFF}"),
        ("title", "\u{0301}\u{0301}"),
        ("source", "\u{200D}"),
    ] {
        let mut input = release_input(&uuid_for(text), "IPR._T._T", "2030-S1", "1");
        input[field] = json!(text);
        let (_, body) = server
            .post(PUBLISH, json!({ "input": input }), Some(WRITE_SECRET))
            .await
            .unwrap();
        let e = &body["errors"][0];
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{field} {text:?}: {body}");
        assert_eq!(e["extensions"]["field"], field, "{body}");
        assert!(e["message"].as_str().unwrap().contains("visible"), "{body}");
    }
    let mut define = ten_codes();
    define["input"]["dimensions"][0]["codes"][3]["label"] = json!("\u{200D}\u{200C}");
    let (_, body) = server.post(DEFINE, define, Some(WRITE_SECRET)).await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("label of code `C2`"),
        "{body}"
    );
    assert_eq!(
        server.query("{ ledger { revision } }", json!({})).await,
        head,
        "nothing recorded"
    );
    // A visible title with a joiner inside is fine.
    let mut input = release_input(&uuid_for("ok"), "IPR._T._T", "2030-S1", "1");
    input["title"] = json!("SYNTHETIC a\u{200D}b");
    let (_, body) = server
        .post(PUBLISH, json!({ "input": input }), Some(WRITE_SECRET))
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["publishRelease"]["release"]["id"], uuid_for("ok").as_str());
    assert_alive(&mut server).await;
}

/// A fixed release id per case, so that a re-run is idempotent.
fn uuid_for(text: &str) -> String {
    let n: u32 = text.chars().map(u32::from).sum();
    format!("00000000-0000-4000-8000-{n:012}")
}
