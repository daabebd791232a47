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
//! - `query`: the path, the query string and the time parameters, bounded.
//! - `v30`: SDMX-REST 2.2 paths, parameters and formats.
//! - `filter`: SDMX-REST 2.2 component filters (`c[...]`).
//! - `dsd`: a dataset's definition as SDMX artefacts.
//! - `structure`: structure queries, the artefacts they select and the SDMX-ML 2.1 message.
//! - `structure30`: SDMX-REST 2.2 structure paths, parameters, versions and formats.
//! - `structure_formats`: SDMX-ML 3.0, SDMX-JSON 2.0 and 1.0 structure messages.
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
mod query;
mod schema;
mod structure;
mod structure30;
mod structure_formats;
mod v30;
mod version;
mod xml;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::auth::{authorize, bearer, Tokens};
use crate::domain::dataset::KNOWN_MEASURES;
use crate::domain::Frequency;
use crate::ledger::Ledger;
use crate::projection::{AsOf, KeyPattern};
use data::{DataFormat, Selection};
use dsd::Flow;
use error::{Kind, SdmxError};
use query::{shorten, DataDetail, FlowRef, ObsDimension};
use structure::{References, Resource, StructureFormat, StructureQuery, Versions};

pub use dsd::agency_id;

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

const STRUCTURE_TYPES: &str =
    "application/vnd.sdmx.structure+xml;version=2.1, application/vnd.sdmx.structure+json;version=1.0.0";

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

/// The value of a parameter, after checking that every parameter is one of `known`.
fn check_params<'p>(
    params: &'p [(String, String)],
    known: &[&str],
) -> Result<impl Fn(&str) -> Option<&'p str> + 'p, SdmxError> {
    if let Some((name, _)) = params.iter().find(|(n, _)| !known.contains(&n.as_str())) {
        return Err(SdmxError::syntax(format!(
            "unknown parameter `{}`; this query takes {}",
            shorten(name),
            known.join(", ")
        )));
    }
    Ok(move |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()))
}

/// A media range of `Accept`: its type, parameters and quality.
struct MediaRange {
    media: String,
    params: Vec<(String, String)>,
    q: f32,
}

fn media_ranges(accept: &str) -> Vec<MediaRange> {
    let mut out: Vec<MediaRange> = accept
        .split(',')
        .take(32)
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let mut params = Vec::new();
            let mut q = 1.0;
            for p in parts {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned());
                if k == "q" {
                    q = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v));
                }
            }
            (!media.is_empty() && q > 0.0).then_some(MediaRange { media, params, q })
        })
        .collect();
    out.sort_by(|a, b| b.q.total_cmp(&a.q));
    out
}

fn param<'m>(m: &'m MediaRange, name: &str) -> Option<&'m str> {
    m.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn data_format_of(m: &MediaRange) -> Option<DataFormat> {
    let ml21 = || param(m, "version").is_none_or(|v| v == "2.1");
    match m.media.as_str() {
        "application/vnd.sdmx.genericdata+xml" if ml21() => Some(DataFormat::Generic { time_series: false }),
        "application/vnd.sdmx.generictimeseriesdata+xml" if ml21() => Some(DataFormat::Generic { time_series: true }),
        "application/vnd.sdmx.structurespecificdata+xml" if ml21() => {
            Some(DataFormat::StructureSpecific { time_series: false })
        }
        "application/vnd.sdmx.structurespecifictimeseriesdata+xml" if ml21() => {
            Some(DataFormat::StructureSpecific { time_series: true })
        }
        "application/vnd.sdmx.data+csv" => {
            let version = param(m, "version").is_none_or(|v| v == "1.0.0" || v == "1.0");
            let labels = match param(m, "labels") {
                None | Some("id") => false,
                Some("both") => true,
                Some(_) => return None,
            };
            let original = param(m, "timeformat").is_none_or(|t| t == "original");
            (version && original).then_some(DataFormat::Csv { labels })
        }
        "text/csv" => Some(DataFormat::Csv { labels: false }),
        // SDMX-JSON 1.0, the one JSON data format of SDMX-REST 1.5.
        "application/vnd.sdmx.data+json" if param(m, "version").is_none_or(|v| v == "1.0.0" || v == "1.0") => {
            Some(DataFormat::Json10)
        }
        "application/json" => Some(DataFormat::Json10),
        "application/xml" | "text/xml" | "*/*" | "application/*" => Some(DataFormat::Generic { time_series: false }),
        _ => None,
    }
}

