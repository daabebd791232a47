//! SDMX-REST 2.2 data queries that match several dataflows (`data/dataflow/*/*/*/*`), over
//! real HTTP on port 0 against a ledger holding the fixture's dataflow and a second one
//! defined with `defineDataset`: one message with the data of each, in SDMX-JSON 2.0 (checked
//! with the standard's schema), SDMX-ML 3.0 (checked with xmllint against the standard's
//! schemas and both DSD schemas) and SDMX-CSV 2.0; keys applied per dataflow; the limit on
//! observations counted across the dataflows.

use serde_json::{json, Value};

use super::{attr, csv_rows, graphql_figures, skip_tools, validate_json_schema, xmllint};
use crate::support::{spawn_app_with, TestApp};

const ALL: &str = "data/dataflow/*/*/*";
const ML: &str = "application/vnd.sdmx.data+xml;version=3.0.0";
const CSV: &str = "application/vnd.sdmx.data+csv;version=2.0.0";
const OTHER: &str = "SYNTHETIC_OTHER";

async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> (u16, String) {
    let (status, _, body) = super::get_below(app, "3.0", path, accept).await;
    (status, body)
}

/// A server with the fixture and a second dataflow, `SYNTHETIC_OTHER` (dimensions FLOW_TYPE,
/// which the fixture's has not, and COUNTERPART), holding two figures of 2026-S1: XQ._T 7
/// and MQ.ASIA 3.
async fn two_flows(max_observations: Option<u64>) -> TestApp {
    let app = spawn_app_with(
        |c| {
            if let Some(m) = max_observations {
                c.sdmx.max_observations = m;
            }
        },
        true,
    )
    .await;
    let define = app
        .gql_write(
            "mutation($input: DatasetInput!) { defineDataset(input: $input) { id } }",
            json!({"input": {
                "id": OTHER,
                "name": "SYNTHETIC second dataflow for queries over several",
                "publisher": "tests",
                "unit": "USD",
                "unitMultiplier": 6,
                "dimensions": [
                    {"id": "FLOW_TYPE", "label": "Flow type",
                     "codes": [{"code": "_T", "label": "Total"}, {"code": "XQ", "label": "Exports", "parent": "_T"},
                               {"code": "MQ", "label": "Imports", "parent": "_T"}]},
                    {"id": "COUNTERPART", "label": "Counterpart region",
                     "codes": [{"code": "_T", "label": "World"}, {"code": "ASIA", "label": "Asia", "parent": "_T"}]}
                ],
                "measures": ["BAL"]
            }}),
        )
        .await;
    assert_eq!(define["data"]["defineDataset"]["id"], OTHER, "{define}");
    let published = app
        .publish(json!({
            "id": "6f0c8c8e-2b7e-4d0a-9d55-0c1f3b1d2a01",
            "dataset": OTHER,
            "status": "PRELIMINARY",
            "title": "SYNTHETIC second dataflow release",
            "publishedAt": "2026-01-15T00:00:00Z",
            "source": "SYNTHETIC: tests",
            "observations": [
                {"key": "XQ._T", "period": "2026-S1", "value": "7"},
                {"key": "MQ.ASIA", "period": "2026-S1", "value": "3"}
            ]
        }))
        .await;
    assert!(published["revision"].is_u64(), "{published}");
    app
}

fn validate_json(app: &TestApp, body: &str) -> Value {
    validate_json_schema(
        app,
        "sdmx-json-2.0.0/sdmx-json-data-schema.json",
        "several dataflows",
        body,
    )
}

