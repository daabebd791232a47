//! The transparency log over HTTP, as C2SP `tlog-tiles` has it, under `/tlog/`:
//!
//! - `/tlog/checkpoint` (and `/checkpoint`): the signed note of the acknowledged head;
//! - `/tlog/tile/<L>/<N>[.p/<W>]`: hash tiles;
//! - `/tlog/tile/entries/<N>[.p/<W>]`: entry bundles (gzip when the client accepts it);
//! - `/tlog/event/<revision>`: an event's canonical bytes, which its entry commits to;
//! - `/tlog/proof/<revision>`: a `c2sp.org/tlog-proof@v1` of that event.
//!
//! Tiles are derived from the in-memory tree the store keeps, bounded by the acknowledged
//! head, so a tile once served never changes: full tiles are cached for a year.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{authorize, bearer};
use crate::ledger::transparency;
use crate::tlog::tiles::{TileError, TileKind, TilePath, TILE_WIDTH};

const TEXT: &str = "text/plain; charset=utf-8";
const OCTETS: &str = "application/octet-stream";
/// Full tiles and bundles, and events: never change once served.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Partial tiles: their content never changes either, but the log may stop serving them
/// once the full tile exists.
const PARTIAL: &str = "public, max-age=60";
/// The checkpoint moves with every write.
const MUTABLE: &str = "public, max-age=1, must-revalidate";

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, TEXT), (header::CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

/// Reads protected by tokens cover the transparency log too: the refusal, if any.
fn refused(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    check_read(state, headers)
        .err()
        .map(|(status, body)| text(status, body))
}

fn check_read(state: &AppState, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let secret = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(bearer) {
            Some(s) => Some(s),
            None => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`\n".into(),
                ))
            }
        },
    };
    authorize(&state.config.tokens, secret)
        .map(|_| ())
        .map_err(|why| (StatusCode::UNAUTHORIZED, format!("{why}\n")))
}

/// `GET /tlog/checkpoint` and `GET /checkpoint`.
pub async fn checkpoint(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&state, &headers) {
        return r;
    }
    let size = state.ledger.read_on_runtime(|p| p.head().revision);
    match transparency::checkpoint(&state.ledger, size) {
        Ok(c) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, TEXT), (header::CACHE_CONTROL, MUTABLE)],
            c.note,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "no checkpoint to serve");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}

fn tile_error(e: TileError) -> Response {
    match e {
        TileError::BadPath(_) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        TileError::NotFound(_) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
        TileError::Unavailable(_) => {
            tracing::error!(error = %e, "a tile cannot be served");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}

/// Whether `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !zero
        })
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Most full entry bundles kept in memory ([`BundleCache`]).
pub const BUNDLE_CACHE_ENTRIES: usize = 64;
/// Most bytes of full entry bundles kept in memory, their gzip included.
pub const BUNDLE_CACHE_BYTES: usize = 16 << 20;

/// Full entry bundles already built. They never change (the log only grows), and building
/// one reads up to 256 events from the store and hashes each entry, so the latest ones asked
/// for are kept: at most [`BUNDLE_CACHE_ENTRIES`] bundles and [`BUNDLE_CACHE_BYTES`] bytes,
/// the first one in going first. Partial bundles are not kept.
#[derive(Default)]
pub struct BundleCache {
    inner: Mutex<Bundles>,
}

#[derive(Default)]
struct Bundles {
    by_index: HashMap<u64, Arc<Bundle>>,
    order: VecDeque<u64>,
    bytes: usize,
}

/// One bundle, and its gzip made on first demand.
struct Bundle {
    raw: Bytes,
    gzip: OnceLock<Option<Bytes>>,
}

impl Bundle {
    fn new(raw: Vec<u8>) -> Bundle {
        Bundle {
            raw: Bytes::from(raw),
            gzip: OnceLock::new(),
        }
    }

    /// Counted as twice its size: the gzip, if made, is no larger than the bundle plus a
    /// few bytes of header on these short, repetitive entries.
    fn weight(&self) -> usize {
        2 * self.raw.len() + 64
    }

    fn gzipped(&self) -> Option<Bytes> {
        self.gzip.get_or_init(|| gzip(&self.raw).ok().map(Bytes::from)).clone()
    }
}

impl BundleCache {
    fn get(&self, index: u64) -> Option<Arc<Bundle>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_index.get(&index).cloned()
    }

    fn insert(&self, index: u64, bundle: Arc<Bundle>) {
        let weight = bundle.weight();
        if weight > BUNDLE_CACHE_BYTES {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.by_index.contains_key(&index) {
            return;
        }
        while inner.order.len() >= BUNDLE_CACHE_ENTRIES || inner.bytes + weight > BUNDLE_CACHE_BYTES {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(gone) = inner.by_index.remove(&oldest) {
                inner.bytes -= gone.weight();
            }
        }
        inner.order.push_back(index);
        inner.bytes += weight;
        inner.by_index.insert(index, bundle);
    }

    #[cfg(test)]
    fn len_and_bytes(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.by_index.len(), inner.bytes)
    }
}

