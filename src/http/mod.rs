//! The HTTP layer: routes, GraphQL over HTTP and over WebSocket, health, metrics and the
//! accept loop. It depends on [`crate::graphql`] and below; nothing below depends on it.
//!
//! - `state`: [`ServerConfig`] and the shared [`AppState`].
//! - `graphql`: the GraphQL-over-HTTP endpoint (content negotiation, parsing, execution on
//!   the query pool, response cache).
//! - `ws`: `graphql-transport-ws` and the legacy `graphql-ws`.
//! - `sse`: subscriptions over Server-Sent Events (graphql-sse, distinct connections).
//! - `cache`: responses to read-only queries, keyed by revision.
//! - `caching`: HTTP caching headers (`Cache-Control`, `ETag`, surrogate keys) and 304s.
//! - `persisted`: persisted queries (automatic, and a trusted manifest).
//! - `purge`: purging HTTP caches when the ledger changes.
//! - `conn`: the accept loop (connection cap, timeouts, shutdown with a deadline).
//! - `peer`: who a client is (`X-Forwarded-For` from trusted proxies), the cap per client
//!   address, and the slots kept for health and metrics.
//! - `access_log`: the request log (`--access-log`) and slow requests (`--slow-query-ms`).
//! - `admin`: the online operations for admin tokens (export of the log, import of releases).
//! - `metrics`, `health`: `/metrics`, `/healthz` and `/readyz`.
//! - `tlog`: the transparency log under `/tlog/` (C2SP `tlog-tiles`), and `/checkpoint`.
//! - `cosigning`: checkpoints pushed to the witnesses of `--witness-policy`.

mod access_log;
mod admin;
mod cache;
pub mod caching;
pub(crate) mod conn;
mod cosigning;
mod graphql;
mod health;
mod metrics;
pub(crate) mod peer;
pub mod persisted;
mod purge;
mod sse;
mod state;
mod tlog;
pub mod tls;
mod ws;

use std::future::Future;
use std::sync::Arc;

use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use access_log::{AccessLogArgs, AccessLogFormat};
pub use conn::ConnLimits;
pub use graphql::GRAPHQL_RESPONSE_JSON;
pub use state::{app_state, AppState, ServerConfig};

use crate::ledger::Ledger;

/// The application's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let mut app = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/graphql/stream", get(sse::get).post(sse::post))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve_main))
        .route("/checkpoint", get(tlog::checkpoint))
        .route("/tlog/checkpoint", get(tlog::checkpoint))
        .route("/tlog/tile/{*path}", get(tlog::tile))
        .route("/tlog/event/{revision}", get(tlog::event))
        .route("/tlog/proof/{revision}", get(tlog::proof))
        .route("/admin/events", get(admin::events))
        .route(
            "/admin/releases",
            axum::routing::post(admin::releases).layer(axum::extract::DefaultBodyLimit::max(admin::MAX_BATCH_BYTES)),
        )
        .merge(crate::web::routes(state.config.graphiql))
        .merge(
            crate::sdmx::routes(state.ledger.clone(), state.config.sdmx, state.config.tokens.clone())
                .layer(middleware::map_response_with_state(state.clone(), caching::sdmx)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), peer::admit))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(middleware::from_fn_with_state(state.clone(), access_log::record));
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

/// Serves until `signal` resolves, then stops accepting, lets in-flight requests finish and
/// WebSockets complete their subscriptions and close (1001), all within the shutdown grace
/// period, and flushes the store.
pub async fn run(
    listener: TcpListener,
    ledger: Ledger,
    config: ServerConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_metrics(listener, None, ledger, config, signal).await
}

/// As [`run`]; `metrics`, if given, serves `/metrics` alone (see [`metrics`]) with the same
/// connection limits, until the same shutdown (`--metrics-listen`).
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    ledger: Ledger,
    config: ServerConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let limits = config.connections;
    let tls = config.tls.clone();
    if let Some(tls) = &tls {
        tls.reload_on_sighup();
    }
    let mut metrics_stopped = stopped.clone();
    let state = app_state(ledger.clone(), config, stopped)?;
    let metrics_server = metrics.map(|listener| {
        let app = Router::new()
            .route("/metrics", get(metrics::serve))
            .with_state(state.clone());
        let peers = peer::Peers::new(state.config.max_connections_per_peer, Vec::new());
        let stop = async move {
            let _ = metrics_stopped.wait_for(|stopping| *stopping).await;
        };
        tokio::spawn(conn::serve(listener, app, limits, peers, None, stop, async {}))
    });
    cosigning::spawn(state.clone());
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
    let peers = state.peers.clone();
    let purges = purge::spawn(state.clone());
    conn::serve(listener, router(state), limits, peers, tls, signal, websockets_closed).await;
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    if let Some(task) = purges {
        task.abort();
    }
    if let Err(e) = ledger.flush().await {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("stopped");
    Ok(())
}
