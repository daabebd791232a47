//! The HTTP layer's configuration and shared state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use super::cache::ResponseCache;
use super::caching::{CachingArgs, HttpCaching};
use super::conn::ConnLimits;
use super::metrics::Metrics;
use super::peer::Peers;
use super::persisted::{Manifest, Persisted};
use crate::auth::Tokens;
use crate::graphql::{build_schema, AppSchema, Limits, QueryLimits};
use crate::ledger::Ledger;
use crate::pool::QueryPool;
use crate::settings::{Cidr, LimitArgs};

/// Everything configurable about serving.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub request_timeout: Duration,
    /// How long a request waits for the outcome of a write it handed to the ledger's writer
    /// (from its start; see [`crate::ledger::WriteGate`]).
    pub write_timeout: Duration,
    pub max_ws_connections: usize,
    /// How long a WebSocket client has to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// Interval of keep-alive pings on idle WebSocket connections.
    pub ws_keepalive: Duration,
    /// Longest a WebSocket client may take to accept a frame.
    pub ws_send_timeout: Duration,
    /// Bytes of results one WebSocket may have waiting to be sent.
    pub ws_max_buffered_bytes: usize,
    /// Open connections (and WebSockets) from one client address.
    pub max_connections_per_peer: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    pub tokens: Tokens,
    /// Origins allowed by CORS; empty turns CORS off.
    pub cors_origins: Vec<String>,
    pub graphiql: bool,
    /// The request log's format (`--access-log`); `None` turns it off.
    pub access_log: Option<super::AccessLogFormat>,
    /// Query texts and variables in the request log (`--access-log-queries`).
    pub access_log_queries: bool,
    /// Requests slower than this are logged at WARN (`--slow-query-ms`).
    pub slow_query: Option<Duration>,
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
    pub connections: ConnLimits,
    /// `Cache-Control` of answers read at the head ([`super::caching`]).
    pub http_caching: HttpCaching,
    /// Trusted documents (`--persisted-queries`).
    pub persisted_queries: Option<Arc<Manifest>>,
    /// Run only the trusted documents.
    pub only_persisted: bool,
    /// Documents, and bytes of text, kept for automatic persisted queries.
    pub apq_max_entries: usize,
    pub apq_max_bytes: usize,
    /// Caches sent `PURGE` when an event is recorded ([`super::purge`]).
    pub purge_urls: Vec<String>,
    /// HTTPS on the main listener (`--tls-cert`/`--tls-key`); plain HTTP without.
    pub tls: Option<std::sync::Arc<super::tls::Tls>>,
    /// Limits of the SDMX endpoints.
    pub sdmx: crate::sdmx::SdmxConfig,
}

impl ServerConfig {
    /// The configuration under `limits`, with no tokens, CORS off and GraphiQL on.
    pub fn new(limits: &LimitArgs) -> Self {
        let ms = Duration::from_millis;
        ServerConfig {
            limits: Limits::from(limits),
            max_body_bytes: limits.max_body_bytes,
            max_batch: limits.max_batch,
            request_timeout: ms(limits.request_timeout_ms),
            write_timeout: ms(limits.write_timeout_ms),
            max_ws_connections: limits.max_ws_connections,
            ws_init_timeout: ms(limits.ws_init_timeout_ms),
            ws_keepalive: ms(limits.ws_keepalive_ms),
            ws_send_timeout: ms(limits.ws_send_timeout_ms),
            ws_max_buffered_bytes: limits.ws_max_buffered_bytes,
            max_connections_per_peer: limits.max_connections_per_peer as usize,
            trusted_proxies: limits.trusted_proxies.clone(),
            tokens: Tokens::default(),
            cors_origins: Vec::new(),
            graphiql: true,
            access_log: None,
            access_log_queries: false,
            slow_query: None,
            response_cache_entries: limits.response_cache_entries,
            response_cache_bytes: limits.response_cache_bytes,
            max_response_bytes: limits.max_response_bytes,
            query_threads: limits.query_threads,
            max_concurrent_queries: limits.max_concurrent_queries as usize,
            max_queued_queries: limits.max_queued_queries,
            max_subscriptions_per_connection: limits.max_subscriptions_per_connection,
            sdmx: crate::sdmx::SdmxConfig {
                max_observations: limits.sdmx_max_observations,
            },
            connections: ConnLimits {
                header_read_timeout: ms(limits.header_read_timeout_ms),
                idle_timeout: ms(limits.idle_timeout_ms),
                max_connections: limits.max_connections as usize,
                shutdown_grace: ms(limits.shutdown_grace_ms),
            },
            http_caching: HttpCaching::default(),
            persisted_queries: None,
            only_persisted: false,
            apq_max_entries: CachingArgs::default().apq_max_entries,
            apq_max_bytes: CachingArgs::default().apq_max_bytes,
            purge_urls: Vec::new(),
            tls: None,
        }
    }
}

impl Default for ServerConfig {
    /// The defaults of the `serve` flags ([`LimitArgs`]).
    fn default() -> Self {
        ServerConfig::new(&LimitArgs::default())
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
    /// Connections held per client address.
    pub peers: Arc<Peers>,
    /// Persisted documents: the trusted manifest and those registered automatically.
    pub persisted: Persisted,
    /// Full entry bundles of the tile log, already built.
    pub bundles: super::tlog::BundleCache,
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
        schema: build_schema(
            ledger.clone(),
            crate::graphql::Limits {
                request_timeout: config.request_timeout,
                ..config.limits
            },
        ),
        ws_slots: Arc::new(Semaphore::new(config.max_ws_connections)),
        responses: ResponseCache::new(config.response_cache_entries, config.response_cache_bytes),
        queries: QueryLimits::new(config.limits, ledger.clone()),
        metrics: Metrics::new(),
        peers: Peers::new(config.max_connections_per_peer, config.trusted_proxies.clone()),
        bundles: Default::default(),
        persisted: Persisted::new(
            config.persisted_queries.clone(),
            config.only_persisted,
            config.apq_max_entries,
            config.apq_max_bytes,
        ),
        ledger,
        config,
        shutdown,
    }))
}
