//! SDMX-REST 2.2 structure queries under `/sdmx/3.0/`:
//! `structure/{structureType}/{agencyID}/{resourceID}/{version}` and, for item schemes,
//! `.../{itemID}`; answered with SDMX-JSON 2.0 (the default) or SDMX-ML 3.0 structure
//! messages, built from the same artefacts as the SDMX-REST 1.5 answers (`structure`).

use axum::http::{header, HeaderMap};
use axum::response::Response;

use super::error::{ErrorStyle, Kind, SdmxError};
use super::query::{shorten, MAX_LIST};
use super::structure::{Detail, References, Resource, StructureFormat, StructureQuery, Versions};
use super::{media_ranges, param, Sdmx};

/// The SDMX-REST 2.2 structure types (`structureType`) besides the four this service answers:
/// known, but not implemented (501).
const OTHER_TYPES: [&str; 32] = [
    "metadatastructure",
    "metadataflow",
    "provisionagreement",
    "process",
    "categorisation",
    "dataconstraint",
    "metadataconstraint",
    "categoryscheme",
    "hierarchy",
    "hierarchyassociation",
    "agencyscheme",
    "dataproviderscheme",
    "dataconsumerscheme",
    "organisationunitscheme",
    "transformationscheme",
    "rulesetscheme",
    "userdefinedoperatorscheme",
    "customtypescheme",
    "namepersonalisationscheme",
    "vtlmappingscheme",
    "valuelist",
    "structuremap",
    "representationmap",
    "conceptschememap",
    "categoryschememap",
    "organisationschememap",
    "reportingtaxonomymap",
    "metadataproviderscheme",
    "reportingtaxonomy",
    "metadataprovisionagreement",
    "structureset",
    "namealiasscheme",
];

/// Item scheme types (`itemSchemeType`): the ones that take an `itemID`.
const ITEM_SCHEMES: [&str; 14] = [
    "conceptscheme",
    "codelist",
    "categoryscheme",
    "agencyscheme",
    "dataproviderscheme",
    "dataconsumerscheme",
    "organisationunitscheme",
    "transformationscheme",
    "rulesetscheme",
    "userdefinedoperatorscheme",
    "customtypescheme",
    "namepersonalisationscheme",
    "vtlmappingscheme",
    "valuelist",
];

const TYPES: &str =
    "application/vnd.sdmx.structure+json;version=2.0.0 (the default), application/vnd.sdmx.structure+xml;version=3.0.0";

fn format_of(m: &super::MediaRange) -> Option<StructureFormat> {
    let version = |ours| param(m, "version").is_none_or(|v| super::v30::format_version_admits(v, ours));
    match m.media.as_str() {
        "application/vnd.sdmx.structure+json" if version([2, 0, 0]) => Some(StructureFormat::Json20),
        "application/vnd.sdmx.structure+xml" if version([3, 0, 0]) => Some(StructureFormat::Ml30),
        "application/json" | "*/*" | "application/*" => Some(StructureFormat::Json20),
        "application/xml" | "text/xml" => Some(StructureFormat::Ml30),
        _ => None,
    }
}

fn not_acceptable(what: String) -> SdmxError {
    SdmxError::new(
        Kind::NotAcceptable,
        format!("{what} is not offered; this service offers {TYPES} for structures"),
    )
}

