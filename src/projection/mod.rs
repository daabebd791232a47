//! In-memory views folded from the event log.
//!
//! Every figure is a cell `(dataset, key, period, measure)` holding its version list in
//! revision order. A version names the release that set it by its position in
//! [`Projection::releases`], which is itself in revision order, so "as of revision R" turns
//! into "versions whose release position is below B" and is answered by binary search:
//! the cost depends on the number of versions of one cell, never on the length of the log.

mod changes;
mod filter;
mod snapshot;
mod stats;

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashSet;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound as RangeBound;
use std::sync::Arc;

use fxhash::FxBuildHasher;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::{Dataset, Event, Frequency, Period, ReleaseStatus, SeriesKey};
use crate::store::{Hash, Head};

pub use changes::{ChangeKind, FigureChange};
pub use filter::{Filter, KeyPattern};
pub use snapshot::{
    read_header, Header, SnapshotError, Unsealed, FORMAT as SNAPSHOT_FORMAT, HEADER_LEN as SNAPSHOT_HEADER_LEN,
};
pub use stats::{RevisionStat, RevisionSummary};

/// A figure's coordinates inside one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    pub key: SeriesKey,
    pub period: Period,
    /// Position of the measure in the dataset's measure list.
    pub measure: u8,
}

/// One value of a figure, set by one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version {
    /// Position of the release in [`Projection::releases`].
    pub release: u32,
    pub value: Decimal,
}

/// A dataset with its figures.
///
/// Memory is laid out for tens of millions of versions: figures are grouped by series (a
/// dataset has thousands of series but millions of figures), so the 24-byte series key is kept
/// per series (in its two indexes), and each figure costs a 12-byte entry in its series' list, a
/// 16-byte entry in the point index and a fixed 64-byte slot for its versions.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetView {
    /// Shared, so views handed to readers can outlive the lock.
    pub def: Arc<Dataset>,
    /// Revision of the event that defined the dataset.
    pub revision: u64,
    /// Revision of the event that recorded `def`: the definition, or its latest amendment.
    pub def_revision: u64,
    /// Series in key order, for listing figures in key order.
    series_order: BTreeMap<SeriesKey, u32>,
    /// The same series by hash, for point lookups.
    series_ix: HashMap<SeriesKey, u32, FxBuildHasher>,
    series: Vec<Series>,
    /// Point index of the figures, whose cost must not grow with their number (a B-tree over
    /// millions of keys gets deeper and misses the cache). Keys come only from validated
    /// releases, so a fast non-keyed hash is fine.
    lookup: HashMap<FigureKey, u32, FxBuildHasher>,
    figures: Figures,
    pub release_count: u32,
    /// The frequencies of the periods that have figures, one bit per [`Frequency`].
    frequencies: u8,
    /// `(published_at, position)` of the releases that were not back-fills, in recording order,
    /// which is also publication order (the writer refuses anything else).
    mainline: Vec<(DateTime<Utc>, u32)>,
    /// `(position, published_at)` of the back-filled releases, in recording order.
    backfills: Vec<(u32, DateTime<Utc>)>,
}

/// One series and its figures, ordered by `(period, measure)` as [`CellKey`] orders them.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    /// `(period, measure position, figure)`. New periods nearly always come last, so keeping
    /// the list sorted costs an append.
    cells: Vec<(Period, u8, u32)>,
}

/// How many cells at the end of a series [`DatasetView::figure_or_insert`] looks at before
/// it asks the figure index.
const TAIL_SCAN: usize = 8;

/// A figure named by its series' number rather than its key: 12 bytes instead of 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FigureKey {
    series: u32,
    period: Period,
    measure: u8,
}

impl std::hash::Hash for FigureKey {
    /// One well-mixed word. FxHash alone multiplies, so the low bits the table indexes by
    /// would depend only on the low fields: figures of different series would all collide.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let p = self.period;
        let mut x = u64::from(self.series)
            | u64::from(p.year()) << 32
            | u64::from(p.index()) << 48
            | (p.frequency() as u64) << 56
            | u64::from(self.measure) << 58;
        // The 64-bit finalizer of MurmurHash3.
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        state.write_u64(x);
    }
}

/// Versions kept in place per figure. Most figures have at most three (preliminary and two
/// revisions).
const INLINE: usize = 3;
/// Figures per block of [`Figures`]: 16,384 x 64 bytes = 1 MiB.
const BLOCK: usize = 1 << 14;

