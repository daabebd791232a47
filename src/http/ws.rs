//! GraphQL over WebSocket: `graphql-transport-ws` (the protocol of the `graphql-ws` client)
//! and the older `graphql-ws` (subscriptions-transport-ws).
//!
//! Written here rather than taken from async-graphql-axum because the stock handler departs
//! from the protocol: it does not close with 4400 on bad frames, lets a `subscribe` through
//! before the connection is acknowledged, accepts duplicate ids, has no init timeout, and
//! cannot refuse an init with 4403. Every rule below is tested in `tests/api/websocket.rs`.
//!
//! | event | graphql-transport-ws answer |
//! |---|---|
//! | malformed JSON, unknown type, missing field, binary frame | close 4400 |
//! | `subscribe` before `connection_ack` | close 4401 |
//! | `connection_init` with a bad or missing (when required) token | close 4403 |
//! | no `connection_init` within the init timeout | close 4408 |
//! | `subscribe` with an id already in use | close 4409 |
//! | a second `connection_init` | close 4429 |
//! | invalid document | `error` for that id, connection stays |
//! | query text or variables beyond a front-door bound | `error` for that id (`LIMIT_EXCEEDED`), connection stays |
//! | more operations open than `max_subscriptions_per_connection` | `error` (`LIMIT_EXCEEDED`) for that id, connection stays |
//! | a query or mutation past the request timeout, or the query pool full | `error` (`LIMIT_EXCEEDED`) for that id |
//! | a write handed to the ledger's writer whose outcome is not known within the write timeout | `error` (`OUTCOME_UNKNOWN`, with the id to retry with) for that id |
//! | server shutdown | `complete` for every subscription, then close 1001 (bounded in time) |
//!
//! Queries and mutations (single results) run on the query pool with the request timeout,
//! as over HTTP; subscriptions stay on the connection's runtime, where they mostly wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

use super::graphql::{outcome_unknown_errors, pool_refusal};
use super::AppState;
use crate::auth::{authorize, bearer};
use crate::graphql::{
    add_codes, is_request_error, request_from_params, to_json_capped, Caller, ParamError, LIMIT_EXCEEDED,
};
use crate::ledger::WriteGate;
use crate::pool::Refused;

const TRANSPORT_WS: &str = "graphql-transport-ws";
const LEGACY_WS: &str = "graphql-ws";

/// Messages from subscription tasks waiting to be sent, per connection.
const OUTBOX: usize = 256;
/// A client that does not take a frame within this time is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, how long the `complete` messages may take to go out: a client that does not
/// read must not hold the server up.
const SHUTDOWN_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Initial read buffer per connection. The connection task polls its socket every time it
/// wakes, including for each notification it forwards, and tungstenite zero-fills the whole
/// read buffer on every poll: at the default 128 KiB that memset was the largest single cost
/// of a fan-out to 10,000 subscribers (and 1.3 GB of touched memory). Client messages are
/// small; a larger one grows the buffer as needed, up to the message size limit.
const READ_BUFFER: usize = 4 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    TransportWs,
    LegacyWs,
}

/// `GET /graphql/ws`: checks the subprotocol and the connection limit, then upgrades.
pub async fn upgrade(State(state): State<Arc<AppState>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    let protocol = if offered.contains(&TRANSPORT_WS) {
        Protocol::TransportWs
    } else if offered.contains(&LEGACY_WS) {
        Protocol::LegacyWs
    } else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must offer graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    let Ok(permit) = state.ws_slots.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!(
                "too many WebSocket connections (limit {})",
                state.config.max_ws_connections
            ),
        )
            .into_response();
    };
    // A token in the upgrade request counts like one in `connection_init`.
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_owned);
    let max = state.config.max_body_bytes;
    ws.protocols([TRANSPORT_WS, LEGACY_WS])
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            state.metrics.websocket_connections.inc();
            Connection::new(state.clone(), socket, protocol, header_token, permit)
                .run()
                .await;
            state.metrics.websocket_connections.dec();
        })
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum TransportMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: serde_json::Map<String, Value>,
    },
    Complete {
        id: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LegacyMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Start {
        id: String,
        payload: serde_json::Map<String, Value>,
    },
    Stop {
        id: String,
    },
    ConnectionTerminate,
}

