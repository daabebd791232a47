//! SDMX-JSON 1.0 data under `/sdmx/2.1/`, over real HTTP on port 0: the figures of every
//! view (time series, flat, cross-sectional) equal GraphQL's, latest and as of a time; the
//! `detail` variants; one data set per release with its validity; `updatedAfter`; errors
//! as SDMX-JSON 1.0 messages; and Python's `sdmx1` reading the answer.
//!
//! Every SDMX-JSON 1.0 answer is validated with Python's `jsonschema` against the standard's
//! schema (`tests/data/sdmx-json-1.0`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{get, graphql_figures, run_client, skip_tools, validate_json_schema, Figure, BETWEEN, FLOW};
use crate::support::{spawn_app, spawn_app_with, TestApp, PRELIMINARY_ID, REVISION_ID};

const JSON10: &str = "application/vnd.sdmx.data+json;version=1.0.0";
const MEDIA: &str = "application/vnd.sdmx.data+json; version=1.0.0; charset=utf-8";

/// Validates an SDMX-JSON 1.0 message (data or errors) against the standard's schema.
fn validate(app: &TestApp, what: &str, body: &str) -> Value {
    validate_json_schema(app, "sdmx-json-1.0/sdmx-json-data-schema.json", what, body)
}

/// GETs a data query in SDMX-JSON 1.0 and expects 200 and a valid message.
async fn get_json(app: &TestApp, query: &str) -> Value {
    let path = format!("data/{FLOW}{query}");
    let (status, headers, body) = get(app, &path, Some(JSON10)).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(headers["content-type"], MEDIA);
    validate(app, &path, &body)
}

/// One observation as read back: its data set, its full key, its value (if any) and its
/// attributes, every index resolved through the structure.
#[derive(Debug, Clone, PartialEq)]
struct Obs {
    dataset: usize,
    key: BTreeMap<String, String>,
    value: Option<Value>,
    attributes: BTreeMap<String, String>,
}

/// The value a component's index stands for: its id, or its name when it has none.
fn resolve(component: &Value, index: &Value) -> (String, String) {
    let i = index.as_u64().unwrap_or_else(|| panic!("index {index}")) as usize;
    let value = &component["values"][i];
    let text = value["id"]
        .as_str()
        .or(value["name"].as_str())
        .unwrap_or_else(|| panic!("{value}"));
    (component["id"].as_str().unwrap().to_owned(), text.to_owned())
}

/// Every observation of the message in any view, and the keys of series without any.
fn decode(v: &Value) -> (Vec<Obs>, Vec<BTreeMap<String, String>>) {
    let structure = &v["data"]["structure"];
    let level = |kind: &str, at: &str| structure[kind][at].as_array().cloned().unwrap_or_default();
    let (series_dims, obs_dims) = (level("dimensions", "series"), level("dimensions", "observation"));
    let (ds_attrs, obs_attrs) = (level("attributes", "dataSet"), level("attributes", "observation"));
    assert!(level("dimensions", "dataSet").is_empty() && level("attributes", "series").is_empty());
    let key_of = |key: &str, dims: &[Value]| -> BTreeMap<String, String> {
        let parts: Vec<&str> = if key.is_empty() {
            Vec::new()
        } else {
            key.split(':').collect()
        };
        assert_eq!(parts.len(), dims.len(), "key {key}");
        parts
            .iter()
            .zip(dims)
            .map(|(i, d)| resolve(d, &Value::from(i.parse::<u64>().unwrap())))
            .collect()
    };
    let (mut out, mut bare) = (Vec::new(), Vec::new());
    for (n, ds) in v["data"]["dataSets"].as_array().unwrap().iter().enumerate() {
        let ds_values: BTreeMap<String, String> = ds["attributes"]
            .as_array()
            .map(|a| a.iter().zip(&ds_attrs).map(|(i, c)| resolve(c, i)).collect())
            .unwrap_or_default();
        let mut groups: Vec<(BTreeMap<String, String>, &Value)> = Vec::new();
        if let Some(series) = ds["series"].as_object() {
            for (key, s) in series {
                match s.get("observations") {
                    Some(o) => groups.push((key_of(key, &series_dims), o)),
                    None => bare.push(key_of(key, &series_dims)),
                }
            }
        } else {
            groups.push((BTreeMap::new(), &ds["observations"]));
        }
        for (series_key, observations) in groups {
            for (key, array) in observations.as_object().unwrap() {
                let array = array.as_array().unwrap();
                let mut full = series_key.clone();
                full.extend(key_of(key, &obs_dims));
                let mut attributes = ds_values.clone();
                attributes.extend(array.iter().skip(1).zip(&obs_attrs).map(|(i, c)| resolve(c, i)));
                out.push(Obs {
                    dataset: n,
                    key: full,
                    value: array.first().cloned(),
                    attributes,
                });
            }
        }
    }
    (out, bare)
}

