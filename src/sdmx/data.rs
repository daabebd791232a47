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

mod json10;
pub mod multi;

pub use json10::SCHEMA as JSON10_SCHEMA;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::dsd::{obs_status, Flow, FREQ, MEASURE, OBS_ATTRIBUTES, OBS_VALUE, SERIES_ATTRIBUTES, TIME_PERIOD, VERSION};
use super::error::{Kind, SdmxError};
use super::filter::{Component, ComponentFilter, Value as FilterValue};
use super::query::{months, DataDetail, Month, ObsDimension};
use super::schema::MlVersion;
use super::xml::{
    escape, header_time, COMMON3_NS, COMMON_NS, GENERIC_NS, MESSAGE3_NS, MESSAGE_NS, SS3_NS, SS_NS, XSI_NS,
};
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

/// The figures of one SDMX series (or section), in order.
fn groups(mut rows: Vec<Row>, s: &Selection) -> Vec<Vec<Row>> {
    match s.obs_dimension {
        ObsDimension::Time => rows.sort_by_key(|r| (r.series(), r.period)),
        ObsDimension::All => rows.sort_by_key(|r| (r.key, r.measure, r.period)),
        ObsDimension::Dimension(d) => rows.sort_by_key(|r| {
            let (other, code) = cross_key(r, d);
            (other, r.period, code)
        }),
    }
    let same = |a: &Row, b: &Row| match s.obs_dimension {
        ObsDimension::Time => a.series() == b.series(),
        ObsDimension::All => false,
        ObsDimension::Dimension(d) => cross_key(a, d).0 == cross_key(b, d).0 && a.period == b.period,
    };
    let mut out: Vec<Vec<Row>> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(g) if same(&g[0], &r) => g.push(r),
            _ => out.push(vec![r]),
        }
    }
    if matches!(s.obs_dimension, ObsDimension::Time) {
        for g in &mut out {
            if let Some(n) = s.first_n {
                g.truncate(n as usize);
            }
            if let Some(n) = s.last_n {
                let n = n as usize;
                if g.len() > n {
                    g.drain(..g.len() - n);
                }
            }
        }
    }
    out
}

/// The codes of every key dimension of a row (frequency, the dataset's, the measure), with
/// the code at position `d` taken out and returned apart.
fn cross_key(r: &Row, d: usize) -> (Vec<u16>, u16) {
    let mut codes = vec![r.period.frequency() as u16];
    codes.extend(r.key.codes());
    codes.push(u16::from(r.measure));
    let code = codes.remove(d);
    (codes, code)
}

/// CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

impl Writer {
    fn new(format: DataFormat, def: &Arc<Dataset>, agency: String, s: &Selection, prepared: DateTime<Utc>) -> Self {
        Writer {
            format,
            def: def.clone(),
            agency,
            prepared,
            detail: s.detail,
            obs_dimension: s.obs_dimension.clone(),
            parts: s.parts,
            periods: Vec::new(),
            period_index: HashMap::new(),
            datasets: 0,
            entries: 0,
            action: "I",
            json10: json10::State::default(),
            structure: 0,
            multi: false,
            first_dataset: 0,
            csv_union: None,
        }
    }

