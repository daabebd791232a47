//! SDMX-REST 2.2 (SDMX 3.0) under `/sdmx/3.0/`: data queries
//! (`data/{context}/{agencyID}/{resourceID}/{version}/{key}`) answered with SDMX-JSON 2.0,
//! SDMX-ML 3.0 structure-specific data or SDMX-CSV 2.0, and the schemas of SDMX-ML 3.0
//! structure-specific data. The query is translated into the same `DataRequest` the
//! SDMX-REST 1.5 endpoint resolves, so both read, count and stream alike.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use axum::response::Response;

use super::data::{DataFormat, Parts};
use super::dsd::{Flow, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES};
use super::error::{ErrorStyle, SdmxError};
use super::query::{self, shorten, DataDetail, FlowRef};
use super::{param, DataRequest, Sdmx};

/// The parameters of a data query (besides `c[...]`).
const DATA_PARAMS: [&str; 15] = [
    "updatedAfter",
    "firstNObservations",
    "lastNObservations",
    "dimensionAtObservation",
    "attributes",
    "measures",
    "includeHistory",
    "offset",
    "limit",
    "sort",
    "asOf",
    "reportingYearStartDay",
    "knownAt",
    "format",
    "formatVersion",
];

const DATA_TYPES: &str = "application/vnd.sdmx.data+json;version=2.0.0 (the default), application/vnd.sdmx.data+xml;version=3.0.0, application/vnd.sdmx.data+csv;version=2.0.0 (labels=id|both, timeFormat=original, keys=none)";

/// Whether a requested format `version` (SDMX semantic versioning: `2.0.0`, `2`, `2.0.0+`,
/// `2+.0.0`) admits `ours`.
pub(super) fn format_version_admits(requested: &str, ours: [u32; 3]) -> bool {
    let parts: Vec<&str> = requested.trim().split('.').collect();
    if parts.len() > 3 {
        return false;
    }
    for (part, our) in parts.iter().zip(ours) {
        match part.strip_suffix('+') {
            Some(n) => return n.parse::<u32>().is_ok_and(|n| our >= n),
            None => {
                if part.parse::<u32>() != Ok(our) {
                    return false;
                }
            }
        }
    }
    true
}

fn data_format_of(m: &super::MediaRange) -> Option<DataFormat> {
    let version = |ours| param(m, "version").is_none_or(|v| format_version_admits(v, ours));
    match m.media.as_str() {
        "application/vnd.sdmx.data+json" if version([2, 0, 0]) => Some(DataFormat::Json2),
        "application/vnd.sdmx.data+xml" if version([3, 0, 0]) => Some(DataFormat::Ml3),
        "application/vnd.sdmx.data+csv" if version([2, 0, 0]) => {
            let labels = match param(m, "labels") {
                None | Some("id") => false,
                Some("both") => true,
                Some(_) => return None,
            };
            let plain =
                param(m, "timeformat").is_none_or(|t| t == "original") && param(m, "keys").is_none_or(|k| k == "none");
            plain.then_some(DataFormat::Csv2 { labels })
        }
        "text/csv" => Some(DataFormat::Csv2 { labels: false }),
        "application/xml" | "text/xml" => Some(DataFormat::Ml3),
        "application/json" | "*/*" | "application/*" => Some(DataFormat::Json2),
        _ => None,
    }
}

/// The data format: `format` (with `formatVersion`) first, else `Accept`; SDMX-JSON when
/// neither says, as SDMX-REST 2.2 makes SDMX-JSON the default.
fn negotiate(accept: Option<&str>, format: Option<&str>, version: Option<&str>) -> Result<DataFormat, SdmxError> {
    if let Some(f) = format {
        let (ours, fmt) = match f {
            "jsondata" => ([2, 0, 0], DataFormat::Json2),
            "structurespecificdata" => ([3, 0, 0], DataFormat::Ml3),
            "csvdata" => ([2, 0, 0], DataFormat::Csv2 { labels: false }),
            "genericdata" | "structure" | "jsonstructure" | "schema" => {
                return Err(not_acceptable(format!("format {f}")))
            }
            other => {
                return Err(SdmxError::syntax(format!(
                    "parameter `format` must be jsondata, structurespecificdata or csvdata, not `{}`",
                    shorten(other)
                )))
            }
        };
        return match version {
            Some(v) if !format_version_admits(v, ours) => {
                Err(not_acceptable(format!("format {f} version {}", shorten(v))))
            }
            _ => Ok(fmt),
        };
    }
    super::by_accept(accept, DataFormat::Json2, data_format_of).map_err(not_acceptable)
}

