//! SDMX-REST 1.5 (SDMX 2.1) over the ledger, under `/sdmx/2.1/`: structure queries
//! (`dataflow`, `datastructure`, `codelist`, `conceptscheme`) answered with SDMX-ML 2.1
//! Structure messages or SDMX-JSON 1.0 structure messages, and data queries
//! (`data/{flowRef}/{key}/{providerRef}`) answered with SDMX-ML 2.1 GenericData or
//! StructureSpecificData, SDMX-CSV 1.0 or SDMX-JSON 1.0, streamed.
//!
//! Vintages: `asOf` (from SDMX-REST 2.2, accepted here as an extension) reads the figures as
//! published at that time; `knownAt` (an extension) reads them as the ledger showed them at
//! that time, which never changes once it is past; `includeHistory=true` writes one data set
//! per release; `updatedAfter` keeps the figures set by releases published after the time.
//!
//! SDMX-REST 2.2 (SDMX 3.0) data and schema queries under `/sdmx/3.0/` (`v30`) resolve to the
//! same `DataRequest` and stream alike; its structure queries (`structure30`) to the same
//! `StructureQuery`, answered with SDMX-JSON 2.0 or SDMX-ML 3.0. Answers carry `CacheFacts`, from which the HTTP layer
//! sets the server's caching headers.
//!
//! - this file: the routes, the read check and the dispatch of a path to its query.
//! - `negotiate`: SDMX-REST 1.5 content negotiation (`Accept`, `format`).
//! - `rest15`: SDMX-REST 1.5 structure, schema and data paths and parameters.
//! - `serve`: answering a parsed structure or data query (either API), with `plan`.
//! - `reply`: entity tags, `CacheFacts`, 200 or 304, streamed bodies.
//! - `query`: the path, the query string and the time parameters, bounded.
//! - `v30`: SDMX-REST 2.2 paths, parameters and formats.
//! - `filter`: SDMX-REST 2.2 component filters (`c[...]`).
//! - `dsd`: a dataset's definition as SDMX artefacts.
//! - `structure`: structure queries, the artefacts they select and the structure messages in
//!   every format.
//! - `structure30`: SDMX-REST 2.2 structure paths, parameters, versions and formats.
//! - `schema`: the XML schema of a DSD's structure-specific data.
//! - `version`: artefact versions in queries (SDMX-REST 2.2 and 1.5 rules).
//! - `data`: data queries, read in pages and written per format.
//! - `error`: SDMX error messages.
//! - `xml`: escaping and namespaces.

mod data;
mod dsd;
mod error;
mod filter;
pub mod ingest;
mod negotiate;
mod query;
mod reply;
mod rest15;
mod schema;
mod serve;
mod structure;
mod structure30;
mod v30;
mod version;
mod xml;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::{authorize, bearer, Tokens};
use crate::ledger::Ledger;
use data::DataFormat;
use error::{Kind, SdmxError};
use query::shorten;
use structure::Resource;

use negotiate::{by_accept, media_ranges, negotiate_data, param, MediaRange};
use reply::{chunked_body, etag, respond};
use rest15::{check_params, data_query, schema_query, structure_query};
use serve::{obs_dimension, plan, resolve_key, serve_data, serve_structure, Common, DataRequest};

pub use dsd::agency_id;
pub use reply::CacheFacts;
/// Limits of the SDMX endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdmxConfig {
    /// Most observations (or, with `includeHistory`, versions) one data answer may hold.
    pub max_observations: u64,
}

struct Sdmx {
    ledger: Ledger,
    config: SdmxConfig,
    /// Reads need one of these when read tokens are configured, as for GraphQL.
    tokens: Tokens,
}

/// The SDMX routes, over `ledger`.
pub fn routes<S: Clone + Send + Sync + 'static>(ledger: Ledger, config: SdmxConfig, tokens: Tokens) -> Router<S> {
    Router::new()
        .route("/sdmx/2.1/{*path}", get(v21))
        .route("/sdmx/3.0/{*path}", get(v30))
        .with_state(Arc::new(Sdmx { ledger, config, tokens }))
}

