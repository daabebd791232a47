//! Errors as clients see them: a message naming what is wrong and `extensions.code`.

use async_graphql::{Error, ErrorExtensions};

use crate::ledger::LedgerError;
use crate::projection::ProjectionError;

pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub const FORBIDDEN: &str = "FORBIDDEN";
pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";

/// An error with a code.
pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

pub fn bad_input(message: impl Into<String>) -> Error {
    coded(BAD_USER_INPUT, message)
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
        ext.set("code", code);
        if let Some(f) = &field {
            ext.set("field", f.as_str());
        }
    })
}

pub fn projection(e: ProjectionError) -> Error {
    match e {
        ProjectionError::UnknownRelease(_) => coded(NOT_FOUND, e.to_string()),
        ProjectionError::RevisionBeyondHead { .. } => bad_input(e.to_string()),
        ProjectionError::Inconsistent { .. } => coded("INTERNAL_SERVER_ERROR", e.to_string()),
    }
}