const DATA_TYPES: &str = "application/vnd.sdmx.genericdata+xml;version=2.1, application/vnd.sdmx.structurespecificdata+xml;version=2.1, application/vnd.sdmx.generictimeseriesdata+xml;version=2.1, application/vnd.sdmx.structurespecifictimeseriesdata+xml;version=2.1, application/vnd.sdmx.data+csv;version=1.0.0 (labels=id|both, timeFormat=original), application/vnd.sdmx.data+json;version=1.0.0";

/// The data format: the `format` parameter first (the SDMX-REST extension for browsers),
/// else `Accept`; SDMX-ML 2.1 GenericData when neither says.
fn negotiate_data(accept: Option<&str>, format: Option<&str>, version: Option<&str>) -> Result<DataFormat, SdmxError> {
    if let Some(f) = format {
        let ml = |ts, ss| match version {
            None | Some("2.1") => Ok(if ss {
                DataFormat::StructureSpecific { time_series: ts }
            } else {
                DataFormat::Generic { time_series: ts }
            }),
            Some(v) => Err(not_acceptable(format!("format {f} version {}", shorten(v)))),
        };
        return match f {
            "genericdata" => ml(false, false),
            "generictimeseriesdata" => ml(true, false),
            "structurespecificdata" => ml(false, true),
            "structurespecifictimeseriesdata" => ml(true, true),
            "csvdata" => match version {
                None | Some("1.0.0") | Some("1.0") => Ok(DataFormat::Csv { labels: false }),
                Some(v) => Err(not_acceptable(format!("format csvdata version {}", shorten(v)))),
            },
            "jsondata" => match version {
                None | Some("1.0.0") | Some("1.0") => Ok(DataFormat::Json10),
                Some(v) => Err(not_acceptable(format!("format jsondata version {}", shorten(v)))),
            },
            "structure" | "jsonstructure" | "schema" | "genericmetadata" | "structurespecificmetadata" => {
                Err(not_acceptable(format!("format {f}")))
            }
            other => Err(SdmxError::syntax(format!(
                "parameter `format` must be genericdata, structurespecificdata, generictimeseriesdata, structurespecifictimeseriesdata, csvdata or jsondata, not `{}`",
                shorten(other)
            ))),
        };
    }
    by_accept(accept, DataFormat::Generic { time_series: false }, data_format_of).map_err(not_acceptable)
}

/// The first format of `Accept` (by quality) that `of` knows; `default` without `Accept`;
/// else the header, quoted for a 406.
fn by_accept(
    accept: Option<&str>,
    default: DataFormat,
    of: fn(&MediaRange) -> Option<DataFormat>,
) -> Result<DataFormat, String> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(default);
    };
    media_ranges(accept)
        .iter()
        .find_map(of)
        .ok_or_else(|| format!("`{}`", shorten(accept)))
}

fn not_acceptable(what: String) -> SdmxError {
    SdmxError::new(
        Kind::NotAcceptable,
        format!(
            "{what} is not offered; this service offers {DATA_TYPES} for data and {STRUCTURE_TYPES} for structures"
        ),
    )
}

