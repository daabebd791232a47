//! Error codes for the errors async-graphql leaves without one.
//!
//! async-graphql 7 builds its parse, validation and limit errors as plain `ServerError`s:
//! no `source`, no `extensions`, nothing but the message (see `From<parser::Error>` and
//! `From<RuleError>` in its source). So the message is all there is to classify by; every
//! prefix relied on here is produced by the real async-graphql in a test below, so an upgrade
//! that changes a message fails a test instead of silently changing a code.

use async_graphql::ServerError;

use super::{BAD_USER_INPUT, LIMIT_EXCEEDED};

/// Tags errors that async-graphql leaves without a code. Argument values are coerced while
/// executing, so a bad literal's error has a path: the message decides, not the phase.
pub fn add_codes(errors: &mut [ServerError]) {
    for e in errors {
        if e.extensions.as_ref().is_some_and(|x| x.get("code").is_some()) {
            continue;
        }
        let m = e.message.as_str();
        let code = if m.starts_with("Query is too complex")
            || m.starts_with("Query is nested too deep")
            || m.starts_with("The recursion depth of the query")
            || m.starts_with("The number of directives")
            || m.contains("recursion limit exceeded")
        {
            LIMIT_EXCEEDED
        } else if m.starts_with("Failed to parse")
            || m.contains("Invalid value for argument")
            // `Variable "$x" is not defined` is a document error; `Variable x is not defined`
            // means a required value is missing from `variables`.
            || (m.starts_with("Variable") && !m.starts_with("Variable \"$") && m.contains("is not defined"))
        {
            BAD_USER_INPUT
        } else if !e.path.is_empty() {
            "INTERNAL_SERVER_ERROR"
        } else if m.starts_with("Unknown operation named") || m.contains("not supported on this transport") {
            "GRAPHQL_VALIDATION_FAILED"
        } else if e.locations.is_empty() || m.starts_with(" --> ") {
            "GRAPHQL_PARSE_FAILED"
        } else {
            "GRAPHQL_VALIDATION_FAILED"
        };
        e.extensions.get_or_insert_with(Default::default).set("code", code);
    }
}

/// True when the response failed before execution (no `data` entry in spec terms).
pub fn is_request_error(r: &async_graphql::Response) -> bool {
    !r.errors.is_empty() && r.data == async_graphql::Value::Null && r.errors.iter().all(|e| e.path.is_empty())
}

#[cfg(test)]
mod tests {
    use async_graphql::{
        EmptyMutation, InputValueError, InputValueResult, Object, Request, Scalar, ScalarType, Schema, Subscription,
        Variables,
    };
    use futures_util::stream::{self, Stream};
    use serde_json::json;

    use super::*;

    struct Query;

    /// An odd number: like the server's own scalars, parsed while executing.
    struct Odd(i64);

    #[Scalar]
    impl ScalarType for Odd {
        fn parse(value: async_graphql::Value) -> InputValueResult<Self> {
            match value {
                async_graphql::Value::Number(n) if n.as_i64().is_some_and(|n| n % 2 != 0) => {
                    Ok(Odd(n.as_i64().unwrap_or(1)))
                }
                _ => Err(InputValueError::custom("not odd")),
            }
        }
        fn to_value(&self) -> async_graphql::Value {
            self.0.into()
        }
    }

    #[Object]
    impl Query {
        async fn n(&self, x: i32) -> i32 {
            x
        }
        async fn odd(&self, x: Odd) -> Odd {
            x
        }
        async fn q(&self) -> Query {
            Query
        }
        async fn fails(&self) -> async_graphql::Result<i32> {
            Err("broken".into())
        }
    }

    struct Subs;

    #[Subscription]
    impl Subs {
        async fn ticks(&self) -> impl Stream<Item = i32> {
            stream::iter([1])
        }
    }

    /// The message and the code async-graphql's own error gets for `request`, on a schema
    /// with every limit the server sets.
    async fn classify(request: Request) -> (String, String) {
        let schema = Schema::build(Query, EmptyMutation, Subs)
            .limit_complexity(5)
            .limit_depth(4)
            .limit_recursive_depth(6)
            .limit_directives(1)
            .finish();
        let mut response = schema.execute(request).await;
        assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
        add_codes(&mut response.errors);
        let e = &response.errors[0];
        let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
        let code = match code {
            Some(async_graphql::Value::String(c)) => c,
            other => panic!("no code: {other:?}"),
        };
        (e.message.clone(), code)
    }

    async fn check(request: impl Into<Request>, prefix: &str, code: &str) {
        let (message, got) = classify(request.into()).await;
        assert!(
            message.starts_with(prefix),
            "async-graphql now says {message:?}, not {prefix:?}..."
        );
        assert_eq!(got, code, "{message}");
    }

    #[tokio::test]
    async fn limits_are_limit_exceeded() {
        check(
            "{ a: n(x: 1) b: n(x: 1) c: n(x: 1) d: n(x: 1) e: n(x: 1) f: n(x: 1) }",
            "Query is too complex",
            LIMIT_EXCEEDED,
        )
        .await;
        check(
            "{ q { q { q { q { n(x: 1) } } } } }",
            "Query is nested too deep",
            LIMIT_EXCEEDED,
        )
        .await;
        check(
            "{ q { q { q { q { q { q { q { n(x: 1) } } } } } } } }",
            "The recursion depth of the query",
            LIMIT_EXCEEDED,
        )
        .await;
        check(
            "{ n(x: 1) @skip(if: false) @include(if: true) }",
            "The number of directives",
            LIMIT_EXCEEDED,
        )
        .await;
        let bomb = format!("{}n(x: 1){}", "{ q ".repeat(70), " }".repeat(70));
        check(bomb, "recursion limit exceeded", LIMIT_EXCEEDED).await;
    }

    #[tokio::test]
    async fn bad_values_are_bad_user_input() {
        check("{ n(x: \"one\") }", "Invalid value for argument", BAD_USER_INPUT).await;
        let wrong_type =
            Request::new("query($x: Int!) { n(x: $x) }").variables(Variables::from_json(json!({ "x": "one" })));
        check(wrong_type, "Invalid value for argument", BAD_USER_INPUT).await;
        check("{ odd(x: 2) }", "Failed to parse", BAD_USER_INPUT).await;
        check(
            "query($x: Int!) { n(x: $x) }",
            "Variable x is not defined",
            BAD_USER_INPUT,
        )
        .await;
    }

    #[tokio::test]
    async fn documents_are_parse_or_validation_failures() {
        check("{ n(x: ", " --> ", "GRAPHQL_PARSE_FAILED").await;
        check(
            "{ n(x: $y) }",
            "Variable \"$y\" is not defined",
            "GRAPHQL_VALIDATION_FAILED",
        )
        .await;
        check("{ nope }", "Unknown field", "GRAPHQL_VALIDATION_FAILED").await;
        check(
            Request::new("query A { n(x: 1) }").operation_name("B"),
            "Unknown operation named",
            "GRAPHQL_VALIDATION_FAILED",
        )
        .await;
        check(
            "subscription { ticks }",
            "Subscriptions are not supported on this transport",
            "GRAPHQL_VALIDATION_FAILED",
        )
        .await;
    }

    #[tokio::test]
    async fn resolver_errors_without_a_code_are_internal() {
        check("{ fails }", "broken", "INTERNAL_SERVER_ERROR").await;
    }
}
