//! `/healthz` (liveness) and `/readyz` (readiness).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::AppState;

/// Liveness: 200 while the process serves. `writable` says whether a write would be
/// attempted now; `status` is `degraded` when something is wrong (a damaged log, a store
/// that failed to write), not for a node that is read-only by choice.
pub(super) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let health = state.ledger.health();
    let mut body = json!({
        "status": if health.degraded { "degraded" } else { "ok" },
        // Never the projection's lock, which a waiting write would make this wait for.
        "revision": state.ledger.head_revision(),
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
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let health = state.ledger.health();
    let revision = state.ledger.head_revision();
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