    fn flow(&self) -> Flow<'_> {
        Flow {
            def: &self.def,
            agency: self.agency.clone(),
        }
    }

    /// `(id, code, label)` of every key dimension of a row, in key order.
    fn key_values(&self, r: &Row) -> Vec<(&str, String, String)> {
        let mut out = Vec::with_capacity(self.def.dimensions.len() + 2);
        let f = r.period.frequency();
        out.push((
            FREQ,
            f.code().to_owned(),
            super::dsd::FREQ_CODES
                .iter()
                .find(|c| c.0 == f.code())
                .map_or("", |c| c.1)
                .to_owned(),
        ));
        for (dim, c) in self.def.dimensions.iter().zip(r.key.codes()) {
            let code = &dim.codes[c as usize];
            out.push((dim.id.as_str(), code.code.clone(), code.label.clone()));
        }
        let m = &self.def.measures[r.measure as usize];
        out.push((MEASURE, m.clone(), super::dsd::measure_name(m).to_owned()));
        out
    }

    fn obs_dim_id(&self) -> String {
        match self.obs_dimension {
            ObsDimension::Time => TIME_PERIOD.to_owned(),
            ObsDimension::All => "AllDimensions".to_owned(),
            ObsDimension::Dimension(d) => self.flow().key_dimensions()[d].to_owned(),
        }
    }

    /// The id the SDMX-ML 3.0 header gives this dataflow's structure.
    fn structure_ref(&self) -> String {
        if self.multi {
            format!("STR{}", self.structure + 1)
        } else {
            "STR".to_owned()
        }
    }

    /// The namespace prefix of this dataflow's structure-specific types.
    fn ns_prefix(&self) -> String {
        format!("ns{}", self.structure + 1)
    }

    fn ss_namespace(&self) -> String {
        let version = if self.format == DataFormat::Ml3 {
            MlVersion::V30
        } else {
            MlVersion::V21
        };
        super::schema::namespace(&self.flow(), &self.obs_dim_id(), version)
    }

    fn header(&mut self, out: &mut String) {
        let (root, ns) = match self.format {
            DataFormat::Csv { labels } => {
                self.csv_header(out, labels, false);
                return;
            }
            DataFormat::Csv2 { labels } => {
                self.csv_header(out, labels, true);
                return;
            }
            DataFormat::Json10 => {
                self.json10_header(out);
                return;
            }
            DataFormat::Json2 => {
                let _ = write!(
                    out,
                    "{{\"meta\":{{\"schema\":\"{JSON_DATA_SCHEMA}\",\"id\":\"DATA\",\"test\":false,\"prepared\":\"{}\",\"contentLanguages\":[\"en\"],\"sender\":{{\"id\":\"TRADELEDGER\"}}}},\n\"data\":{{\"dataSets\":[",
                    header_time(self.prepared)
                );
                return;
            }
            DataFormat::Ml3 => {
                let _ = writeln!(
                    out,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:StructureSpecificData xmlns:message=\"{MESSAGE3_NS}\" xmlns:common=\"{COMMON3_NS}\" xmlns:xsi=\"{XSI_NS}\" xmlns:ss=\"{SS3_NS}\" xmlns:ns1=\"{ns}\">\n\
                     <message:Header><message:ID>DATA</message:ID><message:Test>false</message:Test><message:Prepared>{}</message:Prepared>\
                     <message:Sender id=\"TRADELEDGER\"/><message:Structure structureID=\"STR\" namespace=\"{ns}\" dimensionAtObservation=\"{}\">\
                     <common:StructureUsage>{}</common:StructureUsage></message:Structure></message:Header>",
                    header_time(self.prepared),
                    self.obs_dim_id(),
                    escape(&self.flow().dataflow_urn()),
                    ns = escape(&self.ss_namespace()),
                );
                return;
            }
            DataFormat::Generic { time_series } => (
                if time_series {
                    "GenericTimeSeriesData"
                } else {
                    "GenericData"
                },
                format!("xmlns:generic=\"{GENERIC_NS}\""),
            ),
            DataFormat::StructureSpecific { time_series } => (
                if time_series {
                    "StructureSpecificTimeSeriesData"
                } else {
                    "StructureSpecificData"
                },
                format!("xmlns:ss=\"{SS_NS}\" xmlns:ns1=\"{}\"", escape(&self.ss_namespace())),
            ),
        };
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:{root} xmlns:message=\"{MESSAGE_NS}\" xmlns:common=\"{COMMON_NS}\" xmlns:xsi=\"{XSI_NS}\" {ns}>\n\
             <message:Header><message:ID>DATA</message:ID><message:Test>false</message:Test><message:Prepared>{}</message:Prepared>\
             <message:Sender id=\"TRADELEDGER\"/><message:Structure structureID=\"STR\" dimensionAtObservation=\"{}\"",
            header_time(self.prepared),
            self.obs_dim_id()
        );
        if matches!(self.format, DataFormat::StructureSpecific { .. }) {
            let _ = write!(out, " namespace=\"{}\"", escape(&self.ss_namespace()));
        }
        let _ = writeln!(
            out,
            "><common:Structure><Ref agencyID=\"{}\" id=\"{}\" version=\"{VERSION}\"/></common:Structure></message:Structure></message:Header>",
            escape(&self.agency),
            escape(&self.def.id)
        );
    }

    fn csv_columns(&self) -> Vec<(String, String)> {
        let mut cols = vec![("DATAFLOW".to_owned(), String::new())];
        cols.push((FREQ.into(), "Frequency".into()));
        for d in &self.def.dimensions {
            cols.push((d.id.clone(), d.label.clone()));
        }
        cols.push((MEASURE.into(), "Measure".into()));
        cols.push((TIME_PERIOD.into(), "Time period".into()));
        if self.parts.value {
            cols.push((OBS_VALUE.into(), String::new()));
        }
        if self.detail.attributes() || self.detail == DataDetail::Full {
            let wanted = self.parts.series.iter().chain(&self.parts.obs);
            for ((id, name), _) in SERIES_ATTRIBUTES
                .iter()
                .chain(&OBS_ATTRIBUTES)
                .zip(wanted)
                .filter(|(_, w)| **w)
            {
                cols.push((id.to_string(), name.to_string()));
            }
        }
        cols
    }

    /// The header row; SDMX-CSV 2.0 (`v2`) names the structure and the action first.
    fn csv_header(&self, out: &mut String, labels: bool, v2: bool) {
        let mut columns = self.csv_columns();
        if v2 {
            columns[0] = ("STRUCTURE_ID".to_owned(), String::new());
            out.push_str("STRUCTURE,");
            columns.insert(1, ("ACTION".to_owned(), String::new()));
        }
        for (i, (id, name)) in columns.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if labels && !name.is_empty() {
                csv_field(out, &format!("{id}: {name}"));
            } else {
                out.push_str(&id);
            }
        }
        out.push_str("\r\n");
    }

    /// Opens a data set; for a history, the one of a release, valid from its publication.
    fn open_dataset(&mut self, out: &mut String, release: Option<(Uuid, ReleaseStatus, DateTime<Utc>)>) {
        let validity = release.map(|(id, _, published)| (id, header_time(published)));
        match self.format {
            DataFormat::Csv { .. } => {}
            DataFormat::Csv2 { .. } => self.action = if validity.is_some() { "R" } else { "I" },
            DataFormat::Json10 => self.json10_open(out, validity.map(|(_, from)| from)),
            DataFormat::Json2 => {
                if self.first_dataset + self.datasets > 0 {
                    out.push(',');
                }
                self.datasets += 1;
                self.entries = 0;
                let _ = write!(
                    out,
                    "{{\"structure\":{},\"links\":[{{\"urn\":{},\"rel\":\"dataflow\"}}],\"action\":\"{}\"",
                    self.structure,
                    json_text(&self.flow().dataflow_urn()),
                    if validity.is_some() { "Replace" } else { "Information" }
                );
                if let Some((_, from)) = &validity {
                    let _ = write!(out, ",\"validFrom\":\"{from}\"");
                }
                let _ = writeln!(
                    out,
                    ",\"{}\":{{",
                    if self.obs_dimension == ObsDimension::All {
                        "observations"
                    } else {
                        "series"
                    }
                );
            }
            DataFormat::Ml3 => {
                let _ = write!(
                    out,
                    "<message:DataSet ss:structureRef=\"{}\" xsi:type=\"{}:DataSetType\"",
                    self.structure_ref(),
                    self.ns_prefix()
                );
                match &validity {
                    Some((id, from)) => {
                        let _ = write!(
                            out,
                            " ss:action=\"Replace\" ss:setID=\"R{}\" ss:validFromDate=\"{from}\"",
                            id.simple()
                        );
                    }
                    None => out.push_str(" ss:action=\"Information\""),
                }
                out.push_str(">\n");
            }
            DataFormat::Generic { .. } => {
                out.push_str("<message:DataSet structureRef=\"STR\"");
                if let Some((id, from)) = &validity {
                    let _ = write!(
                        out,
                        " action=\"Replace\" setID=\"R{}\" validFromDate=\"{from}\"",
                        id.simple()
                    );
                }
                out.push_str(">\n");
            }
            DataFormat::StructureSpecific { .. } => {
                out.push_str("<message:DataSet ss:structureRef=\"STR\" xsi:type=\"ns1:DataSetType\" ss:dataScope=\"DataStructure\"");
                if let Some((id, from)) = &validity {
                    let _ = write!(
                        out,
                        " ss:action=\"Replace\" ss:setID=\"R{}\" ss:validFromDate=\"{from}\"",
                        id.simple()
                    );
                }
                out.push_str(">\n");
            }
        }
    }

    fn close_dataset(&self, out: &mut String) {
        match self.format {
            DataFormat::Csv { .. } | DataFormat::Csv2 { .. } => {}
            DataFormat::Json10 => self.json10_close(out),
            DataFormat::Json2 => out.push_str("}}\n"),
            _ => out.push_str("</message:DataSet>\n"),
        }
    }

    fn footer(&self, out: &mut String) {
        let root = match self.format {
            DataFormat::Csv { .. } | DataFormat::Csv2 { .. } => return,
            DataFormat::Json10 => {
                self.json10_structure(out);
                return;
            }
            DataFormat::Json2 => {
                let _ = writeln!(out, "],\n\"structures\":[{}]}}}}", self.json_structure());
                return;
            }
            DataFormat::Ml3 => "StructureSpecificData",
            DataFormat::Generic { time_series: false } => "GenericData",
            DataFormat::Generic { time_series: true } => "GenericTimeSeriesData",
            DataFormat::StructureSpecific { time_series: false } => "StructureSpecificData",
            DataFormat::StructureSpecific { time_series: true } => "StructureSpecificTimeSeriesData",
        };
        let _ = writeln!(out, "</message:{root}>");
    }

    /// The series attributes asked for (`attributes`), with their values.
    fn series_attributes(&self) -> Vec<(&'static str, String)> {
        let all = [
            (SERIES_ATTRIBUTES[0].0, self.def.unit.clone()),
            (SERIES_ATTRIBUTES[1].0, self.def.unit_multiplier.to_string()),
        ];
        all.into_iter()
            .zip(self.parts.series)
            .filter(|(_, w)| *w)
            .map(|(a, _)| a)
            .collect()
    }

    /// The observation attributes asked for, with their values in row `r`.
    fn obs_attributes(&self, r: &Row) -> Vec<(&'static str, String)> {
        let all = [
            (OBS_ATTRIBUTES[0].0, obs_status(r.status).to_owned()),
            (OBS_ATTRIBUTES[1].0, r.release.to_string()),
            (OBS_ATTRIBUTES[2].0, r.status.as_str().to_owned()),
            (OBS_ATTRIBUTES[3].0, header_time(r.published)),
        ];
        all.into_iter()
            .zip(self.parts.obs)
            .filter(|(_, w)| *w)
            .map(|(a, _)| a)
            .collect()
    }

    fn rows(&mut self, out: &mut String, rows: Vec<Row>, s: &Selection) {
        let groups = groups(rows, s);
        match self.format {
            DataFormat::Csv { labels } => self.csv_rows(out, &groups, labels, false),
            DataFormat::Csv2 { labels } => self.csv_rows(out, &groups, labels, true),
            DataFormat::Generic { .. } => self.generic_rows(out, &groups),
            DataFormat::StructureSpecific { .. } | DataFormat::Ml3 => self.ss_rows(out, &groups),
            DataFormat::Json10 => self.json10_rows(out, &groups),
            DataFormat::Json2 => self.json_rows(out, &groups),
        }
    }

    fn csv_rows(&self, out: &mut String, groups: &[Vec<Row>], labels: bool, v2: bool) {
        let flow = self.flow().csv_ref();
        let flow = if labels {
            format!("{flow}: {}", self.def.name)
        } else {
            flow
        };
        let observations = self.detail.observations();
        let attributes = self.detail.attributes();
        // With several dataflows, where each of this one's columns goes in the message's.
        let place: Option<Vec<Option<usize>>> = self.csv_union.as_ref().map(|union| {
            let own: Vec<String> = self.csv_columns().into_iter().skip(1).map(|(id, _)| id).collect();
            union.iter().map(|c| own.iter().position(|o| o == c)).collect()
        });
        let mut fields: Vec<String> = Vec::new();
        for g in groups {
            let rows: &[Row] = if observations { g } else { &g[..1] };
            for r in rows {
                if v2 {
                    out.push_str("dataflow,");
                }
                csv_field(out, &flow);
                if v2 {
                    out.push(',');
                    out.push_str(self.action);
                }
                fields.clear();
                let field = |s: &str| {
                    let mut f = String::new();
                    csv_field(&mut f, s);
                    f
                };
                for (_, code, label) in self.key_values(r) {
                    fields.push(if labels {
                        field(&format!("{code}: {label}"))
                    } else {
                        field(&code)
                    });
                }
                fields.push(if observations || !matches!(self.obs_dimension, ObsDimension::Time) {
                    r.period.to_string()
                } else {
                    String::new()
                });
                if self.parts.value {
                    fields.push(if observations {
                        r.value.to_string()
                    } else {
                        String::new()
                    });
                }
                if attributes || self.detail == DataDetail::Full {
                    for (_, v) in self.series_attributes() {
                        fields.push(field(&v));
                    }
                    for (id, v) in self.obs_attributes(r) {
                        fields.push(if !observations {
                            String::new()
                        } else if labels && id == "OBS_STATUS" {
                            let name = super::dsd::OBS_STATUS_CODES
                                .iter()
                                .find(|c| c.0 == v)
                                .map_or("", |c| c.1);
                            field(&format!("{v}: {name}"))
                        } else {
                            field(&v)
                        });
                    }
                }
                match &place {
                    None => {
                        for f in &fields {
                            out.push(',');
                            out.push_str(f);
                        }
                    }
                    Some(place) => {
                        for p in place {
                            out.push(',');
                            if let Some(f) = p.and_then(|p| fields.get(p)) {
                                out.push_str(f);
                            }
                        }
                    }
                }
                out.push_str("\r\n");
            }
        }
    }

    fn generic_values(out: &mut String, values: impl IntoIterator<Item = (String, String)>) {
        for (id, v) in values {
            let _ = write!(out, "<generic:Value id=\"{}\" value=\"{}\"/>", escape(&id), escape(&v));
        }
    }

    fn generic_rows(&self, out: &mut String, groups: &[Vec<Row>]) {
        let observations = self.detail.observations();
        let attributes = self.detail.attributes();
        let obs_attrs = self.detail == DataDetail::Full;
        for g in groups {
            let first = &g[0];
            let keys = self.key_values(first);
            match &self.obs_dimension {
                ObsDimension::All => {
                    for r in g {
                        out.push_str("<generic:Obs><generic:ObsKey>");
                        let mut key: Vec<(String, String)> = self
                            .key_values(r)
                            .into_iter()
                            .map(|(id, c, _)| (id.to_owned(), c))
                            .collect();
                        key.push((TIME_PERIOD.into(), r.period.to_string()));
                        Self::generic_values(out, key);
                        out.push_str("</generic:ObsKey>");
                        if observations {
                            let _ = write!(out, "<generic:ObsValue value=\"{}\"/>", r.value);
                        }
                        if attributes {
                            out.push_str("<generic:Attributes>");
                            let series = self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v));
                            Self::generic_values(out, series);
                            if obs_attrs {
                                let obs = self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v));
                                Self::generic_values(out, obs);
                            }
                            out.push_str("</generic:Attributes>");
                        }
                        out.push_str("</generic:Obs>\n");
                    }
                }
                dim => {
                    out.push_str("<generic:Series><generic:SeriesKey>");
                    let cross = match dim {
                        ObsDimension::Dimension(d) => Some(*d),
                        _ => None,
                    };
                    let mut key: Vec<(String, String)> = keys
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| Some(*i) != cross)
                        .map(|(_, (id, c, _))| (id.to_string(), c.clone()))
                        .collect();
                    if cross.is_some() {
                        key.push((TIME_PERIOD.into(), first.period.to_string()));
                    }
                    Self::generic_values(out, key);
                    out.push_str("</generic:SeriesKey>");
                    if attributes && cross.is_none() {
                        out.push_str("<generic:Attributes>");
                        Self::generic_values(
                            out,
                            self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v)),
                        );
                        out.push_str("</generic:Attributes>");
                    }
                    if observations {
                        for r in g {
                            let at = match cross {
                                Some(d) => self.key_values(r).swap_remove(d).1,
                                None => r.period.to_string(),
                            };
                            let _ = write!(
                                out,
                                "<generic:Obs><generic:ObsDimension value=\"{}\"/><generic:ObsValue value=\"{}\"/>",
                                escape(&at),
                                r.value
                            );
                            if obs_attrs {
                                out.push_str("<generic:Attributes>");
                                if cross.is_some() {
                                    let series = self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v));
                                    Self::generic_values(out, series);
                                }
                                Self::generic_values(
                                    out,
                                    self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v)),
                                );
                                out.push_str("</generic:Attributes>");
                            }
                            out.push_str("</generic:Obs>");
                        }
                    }
                    out.push_str("</generic:Series>\n");
                }
            }
        }
    }

    fn ss_attrs(out: &mut String, values: impl IntoIterator<Item = (String, String)>) {
        for (id, v) in values {
            let _ = write!(out, " {}=\"{}\"", escape(&id), escape(&v));
        }
    }

    fn ss_rows(&self, out: &mut String, groups: &[Vec<Row>]) {
        let observations = self.detail.observations();
        let attributes = self.detail.attributes();
        let obs_attrs = self.detail == DataDetail::Full;
        let series_attrs = || self.series_attributes().into_iter().map(|(i, v)| (i.to_owned(), v));
        for g in groups {
            let first = &g[0];
            let keys = self.key_values(first);
            let cross = match self.obs_dimension {
                ObsDimension::Dimension(d) => Some(d),
                _ => None,
            };
            if self.obs_dimension == ObsDimension::All {
                for r in g {
                    out.push_str("<Obs");
                    Self::ss_attrs(out, self.key_values(r).into_iter().map(|(id, c, _)| (id.to_owned(), c)));
                    Self::ss_attrs(out, [(TIME_PERIOD.to_owned(), r.period.to_string())]);
                    if observations && self.parts.value {
                        Self::ss_attrs(out, [(OBS_VALUE.to_owned(), r.value.to_string())]);
                    }
                    if attributes {
                        Self::ss_attrs(out, series_attrs());
                    }
                    if obs_attrs {
                        Self::ss_attrs(out, self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v)));
                    }
                    out.push_str("/>\n");
                }
                continue;
            }
            out.push_str("<Series");
            let key = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != cross)
                .map(|(_, (id, c, _))| (id.to_string(), c.clone()));
            Self::ss_attrs(out, key);
            if cross.is_some() {
                Self::ss_attrs(out, [(TIME_PERIOD.to_owned(), first.period.to_string())]);
            } else if attributes {
                Self::ss_attrs(out, series_attrs());
            }
            if !observations {
                out.push_str("/>\n");
                continue;
            }
            out.push('>');
            for r in g {
                out.push_str("<Obs");
                let at = match cross {
                    Some(d) => (keys[d].0.to_owned(), self.key_values(r).swap_remove(d).1),
                    None => (TIME_PERIOD.to_owned(), r.period.to_string()),
                };
                Self::ss_attrs(out, [at]);
                if self.parts.value {
                    Self::ss_attrs(out, [(OBS_VALUE.to_owned(), r.value.to_string())]);
                }
                if obs_attrs {
                    if cross.is_some() {
                        Self::ss_attrs(out, series_attrs());
                    }
                    Self::ss_attrs(out, self.obs_attributes(r).into_iter().map(|(i, v)| (i.to_owned(), v)));
                }
                out.push_str("/>");
            }
            out.push_str("</Series>\n");
        }
    }
}

