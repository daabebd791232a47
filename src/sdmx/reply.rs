//! Answers: the entity tag, the `CacheFacts` the HTTP layer sets caching headers from, 200
//! or 304, and a body streamed chunk by chunk off the runtime.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::SdmxError;

pub(super) fn etag(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    format!("\"{}\"", hex::encode(&h.finalize()[..16]))
}

/// What an SDMX answer depends on, left in the response's extensions for the HTTP layer,
/// which sets the server's caching headers from it (`http::caching`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFacts {
    /// The strong entity tag, quoted.
    pub etag: String,
    /// Pinned to a past `knownAt`: the answer can never change.
    pub pinned: bool,
    /// The head revision the answer was read at.
    pub head: u64,
    /// The dataset read, if one.
    pub dataset: Option<String>,
}

impl CacheFacts {
    pub(super) fn new(etag: String, pinned: bool, head: u64, dataset: Option<&str>) -> Self {
        CacheFacts {
            etag,
            pinned,
            head,
            dataset: dataset.map(str::to_owned),
        }
    }

    /// True when `If-None-Match` names this answer (or is `*`), compared weakly.
    pub(super) fn matches(&self, headers: &HeaderMap) -> bool {
        headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
            v.to_str().is_ok_and(|list| {
                list.split(',')
                    .map(str::trim)
                    .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
            })
        })
    }
}

/// 200 with `body`, or 304 when `If-None-Match` names the answer; `facts` go with it.
pub(super) fn respond(
    body: impl FnOnce() -> Result<Body, SdmxError>,
    media: &str,
    facts: CacheFacts,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let mut r = if facts.matches(headers) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body()?).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media).expect("static media type"),
        );
        r
    };
    r.extensions_mut().insert(facts);
    Ok(r)
}

/// A body streamed from `answer`, one chunk at a time, each written off the runtime (a chunk
/// reads a page of figures under the ledger's lock).
pub(super) fn chunked_body<A: Send + 'static>(
    answer: A,
    next: fn(&mut A) -> Option<Result<String, SdmxError>>,
) -> Body {
    let stream = futures_util::stream::unfold(Some(answer), move |state| async move {
        let mut answer = state?;
        let (answer, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = next(&mut answer);
            (answer, chunk)
        })
        .await
        .ok()?;
        match chunk? {
            Ok(text) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(text)), Some(answer))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    Body::from_stream(stream)
}
