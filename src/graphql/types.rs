//! Output and input types of the schema, and how projection views become them.

use async_graphql::{Context, Enum, InputObject, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::{bad_argument, coded, ErrorCode};
use super::fields::{read_type, Def, KeyText, MaybeText, Text};
use super::ledger_of;
use super::scalars::{Computed, Dec};
use super::tick::{checkpoint, ticks, Tick};
use crate::domain::{self, Period};
use crate::projection::{AsOf as AsOfSpec, Bound, CellKey, DatasetView, ObservationAt, Projection, ReleaseInfo};

/// How final a release's figures are.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::domain::ReleaseStatus")]
pub enum ReleaseStatus {
    /// First estimate, published soon after the period ends; expected to be revised.
    Preliminary,
    /// A later estimate replacing an earlier one.
    Revised,
    /// The agency does not plan to revise these figures again.
    Final,
}

/// A point in the ledger's history to read at, on its two time axes. Set exactly one field,
/// or `publishedAt` with `knownAt`.
#[derive(InputObject, Debug, Clone, Default)]
pub struct AsOf {
    /// As of this ledger revision (see `ledger.revision` and `events`).
    pub revision: Option<i64>,
    /// As of the revision that recorded this release: what was public right after it.
    pub release: Option<Uuid>,
    /// What the agencies had published by this time (their publication times), as the
    /// ledger knows it now. A back-fill recorded later can change this answer; add `knownAt`
    /// for one that cannot change.
    pub published_at: Option<DateTime<Utc>>,
    /// What the ledger showed at this time (its recording times, `recordedAt`): releases
    /// recorded later are ignored. Once this time is past, the answer never changes.
    pub known_at: Option<DateTime<Utc>>,
}

impl AsOf {
    pub fn to_spec(value: Option<&AsOf>) -> Result<Option<AsOfSpec>> {
        let Some(a) = value else { return Ok(None) };
        match (a.revision, a.release, a.published_at, a.known_at) {
            (Some(r), None, None, None) if r >= 0 => Ok(Some(AsOfSpec::Revision(r as u64))),
            (Some(r), None, None, None) => Err(bad_argument(
                "asOf.revision",
                format!("asOf.revision must not be negative (got {r})"),
            )),
            (None, Some(id), None, None) => Ok(Some(AsOfSpec::Release(id))),
            (None, None, Some(t), None) => Ok(Some(AsOfSpec::PublishedAt(t))),
            (None, None, published_at, Some(known_at)) => Ok(Some(AsOfSpec::KnownAt { known_at, published_at })),
            _ => Err(bad_argument(
                "asOf",
                "asOf: set exactly one of revision, release, publishedAt, knownAt (or publishedAt with knownAt)",
            )),
        }
    }
}

/// Why a release revises figures (the OECD/Eurostat revision-policy categories).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[graphql(remote = "crate::domain::RevisionReasonKind")]
pub enum RevisionReasonKind {
    /// Scheduled revisions: new source data, seasonal re-estimation, the regular vintage cycle.
    Routine,
    /// A change of methods, definitions or classifications (a benchmark revision).
    Methodological,
    /// The correction of a mistake in an earlier release.
    ErrorCorrection,
}

/// The reason a release gives for the figures it revises.
#[derive(SimpleObject, Clone, Debug)]
pub struct RevisionReason {
    pub kind: RevisionReasonKind,
    /// Free text: what changed and why.
    pub note: Option<String>,
}

impl From<&domain::RevisionReason> for RevisionReason {
    fn from(r: &domain::RevisionReason) -> Self {
        RevisionReason {
            kind: r.kind.into(),
            note: r.note.clone(),
        }
    }
}

/// How often a dataset's figures are observed; SDMX's `FREQ` codes in brackets.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Frequency {
    /// Years: `2025` (`A`).
    Annual,
    /// Half-years: `2025-S1` (`S`).
    HalfYear,
    /// Quarters: `2025-Q3` (`Q`).
    Quarter,
    /// Months: `2025-07` (`M`).
    Month,
}

impl From<domain::Frequency> for Frequency {
    fn from(f: domain::Frequency) -> Self {
        match f {
            domain::Frequency::Annual => Frequency::Annual,
            domain::Frequency::HalfYear => Frequency::HalfYear,
            domain::Frequency::Quarter => Frequency::Quarter,
            domain::Frequency::Month => Frequency::Month,
        }
    }
}

