//! Prometheus metrics on `/metrics`, in the format the scraper asks for.
//!
//! prometheus-client writes OpenMetrics 1.0: a counter's family is named without `_total` and
//! its samples with it, and the exposition ends with `# EOF`. The Prometheus text format
//! 0.0.4, which is what `text/plain` promises, names a counter's family as its samples are
//! named (`# TYPE x_total counter`, then `x_total{..}`) and has no `# EOF`: a 0.0.4 parser
//! reading OpenMetrics sees every counter family empty and its samples as untyped metrics of
//! their own. So the 0.0.4 answer is the OpenMetrics text with each counter's `# HELP` and
//! `# TYPE` renamed and without the end marker; both are checked with Prometheus's own
//! parsers (`promtool check metrics`, `prometheus_client`) in the tests.
//!
//! `/metrics` on the main address needs a read or write token when `--read-tokens` is set,
//! like every read; `--metrics-listen` serves it on an address of its own, without a token,
//! for a scraper on the operator's network.

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{bearer, Access};
use crate::ledger::Ledger;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    /// One of [`METHOD_LABELS`]: never the raw method, which a client chooses freely (each
    /// distinct label would be a series kept for ever).
    pub method: &'static str,
    pub status: u16,
}

/// The values of the `method` label: the methods of RFC 9110 and PATCH, and `OTHER` for
/// any other (extension) method.
pub const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "OTHER",
];

/// The `method` label of a request: its method if it is a standard one, else `OTHER`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    METHOD_LABELS[..METHOD_LABELS.len() - 1]
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("OTHER")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessAlarmLabels {
    /// The witness's name in the policy (the operator's file, not a client's choice).
    pub witness: String,
    /// The HTTP status it answered with, or `cosignature` for a response without a valid
    /// cosignature.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub websocket_connections: Gauge,
    /// Bytes held by the response cache, set when the metrics are rendered.
    pub response_cache_bytes: Gauge,
    /// Lookups of the response cache, copied from it when the metrics are rendered.
    pub response_cache_hits: Counter,
    pub response_cache_misses: Counter,
    /// GraphQL requests answered by the fast path (`graphql::fast`) rather than async-graphql.
    pub fast_path_answers: Counter,
    /// GraphQL GETs answered 304 from `If-None-Match`, without executing.
    pub not_modified: Counter,
    /// Persisted queries: documents found by id, registered, and hashes not known.
    pub persisted_hits: Counter,
    pub persisted_registered: Counter,
    pub persisted_not_found: Counter,
    /// Cache purges (`--purge-url`): sent and acknowledged, retried, given up.
    pub purges: Counter,
    pub purge_retries: Counter,
    pub purge_failures: Counter,
    /// Witnesses of `--witness-policy` that refused a checkpoint or do not know the log.
    pub witness_alarms: Family<WitnessAlarmLabels, Counter>,
    head_revision: Gauge,
    events: Gauge,
    releases: Gauge,
    versions: Gauge,
    subscribers: Gauge,
    /// jemalloc's figures, with the `jemalloc` feature: bytes the program has allocated, and
    /// bytes of the pages the allocator holds resident.
    #[cfg(feature = "jemalloc")]
    allocator: (Gauge, Gauge),
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tradeledger");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let websocket_connections = gauge(&mut registry, "websocket_connections", "Open WebSocket connections");
        let response_cache_bytes = gauge(
            &mut registry,
            "response_cache_bytes",
            "Bytes held by the response cache (bodies, keys and overhead)",
        );
        let response_cache_hits = Counter::default();
        registry.register(
            "response_cache_hits",
            "Cacheable queries answered from the response cache",
            response_cache_hits.clone(),
        );
        let response_cache_misses = Counter::default();
        registry.register(
            "response_cache_misses",
            "Cacheable queries not in the response cache (executed)",
            response_cache_misses.clone(),
        );
        let fast_path_answers = Counter::default();
        registry.register(
            "graphql_fast_path_answers",
            "GraphQL requests answered by the compiled fast path rather than by async-graphql",
            fast_path_answers.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let not_modified = counter(
            &mut registry,
            "http_not_modified",
            "GraphQL GETs answered 304 Not Modified (If-None-Match) without executing",
        );
        let persisted_hits = counter(
            &mut registry,
            "persisted_query_hits",
            "Requests whose document was found by id (manifest or automatic persisted queries)",
        );
        let persisted_registered = counter(
            &mut registry,
            "persisted_query_registrations",
            "Documents registered by automatic persisted queries",
        );
        let persisted_not_found = counter(
            &mut registry,
            "persisted_query_not_found",
            "Requests naming a document hash the server does not have (PERSISTED_QUERY_NOT_FOUND)",
        );
        let purges = counter(&mut registry, "cache_purges", "Cache purges acknowledged by a cache");
        let purge_retries = counter(
            &mut registry,
            "cache_purge_retries",
            "Cache purges retried after a failure",
        );
        let purge_failures = counter(
            &mut registry,
            "cache_purge_failures",
            "Cache purges given up after their retries",
        );
        let witness_alarms = Family::<WitnessAlarmLabels, Counter>::default();
        registry.register(
            "witness_alarms",
            "Checkpoints a witness of the policy refused (403, 404, 422) or answered without a valid cosignature",
            witness_alarms.clone(),
        );
        let head_revision = gauge(&mut registry, "ledger_head_revision", "Revision of the newest event");
        let events = gauge(&mut registry, "ledger_events", "Events in the log");
        let releases = gauge(&mut registry, "ledger_releases", "Releases recorded");
        let versions = gauge(
            &mut registry,
            "ledger_observation_versions",
            "Figure versions held by the projection",
        );
        let subscribers = gauge(&mut registry, "subscribers", "Live subscription streams");
        #[cfg(feature = "jemalloc")]
        let allocator = (
            gauge(
                &mut registry,
                "allocator_allocated_bytes",
                "Bytes the program has allocated (jemalloc's stats.allocated)",
            ),
            gauge(
                &mut registry,
                "allocator_resident_bytes",
                "Bytes of the pages jemalloc holds resident (stats.resident)",
            ),
        );
        Metrics {
            registry,
            requests,
            latency,
            websocket_connections,
            response_cache_bytes,
            response_cache_hits,
            response_cache_misses,
            fast_path_answers,
            not_modified,
            persisted_hits,
            persisted_registered,
            persisted_not_found,
            purges,
            purge_retries,
            purge_failures,
            witness_alarms,
            head_revision,
            events,
            releases,
            versions,
            subscribers,
            #[cfg(feature = "jemalloc")]
            allocator,
        }
    }

    /// Renders the metrics in `format`, reading ledger figures now. Never waits for the
    /// projection's lock: when it is not free at once (a write waits for a long reader), the
    /// head comes from [`Ledger::head_revision`] and the release and version counts stay as
    /// the last scrape left them.
    pub fn render(&self, ledger: &Ledger, format: Format) -> String {
        match ledger.try_read() {
            Some(p) => {
                let head = p.head().revision as i64;
                self.head_revision.set(head);
                self.events.set(head);
                self.releases.set(p.releases().len() as i64);
                self.versions.set(p.version_count() as i64);
            }
            None => {
                let head = ledger.head_revision() as i64;
                self.head_revision.set(head);
                self.events.set(head);
            }
        }
        self.subscribers.set(ledger.subscriber_count() as i64);
        #[cfg(feature = "jemalloc")]
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            if let (Ok(allocated), Ok(resident)) = (
                tikv_jemalloc_ctl::stats::allocated::read(),
                tikv_jemalloc_ctl::stats::resident::read(),
            ) {
                self.allocator.0.set(allocated as i64);
                self.allocator.1.set(resident as i64);
            }
        }
        let mut out = String::new();
        encode_registry(&mut out, &self.registry).expect("writing to a String cannot fail");
        match format {
            Format::OpenMetrics => {
                out.push_str("# EOF\n");
                out
            }
            Format::Prometheus => prometheus_text(&out),
        }
    }
}

