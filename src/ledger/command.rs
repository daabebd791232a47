//! Commands decide, events apply.
//!
//! A [`Command`] is what a caller asks the ledger to record. Its [`Command::decide`] looks at
//! the projection (and, for an idempotent retry, at the recorded event) and returns a
//! [`Decision`]: the event to append, or an answer without writing (a duplicate of something
//! recorded, or a refusal). The writer commits the events without knowing their kinds, and
//! [`Projection::apply`] is the only place that interprets them.
//!
//! Adding an event kind takes one variant of [`Event`], one variant here with its `decide`
//! arm, one arm in the projection's `apply`, and the schema.

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{Dataset, Event, Frequency, Release, ReleaseDraft, Schedule, Withdrawal};
use crate::projection::Projection;
use crate::projection::ScheduleState;
use crate::store::{decode, Hash, LogStore, StoredEvent};

use super::{Committed, LedgerError};

/// A write, validated against its own rules, waiting to be decided against the ledger.
/// Cloned to decide it again when another node appended first (a shared log).
#[derive(Debug, Clone)]
pub(super) enum Command {
    DefineDataset(Dataset),
    /// A release to validate against the dataset in the projection and record; its id is
    /// set.
    PublishRelease(ReleaseDraft),
    AmendDataset(Dataset),
    /// Commits to a release to be revealed at its publication time (its content sealed beside
    /// the log already).
    ScheduleRelease(Schedule),
    /// Reveals a scheduled release at its time.
    RevealRelease {
        release: Release,
        salt: String,
        commitment: String,
    },
    WithdrawSchedule(Withdrawal),
}

/// What a command decided.
#[derive(Debug)]
pub(super) enum Decision {
    /// Answer now, writing nothing: an error, or a duplicate of something already durable.
    Answer(Result<Committed, LedgerError>),
    /// Append this event. The writer still checks it against the events of its group and the
    /// caller's expected revision.
    Append(Event),
}

/// What a command is decided against.
pub(super) struct Context<'a> {
    pub state: &'a Projection,
    pub store: &'a dyn LogStore,
    /// The writer's clock when the group is decided.
    pub now: DateTime<Utc>,
    /// How far in the future a `publishedAt` may be (clocks differ).
    pub max_clock_skew: chrono::Duration,
    /// What the releases decided earlier in the same group change, which the projection does
    /// not show yet: per dataset, the latest publication time and the frequency.
    pub group: RefCell<HashMap<String, GroupDataset>>,
}

/// What the releases decided so far in a group did to one dataset: its latest publication
/// time and its frequency.
pub(super) type GroupDataset = (Option<DateTime<Utc>>, Option<Frequency>);

