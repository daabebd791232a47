//! Data queries: selecting the figures, in pages, and writing them as SDMX-ML 2.1
//! GenericData or StructureSpecificData, SDMX-CSV 1.0 or SDMX-JSON 1.0 (`json10`), and for
//! SDMX-REST 2.2 as SDMX-JSON 2.0, SDMX-ML 3.0 or SDMX-CSV 2.0.
//!
//! An answer is written page by page: each page is read under the ledger's read lock, a few
//! thousand figures at a time ending at a series boundary, and sent before the next is read,
//! so a whole-dataset answer never sits in memory. The point in history (the bound) is fixed
//! before the first page, so releases recorded while an answer streams do not change it.
//! A cross-sectional view (`dimensionAtObservation` naming a dimension other than the time)
//! regroups the whole selection and is built in memory, within the observation limit.
//!
//! This file selects and reads the figures; `writer` writes a message's frame (header, data
//! sets, footer), `csv`, `ml`, `json20` and `json10` the rows of each format, `multi` an
//! answer over several dataflows.

mod csv;
mod json10;
mod json20;
mod ml;
pub mod multi;
mod writer;

use csv::csv_field;
pub use json10::SCHEMA as JSON10_SCHEMA;
use json20::{json_text, JSON_DATA_SCHEMA};

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::dsd::{obs_status, TIME_PERIOD};
use super::error::{Kind, SdmxError};
use super::filter::{Component, ComponentFilter, Value as FilterValue};
use super::query::{months, DataDetail, Month, ObsDimension};
use super::xml::{escape, header_time, COMMON3_NS, MESSAGE3_NS, SS3_NS, XSI_NS};
use crate::domain::{Dataset, Frequency, Period, ReleaseStatus, SeriesKey};
use crate::ledger::Ledger;
use crate::projection::{Bound, CellKey, Filter, KeyPattern, ObservationAt, Projection};

/// Figures read per page (a page runs on to the end of its last series).
const PAGE: usize = 4096;

/// The data formats offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Generic {
        time_series: bool,
    },
    StructureSpecific {
        time_series: bool,
    },
    Csv {
        labels: bool,
    },
    /// SDMX-CSV 2.0.0 (SDMX-REST 2.2).
    Csv2 {
        labels: bool,
    },
    /// SDMX-JSON 1.0 data (SDMX-REST 1.5).
    Json10,
    /// SDMX-JSON 2.0.0 data (SDMX-REST 2.2).
    Json2,
    /// SDMX-ML 3.0 structure-specific data (SDMX-REST 2.2).
    Ml3,
}

impl DataFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            DataFormat::Generic { time_series: false } => "application/vnd.sdmx.genericdata+xml; version=2.1",
            DataFormat::Generic { time_series: true } => "application/vnd.sdmx.generictimeseriesdata+xml; version=2.1",
            DataFormat::StructureSpecific { time_series: false } => {
                "application/vnd.sdmx.structurespecificdata+xml; version=2.1"
            }
            DataFormat::StructureSpecific { time_series: true } => {
                "application/vnd.sdmx.structurespecifictimeseriesdata+xml; version=2.1"
            }
            DataFormat::Csv { labels: false } => "application/vnd.sdmx.data+csv; version=1.0.0; charset=utf-8",
            DataFormat::Csv { labels: true } => {
                "application/vnd.sdmx.data+csv; version=1.0.0; labels=both; charset=utf-8"
            }
            DataFormat::Csv2 { labels: false } => "application/vnd.sdmx.data+csv; version=2.0.0; charset=utf-8",
            DataFormat::Csv2 { labels: true } => {
                "application/vnd.sdmx.data+csv; version=2.0.0; labels=both; charset=utf-8"
            }
            DataFormat::Json10 => "application/vnd.sdmx.data+json; version=1.0.0; charset=utf-8",
            DataFormat::Json2 => "application/vnd.sdmx.data+json; version=2.0.0; charset=utf-8",
            DataFormat::Ml3 => "application/vnd.sdmx.data+xml; version=3.0.0",
        }
    }
}

/// A data query resolved against one dataset.
#[derive(Debug, Clone)]
pub struct Selection {
    pub dataset: String,
    pub pattern: KeyPattern,
    pub frequencies: Option<Vec<Frequency>>,
    pub measures: Option<Vec<u8>>,
    pub start: Option<Month>,
    pub end: Option<Month>,
    pub updated_after: Option<DateTime<Utc>>,
    pub first_n: Option<u32>,
    pub last_n: Option<u32>,
    pub obs_dimension: ObsDimension,
    pub detail: DataDetail,
    pub history: bool,
    pub bound: Bound,
    /// SDMX-REST 2.2 keys joined by `,`: a figure must match one of them (empty: no more
    /// than `pattern`, `frequencies` and `measures`, which then hold their union).
    pub alternatives: Vec<KeyAlternative>,
    /// SDMX-REST 2.2 `c[...]` filters, all of which a figure must pass.
    pub components: Vec<ComponentFilter>,
    /// What of each observation is written (`attributes`, `measures`).
    pub parts: Parts,
}