/// The versions of every figure, in fixed-size blocks: no allocation per figure, no spare
/// capacity beyond the last block, and no reallocation (whose old and new buffers would
/// both count towards peak memory) as the ledger grows.
#[derive(Debug, Clone, PartialEq, Default)]
struct Figures {
    blocks: Vec<Vec<Slot>>,
    /// All versions of the rare figures revised more than `INLINE - 1` times.
    spilled: HashMap<u32, Vec<Version>, FxBuildHasher>,
    /// The rare figures with a back-filled version: their lists are in publication order but
    /// not in release order, so what is visible at a bound is not always a prefix.
    mixed: HashSet<u32, FxBuildHasher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Slot {
    len: u32,
    inline: [Version; INLINE],
}

impl Figures {
    /// Adds a figure without versions and returns its number.
    fn push(&mut self) -> u32 {
        if self.blocks.last().is_none_or(|b| b.len() == BLOCK) {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        let id = (self.blocks.len() - 1) * BLOCK + self.blocks.last().map_or(0, Vec::len);
        self.blocks.last_mut().expect("just ensured").push(Slot::default());
        id as u32
    }

    fn slot(&self, id: u32) -> &Slot {
        &self.blocks[id as usize / BLOCK][id as usize % BLOCK]
    }

    fn versions(&self, id: u32) -> &[Version] {
        let slot = self.slot(id);
        match slot.len as usize {
            n if n <= INLINE => &slot.inline[..n],
            _ => &self.spilled[&id],
        }
    }

    /// Inserts `version` at position `at` of the figure's list (a back-fill).
    fn insert(&mut self, id: u32, at: usize, version: Version) {
        let mut all = self.versions(id).to_vec();
        all.insert(at, version);
        let slot = &mut self.blocks[id as usize / BLOCK][id as usize % BLOCK];
        slot.len = all.len() as u32;
        // As `add` leaves it: the first versions in place, and all of them spilled beyond.
        let inline = all.len().min(INLINE);
        slot.inline[..inline].copy_from_slice(&all[..inline]);
        if all.len() > INLINE {
            self.spilled.insert(id, all);
        }
        self.mixed.insert(id);
    }

    fn add(&mut self, id: u32, version: Version) {
        let slot = &mut self.blocks[id as usize / BLOCK][id as usize % BLOCK];
        let n = slot.len as usize;
        slot.len += 1;
        if n < INLINE {
            slot.inline[n] = version;
        } else if n == INLINE {
            let mut all = slot.inline.to_vec();
            all.push(version);
            self.spilled.insert(id, all);
        } else {
            self.spilled
                .get_mut(&id)
                .expect("spilled when it outgrew its slot")
                .push(version);
        }
    }
}

/// What the projection keeps of a release (its figures live in the cells).
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInfo {
    pub id: Uuid,
    pub dataset: String,
    pub status: ReleaseStatus,
    pub title: String,
    pub published_at: DateTime<Utc>,
    pub source: Option<String>,
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub observation_count: u32,
    /// How many of its figures changed a value that an earlier release had published.
    pub revised_count: u32,
    /// Published before its dataset's latest publication when it was recorded: its versions
    /// took their place in publication order (see [`Projection::apply`]).
    pub backfilled: bool,
    /// Why its figures revise earlier ones, when it says.
    pub revision_reason: Option<crate::domain::RevisionReason>,
}

/// A point in the ledger's history that reads are made at, on two axes: what the ledger had
/// recorded (`releases`, up to `revision`), and what the agencies had published by then
/// (`published`, none for no limit).
///
/// A version is visible at a bound when its release is among the first `releases` and was
/// published at or before `published`; a figure's current value is its last visible version
/// in publication order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The ledger revision the view is read at: the revision asked for, the one the ledger had
    /// reached at `knownAt`, or (as of a publication time) the last release published by then.
    pub revision: u64,
    /// Number of releases recorded at or before the ledger revision read at.
    releases: u32,
    /// Only versions published at or before this time.
    pub published: Option<DateTime<Utc>>,
}

/// The ways to name a point in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Revision(u64),
    Release(Uuid),
    /// What the agencies had published at this time, as the ledger knows it now.
    PublishedAt(DateTime<Utc>),
    /// What the ledger showed at `known_at` (its recording time), optionally only what had
    /// been published by `published_at`. Once `known_at` is past, the answer never changes.
    KnownAt {
        known_at: DateTime<Utc>,
        published_at: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    #[error("asOf.revision {requested} is beyond the ledger head {head}")]
    RevisionBeyondHead { requested: u64, head: u64 },
    #[error("asOf.release {0}: no such release")]
    UnknownRelease(Uuid),
    #[error("revision {revision}: {message}")]
    Inconsistent { revision: u64, message: String },
}

/// A figure computed from others (a sum, a difference) that does not fit in a decimal
/// (about ±7.9 × 10^28). Publishing bounds every value well below that (see
/// `domain::MAX_VALUE`), so only a log written before that bound can get here; the figure is
/// then reported as overflowed, never as a wrong number or a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{figure} overflows the range of a decimal (about ±7.9e28)")]
pub struct Overflow {
    /// The figure, by its GraphQL name (e.g. `sumOfItems`).
    pub figure: &'static str,
}

/// A figure read at some bound.
#[derive(Debug, Clone)]
pub struct ObservationAt<'a> {
    pub dataset: &'a DatasetView,
    pub cell: CellKey,
    /// The versions visible at the bound, in publication order; never empty. Borrowed from
    /// the figure's list, which they are a prefix of unless a back-fill is involved.
    pub versions: Cow<'a, [Version]>,
}

