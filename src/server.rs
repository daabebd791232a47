//! The HTTP server: GraphQL over HTTP, WebSocket subscriptions, health and metrics.
//!
//! The GraphQL endpoint follows the GraphQL-over-HTTP specification at its MUST level, which
//! the stock async-graphql-axum extractor does not: `Accept` negotiation between
//! `application/graphql-response+json` and `application/json` (406 otherwise), 415 for any
//! POST that is not `application/json` (so a `text/plain` form cannot carry a mutation
//! across origins), 400 for unparseable JSON or malformed parameters, 405 for a mutation
//! over GET, and 4xx when a `graphql-response+json` request fails before execution. Bodies
//! are read with a hard cap that also holds for streamed (chunked) bodies, and batches are
//! bounded.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, ServerError, Variables};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{bearer, Access, Tokens};
use crate::cache::ResponseCache;
use crate::graphql::{
    build_schema, guard, to_json_capped, AppSchema, Caller, Limits, QueryLimits, BAD_USER_INPUT, LIMIT_EXCEEDED,
    UNAUTHENTICATED,
};
use crate::ledger::Ledger;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::pool::{QueryPool, Refused};

pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

/// Everything configurable about serving.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub request_timeout: Duration,
    pub max_ws_connections: usize,
    /// How long a WebSocket client has to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// Interval of keep-alive pings on idle WebSocket connections.
    pub ws_keepalive: Duration,
    pub tokens: Tokens,
    /// Origins allowed by CORS; empty turns CORS off.
    pub cors_origins: Vec<String>,
    pub graphiql: bool,
    /// Responses to read-only queries kept per ledger revision; 0 turns the cache off.
    pub response_cache_entries: usize,
    /// Bytes the response cache may hold (bodies, keys and overhead).
    pub response_cache_bytes: usize,
    /// Largest response body (HTTP) or `next` payload (WebSocket), in bytes.
    pub max_response_bytes: usize,
    /// Threads of the query pool; 0 for one per core.
    pub query_threads: usize,
    /// GraphQL operations running at once on the query pool.
    pub max_concurrent_queries: usize,
    /// Operations waiting for a slot on the query pool; beyond, 503 with `Retry-After`.
    pub max_queued_queries: usize,
    /// Operations (subscriptions included) open at once on one WebSocket.
    pub max_subscriptions_per_connection: usize,
    /// Connections, limits and shutdown of the listener.
    pub connections: crate::conn::ConnLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_body_bytes: 2 * 1024 * 1024,
            max_batch: 10,
            request_timeout: Duration::from_secs(30),
            max_ws_connections: 20_000,
            ws_init_timeout: Duration::from_secs(10),
            ws_keepalive: Duration::from_secs(30),
            tokens: Tokens::default(),
            cors_origins: Vec::new(),
            graphiql: true,
            response_cache_entries: 1024,
            response_cache_bytes: 64 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            query_threads: 0,
            max_concurrent_queries: 32,
            max_queued_queries: 256,
            max_subscriptions_per_connection: 100,
            connections: crate::conn::ConnLimits::default(),
        }
    }
}

/// Shared state of the HTTP layer.
pub struct AppState {
    pub schema: AppSchema,
    pub ledger: Ledger,
    pub config: ServerConfig,
    pub metrics: Metrics,
    pub ws_slots: Arc<Semaphore>,
    pub responses: ResponseCache,
    /// Checked before every execution, over HTTP and WebSocket alike.
    pub queries: QueryLimits,
    /// Where operations run, over HTTP and WebSocket alike.
    pub pool: QueryPool,
    /// Flips to true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// The media type of a GraphQL response, chosen from `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }
}

