//! Malformed release inputs and `asOf` arguments: each refused with a code naming the field.

use super::*;

/// Publishes `input` with the write token and checks the error code, the offending field
/// (when given) and that the ledger head did not move.
async fn assert_publish_refused(app: &TestApp, variables: Value, expected_code: &str, field: Option<&str>) {
    let v = publish_refused(app, variables.clone()).await;
    assert_eq!(code(&v), expected_code, "variables {variables}: {v}");
    if let Some(f) = field {
        let ext_field = v["errors"][0]["extensions"]["field"].as_str();
        let message = v["errors"][0]["message"].as_str().unwrap_or("");
        assert!(
            ext_field == Some(f) || message.contains(f),
            "error should name `{f}`: {v}"
        );
    }
}

/// Publishes with the write token, checks that it failed and that the ledger head did not
/// move, and returns the response.
async fn publish_refused(app: &TestApp, variables: Value) -> Value {
    let before = app.head().await;
    let v = app.gql_write(PUBLISH, variables.clone()).await;
    assert!(v["errors"][0].is_object(), "variables {variables} were accepted: {v}");
    assert!(v["data"].is_null() || v["data"]["publishRelease"].is_null(), "{v}");
    assert_eq!(app.head().await, before, "head moved after refused {variables}");
    v
}

fn with_observations(observations: Value) -> Value {
    let mut input = release_input(NEW_ID, "_T._T._T", "2025-S1", "1");
    input["observations"] = observations;
    json!({ "input": input })
}

/// The period `2025-S3` is `BAD_USER_INPUT` as a variable, a literal and a query argument; nothing is written.
#[tokio::test]
async fn bad_period_is_bad_user_input() {
    let app = spawn_app().await;
    let mut codes = Vec::new();
    let v = publish_refused(
        &app,
        json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S3", "1") }),
    )
    .await;
    codes.push(("publish, variable", code(&v).to_owned()));
    let doc = "mutation { publishRelease(input: { dataset: \"KR_KNOWLEDGE_SERVICES\", status: REVISED, title: \"t\",
        publishedAt: \"2026-01-01T00:00:00Z\", observations: [{ key: \"_T._T._T\", period: \"2025-S3\", value: \"1\" }] }) { revision } }";
    let v = app.gql_write(doc, json!({})).await;
    codes.push(("publish, literal", code(&v).to_owned()));
    let v = app
        .gql(OBSERVATION, json!({ "key": "_T._T._T", "period": "2025-S3" }))
        .await;
    codes.push(("observation, variable", code(&v).to_owned()));
    assert_eq!(app.head().await.0, 3);
    let expected: Vec<(&str, String)> = codes
        .iter()
        .map(|(case, _)| (*case, "BAD_USER_INPUT".to_owned()))
        .collect();
    assert_eq!(codes, expected);
}

