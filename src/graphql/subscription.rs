//! The subscription root.
//!
//! The broadcast channel from the writer is only a wake-up call: the projection is the
//! source of truth. A stream keeps the revision it has delivered up to and, when woken (or
//! when it fell behind and the channel dropped notices for it), reads every later release
//! from the projection. So a replay that races with new releases delivers each one exactly
//! once and in order, and a slow subscriber never holds up the writer or anybody else.

use std::collections::VecDeque;
use std::sync::Arc;

use async_graphql::{Context, Result, SimpleObject, Subscription, ID};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{self, bad_input};
use super::ledger_of;
use super::types::{cell_key, ObservationVersion, Release};
use crate::ledger::{Ledger, Notice};
use crate::projection::{Applied, KeyPattern};

#[derive(Default)]
pub struct SubscriptionRoot;

/// A release that was recorded, with the revision to resume from.
#[derive(SimpleObject, Clone)]
pub struct ReleaseEvent {
    /// Revision of the event that recorded the release; pass it as `afterRevision` to resume.
    pub revision: u64,
    pub release: Release,
}

/// One connection's turn to build a result, put in the request data by the WebSocket
/// layer. A release resolved with all its figures takes megabytes while it is built (the
/// event read and parsed, the figures, the response tree, the message), so the
/// `releasePublished` subscriptions of one connection (aliases of one operation included)
/// build their results one at a time. A subscription holds the turn from the moment it
/// starts building a result until its stream is asked for the next one, which the
/// connection does only once the message is queued within its byte budget: so a message
/// waiting for room in the budget keeps the other subscriptions from building theirs, and
/// what a connection holds while its client does not read is its byte budget of queued
/// messages and one more result, however many subscriptions it has.
#[derive(Clone)]
pub struct BuildTurn(Arc<Semaphore>);

impl BuildTurn {
    pub fn new() -> Self {
        BuildTurn(Arc::new(Semaphore::new(1)))
    }
}

impl Default for BuildTurn {
    fn default() -> Self {
        BuildTurn::new()
    }
}

/// Releases replayed per step, so a long replay never builds a huge queue.
const REPLAY_CHUNK: usize = 256;

struct ReleaseCursor {
    ledger: Ledger,
    rx: tokio::sync::broadcast::Receiver<Arc<Notice>>,
    after: u64,
    dataset: Option<String>,
    ready: VecDeque<ReleaseEvent>,
    /// True while the projection may hold releases after `after` not yet queued.
    behind: bool,
    turn: Option<BuildTurn>,
    /// The turn taken for the last event yielded, given back when the next one is asked for.
    held: Option<OwnedSemaphorePermit>,
}

impl ReleaseCursor {
    /// Moves up to a chunk of matching releases after `self.after` into `ready`.
    fn catch_up(&mut self) {
        let p = self.ledger.read_in_place();
        let start = p.releases_after(self.after);
        self.behind = false;
        for (i, r) in p.releases()[start..].iter().enumerate() {
            self.after = r.revision;
            if self.dataset.as_ref().is_none_or(|d| *d == r.dataset) {
                self.ready.push_back(ReleaseEvent {
                    revision: r.revision,
                    release: Release::from_info((start + i) as u32, r),
                });
                if self.ready.len() >= REPLAY_CHUNK {
                    self.behind = true;
                    return;
                }
            }
        }
        self.after = self.after.max(p.head().revision);
    }
}

/// Figures revised by the release at position `release`, matching a dataset and key pattern.
struct RevisionCursor {
    ledger: Ledger,
    rx: tokio::sync::broadcast::Receiver<Arc<Notice>>,
    after: u64,
    dataset: String,
    key: Option<KeyPattern>,
    ready: VecDeque<ObservationVersion>,
    /// After falling behind: the releases of the dataset (position, revision) still to be
    /// rebuilt, one at a time as the client takes their figures.
    missed: VecDeque<(u32, u64)>,
}

impl RevisionCursor {
    fn take(&mut self, notice: &Notice) {
        if notice.revision <= self.after {
            return;
        }
        self.after = notice.revision;
        let Applied::ReleasePublished { release, revised } = &notice.applied else {
            return;
        };
        let p = self.ledger.read_in_place();
        let info = p.release_at(*release);
        if info.dataset != self.dataset {
            return;
        }
        let Some(ds) = p.dataset(&self.dataset) else { return };
        for f in revised {
            let Ok(cell) = cell_key(ds, &f.key, f.period, &f.measure) else {
                continue;
            };
            if self.key.as_ref().is_some_and(|k| !k.matches(&cell.key)) {
                continue;
            }
            self.ready.push_back(ObservationVersion {
                dataset: self.dataset.clone(),
                key: f.key.clone(),
                period: f.period,
                measure: f.measure.clone(),
                version: f.version,
                revision: info.revision,
                status: info.status.into(),
                value: f.value,
                previous_value: Some(f.previous),
                published_at: info.published_at,
                recorded_at: info.recorded_at,
                backfilled: info.backfilled,
                revision_reason: info.revision_reason.as_ref().map(Into::into),
                release_position: *release,
            });
        }
    }

    /// After falling behind: lists the releases of the dataset that were missed, rebuilt
    /// later one at a time ([`RevisionCursor::rebuild_next`]), so that a long lag is never
    /// turned into one long queue of figures.
    fn fall_behind(&mut self) {
        let from = self.missed.back().map_or(self.after, |&(_, revision)| revision);
        let p = self.ledger.read_in_place();
        let start = p.releases_after(from);
        self.missed.extend(
            p.releases()[start..]
                .iter()
                .enumerate()
                .filter(|(_, r)| r.dataset == self.dataset)
                .map(|(i, r)| ((start + i) as u32, r.revision)),
        );
    }

