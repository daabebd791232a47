//! Pure domain types: no storage, no GraphQL.

pub mod dataset;
pub mod event;
pub mod period;
pub mod release;
pub mod schedule;
pub mod text;
pub mod value;

pub use dataset::{Code, Dataset, DatasetError, Dimension, KeyError, SeriesKey, TOTAL};
pub use event::{Event, Subject};
pub use period::{Frequency, Period, PeriodError};
pub use release::{
    Observation, ObservationDraft, Parsed, Refusal, Release, ReleaseDraft, ReleaseError, ReleaseStatus, RevisionReason,
    RevisionReasonKind,
};
pub use schedule::{Schedule, Sealed, Withdrawal};
pub use value::{parse_value, ValueError, MAX_VALUE};
