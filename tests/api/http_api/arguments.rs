//! Argument errors on queries: a period of a frequency the dataset has no
//! figures of is `BAD_USER_INPUT` naming the dataset's frequencies, on every query taking a
//! period (the range bounds `periodFrom` and `periodTo` keep selecting one frequency, as
//! documented); bad arguments name themselves in `extensions.field`, as mutation input errors do.

use serde_json::{json, Value};

use crate::support::*;

/// The first error's code, field and message.
fn error_of(v: &Value) -> (String, String, String) {
    let e = &v["errors"][0];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (
        s(&e["extensions"]["code"]),
        s(&e["extensions"]["field"]),
        s(&e["message"]),
    )
}

/// A quarter or a year asked of half-year statistics is refused, not answered with nothing,
/// by every query taking a period; the message names the frequencies the dataset has.
#[tokio::test]
async fn a_period_of_another_frequency_is_bad_input() {
    let app = spawn_app().await;
    let cases = [
        (
            r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-Q1") { value } }"#,
            "period",
        ),
        (
            r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025") { value } }"#,
            "period",
        ),
        (
            r#"{ breakdown(dataset: "KR_KNOWLEDGE_SERVICES", dimension: "SERVICE_TYPE", period: "2025-07") { residual } }"#,
            "period",
        ),
        (
            r#"{ observations(dataset: "KR_KNOWLEDGE_SERVICES", filter: {periods: ["2025-S1", "2025-Q1"]}) { nodes { value } } }"#,
            "filter.periods",
        ),
        (
            r#"{ revisionSummary(dataset: "KR_KNOWLEDGE_SERVICES", filter: {periods: ["2025"]}) { observationCount } }"#,
            "filter.periods",
        ),
    ];
    for (query, field) in cases {
        let v = app.gql(query, json!({})).await;
        let (code, got_field, message) = error_of(&v);
        assert_eq!(code, "BAD_USER_INPUT", "{query}: {v}");
        assert_eq!(got_field, field, "{query}: {v}");
        assert!(
            message.contains("KR_KNOWLEDGE_SERVICES has half-yearly (S) periods only"),
            "{query}: {message}"
        );
        assert!(v["data"].is_null(), "{query}: no answer beside the error: {v}");
    }
    // The same frequency in any accepted spelling is answered.
    let v = app
        .gql(
            r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025H1") { value } }"#,
            json!({}),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["history"].as_array().map(Vec::len), Some(2), "{v}");
}

/// Bad arguments on queries carry `extensions.field` naming the argument.
#[tokio::test]
async fn query_argument_errors_name_the_argument() {
    let app = spawn_app().await;
    let cases = [
        (
            r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "NOPE._T._T", period: "2025-S1") { value } }"#,
            "BAD_USER_INPUT",
            "key",
        ),
        (
            r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", measure: "XYZ") { value } }"#,
            "BAD_USER_INPUT",
            "measure",
        ),
        (
            r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: {revision: 99}) { value } }"#,
            "BAD_USER_INPUT",
            "asOf",
        ),
        (
            r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: {revision: -1}) { value } }"#,
            "BAD_USER_INPUT",
            "asOf.revision",
        ),
        (
            r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1", asOf: {revision: 1, release: "6b1f0c2e-4d3a-4e51-9a57-2025a0000001"}) { value } }"#,
            "BAD_USER_INPUT",
            "asOf",
        ),
        (
            r#"{ breakdown(dataset: "KR_KNOWLEDGE_SERVICES", dimension: "COLOUR", period: "2025-S1") { residual } }"#,
            "BAD_USER_INPUT",
            "dimension",
        ),
        (
            r#"{ observations(dataset: "KR_KNOWLEDGE_SERVICES", filter: {key: "A.B"}) { nodes { value } } }"#,
            "BAD_USER_INPUT",
            "filter.key",
        ),
        (
            r#"{ observations(dataset: "KR_KNOWLEDGE_SERVICES", first: -1) { nodes { value } } }"#,
            "BAD_USER_INPUT",
            "first",
        ),
        (
            r#"{ releases(after: "not a cursor") { nodes { id } } }"#,
            "BAD_USER_INPUT",
            "after",
        ),
        (
            r#"{ history(dataset: "NO_SUCH", key: "_T._T._T", period: "2025-S1") { value } }"#,
            "NOT_FOUND",
            "dataset",
        ),
    ];
    for (query, code, field) in cases {
        let v = app.gql(query, json!({})).await;
        let (got_code, got_field, _) = error_of(&v);
        assert_eq!((got_code.as_str(), got_field.as_str()), (code, field), "{query}: {v}");
    }
}
