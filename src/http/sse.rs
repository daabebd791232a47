//! Subscriptions over Server-Sent Events: the graphql-sse protocol's "distinct connections"
//! mode, for clients behind proxies that drop WebSockets.
//!
//! `POST /graphql/stream` (a GraphQL-over-HTTP JSON body) or `GET /graphql/stream?query=...`
//! with `Accept: text/event-stream` runs one subscription per request: the response is
//! `text/event-stream`, each result an `event: next` whose `data` is the execution result,
//! and `event: complete` when the subscription ends (or the server shuts down). A request
//! that fails before it runs (bad JSON, a document that does not validate, a limit) gets an
//! ordinary GraphQL error response with a 4xx status instead, as graphql-sse specifies.
//!
//! It is the WebSocket endpoint's twin: the same token rules (`Authorization: Bearer`; reads
//! need one under `--read-tokens`), the same request limits, and a stream takes one of the
//! `--max-ws-connections` slots for its life, so the two together stay under one cap.
//! Results are capped at `--max-response-bytes`; while nothing is sent, a comment line every
//! `--ws-keepalive-ms` keeps proxies from closing the stream; a client that takes no bytes for
//! `--ws-send-timeout-ms` is let go. Resuming is the subscription's own: `afterRevision`.
//! Queries and mutations are answered on `POST /graphql`, and refused here with a message
//! that says so.

use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::AppState;
use crate::auth::{authorize, bearer};
use crate::graphql::{
    add_codes, is_request_error, request_from_params, to_json_capped, BuildTurn, BAD_USER_INPUT, LIMIT_EXCEEDED,
    UNAUTHENTICATED,
};

/// Events waiting for the client, per stream.
const QUEUE: usize = 16;

fn refuse(status: StatusCode, message: &str, code: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|r| {
            r.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/event-stream")
        })
}

/// `GET /graphql/stream`: the request in the query string.
pub(super) async fn get(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let params: Vec<(String, String)> = match raw.as_deref().map(serde_urlencoded::from_str).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("malformed query string: {e}"),
                BAD_USER_INPUT,
            )
        }
    };
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        let value = match k.as_str() {
            "variables" | "extensions" => match serde_json::from_str::<Value>(&v) {
                Ok(v) => v,
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        &format!("`{k}` is not valid JSON: {e}"),
                        BAD_USER_INPUT,
                    )
                }
            },
            _ => Value::String(v),
        };
        map.insert(k, value);
    }
    stream(state, headers, map).await
}

/// `POST /graphql/stream`: the request as a JSON body.
pub(super) async fn post(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let limit = state.config.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is larger than the limit of {limit} bytes"),
                LIMIT_EXCEEDED,
            )
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => stream(state, headers, map).await,
        Ok(_) => refuse(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
            BAD_USER_INPUT,
        ),
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            &format!("the body is not valid JSON: {e}"),
            BAD_USER_INPUT,
        ),
    }
}

async fn stream(state: Arc<AppState>, headers: HeaderMap, params: serde_json::Map<String, Value>) -> Response {
    if !accepts_event_stream(&headers) {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow text/event-stream on /graphql/stream; queries and mutations go to POST /graphql",
            BAD_USER_INPUT,
        );
    }
    let secret = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(bearer) {
            Some(s) => Some(s),
            None => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`",
                    UNAUTHENTICATED,
                )
            }
        },
    };
    let caller = match authorize(&state.config.tokens, secret) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, why, UNAUTHENTICATED),
    };
    let request = match request_from_params(&params, &state.config.limits) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string(), e.code()),
    };
    let (mut request, order) = match state.queries.prepare(request.data(caller).data(BuildTurn::new())) {
        Ok(prepared) => prepared,
        Err(e) => {
            let mut errors = vec![e];
            add_codes(&mut errors);
            let body = json!({ "errors": errors });
            return (
                StatusCode::BAD_REQUEST,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                )],
                body.to_string(),
            )
                .into_response();
        }
    };
    let wanted = request.operation_name.clone();
    let ty = request.parsed_query().ok().and_then(|doc| {
        doc.operations
            .iter()
            .find(|(name, _)| wanted.as_deref().is_none_or(|w| name.is_some_and(|n| n.as_str() == w)))
            .map(|(_, op)| op.node.ty)
    });
    if ty != Some(OperationType::Subscription) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "/graphql/stream runs subscriptions; send queries and mutations to POST /graphql",
            BAD_USER_INPUT,
        );
    }
    let Ok(slot) = state.ws_slots.clone().try_acquire_owned() else {
        let mut response = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "too many open subscription streams and WebSockets (limit {})",
                state.config.max_ws_connections
            ),
            LIMIT_EXCEEDED,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let mut results = state.schema.execute_stream(request);
    // The document is validated when the stream is first polled, at once: a request that
    // fails there is answered as a GraphQL error response, before anything streams.
    let mut ready = results.next().now_or_never().flatten();
    if let Some(response) = &mut ready {
        add_codes(&mut response.errors);
        if is_request_error(response) {
            return (
                StatusCode::BAD_REQUEST,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                )],
                serde_json::to_string(&*response).expect("responses serialize"),
            )
                .into_response();
        }
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let task_state = state.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let config = &task_state.config;
        let mut results = futures_util::stream::iter(ready).chain(results);
        let mut shutdown = task_state.shutdown.clone();
        let stopping = async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        };
        tokio::pin!(stopping);
        // A zero interval turns keep-alives off, as on WebSockets.
        let keepalive_on = !config.ws_keepalive.is_zero();
        let mut keepalive = tokio::time::interval(config.ws_keepalive.max(std::time::Duration::from_millis(1)));
        keepalive.reset();
        let send = |bytes: Bytes| {
            let tx = tx.clone();
            async move {
                matches!(
                    tokio::time::timeout(config.ws_send_timeout, tx.send(bytes)).await,
                    Ok(Ok(()))
                )
            }
        };
        loop {
            tokio::select! {
                next = results.next() => {
                    let Some(mut response) = next else { break };
                    order.apply(&mut response);
                    add_codes(&mut response.errors);
                    if !send(event("next", &response, config.max_response_bytes)).await {
                        return;
                    }
                    keepalive.reset();
                }
                _ = keepalive.tick(), if keepalive_on => {
                    if !send(Bytes::from_static(b":\n\n")).await {
                        return;
                    }
                }
                _ = &mut stopping => break,
                _ = tx.closed() => return,
            }
        }
        let _ = send(Bytes::from_static(b"event: complete\ndata:\n\n")).await;
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>)));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Proxies that buffer responses (nginx) would hold the events back.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// An SSE event whose data is `response` as JSON (capped at `limit` bytes: beyond, the
/// error that says so).
fn event(kind: &str, response: &async_graphql::Response, limit: usize) -> Bytes {
    let data = to_json_capped(response, limit).unwrap_or_else(|e| {
        serde_json::to_vec(&async_graphql::Response::from_errors(vec![e.error()])).expect("errors serialize")
    });
    let mut out = Vec::with_capacity(data.len() + 24);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // JSON has no raw newlines: one data line.
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