/// A code that is not in the dimension's code list is `BAD_USER_INPUT` naming the key.
#[tokio::test]
async fn unknown_code_in_key_is_bad_user_input() {
    let app = spawn_app().await;
    assert_publish_refused(
        &app,
        json!({ "input": release_input(NEW_ID, "IPR.XYZ._T", "2025-S1", "1") }),
        "BAD_USER_INPUT",
        Some("observations[0].key"),
    )
    .await;
    let v = app
        .gql(OBSERVATION, json!({ "key": "IPR.XYZ._T", "period": "2025-S1" }))
        .await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
    let v = app.gql(OBSERVATIONS, json!({ "filter": { "key": "IPR+XYZ.." } })).await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

/// A key with the wrong number of parts is `BAD_USER_INPUT`.
#[tokio::test]
async fn wrong_key_arity_is_bad_user_input() {
    let app = spawn_app().await;
    for key in ["IPR._T", "IPR._T._T._T", ""] {
        assert_publish_refused(
            &app,
            json!({ "input": release_input(NEW_ID, key, "2025-S1", "1") }),
            "BAD_USER_INPUT",
            Some("observations[0].key"),
        )
        .await;
    }
    let v = app
        .gql(OBSERVATION, json!({ "key": "IPR._T", "period": "2025-S1" }))
        .await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

/// The same (key, period, measure) twice in one release is `BAD_USER_INPUT`.
#[tokio::test]
async fn duplicate_observation_is_bad_user_input() {
    let app = spawn_app().await;
    assert_publish_refused(
        &app,
        with_observations(json!([
            { "key": "_T._T._T", "period": "2025-S1", "value": "1" },
            { "key": "_T._T._T", "period": "2025H1", "measure": "BAL", "value": "2" },
        ])),
        "BAD_USER_INPUT",
        Some("observations[1]"),
    )
    .await;
}

/// Values `1e3`, `NaN`, JSON number 1.5 and other non-decimals are `BAD_USER_INPUT`; nothing is written.
#[tokio::test]
async fn non_decimal_values_are_bad_user_input() {
    let app = spawn_app().await;
    let mut codes = Vec::new();
    for value in [
        json!("1e3"),
        json!("NaN"),
        json!(1.5),
        json!("1,000"),
        json!(""),
        json!(true),
    ] {
        let v = publish_refused(
            &app,
            with_observations(json!([{ "key": "_T._T._T", "period": "2025-S1", "value": value }])),
        )
        .await;
        codes.push((value.to_string(), code(&v).to_owned()));
    }
    let expected: Vec<(String, String)> = codes
        .iter()
        .map(|(value, _)| (value.clone(), "BAD_USER_INPUT".to_owned()))
        .collect();
    assert_eq!(codes, expected);
}

/// An integer JSON number is carried exactly and accepted as a decimal.
#[tokio::test]
async fn integer_json_number_is_accepted_exactly() {
    let app = spawn_app().await;
    let v = app
        .gql_write(
            PUBLISH,
            with_observations(json!([{ "key": "_T._T._T", "period": "2025-S1", "value": -4615 }])),
        )
        .await;
    assert_eq!(data_of(v)["publishRelease"]["revision"], 4);
    assert_eq!(total_as_of(&app, Value::Null).await["value"], "-4615");
}

/// A release for a dataset that does not exist is `BAD_USER_INPUT`.
#[tokio::test]
async fn unknown_dataset_is_bad_user_input() {
    let app = spawn_app().await;
    let mut input = release_input(NEW_ID, "_T._T._T", "2025-S1", "1");
    input["dataset"] = json!("NO_SUCH_DATASET");
    assert_publish_refused(&app, json!({ "input": input }), "BAD_USER_INPUT", Some("dataset")).await;
    // Reads of an unknown dataset are NOT_FOUND.
    let v = app
        .gql(
            "{ observation(dataset: \"NO_SUCH_DATASET\", key: \"_T._T._T\", period: \"2025-S1\") { value } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&v), "NOT_FOUND", "{v}");
}

/// A release without observations is `BAD_USER_INPUT`.
#[tokio::test]
async fn empty_observations_is_bad_user_input() {
    let app = spawn_app().await;
    assert_publish_refused(
        &app,
        with_observations(json!([])),
        "BAD_USER_INPUT",
        Some("observations"),
    )
    .await;
}

/// An unknown measure is `BAD_USER_INPUT`.
#[tokio::test]
async fn unknown_measure_is_bad_user_input() {
    let app = spawn_app().await;
    assert_publish_refused(
        &app,
        with_observations(json!([{ "key": "_T._T._T", "period": "2025-S1", "measure": "NET", "value": "1" }])),
        "BAD_USER_INPUT",
        Some("observations[0].measure"),
    )
    .await;
}

/// Re-publishing an existing release id with different content is a `CONFLICT`.
#[tokio::test]
async fn conflicting_republish_is_conflict() {
    let app = spawn_app().await;
    let input = release_input(PRELIMINARY_ID, "_T._T._T", "2025-S1", "-4530");
    assert_publish_refused(&app, json!({ "input": input }), "CONFLICT", None).await;
    // The original is untouched.
    assert_eq!(
        total_as_of(&app, json!({ "release": PRELIMINARY_ID })).await["value"],
        "-4530"
    );
    let data = app
        .query(
            "query($id: UUID!) { release(id: $id) { title observationCount } }",
            json!({ "id": PRELIMINARY_ID }),
        )
        .await;
    assert_eq!(data["release"]["observationCount"], 12);
}

/// A stale `expectedRevision` is a `CONFLICT`; a negative one is `BAD_USER_INPUT`.
#[tokio::test]
async fn stale_expected_revision_is_conflict() {
    let app = spawn_app().await;
    let input = release_input(NEW_ID, "_T._T._T", "2025-S1", "1");
    for stale in [2, 4, 0] {
        assert_publish_refused(&app, json!({ "input": input, "expected": stale }), "CONFLICT", None).await;
    }
    assert_publish_refused(&app, json!({ "input": input, "expected": -1 }), "BAD_USER_INPUT", None).await;
}

/// Negative, doubly-set, empty or beyond-head `asOf` is `BAD_USER_INPUT`; an unknown release is `NOT_FOUND`.
#[tokio::test]
async fn bad_as_of_arguments() {
    let app = spawn_app().await;
    let before = app.head().await;
    for (as_of, expected) in [
        (json!({ "revision": -1 }), "BAD_USER_INPUT"),
        (json!({ "revision": 2, "release": PRELIMINARY_ID }), "BAD_USER_INPUT"),
        (
            json!({ "revision": 2, "publishedAt": "2025-10-01T00:00:00Z" }),
            "BAD_USER_INPUT",
        ),
        (json!({}), "BAD_USER_INPUT"),
        (json!({ "revision": 4 }), "BAD_USER_INPUT"),
        (json!({ "revision": 1_000_000 }), "BAD_USER_INPUT"),
        (
            json!({ "release": "00000000-0000-4000-8000-000000000000" }),
            "NOT_FOUND",
        ),
    ] {
        let v = app
            .gql(
                OBSERVATION,
                json!({ "key": "_T._T._T", "period": "2025-S1", "asOf": as_of }),
            )
            .await;
        assert_eq!(code(&v), expected, "asOf {as_of}: {v}");
        assert_eq!(v["data"]["observation"], Value::Null, "{v}");
        let v = app.gql(OBSERVATIONS, json!({ "asOf": as_of })).await;
        assert_eq!(code(&v), expected, "observations asOf {as_of}: {v}");
    }
    assert_eq!(app.head().await, before);
}

/// A repeated query is answered from the response cache until a write moves the head, and
/// then reflects the write at once (the cache is keyed by revision).
#[tokio::test]
async fn repeated_queries_see_writes_immediately() {
    let app = spawn_app().await;
    let q =
        r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "CUL._T._T", period: "2025-S1") { value revision } }"#;
    for _ in 0..3 {
        let v = app.gql(q, json!({})).await;
        assert_eq!(v["data"]["observation"]["value"], "440", "{v}");
    }
    let input = release_input("0b7e4f7e-0000-4000-8000-00000000ca01", "CUL._T._T", "2025-S1", "455");
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert_eq!(v["data"]["publishRelease"]["duplicate"], false, "{v}");
    let v = app.gql(q, json!({})).await;
    assert_eq!(v["data"]["observation"]["value"], "455", "{v}");
    assert_eq!(v["data"]["observation"]["revision"], 4, "{v}");
    // With variables, each distinct set of variables is its own entry.
    let qv =
        r#"query($k: String!) { observation(dataset: "KR_KNOWLEDGE_SERVICES", key: $k, period: "2025-S1") { value } }"#;
    let a = app.gql(qv, json!({"k": "IPR._T._T"})).await;
    let b = app.gql(qv, json!({"k": "ICT._T._T"})).await;
    assert_eq!(a["data"]["observation"]["value"], "-2530", "{a}");
    assert_eq!(b["data"]["observation"]["value"], "1960", "{b}");
}
