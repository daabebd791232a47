//! `observations` (filters, order, pagination), `observation` as of a point, and `history`.

use super::*;

/// Without a filter, `observations` lists all 12 current figures in key, period order.
#[tokio::test]
async fn observations_lists_every_current_figure_in_key_order() {
    let app = spawn_app().await;
    let got = observations(&app, Value::Null).await;
    assert_eq!(
        got,
        kv(&[
            ("_T._T._T 2024-S2", "-3790"),
            ("_T._T._T 2025-S1", "-4610"),
            ("_T._T.ASIA 2025-S1", "3570"),
            ("_T._T.NAM 2025-S1", "-3800"),
            ("_T._T.EUR 2025-S1", "-2180"),
            ("_T.ICT._T 2025-S1", "1600"),
            ("_T.MFG._T 2025-S1", "-2470"),
            ("_T.DIP._T 2025-S1", "-2200"),
            ("IPR._T._T 2025-S1", "-2530"),
            ("ICT._T._T 2025-S1", "1960"),
            ("CUL._T._T 2025-S1", "440"),
            ("PBS._T._T 2025-S1", "-4480"),
        ])
    );
}

/// The key pattern `IPR+ICT.._T` selects royalties and ICT services for all industries and the world.
#[tokio::test]
async fn observations_filter_by_key_pattern() {
    let app = spawn_app().await;
    let got = observations(&app, json!({ "key": "IPR+ICT.._T" })).await;
    assert_eq!(
        got,
        kv(&[("IPR._T._T 2025-S1", "-2530"), ("ICT._T._T 2025-S1", "1960")])
    );
    let got = observations(&app, json!({ "key": "_T..", "periods": ["2024-S2"] })).await;
    assert_eq!(got, kv(&[("_T._T._T 2024-S2", "-3790")]));
}

/// The `dimensions` filter keeps only the listed codes of a dimension, also combined with `key`.
#[tokio::test]
async fn observations_filter_by_dimension_codes() {
    let app = spawn_app().await;
    let got = observations(
        &app,
        json!({ "dimensions": [{ "dimension": "COUNTERPART", "codes": ["ASIA", "NAM", "EUR"] }] }),
    )
    .await;
    assert_eq!(
        got,
        kv(&[
            ("_T._T.ASIA 2025-S1", "3570"),
            ("_T._T.NAM 2025-S1", "-3800"),
            ("_T._T.EUR 2025-S1", "-2180")
        ])
    );
    // Intersected with the key pattern's alternatives.
    let got = observations(
        &app,
        json!({ "key": "IPR+ICT+CUL.._T", "dimensions": [{ "dimension": "SERVICE_TYPE", "codes": ["CUL", "PBS"] }] }),
    )
    .await;
    assert_eq!(got, kv(&[("CUL._T._T 2025-S1", "440")]));
}

/// `periods`, `periodFrom` and `periodTo` select by reference period (same frequency only).
#[tokio::test]
async fn observations_filter_by_periods() {
    let app = spawn_app().await;
    let got = observations(&app, json!({ "periods": ["2024-S2"] })).await;
    assert_eq!(got, kv(&[("_T._T._T 2024-S2", "-3790")]));
    // The Bank of Korea's own spelling is accepted.
    let got = observations(&app, json!({ "periods": ["2024H2"] })).await;
    assert_eq!(got, kv(&[("_T._T._T 2024-S2", "-3790")]));
    let got = observations(&app, json!({ "periodFrom": "2025-S1" })).await;
    assert_eq!(got.len(), 11);
    assert!(got.iter().all(|(k, _)| k.ends_with(" 2025-S1")), "{got:?}");
    let got = observations(&app, json!({ "periodTo": "2024-S2" })).await;
    assert_eq!(got, kv(&[("_T._T._T 2024-S2", "-3790")]));
    let got = observations(
        &app,
        json!({ "periodFrom": "2024-S2", "periodTo": "2025-S1", "key": "_T._T._T" }),
    )
    .await;
    assert_eq!(got, kv(&[("_T._T._T 2024-S2", "-3790"), ("_T._T._T 2025-S1", "-4610")]));
    let got = observations(&app, json!({ "periodFrom": "2025-S2" })).await;
    assert_eq!(got, kv(&[]));
    // An annual bound does not compare with half-year periods.
    let got = observations(&app, json!({ "periodFrom": "2000" })).await;
    assert_eq!(got, kv(&[]));
}