/// One key of a list of keys.
#[derive(Debug, Clone)]
pub struct KeyAlternative {
    pub pattern: KeyPattern,
    pub frequencies: Option<Vec<Frequency>>,
    pub measures: Option<Vec<u8>>,
}

/// The attributes (by position in `SERIES_ATTRIBUTES` and `OBS_ATTRIBUTES`) and whether
/// `OBS_VALUE` are written; SDMX-REST 2.2 `attributes` and `measures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub series: [bool; 2],
    pub obs: [bool; 4],
    pub value: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        series: [true; 2],
        obs: [true; 4],
        value: true,
    };
}

/// One figure as written: its coordinates, value and the release that set it.
#[derive(Debug, Clone, Copy)]
struct Row {
    key: SeriesKey,
    period: Period,
    measure: u8,
    value: Decimal,
    release: Uuid,
    status: ReleaseStatus,
    published: DateTime<Utc>,
}

impl Row {
    /// The SDMX series a row belongs to (in a time-series view): key, measure, frequency.
    fn series(&self) -> (SeriesKey, u8, u8) {
        (self.key, self.measure, self.period.frequency() as u8)
    }
}

impl KeyAlternative {
    /// What any of `keys` can match, per dimension: the projection's filter reads no more.
    pub fn union(keys: &[KeyAlternative]) -> KeyAlternative {
        fn join<T: Clone + PartialEq>(lists: impl Iterator<Item = Option<Vec<T>>>) -> Option<Vec<T>> {
            let mut out: Vec<T> = Vec::new();
            for list in lists {
                for x in list? {
                    if !out.contains(&x) {
                        out.push(x);
                    }
                }
            }
            Some(out)
        }
        let width = keys.first().map_or(0, |k| k.pattern.0.len());
        KeyAlternative {
            pattern: KeyPattern(
                (0..width)
                    .map(|d| join(keys.iter().map(|k| k.pattern.0[d].clone())))
                    .collect(),
            ),
            frequencies: join(keys.iter().map(|k| k.frequencies.clone())),
            measures: join(keys.iter().map(|k| k.measures.clone())),
        }
    }

    fn matches(&self, key: &SeriesKey, period: Period, measure: u8) -> bool {
        key_matches(&self.pattern, &self.frequencies, &self.measures, key, period, measure)
    }
}

/// Whether a figure's key, frequency and measure are among those named.
fn key_matches(
    pattern: &KeyPattern,
    frequencies: &Option<Vec<Frequency>>,
    measures: &Option<Vec<u8>>,
    key: &SeriesKey,
    period: Period,
    measure: u8,
) -> bool {
    pattern.matches(key)
        && frequencies.as_ref().is_none_or(|f| f.contains(&period.frequency()))
        && measures.as_ref().is_none_or(|m| m.contains(&measure))
}

impl Selection {
    fn matches(&self, key: &SeriesKey, period: Period, measure: u8) -> bool {
        let (first, last) = months(period);
        key_matches(&self.pattern, &self.frequencies, &self.measures, key, period, measure)
            && self.start.is_none_or(|s| last >= s)
            && self.end.is_none_or(|e| first <= e)
            && (self.alternatives.is_empty() || self.alternatives.iter().any(|a| a.matches(key, period, measure)))
    }

    /// The row of a figure read as of the bound, if the selection keeps it.
    fn row(&self, projection: &Projection, def: &Dataset, obs: &ObservationAt) -> Option<Row> {
        let c = obs.cell;
        if !self.matches(&c.key, c.period, c.measure) {
            return None;
        }
        let v = obs.current();
        let r = projection.release_at(v.release);
        if self.updated_after.is_some_and(|t| r.published_at <= t) {
            return None;
        }
        let row = Row {
            key: c.key,
            period: c.period,
            measure: c.measure,
            value: v.value,
            release: r.id,
            status: r.status,
            published: r.published_at,
        };
        self.keeps(def, &row).then_some(row)
    }