/// The structure format: `format` first, else `Accept`; SDMX-ML 2.1 when neither says.
fn negotiate_structure(
    accept: Option<&str>,
    format: Option<&str>,
    version: Option<&str>,
) -> Result<StructureFormat, SdmxError> {
    if let Some(f) = format {
        return match (f, version) {
            ("structure", None | Some("2.1")) => Ok(StructureFormat::Ml21),
            ("jsonstructure", None | Some("1.0.0") | Some("1.0")) => Ok(StructureFormat::Json10),
            (
                "structure"
                | "jsonstructure"
                | "genericdata"
                | "structurespecificdata"
                | "csvdata"
                | "jsondata"
                | "schema",
                _,
            ) => Err(not_acceptable(format!("format {f}"))),
            (other, _) => Err(SdmxError::syntax(format!(
                "parameter `format` must be structure or jsonstructure, not `{}`",
                shorten(other)
            ))),
        };
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(StructureFormat::Ml21);
    };
    media_ranges(accept)
        .iter()
        .find_map(|m| match m.media.as_str() {
            "application/vnd.sdmx.structure+xml" if param(m, "version").is_none_or(|v| v == "2.1") => {
                Some(StructureFormat::Ml21)
            }
            "application/vnd.sdmx.structure+json" if param(m, "version").is_none_or(|v| v == "1.0.0" || v == "1.0") => {
                Some(StructureFormat::Json10)
            }
            "application/json" => Some(StructureFormat::Json10),
            "application/xml" | "text/xml" | "*/*" | "application/*" => Some(StructureFormat::Ml21),
            _ => None,
        })
        .ok_or_else(|| not_acceptable(format!("`{}`", shorten(accept))))
}

fn structure_query(
    sdmx: &Sdmx,
    resource: Resource,
    segments: &[&str],
    params: &[(String, String)],
    accept: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let get = check_params(params, &["detail", "references", "format", "formatVersion"])?;
    let format = negotiate_structure(accept, get("format"), get("formatVersion"))?;
    let item_scheme = matches!(resource, Resource::Codelist | Resource::ConceptScheme);
    let max_segments = if item_scheme { 4 } else { 3 };
    let segments: Vec<&str> = segments.iter().copied().filter(|s| !s.is_empty()).collect();
    if segments.len() > max_segments {
        return Err(SdmxError::syntax(format!(
            "a {} query has at most {max_segments} path parts after the resource (agency, id, version{})",
            segments.len(),
            if item_scheme { ", item" } else { "" }
        )));
    }
    let at = |i: usize| segments.get(i).copied();
    let query = StructureQuery {
        resources: vec![resource],
        agencies: structure::id_list("agency", at(0), &["all", "*"])?,
        ids: structure::id_list("resource id", at(1), &["all", "*"])?,
        versions: structure::id_list("version", at(2), &["latest", "all", "*", "~"])?
            .map_or(Versions::Latest, Versions::Exact),
        items: structure::id_list("item id", at(3), &["all", "*"])?,
        detail: get("detail")
            .map(structure::Detail::parse)
            .transpose()?
            .unwrap_or(structure::Detail::Full),
        references: vec![get("references")
            .map(References::parse)
            .transpose()?
            .unwrap_or(References::None)],
    };
    serve_structure(sdmx, query, format, headers)
}

/// Answers a parsed structure query (either API) in `format`.
fn serve_structure(
    sdmx: &Sdmx,
    query: StructureQuery,
    format: StructureFormat,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let projection = sdmx.ledger.read_in_place();
    let defs: Vec<Arc<crate::domain::Dataset>> = projection.datasets().iter().map(|v| v.def.clone()).collect();
    let prepared = projection.last_recorded_at().unwrap_or_else(Utc::now);
    let head = projection.head().revision;
    drop(projection);
    let flows: Vec<Flow> = defs
        .iter()
        .map(|d| Flow::new(d))
        .filter(Flow::is_representable)
        .collect();
    let policy = CacheFacts::new(
        etag(&["structure", &format!("{query:?}{format:?}"), &head.to_string()]),
        false,
        head,
        None,
    );
    respond(
        || Ok(structure::answer(&query, &flows, prepared, format)?.into()),
        format.media_type(),
        policy,
        headers,
    )
}

const SCHEMA_XSD: &str = "application/vnd.sdmx.schema+xml; version=2.1";