fn not_acceptable(what: String) -> SdmxError {
    SdmxError::new(
        super::error::Kind::NotAcceptable,
        format!("{what} is not offered; this service offers {DATA_TYPES} for data"),
    )
}

/// The error format that goes with an answer's format: SDMX-JSON errors for SDMX-JSON,
/// SDMX-ML 3.0 otherwise (SDMX-CSV has no error message).
pub fn error_style(headers: &HeaderMap, params: &[(String, String)]) -> ErrorStyle {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = params.iter().find(|(n, _)| n == "format").map(|(_, v)| v.as_str());
    match negotiate(accept, format, None) {
        Ok(DataFormat::Json2) => ErrorStyle::Json,
        _ => ErrorStyle::Xml30,
    }
}

/// `attributes`: which attributes each observation carries.
fn attributes(value: &str) -> Result<([bool; 2], [bool; 4]), SdmxError> {
    let mut series = [false; 2];
    let mut obs = [false; 4];
    for one in value.split(',') {
        match one {
            "dsd" | "all" => return Ok(([true; 2], [true; 4])),
            "none" | "msd" | "dataset" => {}
            "series" => series = [true; 2],
            "obs" => obs = [true; 4],
            id => {
                if let Some(i) = SERIES_ATTRIBUTES.iter().position(|(a, _)| *a == id) {
                    series[i] = true;
                } else if let Some(i) = OBS_ATTRIBUTES.iter().position(|(a, _)| *a == id) {
                    obs[i] = true;
                } else {
                    return Err(SdmxError::syntax(format!(
                        "parameter `attributes` must be dsd, msd, dataset, series, obs, all, none or attribute ids ({}), not `{}`",
                        SERIES_ATTRIBUTES.iter().chain(&OBS_ATTRIBUTES).map(|(a, _)| *a).collect::<Vec<_>>().join(", "),
                        shorten(id)
                    )));
                }
            }
        }
    }
    Ok((series, obs))
}

/// A key in SDMX-REST 2.2 form (`*` a wildcard, trailing parts optional) as SDMX-REST 1.5
/// form for `dims` dimensions.
fn key_v15(key: &str, dims: &[&str]) -> Result<String, SdmxError> {
    if key.len() > query::MAX_KEY {
        return Err(SdmxError::syntax(format!(
            "the key has {} bytes; the limit is {}",
            key.len(),
            query::MAX_KEY
        )));
    }
    let mut parts: Vec<&str> = key.split('.').collect();
    if parts.len() > dims.len() {
        return Err(SdmxError::syntax(format!(
            "key `{}` has {} parts; the dataflow has {} dimensions: {}",
            shorten(key),
            parts.len(),
            dims.len(),
            dims.join(".")
        )));
    }
    parts.resize(dims.len(), "*");
    Ok(parts
        .iter()
        .map(|p| if *p == "*" { "" } else { p })
        .collect::<Vec<_>>()
        .join("."))
}