/// `GET /tlog/tile/{*path}`: hash tiles and entry bundles.
pub async fn tile(State(state): State<Arc<AppState>>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&state, &headers) {
        return r;
    }
    let tile = match TilePath::parse(&path) {
        Ok(t) => t,
        Err(e) => return tile_error(e),
    };
    let cache = if tile.width == TILE_WIDTH { IMMUTABLE } else { PARTIAL };
    let bundle = match tile.kind {
        TileKind::Hashes { .. } => match transparency::hash_tile(&state.ledger, &tile) {
            Ok(bytes) => {
                let mut response = (StatusCode::OK, bytes).into_response();
                let h = response.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTETS));
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
                return response;
            }
            Err(e) => return tile_error(e),
        },
        TileKind::Entries => match entry_bundle(&state, tile).await {
            Ok(b) => b,
            Err(e) => return tile_error(e),
        },
    };
    let gzipped = if accepts_gzip(&headers) { bundle.gzipped() } else { None };
    let mut response = match gzipped {
        Some(z) => {
            let mut r = (StatusCode::OK, z).into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        None => (StatusCode::OK, bundle.raw.clone()).into_response(),
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTETS));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// The entry bundle `tile`: a full one from the cache when it is there, else read from the
/// store (up to 256 reads: off the async workers) and, if full, kept.
async fn entry_bundle(state: &AppState, tile: TilePath) -> Result<Arc<Bundle>, TileError> {
    let full = tile.width == TILE_WIDTH;
    if full {
        if let Some(hit) = state.bundles.get(tile.index) {
            return Ok(hit);
        }
    }
    let ledger = state.ledger.clone();
    let raw = match tokio::task::spawn_blocking(move || transparency::entry_bundle(&ledger, &tile)).await {
        Ok(r) => r?,
        Err(e) => return Err(TileError::Unavailable(format!("reading the bundle: {e}"))),
    };
    let bundle = Arc::new(Bundle::new(raw));
    if full {
        state.bundles.insert(tile.index, bundle.clone());
    }
    Ok(bundle)
}

/// A revision in a path: a decimal from 1 to 2^63 - 1, without leading zeroes; else the
/// error to answer with.
pub(crate) fn parse_revision(text: &str) -> Result<u64, String> {
    let value = if text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') {
        text.parse::<u64>().ok().filter(|v| *v >= 1 && *v <= i64::MAX as u64)
    } else {
        None
    };
    value.ok_or_else(|| {
        let shown: String = text.chars().take(40).collect();
        format!(
            "the revision `{}` is not a decimal from 1 without leading zeroes\n",
            shown.escape_debug()
        )
    })
}

/// `GET /tlog/event/{revision}`: the canonical bytes an entry commits to.
pub async fn event(State(state): State<Arc<AppState>>, Path(revision): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&state, &headers) {
        return r;
    }
    let revision = match parse_revision(&revision) {
        Ok(r) => r,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    match transparency::event_bytes(&state.ledger, revision) {
        Ok(Some(bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            format!("the log has no revision {revision} (yet)\n"),
        ),
        Err(e) => {
            tracing::error!(error = %e, revision, "an event cannot be served");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}

/// `GET /tlog/proof/{revision}`: the `c2sp.org/tlog-proof@v1` of the event at `revision`
/// against the latest checkpoint the witnesses cosigned (the head without a witness policy).
pub async fn proof(State(state): State<Arc<AppState>>, Path(revision): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&state, &headers) {
        return r;
    }
    let revision = match parse_revision(&revision) {
        Ok(r) => r,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let head = state.ledger.read_on_runtime(|p| p.head().revision);
    if revision > head {
        return text(
            StatusCode::NOT_FOUND,
            format!("the log has no revision {revision} (yet): its head is {head}\n"),
        );
    }
    let size = transparency::proof_size(&state.ledger, revision);
    match transparency::tlog_proof(&state.ledger, revision, size) {
        Ok(proof) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, TEXT.to_owned()),
                // Cosignatures of later sizes come in: a proof is short-lived.
                (header::CACHE_CONTROL, MUTABLE.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"revision-{revision}.tlog-proof\""),
                ),
            ],
            proof,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, revision, "a proof cannot be served");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache keeps at most its count and its bytes, dropping the first ones in.
    #[test]
    fn the_bundle_cache_is_bounded() {
        let cache = BundleCache::default();
        for i in 0..(BUNDLE_CACHE_ENTRIES as u64 + 10) {
            cache.insert(i, Arc::new(Bundle::new(vec![7; 100])));
        }
        assert_eq!(cache.len_and_bytes().0, BUNDLE_CACHE_ENTRIES);
        assert!(cache.get(0).is_none() && cache.get(9).is_none());
        assert!(cache.get(10).is_some() && cache.get(BUNDLE_CACHE_ENTRIES as u64 + 9).is_some());

        let big = BUNDLE_CACHE_BYTES / 2 / 3;
        for i in 1000..1010 {
            cache.insert(i, Arc::new(Bundle::new(vec![1; big])));
        }
        let (n, bytes) = cache.len_and_bytes();
        assert!(bytes <= BUNDLE_CACHE_BYTES, "{bytes}");
        assert!(n < BUNDLE_CACHE_ENTRIES && cache.get(1009).is_some() && cache.get(1000).is_none());
        // One bundle over the whole budget is served but not kept.
        cache.insert(2000, Arc::new(Bundle::new(vec![0; BUNDLE_CACHE_BYTES])));
        assert!(cache.get(2000).is_none());
        assert_eq!(cache.get(1009).unwrap().gzipped().map(|z| z.len() < big), Some(true));
    }
}