/// `schema/{context}/{agencyID}/{resourceID}/{version}`: the XML schema of the DSD's
/// structure-specific data (context `datastructure` or `dataflow`; no constraints apply).
fn schema_query(
    sdmx: &Sdmx,
    segments: &[&str],
    params: &[(String, String)],
    accept: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let get = check_params(params, &["dimensionAtObservation", "explicitMeasure"])?;
    if let Some(accept) = accept.filter(|a| !a.trim().is_empty()) {
        let ok = media_ranges(accept).iter().any(|m| {
            matches!(
                m.media.as_str(),
                "application/vnd.sdmx.schema+xml" | "application/xml" | "text/xml" | "*/*" | "application/*"
            )
        });
        if !ok {
            return Err(not_acceptable(format!("`{}`", shorten(accept))));
        }
    }
    let segments: Vec<&str> = segments.iter().copied().filter(|s| !s.is_empty()).collect();
    let (context, agency, id, version) = match segments.as_slice() {
        [c, a, i] => (*c, *a, *i, None),
        [c, a, i, v] => (*c, *a, *i, Some(*v)),
        _ => {
            return Err(SdmxError::syntax(
                "a schema query is schema/{context}/{agencyID}/{resourceID}/{version}",
            ))
        }
    };
    match context {
        "datastructure" | "dataflow" => {}
        "metadatastructure" | "metadataflow" | "provisionagreement" => {
            return Err(SdmxError::not_implemented(format!("schemas in the context `{context}` are not implemented")))
        }
        other => {
            return Err(SdmxError::syntax(format!(
                "the schema context must be datastructure, dataflow, metadatastructure, metadataflow or provisionagreement, not `{}`",
                shorten(other)
            )))
        }
    }
    if get("explicitMeasure").is_some_and(|v| v != "false") {
        return Err(SdmxError::not_implemented(
            "explicitMeasure=true: the DSD has a single primary measure",
        ));
    }
    let projection = sdmx.ledger.read_in_place();
    let view = projection
        .dataset(id)
        .ok_or_else(|| SdmxError::no_results(format!("no {context} `{}`", shorten(id))))?;
    let flow = Flow::new(&view.def);
    if agency != flow.agency {
        return Err(SdmxError::no_results(format!(
            "no {context} {}:{}",
            shorten(agency),
            shorten(id),
        )));
    }
    if let Some(v) =
        version.filter(|v| !["latest", "all", "*", "~"].contains(v) && !version::rest15_is(v, dsd::VERSION))
    {
        return Err(version::not_there(
            &format!("{context} {}:{}", flow.agency, flow.id()),
            v,
        ));
    }
    let at = obs_dimension(&flow.key_dimensions(), get("dimensionAtObservation"))?;
    let body = schema::schema(&flow, &at, schema::MlVersion::V21);
    let tag = etag(&["schema", &format!("{segments:?}{at:?}"), &view.def_revision.to_string()]);
    let policy = CacheFacts::new(tag, false, projection.head().revision, Some(id));
    respond(|| Ok(body.into()), SCHEMA_XSD, policy, headers)
}

