//! The online operations, for admin tokens only (`--admin-tokens`):
//!
//! - `GET /admin/events?after=N`: the acknowledged log after revision `N` (default 0), as the
//!   lines `tradeledger export` writes (`{"revision","hash","canonical"}`), read from the store
//!   a page at a time and checked link by link on the way, then one last line
//!   `{"checkpoint": NOTE}`: the signed checkpoint of the tree of every event up to the last
//!   one sent (the head when the request arrived), which `import --event-log --checkpoint`
//!   checks a restore against. Works on any store (sled, or a JetStream node's copy).
//! - `POST /admin/releases`: a batch of datasets and releases (`{"datasets": [...],
//!   "releases": [{"origin": {...}, "release": {...}}]}`), bounded in bytes and count. Every
//!   release is checked before any is recorded (a bad one refuses the batch, naming its origin:
//!   file and item or line), then they are recorded in order as `tradeledger import` records
//!   them: a release already recorded with the same content is a duplicate, not an error.
//!   With `?check=true`, the checks alone: nothing is recorded.
//!
//! Refusals are `application/json` objects `{"errors": [...]}` with a 4xx status: 401 without
//! a valid token, 403 with a token that is not an admin token, 400 for bad input, 413 for a
//! body over [`MAX_BATCH_BYTES`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::domain::{Dataset, ReleaseDraft};
use crate::import::{load, Batch, Origin, Place};

/// Largest body `POST /admin/releases` takes.
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Most releases in one `POST /admin/releases`.
pub const MAX_BATCH_RELEASES: usize = 1000;
/// Most datasets in one `POST /admin/releases`.
pub const MAX_BATCH_DATASETS: usize = 100;
/// Events read from the store per page of `GET /admin/events` (a page is one chunk of the
/// body; two wait to be sent at most, so a slow client holds a few pages, not the log).
const PAGE: usize = 128;
/// Longest origin file name in a batch.
const MAX_ORIGIN_BYTES: usize = 4096;

fn refuse(status: StatusCode, errors: Vec<String>) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "errors": errors })),
    )
        .into_response()
}

/// The admin token's name, or the refusal.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let header = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(Box::new(refuse(
                StatusCode::UNAUTHORIZED,
                vec!["the Authorization header must be `Bearer <token>`".into()],
            )))
        }
    };
    crate::auth::admin(&state.config.tokens, header).map_err(|(status, why)| {
        Box::new(refuse(
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            vec![why.into()],
        ))
    })
}

/// `after` from the query string: a revision from 0 to `head`.
fn after_of(query: Option<&str>, head: u64) -> Result<u64, String> {
    let mut after = 0;
    for (name, value) in serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .map_err(|e| format!("the query string is not valid: {e}"))?
    {
        match name.as_str() {
            "after" => {
                after = value
                    .parse::<u64>()
                    .map_err(|_| format!("after must be a revision, 0 or more (got `{}`)", value.escape_debug()))?
            }
            other => return Err(format!("unknown parameter `{}` (only `after`)", other.escape_debug())),
        }
    }
    if after > head {
        return Err(format!("after {after} is beyond the ledger head (revision {head})"));
    }
    Ok(after)
}

