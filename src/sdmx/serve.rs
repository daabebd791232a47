//! Answering a parsed query (either API): a structure query from the artefacts, a data
//! query resolved against the ledger (`plan`), counted within the limit and streamed.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::data::{self, DataFormat, Selection};
use super::dsd::{self, Flow};
use super::error::{Kind, SdmxError};
use super::query::{self, shorten, DataDetail, FlowRef, ObsDimension};
use super::reply::{chunked_body, etag, respond, CacheFacts};
use super::structure::{self, StructureFormat, StructureQuery};
use super::{filter, version, Sdmx};
use crate::domain::dataset::KNOWN_MEASURES;
use crate::domain::Frequency;
use crate::ledger::Ledger;
use crate::projection::{AsOf, KeyPattern};

/// Answers a parsed structure query (either API) in `format`.
pub(super) fn serve_structure(
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

/// A data query, parsed (SDMX-REST 1.5 or 2.2), not yet resolved against the ledger.
pub(super) struct DataRequest {
    pub(super) flow_ref: FlowRef,
    /// Keys in SDMX-REST 1.5 form (empty parts and `*` are wildcards, `+` joins codes); a
    /// figure matching any of them is kept; none: every key.
    pub(super) keys: Vec<String>,
    pub(super) provider: Option<String>,
    pub(super) dimension_at_observation: Option<String>,
    pub(super) format: DataFormat,
    pub(super) start: Option<query::Month>,
    pub(super) end: Option<query::Month>,
    pub(super) detail: DataDetail,
    pub(super) common: Common,
    /// `c[COMPONENT]` parameters: the component id and the value.
    pub(super) filters: Vec<(String, String)>,
    pub(super) parts: data::Parts,
    /// The path and the parameters, for the entity tag.
    pub(super) identity: String,
}

/// The data query parameters both APIs have.
pub(super) struct Common {
    pub(super) updated_after: Option<DateTime<Utc>>,
    pub(super) first_n: Option<u32>,
    pub(super) last_n: Option<u32>,
    pub(super) history: bool,
    pub(super) as_of: Option<DateTime<Utc>>,
    pub(super) known_at: Option<DateTime<Utc>>,
}

impl Common {
    pub(super) fn parse<'p>(get: &impl Fn(&str) -> Option<&'p str>) -> Result<Common, SdmxError> {
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
pub(super) async fn serve_data(
    sdmx: Arc<Sdmx>,
    request: DataRequest,
    headers: &HeaderMap,
) -> Result<Response, SdmxError> {
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

/// What a data query resolves to against the ledger.
pub(super) struct Planned {
    pub(super) obs_dimension: ObsDimension,
    pub(super) pattern: KeyPattern,
    pub(super) frequencies: Option<Vec<Frequency>>,
    pub(super) measures: Option<Vec<u8>>,
    pub(super) alternatives: Vec<data::KeyAlternative>,
    pub(super) components: Vec<filter::ComponentFilter>,
    pub(super) bound: crate::projection::Bound,
    pub(super) prepared: DateTime<Utc>,
    pub(super) head: u64,
    pub(super) def_revision: u64,
    pub(super) agency: String,
    pub(super) dataset: String,
}

impl Planned {
    /// What `request`, planned, selects, with the dataflow's agency and the time the answer
    /// is prepared as of: one dataflow's part of a single- or a several-dataflow answer.
    pub(super) fn into_selection(self, request: &DataRequest) -> (Selection, String, DateTime<Utc>) {
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
pub(super) fn plan(
    ledger: &Ledger,
    request: &DataRequest,
    pinned: bool,
    now: DateTime<Utc>,
) -> Result<Planned, SdmxError> {
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
pub(super) fn obs_dimension(dims: &[&str], value: Option<&str>) -> Result<ObsDimension, SdmxError> {
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
pub(super) fn resolve_key(
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
