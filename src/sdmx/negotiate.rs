//! Content negotiation of SDMX-REST 1.5 answers: `Accept` media ranges with their
//! parameters and qualities, and `format`/`formatVersion`, for data and structure queries.

use super::data::DataFormat;
use super::error::{Kind, SdmxError};
use super::query::shorten;
use super::structure::StructureFormat;

pub(super) const STRUCTURE_TYPES: &str =
    "application/vnd.sdmx.structure+xml;version=2.1, application/vnd.sdmx.structure+json;version=1.0.0";

/// A media range of `Accept`: its type, parameters and quality.
pub(super) struct MediaRange {
    pub(super) media: String,
    pub(super) params: Vec<(String, String)>,
    pub(super) q: f32,
}

pub(super) fn media_ranges(accept: &str) -> Vec<MediaRange> {
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

pub(super) fn param<'m>(m: &'m MediaRange, name: &str) -> Option<&'m str> {
    m.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(super) fn data_format_of(m: &MediaRange) -> Option<DataFormat> {
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

pub(super) const DATA_TYPES: &str = "application/vnd.sdmx.genericdata+xml;version=2.1, application/vnd.sdmx.structurespecificdata+xml;version=2.1, application/vnd.sdmx.generictimeseriesdata+xml;version=2.1, application/vnd.sdmx.structurespecifictimeseriesdata+xml;version=2.1, application/vnd.sdmx.data+csv;version=1.0.0 (labels=id|both, timeFormat=original), application/vnd.sdmx.data+json;version=1.0.0";

/// The data format: the `format` parameter first (the SDMX-REST extension for browsers),
/// else `Accept`; SDMX-ML 2.1 GenericData when neither says.
pub(super) fn negotiate_data(
    accept: Option<&str>,
    format: Option<&str>,
    version: Option<&str>,
) -> Result<DataFormat, SdmxError> {
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
pub(super) fn by_accept(
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

pub(super) fn not_acceptable(what: String) -> SdmxError {
    SdmxError::new(
        Kind::NotAcceptable,
        format!(
            "{what} is not offered; this service offers {DATA_TYPES} for data and {STRUCTURE_TYPES} for structures"
        ),
    )
}

/// The structure format: `format` first, else `Accept`; SDMX-ML 2.1 when neither says.
pub(super) fn negotiate_structure(
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
