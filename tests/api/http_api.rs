//! Every field of the GraphQL API, over real HTTP, against the fixtures: the dataset at
//! revision 1, the Bank of Korea's preliminary 2025-S1 release at revision 2 and the
//! SYNTHETIC revision at revision 3.

mod amend;
mod arguments;
mod audit;
mod order;
mod transparency;

use crate::support;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;
use tradeledger::auth::Token;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")).to_owned())
        .collect()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Keys ("key period") and values of an `observations` connection's nodes.
fn keys_and_values(conn: &Value) -> Vec<(String, String)> {
    conn["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                format!("{} {}", n["key"].as_str().unwrap(), n["period"].as_str().unwrap()),
                n["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const OBSERVATIONS: &str = "query($filter: ObservationFilter, $asOf: AsOf, $first: Int, $after: String) {
  observations(dataset: \"KR_KNOWLEDGE_SERVICES\", filter: $filter, asOf: $asOf, first: $first, after: $after) {
    nodes { key period measure value status }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}";

async fn observations(app: &TestApp, filter: Value) -> Vec<(String, String)> {
    let data = app.query(OBSERVATIONS, json!({ "filter": filter })).await;
    keys_and_values(&data["observations"])
}

fn kv(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const OBSERVATION: &str = "query($key: String!, $period: Period!, $asOf: AsOf) {
  observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $key, period: $period, asOf: $asOf) {
    key period measure value status revision preliminaryValue revisedFrom versionCount revisionCount
    revisionFromPreliminary asOfRevision publishedAt
    dimensions { dimension code label }
    release { id status }
  }
}";

async fn total_as_of(app: &TestApp, as_of: Value) -> Value {
    let data = app
        .query(
            OBSERVATION,
            json!({ "key": "_T._T._T", "period": "2025-S1", "asOf": as_of }),
        )
        .await;
    data["observation"].clone()
}

// ---------------------------------------------------------------------------------------
// ledger, datasets, dataset

/// `ledger` reports revision 3, a 64-hex head hash and 3 events after the fixtures.
#[tokio::test]
async fn ledger_reports_the_head() {
    let app = spawn_app().await;
    let data = app
        .query(
            "{ ledger { revision hash eventCount releaseCount observationVersionCount readOnlyReason } }",
            json!({}),
        )
        .await;
    let l = &data["ledger"];
    assert_eq!(l["revision"], 3);
    assert_eq!(l["eventCount"], 3);
    assert_eq!(l["releaseCount"], 2);
    assert_eq!(l["observationVersionCount"], 24);
    assert_eq!(l["readOnlyReason"], Value::Null);
    let hash = l["hash"].as_str().unwrap();
    assert!(is_hex64(hash), "hash {hash} is not 64 lowercase hex digits");
    assert_eq!(hash, app.ledger.read().head().hash.to_hex());
}

/// `datasets` lists exactly the fixture dataset with its unit, multiplier and measures.
#[tokio::test]
async fn datasets_lists_the_fixture_dataset() {
    let app = spawn_app().await;
    let data = app.query(
            "{ datasets { id name publisher unit unitMultiplier measures definedAtRevision releaseCount observationCount dimensions { id } } }",
            json!({}),
        ).await;
    let list = data["datasets"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(d["id"], DATASET);
    assert_eq!(d["publisher"], "Bank of Korea");
    assert_eq!(d["unit"], "USD");
    assert_eq!(d["unitMultiplier"], 6);
    assert_eq!(strings(&d["measures"]), ["BAL", "CRE", "DEB"]);
    assert_eq!(d["definedAtRevision"], 1);
    assert_eq!(d["releaseCount"], 2);
    assert_eq!(d["observationCount"], 12);
    let dims: Vec<&str> = d["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["SERVICE_TYPE", "INDUSTRY", "COUNTERPART"]);
}

/// `dataset(id)` gives the dimensions in key order with their code lists, labels and parents.
#[tokio::test]
async fn dataset_by_id_gives_dimensions_codes_and_labels() {
    let app = spawn_app().await;
    let data = app.query(
            "query($id: ID!) { dataset(id: $id) { id name dimensions { id label position codes { code label parent } } } }",
            json!({ "id": DATASET }),
        ).await;
    let d = &data["dataset"];
    assert_eq!(d["name"], "Trade in cultural, information and knowledge services");
    let dims = d["dimensions"].as_array().unwrap();
    assert_eq!(dims.len(), 3);
    let expect = [
        ("SERVICE_TYPE", "Service type", vec!["_T", "IPR", "ICT", "CUL", "PBS"]),
        ("INDUSTRY", "Industry", vec!["_T", "ICT", "MFG", "DIP"]),
        ("COUNTERPART", "Counterpart region", vec!["_T", "ASIA", "NAM", "EUR"]),
    ];
    for (i, (dim, (id, label, codes))) in dims.iter().zip(expect).enumerate() {
        assert_eq!(dim["id"], id);
        assert_eq!(dim["label"], label);
        assert_eq!(dim["position"], i);
        let got: Vec<&str> = dim["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        assert_eq!(got, codes, "codes of {id}");
        for c in dim["codes"].as_array().unwrap() {
            let parent = if c["code"] == "_T" { Value::Null } else { json!("_T") };
            assert_eq!(c["parent"], parent, "parent of {id} {}", c["code"]);
        }
    }
    assert_eq!(dims[0]["codes"][1]["label"], "Intellectual property royalties");
    assert_eq!(dims[1]["codes"][3]["label"], "Digital intermediary platforms");
    assert_eq!(dims[2]["codes"][0]["label"], "World");
    assert_eq!(dims[2]["codes"][2]["label"], "North America");
}

/// `dataset` with an unknown id is null, not an error.
#[tokio::test]
async fn dataset_with_unknown_id_is_null() {
    let app = spawn_app().await;
    let v = app.gql("{ dataset(id: \"NO_SUCH_DATASET\") { id } }", json!({})).await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["dataset"], Value::Null);
}

// ---------------------------------------------------------------------------------------
// releases, release

const RELEASES: &str = "query($status: ReleaseStatus, $first: Int, $after: String, $dataset: ID) {
  releases(dataset: $dataset, status: $status, first: $first, after: $after) {
    totalCount
    nodes { id status revision title observationCount revisedCount actor publishedAt }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}";

fn release_ids(conn: &Value) -> Vec<String> {
    conn["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `releases` lists the two fixture releases oldest first, with their revisions and counts.
#[tokio::test]
async fn releases_lists_both_releases() {
    let app = spawn_app().await;
    let data = app.query(RELEASES, json!({})).await;
    let c = &data["releases"];
    assert_eq!(c["totalCount"], 2);
    assert_eq!(release_ids(c), [PRELIMINARY_ID, REVISION_ID]);
    let n = c["nodes"].as_array().unwrap();
    assert_eq!(n[0]["status"], "PRELIMINARY");
    assert_eq!(n[0]["revision"], 2);
    assert_eq!(n[0]["observationCount"], 12);
    assert_eq!(n[0]["revisedCount"], 0);
    assert_eq!(n[0]["actor"], "fixtures");
    assert_eq!(n[0]["publishedAt"], "2025-09-03T03:00:00+00:00");
    assert_eq!(n[1]["status"], "REVISED");
    assert_eq!(n[1]["revision"], 3);
    assert_eq!(n[1]["observationCount"], 12);
    assert_eq!(n[1]["revisedCount"], 5);
    assert_eq!(c["pageInfo"]["hasNextPage"], false);
    assert_eq!(c["pageInfo"]["hasPreviousPage"], false);
}

/// `releases(status:)` keeps only releases of that status, and `totalCount` counts them.
#[tokio::test]
async fn releases_filter_by_status() {
    let app = spawn_app().await;
    for (status, ids) in [
        ("PRELIMINARY", vec![PRELIMINARY_ID]),
        ("REVISED", vec![REVISION_ID]),
        ("FINAL", vec![]),
    ] {
        let data = app.query(RELEASES, json!({ "status": status })).await;
        assert_eq!(release_ids(&data["releases"]), ids, "status {status}");
        assert_eq!(data["releases"]["totalCount"], ids.len(), "totalCount for {status}");
    }
    let data = app
        .query(RELEASES, json!({ "dataset": DATASET, "status": "REVISED" }))
        .await;
    assert_eq!(release_ids(&data["releases"]), [REVISION_ID]);
}

/// Walking `releases` with `first: 1` and `after: endCursor` visits each release exactly once.
#[tokio::test]
async fn releases_pagination_visits_each_release_once() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = app.query(RELEASES, json!({ "first": 1, "after": after })).await;
        let c = &data["releases"];
        assert_eq!(c["totalCount"], 2, "totalCount counts all pages");
        let ids = release_ids(c);
        assert_eq!(ids.len(), 1, "page {pages}: {c}");
        assert_eq!(c["edges"][0]["cursor"], c["pageInfo"]["endCursor"]);
        assert_eq!(c["pageInfo"]["hasPreviousPage"], pages > 0);
        seen.extend(ids);
        pages += 1;
        if c["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert!(pages < 10, "pagination does not end");
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, [PRELIMINARY_ID, REVISION_ID]);
    // A page after the last item is empty.
    let data = app.query(RELEASES, json!({ "first": 1, "after": "3" })).await;
    assert_eq!(release_ids(&data["releases"]), Vec::<String>::new());
    assert_eq!(data["releases"]["pageInfo"]["hasNextPage"], false);
}

/// `release(id)` gives each figure with the value it replaced and the delta, and its event's hash.
#[tokio::test]
async fn release_by_id_gives_figures_with_deltas_and_hash() {
    let app = spawn_app().await;
    let q = "query($id: UUID!) { release(id: $id) {
        id status title revision hash source dataset { id }
        observations { key period measure value previousValue delta } } }";
    let data = app.query(q, json!({ "id": REVISION_ID })).await;
    let r = &data["release"];
    assert_eq!(r["id"], REVISION_ID);
    assert_eq!(r["status"], "REVISED");
    assert_eq!(r["revision"], 3);
    assert_eq!(r["dataset"]["id"], DATASET);
    assert_eq!(r["source"], "SYNTHETIC test data, tradeledger fixtures");
    let head = app.head().await;
    assert_eq!(r["hash"], head.1, "the revision release is the head event");
    let figures = r["observations"].as_array().unwrap();
    assert_eq!(figures.len(), 12);
    let find = |key: &str, period: &str| {
        figures
            .iter()
            .find(|f| f["key"] == key && f["period"] == period)
            .unwrap_or_else(|| panic!("no figure {key} {period}"))
    };
    let t = find("_T._T._T", "2025-S1");
    assert_eq!(
        (&t["measure"], &t["value"], &t["previousValue"], &t["delta"]),
        (&json!("BAL"), &json!("-4610"), &json!("-4530"), &json!("-80"))
    );
    let t = find("_T._T._T", "2024-S2");
    assert_eq!(
        (&t["value"], &t["previousValue"], &t["delta"]),
        (&json!("-3790"), &json!("-3760"), &json!("-30"))
    );
    let t = find("_T.ICT._T", "2025-S1");
    assert_eq!(
        (&t["value"], &t["previousValue"], &t["delta"]),
        (&json!("1600"), &json!("1640"), &json!("-40"))
    );
    let t = find("ICT._T._T", "2025-S1");
    assert_eq!(
        (&t["value"], &t["previousValue"], &t["delta"]),
        (&json!("1960"), &json!("1960"), &json!("0"))
    );

    // The preliminary release replaced nothing; its hash is event 2's.
    let data = app.query(q, json!({ "id": PRELIMINARY_ID })).await;
    let r = &data["release"];
    assert_eq!(r["status"], "PRELIMINARY");
    assert_eq!(r["revision"], 2);
    let figures = r["observations"].as_array().unwrap();
    assert_eq!(figures.len(), 12);
    assert!(figures
        .iter()
        .all(|f| f["previousValue"].is_null() && f["delta"].is_null()));
    let total = figures
        .iter()
        .find(|f| f["key"] == "_T._T._T" && f["period"] == "2025-S1")
        .unwrap();
    assert_eq!(total["value"], "-4530");
    let events = app.query("{ events { nodes { revision hash } } }", json!({})).await;
    assert_eq!(r["hash"], events["events"]["nodes"][1]["hash"]);
    assert_ne!(r["hash"], head.1);
}

/// `release` with an unknown id is null, not an error.
#[tokio::test]
async fn release_with_unknown_id_is_null() {
    let app = spawn_app().await;
    let v = app
        .gql(
            "{ release(id: \"00000000-0000-4000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["release"], Value::Null);
}

// ---------------------------------------------------------------------------------------
// observations

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

// ---------------------------------------------------------------------------------------
// breakdown

const BREAKDOWN: &str = "query($dimension: String!, $asOf: AsOf) {
  breakdown(dataset: \"KR_KNOWLEDGE_SERVICES\", dimension: $dimension, period: \"2025-S1\", asOf: $asOf) {
    dimension asOfRevision total { key value } items { key value } sumOfItems residual
  }
}";

async fn breakdown(app: &TestApp, dimension: &str, as_of: Value) -> Value {
    app.query(BREAKDOWN, json!({ "dimension": dimension, "asOf": as_of }))
        .await["breakdown"]
        .clone()
}

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

// ---------------------------------------------------------------------------------------
// events, verifyLedger

/// `events` lists 3 events whose `prevHash` links the chain and whose `hash` is SHA-256(`canonical`).
#[tokio::test]
async fn events_form_a_hash_chain() {
    let app = spawn_app().await;
    let data = app.query(
            "{ events { totalCount pageInfo { hasNextPage } nodes { revision kind actor prevHash hash canonical dataset release { id } } } }",
            json!({}),
        ).await;
    let c = &data["events"];
    assert_eq!(c["totalCount"], 3);
    assert_eq!(c["pageInfo"]["hasNextPage"], false);
    let nodes = c["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let kinds: Vec<&str> = nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["DATASET_DEFINED", "RELEASE_PUBLISHED", "RELEASE_PUBLISHED"]);
    assert_eq!(nodes[0]["release"], Value::Null);
    assert_eq!(nodes[1]["release"]["id"], PRELIMINARY_ID);
    assert_eq!(nodes[2]["release"]["id"], REVISION_ID);
    let mut prev = "0".repeat(64);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["revision"], i + 1);
        assert_eq!(n["actor"], "fixtures");
        assert_eq!(n["dataset"], DATASET);
        assert_eq!(n["prevHash"], prev.as_str(), "event {}", i + 1);
        let canonical = n["canonical"].as_str().unwrap();
        let hash = n["hash"].as_str().unwrap();
        assert!(is_hex64(hash));
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            hash,
            "event {}",
            i + 1
        );
        // The canonical bytes name the revision and the previous hash they chain to.
        let parsed: Value = serde_json::from_str(canonical).expect("canonical is JSON");
        assert_eq!(parsed["revision"], i + 1);
        assert_eq!(parsed["prev_hash"], prev.as_str());
        prev = hash.to_owned();
    }
    assert_eq!(prev, app.head().await.1, "the last hash is the ledger head");

    // Paging by revision.
    let data = app
        .query(
            "{ events(after: 1, first: 1) { totalCount pageInfo { hasNextPage hasPreviousPage } nodes { revision } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["nodes"], json!([{ "revision": 2 }]));
    assert_eq!(data["events"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(data["events"]["pageInfo"]["hasPreviousPage"], true);
    let v = app.gql("{ events(after: -1) { totalCount } }", json!({})).await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
}

/// `verifyLedger` checks all 3 events and finds nothing wrong.
#[tokio::test]
async fn verify_ledger_is_ok() {
    let app = spawn_app().await;
    let data = app
        .query("{ verifyLedger { ok checked firstBadRevision reason } }", json!({}))
        .await;
    assert_eq!(
        data["verifyLedger"],
        json!({ "ok": true, "checked": 3, "firstBadRevision": null, "reason": null })
    );
}

// ---------------------------------------------------------------------------------------
// publish, read-your-write, idempotency, as-of after later revisions

const NEW_ID: &str = "0f6a3c1e-2b7d-4c1a-9e55-00000000aa01";
const LATER_ID: &str = "0f6a3c1e-2b7d-4c1a-9e55-00000000aa02";

/// A publish is visible to the next read; re-sending it is `duplicate` with the original revision.
#[tokio::test]
async fn publish_then_read_your_write_and_idempotent_republish() {
    let app = spawn_app().await;
    let input = release_input(NEW_ID, "IPR._T._T", "2025-S1", "-2600.5");
    let r = app.publish(input.clone()).await;
    assert_eq!(r["revision"], 4);
    assert_eq!(r["duplicate"], false);
    assert_eq!(r["release"], json!({ "id": NEW_ID, "status": "REVISED" }));
    let hash = r["hash"].as_str().unwrap().to_owned();
    assert!(is_hex64(&hash));
    assert_eq!(app.head().await, (4, hash.clone()));

    let data = app
        .query(OBSERVATION, json!({ "key": "IPR._T._T", "period": "2025-S1" }))
        .await;
    let o = &data["observation"];
    assert_eq!(o["value"], "-2600.5");
    assert_eq!(o["revisedFrom"], "-2530");
    assert_eq!(o["preliminaryValue"], "-2450");
    assert_eq!(o["versionCount"], 3);
    assert_eq!(o["revision"], 4);
    assert_eq!(o["revisionFromPreliminary"], "-150.5");
    assert_eq!(o["release"]["id"], NEW_ID);

    // The write was recorded under the name of the token, never its secret.
    let data = app
        .query("{ events(after: 3) { nodes { actor canonical } } }", json!({}))
        .await;
    assert_eq!(data["events"]["nodes"][0]["actor"], "tester");
    assert!(!data["events"]["nodes"][0]["canonical"]
        .as_str()
        .unwrap()
        .contains(WRITE_SECRET));

    // Same id, same content: the original answer.
    let again = app.publish(input.clone()).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["revision"], 4);
    assert_eq!(again["hash"], hash.as_str());
    assert_eq!(app.head().await, (4, hash.clone()));
    // Also when the head has moved on since, and with a stale expectedRevision.
    let later = release_input(LATER_ID, "CUL._T._T", "2025-S1", "450");
    assert_eq!(app.publish(later).await["revision"], 5);
    let again =
        data_of(app.gql_write(PUBLISH, json!({ "input": input, "expected": 3 })).await)["publishRelease"].clone();
    assert_eq!(
        (again["duplicate"].clone(), again["revision"].clone()),
        (json!(true), json!(4))
    );
    assert_eq!(app.head().await.0, 5);
}

/// `expectedRevision` equal to the head is accepted.
#[tokio::test]
async fn publish_with_matching_expected_revision() {
    let app = spawn_app().await;
    let input = release_input(NEW_ID, "_T._T._T", "2025-S1", "-4600");
    let r = data_of(app.gql_write(PUBLISH, json!({ "input": input, "expected": 3 })).await)["publishRelease"].clone();
    assert_eq!(r["revision"], 4);
    assert_eq!(r["duplicate"], false);
}

/// After later revisions land, as-of reads still give exactly what was public at each point.
#[tokio::test]
async fn as_of_reads_are_stable_after_later_revisions() {
    let app = spawn_app().await;
    let first = release_input(NEW_ID, "_T._T._T", "2025-S1", "-4620");
    app.publish(first).await;
    let mut second = release_input(LATER_ID, "_T._T._T", "2025-S1", "-4700.25");
    second["publishedAt"] = json!("2026-03-01T00:00:00Z");
    app.publish(second).await;
    assert_eq!(app.head().await.0, 5);

    let expect = [
        (json!({ "revision": 2 }), "-4530", 1),
        (json!({ "revision": 3 }), "-4610", 2),
        (json!({ "revision": 4 }), "-4620", 3),
        (json!({ "revision": 5 }), "-4700.25", 4),
        (json!({ "release": PRELIMINARY_ID }), "-4530", 1),
        (json!({ "release": REVISION_ID }), "-4610", 2),
        (json!({ "release": NEW_ID }), "-4620", 3),
        (json!({ "publishedAt": "2025-10-01T00:00:00Z" }), "-4530", 1),
        (json!({ "publishedAt": "2025-12-31T00:00:00Z" }), "-4610", 2),
        (json!({ "publishedAt": "2026-02-01T00:00:00Z" }), "-4620", 3),
        (Value::Null, "-4700.25", 4),
    ];
    for (as_of, value, versions) in expect {
        let o = total_as_of(&app, as_of.clone()).await;
        assert_eq!(o["value"], value, "asOf {as_of}");
        assert_eq!(o["versionCount"], versions, "asOf {as_of}");
    }
    // The breakdown as of revision 2 is unchanged by the later totals.
    let b = breakdown(&app, "INDUSTRY", json!({ "revision": 2 })).await;
    assert_eq!(b["residual"], "-1500");
    let b = breakdown(&app, "INDUSTRY", Value::Null).await;
    // -4700.25 - (1600 - 2470 - 2200) = -1630.25
    assert_eq!(b["residual"], "-1630.25");
}

// ---------------------------------------------------------------------------------------
// auth

/// A mutation without a token is `UNAUTHENTICATED` and leaves the head unchanged.
#[tokio::test]
async fn mutation_without_token_is_unauthenticated() {
    let app = spawn_app().await;
    let before = app.head().await;
    let (status, v) = app
        .post(
            PUBLISH,
            json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S1", "1") }),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(code(&v), "UNAUTHENTICATED", "{v}");
    assert_eq!(v["data"], Value::Null);
    assert_eq!(app.head().await, before);
    let data = app
        .query(
            "{ release(id: \"0f6a3c1e-2b7d-4c1a-9e55-00000000aa01\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(data["release"], Value::Null);
}

/// A wrong token is refused with HTTP 401 `UNAUTHENTICATED`, and nothing is written.
#[tokio::test]
async fn wrong_token_is_http_401() {
    let app = spawn_app().await;
    let before = app.head().await;
    let input = json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S1", "1") });
    let (status, v) = app.post(PUBLISH, input.clone(), Some("not-the-secret")).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(code(&v), "UNAUTHENTICATED", "{v}");
    // The name part of `name:secret` is not a credential.
    let (status, _) = app.post(PUBLISH, input, Some("tester:test-write-secret")).await;
    assert_eq!(status, 401);
    // Not even reads go through with a bad token.
    let (status, _) = app
        .post("{ ledger { revision } }", json!({}), Some("not-the-secret"))
        .await;
    assert_eq!(status, 401);
    // A malformed Authorization header is refused too.
    let resp = app
        .client
        .post(&app.url)
        .header("content-type", "application/json")
        .header("authorization", "Basic dGVzdGVyOnNlY3JldA==")
        .body(r#"{"query":"{ ledger { revision } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(app.head().await, before);
}

/// With read tokens configured reads need a token, and a read token cannot write (`FORBIDDEN`).
#[tokio::test]
async fn read_tokens_protect_reads_and_cannot_write() {
    let app = spawn_app_with(
        |c| c.tokens.read = vec![Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    let q = "{ ledger { revision hash } }";
    let (status, v) = app.post(q, json!({}), None).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(code(&v), "UNAUTHENTICATED");
    let (status, v) = app.post(q, json!({}), Some(READ_SECRET)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["ledger"]["revision"], 3);
    let before = v["data"]["ledger"].clone();
    // A write token may read too.
    let (status, v) = app.post(q, json!({}), Some(WRITE_SECRET)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["ledger"], before);

    let input = json!({ "input": release_input(NEW_ID, "_T._T._T", "2025-S1", "1") });
    let (status, v) = app.post(PUBLISH, input.clone(), Some(READ_SECRET)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(code(&v), "FORBIDDEN", "{v}");
    let (status, _) = app.post(PUBLISH, input, None).await;
    assert_eq!(status, 401);
    let (_, v) = app.post(q, json!({}), Some(READ_SECRET)).await;
    assert_eq!(v["data"]["ledger"], before, "nothing was written");
}

// ---------------------------------------------------------------------------------------
// malformed inputs

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
