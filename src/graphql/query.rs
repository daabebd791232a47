//! The query root.

use async_graphql::connection::{Connection, Edge, EmptyFields, PageInfo};
use async_graphql::{Context, Enum, ErrorExtensions, InputObject, Object, Result, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::changes::FigureChange;
use super::error::{self, at_field, bad_argument, bad_input, coded, ErrorCode};
use super::scalars::{Computed, Dec};
use super::tick::{checkpoint, ticks, Tick};
use super::transparency::{Checkpoint, ConsistencyProof, InclusionProof};
use super::types::{
    cell_key, observation, versions, AsOf, Dataset, LedgerHead, Observation, ObservationVersion, Release, ReleaseStatus,
};
use super::{ledger_of, limits_of};
use crate::domain::{Event, Frequency, Period};
use crate::projection::{CellKey, DatasetView, Filter, KeyPattern, RevisionStat, RevisionSummary as Summary};

#[derive(Default)]
pub struct QueryRoot;

/// Codes allowed in one dimension.
#[derive(InputObject, Clone, Debug)]
pub struct DimensionFilter {
    /// Dimension id, e.g. `SERVICE_TYPE`.
    pub dimension: String,
    /// Codes to keep, e.g. `["IPR", "ICT"]`.
    pub codes: Vec<String>,
}

/// Which figures to select. Every criterion given must hold.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ObservationFilter {
    /// SDMX key pattern: one part per dimension, empty for any code, `+` for alternatives,
    /// e.g. `IPR+ICT.._T`.
    pub key: Option<String>,
    /// Codes allowed per dimension (combined with `key`).
    pub dimensions: Option<Vec<DimensionFilter>>,
    /// Exactly these periods, each of a frequency the dataset has figures of.
    pub periods: Option<Vec<Period>>,
    /// From this period on (inclusive; only periods of the same frequency match).
    pub period_from: Option<Period>,
    /// Up to this period (inclusive; only periods of the same frequency match).
    pub period_to: Option<Period>,
    /// Measures, e.g. `["BAL"]`.
    pub measures: Option<Vec<String>>,
    /// Status of the release that set the value (as of the requested point).
    pub status: Option<Vec<ReleaseStatus>>,
    /// Only figures whose value has changed at least once.
    pub revised_only: Option<bool>,
}