impl<'a> ObservationAt<'a> {
    pub fn current(&self) -> Version {
        *self.versions.last().expect("never empty")
    }
    pub fn preliminary(&self) -> Version {
        self.versions[0]
    }
    /// The value this one replaced, if it replaced one.
    pub fn revised_from(&self) -> Option<Decimal> {
        self.versions.len().checked_sub(2).map(|i| self.versions[i].value)
    }
}

/// A new version of an existing figure, reported when a release revises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisedFigure {
    pub key: String,
    pub period: Period,
    pub measure: String,
    pub previous: Decimal,
    pub value: Decimal,
    pub version: u32,
}

/// What applying one event changed, for notifying subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    DatasetDefined { id: String },
    ReleasePublished { release: u32, revised: Vec<RevisedFigure> },
    DatasetAmended { id: String },
    ReleaseScheduled { id: Uuid },
    ScheduleWithdrawn { id: Uuid },
}

/// A scheduled release as the log shows it: what was committed to, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleInfo {
    /// The schedule in force (the last replacement's).
    pub schedule: crate::domain::Schedule,
    /// Revision of the first `ReleaseScheduled` event of the release.
    pub first_revision: u64,
    /// Revision of the last one (a replacement's).
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    /// How many times it was replaced before its time.
    pub replaced: u32,
    pub state: ScheduleState,
}

/// What became of a scheduled release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScheduleState {
    /// Committed to, not public yet.
    Pending,
    /// Revealed at this revision.
    Revealed { revision: u64 },
    /// Withdrawn at this revision.
    Withdrawn { revision: u64, reason: Option<String> },
}

/// One recorded event as the projection takes it in: the event with its place in the log.
/// The ledger makes one from each stored event.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub revision: u64,
    pub hash: Hash,
    pub recorded_at: DateTime<Utc>,
    pub actor: &'a str,
    pub event: &'a Event,
}

/// All views, folded from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    head: Head,
    datasets: Vec<DatasetView>,
    dataset_ix: HashMap<String, usize>,
    releases: Vec<ReleaseInfo>,
    release_ix: HashMap<Uuid, u32>,
    /// (published_at, revision) sorted by time, with the running maximum of revisions.
    published: Vec<(DateTime<Utc>, u64)>,
    published_max: Vec<u64>,
    /// For each revision (at index revision - 1), the latest recording time of the events up
    /// to it: the running maximum, so that "known at K" is a binary search even for a log
    /// whose clock once stepped back.
    recorded: Vec<DateTime<Utc>>,
    version_count: u64,
    extents: Extents,
    /// Scheduled releases, in the order first scheduled.
    schedules: Vec<ScheduleInfo>,
    schedule_ix: HashMap<Uuid, usize>,
}

/// The largest sizes of the lists the API returns, kept up to date as events apply (O(1) to
/// read), for the worst-case cost of a query before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extents {
    pub datasets: u64,
    pub releases: u64,
    /// Events in the log (the head revision).
    pub events: u64,
    /// Figures of the largest dataset.
    pub max_figures: u64,
    /// Observations of the largest release.
    pub max_release_observations: u64,
    /// Versions of the most revised figure.
    pub max_versions: u64,
    /// Dimensions of the dataset with the most.
    pub max_dimensions: u64,
    /// Codes of the longest code list.
    pub max_codes: u64,
    /// Measures of the dataset with the most.
    pub max_measures: u64,
}

impl Projection {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn version_count(&self) -> u64 {
        self.version_count
    }

    /// The largest list sizes; see [`Extents`].
    pub fn extents(&self) -> Extents {
        Extents {
            datasets: self.datasets.len() as u64,
            releases: self.releases.len() as u64,
            events: self.head.revision,
            ..self.extents
        }
    }

    pub fn datasets(&self) -> &[DatasetView] {
        &self.datasets
    }

    pub fn dataset(&self, id: &str) -> Option<&DatasetView> {
        self.dataset_ix.get(id).map(|&i| &self.datasets[i])
    }

    pub fn releases(&self) -> &[ReleaseInfo] {
        &self.releases
    }

    pub fn release(&self, id: &Uuid) -> Option<(u32, &ReleaseInfo)> {
        self.release_ix.get(id).map(|&i| (i, &self.releases[i as usize]))
    }

    /// Scheduled releases, in the order first scheduled (pending, revealed or withdrawn).
    pub fn schedules(&self) -> &[ScheduleInfo] {
        &self.schedules
    }

    pub fn schedule(&self, id: &Uuid) -> Option<&ScheduleInfo> {
        self.schedule_ix.get(id).map(|&i| &self.schedules[i])
    }

