//! The classes of error clients are told about, one enum for every layer.
//!
//! Lower layers say which class an error is ([`crate::ledger::LedgerError::code`]); the
//! strings clients see (GraphQL `extensions.code`) are written only at the GraphQL boundary,
//! in `graphql::error`.

/// Why a request failed, as a client can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input is malformed or breaks a rule; the message names what is wrong.
    BadUserInput,
    /// The write contradicts what is recorded (a different content for a known id, a stale
    /// expected revision).
    Conflict,
    NotFound,
    /// No (valid) credentials.
    Unauthenticated,
    /// Valid credentials that do not allow this, or a ledger that takes no writes.
    Forbidden,
    /// A bound on size, cost, time or concurrency was exceeded.
    LimitExceeded,
    /// The GraphQL document does not parse.
    GraphqlParseFailed,
    /// The GraphQL document does not validate against the schema.
    GraphqlValidationFailed,
    /// An HTTP method the endpoint does not serve.
    MethodNotAllowed,
    /// The store does not take writes for now (a full disk, an I/O error, a replicated log
    /// that lost its quorum): nothing was written; retry later. `GET /readyz` says when
    /// writes are taken again.
    Unavailable,
    /// The server failed (an inconsistency, a panic); not the client's fault.
    InternalServerError,
    /// A write reached the ledger's writer but the request's time ran out before its outcome
    /// was known: it may or may not be recorded. Retry it with the same id (given in
    /// `extensions.releaseId` or `extensions.datasetId`): a write that was recorded answers
    /// as a duplicate, one that was not is recorded once.
    OutcomeUnknown,
}

impl ErrorCode {
    /// Every code, for exhaustive checks.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadUserInput,
        ErrorCode::Conflict,
        ErrorCode::NotFound,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::LimitExceeded,
        ErrorCode::GraphqlParseFailed,
        ErrorCode::GraphqlValidationFailed,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Unavailable,
        ErrorCode::InternalServerError,
        ErrorCode::OutcomeUnknown,
    ];
}