/// Picks the response media type; `None` when `Accept` allows neither.
fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Media::Json);
    };
    let mut best: Option<(f32, Media)> = None;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let range = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
            .next()
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let media = match range.as_str() {
            GRAPHQL_RESPONSE_JSON => Media::GraphqlResponse,
            APPLICATION_JSON => Media::Json,
            // Wildcards get the spec's preferred type, slightly below explicit choices.
            "*/*" | "application/*" => {
                if best.is_none() {
                    best = Some((q - 0.0001, Media::GraphqlResponse));
                }
                continue;
            }
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

fn error_body(message: &str, code: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

fn json_response(status: StatusCode, media: Media, body: &impl serde::Serialize) -> Response {
    body_response(
        status,
        media,
        Bytes::from(serde_json::to_vec(body).expect("responses serialize")),
    )
}

/// Refuses a request before GraphQL sees it.
fn refuse(status: StatusCode, media: Media, message: &str, code: &str) -> Response {
    json_response(status, media, &error_body(message, code))
}

/// Decides who is calling from a presented token secret (HTTP `Authorization` header or
/// WebSocket `connection_init`); the error says why the caller is refused.
pub(crate) fn authorize(tokens: &Tokens, secret: Option<&str>) -> Result<Caller, &'static str> {
    let caller = match secret.map(|s| tokens.check(s)) {
        None => Caller::default(),
        Some(Access::Write(name)) => Caller {
            actor: Some(name),
            can_write: true,
        },
        Some(Access::Read(name)) => Caller {
            actor: Some(name),
            can_write: false,
        },
        Some(Access::Invalid) => return Err("the bearer token is not valid"),
    };
    if tokens.reads_protected() && caller.actor.is_none() {
        return Err("this server needs a bearer token for reads");
    }
    Ok(caller)
}

/// Decides who is calling from the `Authorization` header; the error is why the request is
/// refused with 401.
fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, &'static str> {
    let secret = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(bearer)
                .ok_or("the Authorization header must be `Bearer <token>`")?,
        ),
    };
    authorize(&state.config.tokens, secret)
}

/// Why GraphQL-over-HTTP parameters were refused.
#[derive(Debug)]
pub(crate) enum ParamError {
    /// A parameter is missing or of the wrong type.
    Malformed(String),
    /// Beyond a bound of the front door ([`guard`]).
    Exceeded(guard::Exceeded),
}

impl ParamError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ParamError::Malformed(_) => BAD_USER_INPUT,
            ParamError::Exceeded(_) => LIMIT_EXCEEDED,
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::Malformed(m) => f.write_str(m),
            ParamError::Exceeded(e) => write!(f, "{e}"),
        }
    }
}

/// Builds a request from the GraphQL-over-HTTP parameters, checking their types and, before
/// anything parses them, the front door's bounds on the query text and the JSON parameters.
pub(crate) fn request_from_params(
    params: &serde_json::Map<String, Value>,
    limits: &Limits,
) -> Result<Request, ParamError> {
    let malformed = |m: &str| ParamError::Malformed(m.to_owned());
    let query = match params.get("query") {
        Some(Value::String(q)) => q,
        Some(_) => return Err(malformed("`query` must be a string")),
        None => return Err(malformed("`query` is missing")),
    };
    guard::check_query(query, limits).map_err(ParamError::Exceeded)?;
    let mut request = Request::new(query.clone());
    match params.get("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name.clone()),
        Some(_) => return Err(malformed("`operationName` must be a string")),
    }
    match params.get("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => {
            guard::check_json("variables", v, limits).map_err(ParamError::Exceeded)?;
            request = request.variables(Variables::from_json(v.clone()));
        }
        Some(_) => return Err(malformed("`variables` must be an object")),
    }
    match params.get("extensions") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => guard::check_json("extensions", v, limits).map_err(ParamError::Exceeded)?,
        Some(_) => return Err(malformed("`extensions` must be an object")),
    }
    Ok(request)
}

/// The refusal of JSON that does not parse: serde_json stops at 128 levels of nesting, which
/// is a limit (so the body cannot blow the stack), anything else is bad input.
fn json_refusal(what: &str, e: &serde_json::Error) -> (String, &'static str) {
    if e.to_string().starts_with("recursion limit exceeded") {
        (
            format!("{what} nests arrays and objects deeper than the limit of 128 levels"),
            LIMIT_EXCEEDED,
        )
    } else {
        (format!("{what} is not valid JSON: {e}"), BAD_USER_INPUT)
    }
}