/// The structure format: `format` (with `formatVersion`) first, else `Accept`; SDMX-JSON when
/// neither says (SDMX-REST 2.2 makes SDMX-JSON the default; this service has version 2.0.0).
pub fn negotiate(
    accept: Option<&str>,
    format: Option<&str>,
    version: Option<&str>,
) -> Result<StructureFormat, SdmxError> {
    if let Some(f) = format {
        let (ours, fmt) = match f {
            "jsonstructure" => ([2, 0, 0], StructureFormat::Json20),
            "structure" => ([3, 0, 0], StructureFormat::Ml30),
            "genericdata"
            | "structurespecificdata"
            | "generictimeseriesdata"
            | "structurespecifictimeseriesdata"
            | "jsondata"
            | "csvdata"
            | "schema"
            | "genericmetadata"
            | "structurespecificmetadata" => return Err(not_acceptable(format!("format {f}"))),
            other => {
                return Err(SdmxError::syntax(format!(
                    "parameter `format` must be jsonstructure or structure, not `{}`",
                    shorten(other)
                )))
            }
        };
        return match version {
            Some(v) if !super::v30::format_version_admits(v, ours) => {
                Err(not_acceptable(format!("format {f} version {}", shorten(v))))
            }
            _ => Ok(fmt),
        };
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(StructureFormat::Json20);
    };
    media_ranges(accept)
        .iter()
        .find_map(format_of)
        .ok_or_else(|| not_acceptable(format!("`{}`", shorten(accept))))
}

/// The error format of a structure query: SDMX-JSON for SDMX-JSON, else SDMX-ML 3.0.
pub fn error_style(headers: &HeaderMap, params: &[(String, String)]) -> ErrorStyle {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = params.iter().find(|(n, _)| n == "format").map(|(_, v)| v.as_str());
    match negotiate(accept, format, None) {
        Ok(StructureFormat::Json20) => ErrorStyle::StructureJson,
        _ => ErrorStyle::Xml30,
    }
}

/// A path list of ids joined by `,` (`*`, or the part left out: any), each matching `valid`.
fn list(what: &str, s: Option<&str>, valid: fn(&str) -> bool) -> Result<Option<Vec<String>>, SdmxError> {
    let Some(s) = s.filter(|s| !s.is_empty() && *s != "*") else {
        return Ok(None);
    };
    let items: Vec<String> = s.split(',').map(str::to_owned).collect();
    if items.len() > MAX_LIST {
        return Err(SdmxError::syntax(format!(
            "the {what} lists more than {MAX_LIST} values"
        )));
    }
    if let Some(bad) = items.iter().find(|i| i.len() > 128 || !valid(i)) {
        return Err(SdmxError::syntax(format!(
            "the {what} `{}` is not an id (several are joined by `,`)",
            shorten(bad)
        )));
    }
    Ok(Some(items))
}