/// `GET /admin/events?after=N`.
pub async fn events(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    if let Err(refusal) = admin(&state, &headers) {
        return *refusal;
    }
    let ledger = state.ledger.clone();
    let head = ledger.read_on_runtime(|p| p.head().revision);
    let after = match after_of(query.as_deref(), head) {
        Ok(a) => a,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, vec![e]),
    };
    let checkpoint = match crate::ledger::transparency::checkpoint(&ledger, head) {
        Ok(c) => c.note,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, vec![e.to_string()]),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut next = after;
        while next < head {
            let l = ledger.clone();
            let from = next;
            let limit = PAGE.min((head - next) as usize);
            let page = tokio::task::spawn_blocking(move || l.audit_events(from, limit)).await;
            let failure = match page {
                Ok(Ok(page)) if !page.is_empty() => Ok(page),
                Ok(Ok(_)) => Err(format!("the log ends at revision {next} before {head}")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let page = match failure {
                Ok(page) => page,
                Err(e) => {
                    // Ends the body early: the client sees a cut stream, not a checkpoint.
                    tracing::error!(error = %e, "export stream stopped");
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
            let mut chunk = Vec::new();
            for a in &page {
                chunk.extend(crate::export::Line::encode(
                    a.event.envelope.revision,
                    &a.event.hash,
                    &a.canonical,
                ));
            }
            next = page.last().map_or(next, |a| a.event.envelope.revision);
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
        }
        let mut last = serde_json::to_vec(&json!({ "checkpoint": checkpoint })).expect("a string serializes");
        last.push(b'\n');
        let _ = tx.send(Ok(Bytes::from(last))).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Where a release of a batch came from, as the client read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOrigin {
    file: String,
    #[serde(default)]
    item: Option<usize>,
    #[serde(default)]
    lines: Option<Vec<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRelease {
    #[serde(default)]
    origin: Option<WireOrigin>,
    release: ReleaseDraft,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch {
    #[serde(default)]
    datasets: Vec<Dataset>,
    #[serde(default)]
    releases: Vec<WireRelease>,
}

/// The batch a body holds, bounded; the error says what is wrong with it.
fn batch_of(body: &[u8]) -> Result<Batch, String> {
    let wire: WireBatch = serde_json::from_slice(body).map_err(|e| format!("the body is not a batch: {e}"))?;
    if wire.releases.len() > MAX_BATCH_RELEASES {
        return Err(format!(
            "{} releases in one batch; at most {MAX_BATCH_RELEASES}",
            wire.releases.len()
        ));
    }
    if wire.datasets.len() > MAX_BATCH_DATASETS {
        return Err(format!(
            "{} datasets in one batch; at most {MAX_BATCH_DATASETS}",
            wire.datasets.len()
        ));
    }
    let mut batch = Batch {
        datasets: wire.datasets,
        ..Batch::default()
    };
    for (i, r) in wire.releases.into_iter().enumerate() {
        let origin = match r.origin {
            None => Origin {
                file: "request".into(),
                place: Place::Item(i),
            },
            Some(o) => {
                if o.file.len() > MAX_ORIGIN_BYTES || o.file.chars().any(char::is_control) {
                    return Err(format!(
                        "releases[{i}].origin.file: at most {MAX_ORIGIN_BYTES} bytes, no control characters"
                    ));
                }
                let place = match (o.item, o.lines) {
                    (Some(item), None) => Place::Item(item),
                    (None, Some(lines)) if lines.len() <= r.release.observations.len().max(1) => Place::Lines(lines),
                    _ => {
                        return Err(format!(
                            "releases[{i}].origin: give `item`, or `lines` (one per observation)"
                        ))
                    }
                };
                Origin { file: o.file, place }
            }
        };
        batch.releases.push(r.release);
        batch.origins.push(origin);
    }
    Ok(batch)
}

/// `POST /admin/releases`; with `?check=true`, only the checks, recording nothing.
pub async fn releases(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let actor = match admin(&state, &headers) {
        Ok(name) => name,
        Err(refusal) => return *refusal,
    };
    let batch = match batch_of(&body) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, vec![e]),
    };
    drop(body);
    let check_only = match query.as_deref().unwrap_or("") {
        "" | "check=false" => false,
        "check=true" => true,
        other => {
            return refuse(
                StatusCode::BAD_REQUEST,
                vec![format!(
                    "unknown query `{}` (only `check=true`)",
                    other.chars().take(200).collect::<String>().escape_debug()
                )],
            )
        }
    };
    if check_only {
        return match crate::import::check(&state.ledger, batch) {
            Ok(()) => (StatusCode::OK, axum::Json(json!({ "checked": true }))).into_response(),
            Err(errors) => refuse(StatusCode::BAD_REQUEST, errors),
        };
    }
    match load(&state.ledger, batch, &actor).await {
        Ok(r) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({
                "datasetsDefined": r.datasets_defined,
                "releasesRecorded": r.releases_recorded,
                "duplicates": r.duplicates,
                "observations": r.observations,
                "headRevision": r.head_revision,
            })),
        )
            .into_response(),
        Err(errors) => refuse(StatusCode::BAD_REQUEST, errors),
    }
}