    /// For snapshots: puts back the schedules a snapshot kept.
    pub(crate) fn set_schedules(&mut self, schedules: Vec<ScheduleInfo>) {
        self.schedule_ix = schedules.iter().enumerate().map(|(i, s)| (s.schedule.id, i)).collect();
        self.schedules = schedules;
    }

    pub fn release_at(&self, position: u32) -> &ReleaseInfo {
        &self.releases[position as usize]
    }

    /// Position of the first release recorded after `revision`.
    pub fn releases_after(&self, revision: u64) -> usize {
        self.releases.partition_point(|r| r.revision <= revision)
    }

    /// The bound for the current head.
    pub fn latest(&self) -> Bound {
        Bound {
            revision: self.head.revision,
            releases: self.releases.len() as u32,
            published: None,
        }
    }

    /// The latest recording time of the events so far (new events are recorded no earlier).
    pub fn last_recorded_at(&self) -> Option<DateTime<Utc>> {
        self.recorded.last().copied()
    }

    /// The revision the ledger had reached at `t`: the last whose event, and every event before
    /// it, was recorded at or before `t`.
    pub fn revision_known_at(&self, t: DateTime<Utc>) -> u64 {
        self.recorded.partition_point(|r| *r <= t) as u64
    }

    /// The last revision, up to `limit`, of a release published at or before `t`.
    fn published_by(&self, t: DateTime<Utc>, limit: u64) -> u64 {
        let n = self.published.partition_point(|(p, _)| *p <= t);
        match n.checked_sub(1).map(|i| self.published_max[i]) {
            None => 0,
            Some(max) if max <= limit => max,
            // Only with a past `knownAt`: releases recorded after it were published by `t`.
            Some(_) => self.published[..n]
                .iter()
                .map(|&(_, r)| r)
                .filter(|&r| r <= limit)
                .max()
                .unwrap_or(0),
        }
    }

    /// Resolves an as-of specification (none means the head).
    pub fn bound(&self, as_of: Option<AsOf>) -> Result<Bound, ProjectionError> {
        let (known, published) = match as_of {
            Some(AsOf::PublishedAt(t)) => (self.head.revision, Some(t)),
            Some(AsOf::KnownAt { known_at, published_at }) => (self.revision_known_at(known_at), published_at),
            _ => (0, None),
        };
        let revision = match as_of {
            None => return Ok(self.latest()),
            Some(AsOf::Revision(r)) if r > self.head.revision => {
                return Err(ProjectionError::RevisionBeyondHead {
                    requested: r,
                    head: self.head.revision,
                })
            }
            Some(AsOf::Revision(r)) => r,
            Some(AsOf::Release(id)) => self.release(&id).ok_or(ProjectionError::UnknownRelease(id))?.1.revision,
            Some(AsOf::PublishedAt(_) | AsOf::KnownAt { .. }) => {
                return Ok(Bound {
                    revision: published.map_or(known, |t| self.published_by(t, known)),
                    releases: self.releases_after(known) as u32,
                    published,
                })
            }
        };
        Ok(Bound {
            revision,
            releases: self.releases_after(revision) as u32,
            published: None,
        })
    }