/// `^[A-Za-z][A-Za-z\d_-]*(\.[A-Za-z][A-Za-z\d_-]*)*$`
fn agency_id(s: &str) -> bool {
    s.split('.').all(|p| {
        p.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// `^[A-Za-z\d_@$-]+$`
fn resource_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@$-".contains(&b))
}

fn item_id(s: &str) -> bool {
    resource_id(s) || s.split('.').all(resource_id)
}

fn detail(s: &str) -> Result<Detail, SdmxError> {
    Ok(match s {
        "full" => Detail::Full,
        "allstubs" => Detail::AllStubs,
        "referencestubs" => Detail::ReferenceStubs,
        "allcompletestubs" => Detail::AllCompleteStubs,
        "referencecompletestubs" => Detail::ReferenceCompleteStubs,
        "referencepartial" => Detail::ReferencePartial,
        "raw" => Detail::Raw,
        _ => {
            return Err(SdmxError::syntax(format!(
                "parameter `detail` must be full, allstubs, referencestubs, allcompletestubs, referencecompletestubs, referencepartial or raw, not `{}`",
                shorten(s)
            )))
        }
    })
}

fn references(s: &str) -> Result<Vec<References>, SdmxError> {
    let values: Vec<&str> = s.split(',').collect();
    if values.len() > MAX_LIST {
        return Err(SdmxError::syntax(format!(
            "parameter `references` lists more than {MAX_LIST} values"
        )));
    }
    values
        .into_iter()
        .map(|v| {
            References::of(v, true, &OTHER_TYPES).ok_or_else(|| {
                SdmxError::syntax(format!(
                    "parameter `references` must be none, parents, parentsandsiblings, ancestors, children, descendants, all or structure types, joined by `,`; not `{}`",
                    shorten(v)
                ))
            })
        })
        .collect()
}

/// `structure/{structureType}/{agencyID}/{resourceID}/{version}/{itemID}`.
pub fn query(
    sdmx: &Sdmx,
    segments: &[&str],
    params: &[(String, String)],
    accept: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
    let get = super::check_params(params, &["detail", "references", "asOf", "format", "formatVersion"])?;
    let format = negotiate(accept, get("format"), get("formatVersion"))?;
    if segments.len() > 5 {
        return Err(SdmxError::syntax(
            "a structure query is structure/{structureType}/{agencyID}/{resourceID}/{version}/{itemID}: at most five path parts after `structure`",
        ));
    }
    let at = |i: usize| segments.get(i).copied().filter(|s| !s.is_empty());
    let item = at(4).filter(|i| *i != "*");
    let resources = match at(0) {
        None => {
            return Err(SdmxError::syntax(
                "a structure query names its structure type: structure/{structureType}/...",
            ))
        }
        Some("*") if item.is_some() => vec![Resource::Codelist, Resource::ConceptScheme],
        Some("*") => vec![
            Resource::Dataflow,
            Resource::Codelist,
            Resource::ConceptScheme,
            Resource::DataStructure,
        ],
        Some(t) => match Resource::parse(t) {
            Some(r) => vec![r],
            None if OTHER_TYPES.contains(&t) => {
                return Err(SdmxError::not_implemented(format!(
                    "the structure type `{t}` is not implemented; this service answers dataflow, datastructure, codelist and conceptscheme"
                )))
            }
            None => {
                return Err(SdmxError::syntax(format!(
                    "`{}` is no SDMX-REST 2.2 structure type",
                    shorten(t)
                )))
            }
        },
    };
    if at(4).is_some() {
        if let Some(t) = at(0).filter(|t| *t != "*" && !ITEM_SCHEMES.contains(t)) {
            return Err(SdmxError::syntax(format!(
                "`{t}` is no item scheme: itemID is for item schemes (codelist, conceptscheme, ...)"
            )));
        }
    }
    if get("asOf").is_some() {
        return Err(SdmxError::not_implemented(
            "parameter `asOf` is not implemented for structure queries; structures are answered as they are now",
        ));
    }
    let versions = super::version::rest22(at(3))?.map_or(Versions::Latest, Versions::Semantic);
    let query = StructureQuery {
        resources,
        agencies: list("agency", at(1), agency_id)?,
        ids: list("resource id", at(2), resource_id)?,
        versions,
        items: list("item id", item, item_id)?,
        detail: get("detail").map(detail).transpose()?.unwrap_or(Detail::Full),
        references: get("references")
            .map(references)
            .transpose()?
            .unwrap_or_else(|| vec![References::None]),
    };
    super::serve_structure(sdmx, query, format, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(negotiate(None, None, None), Ok(StructureFormat::Json20));
        assert_eq!(negotiate(Some("*/*"), None, None), Ok(StructureFormat::Json20));
        assert_eq!(
            negotiate(Some("application/vnd.sdmx.structure+xml;version=3.0.0"), None, None),
            Ok(StructureFormat::Ml30)
        );
        assert_eq!(
            negotiate(Some("application/vnd.sdmx.structure+xml;version=3.0.0+"), None, None),
            Ok(StructureFormat::Ml30)
        );
        assert!(negotiate(Some("application/vnd.sdmx.structure+xml;version=2.1"), None, None).is_err());
        assert!(negotiate(Some("application/vnd.sdmx.structure+json;version=2.1.0"), None, None).is_err());
        assert_eq!(
            negotiate(None, Some("structure"), Some("3.0.0")),
            Ok(StructureFormat::Ml30)
        );
        assert_eq!(
            negotiate(None, Some("jsonstructure"), None),
            Ok(StructureFormat::Json20)
        );
        assert_eq!(
            negotiate(None, Some("jsondata"), None).unwrap_err().kind,
            Kind::NotAcceptable
        );
        assert_eq!(negotiate(None, Some("pdf"), None).unwrap_err().kind, Kind::Syntax);
    }
}