/// `data/{context}/{agencyID}/{resourceID}/{version}/{key}`.
pub async fn data_query(
    sdmx: Arc<Sdmx>,
    segments: &[&str],
    params: &[(String, String)],
    accept: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let mut filters = Vec::new();
    let mut others = Vec::new();
    for (name, value) in params {
        match name.strip_prefix("c[").and_then(|n| n.strip_suffix(']')) {
            Some(component) => filters.push((component.to_owned(), value.clone())),
            None => others.push((name.clone(), value.clone())),
        }
    }
    if ["startPeriod", "endPeriod"]
        .iter()
        .any(|p| others.iter().any(|(n, _)| n == p))
    {
        return Err(SdmxError::syntax(
            "SDMX-REST 2.2 has no startPeriod or endPeriod; use c[TIME_PERIOD]=ge:2025-S1+le:2025-S2",
        ));
    }
    let get = super::check_params(&others, &DATA_PARAMS)?;
    let format = negotiate(accept, get("format"), get("formatVersion"))?;
    for p in ["offset", "limit", "sort", "reportingYearStartDay"] {
        if get(p).is_some() {
            return Err(SdmxError::not_implemented(format!(
                "parameter `{p}` is not implemented"
            )));
        }
    }
    if segments.len() > 5 {
        return Err(SdmxError::syntax(
            "a data query is data/{context}/{agencyID}/{resourceID}/{version}/{key}: at most five path parts after `data`",
        ));
    }
    let at = |i: usize| segments.get(i).copied().filter(|s| !s.is_empty() && *s != "*");
    match at(0) {
        None | Some("dataflow") | Some("datastructure") => {}
        Some("provisionagreement") => {
            return Err(SdmxError::no_results("this service defines no provision agreements"))
        }
        Some(other) => {
            return Err(SdmxError::syntax(format!(
                "the context must be datastructure, dataflow, provisionagreement or *, not `{}`",
                shorten(other)
            )))
        }
    }
    let list = |i: usize, what: &str| -> Result<Option<Vec<String>>, SdmxError> {
        let Some(v) = at(i) else { return Ok(None) };
        let items: Vec<String> = v.split(',').map(str::to_owned).collect();
        if items.len() > query::MAX_LIST || items.iter().any(String::is_empty) {
            return Err(SdmxError::syntax(format!(
                "the {what} `{}` must be an id or at most {} ids joined by `,`",
                shorten(v),
                query::MAX_LIST
            )));
        }
        Ok(Some(items))
    };
    let agencies = list(1, "agency")?;
    let ids = list(2, "resource id")?;
    let versions = super::version::rest22(at(3))?;

    // The dataflows the path names, each with its key dimensions.
    let matching: Vec<(String, String)> = {
        let projection = sdmx.ledger.read_in_place();
        let matching: Vec<(String, String)> = projection
            .datasets()
            .iter()
            .map(|v| Flow::new(&v.def))
            .filter(Flow::is_representable)
            .filter(|f| agencies.as_ref().is_none_or(|a| a.contains(&f.agency)))
            .filter(|f| ids.as_ref().is_none_or(|i| i.iter().any(|i| i == f.id())))
            .map(|f| (f.id().to_owned(), f.key_dimensions().join(".")))
            .collect();
        if matching.is_empty() {
            return Err(SdmxError::no_results("no dataflow matches the agency and id"));
        }
        if let Some(wanted) = versions.filter(|w| !w.admits) {
            let what = match matching.as_slice() {
                [(id, _)] => format!("dataflow {id}"),
                several => format!("the {} dataflows", several.len()),
            };
            return Err(super::version::not_there(&what, &wanted.text()));
        }
        matching
    };
    let keys: Vec<&str> = match at(4) {
        None => Vec::new(),
        Some(k) => {
            let keys: Vec<&str> = k.split(',').collect();
            if keys.len() > query::MAX_LIST {
                return Err(SdmxError::syntax(format!("more than {} keys", query::MAX_LIST)));
            }
            keys
        }
    };
    let several = matching.len() > 1;
    let mut flows = Vec::with_capacity(matching.len());
    for (id, dims) in matching {
        let dims: Vec<&str> = dims.split('.').collect();
        // With several dataflows, a key too long for one of them selects nothing of it.
        let keys = if several {
            let mut fit = Vec::new();
            let mut why = None;
            for k in &keys {
                match key_v15(k, &dims) {
                    Ok(k) => fit.push(k),
                    Err(e) => {
                        why.get_or_insert(e.message);
                    }
                }
            }
            if fit.is_empty() && !keys.is_empty() {
                flows.push((id, Err(why.unwrap_or_default())));
                continue;
            }
            fit
        } else {
            keys.iter().map(|k| key_v15(k, &dims)).collect::<Result<Vec<_>, _>>()?
        };
        let mut r = request(keys, &get, &filters, format, segments, params)?;
        r.flow_ref.id = id.clone();
        flows.push((id, Ok(r)));
    }
    if several {
        let identity = format!("3.0{segments:?}{params:?}");
        return super::data::multi::serve(sdmx, flows, format, &identity, headers).await;
    }
    let Some((_, Ok(request))) = flows.pop() else {
        return Err(SdmxError::no_results("no dataflow matches the agency and id"));
    };
    super::serve_data(sdmx, request, headers).await
}