    /// Folds one event in. Events must come in revision order.
    pub fn apply<'e>(&mut self, event: impl Into<Recorded<'e>>) -> Result<Applied, ProjectionError> {
        let event: Recorded<'e> = event.into();
        let revision = event.revision;
        let inconsistent = |message: String| ProjectionError::Inconsistent { revision, message };
        if revision != self.head.revision + 1 {
            return Err(inconsistent(format!("expected revision {}", self.head.revision + 1)));
        }
        let applied = match event.event {
            Event::DatasetDefined { dataset } => {
                if self.dataset_ix.contains_key(&dataset.id) {
                    return Err(inconsistent(format!("dataset {} defined twice", dataset.id)));
                }
                self.dataset_ix.insert(dataset.id.clone(), self.datasets.len());
                self.datasets.push(DatasetView {
                    def: Arc::new(dataset.clone()),
                    revision,
                    def_revision: revision,
                    series_order: BTreeMap::new(),
                    series_ix: HashMap::default(),
                    series: Vec::new(),
                    lookup: HashMap::default(),
                    figures: Figures::default(),
                    release_count: 0,
                    frequencies: 0,
                    mainline: Vec::new(),
                    backfills: Vec::new(),
                });
                let e = &mut self.extents;
                e.max_dimensions = e.max_dimensions.max(dataset.dimensions.len() as u64);
                e.max_measures = e.max_measures.max(dataset.measures.len() as u64);
                let codes = dataset.dimensions.iter().map(|d| d.codes.len()).max().unwrap_or(0);
                e.max_codes = e.max_codes.max(codes as u64);
                Applied::DatasetDefined { id: dataset.id.clone() }
            }
            Event::ReleasePublished { release } => self.apply_release(release, &event)?,
            Event::ReleaseScheduled { schedule } => {
                if self.release_ix.contains_key(&schedule.id) {
                    return Err(inconsistent(format!(
                        "release {} scheduled after it was recorded",
                        schedule.id
                    )));
                }
                if !self.dataset_ix.contains_key(&schedule.dataset) {
                    return Err(inconsistent(format!(
                        "schedule of unknown dataset {}",
                        schedule.dataset
                    )));
                }
                match self.schedule_ix.get(&schedule.id) {
                    Some(&i) => {
                        let s = &mut self.schedules[i];
                        if s.state != ScheduleState::Pending
                            || schedule.replaces.as_ref() != Some(&s.schedule.commitment)
                        {
                            return Err(inconsistent(format!(
                                "release {} scheduled again without replacing its pending commitment",
                                schedule.id
                            )));
                        }
                        s.schedule = schedule.clone();
                        s.revision = revision;
                        s.recorded_at = event.recorded_at;
                        s.replaced += 1;
                    }
                    None => {
                        if schedule.replaces.is_some() {
                            return Err(inconsistent(format!("release {} replaces nothing", schedule.id)));
                        }
                        self.schedule_ix.insert(schedule.id, self.schedules.len());
                        self.schedules.push(ScheduleInfo {
                            schedule: schedule.clone(),
                            first_revision: revision,
                            revision,
                            recorded_at: event.recorded_at,
                            replaced: 0,
                            state: ScheduleState::Pending,
                        });
                    }
                }
                Applied::ReleaseScheduled { id: schedule.id }
            }
            Event::ReleaseRevealed {
                release,
                salt,
                commitment,
            } => {
                let i = self.pending_schedule(&release.id, commitment).map_err(inconsistent)?;
                crate::domain::schedule::check_reveal(&self.schedules[i].schedule, salt, release)
                    .map_err(|why| inconsistent(format!("reveal of release {}: {why}", release.id)))?;
                let applied = self.apply_release(release, &event)?;
                self.schedules[i].state = ScheduleState::Revealed { revision };
                applied
            }
            Event::ScheduledReleaseWithdrawn { withdrawal } => {
                let i = self
                    .pending_schedule(&withdrawal.id, &withdrawal.commitment)
                    .map_err(inconsistent)?;
                self.schedules[i].state = ScheduleState::Withdrawn {
                    revision,
                    reason: withdrawal.reason.clone(),
                };
                Applied::ScheduleWithdrawn { id: withdrawal.id }
            }
            Event::DatasetAmended { dataset } => {
                let &ds_pos = self
                    .dataset_ix
                    .get(&dataset.id)
                    .ok_or_else(|| inconsistent(format!("amendment of unknown dataset {}", dataset.id)))?;
                let ds = &mut self.datasets[ds_pos];
                dataset.check_amends(&ds.def).map_err(|e| inconsistent(e.to_string()))?;
                // Codes are only appended, so the series keys already recorded keep their meaning.
                ds.def = Arc::new(dataset.clone());
                ds.def_revision = revision;
                let codes = dataset.dimensions.iter().map(|d| d.codes.len()).max().unwrap_or(0);
                self.extents.max_codes = self.extents.max_codes.max(codes as u64);
                Applied::DatasetAmended { id: dataset.id.clone() }
            }
        };
        self.head = Head {
            revision,
            hash: event.hash,
        };
        let recorded = self
            .recorded
            .last()
            .map_or(event.recorded_at, |&t| t.max(event.recorded_at));
        self.recorded.push(recorded);
        Ok(applied)
    }

    /// The schedule of release `id`, if it is pending under `commitment`.
    fn pending_schedule(&self, id: &Uuid, commitment: &str) -> Result<usize, String> {
        let &i = self
            .schedule_ix
            .get(id)
            .ok_or_else(|| format!("release {id} was never scheduled"))?;
        let s = &self.schedules[i];
        if s.state != ScheduleState::Pending {
            return Err(format!("release {id} is no longer scheduled ({:?})", s.state));
        }
        if s.schedule.commitment != commitment {
            return Err(format!("release {id} is scheduled under another commitment"));
        }
        Ok(i)
    }

    /// Folds in a release, published or revealed.
    fn apply_release(
        &mut self,
        release: &crate::domain::Release,
        event: &Recorded<'_>,
    ) -> Result<Applied, ProjectionError> {
        let revision = event.revision;
        let inconsistent = |message: String| ProjectionError::Inconsistent { revision, message };
        if self.release_ix.contains_key(&release.id) {
            return Err(inconsistent(format!("release {} recorded twice", release.id)));
        }
        let &ds_pos = self
            .dataset_ix
            .get(&release.dataset)
            .ok_or_else(|| inconsistent(format!("release of unknown dataset {}", release.dataset)))?;
        let position = self.releases.len() as u32;
        let ds = &mut self.datasets[ds_pos];
        // Resolve everything before mutating, so a bad event leaves no trace.
        let mut resolved = Vec::with_capacity(release.observations.len());
        // Observations are sorted by key, so a key's periods come together: parse it once.
        let mut last: Option<(&str, SeriesKey)> = None;
        for o in &release.observations {
            let key = match last {
                Some((text, key)) if text == o.key => key,
                _ => ds.def.parse_key(&o.key).map_err(|e| inconsistent(e.to_string()))?,
            };
            last = Some((&o.key, key));
            let measure = ds
                .def
                .measures
                .iter()
                .position(|m| *m == o.measure)
                .ok_or_else(|| inconsistent(format!("unknown measure {}", o.measure)))?;
            resolved.push(CellKey {
                key,
                period: o.period,
                measure: measure as u8,
            });
        }
        // A release published before the dataset's latest publication is a back-fill
        // (the writer refuses one that does not say so; older logs are read by the
        // same rule): its versions go where their publication time puts them.
        let latest = ds.mainline.last().map(|m| m.0);
        let backfilled = release.backfill || latest.is_some_and(|l| release.published_at < l);
        let mut revised = Vec::new();
        let mut revised_count = 0;
        let mut max_versions = self.extents.max_versions;
        let version_of = |o: &crate::domain::Observation| Version {
            release: position,
            value: o.value,
        };
        for (cell, o) in resolved.into_iter().zip(&release.observations) {
            let figure = ds.figure_or_insert(cell);
            let versions = ds.figures.versions(figure);
            let at = if backfilled {
                let releases = &self.releases;
                versions.partition_point(|v| releases[v.release as usize].published_at <= release.published_at)
            } else {
                versions.len()
            };
            if let Some(prev) = at.checked_sub(1).map(|i| versions[i]) {
                if prev.value != o.value {
                    revised_count += 1;
                    // Subscribers hear of a new current value only.
                    if at == versions.len() {
                        revised.push(RevisedFigure {
                            key: o.key.clone(),
                            period: o.period,
                            measure: o.measure.clone(),
                            previous: prev.value,
                            value: o.value,
                            version: versions.len() as u32 + 1,
                        });
                    }
                }
            }
            if backfilled {
                ds.figures.insert(figure, at, version_of(o));
            } else {
                ds.figures.add(figure, version_of(o));
            }
            max_versions = max_versions.max(u64::from(ds.figures.slot(figure).len));
        }
        if backfilled {
            ds.backfills.push((position, release.published_at));
        } else {
            ds.mainline.push((release.published_at, position));
        }
        ds.release_count += 1;
        let e = &mut self.extents;
        e.max_versions = max_versions;
        e.max_figures = e.max_figures.max(ds.cell_count() as u64);
        e.max_release_observations = e.max_release_observations.max(release.observations.len() as u64);
        self.version_count += release.observations.len() as u64;
        self.releases.push(ReleaseInfo {
            id: release.id,
            dataset: release.dataset.clone(),
            status: release.status,
            title: release.title.clone(),
            published_at: release.published_at,
            source: release.source.clone(),
            revision,
            recorded_at: event.recorded_at,
            actor: event.actor.to_owned(),
            observation_count: release.observations.len() as u32,
            revised_count,
            backfilled,
            revision_reason: release.revision_reason.clone(),
        });
        self.release_ix.insert(release.id, position);
        self.index_publication(release.published_at, revision);
        Ok(Applied::ReleasePublished {
            release: position,
            revised,
        })
    }

    /// Figures of `dataset` matching `filter` as of `bound`, in key order, after `after`.
    pub fn select<'a>(
        &'a self,
        dataset: &'a DatasetView,
        filter: &'a Filter,
        bound: Bound,
        after: Option<&CellKey>,
    ) -> impl Iterator<Item = ObservationAt<'a>> + 'a {
        // Only the keys the pattern's leading parts allow (`ST07.` walks the ST07 series, not
        // the whole dataset, to fill a page and to learn whether there is a next one).
        let span = filter.key.as_ref().and_then(|k| k.span(dataset.def.dimensions.len()));
        let (low, high) = (span.map(|s| s.0), span.map(|s| s.1));
        let start = match (after.map(|c| c.key), low) {
            (Some(a), Some(l)) => RangeBound::Included(a.max(l)),
            (Some(k), None) | (None, Some(k)) => RangeBound::Included(k),
            (None, None) => RangeBound::Unbounded,
        };
        let end = match high {
            // A cursor past the pattern's last key leaves nothing to walk.
            Some(h) if after.is_some_and(|a| a.key > h) => RangeBound::Excluded(after.expect("checked").key),
            Some(h) => RangeBound::Included(h),
            None => RangeBound::Unbounded,
        };
        let after = after.copied();
        let (first, last) = filter.period_span();
        dataset
            .series_order
            .range((start, end))
            .filter(move |(key, _)| filter.key.as_ref().is_none_or(|k| k.matches(key)))
            .flat_map(move |(&key, &s)| {
                // Only the part of the series inside the period span and after the cursor.
                let cells = &dataset.series[s as usize].cells;
                let mut from = first.map_or(0, |p| cells.partition_point(|c| c.0 < p));
                if let Some(a) = after.filter(|a| a.key == key) {
                    from = from.max(cells.partition_point(|c| (c.0, c.1) <= (a.period, a.measure)));
                }
                let to = last
                    .map_or(cells.len(), |p| cells.partition_point(|c| c.0 <= p))
                    .max(from);
                cells[from..to]
                    .iter()
                    .map(move |&(period, measure, figure)| (CellKey { key, period, measure }, figure))
            })
            // The key was matched per series above.
            .filter(move |(cell, _)| filter.matches_point(cell.period, cell.measure))
            .filter_map(move |(cell, figure)| dataset.at(cell, figure, bound))
            .filter(move |obs| filter.matches_versions(&obs.versions, |r| self.releases[r as usize].status))
    }

    fn index_publication(&mut self, at: DateTime<Utc>, revision: u64) {
        let pos = self.published.partition_point(|(p, _)| *p <= at);
        self.published.insert(pos, (at, revision));
        // Releases nearly always arrive in publication order, so this usually touches one entry.
        self.published_max.truncate(pos);
        let mut max = pos.checked_sub(1).map_or(0, |i| self.published_max[i]);
        for &(_, r) in &self.published[pos..] {
            max = max.max(r);
            self.published_max.push(max);
        }
    }
}

