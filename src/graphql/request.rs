//! GraphQL-over-HTTP parameters (`query`, `operationName`, `variables`, `extensions`) to a
//! request, with the front door's bounds checked before anything parses them. Shared by the
//! HTTP endpoint and the WebSocket protocols.

use async_graphql::{Request, Variables};
use serde_json::Value;

use super::{guard, Limits, BAD_USER_INPUT, LIMIT_EXCEEDED};

/// Why GraphQL-over-HTTP parameters were refused.
#[derive(Debug)]
pub enum ParamError {
    /// A parameter is missing or of the wrong type.
    Malformed(String),
    /// Beyond a bound of the front door ([`guard`]).
    Exceeded(guard::Exceeded),
}

impl ParamError {
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::Malformed(_) => BAD_USER_INPUT,
            ParamError::Exceeded(_) => LIMIT_EXCEEDED,
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::Malformed(m) => f.write_str(m),
            ParamError::Exceeded(e) => write!(f, "{e}"),
        }
    }
}

/// Builds a request from the GraphQL-over-HTTP parameters, checking their types and, before
/// anything parses them, the front door's bounds on the query text and the JSON parameters.
pub fn request_from_params(params: &serde_json::Map<String, Value>, limits: &Limits) -> Result<Request, ParamError> {
    let malformed = |m: &str| ParamError::Malformed(m.to_owned());
    let query = match params.get("query") {
        Some(Value::String(q)) => q,
        Some(_) => return Err(malformed("`query` must be a string")),
        None => return Err(malformed("`query` is missing")),
    };
    guard::check_query(query, limits).map_err(ParamError::Exceeded)?;
    let mut request = Request::new(query.clone());
    match params.get("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name.clone()),
        Some(_) => return Err(malformed("`operationName` must be a string")),
    }
    match params.get("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => {
            guard::check_json("variables", v, limits).map_err(ParamError::Exceeded)?;
            request = request.variables(Variables::from_json(v.clone()));
        }
        Some(_) => return Err(malformed("`variables` must be an object")),
    }
    match params.get("extensions") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => guard::check_json("extensions", v, limits).map_err(ParamError::Exceeded)?,
        Some(_) => return Err(malformed("`extensions` must be an object")),
    }
    Ok(request)
}