impl From<Frequency> for domain::Frequency {
    fn from(f: Frequency) -> Self {
        match f {
            Frequency::Annual => domain::Frequency::Annual,
            Frequency::HalfYear => domain::Frequency::HalfYear,
            Frequency::Quarter => domain::Frequency::Quarter,
            Frequency::Month => domain::Frequency::Month,
        }
    }
}

/// The newest event of the ledger.
#[derive(SimpleObject)]
pub struct LedgerHead {
    /// Revision of the newest event (0 for an empty ledger).
    pub revision: u64,
    /// SHA-256 (hex) of the newest event; it covers every event before it.
    pub hash: String,
    /// Number of events recorded (equal to `revision`, since revisions have no gaps).
    pub event_count: u64,
    pub release_count: u64,
    /// Number of figure versions held (all releases' observations).
    pub observation_version_count: u64,
    /// Why the ledger refuses writes, if it does (damaged log, or started read-only).
    pub read_only_reason: Option<String>,
}

/// One entry of a dimension's code list.
#[derive(SimpleObject, Clone)]
pub struct Code {
    pub code: String,
    pub label: String,
    /// The code this one is a part of; null for the total `_T`.
    pub parent: Option<String>,
}

/// A dimension of a dataset, with its code list.
#[derive(SimpleObject, Clone)]
pub struct Dimension {
    pub id: String,
    pub label: String,
    /// 0-based position of this dimension in series keys.
    pub position: i32,
    pub codes: Vec<Code>,
}

/// A statistical dataset: its dimensions, measures and unit.
#[derive(SimpleObject)]
pub struct Dataset {
    pub id: ID,
    pub name: String,
    pub publisher: String,
    pub description: Option<String>,
    /// Currency or unit of the figures, e.g. `USD`.
    pub unit: String,
    /// Power of ten the figures are expressed in: 6 means millions.
    pub unit_multiplier: i32,
    /// Dimensions in series-key order.
    pub dimensions: Vec<Dimension>,
    /// Measures carried: `BAL` balance, `CRE` credits (exports), `DEB` debits (imports).
    pub measures: Vec<String>,
    /// How often its figures are observed: every period published must be of this
    /// frequency. Null only for a dataset defined without one that has no figures yet.
    pub frequency: Option<Frequency>,
    /// Revision of the event that defined the dataset.
    pub defined_at_revision: u64,
    pub release_count: u32,
    /// Number of distinct figures (key, period, measure) ever published.
    pub observation_count: u64,
}

impl Dataset {
    pub fn from_view(v: &DatasetView) -> Self {
        let d = &v.def;
        Dataset {
            id: ID(d.id.clone()),
            name: d.name.clone(),
            publisher: d.publisher.clone(),
            description: d.description.clone(),
            unit: d.unit.clone(),
            unit_multiplier: d.unit_multiplier,
            dimensions: d
                .dimensions
                .iter()
                .enumerate()
                .map(|(i, dim)| Dimension {
                    id: dim.id.clone(),
                    label: dim.label.clone(),
                    position: i as i32,
                    codes: dim
                        .codes
                        .iter()
                        .map(|c| Code {
                            code: c.code.clone(),
                            label: c.label.clone(),
                            parent: c.parent.clone(),
                        })
                        .collect(),
                })
                .collect(),
            measures: d.measures.clone(),
            frequency: v.frequency().map(Into::into),
            defined_at_revision: v.revision,
            release_count: v.release_count,
            observation_count: v.cell_count() as u64,
        }
    }
}

/// A release: figures an agency published at one moment, as the projection holds it.
#[derive(Clone)]
pub struct Release {
    info: ReleaseInfo,
    position: u32,
}

impl Release {
    pub fn from_info(position: u32, r: &ReleaseInfo) -> Self {
        Release {
            info: r.clone(),
            position,
        }
    }

    /// The release at `position` of the ledger the request reads.
    pub fn at(ctx: &Context<'_>, position: u32) -> Self {
        Release::from_info(position, ledger_of(ctx).read().release_at(position))
    }
}

