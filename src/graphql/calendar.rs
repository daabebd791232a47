//! The release calendar: scheduled releases (committed to, not public yet), and those
//! published, revealed or withdrawn, by publication time.

use async_graphql::{Enum, SimpleObject, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::types::{Release, ReleaseStatus};
use crate::projection::{Projection, ScheduleInfo, ScheduleState};

/// Where a release of the calendar stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CalendarState {
    /// Committed to and not public yet: only its commitment is recorded.
    Scheduled,
    /// Public: published, or revealed at its time.
    Published,
    /// Withdrawn before its time; its figures were never revealed.
    Withdrawn,
}

/// One release of a dataset's calendar.
#[derive(SimpleObject, Clone)]
pub struct CalendarEntry {
    pub release_id: Uuid,
    pub dataset: ID,
    pub title: String,
    pub status: ReleaseStatus,
    /// When it is (or was) public.
    pub published_at: DateTime<Utc>,
    pub state: CalendarState,
    /// True for a release committed to before its time and revealed at it.
    pub scheduled: bool,
    /// For a scheduled release: `SHA-256(salt || release JSON)` in hex, which its reveal
    /// opens (see the guide, "Scheduled releases").
    pub commitment: Option<String>,
    /// Revision of the event that committed to it (the last replacement's).
    pub scheduled_revision: Option<u64>,
    /// How many times it was replaced before its time.
    pub replaced: u32,
    /// Revision of the event that published, revealed or withdrew it.
    pub revision: Option<u64>,
    /// Why it was withdrawn, when the writer said.
    pub withdrawal_reason: Option<String>,
    /// The release, once public.
    pub release: Option<Release>,
}

impl CalendarEntry {
    fn of_schedule(p: &Projection, s: &ScheduleInfo) -> Self {
        let sch = &s.schedule;
        let (state, revision, reason) = match &s.state {
            ScheduleState::Pending => (CalendarState::Scheduled, None, None),
            ScheduleState::Revealed { revision } => (CalendarState::Published, Some(*revision), None),
            ScheduleState::Withdrawn { revision, reason } => {
                (CalendarState::Withdrawn, Some(*revision), reason.clone())
            }
        };
        CalendarEntry {
            release_id: sch.id,
            dataset: ID(sch.dataset.clone()),
            title: sch.title.clone(),
            status: sch.status.into(),
            published_at: sch.published_at,
            state,
            scheduled: true,
            commitment: Some(sch.commitment.clone()),
            scheduled_revision: Some(s.revision),
            replaced: s.replaced,
            revision,
            withdrawal_reason: reason,
            release: p.release(&sch.id).map(|(pos, info)| Release::from_info(pos, info)),
        }
    }
}

/// The calendar of `dataset` between `from` and `to` (inclusive), by publication time, at
/// most `limit` entries.
pub fn calendar(
    p: &Projection,
    dataset: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: usize,
) -> Vec<CalendarEntry> {
    let within = |t: DateTime<Utc>| from.is_none_or(|f| t >= f) && to.is_none_or(|u| t <= u);
    let mut entries: Vec<CalendarEntry> = p
        .schedules()
        .iter()
        .filter(|s| s.schedule.dataset == dataset && within(s.schedule.published_at))
        .map(|s| CalendarEntry::of_schedule(p, s))
        .collect();
    entries.extend(
        p.releases()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.dataset == dataset && within(r.published_at) && p.schedule(&r.id).is_none())
            .map(|(pos, r)| CalendarEntry {
                release_id: r.id,
                dataset: ID(r.dataset.clone()),
                title: r.title.clone(),
                status: r.status.into(),
                published_at: r.published_at,
                state: CalendarState::Published,
                scheduled: false,
                commitment: None,
                scheduled_revision: None,
                replaced: 0,
                revision: Some(r.revision),
                withdrawal_reason: None,
                release: Some(Release::from_info(pos as u32, r)),
            }),
    );
    entries.sort_by_key(|e| (e.published_at, e.scheduled_revision.or(e.revision)));
    entries.truncate(limit);
    entries
}