/// Tags errors that async-graphql leaves without a code. Argument values are coerced while
/// executing, so a bad literal's error has a path: the message decides, not the phase.
pub(crate) fn add_codes(errors: &mut [ServerError]) {
    for e in errors {
        if e.extensions.as_ref().is_some_and(|x| x.get("code").is_some()) {
            continue;
        }
        let m = e.message.as_str();
        let code = if m.starts_with("Query is too complex")
            || m.starts_with("Query is nested too deep")
            || m.starts_with("The recursion depth of the query")
            || m.starts_with("The number of directives")
            || m.contains("recursion limit exceeded")
        {
            LIMIT_EXCEEDED
        } else if m.starts_with("Failed to parse")
            || m.contains("Invalid value for argument")
            // `Variable "$x" is not defined` is a document error; `Variable x is not defined`
            // means a required value is missing from `variables`.
            || (m.starts_with("Variable") && !m.starts_with("Variable \"$") && m.contains("is not defined"))
            || (m.starts_with("Variable") && m.contains("Invalid value"))
            || m.starts_with("Invalid value for")
        {
            BAD_USER_INPUT
        } else if !e.path.is_empty() {
            "INTERNAL_SERVER_ERROR"
        } else if m.starts_with("Unknown operation named") || m.contains("not supported on this transport") {
            "GRAPHQL_VALIDATION_FAILED"
        } else if e.locations.is_empty() || m.starts_with(" --> ") {
            "GRAPHQL_PARSE_FAILED"
        } else {
            "GRAPHQL_VALIDATION_FAILED"
        };
        e.extensions.get_or_insert_with(Default::default).set("code", code);
    }
}

/// Executes the requests of a batch one after the other, as async-graphql's `execute_batch`
/// does, each after [`QueryLimits::prepare`].
async fn execute_batch(state: &AppState, caller: Caller, batch: BatchRequest) -> BatchResponse {
    let one = |request: async_graphql::Request| {
        let prepared = state.queries.prepare(request.data(caller.clone()));
        async move {
            match prepared {
                Ok(request) => state.schema.execute(request).await,
                Err(e) => async_graphql::Response::from_errors(vec![e]),
            }
        }
    };
    match batch {
        BatchRequest::Single(r) => BatchResponse::Single(one(r).await),
        BatchRequest::Batch(rs) => {
            let mut out = Vec::with_capacity(rs.len());
            for r in rs {
                out.push(one(r).await);
            }
            BatchResponse::Batch(out)
        }
    }
}

/// True when the response failed before execution (no `data` entry in spec terms).
pub(crate) fn is_request_error(r: &async_graphql::Response) -> bool {
    !r.errors.is_empty() && r.data == async_graphql::Value::Null && r.errors.iter().all(|e| e.path.is_empty())
}

/// The answer when the query pool did not run an operation to its end.
pub(crate) fn pool_refusal(config: &ServerConfig, why: Refused) -> (StatusCode, String, &'static str) {
    match why {
        Refused::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is busy: {} operations are running and {} are waiting, the limits; retry later",
                config.max_concurrent_queries, config.max_queued_queries
            ),
            LIMIT_EXCEEDED,
        ),
        Refused::TimedOut => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than the limit of {} ms",
                config.request_timeout.as_millis()
            ),
            LIMIT_EXCEEDED,
        ),
        Refused::Panicked => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error while executing the operation".to_owned(),
            "INTERNAL_SERVER_ERROR",
        ),
    }
}

/// Seconds a client refused for load should wait before it retries.
pub(crate) const RETRY_AFTER_SECS: &str = "1";

/// Cache hits are answered here; everything else runs on the query pool (see [`crate::pool`]),
/// response encoding included, under the request timeout.
async fn execute(state: &Arc<AppState>, caller: Caller, media: Media, batch: BatchRequest) -> Response {
    let revision = state.ledger.read().head().revision;
    let cache_key = match &batch {
        BatchRequest::Single(r) => state
            .responses
            .key(revision, r, state.queries.document(&r.query).ok().as_deref()),
        BatchRequest::Batch(_) => None,
    };
    if let Some(body) = cache_key.as_ref().and_then(|k| state.responses.get(k)) {
        return body_response(StatusCode::OK, media, body);
    }
    let task_state = state.clone();
    let outcome = state
        .pool
        .run(state.config.request_timeout, async move {
            let response = execute_batch(&task_state, caller, batch).await;
            encode(response, media, task_state.config.max_response_bytes)
        })
        .await;
    let (status, body, clean) = match outcome {
        Ok(done) => done,
        Err(why) => {
            let (status, message, code) = pool_refusal(&state.config, why);
            let mut response = refuse(status, media, &message, code);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            return response;
        }
    };
    // Cache only clean answers computed entirely at the revision they are keyed by.
    if let Some(key) = cache_key.filter(|_| clean && state.ledger.read().head().revision == revision) {
        state.responses.put(key, body.clone());
    }
    body_response(status, media, body)
}