    /// Whether a row passes the `c[...]` filters.
    fn keeps(&self, def: &Dataset, r: &Row) -> bool {
        self.components.iter().all(|f| {
            let value = match f.component {
                Component::Freq => FilterValue::Text(r.period.frequency().code()),
                Component::Dimension(i) => FilterValue::Text(&def.dimensions[i].codes[r.key.code(i) as usize].code),
                Component::Measure => FilterValue::Text(&def.measures[r.measure as usize]),
                Component::Time => FilterValue::Period(r.period),
                Component::Value => FilterValue::Number(r.value),
                Component::Series(0) => FilterValue::Text(&def.unit),
                Component::Series(_) => FilterValue::Number(Decimal::from(def.unit_multiplier)),
                Component::Obs(0) => FilterValue::Text(obs_status(r.status)),
                Component::Obs(1) => return f.keeps(&FilterValue::Text(&r.release.to_string())),
                Component::Obs(2) => FilterValue::Text(r.status.as_str()),
                Component::Obs(_) => FilterValue::Time(r.published),
            };
            f.keeps(&value)
        })
    }

    fn filter(&self) -> Filter {
        Filter {
            key: Some(self.pattern.clone()),
            measures: self.measures.clone(),
            ..Filter::default()
        }
    }
}

/// Where a streamed answer is.
enum Phase {
    /// The message header, then the phase that follows.
    Header(Box<Phase>),
    /// The latest (or as-of) figures, after the cursor.
    Latest {
        cursor: Option<CellKey>,
    },
    /// One dataset per release: the releases still to write (revision, id, status, time).
    History {
        releases: Vec<(u64, Uuid, ReleaseStatus, DateTime<Utc>)>,
        next: usize,
    },
    Footer,
    Done,
}

/// A data answer being written.
pub struct Answer {
    ledger: Ledger,
    selection: Selection,
    writer: Writer,
    phase: Phase,
    /// Set for a cross-sectional view: everything is read at once and regrouped.
    regroup: bool,
    /// What the count before writing found (figures, or versions for a history).
    counted: u64,
    /// Whether this answer writes the message's header and footer (false inside a message
    /// that holds several dataflows).
    framed: bool,
}

/// Counts what an answer would hold (figures, or versions for a history) up to `limit + 1`,
/// and lists the releases of a history. `Err` is 404 when nothing matches, 413 beyond the
/// limit.
pub fn prepare(
    ledger: &Ledger,
    selection: Selection,
    format: DataFormat,
    flow_agency: String,
    limit: u64,
    prepared: DateTime<Utc>,
) -> Result<Answer, SdmxError> {
    let projection = ledger.read_in_place();
    let view = projection
        .dataset(&selection.dataset)
        .ok_or_else(|| SdmxError::no_results(format!("no dataflow `{}`", selection.dataset)))?;
    let def = view.def.clone();
    let too_many = |n: u64| {
        SdmxError::new(
            Kind::TooLarge,
            format!(
                "the answer would hold more than {limit} observations ({n} or more); narrow the key or the periods, or use firstNObservations/lastNObservations"
            ),
        )
    };
    let counted;
    let phase_after_header = if selection.history {
        let mut releases = Vec::new();
        let mut total: u64 = 0;
        let visible = projection.releases_after(selection.bound.revision);
        for r in &projection.releases()[..visible] {
            if r.dataset != selection.dataset || selection.bound.published.is_some_and(|t| r.published_at > t) {
                continue;
            }
            if selection.updated_after.is_some_and(|t| r.published_at <= t) {
                continue;
            }
            total += u64::from(r.observation_count);
            releases.push((r.revision, r.id, r.status, r.published_at));
        }
        if total > limit {
            return Err(too_many(total));
        }
        // Publication order; ties in recording order.
        releases.sort_by_key(|r| (r.3, r.0));
        if releases.is_empty() {
            return Err(SdmxError::no_results("no release of the dataflow matches the query"));
        }
        counted = total;
        Phase::History { releases, next: 0 }
    } else {
        let filter = selection.filter();
        let mut n: u64 = 0;
        for obs in projection.select(view, &filter, selection.bound, None) {
            if selection.row(&projection, &view.def, &obs).is_none() {
                continue;
            }
            n += 1;
            if n > limit {
                return Err(too_many(n));
            }
        }
        if n == 0 {
            return Err(SdmxError::no_results("no observation matches the query"));
        }
        counted = n;
        Phase::Latest { cursor: None }
    };
    drop(projection);
    let regroup = matches!(selection.obs_dimension, ObsDimension::Dimension(_));
    let writer = Writer::new(format, &def, flow_agency, &selection, prepared);
    Ok(Answer {
        ledger: ledger.clone(),
        selection,
        writer,
        phase: Phase::Header(Box::new(phase_after_header)),
        regroup,
        counted,
        framed: true,
    })
}