fn etag(parts: &[&str]) -> String {
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
    fn new(etag: String, pinned: bool, head: u64, dataset: Option<&str>) -> Self {
        CacheFacts {
            etag,
            pinned,
            head,
            dataset: dataset.map(str::to_owned),
        }
    }

    /// True when `If-None-Match` names this answer (or is `*`), compared weakly.
    fn matches(&self, headers: &HeaderMap) -> bool {
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
fn respond(
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

const DATA_PARAMS: [&str; 12] = [
    "startPeriod",
    "endPeriod",
    "updatedAfter",
    "firstNObservations",
    "lastNObservations",
    "dimensionAtObservation",
    "detail",
    "includeHistory",
    "asOf",
    "knownAt",
    "format",
    "formatVersion",
];

async fn data_query(
    sdmx: Arc<Sdmx>,
    segments: &[&str],
    params: &[(String, String)],
    accept: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let get = check_params(params, &DATA_PARAMS)?;
    let format = negotiate_data(accept, get("format"), get("formatVersion"))?;
    if segments.len() > 3 {
        return Err(SdmxError::syntax(
            "a data query is data/{flowRef}/{key}/{providerRef}: at most three path parts after `data`",
        ));
    }
    let flow_ref = FlowRef::parse(segments.first().copied().unwrap_or(""))?;
    let key = segments.get(1).copied().filter(|k| !k.is_empty() && *k != "all");
    let provider = segments.get(2).copied().filter(|p| !p.is_empty() && *p != "all");
    let request = DataRequest {
        flow_ref,
        keys: key.map(|k| vec![k.to_owned()]).unwrap_or_default(),
        provider: provider.map(str::to_owned),
        dimension_at_observation: get("dimensionAtObservation").map(str::to_owned),
        format,
        start: get("startPeriod")
            .map(|v| query::period_bound("startPeriod", v, true))
            .transpose()?,
        end: get("endPeriod")
            .map(|v| query::period_bound("endPeriod", v, false))
            .transpose()?,
        detail: get("detail")
            .map(DataDetail::parse)
            .transpose()?
            .unwrap_or(DataDetail::Full),
        common: Common::parse(&get)?,
        filters: Vec::new(),
        parts: data::Parts::ALL,
        identity: format!("{segments:?}{params:?}"),
    };
    serve_data(sdmx, request, headers).await
}

/// A data query, parsed (SDMX-REST 1.5 or 2.2), not yet resolved against the ledger.
struct DataRequest {
    flow_ref: FlowRef,
    /// Keys in SDMX-REST 1.5 form (empty parts and `*` are wildcards, `+` joins codes); a
    /// figure matching any of them is kept; none: every key.
    keys: Vec<String>,
    provider: Option<String>,
    dimension_at_observation: Option<String>,
    format: DataFormat,
    start: Option<query::Month>,
    end: Option<query::Month>,
    detail: DataDetail,
    common: Common,
    /// `c[COMPONENT]` parameters: the component id and the value.
    filters: Vec<(String, String)>,
    parts: data::Parts,
    /// The path and the parameters, for the entity tag.
    identity: String,
}

/// The data query parameters both APIs have.
struct Common {
    updated_after: Option<DateTime<Utc>>,
    first_n: Option<u32>,
    last_n: Option<u32>,
    history: bool,
    as_of: Option<DateTime<Utc>>,
    known_at: Option<DateTime<Utc>>,
}

impl Common {
    fn parse<'p>(get: &impl Fn(&str) -> Option<&'p str>) -> Result<Common, SdmxError> {
        let time = |name: &str| get(name).map(|v| query::date_time(name, v)).transpose();
        let n = |name: &str| get(name).map(|v| query::positive(name, v)).transpose();
        Ok(Common {
            updated_after: time("updatedAfter")?,
            first_n: n("firstNObservations")?,
            last_n: n("lastNObservations")?,
            history: get("includeHistory")
                .map(|v| query::boolean("includeHistory", v))
                .transpose()?
                .unwrap_or(false),
            as_of: time("asOf")?,
            known_at: time("knownAt")?,
        })
    }
}

/// Resolves a data query, counts its answer within the limit and streams it.
async fn serve_data(sdmx: Arc<Sdmx>, request: DataRequest, headers: &HeaderMap) -> Result<Response, SdmxError> {
    let now = Utc::now();
    let pinned = request.common.known_at.is_some_and(|k| k <= now);
    let format = request.format;
    let planned = plan(&sdmx.ledger, &request, pinned, now)?;
    let tag = etag(&[
        "data",
        &request.identity,
        format.media_type(),
        &format!("{:?}", planned.bound),
        &planned.def_revision.to_string(),
        &if pinned {
            String::new()
        } else {
            planned.head.to_string()
        },
    ]);
    let policy = CacheFacts::new(tag, pinned, planned.head, Some(&planned.dataset));
    if policy.matches(headers) {
        return respond(|| Ok(Body::empty()), format.media_type(), policy, headers);
    }

    let (selection, agency, prepared) = planned.into_selection(&request);
    let ledger = sdmx.ledger.clone();
    let limit = sdmx.config.max_observations;
    let answer =
        tokio::task::spawn_blocking(move || data::prepare(&ledger, selection, format, agency, limit, prepared))
            .await
            .map_err(|e| SdmxError::new(Kind::Internal, e.to_string()))??;
    let body = chunked_body(answer, data::Answer::next_chunk);
    respond(|| Ok(body), format.media_type(), policy, headers)
}

/// A body streamed from `answer`, one chunk at a time, each written off the runtime (a chunk
/// reads a page of figures under the ledger's lock).
fn chunked_body<A: Send + 'static>(answer: A, next: fn(&mut A) -> Option<Result<String, SdmxError>>) -> Body {
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

/// What a data query resolves to against the ledger.
struct Planned {
    obs_dimension: ObsDimension,
    pattern: KeyPattern,
    frequencies: Option<Vec<Frequency>>,
    measures: Option<Vec<u8>>,
    alternatives: Vec<data::KeyAlternative>,
    components: Vec<filter::ComponentFilter>,
    bound: crate::projection::Bound,
    prepared: DateTime<Utc>,
    head: u64,
    def_revision: u64,
    agency: String,
    dataset: String,
}

impl Planned {
    /// What `request`, planned, selects, with the dataflow's agency and the time the answer
    /// is prepared as of: one dataflow's part of a single- or a several-dataflow answer.
    fn into_selection(self, request: &DataRequest) -> (Selection, String, DateTime<Utc>) {
        let selection = Selection {
            dataset: self.dataset,
            pattern: self.pattern,
            frequencies: self.frequencies,
            measures: self.measures,
            start: request.start,
            end: request.end,
            updated_after: request.common.updated_after,
            first_n: request.common.first_n,
            last_n: request.common.last_n,
            obs_dimension: self.obs_dimension,
            detail: request.detail,
            history: request.common.history,
            bound: self.bound,
            alternatives: self.alternatives,
            components: self.components,
            parts: request.parts,
        };
        (selection, self.agency, self.prepared)
    }
}

/// Resolves the dataflow, the provider, the key and the point in history.
fn plan(ledger: &Ledger, request: &DataRequest, pinned: bool, now: DateTime<Utc>) -> Result<Planned, SdmxError> {
    let flow_ref = &request.flow_ref;
    let provider = request.provider.as_deref();
    let dimension_at_observation = request.dimension_at_observation.as_deref();
    let format = request.format;
    let (as_of, known_at) = (request.common.as_of, request.common.known_at);
    let projection = ledger.read_in_place();
    let view = projection
        .dataset(&flow_ref.id)
        .ok_or_else(|| SdmxError::no_results(format!("no dataflow `{}`", shorten(&flow_ref.id))))?;
    let flow = Flow::new(&view.def);
    if flow_ref.agency.as_ref().is_some_and(|a| *a != flow.agency) {
        return Err(SdmxError::no_results(format!(
            "no dataflow `{}` maintained by `{}`",
            flow.id(),
            shorten(flow_ref.agency.as_deref().unwrap_or(""))
        )));
    }
    if let Some(v) = flow_ref
        .version
        .as_deref()
        .filter(|v| !version::rest15_is(v, dsd::VERSION))
    {
        return Err(version::not_there(
            &format!("dataflow {}:{}", flow.agency, flow.id()),
            v,
        ));
    }
    if let Some(p) = provider {
        let ok = p.split('+').any(|one| {
            let id = one.rsplit(',').next().unwrap_or(one);
            let agency = one.split_once(',').map(|(a, _)| a);
            id == flow.agency && agency.is_none_or(|a| a == "all" || a == flow.agency)
        });
        if !ok {
            return Err(SdmxError::no_results(format!(
                "the data of `{}` are provided by `{}` only",
                flow.id(),
                flow.agency
            )));
        }
    }
    let dims = flow.key_dimensions();
    let obs_dimension = obs_dimension(&dims, dimension_at_observation)?;
    let obs_dimension = match format {
        // A CSV is flat whatever the view; the grouping only serves first/lastNObservations.
        DataFormat::Csv { .. } => ObsDimension::Time,
        DataFormat::Generic { time_series: true } | DataFormat::StructureSpecific { time_series: true }
            if obs_dimension != ObsDimension::Time =>
        {
            return Err(SdmxError::syntax(
                "time-series formats need dimensionAtObservation=TIME_PERIOD",
            ))
        }
        _ => obs_dimension,
    };

    let alternatives = request
        .keys
        .iter()
        .map(|k| resolve_key(view, &dims, k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut conditions = 0;
    let components = request
        .filters
        .iter()
        .map(|(id, v)| filter::ComponentFilter::parse(id, v, &dims, &mut conditions))
        .collect::<Result<Vec<_>, _>>()?;
    let (union, alternatives) = match alternatives.len() {
        0 => (
            data::KeyAlternative {
                pattern: KeyPattern(vec![None; view.def.dimensions.len()]),
                frequencies: None,
                measures: None,
            },
            Vec::new(),
        ),
        1 => (alternatives.into_iter().next().expect("one key"), Vec::new()),
        _ => (data::KeyAlternative::union(&alternatives), alternatives),
    };
    let as_of_spec = match (as_of, known_at) {
        (None, None) => None,
        (Some(t), None) => Some(AsOf::PublishedAt(t)),
        (published_at, Some(known_at)) => Some(AsOf::KnownAt { known_at, published_at }),
    };
    let bound = projection
        .bound(as_of_spec)
        .map_err(|e| SdmxError::syntax(e.to_string()))?;
    let prepared: DateTime<Utc> = match known_at {
        Some(k) if pinned => k,
        _ => projection.last_recorded_at().unwrap_or(now),
    };
    let head = projection.head().revision;
    let def_revision = view.def_revision;
    let agency = flow.agency.clone();
    let dataset = view.def.id.clone();

    Ok(Planned {
        obs_dimension,
        pattern: union.pattern,
        frequencies: union.frequencies,
        measures: union.measures,
        alternatives,
        components,
        bound,
        prepared,
        head,
        def_revision,
        agency,
        dataset,
    })
}

/// `dimensionAtObservation` among the key dimensions `dims` (`TIME_PERIOD` when left out).
fn obs_dimension(dims: &[&str], value: Option<&str>) -> Result<ObsDimension, SdmxError> {
    Ok(match value {
        None | Some("TIME_PERIOD") => ObsDimension::Time,
        Some("AllDimensions") => ObsDimension::All,
        Some(d) => ObsDimension::Dimension(dims.iter().position(|x| *x == d).ok_or_else(|| {
            SdmxError::syntax(format!(
                "parameter `dimensionAtObservation` must be TIME_PERIOD, AllDimensions or one of {}, not `{}`",
                dims.join(", "),
                shorten(d)
            ))
        })?),
    })
}

/// One key in SDMX-REST 1.5 form, resolved against the dataset's code lists.
fn resolve_key(
    view: &crate::projection::DatasetView,
    dims: &[&str],
    key: &str,
) -> Result<data::KeyAlternative, SdmxError> {
    let mut pattern = KeyPattern(vec![None; view.def.dimensions.len()]);
    let mut frequencies = None;
    let mut measures = None;
    let parts = query::split_key(key, dims)?;
    let unknown = |dim: &str, code: &str| {
        SdmxError::syntax(format!(
            "key `{}`: `{}` is no code of dimension {dim}",
            shorten(key),
            shorten(code)
        ))
    };
    for (i, part) in parts.into_iter().enumerate() {
        let Some(codes) = part else { continue };
        if i == 0 {
            let f: Result<Vec<Frequency>, _> = codes
                .iter()
                .map(|c| {
                    Frequency::from_code(c)
                        .filter(|_| c != "H")
                        .ok_or_else(|| unknown(dsd::FREQ, c))
                })
                .collect();
            frequencies = Some(f?);
        } else if i == dims.len() - 1 {
            let mut m = Vec::new();
            for c in &codes {
                if !KNOWN_MEASURES.contains(&c.as_str()) {
                    return Err(unknown(dsd::MEASURE, c));
                }
                if let Some(p) = view.measure(c) {
                    m.push(p);
                }
            }
            measures = Some(m);
        } else {
            let dim = &view.def.dimensions[i - 1];
            let positions: Result<Vec<u16>, _> = codes
                .iter()
                .map(|c| dim.position(c).map(|p| p as u16).ok_or_else(|| unknown(&dim.id, c)))
                .collect();
            pattern.0[i - 1] = Some(positions?);
        }
    }
    Ok(data::KeyAlternative {
        pattern,
        frequencies,
        measures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_formats_by_accept_quality_and_parameter() {
        let csv = DataFormat::Csv { labels: false };
        let generic = DataFormat::Generic { time_series: false };
        let ss = DataFormat::StructureSpecific { time_series: false };
        assert_eq!(negotiate_data(None, None, None), Ok(generic));
        assert_eq!(
            negotiate_data(Some("application/vnd.sdmx.data+csv;version=1.0.0;q=0.5, application/vnd.sdmx.structurespecificdata+xml;version=2.1"), None, None),
            Ok(ss)
        );
        assert_eq!(
            negotiate_data(Some("application/pdf, text/csv;q=0.1"), None, None),
            Ok(csv)
        );
        let json = DataFormat::Json10;
        assert_eq!(negotiate_data(Some("application/json"), None, None), Ok(json));
        assert_eq!(
            negotiate_data(Some("application/vnd.sdmx.data+json;version=1.0.0"), None, None),
            Ok(json)
        );
        assert_eq!(negotiate_data(None, Some("jsondata"), None), Ok(json));
        assert_eq!(
            negotiate_data(Some("application/vnd.sdmx.data+json;version=2.0.0"), None, None)
                .unwrap_err()
                .kind,
            Kind::NotAcceptable
        );
        assert_eq!(
            negotiate_data(None, Some("jsondata"), Some("2.0.0")).unwrap_err().kind,
            Kind::NotAcceptable
        );
        // The parameter wins over the header.
        assert_eq!(
            negotiate_data(Some("text/csv"), Some("structurespecificdata"), Some("2.1")),
            Ok(ss)
        );
        assert_eq!(
            negotiate_data(Some("application/xml;q=0"), None, None)
                .unwrap_err()
                .kind,
            Kind::NotAcceptable
        );
        assert_eq!(
            negotiate_data(None, Some("genericdata"), Some("3.0")).unwrap_err().kind,
            Kind::NotAcceptable
        );
        assert_eq!(negotiate_data(None, Some("pdf"), None).unwrap_err().kind, Kind::Syntax);
    }

    #[test]
    fn structure_formats() {
        let ml = Ok(StructureFormat::Ml21);
        let json = Ok(StructureFormat::Json10);
        assert_eq!(
            negotiate_structure(Some("application/vnd.sdmx.structure+xml;version=2.1"), None, None),
            ml
        );
        assert_eq!(negotiate_structure(Some("*/*"), None, None), ml);
        assert_eq!(negotiate_structure(None, None, None), ml);
        assert!(negotiate_structure(Some("application/vnd.sdmx.structure+xml;version=3.0.0"), None, None).is_err());
        assert_eq!(negotiate_structure(None, Some("jsonstructure"), None), json);
        assert_eq!(negotiate_structure(None, Some("jsonstructure"), Some("1.0.0")), json);
        assert!(negotiate_structure(None, Some("jsonstructure"), Some("2.0.0")).is_err());
        assert_eq!(
            negotiate_structure(
                Some("application/vnd.sdmx.structure+json;version=1.0.0, */*;q=0.1"),
                None,
                None
            ),
            json
        );
        assert!(negotiate_structure(Some("application/vnd.sdmx.structure+json;version=2.0.0"), None, None).is_err());
    }
}