/// A figure as a release published it, with the value it replaced.
#[derive(SimpleObject)]
pub struct ReleaseFigure {
    pub key: String,
    pub period: Period,
    pub measure: String,
    pub value: Dec,
    /// The value before this release, if an earlier release had published one.
    pub previous_value: Option<Dec>,
    /// `value - previousValue`.
    pub delta: Option<Computed>,
}

read_type! {
    /// A release: figures an agency published at one moment.
    Release reads ReleaseInfo as |r| from |this| &this.info;
    scalars {
        id: Uuid = r.id,
        status: ReleaseStatus = ReleaseStatus::from(r.status),
        title: String = Text(&r.title),
        /// Official publication time.
        published_at: DateTime<Utc> = r.published_at,
        /// Where the figures come from (text or URL).
        source: Option<String> = MaybeText(r.source.as_deref()),
        /// Ledger revision of the event that recorded the release.
        revision: u64 = r.revision,
        /// When the ledger recorded it.
        recorded_at: DateTime<Utc> = r.recorded_at,
        /// Name of the write token that recorded it.
        actor: String = Text(&r.actor),
        observation_count: u32 = r.observation_count,
        /// How many of its figures changed a value published by an earlier release.
        revised_count: u32 = r.revised_count,
        /// A back-fill: published before its dataset's latest publication at the time it was
        /// recorded (an agency's older vintage). Its figures take their place in publication
        /// order.
        backfilled: bool = r.backfilled,
    }
    objects {
        /// Why its figures revise earlier ones, when the release says.
        async fn revision_reason(&self) -> Option<RevisionReason> {
            self.info.revision_reason.as_ref().map(Into::into)
        }
    /// The dataset the release belongs to.
    async fn dataset(&self, ctx: &Context<'_>) -> Result<Dataset> {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        p.dataset(&self.info.dataset)
            .map(Dataset::from_view)
            .ok_or_else(|| coded(ErrorCode::NotFound, format!("dataset `{}` not found", self.info.dataset)))
    }

    /// SHA-256 (hex) of the event that recorded the release.
    async fn hash(&self, ctx: &Context<'_>) -> Result<String> {
        let ledger = ledger_of(ctx);
        let events = ledger.events(self.info.revision - 1, 1).map_err(super::error::ledger)?;
        Ok(events.first().map(|e| e.hash.to_hex()).unwrap_or_default())
    }

    /// Every figure the release published, read from the log, in key order.
    async fn observations(&self, ctx: &Context<'_>) -> Result<Vec<Tick<ReleaseFigure>>> {
        checkpoint().await;
        let ledger = ledger_of(ctx);
        let release = ledger
            .release_event(self.info.revision)
            .map_err(super::error::ledger)?
            .ok_or_else(|| coded(ErrorCode::NotFound, format!("release {} not in the log", self.info.id)))?;
        let p = ledger.read();
        let ds = p.dataset(&release.dataset);
        Ok(release
            .observations
            .into_iter()
            .map(|o| {
                let previous = ds.and_then(|ds| {
                    let cell = cell_key(ds, &o.key, o.period, &o.measure).ok()?;
                    ds.replaced_by(&cell, self.position).map(|(_, value)| value)
                });
                Tick(ReleaseFigure {
                    key: o.key,
                    period: o.period,
                    measure: o.measure,
                    value: Dec(o.value),
                    previous_value: previous.map(Dec),
                    delta: previous.map(|p| Computed::difference(o.value, p, "delta")),
                })
            })
            .collect())
    }
    }
}

/// A code of one dimension in a series key: the `code`-th code of the dataset's `dim`-th
/// dimension.
#[derive(Clone)]
pub struct DimensionValue {
    def: Def,
    dim: usize,
    code: usize,
}

impl DimensionValue {
    /// `key` spelled out, a code per dimension.
    pub fn of_key(def: &Def, key: &domain::SeriesKey) -> Vec<DimensionValue> {
        key.codes()
            .enumerate()
            .map(|(dim, code)| DimensionValue {
                def: def.clone(),
                dim,
                code: code as usize,
            })
            .collect()
    }

    fn dimension_def(&self) -> &domain::Dimension {
        &self.def.dimensions[self.dim]
    }

    fn code_def(&self) -> &domain::Code {
        &self.dimension_def().codes[self.code]
    }
}