impl Answer {
    /// The next piece of the body; `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Result<String, SdmxError>> {
        let mut out = String::new();
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Header(next) => {
                if self.framed {
                    self.writer.header(&mut out);
                }
                if matches!(*next, Phase::Latest { .. }) {
                    self.writer.open_dataset(&mut out, None);
                }
                self.phase = *next;
            }
            Phase::Latest { cursor } => {
                let (rows, cursor) = if self.regroup {
                    (self.read_all(), None)
                } else {
                    self.read_latest(cursor)
                };
                self.writer.rows(&mut out, rows, &self.selection);
                self.phase = match cursor {
                    Some(c) => Phase::Latest { cursor: Some(c) },
                    None => {
                        self.writer.close_dataset(&mut out);
                        Phase::Footer
                    }
                };
            }
            Phase::History { releases, next } => {
                let (revision, id, status, published) = releases[next];
                let rows = match self.read_release(revision, id, status, published) {
                    Ok(rows) => rows,
                    Err(e) => return Some(Err(e)),
                };
                self.writer.open_dataset(&mut out, Some((id, status, published)));
                self.writer.rows(&mut out, rows, &self.selection);
                self.writer.close_dataset(&mut out);
                self.phase = if next + 1 < releases.len() {
                    Phase::History {
                        releases,
                        next: next + 1,
                    }
                } else {
                    Phase::Footer
                };
            }
            Phase::Footer => {
                if self.framed {
                    self.writer.footer(&mut out);
                }
                self.phase = Phase::Done;
            }
            Phase::Done => return None,
        }
        Some(Ok(out))
    }

    /// One page of the latest figures after `cursor`, ending at a series boundary, and the
    /// cursor to continue from (`None`: this was the last page).
    fn read_latest(&self, cursor: Option<CellKey>) -> (Vec<Row>, Option<CellKey>) {
        let projection = self.ledger.read_in_place();
        let Some(view) = projection.dataset(&self.selection.dataset) else {
            return (Vec::new(), None);
        };
        let s = &self.selection;
        let filter = s.filter();
        let mut rows = Vec::new();
        let mut last: Option<CellKey> = None;
        let mut more = false;
        // Figures looked at: a selective filter ends a page too, so the lock is held briefly.
        for (examined, obs) in projection.select(view, &filter, s.bound, cursor.as_ref()).enumerate() {
            let c = obs.cell;
            if (rows.len() >= PAGE || examined >= 4 * PAGE) && last.is_some_and(|l| l.key != c.key) {
                more = true;
                break;
            }
            last = Some(c);
            rows.extend(s.row(&projection, &view.def, &obs));
        }
        (rows, if more { last } else { None })
    }

    /// Everything at once (a cross-sectional view), page by page.
    fn read_all(&self) -> Vec<Row> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (rows, next) = self.read_latest(cursor);
            all.extend(rows);
            match next {
                Some(c) => cursor = Some(c),
                None => return all,
            }
        }
    }

    /// The figures one release set, as selected.
    fn read_release(
        &self,
        revision: u64,
        id: Uuid,
        status: ReleaseStatus,
        published: DateTime<Utc>,
    ) -> Result<Vec<Row>, SdmxError> {
        let release = self
            .ledger
            .release_event(revision)
            .map_err(|e| SdmxError::new(Kind::Internal, format!("reading release {id}: {e}")))?
            .ok_or_else(|| SdmxError::new(Kind::Internal, format!("release {id} is not at revision {revision}")))?;
        let projection = self.ledger.read_in_place();
        let Some(view) = projection.dataset(&self.selection.dataset) else {
            return Ok(Vec::new());
        };
        let def = &view.def;
        let mut rows = Vec::new();
        for o in &release.observations {
            let (Ok(key), Some(measure)) = (def.parse_key(&o.key), view.measure(&o.measure)) else {
                continue;
            };
            if !self.selection.matches(&key, o.period, measure) {
                continue;
            }
            let row = Row {
                key,
                period: o.period,
                measure,
                value: o.value,
                release: id,
                status,
                published,
            };
            if self.selection.keeps(def, &row) {
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

/// Writes one format.
struct Writer {
    format: DataFormat,
    def: Arc<Dataset>,
    agency: String,
    prepared: DateTime<Utc>,
    detail: DataDetail,
    obs_dimension: ObsDimension,
    parts: Parts,
    /// SDMX-JSON: the periods met so far, each at its index in the message.
    periods: Vec<Period>,
    period_index: HashMap<Period, usize>,
    /// SDMX-JSON: data sets opened so far; whether the open one has an entry yet.
    datasets: usize,
    entries: usize,
    /// SDMX-CSV 2.0: the action of the data set being written (`I`, or `R` for a release).
    action: &'static str,
    /// SDMX-JSON 1.0: the codes and attribute values met so far.
    json10: json10::State,
    /// The place of this dataflow's structure in the message (0 unless it holds several).
    structure: usize,
    /// Whether the message holds several dataflows.
    multi: bool,
    /// SDMX-JSON: the data sets of the dataflows written before this one.
    first_dataset: usize,
    /// SDMX-CSV 2.0 with several dataflows: the columns after ACTION, for all of them.
    csv_union: Option<Vec<String>>,
}