/// SDMX-REST 1.5: errors in SDMX-ML 2.1, or SDMX-JSON 1.0 when a data query asked for it.
async fn v21(State(sdmx): State<Arc<Sdmx>>, Path(path): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let json = path.split('/').next().is_some_and(|r| r.eq_ignore_ascii_case("data")) && {
        let params = query::parse_query_string(uri.query()).unwrap_or_default();
        let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        negotiate_data(accept, get("format"), get("formatVersion")) == Ok(DataFormat::Json10)
    };
    match answer(sdmx, &path, &uri, &headers).await {
        Ok(r) => r,
        Err(e) if json => e.into_styled(error::ErrorStyle::Json10),
        Err(e) => e.into_response(),
    }
}

/// SDMX-REST 2.2: errors in the format the answer would have had.
async fn v30(State(sdmx): State<Arc<Sdmx>>, Path(path): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let params = query::parse_query_string(uri.query()).unwrap_or_default();
    let style = if path.starts_with("structure") {
        structure30::error_style(&headers, &params)
    } else {
        v30::error_style(&headers, &params)
    };
    match answer30(sdmx, &path, &uri, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_styled(style),
    }
}

async fn answer30(sdmx: Arc<Sdmx>, path: &str, uri: &Uri, headers: &HeaderMap) -> Result<Response, SdmxError> {
    check_request(&sdmx, path, headers)?;
    let params = query::parse_query_string(uri.query())?;
    let segments: Vec<&str> = path.split('/').collect();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match segments[0] {
        "data" => v30::data_query(sdmx, &segments[1..], &params, accept, headers).await,
        "schema" => v30::schema_query(&sdmx, &segments[1..], &params, headers),
        "structure" => structure30::query(&sdmx, &segments[1..], &params, accept, headers),
        "availability" | "metadata" | "registration" => Err(SdmxError::not_implemented(format!(
            "the `{}` resource is not implemented under /sdmx/3.0/; this service answers data, schema and structure queries here",
            segments[0]
        ))),
        other => Err(SdmxError::no_results(format!(
            "`{}` is no SDMX-REST resource",
            shorten(other)
        ))),
    }
}

/// The path's length and the read token, checked before anything else.
fn check_request(sdmx: &Sdmx, path: &str, headers: &HeaderMap) -> Result<(), SdmxError> {
    if path.len() > 4096 {
        return Err(SdmxError::syntax("the path is longer than 4096 bytes"));
    }
    let secret = match headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(bearer))
    {
        None => None,
        Some(Some(s)) => Some(s),
        Some(None) => {
            return Err(SdmxError::new(
                Kind::Unauthorized,
                "the Authorization header must be `Bearer <token>`",
            ))
        }
    };
    authorize(&sdmx.tokens, secret).map_err(|why| SdmxError::new(Kind::Unauthorized, why))?;
    Ok(())
}

async fn answer(sdmx: Arc<Sdmx>, path: &str, uri: &Uri, headers: &HeaderMap) -> Result<Response, SdmxError> {
    check_request(&sdmx, path, headers)?;
    let params = query::parse_query_string(uri.query())?;
    let segments: Vec<&str> = path.split('/').collect();
    let resource = segments[0].to_ascii_lowercase();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if resource == "data" {
        return data_query(sdmx, &segments[1..], &params, accept, headers).await;
    }
    if let Some(r) = Resource::parse(&resource) {
        return structure_query(&sdmx, r, &segments[1..], &params, accept, headers);
    }
    if resource == "schema" {
        return schema_query(&sdmx, &segments[1..], &params, accept, headers);
    }
    if structure::NOT_IMPLEMENTED.contains(&resource.as_str())
        || ["metadata", "availableconstraint"].contains(&resource.as_str())
    {
        return Err(SdmxError::not_implemented(format!(
            "the `{resource}` resource is not implemented; this service answers dataflow, datastructure, codelist, conceptscheme and data queries"
        )));
    }
    Err(SdmxError::no_results(format!(
        "`{}` is no SDMX-REST resource",
        shorten(segments[0])
    )))
}