fn figures(v: &Value) -> Vec<Figure> {
    let mut out: Vec<Figure> = decode(v)
        .0
        .into_iter()
        .map(|o| {
            (
                ["SERVICE_TYPE", "INDUSTRY", "COUNTERPART"]
                    .map(|d| o.key[d].clone())
                    .join("."),
                o.key["TIME_PERIOD"].clone(),
                o.key["MEASURE"].clone(),
                o.value.expect("a value").to_string().parse().unwrap(),
                o.attributes["OBS_STATUS"].clone(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Every view (time series, flat, cross-sectional), asked for by `Accept` or `format`, holds
/// GraphQL's figures, latest and as of a time; the vintage attributes are those of the
/// release that set each figure.
#[tokio::test]
async fn json10_holds_graphqls_figures_in_every_view() {
    let app = spawn_app().await;
    for (as_of, query) in [(None, ""), (Some(BETWEEN), "asOf=2025-10-01T00:00:00%2B00:00&")] {
        let expected = graphql_figures(&app, as_of).await;
        assert!(!expected.is_empty());
        for view in [
            "",
            "dimensionAtObservation=AllDimensions",
            "dimensionAtObservation=COUNTERPART",
        ] {
            let v = get_json(&app, &format!("?{query}{view}")).await;
            assert_eq!(figures(&v), expected, "{query}{view}");
            let levels = &v["data"]["structure"]["dimensions"];
            let at_obs: Vec<&str> = levels["observation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap())
                .collect();
            match view {
                "" => assert_eq!(at_obs, ["TIME_PERIOD"]),
                "dimensionAtObservation=COUNTERPART" => assert_eq!(at_obs, ["COUNTERPART"]),
                _ => assert_eq!(at_obs.len(), 6),
            }
        }
    }
    // `format=jsondata` and `application/json` ask for the same.
    for (query, accept) in [("?format=jsondata", None), ("", Some("application/json"))] {
        let (status, headers, body) = get(&app, &format!("data/{FLOW}{query}"), accept).await;
        assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, MEDIA));
        assert_eq!(
            figures(&validate(&app, query, &body)),
            graphql_figures(&app, None).await
        );
    }

    let v = get_json(&app, &format!("/S.IPR._T._T.BAL?asOf={BETWEEN}").replace('+', "%2B")).await;
    let (obs, _) = decode(&v);
    assert_eq!(obs.len(), 1, "{v}");
    let attributes: Vec<(&str, &str)> = obs[0]
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attributes,
        [
            ("OBS_STATUS", "P"),
            ("PUBLISHED_AT", "2025-09-03T03:00:00Z"),
            ("RELEASE_ID", PRELIMINARY_ID),
            ("RELEASE_STATUS", "PRELIMINARY"),
            ("UNIT", "USD"),
            ("UNIT_MULT", "6"),
        ]
    );
    assert_eq!(obs[0].value, Some(serde_json::json!(-2450)));
    assert_eq!(v["data"]["dataSets"][0]["action"], "Information");
    // Only the values used are listed, each code with its place in its code list.
    let counterpart = &v["data"]["structure"]["dimensions"]["series"][3];
    assert_eq!(counterpart["id"], "COUNTERPART");
    assert_eq!(counterpart["values"].as_array().unwrap().len(), 1, "{counterpart}");
    assert_eq!(counterpart["values"][0]["id"], "_T");
    assert!(counterpart["values"][0]["order"].is_u64());
}

/// `detail`: data only without attributes; series keys only; attributes without data.
/// `includeHistory`: one data set per release, replacing, valid from its publication, and
/// none after `asOf`. `updatedAfter`: what the later release set.
#[tokio::test]
async fn json10_detail_history_and_updated_after() {
    let app = spawn_app().await;
    let all = graphql_figures(&app, None).await;

    let v = get_json(&app, "?detail=dataonly").await;
    let (obs, _) = decode(&v);
    assert_eq!(obs.len(), all.len());
    assert!(obs.iter().all(|o| o.attributes.is_empty() && o.value.is_some()));
    assert_eq!(
        v["data"]["structure"]["attributes"]["observation"],
        serde_json::json!([])
    );

    let series: std::collections::BTreeSet<(String, String)> = all.iter().map(|f| (f.0.clone(), f.2.clone())).collect();
    for detail in ["serieskeysonly", "nodata"] {
        let v = get_json(&app, &format!("?detail={detail}")).await;
        let (obs, bare) = decode(&v);
        assert!(obs.is_empty(), "{detail}: {obs:?}");
        assert_eq!(bare.len(), series.len(), "{detail}");
        let units = v["data"]["dataSets"][0].get("attributes");
        assert_eq!(units.is_some(), detail == "nodata", "{detail}: {units:?}");
    }

    let v = get_json(&app, "/S.IPR._T._T.BAL?includeHistory=true").await;
    let sets = v["data"]["dataSets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{v}");
    let from: Vec<(&str, &str)> = sets
        .iter()
        .map(|s| (s["action"].as_str().unwrap(), s["validFrom"].as_str().unwrap()))
        .collect();
    assert_eq!(
        from,
        [("Replace", "2025-09-03T03:00:00Z"), ("Replace", "2025-12-10T03:00:00Z")]
    );
    let (obs, _) = decode(&v);
    let versions: Vec<(usize, String, &str)> = obs
        .iter()
        .map(|o| {
            (
                o.dataset,
                o.value.as_ref().unwrap().to_string(),
                o.attributes["RELEASE_ID"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (0, "-2450".to_owned(), PRELIMINARY_ID),
            (1, "-2530".to_owned(), REVISION_ID)
        ]
    );
    let early = get_json(
        &app,
        &format!("/S.IPR._T._T.BAL?includeHistory=true&asOf={BETWEEN}").replace('+', "%2B"),
    )
    .await;
    assert_eq!(early["data"]["dataSets"].as_array().unwrap().len(), 1);

    let v = get_json(&app, &format!("?updatedAfter={BETWEEN}").replace('+', "%2B")).await;
    let (obs, _) = decode(&v);
    assert_eq!(obs.len(), 12);
    assert!(obs.iter().all(|o| o.attributes["RELEASE_ID"] == REVISION_ID));
}

/// When a data query asks for SDMX-JSON 1.0, its errors are SDMX-JSON 1.0 messages: the
/// SDMX code, the class as title and what was wrong as detail. Other formats and structure
/// queries keep SDMX-ML errors; SDMX-JSON 2.0 is not offered here (406). An answer beyond
/// the observation limit is a 413 in SDMX-JSON 1.0 too.
#[tokio::test]
async fn json10_errors_are_sdmx_json_messages() {
    let app = spawn_app().await;
    for (path, accept, status, code, says) in [
        ("data/NOPE", Some(JSON10), 404, 100, "no dataflow `NOPE`"),
        ("data/NOPE?format=jsondata", None, 404, 100, "no dataflow `NOPE`"),
        (
            "data/KR_KNOWLEDGE_SERVICES?detail=most",
            Some("application/json"),
            400,
            140,
            "parameter `detail`",
        ),
        (
            "data/KR_KNOWLEDGE_SERVICES/S.NOPE._T._T.BAL",
            Some(JSON10),
            400,
            140,
            "`NOPE` is no code",
        ),
    ] {
        let (got, headers, body) = get(&app, path, accept).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(headers["content-type"], MEDIA, "{path}");
        let v = validate(&app, path, &body);
        assert!(v.get("data").is_none());
        let error = &v["errors"][0];
        assert_eq!(error["code"], code, "{body}");
        assert!(error["detail"].as_str().unwrap().contains(says), "{path}: {body}");
        assert!(error["title"].is_string());
    }
    for (path, accept, status) in [
        (
            "data/KR_KNOWLEDGE_SERVICES",
            Some("application/vnd.sdmx.data+json;version=2.0.0"),
            406,
        ),
        (
            "data/KR_KNOWLEDGE_SERVICES?format=jsondata&formatVersion=2.0.0",
            None,
            406,
        ),
        ("dataflow/BOK?format=jsondata", None, 406),
        ("data/NOPE", Some("text/csv"), 404),
    ] {
        let (got, headers, body) = get(&app, path, accept).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            headers["content-type"].to_str().unwrap().starts_with("application/xml"),
            "{path}"
        );
        assert!(body.contains("<message:Error"), "{body}");
    }
    let (_, _, body) = get(&app, "data/KR_KNOWLEDGE_SERVICES", Some("application/pdf")).await;
    assert!(
        body.contains("application/vnd.sdmx.data+json;version=1.0.0"),
        "the 406 lists it: {body}"
    );

    // 413, counted before anything is sent: a JSON message, not a cut data message.
    let small = spawn_app_with(|c| c.sdmx.max_observations = 5, true).await;
    let (status, headers, body) = get(&small, "data/KR_KNOWLEDGE_SERVICES", Some(JSON10)).await;
    assert_eq!(
        (status, headers["content-type"].to_str().unwrap()),
        (413, MEDIA),
        "{body}"
    );
    let v = validate(&small, "413", &body);
    assert_eq!(v["errors"][0]["code"], 130, "{body}");
    assert!(
        v["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("more than 5 observations"),
        "{body}"
    );
}

/// Python's `sdmx1` reads the SDMX-JSON 1.0 answers (time series, flat, as of a time) and
/// finds GraphQL's figures (`client_json10.py` says what it changes first, and why).
#[tokio::test(flavor = "multi_thread")]
async fn sdmx1_reads_json10() {
    if skip_tools() {
        eprintln!("skipped: TRADELEDGER_SKIP_SDMX_TOOLS=1");
        return;
    }
    let app = spawn_app().await;
    let out = run_client(&app, "python3", "client_json10.py", "2.1", true).await;
    let read: Value = serde_json::from_str(&out).expect("the script's JSON");
    let figures = |v: &Value| -> Vec<Figure> {
        let mut out: Vec<Figure> = v
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|f| {
                let status = f[5].as_str().unwrap();
                assert_eq!(f[4] == "P", status == "PRELIMINARY", "{f}");
                (
                    f[0].as_str().unwrap().to_owned(),
                    f[1].as_str().unwrap().to_owned(),
                    f[2].as_str().unwrap().to_owned(),
                    f[3].as_str().unwrap().parse().unwrap(),
                    f[4].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let latest = graphql_figures(&app, None).await;
    assert_eq!(figures(&read["latest"]), latest);
    assert_eq!(figures(&read["flat"]), latest);
    let then = graphql_figures(&app, Some(BETWEEN)).await;
    assert_eq!(figures(&read["as_of"]), then);
    assert_ne!(then, latest);
}

/// An answer of many pages holds every figure once: no series is written twice (a key met
/// again would merge in the decoded object and lose figures), and the structure lists
/// every period used.
#[tokio::test]
async fn json10_long_answer_streams_in_pages() {
    let app = spawn_app().await;
    let mut observations = Vec::new();
    for s in ["_T", "IPR", "ICT", "CUL", "PBS"] {
        for i in ["_T", "ICT", "MFG", "DIP"] {
            for r in ["_T", "ASIA", "NAM", "EUR"] {
                for year in 1990..2024 {
                    for half in 1..=2 {
                        observations.push(serde_json::json!({ "key": format!("{s}.{i}.{r}"), "period": format!("{year}-S{half}"), "value": format!("{year}.{half}") }));
                    }
                }
            }
        }
    }
    let n = observations.len();
    assert!(n > 5000, "more than a page of 4096 figures");
    let input = serde_json::json!({
        "id": "6b1f0c2e-4d3a-4e51-9a57-2025a0000077",
        "dataset": crate::support::DATASET,
        "status": "FINAL",
        "title": "SYNTHETIC back series",
        "publishedAt": "2025-12-20T00:00:00Z",
        "observations": observations,
    });
    let v = app
        .gql_write(crate::support::PUBLISH, serde_json::json!({ "input": input }))
        .await;
    assert!(v["errors"].is_null(), "{v}");

    let v = get_json(&app, "").await;
    let (obs, _) = decode(&v);
    assert_eq!(obs.len(), n + 12);
    let series = v["data"]["dataSets"][0]["series"].as_object().unwrap();
    assert_eq!(series.len(), 80, "one series per key, as in the other formats");
    let periods = v["data"]["structure"]["dimensions"]["observation"][0]["values"]
        .as_array()
        .unwrap();
    let listed: std::collections::BTreeSet<&str> = periods.iter().map(|p| p["id"].as_str().unwrap()).collect();
    let used: std::collections::BTreeSet<&str> = obs.iter().map(|o| o.key["TIME_PERIOD"].as_str()).collect();
    assert_eq!(
        (listed.len(), &listed),
        (periods.len(), &used),
        "each period used, once"
    );
    assert!(used.len() > 68);
}