impl Command {
    /// Decides against the ledger as it stands before the current group. Idempotency comes
    /// first: a retry of a write that succeeded gets its original answer even though the head
    /// has moved since (the writer checks the expected revision after).
    pub(super) fn decide(self, ctx: &Context<'_>) -> Decision {
        match self {
            Command::DefineDataset(d) => match ctx.state.dataset(&d.id) {
                Some(existing) if *existing.def == d => Decision::Answer(ctx.duplicate_of(existing.revision, None)),
                Some(existing) => Decision::Answer(Err(LedgerError::Conflict(format!(
                    "dataset `{}` is already defined (revision {}) with different content",
                    d.id, existing.revision
                )))),
                None => Decision::Append(Event::DatasetDefined { dataset: d }),
            },
            Command::PublishRelease(draft) => {
                // Validated here, against the projection the writer reads once for its group.
                let mut r = match super::definition_of(ctx.state, &draft.dataset)
                    .and_then(|(def, frequency)| draft.validate_at(&def, frequency).map_err(LedgerError::from))
                {
                    Ok(r) => r,
                    Err(e) => return Decision::Answer(Err(e)),
                };
                if let Some(s) = ctx.state.schedule(&r.id).filter(|_| ctx.state.release(&r.id).is_none()) {
                    return Decision::Answer(Err(LedgerError::Conflict(format!(
                        "release {} is a scheduled release ({}); it cannot also be published directly",
                        r.id,
                        describe(&s.state)
                    ))));
                }
                let Some((_, info)) = ctx.state.release(&r.id) else {
                    return match ctx.check_publication(&mut r) {
                        Ok(()) => Decision::Append(Event::ReleasePublished { release: r }),
                        Err(e) => Decision::Answer(Err(e)),
                    };
                };
                let revision = info.revision;
                Decision::Answer(ctx.recorded(revision).and_then(|original| {
                    if original.envelope.event.release().is_some_and(|o| o.same_content(&r)) {
                        Ok(Committed {
                            revision,
                            hash: original.hash,
                            duplicate: true,
                            release: Some(r.id),
                        })
                    } else {
                        Err(LedgerError::Conflict(format!(
                            "release {} was already recorded at revision {revision} with different content",
                            r.id
                        )))
                    }
                }))
            }
            Command::AmendDataset(mut d) => {
                let Some(existing) = ctx.state.dataset(&d.id) else {
                    return Decision::Answer(Err(LedgerError::NotFound(format!("dataset `{}` not found", d.id))));
                };
                // A definition sent without its frequency keeps the recorded one.
                d.frequency = d.frequency.or(existing.def.frequency);
                if *existing.def == d {
                    // Nothing to change: a retry of an amendment already recorded.
                    return Decision::Answer(ctx.duplicate_of(existing.def_revision, None));
                }
                if let Some(f) = d.frequency.filter(|_| existing.def.frequency.is_none()) {
                    if let Some(other) = existing.frequencies().into_iter().find(|&g| g != f) {
                        return Decision::Answer(Err(LedgerError::bad_input(
                            "frequency",
                            format!(
                                "dataset `{}` already has {} figures; it cannot become {} (FREQ {})",
                                d.id,
                                other.name(),
                                f.name(),
                                f.code()
                            ),
                        )));
                    }
                }
                match d.check_amends(&existing.def) {
                    Ok(()) => Decision::Append(Event::DatasetAmended { dataset: d }),
                    Err(e) => Decision::Answer(Err(LedgerError::bad_input("input", e.to_string()))),
                }
            }
            Command::ScheduleRelease(schedule) => ctx.decide_schedule(schedule),
            Command::RevealRelease {
                release,
                salt,
                commitment,
            } => {
                let id = release.id;
                match ctx.state.schedule(&id).map(|s| (&s.state, &s.schedule)) {
                    Some((ScheduleState::Pending, s)) if s.commitment == commitment => {
                        if ctx.now < s.published_at {
                            return Decision::Answer(Err(LedgerError::Conflict(format!(
                                "release {id} is scheduled for {}; it is not revealed before",
                                rfc3339(s.published_at)
                            ))));
                        }
                        if let Err(why) = crate::domain::schedule::check_reveal(s, &salt, &release) {
                            return Decision::Answer(Err(LedgerError::Conflict(format!(
                                "release {id} does not open its commitment: {why}"
                            ))));
                        }
                        Decision::Append(Event::ReleaseRevealed {
                            release,
                            salt,
                            commitment,
                        })
                    }
                    Some((ScheduleState::Revealed { revision }, s)) if s.commitment == commitment => {
                        Decision::Answer(ctx.duplicate_of(*revision, Some(id)))
                    }
                    _ => Decision::Answer(Err(LedgerError::Conflict(format!(
                        "release {id} is not scheduled under commitment {commitment}"
                    )))),
                }
            }
            Command::WithdrawSchedule(w) => {
                let id = w.id;
                match ctx.state.schedule(&id).map(|s| (&s.state, &s.schedule)) {
                    None => Decision::Answer(Err(LedgerError::NotFound(format!("release {id} is not scheduled")))),
                    Some((ScheduleState::Withdrawn { revision, .. }, s)) if s.commitment == w.commitment => {
                        Decision::Answer(ctx.duplicate_of(*revision, Some(id)))
                    }
                    Some((ScheduleState::Pending, s)) if s.commitment == w.commitment => {
                        if ctx.now >= s.published_at {
                            return Decision::Answer(Err(LedgerError::Conflict(format!(
                                "release {id} was due at {} and is being revealed; publish a revision instead",
                                rfc3339(s.published_at)
                            ))));
                        }
                        Decision::Append(Event::ScheduledReleaseWithdrawn { withdrawal: w })
                    }
                    Some((ScheduleState::Pending, _)) => Decision::Answer(Err(LedgerError::Conflict(format!(
                        "release {id} was replaced meanwhile; withdraw it again"
                    )))),
                    Some((state, _)) => Decision::Answer(Err(LedgerError::Conflict(format!(
                        "release {id} cannot be withdrawn: {}",
                        describe(state)
                    )))),
                }
            }
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn describe(state: &ScheduleState) -> String {
    match state {
        ScheduleState::Pending => "it is scheduled and not revealed yet".to_owned(),
        ScheduleState::Revealed { revision } => format!("it was revealed at revision {revision}"),
        ScheduleState::Withdrawn { revision, .. } => format!("it was withdrawn at revision {revision}"),
    }
}

impl Context<'_> {
    /// The rules of the two time axes and of the dataset's frequency, for a release about to
    /// be recorded; marks it a back-fill when it is one. See `docs/guide.md`, "Time".
    fn check_publication(&self, r: &mut Release) -> Result<(), LedgerError> {
        let ds = self
            .state
            .dataset(&r.dataset)
            .ok_or_else(|| LedgerError::bad_input("dataset", format!("unknown dataset `{}`", r.dataset)))?;
        let mut group = self.group.borrow_mut();
        let (group_latest, group_frequency) = group.get(&r.dataset).copied().unwrap_or_default();
        if r.published_at > self.now + self.max_clock_skew {
            return Err(LedgerError::bad_input(
                "publishedAt",
                format!(
                    "{} is in the future (the server's clock says {}, and allows {} s of clock skew); \
                     a release is recorded once it is public; to commit to one before its time, use scheduleRelease",
                    r.published_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    self.max_clock_skew.num_seconds()
                ),
            ));
        }
        let latest = ds.latest_published().max(group_latest);
        let backdated = latest.is_some_and(|l| r.published_at < l);
        if backdated && !r.backfill {
            return Err(LedgerError::bad_input(
                "publishedAt",
                format!(
                    "{} is earlier than the latest publication of dataset {} ({}): recording it would change \
                     what was public at earlier times. A release of older figures (an agency's archive) must \
                     say backfill: true",
                    r.published_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    r.dataset,
                    latest
                        .expect("backdated")
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            ));
        }
        r.backfill = backdated;
        let frequency = ds.frequency().or(group_frequency);
        let want = frequency.or(r.observations.first().map(|o| o.period.frequency()));
        if let Some(o) = r.observations.iter().find(|o| Some(o.period.frequency()) != want) {
            return Err(LedgerError::bad_input(
                "observations",
                format!(
                    "{} {}: {}",
                    o.key,
                    o.period,
                    crate::domain::release::wrong_frequency(o.period, &r.dataset, want.expect("found one"))
                ),
            ));
        }
        let entry = group.entry(r.dataset.clone()).or_default();
        if !backdated {
            entry.0 = Some(r.published_at).max(entry.0);
        }
        entry.1 = entry.1.or(r.observations.first().map(|o| o.period.frequency()));
        Ok(())
    }

    /// A new schedule, or the replacement of a pending one.
    fn decide_schedule(&self, schedule: Schedule) -> Decision {
        let id = schedule.id;
        if let Some((_, info)) = self.state.release(&id) {
            return Decision::Answer(Err(LedgerError::Conflict(format!(
                "release {id} was already published at revision {}",
                info.revision
            ))));
        }
        if schedule.published_at <= self.now {
            return Decision::Answer(Err(LedgerError::bad_input(
                "publishedAt",
                format!(
                    "{} is not in the future (the server's clock says {}); publish the release instead",
                    rfc3339(schedule.published_at),
                    rfc3339(self.now)
                ),
            )));
        }
        if schedule.published_at > self.now + crate::domain::schedule::MAX_SCHEDULE_AHEAD {
            return Decision::Answer(Err(LedgerError::bad_input(
                "publishedAt",
                format!(
                    "{} is more than {} days ahead",
                    rfc3339(schedule.published_at),
                    crate::domain::schedule::MAX_SCHEDULE_AHEAD.num_days()
                ),
            )));
        }
        match (self.state.schedule(&id), &schedule.replaces) {
            (None, None) => Decision::Append(Event::ReleaseScheduled { schedule }),
            (None, Some(_)) => Decision::Answer(Err(LedgerError::NotFound(format!(
                "release {id} is not scheduled; there is nothing to replace"
            )))),
            (Some(s), Some(old)) if s.state == ScheduleState::Pending && s.schedule.commitment == *old => {
                Decision::Append(Event::ReleaseScheduled { schedule })
            }
            (Some(s), None) if s.state == ScheduleState::Pending => {
                Decision::Answer(Err(LedgerError::Conflict(format!(
                    "release {id} is already scheduled for {} with other content; replace it (replace: true) or \
                 withdraw it",
                    rfc3339(s.schedule.published_at)
                ))))
            }
            (Some(s), _) => Decision::Answer(Err(LedgerError::Conflict(format!(
                "release {id} cannot be scheduled: {}",
                describe(&s.state)
            )))),
        }
    }

    /// The answer to a retry of the write recorded at `revision`: its revision and hash,
    /// `duplicate: true`.
    fn duplicate_of(&self, revision: u64, release: Option<uuid::Uuid>) -> Result<Committed, LedgerError> {
        self.hash_of(revision).map(|hash| Committed {
            revision,
            hash,
            duplicate: true,
            release,
        })
    }

    /// The hash of the recorded event at `revision`.
    fn hash_of(&self, revision: u64) -> Result<Hash, LedgerError> {
        match self.store.get(revision) {
            Ok(Some(bytes)) if bytes.len() >= 32 => Ok(Hash(bytes[..32].try_into().expect("32 bytes"))),
            Ok(_) => Err(missing(revision)),
            Err(e) => Err(e.into()),
        }
    }

    /// The recorded event at `revision`, checked against the hash of the one before.
    fn recorded(&self, revision: u64) -> Result<StoredEvent, LedgerError> {
        let bytes = self
            .store
            .get(revision)
            .map_err(LedgerError::from)?
            .ok_or_else(|| missing(revision))?;
        let prev = if revision == 1 {
            Hash::GENESIS
        } else {
            self.hash_of(revision - 1)?
        };
        decode(revision, &bytes, &prev).map_err(|d| LedgerError::storage(d.to_string()))
    }
}

fn missing(revision: u64) -> LedgerError {
    LedgerError::storage(format!("revision {revision} is missing from the log"))
}
