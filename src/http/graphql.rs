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

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::access_log::GraphqlNote;
use super::caching::{self, Freshness, Policy};
use super::persisted::Refusal;
use super::{AppState, ServerConfig};
use crate::auth::{authorize, bearer};
use crate::graphql::{
    add_codes, is_request_error, outcome_unknown, request_from_params, to_json_capped, Caller, ResponseTooLarge,
    BAD_USER_INPUT, LIMIT_EXCEEDED, OUTCOME_UNKNOWN, UNAUTHENTICATED, UNAVAILABLE,
};
use crate::ledger::WriteGate;
use crate::pool::Refused;

pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

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

/// Executes the requests of a batch one after the other, as async-graphql's `execute_batch`
/// does, each after [`QueryLimits::prepare`].
async fn execute_batch(state: &AppState, caller: Caller, gate: Arc<WriteGate>, batch: BatchRequest) -> BatchResponse {
    let one = |request: async_graphql::Request| {
        let subscription = is_subscription(state, &request);
        // The fast path learns a query from async-graphql's first clean answer to it.
        let learn = state
            .queries
            .wants_plan(&request)
            .then(|| (request.query.clone(), request.operation_name.clone()));
        let prepared = state.queries.prepare(request.data(caller.clone()).data(gate.clone()));
        async move {
            if subscription {
                return async_graphql::Response::from_errors(vec![subscription_over_http()]);
            }
            match prepared {
                Ok((request, order)) => {
                    let mut response = state.schema.execute(request).await;
                    order.apply(&mut response);
                    if let Some((query, operation)) = learn.filter(|_| response.errors.is_empty()) {
                        state.queries.learn(&query, operation.as_deref());
                    }
                    response
                }
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

/// True when `request` would run a subscription (its document, from the cache, says so).
fn is_subscription(state: &AppState, request: &async_graphql::Request) -> bool {
    let Ok(doc) = state.queries.document(&request.query) else {
        return false;
    };
    let wanted = request.operation_name.as_deref();
    doc.operations
        .iter()
        .find(|(name, _)| wanted.is_none_or(|w| name.is_some_and(|n| n.as_str() == w)))
        .is_some_and(|(_, op)| op.node.ty == OperationType::Subscription)
}

/// The refusal of a subscription sent over HTTP, naming where subscriptions are served.
fn subscription_over_http() -> async_graphql::ServerError {
    let mut e = async_graphql::ServerError::new(
        "subscriptions are not served on /graphql: subscribe over WebSocket at /graphql/ws \
         (subprotocol graphql-transport-ws, or the older graphql-ws), or over Server-Sent Events at \
         /graphql/stream (graphql-sse, with Accept: text/event-stream)",
        None,
    );
    let ext = e.extensions.get_or_insert_with(Default::default);
    ext.set("code", BAD_USER_INPUT);
    ext.set("websocket", "/graphql/ws");
    ext.set("sse", "/graphql/stream");
    e
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
        // Answered write by write from the gate ([`outcome_unknown_errors`]); this is the
        // answer when there is none to name.
        Refused::OutcomeUnknown => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the outcome of the request's writes is unknown: they reached the ledger's writer but were not \
                 answered within the write timeout of {} ms; retry them with the same ids",
                config.write_timeout.as_millis()
            ),
            OUTCOME_UNKNOWN,
        ),
    }
}

/// One `OUTCOME_UNKNOWN` error for each write the request handed to the writer (see
/// [`crate::ledger::WriteGate`]), naming the id to retry it with.
pub(crate) fn outcome_unknown_errors(config: &ServerConfig, gate: &WriteGate) -> Vec<async_graphql::ServerError> {
    gate.handed()
        .iter()
        .map(|w| outcome_unknown(w, config.write_timeout))
        .collect()
}

/// Largest body announced over the limit that is read (and dropped) before the 413, and
/// the longest that takes: beyond either the connection is closed with the body unread.
const DRAIN_MAX: u64 = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops a refused body, bounded by [`DRAIN_MAX`] and [`DRAIN_TIME`].
async fn drain(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut data = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = data.next().await {
            read += chunk.len() as u64;
            if read > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
}

/// Seconds a client refused for load should wait before it retries.
pub(crate) const RETRY_AFTER_SECS: &str = "1";

/// How a request may be answered from a client's copy: `If-None-Match` of a GET (304), or of
/// a POST (412, as RFC 9110 asks for methods other than GET and HEAD).
#[derive(Clone, Copy)]
struct Conditional<'h> {
    headers: &'h HeaderMap,
    get: bool,
}

/// Cache hits are answered here; everything else runs on the query pool (see [`crate::pool`]),
/// response encoding included, under the request timeout. A cacheable answer gets its caching
/// headers ([`caching`]); one the client already holds is answered 304 before anything runs.
async fn execute(
    state: &Arc<AppState>,
    caller: Caller,
    media: Media,
    batch: BatchRequest,
    conditional: Conditional<'_>,
) -> Response {
    // What the request log says of the request (`access_log`), when it is on.
    let note = GraphqlNote::of(state, &batch);
    let fast = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut response, cache_hit) = execute_noted(state, caller, media, batch, conditional, fast.clone()).await;
    if let Some(mut note) = note {
        note.fast_path = fast.load(std::sync::atomic::Ordering::Relaxed);
        note.cache_hit = cache_hit;
        response.extensions_mut().insert(note);
    }
    response
}

