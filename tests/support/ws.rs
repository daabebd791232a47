//! A `graphql-transport-ws` client for tests: connect (with a subprotocol and a token),
//! send, receive with a timeout, expect a close or silence, init and subscribe.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::TestApp;

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub const TRANSPORT: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";
/// Longest wait for any single message, upgrade or publish: it only guards against a server
/// that never answers, so it is generous for a loaded machine.
pub const RECV: Duration = Duration::from_secs(60);
/// How long "nothing more arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------------------------

/// Opens a WebSocket offering `protocol` (if any), with an optional `Authorization` header.
pub async fn try_connect(
    url: &str,
    protocol: Option<&str>,
    authorization: Option<&str>,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut request = url.into_client_request().expect("valid ws url");
    if let Some(p) = protocol {
        request
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(p).unwrap());
    }
    if let Some(a) = authorization {
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
    }
    timeout(RECV, connect_async(request))
        .await
        .unwrap_or_else(|_| panic!("no answer to the WebSocket upgrade at {url} within {RECV:?}"))
}

pub async fn connect_with(app: &TestApp, protocol: &str) -> Ws {
    try_connect(&app.ws_url, Some(protocol), None)
        .await
        .unwrap_or_else(|e| panic!("upgrade with {protocol} failed: {e}"))
        .0
}

pub async fn connect(app: &TestApp) -> Ws {
    connect_with(app, TRANSPORT).await
}

/// The HTTP status of a refused upgrade.
pub fn refused_status(result: Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got error {e}"),
        Ok((_, response)) => panic!("expected an HTTP refusal, got upgraded ({})", response.status()),
    }
}

pub async fn send(ws: &mut Ws, value: Value) {
    timeout(RECV, ws.send(Message::text(value.to_string())))
        .await
        .unwrap_or_else(|_| panic!("sending {value} did not complete within {RECV:?}"))
        .expect("send failed");
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    timeout(RECV, ws.send(Message::text(text.to_owned())))
        .await
        .unwrap_or_else(|_| panic!("sending a text frame did not complete within {RECV:?}"))
        .expect("send failed");
}

/// What the server sent next.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    /// A close frame: its code (none when the frame had no payload) and reason.
    Close(Option<u16>, String),
    /// The stream ended (or failed) without a close frame.
    Ended(String),
}

/// The next data or close frame, skipping WebSocket-level ping and pong frames.
pub async fn recv_raw(ws: &mut Ws) -> Got {
    loop {
        let item = timeout(RECV, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket frame arrived within {RECV:?}"));
        return match item {
            None => Got::Ended("stream ended".into()),
            Some(Err(e)) => Got::Ended(e.to_string()),
            Some(Ok(Message::Text(text))) => Got::Json(
                serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("server sent non-JSON text {text}: {e}")),
            ),
            Some(Ok(Message::Close(frame))) => match frame {
                Some(f) => Got::Close(Some(u16::from(f.code)), f.reason.to_string()),
                None => Got::Close(None, String::new()),
            },
            Some(Ok(Message::Binary(b))) => panic!("server sent a binary frame of {} bytes", b.len()),
            Some(Ok(_)) => continue,
        };
    }
}

/// True for the server's keep-alive messages, which tests ignore.
pub fn is_keepalive(v: &Value) -> bool {
    v["type"] == "ka" || (v["type"] == "ping" && v["payload"]["reason"] == "keepalive")
}

/// The next protocol message (keep-alives skipped); panics on a close.
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        match recv_raw(ws).await {
            Got::Json(v) if is_keepalive(&v) => continue,
            Got::Json(v) => return v,
            Got::Close(code, reason) => panic!("expected a message, the server closed with {code:?} {reason:?}"),
            Got::Ended(why) => panic!("expected a message, the connection ended without a close frame: {why}"),
        }
    }
}

