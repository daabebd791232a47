//! The HTTP layer's configuration and shared state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use super::cache::ResponseCache;
use super::conn::ConnLimits;
use super::metrics::Metrics;
use crate::auth::Tokens;
use crate::graphql::{build_schema, AppSchema, Limits, QueryLimits};
use crate::ledger::Ledger;
use crate::pool::QueryPool;

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
    pub connections: ConnLimits,
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
            connections: ConnLimits::default(),
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
