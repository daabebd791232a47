//! Prometheus metrics, served as text on `/metrics`.

use prometheus_client::encoding::text::encode;
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
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
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
    /// Witnesses of `--witness-policy` that refused a checkpoint or do not know the log.
    pub witness_alarms: Family<WitnessAlarmLabels, Counter>,
    head_revision: Gauge,
    events: Gauge,
    releases: Gauge,
    versions: Gauge,
    subscribers: Gauge,
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
        Metrics {
            registry,
            requests,
            latency,
            websocket_connections,
            response_cache_bytes,
            response_cache_hits,
            response_cache_misses,
            fast_path_answers,
            witness_alarms,
            head_revision,
            events,
            releases,
            versions,
            subscribers,
        }
    }

    /// Renders the metrics in the Prometheus text format, reading ledger figures now.
    pub fn render(&self, ledger: &Ledger) -> String {
        {
            let p = ledger.read();
            let head = p.head().revision as i64;
            self.head_revision.set(head);
            self.events.set(head);
            self.releases.set(p.releases().len() as i64);
            self.versions.set(p.version_count() as i64);
        }
        self.subscribers.set(ledger.subscriber_count() as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// `GET /metrics`: OpenMetrics for scrapers that ask for it in `Accept`, Prometheus text
/// 0.0.4 (`text/plain`, which a browser or `curl` shows) otherwise. The body is the same:
/// the 0.0.4 format reads OpenMetrics' extra lines (`# UNIT`, `# EOF`) as comments.
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