/// Reads until the close frame and returns its code and reason; panics on any protocol
/// message other than a keep-alive.
pub async fn expect_close_with_reason(ws: &mut Ws) -> (u16, String) {
    loop {
        match recv_raw(ws).await {
            Got::Json(v) if is_keepalive(&v) => continue,
            Got::Json(v) => panic!("expected a close frame, got message {v}"),
            Got::Close(Some(code), reason) => return (code, reason),
            Got::Close(None, _) => panic!("expected a close frame with a code, got one without"),
            Got::Ended(why) => panic!("expected a close frame, the connection ended without one: {why}"),
        }
    }
}

/// Like [`expect_close_with_reason`], the code only.
pub async fn expect_close(ws: &mut Ws) -> u16 {
    expect_close_with_reason(ws).await.0
}

/// Asserts nothing but keep-alives arrives for `QUIET`.
pub async fn expect_quiet(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + QUIET;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Text(text)))) => {
                let v: Value = serde_json::from_str(text.as_str()).expect("JSON");
                assert!(is_keepalive(&v), "expected nothing more, got {v}");
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected nothing more, got {other:?}"),
        }
    }
}

/// `connection_init` (with an optional payload) answered by `connection_ack`.
pub async fn init_with(ws: &mut Ws, payload: Option<Value>) {
    let mut msg = json!({"type": "connection_init"});
    if let Some(p) = payload {
        msg["payload"] = p;
    }
    send(ws, msg).await;
    let ack = recv(ws).await;
    assert_eq!(ack["type"], "connection_ack", "expected connection_ack, got {ack}");
}

pub async fn init(ws: &mut Ws) {
    init_with(ws, None).await;
}

pub async fn subscribe(ws: &mut Ws, id: &str, query: &str, variables: Value) {
    send(
        ws,
        json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}),
    )
    .await;
}

/// The next `next` message for `id`; returns its `data` (and asserts there are no errors).
pub async fn next_data(ws: &mut Ws, id: &str) -> Value {
    let msg = recv(ws).await;
    assert_eq!(msg["type"], "next", "expected next for {id}, got {msg}");
    assert_eq!(msg["id"], id, "next for the wrong subscription: {msg}");
    assert!(msg["payload"].get("errors").is_none(), "next carries errors: {msg}");
    msg["payload"]["data"].clone()
}

/// The next `releasePublished` event for `id`: (revision, release id, title).
pub async fn next_release(ws: &mut Ws, id: &str) -> (u64, String, String) {
    let data = next_data(ws, id).await;
    let e = &data["releasePublished"];
    (
        e["revision"]
            .as_u64()
            .unwrap_or_else(|| panic!("no revision in {data}")),
        e["release"]["id"].as_str().expect("release id").to_owned(),
        e["release"]["title"].as_str().unwrap_or("").to_owned(),
    )
}

/// A `graphql-transport-ws` connection (initialised) with one subscription started: what
/// `TestApp::subscribe` and `Server::subscribe` give. `ws` is there for anything more.
pub struct Subscriber {
    pub ws: Ws,
    pub id: String,
}

impl Subscriber {
    /// Connects to `ws_url` with `graphql-transport-ws`, initialises and subscribes.
    pub async fn open(ws_url: &str, id: &str, query: &str, variables: Value) -> Subscriber {
        let (mut ws, _) = try_connect(ws_url, Some(TRANSPORT), None)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade at {ws_url} failed: {e}"));
        init(&mut ws).await;
        subscribe(&mut ws, id, query, variables).await;
        Subscriber { ws, id: id.to_owned() }
    }

    /// The next protocol message (keep-alives skipped).
    pub async fn recv(&mut self) -> Value {
        recv(&mut self.ws).await
    }

    /// The `data` of the next `next` message of this subscription (which has no errors).
    pub async fn next_data(&mut self) -> Value {
        next_data(&mut self.ws, &self.id).await
    }

    /// The next `releasePublished` event: (revision, release id, title).
    pub async fn next_release(&mut self) -> (u64, String, String) {
        next_release(&mut self.ws, &self.id).await
    }

    /// Asserts nothing but keep-alives arrives for `QUIET`.
    pub async fn expect_quiet(&mut self) {
        expect_quiet(&mut self.ws).await
    }
}
