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
//! | nothing from the client (a `pong` counts, our `ping` does not) for the idle timeout | close 1001 |
//! | a frame not taken by the client within the send timeout | close 4504 |
//!
//! Memory per connection is bounded in bytes: results waiting to be sent may take
//! `ws_max_buffered_bytes` (a single larger result is sent alone); a subscription whose
//! next result does not fit waits before reading on, and since subscriptions read from the
//! ledger rather than from a queue of their own, waiting loses nothing. A client that stops
//! reading thus holds that much and about one result being built (the subscriptions of a
//! connection take turns to build theirs, [`BuildTurn`]), until the send timeout closes it.
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
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::access_log::{Who, WsOperation};
use super::graphql::{outcome_unknown_errors, pool_refusal};
use super::peer::PeerSlot;
use super::AppState;
use crate::auth::{authorize, bearer};
use crate::graphql::{
    add_codes, is_request_error, request_from_params, to_json_capped, BuildTurn, Caller, ParamError, ResponseOrder,
    LIMIT_EXCEEDED,
};
use crate::ledger::WriteGate;
use crate::pool::Refused;

const TRANSPORT_WS: &str = "graphql-transport-ws";
const LEGACY_WS: &str = "graphql-ws";

/// Messages from subscription tasks waiting to be sent, per connection (their bytes are
/// bounded too, by `ws_max_buffered_bytes`).
const OUTBOX: usize = 256;
/// How long the close frame may take to go out, unless the client was closed for not
/// reading (then it gets the send timeout, with everything else already let go).
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// The close code for a client that did not take a frame within the send timeout.
const SLOW_CLIENT: u16 = 4504;
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
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerSlot>>,
    who: Option<axum::Extension<Who>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Behind a trusted proxy, the client's slot (taken per request) is held for the
    // WebSocket's life; otherwise the socket itself holds it.
    let peer_slot = peer.map(|axum::Extension(slot)| slot);
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
            let mut connection = Connection::new(state.clone(), socket, protocol, header_token, (permit, peer_slot));
            connection.who = who.map(|axum::Extension(who)| who);
            connection.run().await;
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
    /// A whole `next` (or legacy `data`) message, with its share of the connection's byte
    /// budget, given back once it is sent.
    Next(String, OwnedSemaphorePermit),
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
    _permit: (OwnedSemaphorePermit, Option<PeerSlot>),
    init_seen: bool,
    caller: Option<Caller>,
    /// Active subscriptions: id -> (generation, task).
    active: HashMap<String, (u64, JoinHandle<()>)>,
    generation: u64,
    outbox: mpsc::Sender<(String, u64, Out)>,
    inbox: Option<mpsc::Receiver<(String, u64, Out)>>,
    /// Bytes of results that may wait to be sent (see the module docs).
    budget: Arc<Semaphore>,
    /// The budget's size.
    budget_bytes: usize,
    /// Subscriptions build their results one at a time (see [`BuildTurn`]).
    turn: BuildTurn,
    /// Who connected, for the request log's line of each operation.
    who: Option<Who>,
}