impl ObservationFilter {
    pub(super) fn resolve(&self, ds: &DatasetView) -> Result<Filter> {
        let def = &ds.def;
        let mut key = match &self.key {
            Some(k) => {
                Some(KeyPattern::parse(def, k).map_err(|e| bad_argument("filter.key", format!("filter.key: {e}")))?)
            }
            None => None,
        };
        for d in self.dimensions.iter().flatten() {
            let (pos, dim) = def.dimension(&d.dimension).ok_or_else(|| {
                bad_argument(
                    "filter.dimensions",
                    format!(
                        "filter.dimensions: unknown dimension `{}`; dataset {} has {}",
                        d.dimension,
                        def.id,
                        def.dimensions
                            .iter()
                            .map(|d| d.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let codes = d
                .codes
                .iter()
                .map(|c| {
                    dim.position(c).map(|p| p as u16).ok_or_else(|| {
                        bad_argument(
                            "filter.dimensions",
                            format!("filter.dimensions: unknown code `{c}` for dimension {}", dim.id),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            key.get_or_insert_with(|| KeyPattern(vec![None; def.dimensions.len()]))
                .restrict(pos, codes);
        }
        let measures = match &self.measures {
            Some(ms) => Some(
                ms.iter()
                    .map(|m| {
                        ds.measure(m).ok_or_else(|| {
                            bad_argument(
                                "filter.measures",
                                format!(
                                    "filter.measures: unknown measure `{m}`; dataset {} has {}",
                                    def.id,
                                    def.measures.join(", ")
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        // Range bounds keep their documented meaning (only periods of the bound's frequency
        // match), which selects one frequency of a dataset that has several.
        for p in self.periods.iter().flatten() {
            check_period(ds, *p, "filter.periods")?;
        }
        Ok(Filter {
            key,
            periods: self.periods.clone(),
            period_from: self.period_from,
            period_to: self.period_to,
            measures,
            statuses: self.status.as_ref().map(|s| s.iter().map(|&x| x.into()).collect()),
            revised_only: self.revised_only.unwrap_or(false),
        })
    }
}

/// A dimension's items under a total, with their sum and what they leave unexplained.
#[derive(SimpleObject)]
pub struct Breakdown {
    pub dimension: String,
    pub period: Period,
    pub measure: String,
    /// The figure the items break down (all `_T` by default); null if none was published.
    pub total: Option<Observation>,
    /// The codes directly under the total's code in this dimension that have a figure.
    pub items: Vec<Tick<Observation>>,
    pub sum_of_items: Computed,
    /// `total - sumOfItems`: the part the listed items do not cover ("other").
    pub residual: Option<Computed>,
    pub as_of_revision: u64,
}

/// Preliminary versus latest for one figure.
#[derive(SimpleObject)]
pub struct RevisionStatItem {
    pub key: String,
    pub period: Period,
    pub measure: String,
    pub preliminary_value: Dec,
    pub latest_value: Dec,
    /// `latestValue - preliminaryValue`.
    pub revision: Computed,
    /// Number of times the value changed.
    pub revision_count: u32,
}

/// Revision statistics over a selection, following OECD / Eurostat revision analysis:
/// revision = latest - preliminary, averaged over all selected figures (unrevised ones count
/// as zero).
#[derive(SimpleObject)]
pub struct RevisionSummary {
    pub observation_count: u64,
    /// Figures whose value changed at least once.
    pub revised_count: u64,
    /// Total number of value changes.
    pub revision_count: u64,
    /// Mean revision: its sign shows whether preliminary figures tend to be too low (+) or
    /// too high (-). Null for an empty selection.
    pub mean_revision: Option<Computed>,
    /// Mean absolute revision: the typical size of a revision.
    pub mean_absolute_revision: Option<Computed>,
    pub max_absolute_revision: Option<Computed>,
    /// Per-figure statistics for revised figures, largest absolute revision first (at most 1000).
    pub items: Vec<Tick<RevisionStatItem>>,
    /// The value changes of the selection by the reason their releases gave (a change is
    /// counted under the release that set the newer value), most frequent first.
    pub by_reason: Vec<RevisionsByReason>,
}

/// The value changes of a selection whose releases gave one reason.
#[derive(SimpleObject)]
pub struct RevisionsByReason {
    /// Null for releases that gave no reason.
    pub reason: Option<super::types::RevisionReasonKind>,
    /// Number of value changes.
    pub revision_count: u64,
    /// Mean of `|newer - older|` over those changes.
    pub mean_absolute_delta: Computed,
}

/// A figure of a revision summary: `None` for an empty selection, an error when the
/// summary overflowed.
fn summary_figure(s: &Summary, figure: Option<Decimal>) -> Option<Computed> {
    match s.overflow {
        Some(e) => (s.observations > 0).then_some(Computed(Err(e))),
        None => figure.map(|f| Computed(Ok(f))),
    }
}

/// Kind of an event.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum EventKind {
    DatasetDefined,
    ReleasePublished,
    DatasetAmended,
    /// A release committed to before its time (its commitment only).
    ReleaseScheduled,
    /// A scheduled release made public: the release and the salt that opens its commitment.
    ReleaseRevealed,
    ScheduledReleaseWithdrawn,
}

/// An event of the audit log, with its place in the hash chain.
#[derive(SimpleObject, Clone)]
#[graphql(complex, name = "Event")]
pub struct LedgerEvent {
    pub revision: u64,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub recorded_at: DateTime<Utc>,
    /// Name of the write token that recorded the event.
    pub actor: String,
    /// Hash of the previous event (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of `canonical`.
    pub hash: String,
    /// The exact bytes (UTF-8 JSON) the hash covers, so anyone can recompute it.
    pub canonical: String,
    pub dataset: ID,
    #[graphql(skip)]
    release: Option<Uuid>,
}

impl LedgerEvent {
    /// An event of which only the revision is asked for: nothing else is read, nor shown.
    fn revision_only(revision: u64) -> Self {
        LedgerEvent {
            revision,
            event_id: Uuid::nil(),
            kind: EventKind::ReleasePublished,
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            actor: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
            canonical: String::new(),
            dataset: ID(String::new()),
            release: None,
        }
    }
}

#[async_graphql::ComplexObject]
impl LedgerEvent {
    /// The release this event recorded, for `RELEASE_PUBLISHED`.
    async fn release(&self, ctx: &Context<'_>) -> Option<Release> {
        let id = self.release?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        p.release(&id).map(|(pos, info)| Release::from_info(pos, info))
    }
}

/// Result of checking the hash chain (and, for the full verification, re-folding the log).
#[derive(SimpleObject)]
pub struct LedgerVerification {
    pub ok: bool,
    /// Events the verified chain covers, from revision 1: every one has passed every check.
    pub checked: u64,
    /// First revision that failed a check, if any.
    pub first_bad_revision: Option<u64>,
    /// What was wrong with it.
    pub reason: Option<String>,
    /// Root of the transparency log's Merkle tree recomputed from the `checked` events'
    /// canonical bytes; equal to `checkpoint(treeSize: checked).rootHash` when `ok`.
    pub root_hash: String,
}

/// A page of the audit log.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct EventConnection {
    /// Information to aid in pagination. With a filter, `endCursor` is the last revision
    /// examined, which may lie beyond the last edge: continue with `after: endCursor`.
    pub page_info: PageInfo,
    /// A list of edges.
    pub edges: Vec<EventEdge>,
    /// Number of events in the log, whatever the filters (counting the matching ones would
    /// read the whole log).
    pub total_count: u64,
    /// The last revision this page examined (equal to `after` when it examined none).
    pub examined_through: u64,
}

#[async_graphql::ComplexObject]
impl EventConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<Tick<LedgerEvent>> {
        self.edges.iter().map(|e| e.node.clone()).collect()
    }
}

/// An edge in a connection.
#[derive(SimpleObject)]
pub struct EventEdge {
    /// The item at the end of the edge
    pub node: Tick<LedgerEvent>,
    /// A cursor for use in pagination
    pub cursor: String,
}

/// Additional connection fields.
#[derive(SimpleObject)]
pub struct Counted {
    /// Number of items matching, over all pages.
    pub total_count: u64,
}

/// Additional fields of `ObservationConnection`, computed only when asked for.
pub struct ObservationTotals {
    dataset: String,
    filter: ObservationFilter,
    bound: crate::projection::Bound,
}

#[Object]
impl ObservationTotals {
    /// Number of figures matching, over all pages. Costs one pass over the dataset's
    /// figures, so ask for it once, not on every page.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &self.dataset)?;
        let filter = self.filter.resolve(ds)?;
        Ok(p.select(ds, &filter, self.bound, None).count() as u64)
    }
}

fn page_size(ctx: &Context<'_>, first: Option<i32>) -> Result<usize> {
    page_size_at_most(limits_of(ctx).max_page_size, first)
}

/// The page `first` asks for, checked against the page-size cap `max`.
pub(super) fn page_size_at_most(max: usize, first: Option<i32>) -> Result<usize> {
    match first {
        None => Ok(max.min(100)),
        Some(n) if n < 0 => Err(bad_argument("first", format!("first must not be negative (got {n})"))),
        Some(n) if n as usize > max => Err(bad_argument("first", format!("first must be at most {max} (got {n})"))),
        Some(n) => Ok(n as usize),
    }
}

fn dataset_view<'a>(p: &'a crate::projection::Projection, id: &str) -> Result<&'a DatasetView> {
    p.dataset(id).ok_or_else(|| {
        at_field(
            coded(ErrorCode::NotFound, format!("dataset `{id}` not found")),
            "dataset",
        )
    })
}

/// How a frequency reads in an error message.
fn frequency_name(f: Frequency) -> &'static str {
    match f {
        Frequency::Annual => "annual",
        Frequency::HalfYear => "half-yearly",
        Frequency::Quarter => "quarterly",
        Frequency::Month => "monthly",
    }
}

/// Refuses a period of a frequency the dataset has no figures of, which could only ever
/// find nothing (a quarter asked of half-year statistics). A dataset without figures yet
/// takes any period.
pub(super) fn check_period(ds: &DatasetView, period: Period, field: &str) -> Result<()> {
    let have = ds.frequencies();
    if have.is_empty() || have.contains(&period.frequency()) {
        return Ok(());
    }
    let have: Vec<String> = have
        .iter()
        .map(|&f| format!("{} ({})", frequency_name(f), f.code()))
        .collect();
    Err(bad_argument(
        field,
        format!(
            "{field}: `{period}` is a {} ({}) period; dataset {} has {} periods only",
            frequency_name(period.frequency()),
            period.frequency().code(),
            ds.def.id,
            have.join(" and ")
        ),
    ))
}

/// An `asOf` the projection cannot resolve (a revision beyond the head, an unknown
/// release), naming the argument.
fn as_of_error(e: crate::projection::ProjectionError) -> async_graphql::Error {
    at_field(error::projection(e), "asOf")
}

pub(super) fn encode_cursor(ds: &DatasetView, cell: &CellKey) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{}",
        ds.def.format_key(&cell.key),
        cell.period,
        ds.measure_id(cell.measure)
    ))
}

pub(super) fn decode_cursor(ds: &DatasetView, cursor: &str) -> Result<CellKey> {
    let invalid = || {
        bad_argument(
            "after",
            format!("after: `{cursor}` is not a cursor of this dataset's observations"),
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = text.split('|');
    let (Some(key), Some(period), Some(measure), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let period = Period::parse(period).map_err(|_| invalid())?;
    cell_key(ds, key, period, measure).map_err(|_| invalid())
}

fn revision_cursor(after: Option<&str>) -> Result<u64> {
    match after {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| bad_argument("after", format!("after: `{s}` is not a cursor of this list"))),
    }
}

#[Object(name = "Query")]
impl QueryRoot {
    /// The newest event: revision and hash of the ledger's head.
    async fn ledger(&self, ctx: &Context<'_>) -> LedgerHead {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        LedgerHead {
            revision: p.head().revision,
            hash: p.head().hash.to_hex(),
            event_count: p.head().revision,
            release_count: p.releases().len() as u64,
            observation_version_count: p.version_count(),
            read_only_reason: ledger.is_read_only().map(str::to_owned),
        }
    }

    /// All datasets.
    async fn datasets(&self, ctx: &Context<'_>) -> Vec<Dataset> {
        ledger_of(ctx)
            .read()
            .datasets()
            .iter()
            .map(Dataset::from_view)
            .collect()
    }

    /// One dataset by id, or null.
    async fn dataset(&self, ctx: &Context<'_>, id: ID) -> Option<Dataset> {
        ledger_of(ctx).read().dataset(&id).map(Dataset::from_view)
    }

    /// The release calendar of a dataset, by publication time: releases scheduled (committed
    /// to and revealed at their time), and those published, revealed or withdrawn.
    async fn release_calendar(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Only releases published (or due) at or after this time.")] from: Option<DateTime<Utc>>,
        #[graphql(desc = "Only releases published (or due) at or before this time.")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "At most this many entries, the earliest first (default 100).")] first: Option<i32>,
    ) -> Result<Vec<super::calendar::CalendarEntry>> {
        let limit = page_size(ctx, first)?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        dataset_view(&p, &dataset)?;
        Ok(super::calendar::calendar(&p, &dataset, from, to, limit))
    }

    /// Releases in the order they were recorded (oldest first).
    async fn releases(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only releases of this dataset.")] dataset: Option<ID>,
        #[graphql(desc = "Only releases with this status.")] status: Option<ReleaseStatus>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
    ) -> Result<Connection<String, Tick<Release>, Counted, EmptyFields>> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let after_rev = revision_cursor(after.as_deref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        if let Some(d) = &dataset {
            dataset_view(&p, d)?;
        }
        let status = status.map(crate::domain::ReleaseStatus::from);
        let matches = |r: &&crate::projection::ReleaseInfo| {
            dataset.as_ref().is_none_or(|d| r.dataset == d.as_str()) && status.is_none_or(|s| r.status == s)
        };
        let total = p.releases().iter().filter(matches).count() as u64;
        let start = p.releases_after(after_rev);
        let mut page = p.releases()[start..]
            .iter()
            .enumerate()
            .filter(|(_, r)| matches(r))
            .take(limit + 1);
        let mut conn = Connection::with_additional_fields(after.is_some(), false, Counted { total_count: total });
        for (i, r) in page.by_ref().take(limit) {
            conn.edges.push(Edge::new(
                r.revision.to_string(),
                Tick(Release::from_info((start + i) as u32, r)),
            ));
        }
        conn.has_next_page = page.next().is_some();
        Ok(conn)
    }

    /// One release by id, or null.
    async fn release(&self, ctx: &Context<'_>, id: Uuid) -> Option<Release> {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        p.release(&id).map(|(pos, r)| Release::from_info(pos, r))
    }

    /// Figures of a dataset, in key, period and measure order, as of a point in history.
    async fn observations(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        filter: Option<ObservationFilter>,
        #[graphql(desc = "Read as of this point (default: latest).")] as_of: Option<AsOf>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
    ) -> Result<Connection<String, Tick<Observation>, ObservationTotals, EmptyFields>> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        let input = filter.unwrap_or_default();
        let filter = input.resolve(ds)?;
        let after_cell = after.as_deref().map(|c| decode_cursor(ds, c)).transpose()?;
        let mut it = p.select(ds, &filter, bound, after_cell.as_ref());
        let totals = ObservationTotals {
            dataset: dataset.0.clone(),
            filter: input,
            bound,
        };
        let mut conn = Connection::with_additional_fields(after.is_some(), false, totals);
        for obs in it.by_ref().take(limit) {
            conn.edges.push(Edge::new(
                encode_cursor(ds, &obs.cell),
                Tick(observation(&p, &obs, bound)),
            ));
        }
        conn.has_next_page = it.next().is_some();
        Ok(conn)
    }

    /// One figure, as of a point in history; null if nothing was published for it by then.
    async fn observation(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Series key in dot notation, e.g. `IPR._T._T`.")] key: String,
        period: Period,
        #[graphql(default_with = "String::from(\"BAL\")")] measure: String,
        as_of: Option<AsOf>,
    ) -> Result<Option<Observation>> {
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        check_period(ds, period, "period")?;
        let cell = cell_key(ds, &key, period, &measure)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        Ok(ds.get(&cell, bound).map(|o| observation(&p, &o, bound)))
    }

    /// Every version of one figure, oldest (preliminary) first, with the change each made.
    async fn history(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        key: String,
        period: Period,
        #[graphql(default_with = "String::from(\"BAL\")")] measure: String,
        #[graphql(desc = "Only versions up to this point (default: all).")] as_of: Option<AsOf>,
    ) -> Result<Vec<Tick<ObservationVersion>>> {
        checkpoint().await;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        check_period(ds, period, "period")?;
        let cell = cell_key(ds, &key, period, &measure)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        Ok(ticks(
            ds.get(&cell, bound).map(|o| versions(&p, &o)).unwrap_or_default(),
        ))
    }

    /// The items of one dimension under a total, with their sum and the residual
    /// `total - sum(items)`, as of a point in history.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn breakdown(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Dimension to break down, e.g. `SERVICE_TYPE`.")] dimension: String,
        period: Period,
        #[graphql(default_with = "String::from(\"BAL\")")] measure: String,
        #[graphql(desc = "Key of the total to break down (default: `_T` in every dimension).")] key: Option<String>,
        as_of: Option<AsOf>,
    ) -> Result<Breakdown> {
        checkpoint().await;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let (dim, _) = ds.def.dimension(&dimension).ok_or_else(|| {
            bad_argument(
                "dimension",
                format!(
                    "dimension: unknown dimension `{dimension}`; dataset {} has {}",
                    ds.def.id,
                    ds.def
                        .dimensions
                        .iter()
                        .map(|d| d.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let base = match &key {
            Some(k) => ds
                .def
                .parse_key(k)
                .map_err(|e| bad_argument("key", format!("key: {e}")))?,
            None => ds.def.total_key(),
        };
        check_period(ds, period, "period")?;
        let measure_pos = cell_key(ds, &ds.def.format_key(&base), period, &measure)?.measure;
        let bound = p.bound(spec).map_err(as_of_error)?;
        let b = ds.breakdown(&base, dim, period, measure_pos, bound);
        Ok(Breakdown {
            dimension,
            period,
            measure,
            total: b.total.as_ref().map(|t| observation(&p, t, bound)),
            items: b.items.iter().map(|o| Tick(observation(&p, o, bound))).collect(),
            sum_of_items: Computed(match b.overflow {
                Some(e) => Err(e),
                None => Ok(b.sum_of_items),
            }),
            // A residual exists when the total does, whether or not it overflowed.
            residual: match b.overflow {
                Some(e) => b.total.is_some().then_some(Computed(Err(e))),
                None => b.residual.map(|r| Computed(Ok(r))),
            },
            as_of_revision: bound.revision,
        })
    }

    /// Revision statistics (preliminary versus latest) over a selection of figures.
    async fn revision_summary(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        filter: Option<ObservationFilter>,
        as_of: Option<AsOf>,
    ) -> Result<RevisionSummary> {
        checkpoint().await;
        let spec = AsOf::to_spec(as_of.as_ref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let bound = p.bound(spec).map_err(as_of_error)?;
        let filter = filter.unwrap_or_default().resolve(ds)?;
        // Each value change, by the reason of the release that made it: (count, sum of |delta|).
        let mut by_reason: std::collections::BTreeMap<
            Option<crate::domain::RevisionReasonKind>,
            (u64, Option<Decimal>),
        > = Default::default();
        let s = Summary::of(p.select(ds, &filter, bound, None).inspect(|o| {
            for w in o.versions.windows(2).filter(|w| w[0].value != w[1].value) {
                let reason = p.release_at(w[1].release).revision_reason.as_ref().map(|r| r.kind);
                let entry = by_reason.entry(reason).or_insert((0, Some(Decimal::ZERO)));
                entry.0 += 1;
                entry.1 = entry.1.and_then(|sum| {
                    w[1].value
                        .checked_sub(w[0].value)
                        .and_then(|d| sum.checked_add(d.abs()))
                });
            }
        }));
        let mut items: Vec<_> = p
            .select(ds, &filter, bound, None)
            .filter_map(|o| {
                let st = RevisionStat::of(&o);
                (st.revisions > 0).then(|| RevisionStatItem {
                    key: ds.def.format_key(&o.cell.key),
                    period: o.cell.period,
                    measure: ds.measure_id(o.cell.measure).to_owned(),
                    preliminary_value: Dec(st.preliminary),
                    latest_value: Dec(st.latest),
                    revision: Computed(match st.overflow {
                        Some(e) => Err(e),
                        None => Ok(st.revision),
                    }),
                    revision_count: st.revisions,
                })
            })
            .collect();
        // Overflowed revisions (the largest of all) first.
        items.sort_by_key(|item| std::cmp::Reverse(item.revision.0.map_or(Decimal::MAX, |r| r.abs())));
        items.truncate(1000);
        let items = ticks(items);
        Ok(RevisionSummary {
            observation_count: s.observations,
            revised_count: s.revised,
            revision_count: s.revisions,
            mean_revision: summary_figure(&s, s.mean_revision),
            mean_absolute_revision: summary_figure(&s, s.mean_absolute_revision),
            max_absolute_revision: summary_figure(&s, s.max_absolute_revision),
            items,
            by_reason: {
                let mut rows: Vec<_> = by_reason
                    .into_iter()
                    .map(|(reason, (count, sum))| RevisionsByReason {
                        reason: reason.map(Into::into),
                        revision_count: count,
                        mean_absolute_delta: Computed(
                            sum.map(|s| (s / Decimal::from(count)).round_dp(6).normalize()).ok_or(
                                crate::projection::Overflow {
                                    figure: "meanAbsoluteDelta",
                                },
                            ),
                        ),
                    })
                    .collect();
                rows.sort_by_key(|r| std::cmp::Reverse(r.revision_count));
                rows
            },
        })
    }

    /// The audit log: events in revision order with their hashes, optionally filtered.
    ///
    /// With a filter, one page examines at most `--max-events-scanned` events: a filter that
    /// matches rarely returns a short (even empty) page with `hasNextPage` true, and
    /// `pageInfo.endCursor` (also `examinedThrough`) says where to continue.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start after this revision (default 0: from the first event).")] after: Option<i64>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Only events of this dataset.")] dataset: Option<ID>,
        #[graphql(desc = "Only events of this kind.")] kind: Option<EventKind>,
        #[graphql(desc = "Only events recorded with the write token of this name.")] actor: Option<String>,
        #[graphql(desc = "Only events recorded at or after this time (RFC 3339).")] recorded_from: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Only events recorded before this time (RFC 3339).")] recorded_to: Option<DateTime<Utc>>,
    ) -> Result<EventConnection> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let after = match after {
            Some(a) if a < 0 => return Err(bad_argument("after", format!("after must not be negative (got {a})"))),
            a => a.unwrap_or(0) as u64,
        };
        if let (Some(f), Some(t)) = (recorded_from, recorded_to) {
            if f > t {
                return Err(bad_input(format!(
                    "recordedFrom ({}) is after recordedTo ({})",
                    f.to_rfc3339(),
                    t.to_rfc3339()
                )));
            }
        }
        let filter = EventFilter {
            dataset: dataset.map(|d| d.0),
            kind,
            actor,
            recorded_from,
            recorded_to,
        };
        let ledger = ledger_of(ctx);
        let head = ledger.read().head().revision;
        let fields = event_fields(ctx);
        if filter.is_empty() && fields.iter().all(|f| f == "revision" || f == "__typename") {
            // Nothing to read from the log for the revisions alone.
            let last = head.min(after.saturating_add(limit as u64));
            let edges: Vec<EventEdge> = (after + 1..=last)
                .map(|revision| EventEdge {
                    cursor: revision.to_string(),
                    node: Tick(LedgerEvent::revision_only(revision)),
                })
                .collect();
            let examined = last.max(after);
            return Ok(EventConnection {
                page_info: PageInfo {
                    has_previous_page: after > 0,
                    has_next_page: examined < head,
                    start_cursor: edges.first().map(|e| e.cursor.clone()),
                    end_cursor: (examined > after).then(|| examined.to_string()),
                },
                edges,
                total_count: head,
                examined_through: examined,
            });
        }
        let (events, examined) = if filter.is_empty() {
            let events = ledger.audit_events(after, limit).map_err(error::ledger)?;
            let last = events.last().map_or(after, |e| e.event.revision());
            (events, last)
        } else {
            if let Some(d) = &filter.dataset {
                dataset_view(&ledger.read(), d)?;
            }
            filtered_events(ledger, &filter, after, limit, limits_of(ctx).max_events_scanned)?
        };
        if fields.contains("canonical") {
            super::limits::charge_texts(ctx, events.iter().map(|a| a.canonical.as_str()))?;
        }
        let edges: Vec<EventEdge> = events
            .into_iter()
            .map(|a| {
                let node = ledger_event(a);
                EventEdge {
                    cursor: node.revision.to_string(),
                    node: Tick(node),
                }
            })
            .collect();
        Ok(EventConnection {
            page_info: PageInfo {
                has_previous_page: after > 0,
                has_next_page: examined < head,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: (examined > after).then(|| examined.to_string()),
            },
            edges,
            total_count: head,
            examined_through: examined,
        })
    }

    /// What changed in a dataset between two points of history: every figure whose value at
    /// `to` differs from its value at `from` (new or revised), in key, period and measure
    /// order, with both values and the release that set the newer one.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn changes(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "The older point.")] from: AsOf,
        #[graphql(desc = "The newer point (default: the head).")] to: Option<AsOf>,
        #[graphql(desc = "Only figures matching this (the status is the one at `to`).")] filter: Option<
            ObservationFilter,
        >,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
        #[graphql(
            default_with = "Some(false)",
            desc = "Also list figures a release between the two points published again with the same value (`REPUBLISHED`)."
        )]
        include_unchanged: Option<bool>,
    ) -> Result<Connection<String, Tick<FigureChange>, EmptyFields, EmptyFields>> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let from_spec = AsOf::to_spec(Some(&from)).map_err(|e| bad_input(format!("from: {}", e.message)))?;
        let to_spec = AsOf::to_spec(to.as_ref()).map_err(|e| bad_input(format!("to: {}", e.message)))?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        let ds = dataset_view(&p, &dataset)?;
        let from_bound = p.bound(from_spec).map_err(|e| bad_input(format!("from: {e}")))?;
        let to_bound = p.bound(to_spec).map_err(|e| bad_input(format!("to: {e}")))?;
        if from_bound.revision > to_bound.revision {
            return Err(bad_input(format!(
                "from (revision {}) is after to (revision {})",
                from_bound.revision, to_bound.revision
            )));
        }
        let filter = filter.unwrap_or_default().resolve(ds)?;
        let after_cell = after.as_deref().map(|c| decode_cursor(ds, c)).transpose()?;
        let include_unchanged = include_unchanged.unwrap_or(false);
        let mut it = p.changes(
            ds,
            &filter,
            from_bound,
            to_bound,
            include_unchanged,
            after_cell.as_ref(),
        );
        let mut conn = Connection::new(after.is_some(), false);
        for c in it.by_ref().take(limit) {
            conn.edges
                .push(Edge::new(encode_cursor(ds, &c.to.cell), Tick(FigureChange::of(&p, &c))));
        }
        conn.has_next_page = it.next().is_some();
        Ok(conn)
    }

    /// Checks the hash chain, continuing it from the head verified last: every event
    /// recorded since is hashed again from its stored bytes and linked to the one before
    /// (start-up verified the whole log), so a call at a head already verified costs
    /// nothing. `verifyLedgerFull` walks the whole log again.
    async fn verify_ledger(&self, ctx: &Context<'_>) -> Result<LedgerVerification> {
        let ledger = ledger_of(ctx);
        let v = ledger.verify_new().await.map_err(error::ledger)?;
        // The tree's leaves were checked against their events when they were stored and are
        // checked again in every proof; `verifyLedgerFull` recomputes them all.
        let root = ledger
            .log()
            .tree()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .root(v.checked)
            .map_err(|e| coded(ErrorCode::InternalServerError, e.to_string()))?;
        Ok(verification(v, None, root))
    }

    /// Walks the whole log from revision 1: checks every hash and link of the chain,
    /// re-folds the events and recomputes every leaf of the transparency log. Needs a write
    /// token. Cost grows with the log; meant for audits, not for polling. It runs as the
    /// background job `startLedgerVerification` starts (or joins the one running, which
    /// covers the log as it was when that one started) and answers when the job is done; a
    /// job that is not done shortly before the request timeout (`--request-timeout-ms`) goes
    /// on in the background, and the request gets `LIMIT_EXCEEDED` naming the job
    /// (`extensions.verificationJob`) to read with `ledgerVerification(id:)`.
    async fn verify_ledger_full(&self, ctx: &Context<'_>) -> Result<LedgerVerification> {
        if !super::caller_of(ctx).can_write {
            return Err(coded(
                ErrorCode::Forbidden,
                "verifyLedgerFull needs a write token; verifyLedger checks what was recorded since the last verification",
            ));
        }
        let job = ledger_of(ctx).start_verification();
        let budget = full_verification_wait(limits_of(ctx).request_timeout);
        if !job.wait(budget).await {
            let id = job.id;
            return Err(coded(
                ErrorCode::LimitExceeded,
                format!(
                    "the full verification did not finish within {} ms (the request timeout is {} ms); it goes on in \
                     the background as job {id}, {} of at least {} events checked so far: read \
                     ledgerVerification(id: \"{id}\") for its progress and result",
                    budget.as_millis(),
                    limits_of(ctx).request_timeout.as_millis(),
                    job.checked(),
                    job.total
                ),
            )
            .extend_with(|_, e| e.set("verificationJob", id.to_string())));
        }
        match job.result() {
            Some(Ok(r)) => Ok(verification(r.verification.clone(), r.tree_damage.clone(), r.root)),
            Some(Err(e)) => Err(coded(ErrorCode::InternalServerError, e.clone())),
            None => Err(coded(
                ErrorCode::InternalServerError,
                "the verification ended without a result",
            )),
        }
    }

    /// A full verification started with `startLedgerVerification`: its progress and, once
    /// done, its result. Without `id`, the last one started. Needs a write token.
    async fn ledger_verification(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job's id (default: the last one started).")] id: Option<ID>,
    ) -> Result<Option<super::verify_job::VerificationJob>> {
        if !super::caller_of(ctx).can_write {
            return Err(coded(ErrorCode::Forbidden, "ledgerVerification needs a write token"));
        }
        let job = ledger_of(ctx).verification_job();
        Ok(job
            .filter(|j| id.as_ref().is_none_or(|id| id.as_str() == j.id.to_string()))
            .map(super::verify_job::VerificationJob))
    }

    /// The note verifier key of the key checkpoints are signed with:
    /// `<origin>+<hex key hash>+<base64(0x01 || Ed25519 public key)>`.
    async fn verifier_key(&self, ctx: &Context<'_>) -> Result<String> {
        ledger_of(ctx).signer().map(|s| s.verifier_key()).ok_or_else(|| {
            coded(
                ErrorCode::InternalServerError,
                "this server has no checkpoint signing key",
            )
        })
    }

    /// The signed checkpoint (C2SP tlog-checkpoint) of the transparency log at a tree size.
    async fn checkpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Number of events the tree covers (default: the head revision).")] tree_size: Option<i64>,
    ) -> Result<Checkpoint> {
        let ledger = ledger_of(ctx);
        let size = crate::ledger::transparency::tree_size(ledger, "treeSize", tree_size).map_err(error::ledger)?;
        Ok(crate::ledger::transparency::checkpoint(ledger, size)
            .map_err(error::ledger)?
            .into())
    }

    /// Proof that the event at `revision` is in the tree of `treeSize` events.
    async fn inclusion_proof(
        &self,
        ctx: &Context<'_>,
        revision: i64,
        #[graphql(desc = "Tree size to prove against (default: the head revision).")] tree_size: Option<i64>,
    ) -> Result<InclusionProof> {
        let ledger = ledger_of(ctx);
        let size = crate::ledger::transparency::tree_size(ledger, "treeSize", tree_size).map_err(error::ledger)?;
        let revision =
            crate::ledger::transparency::tree_size(ledger, "revision", Some(revision)).map_err(error::ledger)?;
        let proof = crate::ledger::transparency::inclusion(ledger, revision, size).map_err(error::ledger)?;
        super::limits::charge_texts(ctx, [proof.canonical.as_str(), proof.entry.as_str()])?;
        Ok(proof.into())
    }

    /// Proof that the tree of `fromSize` events is a prefix of the tree of `toSize`.
    async fn consistency_proof(
        &self,
        ctx: &Context<'_>,
        from_size: i64,
        #[graphql(desc = "The larger tree size (default: the head revision).")] to_size: Option<i64>,
    ) -> Result<ConsistencyProof> {
        let ledger = ledger_of(ctx);
        let to = crate::ledger::transparency::tree_size(ledger, "toSize", to_size).map_err(error::ledger)?;
        let from =
            crate::ledger::transparency::tree_size(ledger, "fromSize", Some(from_size)).map_err(error::ledger)?;
        Ok(crate::ledger::transparency::consistency(ledger, from, to)
            .map_err(error::ledger)?
            .into())
    }
}

/// The answer of a verification: the chain's, and the transparency log's damage if the
/// chain is intact.
pub(super) fn verification(
    v: crate::ledger::Verification,
    tree_damage: Option<crate::store::Damage>,
    root: crate::tlog::Node,
) -> LedgerVerification {
    let damage = v.damage.or(tree_damage);
    LedgerVerification {
        ok: damage.is_none(),
        checked: v.checked,
        first_bad_revision: damage.as_ref().map(|d| d.revision),
        reason: damage.map(|d| d.reason),
        root_hash: hex::encode(root),
    }
}

/// The filters of `events`.
struct EventFilter {
    dataset: Option<String>,
    kind: Option<EventKind>,
    actor: Option<String>,
    recorded_from: Option<DateTime<Utc>>,
    recorded_to: Option<DateTime<Utc>>,
}

impl EventFilter {
    fn is_empty(&self) -> bool {
        self.dataset.is_none()
            && self.kind.is_none()
            && self.actor.is_none()
            && self.recorded_from.is_none()
            && self.recorded_to.is_none()
    }

    fn matches(&self, kind: EventKind, dataset: &str, actor: &str, recorded_at: DateTime<Utc>) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.dataset.as_deref().is_none_or(|d| d == dataset)
            && self.actor.as_deref().is_none_or(|a| a == actor)
            && self.recorded_from.is_none_or(|f| recorded_at >= f)
            && self.recorded_to.is_none_or(|t| recorded_at < t)
    }
}

/// Up to `limit` events after `after` matching `filter`, examining at most `max_examined`
/// events, and the last revision examined. Releases are matched in memory (the projection
/// keeps their dataset, actor and recording time); only the candidates, and the rare other
/// events (dataset definitions and amendments), are read from the log.
fn filtered_events(
    ledger: &crate::ledger::Ledger,
    filter: &EventFilter,
    after: u64,
    limit: usize,
    max_examined: usize,
) -> Result<(Vec<crate::ledger::AuditEvent>, u64)> {
    let mut candidates = Vec::new();
    let mut examined = after;
    {
        let p = ledger.read();
        let head = p.head().revision;
        let releases = &p.releases()[p.releases_after(after)..];
        let mut next_release = releases.iter().peekable();
        let maybe_other = filter.kind.is_none_or(|k| k != EventKind::ReleasePublished);
        while examined < head && examined - after < max_examined as u64 && candidates.len() <= limit {
            let r = examined + 1;
            let candidate = match next_release.next_if(|rel| rel.revision == r) {
                Some(rel) => filter.matches(EventKind::ReleasePublished, &rel.dataset, &rel.actor, rel.recorded_at),
                None => maybe_other,
            };
            if candidate {
                candidates.push(r);
            }
            examined = r;
        }
    }
    let mut out = Vec::new();
    for r in candidates {
        let Some(a) = ledger.audit_events(r - 1, 1).map_err(error::ledger)?.pop() else {
            break;
        };
        let env = &a.event.envelope;
        let (kind, dataset) = event_kind(&env.event);
        if filter.matches(kind, dataset, &env.actor, env.recorded_at) {
            if out.len() == limit {
                // A further match: this page ends at the last one it holds.
                examined = out
                    .last()
                    .map_or(after, |e: &crate::ledger::AuditEvent| e.event.revision());
                break;
            }
            out.push(a);
        }
    }
    Ok((out, examined))
}

/// The fields selected on the events of an `events` page, under `nodes` and `edges.node`
/// (fragments included).
fn event_fields(ctx: &Context<'_>) -> std::collections::HashSet<String> {
    let mut fields = std::collections::HashSet::new();
    for child in ctx.field().selection_set() {
        let nodes: Vec<_> = match child.name() {
            "nodes" => vec![child],
            "edges" => child.selection_set().filter(|c| c.name() == "node").collect(),
            _ => continue,
        };
        for node in nodes {
            fields.extend(node.selection_set().map(|f| f.name().to_owned()));
        }
    }
    fields
}

fn event_kind(event: &Event) -> (EventKind, &str) {
    let kind = match event {
        Event::DatasetDefined { .. } => EventKind::DatasetDefined,
        Event::DatasetAmended { .. } => EventKind::DatasetAmended,
        Event::ReleasePublished { .. } => EventKind::ReleasePublished,
        Event::ReleaseScheduled { .. } => EventKind::ReleaseScheduled,
        Event::ReleaseRevealed { .. } => EventKind::ReleaseRevealed,
        Event::ScheduledReleaseWithdrawn { .. } => EventKind::ScheduledReleaseWithdrawn,
    };
    (kind, event.dataset())
}

fn ledger_event(a: crate::ledger::AuditEvent) -> LedgerEvent {
    let env = &a.event.envelope;
    let (kind, dataset) = event_kind(&env.event);
    let release = env.event.release_id();
    LedgerEvent {
        revision: env.revision,
        event_id: env.event_id,
        kind,
        recorded_at: env.recorded_at,
        actor: env.actor.clone(),
        prev_hash: env.prev_hash.clone(),
        hash: a.event.hash.to_hex(),
        dataset: ID(dataset.to_owned()),
        release,
        canonical: a.canonical,
    }
}

/// How long `verifyLedgerFull` waits for its job: a tenth of the request timeout (at most a
/// second) short of it, so that the request answers, naming the job, before it is cut off.
pub(crate) fn full_verification_wait(request_timeout: std::time::Duration) -> std::time::Duration {
    request_timeout.saturating_sub((request_timeout / 10).min(std::time::Duration::from_secs(1)))
}