/// [`execute`], saying whether the cache answered (`None` for a request it may not keep) and
/// (in `fast`) whether the fast path did.
async fn execute_noted(
    state: &Arc<AppState>,
    caller: Caller,
    media: Media,
    batch: BatchRequest,
    conditional: Conditional<'_>,
    fast: Arc<std::sync::atomic::AtomicBool>,
) -> (Response, Option<bool>) {
    let document = match &batch {
        BatchRequest::Single(r) => state.queries.document(&r.query).ok(),
        BatchRequest::Batch(_) => None,
    };
    let (revision, policy) = state.ledger.read_on_runtime(|p| {
        let policy = match (&batch, &document) {
            (BatchRequest::Single(r), Some(doc)) => Policy::of(r, doc, media.content_type(), p, chrono::Utc::now()),
            _ => None,
        };
        (p.head().revision, policy)
    });
    let private = state.config.tokens.reads_protected();
    if let Some(policy) = policy.as_ref().filter(|p| p.matches(conditional.headers)) {
        if !conditional.get {
            let refused = refuse(
                StatusCode::PRECONDITION_FAILED,
                media,
                "If-None-Match names the current answer; a POST with it is not executed (use GET to revalidate)",
                BAD_USER_INPUT,
            );
            return (refused, None);
        }
        state.metrics.not_modified.inc();
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        policy.apply(response.headers_mut(), &state.config.http_caching, private);
        return (response, None);
    }
    let cache_key = match &batch {
        BatchRequest::Single(r) if state.responses.enabled() => state.responses.key(revision, r, document.as_deref()),
        _ => None,
    };
    let with_policy = |mut response: Response, computed_at: u64| {
        if let Some(policy) = &policy {
            // A head answer computed after a write moved the head is not the one its ETag
            // names: it goes out without caching headers (so `no-store`).
            if policy.freshness == Freshness::Pinned || computed_at == revision {
                policy.apply(response.headers_mut(), &state.config.http_caching, private);
            }
        }
        response
    };
    if let Some(body) = cache_key.as_ref().and_then(|k| state.responses.get(k)) {
        return (
            with_policy(body_response(StatusCode::OK, media, body), revision),
            Some(true),
        );
    }
    let cache_miss = cache_key.is_some().then_some(false);
    let task_state = state.clone();
    let gate = Arc::new(WriteGate::new());
    let task_gate = gate.clone();
    let outcome = state
        .pool
        .run_writing(
            state.config.request_timeout,
            Some((&gate, state.config.write_timeout)),
            async move {
                if let BatchRequest::Single(request) = &batch {
                    let max = task_state.config.max_response_bytes;
                    if let Some(answer) = task_state.queries.fast(request, max) {
                        task_state.metrics.fast_path_answers.inc();
                        fast.store(true, std::sync::atomic::Ordering::Relaxed);
                        return match answer {
                            Ok(body) => (StatusCode::OK, Bytes::from(body), true),
                            Err(too_large) => refuse_too_large(too_large, media, None),
                        };
                    }
                }
                let response = execute_batch(&task_state, caller, task_gate, batch).await;
                encode(response, media, task_state.config.max_response_bytes)
            },
        )
        .await;
    let (status, body, clean) = match outcome {
        Ok(done) => done,
        Err(Refused::OutcomeUnknown) => {
            let errors = outcome_unknown_errors(&state.config, &gate);
            let mut response = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                media,
                &async_graphql::Response::from_errors(errors),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            return (response, cache_miss);
        }
        Err(why) => {
            let (status, message, code) = pool_refusal(&state.config, why);
            let mut response = refuse(status, media, &message, code);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            return (response, cache_miss);
        }
    };
    // Cache only clean answers computed entirely at the revision they are keyed by.
    // Not below the revision the answer saw, nor below any acknowledged write, without
    // waiting for the lock.
    let computed_at = state.ledger.head_revision();
    if let Some(key) = cache_key.filter(|_| clean && computed_at == revision) {
        state.responses.put(key, body.clone());
    }
    if status == StatusCode::OK && clean {
        return (with_policy(body_response(status, media, body), computed_at), cache_miss);
    }
    let mut response = body_response(status, media, body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(STORE_RETRY_AFTER_SECS));
    }
    (response, cache_miss)
}

