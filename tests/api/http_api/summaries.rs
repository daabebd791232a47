//! `breakdown` and `revisionSummary` against the fixtures.

use super::*;

fn item_keys(b: &Value) -> Vec<String> {
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

/// As of revision 2 the residuals are 0 (service types), -1500 (industries) and -2150 (regions).
#[tokio::test]
async fn breakdown_residuals_of_the_real_figures() {
    let app = spawn_app().await;
    let as_of = json!({ "revision": 2 });

    let b = breakdown(&app, "SERVICE_TYPE", as_of.clone()).await;
    assert_eq!(b["total"]["value"], "-4530");
    assert_eq!(item_keys(&b), ["IPR._T._T", "ICT._T._T", "CUL._T._T", "PBS._T._T"]);
    // -2450 + 1960 + 440 - 4480 = -4530
    assert_eq!(b["sumOfItems"], "-4530");
    assert_eq!(b["residual"], "0");
    assert_eq!(b["asOfRevision"], 2);

    let b = breakdown(&app, "INDUSTRY", as_of.clone()).await;
    assert_eq!(item_keys(&b), ["_T.ICT._T", "_T.MFG._T", "_T.DIP._T"]);
    // 1640 - 2470 - 2200 = -3030; -4530 - (-3030) = -1500
    assert_eq!(b["sumOfItems"], "-3030");
    assert_eq!(b["residual"], "-1500");

    let b = breakdown(&app, "COUNTERPART", as_of).await;
    assert_eq!(item_keys(&b), ["_T._T.ASIA", "_T._T.NAM", "_T._T.EUR"]);
    // 3570 - 3770 - 2180 = -2380; -4530 - (-2380) = -2150
    assert_eq!(b["sumOfItems"], "-2380");
    assert_eq!(b["residual"], "-2150");
}

/// After the synthetic revision the industry residual is -1540 and the service types still add up.
#[tokio::test]
async fn breakdown_after_the_revision() {
    let app = spawn_app().await;
    let b = breakdown(&app, "INDUSTRY", Value::Null).await;
    assert_eq!(b["total"]["value"], "-4610");
    // 1600 - 2470 - 2200 = -3070; -4610 - (-3070) = -1540
    assert_eq!(b["sumOfItems"], "-3070");
    assert_eq!(b["residual"], "-1540");
    assert_eq!(b["asOfRevision"], 3);
    let b = breakdown(&app, "SERVICE_TYPE", Value::Null).await;
    assert_eq!(b["sumOfItems"], "-4610");
    assert_eq!(b["residual"], "0");
    let b = breakdown(&app, "COUNTERPART", Value::Null).await;
    // 3570 - 3800 - 2180 = -2410; -4610 - (-2410) = -2200
    assert_eq!(b["sumOfItems"], "-2410");
    assert_eq!(b["residual"], "-2200");
    // Before any release there is no total and no residual.
    let b = breakdown(&app, "INDUSTRY", json!({ "revision": 1 })).await;
    assert_eq!(b["total"], Value::Null);
    assert_eq!(b["items"], json!([]));
    assert_eq!(b["sumOfItems"], "0");
    assert_eq!(b["residual"], Value::Null);
    // An unknown dimension is bad input.
    let v = app.gql(BREAKDOWN, json!({ "dimension": "REGION" })).await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

// ---------------------------------------------------------------------------------------
// revisionSummary

const SUMMARY: &str = "query($filter: ObservationFilter, $asOf: AsOf) {
  revisionSummary(dataset: \"KR_KNOWLEDGE_SERVICES\", filter: $filter, asOf: $asOf) {
    observationCount revisedCount revisionCount meanRevision meanAbsoluteRevision maxAbsoluteRevision
    items { key period preliminaryValue latestValue revision revisionCount }
  }
}";

/// 12 figures, 5 revised (-80, -30, -80, -40, -30): mean revision -21.666667, mean absolute 21.666667.
#[tokio::test]
async fn revision_summary_over_the_whole_dataset() {
    let app = spawn_app().await;
    let s = app.query(SUMMARY, json!({})).await["revisionSummary"].clone();
    assert_eq!(s["observationCount"], 12);
    assert_eq!(s["revisedCount"], 5);
    assert_eq!(s["revisionCount"], 5);
    assert_eq!(s["meanRevision"], "-21.666667");
    assert_eq!(s["meanAbsoluteRevision"], "21.666667");
    assert_eq!(s["maxAbsoluteRevision"], "80");
    // Largest absolute revision first.
    let items: Vec<(String, String, String, String, String)> = s["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |f: &str| i[f].as_str().unwrap().to_owned();
            (
                s("key"),
                s("period"),
                s("preliminaryValue"),
                s("latestValue"),
                s("revision"),
            )
        })
        .collect();
    let own = |a: &str, b: &str, c: &str, d: &str, e: &str| (a.into(), b.into(), c.into(), d.into(), e.into());
    assert_eq!(
        items,
        vec![
            own("_T._T._T", "2025-S1", "-4530", "-4610", "-80"),
            own("IPR._T._T", "2025-S1", "-2450", "-2530", "-80"),
            own("_T.ICT._T", "2025-S1", "1640", "1600", "-40"),
            own("_T._T._T", "2024-S2", "-3760", "-3790", "-30"),
            own("_T._T.NAM", "2025-S1", "-3770", "-3800", "-30"),
        ]
    );
}

/// The summary follows the filter and the as-of point.
#[tokio::test]
async fn revision_summary_with_filter_and_as_of() {
    let app = spawn_app().await;
    // 2025-S1 only: 11 figures, 4 revised by -80, -80, -40, -30: -230/11 = -20.909090...
    let s = app
        .query(SUMMARY, json!({ "filter": { "periods": ["2025-S1"] } }))
        .await["revisionSummary"]
        .clone();
    assert_eq!(s["observationCount"], 11);
    assert_eq!(s["revisedCount"], 4);
    assert_eq!(s["meanRevision"], "-20.909091");
    assert_eq!(s["meanAbsoluteRevision"], "20.909091");
    // The total over both periods: (-80 - 30) / 2 = -55.
    let s = app.query(SUMMARY, json!({ "filter": { "key": "_T._T._T" } })).await["revisionSummary"].clone();
    assert_eq!(s["observationCount"], 2);
    assert_eq!(s["meanRevision"], "-55");
    assert_eq!(s["meanAbsoluteRevision"], "55");
    // Unrevised service types: 3 figures, one revised (IPR by -80): -80/3 = -26.666667.
    let s = app
        .query(SUMMARY, json!({ "filter": { "key": "ICT+CUL+IPR.." } }))
        .await["revisionSummary"]
        .clone();
    assert_eq!(s["observationCount"], 3);
    assert_eq!(s["revisedCount"], 1);
    assert_eq!(s["meanRevision"], "-26.666667");
    // As of revision 2 nothing was revised yet.
    let s = app.query(SUMMARY, json!({ "asOf": { "revision": 2 } })).await["revisionSummary"].clone();
    assert_eq!(s["observationCount"], 12);
    assert_eq!(s["revisedCount"], 0);
    assert_eq!(s["meanRevision"], "0");
    assert_eq!(s["items"], json!([]));
    // An empty selection has no means.
    let s = app.query(SUMMARY, json!({ "filter": { "measures": ["CRE"] } })).await["revisionSummary"].clone();
    assert_eq!(s["observationCount"], 0);
    assert_eq!(s["meanRevision"], Value::Null);
    assert_eq!(s["meanAbsoluteRevision"], Value::Null);
}
