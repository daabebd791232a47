//! The request log: one line per HTTP request and per WebSocket operation, on standard error,
//! off unless `--access-log` is given; and slow requests at WARN (`--slow-query-ms`), whether
//! or not the access log is on.
//!
//! A line says when, who (the client address, after `X-Forwarded-For` from trusted proxies,
//! and the name of the token presented: never its secret), what (method and path, never the
//! query string, which holds GET requests' queries and variables), the outcome (status, body
//! bytes, duration) and, for GraphQL, the operation's name, type and cost, whether the
//! response cache answered and whether the fast path did. Query texts and variables can hold
//! what clients consider private: they are logged only with `--access-log-queries`.
//!
//! The lines are written straight to standard error, not through `tracing`, so that `--log`
//! filters do not drop them and their format is the one asked for: `text` (`key=value`, a
//! value quoted as JSON when it has spaces or quotes) or `json` (one object per line).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::OperationType;
use async_graphql::BatchRequest;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::peer::ConnInfo;
use super::{AppState, ServerConfig};
use crate::auth::{bearer, Access};

/// Longest path written to a line, in bytes; a longer one is cut (at a character boundary).
const MAX_PATH: usize = 256;

/// The format of the access log's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLogFormat {
    /// `key=value` pairs, after the time.
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags of the request log (flattened into `serve`'s).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AccessLogArgs {
    /// Log one line per HTTP request and per WebSocket operation on standard error: time,
    /// client address, method, path, status, bytes, duration, token name (never the secret),
    /// and for GraphQL the operation's name, type and cost, cache hit and fast path. Off
    /// unless given.
    #[arg(long, env = "TRADELEDGER_ACCESS_LOG", value_enum, value_name = "FORMAT")]
    pub access_log: Option<AccessLogFormat>,
    /// Also log GraphQL query texts and variables in the access log and the slow-request
    /// log (they may hold what clients consider private).
    #[arg(long, env = "TRADELEDGER_ACCESS_LOG_QUERIES")]
    pub access_log_queries: bool,
    /// Log every request (and WebSocket query or mutation) that takes longer than this many
    /// milliseconds at WARN, with the access log's fields, even when the access log is off.
    #[arg(long, env = "TRADELEDGER_SLOW_QUERY_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub slow_query_ms: Option<u64>,
}

impl AccessLogArgs {
    /// Sets the request log's part of `config`.
    pub fn apply(&self, config: &mut ServerConfig) {
        config.access_log = self.access_log;
        config.access_log_queries = self.access_log_queries;
        config.slow_query = self.slow_query_ms.map(Duration::from_millis);
    }
}

/// Who sent a request, as the log names them; in the request's extensions for the WebSocket
/// upgrade, whose operations are logged one by one.
#[derive(Debug, Clone)]
pub struct Who {
    pub peer: Option<IpAddr>,
    /// The name of the token presented: `None` without one, `invalid` for a secret that
    /// matches no token.
    pub token: Option<String>,
}

/// What the GraphQL endpoint tells the log about a request, in the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct GraphqlNote {
    /// Operation names (comma-separated for a batch; `-` for an anonymous one).
    pub operation: Option<String>,
    /// `query`, `mutation` or `subscription` (comma-separated for a batch).
    pub operation_type: Option<String>,
    /// The cost the limit counts (summed over a batch).
    pub cost: Option<u64>,
    /// Whether the response cache answered; `None` when the request could not be cached.
    pub cache_hit: Option<bool>,
    /// True when the fast path answered.
    pub fast_path: bool,
    pub query: Option<String>,
    pub variables: Option<String>,
}

impl GraphqlNote {
    /// The note for `batch`, or `None` when nothing logs requests.
    pub fn of(state: &AppState, batch: &BatchRequest) -> Option<GraphqlNote> {
        match batch {
            BatchRequest::Single(r) => GraphqlNote::of_requests(state, &[r]),
            BatchRequest::Batch(rs) => GraphqlNote::of_requests(state, &rs.iter().collect::<Vec<_>>()),
        }
    }