read_type! {
    /// A code of one dimension in a series key.
    DimensionValue reads DimensionValue as |d| from |this| this;
    scalars {
        dimension: String = Text(&d.dimension_def().id),
        code: String = Text(&d.code_def().code),
        label: String = Text(&d.code_def().label),
    }
    objects {}
}

/// A figure, as of the requested point in history (the latest by default).
///
/// Fields are computed when asked for, so a query that wants only `key` and `value` of many
/// figures does not pay for labels it never reads.
#[derive(Clone)]
pub struct Observation {
    def: Def,
    cell: CellKey,
    value: Decimal,
    preliminary: Decimal,
    revised_from: Option<Decimal>,
    version_count: u32,
    revision_count: u32,
    status: ReleaseStatus,
    revision: u64,
    published_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    backfilled: bool,
    bound: Bound,
    release_position: u32,
}

read_type! {
    /// A figure, as of the requested point in history (the latest by default).
    Observation reads Observation as |o| from |this| this;
    scalars {
        /// Id of the dataset.
        dataset: ID = Text(&o.def.id),
        /// Series key in SDMX dot notation, e.g. `IPR._T._T`.
        key: String = KeyText(&o.def, &o.cell.key),
        period: Period = o.cell.period,
        measure: String = Text(&o.def.measures[o.cell.measure as usize]),
        value: Dec = Dec(o.value),
        /// Status of the release that set this value.
        status: ReleaseStatus = o.status,
        /// Ledger revision of the release that set this value.
        revision: u64 = o.revision,
        /// Official publication time of that release.
        published_at: DateTime<Utc> = o.published_at,
        /// When the ledger recorded that release (its recording time, which the server gives).
        recorded_at: DateTime<Utc> = o.recorded_at,
        /// True when the release that set this value was a back-fill: an older vintage recorded
        /// after later ones.
        backfilled: bool = o.backfilled,
        /// The first published (preliminary) value: the first version in publication order.
        preliminary_value: Dec = Dec(o.preliminary),
        /// `value - preliminaryValue`: how far the figure moved since its first estimate.
        revision_from_preliminary: Computed = Computed::difference(o.value, o.preliminary, "revisionFromPreliminary"),
        /// Number of releases that published this figure, up to the requested point.
        version_count: u32 = o.version_count,
        /// Number of times its value changed, up to the requested point.
        revision_count: u32 = o.revision_count,
        /// The value this one replaced, if a previous release published a figure here.
        revised_from: Option<Dec> = o.revised_from.map(Dec),
        /// The ledger revision this figure was read at.
        as_of_revision: u64 = o.bound.revision,
    }
    objects {
        /// The key spelled out: code and label per dimension.
        async fn dimensions(&self) -> Vec<DimensionValue> {
            DimensionValue::of_key(&self.def, &self.cell.key)
        }

        /// The release that set this value.
        async fn release(&self, ctx: &Context<'_>) -> Result<Release> {
            Ok(Release::at(ctx, self.release_position))
        }

        /// Proof that the event of the release that set this value is in the ledger's
        /// transparency log, in the tree of the revision this figure was read at.
        async fn proof(&self, ctx: &Context<'_>) -> Result<super::transparency::InclusionProof> {
            let ledger = ledger_of(ctx);
            let tree = self.bound.revision.max(self.revision);
            let p = crate::ledger::transparency::inclusion(ledger, self.revision, tree).map_err(super::error::ledger)?;
            super::limits::charge_texts(ctx, [p.canonical.as_str(), p.entry.as_str()])?;
            Ok(p.into())
        }

        /// Every version of this figure up to the requested point, in publication order.
        async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<Tick<ObservationVersion>>> {
            checkpoint().await;
            let ledger = ledger_of(ctx);
            let p = ledger.read();
            let Some(ds) = p.dataset(&self.def.id) else {
                return Ok(vec![]);
            };
            Ok(ds
                .get(&self.cell, self.bound)
                .map(|obs| ticks(versions(&p, &obs)))
                .unwrap_or_default())
        }
    }
}

impl Observation {
    /// Position of the release that set the value.
    pub(crate) fn release_position(&self) -> u32 {
        self.release_position
    }
}

