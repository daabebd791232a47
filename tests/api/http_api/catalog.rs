//! `ledger`, `datasets`, `dataset`, `releases` and `release` against the fixtures.

use super::*;

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
