//! What a write or a read of the ledger can fail with.

use std::sync::Arc;

use crate::error_code::ErrorCode;
use crate::store::{Damage, StoreError};

/// A failed write or read, with the error class clients see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the ledger is read-only: {0}")]
    ReadOnly(String),
    /// The request's deadline passed before the write reached the writer (see
    /// [`super::WriteGate`]): nothing was recorded.
    #[error("{0}")]
    TimedOut(String),
    #[error("storage failure: {message}")]
    Storage {
        message: String,
        /// The store's error, when there is one. Shared, so that one failure can answer
        /// every caller of a group.
        #[source]
        source: Option<Arc<StoreError>>,
    },
}

impl PartialEq for LedgerError {
    /// Equal class and message; the source of a storage failure is not compared.
    fn eq(&self, other: &Self) -> bool {
        use LedgerError::*;
        match (self, other) {
            (BadInput { field: f1, message: m1 }, BadInput { field: f2, message: m2 }) => f1 == f2 && m1 == m2,
            (Conflict(a), Conflict(b))
            | (NotFound(a), NotFound(b))
            | (ReadOnly(a), ReadOnly(b))
            | (TimedOut(a), TimedOut(b)) => a == b,
            (Storage { message: a, .. }, Storage { message: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for LedgerError {}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::Storage {
            message: e.to_string(),
            source: Some(Arc::new(e)),
        }
    }
}

impl LedgerError {
    /// A storage failure described by the ledger itself, without an underlying store error.
    pub fn storage(message: impl Into<String>) -> Self {
        LedgerError::Storage {
            message: message.into(),
            source: None,
        }
    }

    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        LedgerError::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The class of error clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            LedgerError::BadInput { .. } => ErrorCode::BadUserInput,
            LedgerError::Conflict(_) => ErrorCode::Conflict,
            LedgerError::NotFound(_) => ErrorCode::NotFound,
            LedgerError::ReadOnly(_) => ErrorCode::Forbidden,
            LedgerError::TimedOut(_) => ErrorCode::LimitExceeded,
            LedgerError::Storage { .. } => ErrorCode::Unavailable,
        }
    }
}

impl From<crate::domain::ReleaseError> for LedgerError {
    fn from(e: crate::domain::ReleaseError) -> Self {
        LedgerError::BadInput {
            field: e.field,
            message: e.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the event log is damaged at {0}; run `tradeledger verify`, or start read-only")]
    Damaged(Damage),
    #[error("storage failure: {0}")]
    Storage(String),
    /// A projection snapshot that the log disagrees with; fold the whole log instead.
    #[error("snapshot not used: {0}")]
    Snapshot(String),
}

pub(super) fn writer_gone() -> LedgerError {
    LedgerError::storage("the ledger is shutting down")
}

pub(super) fn poisoned() -> LedgerError {
    LedgerError::storage("the ledger stopped taking writes after an inconsistency; restart the server")
}