/// Seconds a client whose write the store did not take should wait: the pause `/readyz`
/// gives, about how long the writer takes to bring a failed store back.
const STORE_RETRY_AFTER_SECS: &str = "5";

/// True when some error carries `extensions.code` = `code`.
fn has_code(errors: &[async_graphql::ServerError], code: &str) -> bool {
    errors.iter().any(|e| {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .is_some_and(|c| *c == async_graphql::Value::from(code))
    })
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
    // A write the store did not take (UNAVAILABLE, and no data): 503 for clients of
    // application/graphql-response+json, which may be told by status, with `Retry-After` (in
    // `execute`); `application/json` clients get 200, as GraphQL over HTTP requires.
    let unavailable = match &response {
        BatchResponse::Single(r) => r.data == async_graphql::Value::Null && has_code(&r.errors, UNAVAILABLE),
        BatchResponse::Batch(_) => false,
    };
    let status = match media {
        Media::GraphqlResponse if failed_before_execution => StatusCode::BAD_REQUEST,
        Media::GraphqlResponse if unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let body = match to_json_capped(&response, max_response_bytes) {
        Ok(body) => Bytes::from(body),
        Err(too_large) => {
            let batch = match &response {
                BatchResponse::Single(_) => None,
                BatchResponse::Batch(rs) => Some(rs.len()),
            };
            return refuse_too_large(too_large, media, batch);
        }
    };
    let clean = matches!(&response, BatchResponse::Single(r) if r.errors.is_empty());
    (status, body, clean)
}

/// The answer in place of a response larger than the limit: for a single request, or for
/// each of the `batch` requests of a batch.
fn refuse_too_large(too_large: ResponseTooLarge, media: Media, batch: Option<usize>) -> (StatusCode, Bytes, bool) {
    // Nothing of the response was sent; the client gets the error in its place, a request
    // error (no `data`) in GraphQL-over-HTTP terms.
    let error = || async_graphql::Response::from_errors(vec![too_large.error()]);
    let refused = match batch {
        None => BatchResponse::Single(error()),
        Some(n) => BatchResponse::Batch((0..n).map(|_| error()).collect()),
    };
    let status = match media {
        Media::GraphqlResponse => StatusCode::BAD_REQUEST,
        Media::Json => StatusCode::OK,
    };
    let body = serde_json::to_vec(&refused).expect("responses serialize");
    (status, Bytes::from(body), false)
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

pub(super) async fn get(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let mut response = get_answer(&state, &headers, raw).await;
    caching::no_store_unless_set(response.headers_mut());
    response
}

async fn get_answer(state: &Arc<AppState>, headers: &HeaderMap, raw: Option<String>) -> Response {
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
    let names_document = params
        .iter()
        .any(|(k, _)| k == "query" || k == "documentId" || k == "extensions");
    if !names_document && wants_html && state.config.graphiql {
        return crate::web::graphiql_page(headers);
    }
    let Some(media) = negotiate(headers) else {
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
    if let Err(refusal) = resolve_persisted(state, &mut map) {
        return refuse_persisted(state, media, &refusal, None);
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
    let caller = match caller(state, headers) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, media, why, UNAUTHENTICATED),
    };
    let conditional = Conditional { headers, get: true };
    execute(state, caller, media, BatchRequest::Single(request), conditional).await
}

/// Puts the document a persisted-query request names into its parameters ([`super::persisted`]).
fn resolve_persisted(state: &AppState, params: &mut serde_json::Map<String, Value>) -> Result<(), Refusal> {
    let found = state
        .persisted
        .resolve(params, |query| state.queries.document(query).is_ok())?;
    match found {
        super::persisted::Found::Text => {}
        super::persisted::Found::ById => {
            state.metrics.persisted_hits.inc();
        }
        super::persisted::Found::Registered => {
            state.metrics.persisted_registered.inc();
        }
    }
    Ok(())
}

/// The refusal of a persisted-query request. `PERSISTED_QUERY_NOT_FOUND` is a step of
/// Apollo's protocol (the client sends the text next): 200 for `application/json`, as Apollo
/// servers answer, and 404 rather than 400 for `application/graphql-response+json`, which
/// must not answer a request error with 2xx (Apollo clients turn persisted queries off after
/// a 400). Every refusal is `no-store`, so that no cache keeps it for the URL.
fn refuse_persisted(state: &AppState, media: Media, refusal: &Refusal, batch_item: Option<usize>) -> Response {
    let status = match (refusal.is_not_found(), media) {
        (true, Media::Json) => StatusCode::OK,
        (true, Media::GraphqlResponse) => StatusCode::NOT_FOUND,
        (false, _) => StatusCode::BAD_REQUEST,
    };
    if refusal.is_not_found() {
        state.metrics.persisted_not_found.inc();
    }
    let message = match batch_item {
        Some(i) => format!("batch item {i}: {}", refusal.message),
        None => refusal.message.clone(),
    };
    refuse(status, media, &message, refusal.code)
}

fn not_acceptable() -> Response {
    refuse(
        StatusCode::NOT_ACCEPTABLE,
        Media::Json,
        "Accept must allow application/graphql-response+json or application/json",
        BAD_USER_INPUT,
    )
}

pub(super) async fn post(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let mut response = post_answer(&state, &headers, body).await;
    caching::no_store_unless_set(response.headers_mut());
    response
}

async fn post_answer(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Response {
    let Some(media) = negotiate(headers) else {
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
    // A body announced (`Content-Length`) over the limit is refused before it is read, so
    // that hyper does not answer `Expect: 100-continue` with `100 Continue` (it does when the
    // body is first polled): the client is not invited to send what would be refused.
    let announced = axum::body::HttpBody::size_hint(&body).lower();
    let read = match announced > limit as u64 {
        true => {
            // A client that did not ask `Expect: 100-continue` is sending the body already:
            // read it (up to DRAIN_MAX bytes, for at most DRAIN_TIME) before answering, so that
            // closing the connection does not reset it under the client, which would then see
            // a broken connection instead of the 413.
            let expects = headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !expects && announced <= DRAIN_MAX {
                drain(body).await;
            }
            Err(())
        }
        false => axum::body::to_bytes(body, limit).await.map_err(drop),
    };
    let bytes: Bytes = match read {
        Ok(b) => b,
        Err(()) => {
            let mut response = refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                media,
                &format!("the request body is larger than the limit of {limit} bytes"),
                LIMIT_EXCEEDED,
            );
            // The rest of the body is not read, so the connection cannot carry another
            // request: say so, so that a client does not put it back in its pool (and fail
            // its next request on a connection the server closes).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
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
        Value::Object(mut map) => {
            if let Err(refusal) = resolve_persisted(state, &mut map) {
                return refuse_persisted(state, media, &refusal, None);
            }
            match request_from_params(&map, &state.config.limits) {
                Ok(r) => BatchRequest::Single(r),
                Err(e) => return refuse(StatusCode::BAD_REQUEST, media, &e.to_string(), e.code()),
            }
        }
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
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(mut map) = item else {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        media,
                        &format!("batch item {i} is not an object"),
                        BAD_USER_INPUT,
                    );
                };
                if let Err(refusal) = resolve_persisted(state, &mut map) {
                    return refuse_persisted(state, media, &refusal, Some(i));
                }
                match request_from_params(&map, &state.config.limits) {
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
    let caller = match caller(state, headers) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, media, why, UNAUTHENTICATED),
    };
    let conditional = Conditional { headers, get: false };
    execute(state, caller, media, batch, conditional).await
}