/// Codes the errors, picks the status and encodes the body; says whether the answer may be
/// cached (a single result without errors).
fn encode(mut response: BatchResponse, media: Media, max_response_bytes: usize) -> (StatusCode, Bytes, bool) {
    let mut failed_before_execution = true;
    match &mut response {
        BatchResponse::Single(r) => {
            add_codes(&mut r.errors);
            failed_before_execution = is_request_error(r);
        }
        BatchResponse::Batch(rs) => {
            for r in rs.iter_mut() {
                add_codes(&mut r.errors);
            }
            failed_before_execution &= rs.iter().all(is_request_error) && !rs.is_empty();
        }
    }
    let status = match media {
        Media::GraphqlResponse if failed_before_execution => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = match to_json_capped(&response, max_response_bytes) {
        Ok(body) => Bytes::from(body),
        Err(too_large) => {
            // Nothing of the response was sent; the client gets the error in its place, a
            // request error (no `data`) in GraphQL-over-HTTP terms.
            let error = || async_graphql::Response::from_errors(vec![too_large.error()]);
            let refused = match &response {
                BatchResponse::Single(_) => BatchResponse::Single(error()),
                BatchResponse::Batch(rs) => BatchResponse::Batch(rs.iter().map(|_| error()).collect()),
            };
            let status = match media {
                Media::GraphqlResponse => StatusCode::BAD_REQUEST,
                Media::Json => StatusCode::OK,
            };
            let body = serde_json::to_vec(&refused).expect("responses serialize");
            return (status, Bytes::from(body), false);
        }
    };
    let clean = matches!(&response, BatchResponse::Single(r) if r.errors.is_empty());
    (status, body, clean)
}

fn body_response(status: StatusCode, media: Media, body: Bytes) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()))],
        body,
    )
        .into_response()
}

/// The operation a document would run, if it can be told without executing it.
fn operation_type(query: &str, operation_name: Option<&str>) -> Option<OperationType> {
    let doc = async_graphql::parser::parse_query(query).ok()?;
    doc.operations
        .iter()
        .find(|(name, _)| match operation_name {
            Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
            None => true,
        })
        .map(|(_, op)| op.node.ty)
}

async fn graphql_get(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let params: Vec<(String, String)> = match raw.as_deref().map(serde_urlencoded::from_str).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                Media::Json,
                &format!("malformed query string: {e}"),
                BAD_USER_INPUT,
            )
        }
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let has_query = params.iter().any(|(k, _)| k == "query");
    if !has_query && wants_html && state.config.graphiql {
        return crate::web::graphiql_page(&headers);
    }
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        let value = match k.as_str() {
            "variables" | "extensions" => match serde_json::from_str::<Value>(&v) {
                Ok(v) => v,
                Err(e) => {
                    let (message, code) = json_refusal(&format!("`{k}`"), &e);
                    return refuse(StatusCode::BAD_REQUEST, media, &message, code);
                }
            },
            _ => Value::String(v),
        };
        map.insert(k, value);
    }
    let request = match request_from_params(&map, &state.config.limits) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, media, &e.to_string(), e.code()),
    };
    if operation_type(&request.query, map.get("operationName").and_then(Value::as_str)) == Some(OperationType::Mutation)
    {
        let mut response = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "mutations are not allowed over GET; use POST",
            "METHOD_NOT_ALLOWED",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let caller = match caller(&state, &headers) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, media, why, UNAUTHENTICATED),
    };
    execute(&state, caller, media, BatchRequest::Single(request)).await
}

fn not_acceptable() -> Response {
    refuse(
        StatusCode::NOT_ACCEPTABLE,
        Media::Json,
        "Accept must allow application/graphql-response+json or application/json",
        BAD_USER_INPUT,
    )
}

async fn graphql_post(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != APPLICATION_JSON {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            &format!("Content-Type must be application/json (got `{content_type}`)"),
            BAD_USER_INPUT,
        );
    }
    let limit = state.config.max_body_bytes;
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                media,
                &format!("the request body is larger than the limit of {limit} bytes"),
                LIMIT_EXCEEDED,
            )
        }
    };
    let parsed: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let (message, code) = json_refusal("the body", &e);
            return refuse(StatusCode::BAD_REQUEST, media, &message, code);
        }
    };
    let batch = match parsed {
        Value::Object(map) => match request_from_params(&map, &state.config.limits) {
            Ok(r) => BatchRequest::Single(r),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, media, &e.to_string(), e.code()),
        },
        Value::Array(items) => {
            let max = state.config.max_batch;
            if items.is_empty() {
                return refuse(StatusCode::BAD_REQUEST, media, "the batch is empty", BAD_USER_INPUT);
            }
            if items.len() > max {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    media,
                    &format!("the batch has {} requests; the limit is {max}", items.len()),
                    LIMIT_EXCEEDED,
                );
            }
            let mut requests = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Value::Object(map) = item else {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        media,
                        &format!("batch item {i} is not an object"),
                        BAD_USER_INPUT,
                    );
                };
                match request_from_params(map, &state.config.limits) {
                    Ok(r) => requests.push(r),
                    Err(e) => {
                        return refuse(
                            StatusCode::BAD_REQUEST,
                            media,
                            &format!("batch item {i}: {e}"),
                            e.code(),
                        )
                    }
                }
            }
            BatchRequest::Batch(requests)
        }
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                media,
                "the body must be a JSON object (or an array of them for a batch)",
                BAD_USER_INPUT,
            )
        }
    };
    let caller = match caller(&state, &headers) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, media, why, UNAUTHENTICATED),
    };
    execute(&state, caller, media, batch).await
}