/// One version of a figure: the value one release gave it.
#[derive(Clone)]
pub struct ObservationVersion {
    pub dataset: String,
    pub key: String,
    pub period: Period,
    pub measure: String,
    pub version: u32,
    pub revision: u64,
    pub status: ReleaseStatus,
    pub value: Decimal,
    pub previous_value: Option<Decimal>,
    pub published_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub backfilled: bool,
    pub revision_reason: Option<RevisionReason>,
    pub release_position: u32,
}

read_type! {
    /// One version of a figure: the value one release gave it.
    ObservationVersion reads ObservationVersion as |v| from |this| this;
    scalars {
        dataset: ID = Text(&v.dataset),
        key: String = Text(&v.key),
        period: Period = v.period,
        measure: String = Text(&v.measure),
        /// 1 for the first (preliminary) version, then 2, 3, ...
        version: u32 = v.version,
        /// Ledger revision of the release that set it.
        revision: u64 = v.revision,
        status: ReleaseStatus = v.status,
        value: Dec = Dec(v.value),
        /// The value of the version before, if any.
        previous_value: Option<Dec> = v.previous_value.map(Dec),
        /// `value - previousValue`; null for the first version.
        delta: Option<Computed> = v.previous_value.map(|pv| Computed::difference(v.value, pv, "delta")),
        /// Official publication time of the release.
        published_at: DateTime<Utc> = v.published_at,
        /// When the ledger recorded the release.
        recorded_at: DateTime<Utc> = v.recorded_at,
        /// True when the release was a back-fill: an older vintage recorded after later ones,
        /// placed here by its publication time.
        backfilled: bool = v.backfilled,
    }
    objects {
        /// The reason the release gave for its revisions; null for the first version, and when
        /// the release gave none.
        async fn revision_reason(&self) -> Option<RevisionReason> {
            self.revision_reason.clone()
        }

        /// The release that set this version.
        async fn release(&self, ctx: &Context<'_>) -> Result<Release> {
            Ok(Release::at(ctx, self.release_position))
        }
    }
}

/// Resolves textual coordinates of a figure against its dataset.
pub fn cell_key(ds: &DatasetView, key: &str, period: Period, measure: &str) -> Result<CellKey> {
    let key = ds.def.parse_key(key).map_err(|e| bad_argument("key", e.to_string()))?;
    let measure = ds.measure(measure).ok_or_else(|| {
        bad_argument(
            "measure",
            format!(
                "unknown measure `{measure}`; dataset {} has {}",
                ds.def.id,
                ds.def.measures.join(", ")
            ),
        )
    })?;
    Ok(CellKey { key, period, measure })
}

pub fn observation(p: &Projection, obs: &ObservationAt<'_>, bound: Bound) -> Observation {
    let current = obs.current();
    let release = p.release_at(current.release);
    Observation {
        def: obs.dataset.def.clone(),
        cell: obs.cell,
        value: current.value,
        preliminary: obs.preliminary().value,
        revised_from: obs.revised_from(),
        version_count: obs.versions.len() as u32,
        revision_count: obs.versions.windows(2).filter(|w| w[0].value != w[1].value).count() as u32,
        status: release.status.into(),
        revision: release.revision,
        published_at: release.published_at,
        recorded_at: release.recorded_at,
        backfilled: release.backfilled,
        bound,
        release_position: current.release,
    }
}

pub fn versions(p: &Projection, obs: &ObservationAt<'_>) -> Vec<ObservationVersion> {
    let ds = &obs.dataset.def;
    let key = ds.format_key(&obs.cell.key);
    let measure = obs.dataset.measure_id(obs.cell.measure).to_owned();
    let mut out = Vec::with_capacity(obs.versions.len());
    for (i, v) in obs.versions.iter().enumerate() {
        let release = p.release_at(v.release);
        out.push(ObservationVersion {
            dataset: ds.id.clone(),
            key: key.clone(),
            period: obs.cell.period,
            measure: measure.clone(),
            version: i as u32 + 1,
            revision: release.revision,
            status: release.status.into(),
            value: v.value,
            previous_value: i.checked_sub(1).map(|j| obs.versions[j].value),
            published_at: release.published_at,
            recorded_at: release.recorded_at,
            backfilled: release.backfilled,
            revision_reason: release.revision_reason.as_ref().filter(|_| i > 0).map(Into::into),
            release_position: v.release,
        });
    }
    out
}