impl DatasetView {
    pub fn cell_count(&self) -> usize {
        self.lookup.len()
    }

    /// The frequencies of the periods that have figures (at the head), coarsest first.
    pub fn frequencies(&self) -> Vec<Frequency> {
        [
            Frequency::Annual,
            Frequency::HalfYear,
            Frequency::Quarter,
            Frequency::Month,
        ]
        .into_iter()
        .filter(|&f| self.frequencies & 1 << f as u8 != 0)
        .collect()
    }

    /// The number of the figure at `cell`, adding it (without versions) if it is new.
    fn figure_or_insert(&mut self, cell: CellKey) -> u32 {
        let series = match self.series_ix.entry(cell.key) {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(v) => {
                let s = self.series.len() as u32;
                self.series.push(Series { cells: Vec::new() });
                self.series_order.insert(cell.key, s);
                *v.insert(s)
            }
        };
        let target = (cell.period, cell.measure);
        // A release mostly revises the latest periods of a series and adds the next one: look
        // at the end of the series' sorted cells first (in cache, unlike a random probe of
        // `lookup`). Every figure of the series is in `cells`, so a miss there past the last
        // cell means a new figure; otherwise `lookup` answers.
        let cells = &self.series[series as usize].cells;
        let mut at = None;
        for (i, c) in cells.iter().enumerate().rev().take(TAIL_SCAN) {
            match (c.0, c.1).cmp(&target) {
                std::cmp::Ordering::Equal => return c.2,
                std::cmp::Ordering::Less => {
                    at = Some(i + 1);
                    break;
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        if cells.is_empty() {
            at = Some(0);
        }
        let key = FigureKey {
            series,
            period: cell.period,
            measure: cell.measure,
        };
        let figure = match self.lookup.entry(key) {
            Entry::Occupied(o) => return *o.get(),
            Entry::Vacant(v) => *v.insert(self.figures.push()),
        };
        self.frequencies |= 1 << cell.period.frequency() as u8;
        let cells = &mut self.series[series as usize].cells;
        let at = at.unwrap_or_else(|| cells.partition_point(|c| (c.0, c.1) < target));
        cells.insert(at, (cell.period, cell.measure, figure));
        figure
    }

    /// Resolves a measure id to its position.
    pub fn measure(&self, id: &str) -> Option<u8> {
        self.def.measures.iter().position(|m| m == id).map(|p| p as u8)
    }

    pub fn measure_id(&self, position: u8) -> &str {
        &self.def.measures[position as usize]
    }

    /// A figure as of `bound`, or `None` if nothing had been published for it by then.
    pub fn get(&self, cell: &CellKey, bound: Bound) -> Option<ObservationAt<'_>> {
        let &series = self.series_ix.get(&cell.key)?;
        let key = FigureKey {
            series,
            period: cell.period,
            measure: cell.measure,
        };
        self.at(*cell, *self.lookup.get(&key)?, bound)
    }

    fn at(&self, cell: CellKey, figure: u32, bound: Bound) -> Option<ObservationAt<'_>> {
        let all = self.figures.versions(figure);
        let mainline_cut = bound.published.map_or(u32::MAX, |t| self.mainline_cut(t));
        let versions = if self.figures.mixed.is_empty() || !self.figures.mixed.contains(&figure) {
            // Every version is of a mainline release: in release order, and what is visible is
            // the prefix before both cuts.
            let cut = bound.releases.min(mainline_cut);
            Cow::Borrowed(&all[..all.partition_point(|v| v.release < cut)])
        } else {
            let visible = |v: &Version| {
                v.release < bound.releases
                    && match (bound.published, self.backfill_time(v.release)) {
                        (None, _) => true,
                        (Some(t), Some(published)) => published <= t,
                        (Some(_), None) => v.release < mainline_cut,
                    }
            };
            let n = all.iter().take_while(|v| visible(v)).count();
            if all[n..].iter().any(visible) {
                Cow::Owned(all.iter().copied().filter(visible).collect())
            } else {
                Cow::Borrowed(&all[..n])
            }
        };
        (!versions.is_empty()).then_some(ObservationAt {
            dataset: self,
            cell,
            versions,
        })
    }

    /// Position of the first mainline release published after `t` (none: `u32::MAX`).
    fn mainline_cut(&self, t: DateTime<Utc>) -> u32 {
        let i = self.mainline.partition_point(|m| m.0 <= t);
        self.mainline.get(i).map_or(u32::MAX, |m| m.1)
    }

    /// The publication time of release `position`, if it is a back-fill of this dataset.
    fn backfill_time(&self, position: u32) -> Option<DateTime<Utc>> {
        let i = self.backfills.binary_search_by_key(&position, |b| b.0).ok()?;
        Some(self.backfills[i].1)
    }

    /// The latest publication time of the dataset's releases.
    pub fn latest_published(&self) -> Option<DateTime<Utc>> {
        self.mainline.last().map(|m| m.0)
    }

    /// The dataset's frequency: its definition's, or (for one defined without) that of its
    /// figures, when they have exactly one.
    pub fn frequency(&self) -> Option<Frequency> {
        self.def.frequency.or_else(|| match self.frequencies().as_slice() {
            [only] => Some(*only),
            _ => None,
        })
    }

    /// The value that release `release` replaced in a figure, with the 1-based number of the
    /// version it set; `None` if the release did not publish the figure or was its first.
    pub fn replaced_by(&self, cell: &CellKey, release: u32) -> Option<(u32, Decimal)> {
        let versions = self.history(cell)?.versions;
        let i = versions.iter().position(|v| v.release == release)?;
        let versions = &versions[..];
        Some((i as u32 + 1, versions.get(i.checked_sub(1)?)?.value))
    }

    /// Every version of a figure, whatever the bound.
    pub fn history(&self, cell: &CellKey) -> Option<ObservationAt<'_>> {
        self.get(
            cell,
            Bound {
                revision: u64::MAX,
                releases: u32::MAX,
                published: None,
            },
        )
    }