/// The exposition formats of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain`).
    Prometheus,
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format `Accept` prefers: OpenMetrics when it is accepted (q above 0) at least as
    /// much as `text/plain` (or a wildcard), Prometheus text otherwise, as a browser or
    /// `curl` gets it. Prometheus itself asks for OpenMetrics first.
    pub fn negotiate(headers: &HeaderMap) -> Format {
        let mut openmetrics = 0.0f32;
        let mut text = 0.0f32;
        let accepts = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
        for part in accepts.flat_map(|a| a.split(',')) {
            let mut params = part.split(';');
            let range = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            match range.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// The Prometheus 0.0.4 text of an OpenMetrics exposition without its `# EOF`: each counter
/// family is named as its samples are, with `_total`, and `# UNIT` (which 0.0.4 lacks) is
/// left out.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `GET /metrics` on the metrics address (`--metrics-listen`): in the format `Accept` asks
/// for ([`Format::negotiate`]).
pub(super) async fn serve(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    state.metrics.response_cache_bytes.set(state.responses.bytes() as i64);
    // fetch_max: the cache's counts only grow, and concurrent scrapes must not add twice.
    let (hits, misses) = state.responses.hits_and_misses();
    state
        .metrics
        .response_cache_hits
        .inner()
        .fetch_max(hits, Ordering::Relaxed);
    state
        .metrics
        .response_cache_misses
        .inner()
        .fetch_max(misses, Ordering::Relaxed);
    let format = Format::negotiate(&headers);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()))],
        state.metrics.render(&state.ledger, format),
    )
        .into_response()
}

/// `GET /metrics` on the main address: as [`serve`], for a read or write token when reads
/// need one (`--read-tokens`).
pub(super) async fn serve_main(state: State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let tokens = &state.config.tokens;
    if tokens.reads_protected() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let refusal = match presented.map(|secret| tokens.check(secret)) {
            Some(Access::Read(_) | Access::Write(_) | Access::Admin(_)) => None,
            Some(Access::Invalid) => Some("the bearer token is not valid"),
            None => Some("/metrics needs a read or write token (Authorization: Bearer <token>) on this address"),
        };
        if let Some(why) = refusal {
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                ],
                format!("{why}\n"),
            )
                .into_response();
        }
    }
    serve(state, headers).await
}

pub(super) async fn record(State(state): State<Arc<AppState>>, req: axum::extract::Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    // Routes are the router's own paths (or `unmatched`), statuses a closed set: the label
    // sets stay few whatever clients send.
    let method = method_label(req.method());
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
