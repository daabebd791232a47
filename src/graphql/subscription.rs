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
    /// The connection's turn to build a result, held until this event is resolved.
    #[graphql(skip)]
    pub turn: Option<Arc<OwnedSemaphorePermit>>,
}

/// One connection's turn to build a result, put in the request data by the WebSocket
/// layer. A release resolved with all its figures takes megabytes while it is built (the
/// event read and parsed, the figures, the response tree), so the `releasePublished`
/// subscriptions of one connection (aliases of one operation included) build their
/// results one at a time: what a connection holds while its client does not read is then
/// its byte budget of finished results and about one result being built, however many
/// subscriptions it has.
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
}

impl ReleaseCursor {
    /// Moves up to a chunk of matching releases after `self.after` into `ready`.
    fn catch_up(&mut self) {
        let p = self.ledger.read();
        let start = p.releases_after(self.after);
        self.behind = false;
        for (i, r) in p.releases()[start..].iter().enumerate() {
            self.after = r.revision;
            if self.dataset.as_ref().is_none_or(|d| *d == r.dataset) {
                self.ready.push_back(ReleaseEvent {
                    revision: r.revision,
                    release: Release::from_info((start + i) as u32, r),
                    turn: None,
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
        let p = self.ledger.read();
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

    /// After falling behind: rebuild what was missed from the log and the projection.
    fn catch_up(&mut self) -> Result<(), crate::ledger::LedgerError> {
        let releases: Vec<(u32, u64)> = {
            let p = self.ledger.read();
            let start = p.releases_after(self.after);
            p.releases()[start..]
                .iter()
                .enumerate()
                .filter(|(_, r)| r.dataset == self.dataset)
                .map(|(i, r)| ((start + i) as u32, r.revision))
                .collect()
        };
        for (position, revision) in releases {
            let Some(release) = self.ledger.release_event(revision)? else {
                continue;
            };
            let revised = {
                let p = self.ledger.read();
                let Some(ds) = p.dataset(&self.dataset) else { break };
                // What the live notice said: read the figure as the ledger had it right after
                // this release (a back-fill placed before later versions changed no current
                // value, and later back-fills must not renumber what was sent).
                let Ok(then) = p.bound(Some(crate::projection::AsOf::Revision(revision))) else {
                    break;
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
        }
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
            if ledger.read().dataset(d).is_none() {
                return Err(error::coded(
                    error::ErrorCode::NotFound,
                    format!("dataset `{}` not found", d.as_str()),
                ));
            }
        }
        // Subscribe before reading the head, so nothing recorded in between is missed.
        let rx = ledger.subscribe();
        let head = ledger.read().head().revision;
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
        };
        cursor.catch_up();
        Ok(stream::unfold(cursor, |mut c| async move {
            loop {
                if let Some(mut e) = c.ready.pop_front() {
                    if let Some(turn) = &c.turn {
                        let permit = turn.0.clone().acquire_owned().await.ok()?;
                        e.turn = Some(Arc::new(permit));
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
            let p = ledger.read();
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
        let after = ledger.read().head().revision;
        let cursor = RevisionCursor {
            ledger,
            rx,
            after,
            dataset: dataset.0,
            key,
            ready: VecDeque::new(),
        };
        Ok(stream::unfold(cursor, |mut c| async move {
            loop {
                if let Some(e) = c.ready.pop_front() {
                    return Some((e, c));
                }
                match c.rx.recv().await {
                    Ok(n) => c.take(&n),
                    Err(RecvError::Lagged(_)) => {
                        if let Err(e) = c.catch_up() {
                            tracing::warn!(error = %e, "observationRevised subscriber could not catch up");
                            return None;
                        }
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }))
    }
}
