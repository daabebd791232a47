//! Events: the facts the ledger records, named in the past tense.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dataset::Dataset;
use super::release::Release;
use super::schedule::{Schedule, Withdrawal};

/// Something that happened. Events are never changed or removed once recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Adjacently tagged with the tag first, so decoding streams instead of buffering the payload.
#[serde(tag = "type", content = "data")]
pub enum Event {
    DatasetDefined {
        dataset: Dataset,
    },
    ReleasePublished {
        release: Release,
    },
    /// A new definition of a recorded dataset: its name, description or labels changed, or
    /// codes appended (see `Dataset::check_amends`).
    DatasetAmended {
        dataset: Dataset,
    },
    /// A release committed to before its publication time: only its commitment and public
    /// details (see `domain::schedule`).
    ReleaseScheduled {
        schedule: Schedule,
    },
    /// A scheduled release made public at its time: the release and the salt that open the
    /// commitment. It applies as a published release.
    ReleaseRevealed {
        release: Release,
        salt: String,
        commitment: String,
    },
    /// A scheduled release withdrawn before its time; its figures are never revealed.
    ScheduledReleaseWithdrawn {
        withdrawal: Withdrawal,
    },
}

/// What an event is about. The writer records at most one event per subject in a group
/// commit: a second, identical one is a duplicate of the first, a different one a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Dataset(String),
    Release(Uuid),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Dataset(id) => write!(f, "dataset `{id}`"),
            Subject::Release(id) => write!(f, "release {id}"),
        }
    }
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DatasetDefined { .. } => "DatasetDefined",
            Event::ReleasePublished { .. } => "ReleasePublished",
            Event::DatasetAmended { .. } => "DatasetAmended",
            Event::ReleaseScheduled { .. } => "ReleaseScheduled",
            Event::ReleaseRevealed { .. } => "ReleaseRevealed",
            Event::ScheduledReleaseWithdrawn { .. } => "ScheduledReleaseWithdrawn",
        }
    }

    pub fn subject(&self) -> Subject {
        match self {
            Event::DatasetDefined { dataset } => Subject::Dataset(dataset.id.clone()),
            Event::ReleasePublished { release } => Subject::Release(release.id),
            Event::DatasetAmended { dataset } => Subject::Dataset(dataset.id.clone()),
            Event::ReleaseScheduled { schedule } => Subject::Release(schedule.id),
            Event::ReleaseRevealed { release, .. } => Subject::Release(release.id),
            Event::ScheduledReleaseWithdrawn { withdrawal } => Subject::Release(withdrawal.id),
        }
    }

    /// The release, for a `ReleasePublished` or a `ReleaseRevealed`.
    pub fn release(&self) -> Option<&Release> {
        match self {
            Event::ReleasePublished { release } | Event::ReleaseRevealed { release, .. } => Some(release),
            _ => None,
        }
    }

    /// The dataset the event is about.
    pub fn dataset(&self) -> &str {
        match self {
            Event::DatasetDefined { dataset } | Event::DatasetAmended { dataset } => &dataset.id,
            Event::ReleasePublished { release } | Event::ReleaseRevealed { release, .. } => &release.dataset,
            Event::ReleaseScheduled { schedule } => &schedule.dataset,
            Event::ScheduledReleaseWithdrawn { withdrawal } => &withdrawal.dataset,
        }
    }

    /// The release id, for a `ReleasePublished` or a `ReleaseRevealed`.
    pub fn release_id(&self) -> Option<Uuid> {
        self.release().map(|r| r.id)
    }
}