/// Where SDMX-JSON 2.0 data messages name their schema.
const JSON_DATA_SCHEMA: &str =
    "https://raw.githubusercontent.com/sdmx-twg/sdmx-json/master/data-message/tools/schemas/2.0.0/sdmx-json-data-schema.json";

/// SDMX-JSON 2.0 data: data sets of series (or of observations in a flat view) keyed by the
/// positions of their codes, written as they are read; the structure follows the data sets,
/// since the periods (the time dimension's values) are only known once every figure is out.
impl Writer {
    /// The key positions at series and at observation level: the key dimensions (`FREQ`, the
    /// dataset's, `MEASURE`), then `TIME_PERIOD`.
    fn json_levels(&self) -> (Vec<usize>, Vec<usize>) {
        let time = self.def.dimensions.len() + 2;
        match self.obs_dimension {
            ObsDimension::Time => ((0..time).collect(), vec![time]),
            ObsDimension::All => (Vec::new(), (0..=time).collect()),
            ObsDimension::Dimension(d) => ((0..=time).filter(|p| *p != d).collect(), vec![d]),
        }
    }

    /// The index of row `r`'s value of the component at key position `p`.
    fn json_index(&mut self, r: &Row, p: usize) -> usize {
        let n = self.def.dimensions.len();
        match p {
            0 => super::dsd::FREQ_CODES
                .iter()
                .position(|c| c.0 == r.period.frequency().code())
                .unwrap_or(0),
            p if p <= n => r.key.code(p - 1) as usize,
            p if p == n + 1 => r.measure as usize,
            _ => {
                let next = self.periods.len();
                *self.period_index.entry(r.period).or_insert_with(|| {
                    self.periods.push(r.period);
                    next
                })
            }
        }
    }