/// `measures` selects by measure: every fixture figure is a balance.
#[tokio::test]
async fn observations_filter_by_measures() {
    let app = spawn_app().await;
    assert_eq!(observations(&app, json!({ "measures": ["BAL"] })).await.len(), 12);
    assert_eq!(observations(&app, json!({ "measures": ["CRE", "DEB"] })).await, kv(&[]));
    let v = app
        .gql(OBSERVATIONS, json!({ "filter": { "measures": ["XYZ"] } }))
        .await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

/// `status` selects by the status of the release that set the value at the requested point.
#[tokio::test]
async fn observations_filter_by_status() {
    let app = spawn_app().await;
    assert_eq!(observations(&app, json!({ "status": ["REVISED"] })).await.len(), 12);
    assert_eq!(observations(&app, json!({ "status": ["PRELIMINARY"] })).await, kv(&[]));
    assert_eq!(observations(&app, json!({ "status": ["FINAL"] })).await, kv(&[]));
    let data = app
        .query(
            OBSERVATIONS,
            json!({ "filter": { "status": ["PRELIMINARY"] }, "asOf": { "revision": 2 } }),
        )
        .await;
    let got = keys_and_values(&data["observations"]);
    assert_eq!(got.len(), 12);
    assert!(got.contains(&("_T._T._T 2025-S1".to_owned(), "-4530".to_owned())));
    assert!(data["observations"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "PRELIMINARY"));
}

/// `revisedOnly` keeps the five figures the synthetic revision changed, in key order.
#[tokio::test]
async fn observations_filter_revised_only() {
    let app = spawn_app().await;
    let got = observations(&app, json!({ "revisedOnly": true })).await;
    assert_eq!(
        got,
        kv(&[
            ("_T._T._T 2024-S2", "-3790"),
            ("_T._T._T 2025-S1", "-4610"),
            ("_T._T.NAM 2025-S1", "-3800"),
            ("_T.ICT._T 2025-S1", "1600"),
            ("IPR._T._T 2025-S1", "-2530"),
        ])
    );
    assert_eq!(observations(&app, json!({ "revisedOnly": false })).await.len(), 12);
    // Nothing had been revised at revision 2.
    let data = app
        .query(
            OBSERVATIONS,
            json!({ "filter": { "revisedOnly": true }, "asOf": { "revision": 2 } }),
        )
        .await;
    assert_eq!(keys_and_values(&data["observations"]), kv(&[]));
}

/// Walking with `first: 2` and `after: endCursor` visits every figure once and ends with `hasNextPage: false`.
#[tokio::test]
async fn observations_pagination_visits_each_figure_once() {
    let app = spawn_app().await;
    let all = observations(&app, Value::Null).await;
    assert_eq!(all.len(), 12);
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = app.query(OBSERVATIONS, json!({ "first": 2, "after": after })).await;
        let c = &data["observations"];
        let page = keys_and_values(c);
        assert_eq!(page.len(), 2, "page {pages}");
        assert_eq!(c["pageInfo"]["hasPreviousPage"], pages > 0);
        seen.extend(page);
        pages += 1;
        if c["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert!(pages < 20, "pagination does not end");
        after = c["pageInfo"]["endCursor"].clone();
        assert!(after.is_string(), "{c}");
    }
    assert_eq!(pages, 6);
    assert_eq!(seen, all);

    // Filtered pagination over the 5 revised figures: pages of 2, 2 and 1.
    let filter = json!({ "revisedOnly": true });
    let mut sizes = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .query(OBSERVATIONS, json!({ "filter": filter, "first": 2, "after": after }))
            .await;
        let c = &data["observations"];
        sizes.push(keys_and_values(c).len());
        if c["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert!(sizes.len() < 10);
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(sizes, [2, 2, 1]);
}

/// A cursor that does not decode to a figure of the dataset is `BAD_USER_INPUT`.
#[tokio::test]
async fn observations_bad_cursor_is_bad_user_input() {
    let app = spawn_app().await;
    for bad in ["not-a-cursor", "!!!", "Zm9vfGJhcg", ""] {
        let v = app.gql(OBSERVATIONS, json!({ "first": 2, "after": bad })).await;
        assert_eq!(code(&v), "BAD_USER_INPUT", "cursor {bad:?}: {v}");
    }
    let v = app.gql(OBSERVATIONS, json!({ "first": -1 })).await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

// ---------------------------------------------------------------------------------------
// observation, history

/// The current 2025-S1 total is the REVISED -4610, preliminary -4530, revisedFrom -4530, 2 versions.
#[tokio::test]
async fn observation_current_value_is_the_revision() {
    let app = spawn_app().await;
    let o = total_as_of(&app, Value::Null).await;
    assert_eq!(o["key"], "_T._T._T");
    assert_eq!(o["period"], "2025-S1");
    assert_eq!(o["measure"], "BAL");
    assert_eq!(o["value"], "-4610");
    assert_eq!(o["status"], "REVISED");
    assert_eq!(o["revision"], 3);
    assert_eq!(o["preliminaryValue"], "-4530");
    assert_eq!(o["revisedFrom"], "-4530");
    assert_eq!(o["versionCount"], 2);
    assert_eq!(o["revisionCount"], 1);
    assert_eq!(o["revisionFromPreliminary"], "-80");
    assert_eq!(o["asOfRevision"], 3);
    assert_eq!(o["release"]["id"], REVISION_ID);
    assert_eq!(
        o["dimensions"],
        json!([
            { "dimension": "SERVICE_TYPE", "code": "_T", "label": "All cultural, information and knowledge services" },
            { "dimension": "INDUSTRY", "code": "_T", "label": "All industries" },
            { "dimension": "COUNTERPART", "code": "_T", "label": "World" },
        ])
    );
    // Another figure, by the alternative period spelling.
    let data = app
        .query(OBSERVATION, json!({ "key": "IPR._T._T", "period": "2025H1" }))
        .await;
    assert_eq!(data["observation"]["value"], "-2530");
    assert_eq!(data["observation"]["preliminaryValue"], "-2450");
    // A figure never published is null.
    let data = app
        .query(OBSERVATION, json!({ "key": "IPR._T._T", "period": "2024-S2" }))
        .await;
    assert_eq!(data["observation"], Value::Null);
}

/// As of revision 2, the preliminary release and 2025-10-01 the total is the preliminary -4530.
#[tokio::test]
async fn observation_as_of_revision_release_and_time_gives_the_preliminary() {
    let app = spawn_app().await;
    for as_of in [
        json!({ "revision": 2 }),
        json!({ "release": PRELIMINARY_ID }),
        json!({ "publishedAt": "2025-10-01T00:00:00Z" }),
    ] {
        let o = total_as_of(&app, as_of.clone()).await;
        assert_eq!(o["value"], "-4530", "asOf {as_of}");
        assert_eq!(o["status"], "PRELIMINARY", "asOf {as_of}");
        assert_eq!(o["versionCount"], 1, "asOf {as_of}");
        assert_eq!(o["revisedFrom"], Value::Null, "asOf {as_of}");
        assert_eq!(o["asOfRevision"], 2, "asOf {as_of}");
        assert_eq!(o["release"]["id"], PRELIMINARY_ID, "asOf {as_of}");
    }
    for as_of in [
        json!({ "revision": 3 }),
        json!({ "release": REVISION_ID }),
        json!({ "publishedAt": "2025-12-10T03:00:00Z" }),
    ] {
        assert_eq!(total_as_of(&app, as_of.clone()).await["value"], "-4610", "asOf {as_of}");
    }
    // Before anything was published there was no figure.
    for as_of in [
        json!({ "revision": 1 }),
        json!({ "revision": 0 }),
        json!({ "publishedAt": "2025-09-03T02:59:59Z" }),
    ] {
        assert_eq!(total_as_of(&app, as_of.clone()).await, Value::Null, "asOf {as_of}");
    }
}

/// `history` gives both versions of the total, oldest first, with the delta -80.
#[tokio::test]
async fn history_gives_both_versions_with_the_delta() {
    let app = spawn_app().await;
    let q = "query($key: String!) { history(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $key, period: \"2025-S1\") {
        version revision status value previousValue delta publishedAt release { id } } }";
    let data = app.query(q, json!({ "key": "_T._T._T" })).await;
    assert_eq!(
        data["history"],
        json!([
            { "version": 1, "revision": 2, "status": "PRELIMINARY", "value": "-4530", "previousValue": null,
              "delta": null, "publishedAt": "2025-09-03T03:00:00+00:00", "release": { "id": PRELIMINARY_ID } },
            { "version": 2, "revision": 3, "status": "REVISED", "value": "-4610", "previousValue": "-4530",
              "delta": "-80", "publishedAt": "2025-12-10T03:00:00+00:00", "release": { "id": REVISION_ID } },
        ])
    );
    // A republished, unchanged figure also has two versions, with delta 0.
    let data = app.query(q, json!({ "key": "ICT._T._T" })).await;
    let deltas: Vec<&Value> = data["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["delta"])
        .collect();
    assert_eq!(deltas, [&Value::Null, &json!("0")]);
    // No figure, no history.
    let data = app.query(q, json!({ "key": "CUL.MFG.EUR" })).await;
    assert_eq!(data["history"], json!([]));
}