/// The request for one dataflow (its id in `flow_ref`) with `keys` in SDMX-REST 1.5 form.
fn request<'p>(
    keys: Vec<String>,
    get: &impl Fn(&str) -> Option<&'p str>,
    filters: &[(String, String)],
    format: DataFormat,
    segments: &[&str],
    params: &[(String, String)],
) -> Result<DataRequest, SdmxError> {
    let dimension_at_observation = get("dimensionAtObservation").map(str::to_owned);
    let (series, obs) = get("attributes")
        .map(attributes)
        .transpose()?
        .unwrap_or(([true; 2], [true; 4]));
    let value = match get("measures") {
        None | Some("all") | Some(OBS_VALUE) => true,
        Some("none") => false,
        Some(other) => {
            return Err(SdmxError::syntax(format!(
                "parameter `measures` must be all, none or OBS_VALUE, not `{}`",
                shorten(other)
            )))
        }
    };
    let common = super::Common::parse(&get)?;
    if let (Some(u), Some(a)) = (common.updated_after, common.as_of) {
        if u > a {
            return Err(SdmxError::syntax("parameter `updatedAfter` is after `asOf`"));
        }
    }
    Ok(DataRequest {
        flow_ref: FlowRef {
            agency: None,
            id: String::new(),
            version: None,
        },
        keys,
        provider: None,
        dimension_at_observation,
        format,
        start: None,
        end: None,
        detail: DataDetail::Full,
        common,
        filters: filters.to_vec(),
        parts: Parts { series, obs, value },
        identity: format!("3.0{segments:?}{params:?}"),
    })
}

const SCHEMA_XSD: &str = "application/vnd.sdmx.schema+xml; version=3.0.0";

/// `schema/{context}/{agencyID}/{resourceID}/{version}`: the XML schema of the DSD's
/// SDMX-ML 3.0 structure-specific data.
pub fn schema_query(
    sdmx: &Sdmx,
    segments: &[&str],
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let get = super::check_params(params, &["dimensionAtObservation"])?;
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
    if context != "dataflow" && context != "datastructure" {
        return Err(SdmxError::not_implemented(format!(
            "schemas in the context `{}` are not implemented",
            shorten(context)
        )));
    }
    let projection = sdmx.ledger.read_in_place();
    let (view, flow) = super::schema::find_flow(&projection, context, agency, id)?;
    if let Some(wanted) = super::version::rest22(version)?.filter(|w| !w.admits) {
        return Err(super::version::not_there(
            &format!("{context} {}:{}", flow.agency, flow.id()),
            &wanted.text(),
        ));
    }
    let at = super::obs_dimension(&flow.key_dimensions(), get("dimensionAtObservation"))?;
    let body = super::schema::schema(&flow, &at, super::schema::MlVersion::V30);
    let tag = super::etag(&[
        "schema3",
        &format!("{segments:?}{at:?}"),
        &view.def_revision.to_string(),
    ]);
    let policy = super::CacheFacts::new(tag, false, projection.head().revision, Some(id));
    super::respond(|| Ok(body.into()), SCHEMA_XSD, policy, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_versions() {
        assert_eq!(negotiate(None, None, None), Ok(DataFormat::Json2));
        assert_eq!(negotiate(Some("*/*"), None, None), Ok(DataFormat::Json2));
        assert_eq!(
            negotiate(Some("application/vnd.sdmx.data+xml;version=3.0.0"), None, None),
            Ok(DataFormat::Ml3)
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.sdmx.data+csv; version=2.0.0; labels=both"),
                None,
                None
            ),
            Ok(DataFormat::Csv2 { labels: true })
        );
        assert_eq!(
            negotiate(Some("application/vnd.sdmx.data+json;version=2+.0.0"), None, None),
            Ok(DataFormat::Json2)
        );
        for refused in [
            "application/vnd.sdmx.data+json;version=2.1.0",
            "application/vnd.sdmx.data+csv;version=2.0.0;timeFormat=normalized",
            "application/vnd.sdmx.genericdata+xml;version=2.1",
        ] {
            assert_eq!(
                negotiate(Some(refused), None, None).unwrap_err().kind,
                super::super::error::Kind::NotAcceptable,
                "{refused}"
            );
        }
        assert_eq!(
            negotiate(None, Some("csvdata"), None),
            Ok(DataFormat::Csv2 { labels: false })
        );
    }

    #[test]
    fn keys_may_stop_early() {
        let dims = ["FREQ", "A", "B", "MEASURE"];
        assert_eq!(key_v15("S.*.X", &dims).unwrap(), "S..X.");
        assert_eq!(key_v15("*", &dims).unwrap(), "...");
        assert!(key_v15("S.A.B.C.D", &dims).is_err());
    }

    #[test]
    fn attribute_selection() {
        assert_eq!(attributes("none").unwrap(), ([false; 2], [false; 4]));
        assert_eq!(attributes("series").unwrap(), ([true; 2], [false; 4]));
        assert_eq!(
            attributes("OBS_STATUS,UNIT").unwrap(),
            ([true, false], [true, false, false, false])
        );
        assert!(attributes("COLOUR").is_err());
    }
}