    /// The note for `requests` (a batch, or one), or `None` when nothing logs requests.
    fn of_requests(state: &AppState, requests: &[&async_graphql::Request]) -> Option<GraphqlNote> {
        let config = &state.config;
        if config.access_log.is_none() && config.slow_query.is_none() {
            return None;
        }
        let mut names = Vec::new();
        let mut types = Vec::new();
        let mut cost = Some(0u64);
        for r in requests {
            let doc = state.queries.document(&r.query).ok();
            let op = doc.as_deref().and_then(|doc| {
                let wanted = r.operation_name.as_deref();
                doc.operations
                    .iter()
                    .find(|(name, _)| wanted.is_none_or(|w| name.is_some_and(|n| n.as_str() == w)))
                    .map(|(name, op)| (name.map(|n| n.to_string()), op.node.ty))
            });
            names.push(
                op.as_ref()
                    .and_then(|(n, _)| n.clone())
                    .or_else(|| r.operation_name.clone())
                    .unwrap_or_else(|| "-".to_owned()),
            );
            types.push(match op.map(|(_, ty)| ty) {
                Some(OperationType::Query) => "query",
                Some(OperationType::Mutation) => "mutation",
                Some(OperationType::Subscription) => "subscription",
                None => "-",
            });
            cost = cost.zip(state.queries.cost(r)).map(|(a, b)| a.saturating_add(b));
        }
        let queries = config.access_log_queries;
        let join = |items: Vec<String>| items.join(",");
        Some(GraphqlNote {
            operation: Some(names.join(",")),
            operation_type: Some(types.join(",")),
            cost,
            cache_hit: None,
            fast_path: false,
            query: queries.then(|| join(requests.iter().map(|r| r.query.clone()).collect())),
            variables: queries.then(|| {
                join(
                    requests
                        .iter()
                        .map(|r| serde_json::to_string(&r.variables).unwrap_or_default())
                        .collect(),
                )
            }),
        })
    }
}

/// The name of the token in `Authorization`, as [`Who::token`] has it.
fn token_name(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)?;
    Some(match state.config.tokens.check(secret) {
        Access::Admin(name) | Access::Write(name) | Access::Read(name) => name,
        Access::Invalid => "invalid".to_owned(),
    })
}

/// The client address of a request: the socket's peer, or behind a trusted proxy the client
/// it names.
fn client(state: &AppState, request: &Request) -> Option<IpAddr> {
    let info = request.extensions().get::<ConnInfo>()?;
    let ip = info.peer.ip();
    Some(if state.peers.is_trusted(ip) {
        state.peers.client_of(ip, request.headers())
    } else {
        ip.to_canonical()
    })
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One log line's fields, in order.
struct Line(Vec<(&'static str, Value)>);

impl Line {
    fn new(time: chrono::DateTime<chrono::Utc>) -> Line {
        Line(vec![(
            "time",
            Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        )])
    }

    fn add(&mut self, key: &'static str, value: impl Into<Value>) {
        self.0.push((key, value.into()));
    }

    fn note(&mut self, note: &GraphqlNote) {
        self.add("operation", note.operation.clone());
        self.add("operation_type", note.operation_type.clone());
        self.add("cost", note.cost);
        self.add("cache", note.cache_hit.map(|hit| if hit { "hit" } else { "miss" }));
        self.add("fast_path", note.fast_path);
        if let Some(q) = &note.query {
            self.add("query", q.clone());
        }
        if let Some(v) = &note.variables {
            self.add("variables", v.clone());
        }
    }

    fn render(&self, format: AccessLogFormat) -> String {
        let mut out = String::with_capacity(256);
        match format {
            AccessLogFormat::Json => {
                out.push('{');
                for (i, (k, v)) in self.0.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\"{k}\":{v}");
                }
                out.push('}');
            }
            AccessLogFormat::Text => {
                for (i, (k, v)) in self.0.iter().enumerate() {
                    match (i, v) {
                        (0, Value::String(time)) => out.push_str(time),
                        (_, Value::Null) => {}
                        (_, Value::String(s))
                            if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != '"') =>
                        {
                            let _ = write!(out, " {k}={s}");
                        }
                        _ => {
                            let _ = write!(out, " {k}={v}");
                        }
                    }
                }
            }
        }
        out
    }

    /// The line in the text format, for the slow-request warning (a `tracing` event's field
    /// names are fixed at compile time, so the line goes in its message).
    fn text(&self) -> String {
        self.render(AccessLogFormat::Text)
    }
}