/// Validates SDMX-ML 3.0 against `SDMXMessage.xsd` and the schema of each of `flows`.
async fn validate_ml(app: &TestApp, flows: &[&str], body: &str) {
    if skip_tools() {
        return;
    }
    let dir = app.dir.path();
    let message =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sdmx-ml-3.0/schemas/SDMXMessage.xsd");
    let mut imports = format!(
        "<xs:import namespace=\"http://www.sdmx.org/resources/sdmxml/schemas/v3_0/message\" schemaLocation=\"{}\"/>",
        message.display()
    );
    for (i, flow) in flows.iter().enumerate() {
        let (status, xsd) = get(app, &format!("schema/dataflow/{flow}/1.0.0"), None).await;
        assert_eq!(status, 200, "{xsd}");
        let namespace = attr(&xsd, "targetNamespace").expect("targetNamespace").to_owned();
        std::fs::write(dir.join(format!("multi{i}.xsd")), &xsd).unwrap();
        imports.push_str(&format!(
            "<xs:import namespace=\"{namespace}\" schemaLocation=\"multi{i}.xsd\"/>"
        ));
    }
    std::fs::write(
        dir.join("multi.xsd"),
        format!("<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">{imports}</xs:schema>"),
    )
    .unwrap();
    let out = xmllint(&dir.join("multi.xsd"), &dir.join("multi.xml"), body);
    assert!(
        out.status.success(),
        "not valid SDMX-ML 3.0:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &body[..body.len().min(3000)]
    );
}

/// The agency of the second dataflow, as its SDMX-CSV rows name it.
fn other_structure_id(rows: &[std::collections::HashMap<String, String>]) -> String {
    rows.iter()
        .map(|r| r["STRUCTURE_ID"].clone())
        .find(|s| s.contains(OTHER))
        .expect("a row of the second dataflow")
}

/// `*` in every part: both dataflows' data, each with its own structure, in all three formats.
#[tokio::test]
async fn several_dataflows_in_every_format() {
    let app = two_flows(None).await;
    let expected = graphql_figures(&app, None).await;
    let path = format!("{ALL}/*");

    let (status, body) = get(&app, &path, Some(CSV)).await;
    assert_eq!(status, 200, "{body}");
    let header = body.lines().next().unwrap();
    // The dimensions of the first structure, then the further one of the second, then the
    // measure and the attributes (SDMX-CSV 2.0 guide, "Columns").
    assert!(
        header.starts_with(
            "STRUCTURE,STRUCTURE_ID,ACTION,FREQ,SERVICE_TYPE,INDUSTRY,COUNTERPART,MEASURE,TIME_PERIOD,FLOW_TYPE,OBS_VALUE,"
        ),
        "{header}"
    );
    let rows = csv_rows(&body);
    let kr: Vec<_> = rows
        .iter()
        .filter(|r| r["STRUCTURE_ID"] == "BOK:KR_KNOWLEDGE_SERVICES(1.0.0)")
        .collect();
    assert_eq!(kr.len(), expected.len(), "{body}");
    assert!(kr
        .iter()
        .all(|r| r["FLOW_TYPE"].is_empty() && !r["SERVICE_TYPE"].is_empty()));
    let other_id = other_structure_id(&rows);
    let mut other: Vec<(String, String, String)> = rows
        .iter()
        .filter(|r| r["STRUCTURE_ID"] == other_id)
        .map(|r| {
            assert!(r["SERVICE_TYPE"].is_empty() && r["INDUSTRY"].is_empty(), "{r:?}");
            (r["FLOW_TYPE"].clone(), r["COUNTERPART"].clone(), r["OBS_VALUE"].clone())
        })
        .collect();
    other.sort();
    assert_eq!(
        other,
        [("MQ", "ASIA", "3"), ("XQ", "_T", "7")].map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    assert_eq!(rows.len(), expected.len() + 2);

    let (status, body) = get(&app, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let v = validate_json(&app, &body);
    let sets = v["data"]["dataSets"].as_array().unwrap();
    let structures = v["data"]["structures"].as_array().unwrap();
    assert_eq!((sets.len(), structures.len()), (2, 2), "{body}");
    let count = |set: &Value| -> usize {
        set["series"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s["observations"].as_object().unwrap().len())
            .sum()
    };
    for (i, set) in sets.iter().enumerate() {
        assert_eq!(set["structure"], i, "{set}");
        assert_eq!(structures[i]["dataSets"], json!([i]));
        assert_eq!(set["links"][0]["urn"], structures[i]["links"][0]["urn"]);
    }
    assert_eq!(count(&sets[0]), expected.len());
    assert_eq!(count(&sets[1]), 2);
    assert!(structures[1]["links"][0]["urn"].as_str().unwrap().contains(OTHER));
    let other_dims: Vec<&str> = structures[1]["dimensions"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(other_dims, ["FREQ", "FLOW_TYPE", "COUNTERPART", "MEASURE"]);

    // With every version: one data set per dataflow and release, each listed by its structure.
    let (status, body) = get(&app, &format!("{path}?includeHistory=true"), None).await;
    assert_eq!(status, 200, "{body}");
    let v = validate_json(&app, &body);
    let sets = v["data"]["dataSets"].as_array().unwrap();
    let structures = v["data"]["structures"].as_array().unwrap();
    assert_eq!(structures.len(), 2);
    assert!(sets.len() >= 3, "{body}");
    let mut listed: Vec<u64> = structures
        .iter()
        .flat_map(|s| s["dataSets"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap()))
        .collect();
    listed.sort();
    assert_eq!(listed, (0..sets.len() as u64).collect::<Vec<_>>());
    for (i, set) in sets.iter().enumerate() {
        let s = &structures[set["structure"].as_u64().unwrap() as usize];
        assert!(s["dataSets"].as_array().unwrap().contains(&json!(i)), "{i}: {s}");
        assert_eq!(set["links"][0]["urn"], s["links"][0]["urn"]);
    }

    let (status, body) = get(&app, &path, Some(ML)).await;
    assert_eq!(status, 200, "{body}");
    let agency = other_id.split(':').next().unwrap().to_owned();
    validate_ml(
        &app,
        &["BOK/KR_KNOWLEDGE_SERVICES", &format!("{agency}/{OTHER}")],
        &body,
    )
    .await;
    assert_eq!(body.matches("<message:Structure ").count(), 2, "{body}");
    assert!(body.contains("ss:structureRef=\"STR1\" xsi:type=\"ns1:DataSetType\""));
    assert!(body.contains("ss:structureRef=\"STR2\" xsi:type=\"ns2:DataSetType\""));
    let obs = |set: &str| set.matches("<Obs ").count();
    let sets: Vec<&str> = body.split("<message:DataSet ").skip(1).collect();
    assert_eq!(sets.len(), 2);
    assert_eq!((obs(sets[0]), obs(sets[1])), (expected.len(), 2));
}

/// A key applies to each dataflow on its own: a code one dataflow lacks, or more parts than
/// it has dimensions, leaves that dataflow out; a key no dataflow can answer is 404.
#[tokio::test]
async fn keys_apply_per_dataflow() {
    let app = two_flows(None).await;
    // FLOW_TYPE MQ is no SERVICE_TYPE code of the fixture's: only the second dataflow answers.
    let (status, body) = get(&app, &format!("{ALL}/S.MQ"), Some(CSV)).await;
    assert_eq!(status, 200, "{body}");
    let rows = csv_rows(&body);
    assert_eq!(rows.len(), 1, "{body}");
    assert!(rows[0]["STRUCTURE_ID"].contains(OTHER));
    assert_eq!(rows[0]["OBS_VALUE"], "3");

    // Five parts: too many for the second dataflow's four dimensions.
    let (status, body) = get(&app, &format!("{ALL}/S._T._T._T.BAL"), Some(CSV)).await;
    assert_eq!(status, 200, "{body}");
    let rows = csv_rows(&body);
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r["STRUCTURE_ID"] == "BOK:KR_KNOWLEDGE_SERVICES(1.0.0)"));

    // Alternatives (`,`) are kept per dataflow too: one for each.
    let (status, body) = get(&app, &format!("{ALL}/S._T._T._T.BAL,S.XQ"), None).await;
    assert_eq!(status, 200, "{body}");
    let v = validate_json(&app, &body);
    assert_eq!(v["data"]["dataSets"].as_array().unwrap().len(), 2, "{body}");

    // Nothing anywhere: 404 saying why for each dataflow.
    let (status, body) = get(&app, &format!("{ALL}/S.NOPE"), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("KR_KNOWLEDGE_SERVICES") && body.contains(OTHER), "{body}");
    assert!(body.contains("NOPE"), "{body}");

    // One dataflow named: as before, an unknown code is a bad key (400).
    let (status, body) = get(&app, "data/dataflow/BOK/KR_KNOWLEDGE_SERVICES/1.0.0/S.NOPE", None).await;
    assert_eq!(status, 400, "{body}");
}

/// `--sdmx-max-observations` counts the figures of every dataflow the answer reads.
#[tokio::test]
async fn limit_counts_across_dataflows() {
    let probe = two_flows(None).await;
    let n = graphql_figures(&probe, None).await.len() as u64;
    drop(probe);
    // Room for the fixture's figures and one more: each dataflow alone fits, both do not.
    let app = two_flows(Some(n + 1)).await;
    let (status, body) = get(&app, "data/dataflow/BOK/KR_KNOWLEDGE_SERVICES/1.0.0", Some(CSV)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&app, &format!("{ALL}/*"), Some(CSV)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("across the dataflows"), "{body}");
    // A key that leaves the fixture's dataflow out fits again.
    let (status, body) = get(&app, &format!("{ALL}/S.XQ"), Some(CSV)).await;
    assert_eq!(status, 200, "{body}");
}