    /// The items of `dimension` directly under `base`'s code in that dimension, as of
    /// `bound`, with the figure of `base` itself as the total.
    pub fn breakdown(
        &self,
        base: &SeriesKey,
        dimension: usize,
        period: Period,
        measure: u8,
        bound: Bound,
    ) -> Breakdown<'_> {
        let dim = &self.def.dimensions[dimension];
        let parent = &dim.codes[base.code(dimension) as usize].code;
        let cell = |key: SeriesKey| CellKey { key, period, measure };
        let total = self.get(&cell(*base), bound);
        let items: Vec<_> = dim
            .codes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.parent.as_deref() == Some(parent.as_str()))
            .filter_map(|(i, _)| self.get(&cell(base.with(dimension, i as u16)), bound))
            .collect();
        let sum = items
            .iter()
            .try_fold(Decimal::ZERO, |sum, o| sum.checked_add(o.current().value))
            .ok_or(Overflow { figure: "sumOfItems" });
        let residual = match (&total, sum) {
            (None, _) => Ok(None),
            (Some(t), Ok(s)) => t
                .current()
                .value
                .checked_sub(s)
                .map(Some)
                .ok_or(Overflow { figure: "residual" }),
            (Some(_), Err(e)) => Err(e),
        };
        let overflow = sum.err().or(residual.err());
        Breakdown {
            total,
            items,
            sum_of_items: sum.unwrap_or_default(),
            residual: residual.unwrap_or_default(),
            overflow,
        }
    }
}

/// One dimension's items under a total, with what they leave unexplained.
#[derive(Debug, Clone)]
pub struct Breakdown<'a> {
    pub total: Option<ObservationAt<'a>>,
    pub items: Vec<ObservationAt<'a>>,
    pub sum_of_items: Decimal,
    /// `total - sum_of_items`: the part no listed item covers ("other").
    pub residual: Option<Decimal>,
    /// Set when the sum or the residual overflowed; they are then zero and `None`, and must
    /// not be shown.
    pub overflow: Option<Overflow>,
}

#[cfg(test)]
mod tests;
