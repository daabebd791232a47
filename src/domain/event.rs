//! Events: the facts the ledger records, named in the past tense.

use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::release::Release;

/// Something that happened. Events are never changed or removed once recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Adjacently tagged with the tag first, so decoding streams instead of buffering the payload.
#[serde(tag = "type", content = "data")]
pub enum Event {
    DatasetDefined { dataset: Dataset },
    ReleasePublished { release: Release },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DatasetDefined { .. } => "DatasetDefined",
            Event::ReleasePublished { .. } => "ReleasePublished",
        }
    }
}
