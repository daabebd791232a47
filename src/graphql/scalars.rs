//! Custom scalars. `DateTime` and `UUID` come from async-graphql's chrono and uuid support;
//! `DateTime`'s description is ours ([`describe`]).

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, InputValueError, InputValueResult, ObjectType, OutputType, Positioned, Scalar, ScalarType,
    SchemaBuilder, ServerResult, SubscriptionType, Value,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::error::{coded, ErrorCode};
use crate::domain::{parse_value, Period};
use crate::projection::Overflow;

/// The description of `DateTime`. async-graphql's reads "Implement the DateTime<Utc> scalar",
/// which names the Rust type behind it, and codegen copies a scalar's description into every
/// client's generated code.
pub const DATETIME_DESCRIPTION: &str =
    "A point in time, as an RFC 3339 string with its UTC offset, always written in UTC \
     (`2025-08-19T09:00:00+00:00`).\nInput takes any offset (`Z`, `+09:00`) and means the same instant.";

/// Sets the descriptions of the scalars the schema takes from async-graphql.
pub fn describe<Q, M, S>(builder: SchemaBuilder<Q, M, S>) -> SchemaBuilder<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    builder.override_output_type_description::<DateTime<Utc>>(DATETIME_DESCRIPTION)
}

/// An exact decimal number, written as a string (`"-4530"`, `"1960.25"`). Integers are also
/// accepted as input; numbers with a fraction or exponent are refused, since JSON parsers
/// turn them into floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec(pub Decimal);

impl async_graphql::Description for Dec {
    fn description() -> &'static str {
        "An exact decimal number, written as a string (`\"-4530\"`, `\"1960.25\"`), never a float.\n\
         Input also takes an integer; a number with a fraction or exponent is refused, since JSON\n\
         parsers turn it into a float."
    }
}

#[Scalar(name = "Decimal", use_type_description)]
impl ScalarType for Dec {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => parse_value(s)
                .map(Dec)
                .map_err(|e| InputValueError::custom(e.to_string())),
            Value::Number(n) if n.is_i64() || n.is_u64() => parse_value(&n.to_string())
                .map(Dec)
                .map_err(|e| InputValueError::custom(e.to_string())),
            Value::Number(n) => Err(InputValueError::custom(format!(
                "Decimal {n} is a number with a fraction or exponent; write it as a string, like \"12.5\""
            ))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    // Deliberately permissive: the value is parsed during execution, where the error can
    // say what exactly is wrong with it (`is_valid` can only say "expected Decimal").
    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_) | Value::Number(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<Decimal> for Dec {
    fn from(d: Decimal) -> Self {
        Dec(d)
    }
}

/// A reference period in SDMX notation: `2025` (year), `2025-S1` (half year), `2025-Q3`
/// (quarter), `2025-07` (month). Input also takes `2025-H1`, `2025H1` and `2025S1`.
impl async_graphql::Description for Period {
    fn description() -> &'static str {
        "A reference period in SDMX notation: `2025` (year), `2025-S1` (half year), `2025-Q3`\n\
         (quarter), `2025-07` (month). Input also takes `2025-H1`, `2025H1` and `2025S1`."
    }
}

#[Scalar(name = "Period", use_type_description)]
impl ScalarType for Period {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => Period::parse(s).map_err(|e| InputValueError::custom(e.to_string())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_string())
    }
}

/// A `Decimal` computed from others (a sum, a difference, a mean). In the schema it is a
/// `Decimal`; one that overflowed resolves to a field error naming the figure, with code
/// `LIMIT_EXCEEDED`, rather than a wrong number or a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Computed(pub Result<Decimal, Overflow>);

impl Computed {
    /// `a - b`, checked; `figure` names it in the error.
    pub fn difference(a: Decimal, b: Decimal, figure: &'static str) -> Self {
        Computed(a.checked_sub(b).ok_or(Overflow { figure }))
    }
}

impl OutputType for Computed {
    fn type_name() -> Cow<'static, str> {
        <Dec as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Dec as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        match self.0 {
            Ok(d) => OutputType::resolve(&Dec(d), ctx, field).await,
            Err(e) => {
                Err(ctx.set_error_path(coded(ErrorCode::LimitExceeded, e.to_string()).into_server_error(field.pos)))
            }
        }
    }
}