impl Connection {
    fn new(
        state: Arc<AppState>,
        socket: WebSocket,
        protocol: Protocol,
        header_token: Option<String>,
        permit: (OwnedSemaphorePermit, Option<PeerSlot>),
    ) -> Self {
        let (outbox, inbox) = mpsc::channel(OUTBOX);
        let budget_bytes = state
            .config
            .ws_max_buffered_bytes
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
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
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            turn: BuildTurn::new(),
            who: None,
        }
    }

    async fn send(&mut self, value: Value) -> Result<(), Close> {
        self.send_text(serde_json::to_string(&value).expect("JSON values serialize"))
            .await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Close> {
        let timeout = self.state.config.ws_send_timeout;
        match tokio::time::timeout(timeout, self.socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Close(1006, String::new())),
            Err(_) => {
                let waiting = self.budget_bytes - self.budget.available_permits();
                tracing::info!(
                    send_timeout_ms = timeout.as_millis() as u64,
                    waiting_bytes = waiting,
                    "closing a WebSocket whose client did not read in time"
                );
                Err(Close(
                    SLOW_CLIENT,
                    truncate(format!(
                        "client did not read for {} ms; {waiting} bytes of results waiting",
                        timeout.as_millis()
                    )),
                ))
            }
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
        // Idle means that the client sent nothing: our own pings do not count, its pongs do.
        let idle_period = self.state.config.connections.idle_timeout;
        let idle = tokio::time::sleep(idle_period);
        tokio::pin!(idle);
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
                _ = &mut idle, if !idle_period.is_zero() => {
                    tracing::debug!(idle_ms = idle_period.as_millis() as u64, "closing an idle WebSocket");
                    Err(Close(1001, format!("idle: nothing received from the client for {} ms", idle_period.as_millis())))
                }
                msg = self.socket.recv() => match msg.inspect(|m| if m.is_ok() && !idle_period.is_zero() {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_period);
                }) {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => Err(Close(4400, "binary frames are not part of the protocol".into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => Err(Close(1000, String::new())),
                    Some(Err(e)) => Err(read_error(&e, self.state.config.max_body_bytes)),
                },
                Some((id, generation, out)) = inbox.recv() => self.on_out(id, generation, out).await,
                _ = keepalive.tick(), if !keepalive_period.is_zero() => match self.protocol {
                    Protocol::TransportWs => self.send(json!({"type": "ping", "payload": {"reason": "keepalive"}})).await,
                    // `ka` asks for no answer, so a WebSocket ping goes with it, which clients
                    // (browsers included) answer by themselves.
                    Protocol::LegacyWs => if self.caller.is_some() {
                        match self.send(json!({"type": "ka"})).await {
                            Ok(()) => self.send_message(Message::Ping(Default::default())).await,
                            Err(close) => Err(close),
                        }
                    } else { Ok(()) },
                },
            };
            if let Err(close) = result {
                break close;
            }
        };
        for (_, (_, task)) in self.active.drain() {
            task.abort();
        }
        // Let go of every result waiting before lingering on the close frame.
        drop(inbox);
        if close.0 != 1006 {
            let linger = if close.0 == SLOW_CLIENT {
                self.state.config.ws_send_timeout
            } else {
                CLOSE_SEND_TIMEOUT
            };
            let frame = CloseFrame {
                code: close.0,
                reason: close.1.into(),
            };
            let _ = tokio::time::timeout(linger, self.socket.send(Message::Close(Some(frame)))).await;
        }
    }

    async fn send_message(&mut self, message: Message) -> Result<(), Close> {
        match tokio::time::timeout(self.state.config.ws_send_timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Close(1006, String::new())),
            Err(_) => Err(Close(SLOW_CLIENT, "client did not read in time".into())),
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
                let mut payload = payload;
                if let Err(e) = self.persisted(&mut payload) {
                    return self.send(json!({"type": "error", "id": id, "payload": [e]})).await;
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
                let mut payload = payload;
                if let Err(e) = self.persisted(&mut payload) {
                    return self.send(json!({"type": "error", "id": id, "payload": e})).await;
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

    /// Puts the document a persisted-query payload names into it, as over HTTP (so that
    /// `--only-persisted` holds here too); the error to send when it is refused.
    fn persisted(&self, payload: &mut serde_json::Map<String, Value>) -> Result<(), Value> {
        let state = &self.state;
        state
            .persisted
            .resolve(payload, |query| state.queries.document(query).is_ok())
            .map(drop)
            .map_err(|e| json!({"message": e.message, "extensions": {"code": e.code}}))
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
        let mut log = WsOperation::start(&self.state, self.who.as_ref(), caller.actor.clone(), &id, &request);
        let request = request.data(self.turn.clone());
        let state = self.state.clone();
        let outbox = self.outbox.clone();
        let task_id = id.clone();
        let next = NextMessage {
            budget: self.budget.clone(),
            budget_bytes: self.budget_bytes,
            kind: if self.protocol == Protocol::LegacyWs {
                "data"
            } else {
                "next"
            },
            id: serde_json::to_string(&id).expect("strings serialize"),
            limit: self.state.config.max_response_bytes,
        };
        let task = tokio::spawn(async move {
            let (mut request, order) = match state.queries.prepare(request.data(caller)) {
                Ok(prepared) => prepared,
                Err(e) => {
                    let mut errors = vec![e];
                    add_codes(&mut errors);
                    let errors = serde_json::to_value(&errors).expect("errors serialize");
                    let _ = outbox.send((task_id, generation, Out::Error(errors))).await;
                    set_outcome(&mut log, "error");
                    return;
                }
            };
            if operation_type(&mut request) != Some(OperationType::Subscription) {
                let Some(out) = single_result(&state, &next, request, order).await else {
                    return;
                };
                let done = matches!(out, Out::Next(..));
                set_outcome(&mut log, if done { "complete" } else { "error" });
                if outbox.send((task_id.clone(), generation, out)).await.is_ok() && done {
                    let _ = outbox.send((task_id, generation, Out::Complete)).await;
                }
                return;
            }
            let mut stream = state.schema.execute_stream(request);
            let mut first = true;
            while let Some(mut response) = stream.next().await {
                order.apply(&mut response);
                add_codes(&mut response.errors);
                if first && is_request_error(&response) {
                    let errors = serde_json::to_value(&response.errors).expect("errors serialize");
                    let _ = outbox.send((task_id, generation, Out::Error(errors))).await;
                    set_outcome(&mut log, "error");
                    return;
                }
                first = false;
                // Serialized here, in the subscription's own task, so that a burst of
                // notifications is encoded in parallel rather than by the connection.
                let payload = payload_capped(&response, next.limit);
                drop(response);
                let Some(out) = next.wrap(payload).await else {
                    return;
                };
                // Waiting here (and above, for room in the byte budget) when the client is
                // slow is fine: the writer never waits on us, and the subscription reads on
                // from the projection when it resumes.
                if outbox.send((task_id.clone(), generation, out)).await.is_err() {
                    return;
                }
            }
            let _ = outbox.send((task_id, generation, Out::Complete)).await;
            set_outcome(&mut log, "complete");
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
            Out::Next(text, credit) => {
                let sent = self.send_text(text).await;
                drop(credit);
                return sent;
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

/// Records how an operation ended in its request-log line, if it has one.
fn set_outcome(log: &mut Option<WsOperation>, outcome: &'static str) {
    if let Some(log) = log {
        log.outcome = outcome;
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
/// `None` when the connection went away meanwhile.
async fn single_result(
    state: &Arc<AppState>,
    next: &NextMessage,
    request: Request,
    order: ResponseOrder,
) -> Option<Out> {
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
                order.apply(&mut response);
                add_codes(&mut response.errors);
                if is_request_error(&response) {
                    Err(Out::Error(
                        serde_json::to_value(&response.errors).expect("errors serialize"),
                    ))
                } else {
                    Ok(payload_capped(&response, limit))
                }
            },
        )
        .await;
    match outcome {
        Ok(Ok(payload)) => next.wrap(payload).await,
        Ok(Err(error)) => Some(error),
        Err(Refused::OutcomeUnknown) => {
            let errors = outcome_unknown_errors(&state.config, &gate);
            Some(Out::Error(serde_json::to_value(&errors).expect("errors serialize")))
        }
        Err(why) => {
            let (_, message, code) = pool_refusal(&state.config, why);
            Some(Out::Error(json!([{"message": message, "extensions": {"code": code}}])))
        }
    }
}

/// Turns a subscription's results into whole messages, each with its share of the
/// connection's byte budget.
struct NextMessage {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    /// `next`, or `data` for the legacy protocol.
    kind: &'static str,
    /// The operation's id, as JSON.
    id: String,
    /// The response-size cap.
    limit: usize,
}

impl NextMessage {
    /// The message for `payload`, once the budget has room for it; `None` when the
    /// connection went away meanwhile.
    async fn wrap(&self, payload: Vec<u8>) -> Option<Out> {
        let (kind, id) = (self.kind, &self.id);
        let head = format!(r#"{{"type":"{kind}","id":{id},"payload":"#);
        let mut text = String::with_capacity(head.len() + payload.len() + 1);
        text.push_str(&head);
        text.push_str(std::str::from_utf8(&payload).expect("serde_json writes UTF-8"));
        text.push('}');
        drop(payload);
        // A message larger than the whole budget waits for all of it: it is sent alone.
        let share = text.len().clamp(1, self.budget_bytes) as u32;
        let credit = self.budget.clone().acquire_many_owned(share).await.ok()?;
        Some(Out::Next(text, credit))
    }
}

/// A `next` payload under the response-size cap; beyond it, the payload is the error
/// instead (nothing of the response is sent).
fn payload_capped(response: &async_graphql::Response, limit: usize) -> Vec<u8> {
    to_json_capped(response, limit).unwrap_or_else(|e| {
        let refused = async_graphql::Response::from_errors(vec![e.error()]);
        serde_json::to_vec(&refused).expect("errors serialize")
    })
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