/// What a subscription task reports.
enum Out {
    /// A serialized execution result.
    Next(String),
    Error(Value),
    Complete,
}

/// Why a connection ends.
struct Close(u16, String);

struct Connection {
    state: Arc<AppState>,
    socket: WebSocket,
    protocol: Protocol,
    header_token: Option<String>,
    _permit: OwnedSemaphorePermit,
    init_seen: bool,
    caller: Option<Caller>,
    /// Active subscriptions: id -> (generation, task).
    active: HashMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
    outbox: mpsc::Sender<(String, u64, Out)>,
    inbox: Option<mpsc::Receiver<(String, u64, Out)>>,
}

impl Connection {
    fn new(
        state: Arc<AppState>,
        socket: WebSocket,
        protocol: Protocol,
        header_token: Option<String>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        Connection {
            state,
            socket,
            protocol,
            header_token,
            _permit: permit,
            init_seen: false,
            caller: None,
            active: HashMap::new(),
            generation: 0,
            outbox,
            inbox: Some(inbox),
        }
    }

    async fn send(&mut self, value: Value) -> Result<(), Close> {
        self.send_text(serde_json::to_string(&value).expect("JSON values serialize"))
            .await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Close> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Close(1006, String::new())),
            Err(_) => Err(Close(4504, "client did not read in time".into())),
        }
    }

    async fn run(mut self) {
        let mut inbox = self.inbox.take().expect("run once");
        let mut shutdown = self.state.shutdown.clone();
        let init_deadline = tokio::time::sleep(self.state.config.ws_init_timeout);
        tokio::pin!(init_deadline);
        // A zero interval turns keep-alives off.
        let keepalive_period = self.state.config.ws_keepalive;
        let mut keepalive = tokio::time::interval(keepalive_period.max(Duration::from_millis(1)));
        keepalive.tick().await;
        let close = loop {
            let result = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    // Complete every subscription properly before going away.
                    let ids: Vec<String> = self.active.keys().cloned().collect();
                    for (_, (_, task)) in self.active.drain() {
                        task.abort();
                    }
                    // Stop at the first failed send, and after a short while in all: a client
                    // that does not read gets one short timeout, not one per subscription.
                    let completes = async {
                        for id in ids {
                            self.send(self.complete_message(&id)).await?;
                        }
                        Ok(())
                    };
                    match tokio::time::timeout(SHUTDOWN_SEND_TIMEOUT, completes).await {
                        Ok(Err(close)) => Err(close),
                        _ => Err(Close(1001, "server shutting down".into())),
                    }
                }
                _ = &mut init_deadline, if !self.init_seen => {
                    Err(Close(4408, "Connection initialisation timeout".into()))
                }
                msg = self.socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => Err(Close(4400, "binary frames are not part of the protocol".into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => Err(Close(1000, String::new())),
                    Some(Err(e)) => Err(read_error(&e, self.state.config.max_body_bytes)),
                },
                Some((id, generation, out)) = inbox.recv() => self.on_out(id, generation, out).await,
                _ = keepalive.tick(), if !keepalive_period.is_zero() => match self.protocol {
                    Protocol::TransportWs => self.send(json!({"type": "ping", "payload": {"reason": "keepalive"}})).await,
                    Protocol::LegacyWs => if self.caller.is_some() { self.send(json!({"type": "ka"})).await } else { Ok(()) },
                },
            };
            if let Err(close) = result {
                break close;
            }
        };
        for (_, (_, task)) in self.active.drain() {
            task.abort();
        }
        if close.0 != 1006 {
            let frame = CloseFrame {
                code: close.0,
                reason: close.1.into(),
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(Message::Close(Some(frame)))).await;
        }
    }

    fn complete_message(&self, id: &str) -> Value {
        json!({"type": "complete", "id": id})
    }

    /// Decides the caller from a `connection_init` payload (or the upgrade request's header).
    fn authenticate(&self, payload: Option<&Value>) -> Result<Caller, String> {
        let from_payload = payload.and_then(|p| {
            ["authorization", "Authorization"]
                .iter()
                .find_map(|k| {
                    p.get(k)
                        .and_then(Value::as_str)
                        .map(|s| bearer(s).unwrap_or(s).to_owned())
                })
                .or_else(|| p.get("token").and_then(Value::as_str).map(str::to_owned))
        });
        let secret = from_payload.or_else(|| self.header_token.clone());
        authorize(&self.state.config.tokens, secret.as_deref()).map_err(|why| format!("Forbidden: {why}"))
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Close> {
        match self.protocol {
            Protocol::TransportWs => self.on_transport(text).await,
            Protocol::LegacyWs => self.on_legacy(text).await,
        }
    }

    async fn on_transport(&mut self, text: &str) -> Result<(), Close> {
        let msg: TransportMessage =
            serde_json::from_str(text).map_err(|e| Close(4400, truncate(format!("Invalid message: {e}"))))?;
        match msg {
            TransportMessage::ConnectionInit { payload } => {
                if self.init_seen {
                    return Err(Close(4429, "Too many initialisation requests".into()));
                }
                self.init_seen = true;
                if payload.as_ref().is_some_and(|p| !p.is_object() && !p.is_null()) {
                    return Err(Close(4400, "connection_init payload must be an object".into()));
                }
                let caller = self.authenticate(payload.as_ref()).map_err(|m| Close(4403, m))?;
                self.caller = Some(caller);
                self.send(json!({"type": "connection_ack"})).await
            }
            TransportMessage::Ping { payload } => {
                let mut pong = json!({"type": "pong"});
                if let Some(p) = payload {
                    pong["payload"] = p;
                }
                self.send(pong).await
            }
            TransportMessage::Pong { .. } => Ok(()),
            TransportMessage::Subscribe { id, payload } => {
                if self.caller.is_none() {
                    return Err(Close(4401, "Unauthorized".into()));
                }
                if self.active.contains_key(&id) {
                    return Err(Close(4409, truncate(format!("Subscriber for {id} already exists"))));
                }
                if let Some(error) = self.over_operation_limit() {
                    return self.send(json!({"type": "error", "id": id, "payload": [error]})).await;
                }
                let request = match request_from_params(&payload, &self.state.config.limits) {
                    Ok(r) => r,
                    // Beyond a front-door bound: a well-formed message refused, like an
                    // invalid document, so the connection stays.
                    Err(e @ ParamError::Exceeded(_)) => {
                        let error = json!([{"message": e.to_string(), "extensions": {"code": e.code()}}]);
                        return self.send(json!({"type": "error", "id": id, "payload": error})).await;
                    }
                    Err(e) => return Err(Close(4400, truncate(format!("Invalid message: {e}")))),
                };
                self.start(id, request);
                Ok(())
            }
            TransportMessage::Complete { id } => {
                if let Some((_, task)) = self.active.remove(&id) {
                    task.abort();
                }
                Ok(())
            }
        }
    }

    async fn on_legacy(&mut self, text: &str) -> Result<(), Close> {
        let msg: LegacyMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let payload = json!({"message": format!("invalid message: {e}")});
                return self.send(json!({"type": "connection_error", "payload": payload})).await;
            }
        };
        match msg {
            LegacyMessage::ConnectionInit { payload } => {
                if self.init_seen {
                    return self
                        .send(json!({"type": "connection_error", "payload": {"message": "already initialised"}}))
                        .await;
                }
                self.init_seen = true;
                match self.authenticate(payload.as_ref()) {
                    Ok(caller) => {
                        self.caller = Some(caller);
                        self.send(json!({"type": "connection_ack"})).await?;
                        self.send(json!({"type": "ka"})).await
                    }
                    Err(m) => {
                        self.send(json!({"type": "connection_error", "payload": {"message": m}}))
                            .await?;
                        Err(Close(4403, "Forbidden".into()))
                    }
                }
            }
            LegacyMessage::Start { id, payload } => {
                if self.caller.is_none() {
                    return Err(Close(4401, "Unauthorized".into()));
                }
                if self.active.contains_key(&id) {
                    let payload = json!({"message": format!("subscription {id} already exists")});
                    return self.send(json!({"type": "error", "id": id, "payload": payload})).await;
                }
                if let Some(error) = self.over_operation_limit() {
                    return self.send(json!({"type": "error", "id": id, "payload": error})).await;
                }
                match request_from_params(&payload, &self.state.config.limits) {
                    Ok(request) => {
                        self.start(id, request);
                        Ok(())
                    }
                    Err(e) => {
                        let payload = json!({"message": e.to_string(), "extensions": {"code": e.code()}});
                        self.send(json!({"type": "error", "id": id, "payload": payload})).await
                    }
                }
            }
            LegacyMessage::Stop { id } => {
                if let Some((_, task)) = self.active.remove(&id) {
                    task.abort();
                }
                self.send(self.complete_message(&id)).await
            }
            LegacyMessage::ConnectionTerminate => Err(Close(1000, String::new())),
        }
    }

    /// The error for a new operation when the connection already has as many open as it may.
    fn over_operation_limit(&self) -> Option<Value> {
        let max = self.state.config.max_subscriptions_per_connection;
        (self.active.len() >= max).then(|| {
            json!({
                "message": format!("this connection already has {max} operations open, the limit per connection; complete one first"),
                "extensions": {"code": LIMIT_EXCEEDED},
            })
        })
    }

    /// Starts executing an operation; its results come back through the outbox.
    fn start(&mut self, id: String, request: Request) {
        self.generation += 1;
        let generation = self.generation;
        let caller = self.caller.clone().unwrap_or_default();
        let state = self.state.clone();
        let outbox = self.outbox.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let mut request = match state.queries.prepare(request.data(caller)) {
                Ok(request) => request,
                Err(e) => {
                    let mut errors = vec![e];
                    add_codes(&mut errors);
                    let errors = serde_json::to_value(&errors).expect("errors serialize");
                    let _ = outbox.send((task_id, generation, Out::Error(errors))).await;
                    return;
                }
            };
            if operation_type(&mut request) != Some(OperationType::Subscription) {
                let out = single_result(&state, request).await;
                let done = matches!(out, Out::Next(_));
                if outbox.send((task_id.clone(), generation, out)).await.is_ok() && done {
                    let _ = outbox.send((task_id, generation, Out::Complete)).await;
                }
                return;
            }
            let mut stream = state.schema.execute_stream(request);
            let mut first = true;
            while let Some(mut response) = stream.next().await {
                add_codes(&mut response.errors);
                let out = if first && is_request_error(&response) {
                    let errors = serde_json::to_value(&response.errors).expect("errors serialize");
                    let _ = outbox.send((task_id, generation, Out::Error(errors))).await;
                    return;
                } else {
                    // Serialized here, in the subscription's own task, so that a burst of
                    // notifications is encoded in parallel rather than by the connection.
                    next_capped(&response, state.config.max_response_bytes)
                };
                first = false;
                // Waiting here when the client is slow is fine: the writer never waits on
                // us, and the subscription catches up from the projection when it lags.
                if outbox.send((task_id.clone(), generation, out)).await.is_err() {
                    return;
                }
            }
            let _ = outbox.send((task_id, generation, Out::Complete)).await;
        });
        self.active.insert(id, (generation, task));
    }

    async fn on_out(&mut self, id: String, generation: u64, out: Out) -> Result<(), Close> {
        // Drop output of subscriptions the client completed (or that an id reuse replaced).
        if self.active.get(&id).map(|(g, _)| *g) != Some(generation) {
            return Ok(());
        }
        let legacy = self.protocol == Protocol::LegacyWs;
        let message = match out {
            Out::Next(payload) => {
                let kind = if legacy { "data" } else { "next" };
                let id = serde_json::to_string(&id).expect("strings serialize");
                return self
                    .send_text(format!(r#"{{"type":"{kind}","id":{id},"payload":{payload}}}"#))
                    .await;
            }
            Out::Error(errors) => {
                self.active.remove(&id);
                let payload = if legacy {
                    errors
                        .as_array()
                        .and_then(|a| a.first().cloned())
                        .unwrap_or(Value::Null)
                } else {
                    errors
                };
                json!({"type": "error", "id": id, "payload": payload})
            }
            Out::Complete => {
                self.active.remove(&id);
                self.complete_message(&id)
            }
        };
        self.send(message).await
    }
}

/// The type of the operation a prepared request will run, if the document names it.
fn operation_type(request: &mut Request) -> Option<OperationType> {
    let wanted = request.operation_name.clone();
    let doc = request.parsed_query().ok()?;
    doc.operations
        .iter()
        .find(|(name, _)| match &wanted {
            Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
            None => true,
        })
        .map(|(_, op)| op.node.ty)
}

/// Runs a query or mutation on the query pool, as over HTTP: same admission, same timeout.
async fn single_result(state: &Arc<AppState>, request: Request) -> Out {
    let schema = state.schema.clone();
    let limit = state.config.max_response_bytes;
    // Writes reach the ledger's writer through the gate, so that a timeout never hides one
    // that may be recorded (see `crate::ledger::WriteGate`).
    let gate = Arc::new(WriteGate::new());
    let request = request.data(gate.clone());
    let outcome = state
        .pool
        .run_writing(
            state.config.request_timeout,
            Some((&gate, state.config.write_timeout)),
            async move {
                let mut response = schema.execute(request).await;
                add_codes(&mut response.errors);
                if is_request_error(&response) {
                    Out::Error(serde_json::to_value(&response.errors).expect("errors serialize"))
                } else {
                    next_capped(&response, limit)
                }
            },
        )
        .await;
    outcome.unwrap_or_else(|why| {
        if why == Refused::OutcomeUnknown {
            let errors = outcome_unknown_errors(&state.config, &gate);
            return Out::Error(serde_json::to_value(&errors).expect("errors serialize"));
        }
        let (_, message, code) = pool_refusal(&state.config, why);
        Out::Error(json!([{"message": message, "extensions": {"code": code}}]))
    })
}

/// A `next` payload under the response-size cap; beyond it, the payload is the error
/// instead (nothing of the response is sent).
fn next_capped(response: &async_graphql::Response, limit: usize) -> Out {
    let payload = to_json_capped(response, limit).unwrap_or_else(|e| {
        let refused = async_graphql::Response::from_errors(vec![e.error()]);
        serde_json::to_vec(&refused).expect("errors serialize")
    });
    Out::Next(String::from_utf8(payload).expect("serde_json writes UTF-8"))
}

/// The close code for a failed read: 1009 for a message over the size limit, 1007 for text
/// that is not UTF-8, 1002 for other protocol violations.
fn read_error(e: &axum::Error, limit: usize) -> Close {
    let text = e.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit exceeded") {
        Close(
            1009,
            truncate(format!("message larger than the limit of {limit} bytes")),
        )
    } else if text.to_ascii_lowercase().contains("utf-8") || text.contains("UTF") {
        Close(1007, "text frame is not valid UTF-8".into())
    } else {
        Close(1002, truncate(format!("protocol error: {text}")))
    }
}

/// Close reasons must fit in a control frame (123 bytes).
fn truncate(mut s: String) -> String {
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
