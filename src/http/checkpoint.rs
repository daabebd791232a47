//! `GET /checkpoint`: the signed note of the acknowledged head, as `text/plain`, the way
//! transparency logs publish their checkpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{authorize, bearer};

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn checkpoint(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    // Reads protected by tokens cover the checkpoint too.
    let secret = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(bearer) {
            Some(s) => Some(s),
            None => {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`\n".into(),
                )
            }
        },
    };
    if let Err(why) = authorize(&state.config.tokens, secret) {
        return text(StatusCode::UNAUTHORIZED, format!("{why}\n"));
    }
    let size = state.ledger.read().head().revision;
    match crate::ledger::transparency::checkpoint(&state.ledger, size) {
        Ok(c) => text(StatusCode::OK, c.note),
        Err(e) => {
            tracing::error!(error = %e, "no checkpoint to serve");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}
