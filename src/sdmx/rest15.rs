//! SDMX-REST 1.5 paths and parameters under `/sdmx/2.1/`: structure, schema and data
//! queries parsed into what `serve` answers.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use super::dsd;
use super::error::SdmxError;
use super::negotiate::{media_ranges, negotiate_data, negotiate_structure, not_acceptable};
use super::query::{self, shorten, DataDetail, FlowRef};
use super::reply::{etag, respond, CacheFacts};
use super::serve::{obs_dimension, serve_data, serve_structure, Common, DataRequest};
use super::structure::{self, References, Resource, StructureQuery, Versions};
use super::{data, schema, version, Sdmx};

/// The value of a parameter, after checking that every parameter is one of `known`.
pub(super) fn check_params<'p>(
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

pub(super) fn structure_query(
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

pub(super) const SCHEMA_XSD: &str = "application/vnd.sdmx.schema+xml; version=2.1";

/// `schema/{context}/{agencyID}/{resourceID}/{version}`: the XML schema of the DSD's
/// structure-specific data (context `datastructure` or `dataflow`; no constraints apply).
pub(super) fn schema_query(
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
    let (view, flow) = schema::find_flow(&projection, context, agency, id)?;
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

pub(super) const DATA_PARAMS: [&str; 12] = [
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

pub(super) async fn data_query(
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