/// Writes `line` to standard error in `format`, whole.
fn write(format: AccessLogFormat, line: &Line) {
    let mut text = line.render(format);
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn millis(d: Duration) -> Value {
    // Microsecond precision is plenty, and keeps the number short.
    Value::from((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Middleware: logs the request when it is answered (see the module docs).
pub async fn record(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let config = &state.config;
    if config.access_log.is_none() && config.slow_query.is_none() {
        return next.run(request).await;
    }
    let time = chrono::Utc::now();
    let start = Instant::now();
    let who = Who {
        peer: client(&state, &request),
        token: token_name(&state, request.headers()),
    };
    let method = cut(request.method().as_str(), 32).to_owned();
    let path = cut(request.uri().path(), MAX_PATH).to_owned();
    request.extensions_mut().insert(who.clone());
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let slow = config.slow_query.is_some_and(|limit| elapsed >= limit);
    if config.access_log.is_none() && !slow {
        return response;
    }
    let mut line = Line::new(time);
    line.add("peer", who.peer.map(|p| p.to_string()));
    line.add("method", method);
    line.add("path", path);
    line.add("status", response.status().as_u16());
    line.add("bytes", axum::body::HttpBody::size_hint(response.body()).exact());
    line.add("duration_ms", millis(elapsed));
    line.add("token", who.token);
    if let Some(note) = response.extensions().get::<GraphqlNote>() {
        line.note(note);
    }
    if let Some(format) = config.access_log {
        write(format, &line);
    }
    if slow {
        tracing::warn!(target: "tradeledger::slow", "slow request: {}", line.text());
    }
    response
}

/// A WebSocket operation's line, written when the operation ends (or is stopped), with the
/// connection's client and the token its `connection_init` (or upgrade) presented.
pub struct WsOperation {
    state: Arc<AppState>,
    time: chrono::DateTime<chrono::Utc>,
    start: Instant,
    peer: Option<IpAddr>,
    token: Option<String>,
    id: String,
    note: GraphqlNote,
    /// How it ended: `complete`, `error`, or `stopped` (by the client, or the connection).
    pub outcome: &'static str,
}

impl WsOperation {
    /// Starts the line of operation `id` (`request` prepared or not), or `None` when
    /// nothing logs requests.
    pub fn start(
        state: &Arc<AppState>,
        who: Option<&Who>,
        token: Option<String>,
        id: &str,
        request: &async_graphql::Request,
    ) -> Option<WsOperation> {
        let note = GraphqlNote::of_requests(state, &[request])?;
        Some(WsOperation {
            state: state.clone(),
            time: chrono::Utc::now(),
            start: Instant::now(),
            peer: who.and_then(|w| w.peer),
            token,
            id: cut(id, 64).to_owned(),
            note,
            outcome: "stopped",
        })
    }
}

impl Drop for WsOperation {
    fn drop(&mut self) {
        let config = &self.state.config;
        let elapsed = self.start.elapsed();
        // Subscriptions run as long as their clients want: only single results are slow.
        let single = self.note.operation_type.as_deref() != Some("subscription");
        let slow = single && config.slow_query.is_some_and(|limit| elapsed >= limit);
        if config.access_log.is_none() && !slow {
            return;
        }
        let mut line = Line::new(self.time);
        line.add("peer", self.peer.map(|p| p.to_string()));
        line.add("method", "WS");
        line.add("path", "/graphql/ws");
        line.add("id", self.id.clone());
        line.add("status", self.outcome);
        line.add("duration_ms", millis(elapsed));
        line.add("token", self.token.take());
        line.note(&self.note);
        if let Some(format) = config.access_log {
            write(format, &line);
        }
        if slow {
            tracing::warn!(target: "tradeledger::slow", "slow request: {}", line.text());
        }
    }
}
