//! Hostile inputs: a corpus of bad requests against a real server (tests/support). Each one
//! must get a clear error (an HTTP 4xx, or a GraphQL error with a known `extensions.code`
//! and a message), must leave the server up (`/healthz` answers 200), and none of them may
//! change the ledger. A table of what each class got is printed for the record
//! (`cargo test --test hostile -- --nocapture`).
//!
//! The second half keeps the inputs that fuzzing (fuzz/) found or guards, as regression
//! tests calling the same functions the fuzz targets call.

use crate::support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::ws::Ws;
use support::*;
use tokio::time::timeout;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

mod inputs;
mod requests;

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

/// Longest wait for any one answer: a refusal that takes longer fails its case. It only
/// guards against a server that hangs on hostile input (the times of the refusals are in the
/// printed table; no speed is asserted, since a loaded machine can make any of them slow).
const WAIT: Duration = Duration::from_secs(60);

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
    /// Raw bytes over TCP (for what an HTTP client will not send, like chunked bodies).
    Tcp { request: Vec<u8> },
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

/// `observation(...)` of the fixture dataset with `args` replacing one of the defaults.
fn observation(args: &str) -> Send {
    let mut all = vec![format!("dataset: \"{DATASET}\"")];
    for (name, default) in [("key", "\"_T._T._T\""), ("period", "\"2025-S1\"")] {
        if !args.starts_with(&format!("{name}:")) {
            all.push(format!("{name}: {default}"));
        }
    }
    all.push(args.to_owned());
    query(&format!("{{ observation({}) {{ value }} }}", all.join(", ")))
}

/// `observations(...)` of the fixture dataset with more arguments.
fn observations(args: &str) -> Send {
    query(&format!(
        "{{ observations(dataset: \"{DATASET}\", {args}) {{ totalCount }} }}"
    ))
}

/// A valid `publishRelease` (new id `n`) sent with a raw `Authorization` header, if any.
fn publish_as(authorization: Option<&[u8]>, n: u32) -> Send {
    let input = release_input(
        &format!("6b1f0c2e-4d3a-4e51-9a57-00000000bad{n}"),
        "IPR._T._T",
        "2025-S2",
        "-1",
    );
    Send::Raw {
        body: serde_json::to_vec(&json!({ "query": PUBLISH, "variables": { "input": input } })).unwrap(),
        content_type: Some("application/json"),
        authorization: authorization.map(<[u8]>::to_vec),
    }
}

/// A complete `publishRelease` document, for `GET /graphql?query=`.
fn get_mutation() -> String {
    format!(
        "mutation {{ publishRelease(input: {{ dataset: \"{DATASET}\", status: REVISED, title: \"x\", \
         publishedAt: \"2026-01-15T00:00:00Z\", \
         observations: [{{ key: \"IPR._T._T\", period: \"2025-S2\", value: \"1\" }}] }}) {{ revision }} }}"
    )
}

fn ws_text(init: bool, text: &str) -> Send {
    Send::Ws {
        init,
        frame: Message::text(text.to_owned()),
    }
}

fn ws_binary(init: bool, bytes: &[u8]) -> Send {
    Send::Ws {
        init,
        frame: Message::binary(bytes.to_vec()),
    }
}

/// Every hostile request, by class.
fn corpus() -> Vec<Case> {
    let mut cases = requests::cases();
    cases.extend(inputs::cases());
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
        Send::Tcp { request } => tcp_outcome(app, &request).await,
    }
}

/// A `POST /graphql` with `body` sent in chunks of `chunk` bytes.
fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    for part in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Writes a raw request (ignoring a write that fails because the server answered early) and
/// reads the response up to the end of the connection.
async fn tcp_outcome(app: &TestApp, request: &[u8]) -> Result<Outcome, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut response = Vec::new();
    let read = timeout(WAIT, reader.read_to_end(&mut response)).await;
    let _ = write.await;
    match read {
        Err(_) => return Err("timed out reading the response".into()),
        Ok(Err(e)) if response.is_empty() => return Err(format!("reading the response failed: {e}")),
        Ok(_) => {}
    }
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no complete response head")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {}", truncate(head)))?;
    // The body may itself be chunked: take the JSON object inside it.
    let json = body.find('{').zip(body.rfind('}')).map(|(a, b)| &body[a..=b]);
    let (code, message) = match json.and_then(|j| serde_json::from_str::<Value>(j).ok()) {
        Some(v) => (
            v["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_owned(),
            v["errors"][0]["message"].as_str().unwrap_or("").to_owned(),
        ),
        None => (String::new(), body.to_owned()),
    };
    Ok(Outcome { status, code, message })
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
        let (status, code, message, verdict) = match result {
            Ok(o) => {
                let verdict = judge(websocket, expect, &o);
                (
                    o.status.to_string(),
                    o.code.clone(),
                    o.message.clone(),
                    verdict.map(|v| format!("{v}; message: {}", truncate(&o.message))),
                )
            }
            Err(e) => ("-".into(), "-".into(), String::new(), Some(e)),
        };
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
        rows.push((
            class,
            name,
            status,
            code,
            elapsed.as_millis(),
            message,
            problem.is_none(),
        ));
    }

    println!("\n| class | input | status | code / close | ms | message |\n|---|---|---|---|---|---|");
    for (class, name, status, code, ms, message, ok) in &rows {
        let mark = if *ok { "" } else { " FAILED" };
        let message: String = message.replace(['\n', '|'], " ").chars().take(70).collect();
        println!("| {class} | {name} | {status} | {code}{mark} | {ms} | {message} |");
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

/// A title or source with a Unicode bidi control (U+202E, "Trojan Source" style) is refused:
/// titles and sources end up in audit logs and UIs, where such a character reverses the text
/// shown after it. (Found by this corpus; it used to be recorded.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

// ---------------------------------------------------------------------------------------------
// Fuzzing regressions: every input kept under fuzz/corpus/<target>/ (the minimized corpora)
// and fuzz/regressions/<target>/ (inputs that once crashed a target) is fed to the same
// functions the fuzz targets call, with the same checks, so `cargo test` keeps them passing
// without libFuzzer or a nightly toolchain.
// ---------------------------------------------------------------------------------------------

mod fuzz_replay;
