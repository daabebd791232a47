//! What a write or a read of the ledger can fail with.

use crate::store::Damage;

/// A failed write or read, with the error class clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the ledger is read-only: {0}")]
    ReadOnly(String),
    #[error("storage failure: {0}")]
    Storage(String),
}

impl LedgerError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        LedgerError::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The `extensions.code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::BadInput { .. } => "BAD_USER_INPUT",
            LedgerError::Conflict(_) => "CONFLICT",
            LedgerError::NotFound(_) => "NOT_FOUND",
            LedgerError::ReadOnly(_) => "FORBIDDEN",
            LedgerError::Storage(_) => "INTERNAL_SERVER_ERROR",
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
}

pub(super) fn writer_gone() -> LedgerError {
    LedgerError::Storage("the ledger is shutting down".into())
}

pub(super) fn poisoned() -> LedgerError {
    LedgerError::Storage("the ledger stopped taking writes after an inconsistency; restart the server".into())
}