/// Liveness: 200 while the process serves. `writable` says whether a write would be
/// attempted now; `status` is `degraded` when something is wrong (a damaged log, a store
/// that failed to write), not for a node that is read-only by choice.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let health = state.ledger.health();
    let mut body = json!({
        "status": if health.degraded { "degraded" } else { "ok" },
        "revision": state.ledger.read().head().revision,
        "readOnly": health.read_only,
        "writable": health.writable,
    });
    if let Some(reason) = health.reason {
        body["reason"] = Value::String(reason);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Seconds a client is told to wait when `/readyz` answers 503.
const READY_RETRY_AFTER_SECS: u64 = 5;

/// Readiness: 200 when the node takes writes, 503 with `Retry-After` and the reason when it
/// cannot (read-only, or a store that failed to write and has not come back yet).
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let health = state.ledger.health();
    let revision = state.ledger.read().head().revision;
    match health.reason {
        None => (
            StatusCode::OK,
            axum::Json(json!({ "ready": true, "revision": revision })),
        )
            .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from(READY_RETRY_AFTER_SECS))],
            axum::Json(json!({ "ready": false, "revision": revision, "reason": reason })),
        )
            .into_response(),
    }
}

/// `GET /metrics`: OpenMetrics for scrapers that ask for it in `Accept`, Prometheus text
/// 0.0.4 (`text/plain`, which a browser or `curl` shows) otherwise. The body is the same:
/// the 0.0.4 format reads OpenMetrics' extra lines (`# UNIT`, `# EOF`) as comments.
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    state.metrics.response_cache_bytes.set(state.responses.bytes() as i64);
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        state.metrics.render(&state.ledger),
    )
        .into_response()
}

async fn record_metrics(State(state): State<Arc<AppState>>, req: axum::extract::Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The application's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let mut app = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(crate::ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/checkpoint", get(crate::tlog::http::checkpoint))
        .merge(crate::web::routes(state.config.graphiql))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics));
    if !state.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT]),
        );
    }
    app.with_state(state)
}

/// Builds the shared state for `ledger` under `config`; fails if the query pool's threads
/// cannot be started.
pub fn app_state(
    ledger: Ledger,
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Arc<AppState>> {
    Ok(Arc::new(AppState {
        pool: QueryPool::new(
            config.query_threads,
            config.max_concurrent_queries,
            config.max_queued_queries,
        )?,
        schema: build_schema(ledger.clone(), config.limits),
        ws_slots: Arc::new(Semaphore::new(config.max_ws_connections)),
        responses: ResponseCache::new(config.response_cache_entries, config.response_cache_bytes),
        queries: QueryLimits::new(config.limits, ledger.clone()),
        metrics: Metrics::new(),
        ledger,
        config,
        shutdown,
    }))
}

/// Serves until `signal` resolves, then stops accepting, lets in-flight requests finish and
/// WebSockets complete their subscriptions and close (1001), all within the shutdown grace
/// period, and flushes the store.
pub async fn run(
    listener: TcpListener,
    ledger: Ledger,
    config: ServerConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let limits = config.connections;
    let state = app_state(ledger.clone(), config, stopped)?;
    let signal = async move {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop.send(true);
    };
    // Every WebSocket holds a slot until its task ends: all slots back means all closed.
    let ws_slots = state.ws_slots.clone();
    let all_slots = state.config.max_ws_connections.min(u32::MAX as usize) as u32;
    let websockets_closed = async move {
        let _ = ws_slots.acquire_many(all_slots).await;
    };
    crate::conn::serve(listener, router(state), limits, signal, websockets_closed).await;
    if let Err(e) = ledger.flush().await {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("stopped");
    Ok(())
}