    fn json_key(&mut self, r: &Row, positions: &[usize]) -> String {
        let mut key = String::new();
        for (i, p) in positions.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            let _ = write!(key, "{}", self.json_index(r, *p));
        }
        key
    }

    /// An observation's array: the value, then the attributes at observation level.
    fn json_obs(&self, out: &mut String, r: &Row, series_attributes: bool) {
        let mut values: Vec<String> = Vec::new();
        if self.parts.value {
            values.push(r.value.to_string());
        }
        if self.detail == DataDetail::Full {
            values.extend(self.obs_attributes(r).into_iter().map(|(_, v)| json_text(&v)));
            if series_attributes {
                values.extend(self.series_attributes().into_iter().map(|(_, v)| json_text(&v)));
            }
        }
        let _ = write!(out, "[{}]", values.join(","));
    }

    fn json_rows(&mut self, out: &mut String, groups: &[Vec<Row>]) {
        let (series, obs) = self.json_levels();
        let observations = self.detail.observations();
        for g in groups {
            for r in g {
                self.json_index(r, self.def.dimensions.len() + 2);
            }
            if series.is_empty() {
                for r in g {
                    let key = self.json_key(r, &obs);
                    if self.entries > 0 {
                        out.push(',');
                    }
                    self.entries += 1;
                    let _ = write!(out, "\"{key}\":");
                    self.json_obs(out, r, true);
                    out.push('\n');
                }
                continue;
            }
            let key = self.json_key(&g[0], &series);
            if self.entries > 0 {
                out.push(',');
            }
            self.entries += 1;
            let _ = write!(out, "\"{key}\":{{");
            let time_series = self.obs_dimension == ObsDimension::Time;
            let mut inner = false;
            if time_series && self.detail.attributes() {
                let values: Vec<String> = self
                    .series_attributes()
                    .into_iter()
                    .map(|(_, v)| json_text(&v))
                    .collect();
                let _ = write!(out, "\"attributes\":[{}]", values.join(","));
                inner = true;
            }
            if observations {
                if inner {
                    out.push(',');
                }
                out.push_str("\"observations\":{");
                for (i, r) in g.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = self.json_key(r, &obs);
                    let _ = write!(out, "\"{key}\":");
                    self.json_obs(out, r, !time_series);
                }
                out.push('}');
            }
            out.push_str("}\n");
        }
    }

    /// The structure of this dataflow's data sets, listed after the data sets.
    fn json_structure(&self) -> String {
        let n = self.def.dimensions.len();
        let text = json_text;
        let named = |id: &str, name: &str| {
            format!(
                "\"id\":{},\"name\":{},\"names\":{{\"en\":{}}}",
                text(id),
                text(name),
                text(name)
            )
        };
        let dimension = |p: usize| -> String {
            let (id, name, values): (&str, &str, Vec<String>) = match p {
                0 => (
                    FREQ,
                    "Frequency",
                    super::dsd::FREQ_CODES
                        .iter()
                        .map(|(c, l)| format!("{{{}}}", named(c, l)))
                        .collect(),
                ),
                p if p <= n => {
                    let d = &self.def.dimensions[p - 1];
                    let values = d
                        .codes
                        .iter()
                        .map(|c| match &c.parent {
                            Some(parent) => format!("{{{},\"parent\":{}}}", named(&c.code, &c.label), text(parent)),
                            None => format!("{{{}}}", named(&c.code, &c.label)),
                        })
                        .collect();
                    (&d.id, &d.label, values)
                }
                p if p == n + 1 => (
                    MEASURE,
                    "Measure",
                    self.def
                        .measures
                        .iter()
                        .map(|m| format!("{{{}}}", named(m, super::dsd::measure_name(m))))
                        .collect(),
                ),
                _ => (
                    TIME_PERIOD,
                    "Time period",
                    self.periods.iter().map(|p| format!("{{\"value\":\"{p}\"}}")).collect(),
                ),
            };
            format!(
                "{{{},\"keyPosition\":{p},\"values\":[{}]}}",
                named(id, name),
                values.join(",")
            )
        };
        let (series, obs) = self.json_levels();
        let list = |positions: &[usize]| positions.iter().map(|p| dimension(*p)).collect::<Vec<_>>().join(",");
        let key_dims: Vec<String> = self.flow().key_dimensions().iter().map(|d| text(d)).collect();
        let attribute = |(id, name): (&str, &str), series_level: bool| {
            let relationship = if series_level {
                format!("{{\"dimensions\":[{}]}}", key_dims.join(","))
            } else {
                "{\"observation\":{}}".to_owned()
            };
            format!("{{{},\"relationship\":{relationship}}}", named(id, name))
        };
        let wanted_series: Vec<String> = SERIES_ATTRIBUTES
            .iter()
            .zip(self.parts.series)
            .filter(|(_, w)| *w)
            .map(|(a, _)| attribute(*a, true))
            .collect();
        let wanted_obs: Vec<String> = OBS_ATTRIBUTES
            .iter()
            .zip(self.parts.obs)
            .filter(|(_, w)| *w)
            .map(|(a, _)| attribute(*a, false))
            .collect();
        let (series_attrs, obs_attrs) = match (self.detail.attributes(), self.obs_dimension == ObsDimension::Time) {
            (false, _) => (Vec::new(), Vec::new()),
            (true, true) => (wanted_series, wanted_obs),
            (true, false) => (Vec::new(), wanted_obs.into_iter().chain(wanted_series).collect()),
        };
        let obs_attrs = if self.detail == DataDetail::Full {
            obs_attrs
        } else {
            Vec::new()
        };
        let datasets: Vec<String> = (self.first_dataset..self.first_dataset + self.datasets)
            .map(|i| i.to_string())
            .collect();
        let mut dimensions = vec![format!("\"series\":[{}]", list(&series))];
        dimensions.push(format!("\"observation\":[{}]", list(&obs)));
        let mut attributes = Vec::new();
        if !series_attrs.is_empty() {
            attributes.push(format!("\"series\":[{}]", series_attrs.join(",")));
        }
        if !obs_attrs.is_empty() {
            attributes.push(format!("\"observation\":[{}]", obs_attrs.join(",")));
        }
        let measures = if self.parts.value {
            format!("\"observation\":[{{{}}}]", named(OBS_VALUE, "Observation value"))
        } else {
            String::new()
        };
        format!(
            "{{\"name\":{},\"names\":{{\"en\":{}}},\"links\":[{{\"urn\":{},\"rel\":\"dataflow\"}}],\"dataSets\":[{}],\
             \"dimensions\":{{{}}},\"measures\":{{{measures}}},\"attributes\":{{{}}}}}",
            text(&self.def.name),
            text(&self.def.name),
            text(&self.flow().dataflow_urn()),
            datasets.join(","),
            dimensions.join(","),
            attributes.join(",")
        )
    }
}

/// A JSON string.
fn json_text(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}
