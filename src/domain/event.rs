//! Events: the facts the ledger records, named in the past tense.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dataset::Dataset;
use super::release::Release;

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
        }
    }

    pub fn subject(&self) -> Subject {
        match self {
            Event::DatasetDefined { dataset } => Subject::Dataset(dataset.id.clone()),
            Event::ReleasePublished { release } => Subject::Release(release.id),
            Event::DatasetAmended { dataset } => Subject::Dataset(dataset.id.clone()),
        }
    }

    /// The release, for a `ReleasePublished`.
    pub fn release(&self) -> Option<&Release> {
        match self {
            Event::ReleasePublished { release } => Some(release),
            _ => None,
        }
    }

    /// The release id, for a `ReleasePublished`.
    pub fn release_id(&self) -> Option<Uuid> {
        self.release().map(|r| r.id)
    }
}
