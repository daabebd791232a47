//! Errors as clients see them: a message naming what is wrong and `extensions.code`.

use async_graphql::{Error, ErrorExtensions};

pub use crate::error_code::ErrorCode;
use crate::ledger::{HandedWrite, LedgerError};
use crate::projection::ProjectionError;

/// The `extensions.code` string of each [`ErrorCode`]: the only place they are written.
pub const fn extension_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadUserInput => "BAD_USER_INPUT",
        ErrorCode::Conflict => "CONFLICT",
        ErrorCode::NotFound => "NOT_FOUND",
        ErrorCode::Unauthenticated => "UNAUTHENTICATED",
        ErrorCode::Forbidden => "FORBIDDEN",
        ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
        ErrorCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
        ErrorCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
        ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        ErrorCode::Unavailable => "UNAVAILABLE",
        ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        ErrorCode::OutcomeUnknown => "OUTCOME_UNKNOWN",
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(extension_code(*self))
    }
}

/// Compares with the string clients see, e.g. `e.code() == "CONFLICT"`.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        extension_code(*self) == *other
    }
}

// The strings as constants, for the HTTP and WebSocket layers that still write them.
pub const BAD_USER_INPUT: &str = extension_code(ErrorCode::BadUserInput);
pub const NOT_FOUND: &str = extension_code(ErrorCode::NotFound);
pub const UNAUTHENTICATED: &str = extension_code(ErrorCode::Unauthenticated);
pub const FORBIDDEN: &str = extension_code(ErrorCode::Forbidden);
pub const LIMIT_EXCEEDED: &str = extension_code(ErrorCode::LimitExceeded);
pub const UNAVAILABLE: &str = extension_code(ErrorCode::Unavailable);
pub const OUTCOME_UNKNOWN: &str = extension_code(ErrorCode::OutcomeUnknown);

/// An error with a code.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", extension_code(code)))
}

pub fn bad_input(message: impl Into<String>) -> Error {
    coded(ErrorCode::BadUserInput, message)
}

/// Names the argument (or input field) an error is about in `extensions.field`, as
/// mutation input errors do: `key`, `asOf.revision`, `filter.periodFrom`.
pub fn at_field(e: Error, field: &str) -> Error {
    e.extend_with(|_, ext| ext.set("field", field))
}

/// Bad input in the argument `field`.
pub fn bad_argument(field: &str, message: impl Into<String>) -> Error {
    at_field(bad_input(message), field)
}

/// A ledger error with its code, and the offending field for bad input.
pub fn ledger(e: LedgerError) -> Error {
    let code = e.code();
    let field = match &e {
        LedgerError::BadInput { field, .. } => Some(field.clone()),
        _ => None,
    };
    Error::new(e.to_string()).extend_with(|_, ext| {
        ext.set("code", extension_code(code));
        if let Some(f) = &field {
            ext.set("field", f.as_str());
        }
    })
}

/// The error for a write handed to the ledger's writer whose outcome the request could not
/// wait for (`waited`: the write timeout): `OUTCOME_UNKNOWN`, with the id to retry it with in
/// the message and in `extensions.releaseId` (or `extensions.datasetId`).
pub fn outcome_unknown(write: &HandedWrite, waited: std::time::Duration) -> async_graphql::ServerError {
    let (what, key, id) = match write {
        HandedWrite::Release(id) => (format!("release {id}"), "releaseId", id.to_string()),
        HandedWrite::Dataset(id) => (format!("dataset `{id}`"), "datasetId", id.clone()),
    };
    let message = format!(
        "the outcome of the write of {what} is unknown: it reached the ledger's writer, but was not answered \
         within the write timeout of {} ms; it may or may not be recorded. Retry with the same id ({id}): if it \
         was recorded the retry answers as a duplicate (`duplicate: true` for a release), if not it is recorded once",
        waited.as_millis()
    );
    coded(ErrorCode::OutcomeUnknown, message)
        .extend_with(|_, e| e.set(key, id.as_str()))
        .into_server_error(async_graphql::Pos::default())
}

pub fn projection(e: ProjectionError) -> Error {
    match e {
        ProjectionError::UnknownRelease(_) => coded(ErrorCode::NotFound, e.to_string()),
        ProjectionError::RevisionBeyondHead { .. } => bad_input(e.to_string()),
        ProjectionError::Inconsistent { .. } => coded(ErrorCode::InternalServerError, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_string() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = extension_code(code);
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{code:?}: {s}");
            assert!(seen.insert(s), "{code:?} repeats {s}");
        }
    }
}