    /// Rebuilds the figures of the next missed release from the log and the projection.
    fn rebuild_next(&mut self) -> Result<(), crate::ledger::LedgerError> {
        let Some((position, revision)) = self.missed.pop_front() else {
            return Ok(());
        };
        let Some(release) = self.ledger.release_event(revision)? else {
            return Ok(());
        };
        let revised = {
            let p = self.ledger.read_in_place();
            let Some(ds) = p.dataset(&self.dataset) else {
                return Ok(());
            };
            // What the live notice said: read the figure as the ledger had it right after
            // this release (a back-fill placed before later versions changed no current
            // value, and later back-fills must not renumber what was sent).
            let Ok(then) = p.bound(Some(crate::projection::AsOf::Revision(revision))) else {
                return Ok(());
            };
            release
                .observations
                .iter()
                .filter_map(|o| {
                    let cell = cell_key(ds, &o.key, o.period, &o.measure).ok()?;
                    let at = ds.get(&cell, then)?;
                    let n = at.versions.len();
                    if at.current().release != position || n < 2 {
                        return None;
                    }
                    let (version, previous) = (n as u32, at.versions[n - 2].value);
                    (previous != o.value).then(|| crate::projection::RevisedFigure {
                        key: o.key.clone(),
                        period: o.period,
                        measure: o.measure.clone(),
                        previous,
                        value: o.value,
                        version,
                    })
                })
                .collect()
        };
        self.take(&Notice {
            revision,
            applied: Applied::ReleasePublished {
                release: position,
                revised,
            },
        });
        Ok(())
    }
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Releases as they are recorded. With `afterRevision`, first replays every release
    /// recorded after that revision, in order, then continues live with no gap and no
    /// duplicate. Keep the last `revision` received to resume after a disconnection.
    async fn release_published(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only releases of this dataset.")] dataset: Option<ID>,
        #[graphql(desc = "Replay releases recorded after this revision first (0 replays all).")] after_revision: Option<
            i64,
        >,
    ) -> Result<impl Stream<Item = ReleaseEvent>> {
        let ledger = ledger_of(ctx).clone();
        if let Some(d) = &dataset {
            if ledger.read_on_runtime(|p| p.dataset(d).is_none()) {
                return Err(error::coded(
                    error::ErrorCode::NotFound,
                    format!("dataset `{}` not found", d.as_str()),
                ));
            }
        }
        // Subscribe before reading the head, so nothing recorded in between is missed.
        let rx = ledger.subscribe();
        let head = ledger.read_on_runtime(|p| p.head().revision);
        let after = match after_revision {
            Some(r) if r < 0 => return Err(bad_input(format!("afterRevision must not be negative (got {r})"))),
            // Not clamped to the head: a client resuming from a node that has seen more than
            // this one must not be sent revisions it already has.
            Some(r) => r as u64,
            None => head,
        };
        let mut cursor = ReleaseCursor {
            ledger,
            rx,
            after,
            dataset: dataset.map(|d| d.0),
            ready: VecDeque::new(),
            behind: true,
            turn: ctx.data_opt::<BuildTurn>().cloned(),
            held: None,
        };
        cursor.catch_up();
        Ok(stream::unfold(cursor, |mut c| async move {
            // Asked for the next event: the last one is built and its message queued.
            c.held = None;
            loop {
                if let Some(e) = c.ready.pop_front() {
                    if let Some(turn) = &c.turn {
                        c.held = Some(turn.0.clone().acquire_owned().await.ok()?);
                    }
                    return Some((e, c));
                }
                if c.behind {
                    c.catch_up();
                    continue;
                }
                match c.rx.recv().await {
                    Ok(n) if n.revision <= c.after => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => c.catch_up(),
                    Err(RecvError::Closed) => return None,
                }
            }
        }))
    }

    /// Each change of a figure's value (a new version that differs from the previous one),
    /// with the previous and new value, as releases are recorded.
    async fn observation_revised(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Series key or SDMX key pattern, e.g. `_T._T._T` or `IPR..`.")] key: Option<String>,
    ) -> Result<impl Stream<Item = ObservationVersion>> {
        let ledger = ledger_of(ctx).clone();
        let key = {
            let p = ledger.read_in_place();
            let ds = p.dataset(&dataset).ok_or_else(|| {
                error::coded(
                    error::ErrorCode::NotFound,
                    format!("dataset `{}` not found", dataset.as_str()),
                )
            })?;
            match &key {
                Some(k) => Some(KeyPattern::parse(&ds.def, k).map_err(|e| bad_input(format!("key: {e}")))?),
                None => None,
            }
        };
        let rx = ledger.subscribe();
        let after = ledger.read_on_runtime(|p| p.head().revision);
        let cursor = RevisionCursor {
            ledger,
            rx,
            after,
            dataset: dataset.0,
            key,
            ready: VecDeque::new(),
            missed: VecDeque::new(),
        };
        Ok(stream::unfold(cursor, |mut c| async move {
            loop {
                if let Some(e) = c.ready.pop_front() {
                    return Some((e, c));
                }
                if !c.missed.is_empty() {
                    if let Err(e) = c.rebuild_next() {
                        tracing::warn!(error = %e, "observationRevised subscriber could not catch up");
                        return None;
                    }
                    continue;
                }
                match c.rx.recv().await {
                    Ok(n) => c.take(&n),
                    Err(RecvError::Lagged(_)) => c.fall_behind(),
                    Err(RecvError::Closed) => return None,
                }
            }
        }))
    }
}
