//! SDMX-REST 2.2 under `/sdmx/3.0/`, over real HTTP on port 0: data in SDMX-JSON 2.0,
//! SDMX-ML 3.0 structure-specific data and SDMX-CSV 2.0, whose figures must equal GraphQL's
//! (latest, as of a time between the preliminary release and the revision, every version);
//! the component filters; the errors, in the format asked for.
//!
//! Every SDMX-JSON answer is validated with Python's `jsonschema` against the standard's
//! schema (`tests/data/sdmx-json-2.0.0`), every SDMX-ML 3.0 answer with `xmllint` against the
//! standard's schemas (`tests/data/sdmx-ml-3.0/schemas`) and the DSD's schema the service
//! gives (`schema/dataflow/...`).

use serde_json::Value;

use super::{
    attr, csv_figures, csv_rows, data_dir, graphql_figures, skip_tools, validate_json_schema, xmllint, Figure, BETWEEN,
};
use crate::support::{spawn_app, spawn_app_with, TestApp};

const DATA: &str = "data/dataflow/BOK/KR_KNOWLEDGE_SERVICES/1.0.0";
const ML: &str = "application/vnd.sdmx.data+xml;version=3.0.0";
const CSV: &str = "application/vnd.sdmx.data+csv;version=2.0.0";

/// A GET below `/sdmx/3.0/`.
async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    super::get_below(app, "3.0", path, accept).await
}

/// Validates an SDMX-JSON 2.0 data message against the standard's schema.
fn validate_json(app: &TestApp, what: &str, body: &str) -> Value {
    validate_json_schema(app, "sdmx-json-2.0.0/sdmx-json-data-schema.json", what, body)
}

/// Validates SDMX-ML 3.0 (`dimension` at the observation level; `None`: an error message)
/// against `SDMXMessage.xsd` and, for data, the DSD's schema the service gives.
async fn validate_ml(app: &TestApp, dimension: Option<&str>, body: &str) {
    if skip_tools() {
        return;
    }
    let dir = app.dir.path();
    let message = data_dir("sdmx-ml-3.0/schemas/SDMXMessage.xsd");
    let mut imports = format!(
        "<xs:import namespace=\"http://www.sdmx.org/resources/sdmxml/schemas/v3_0/message\" schemaLocation=\"{}\"/>",
        message.display()
    );
    if let Some(d) = dimension {
        let (status, headers, xsd) = get(
            app,
            &format!("schema/dataflow/BOK/KR_KNOWLEDGE_SERVICES/1.0.0?dimensionAtObservation={d}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{xsd}");
        assert_eq!(
            headers["content-type"],
            "application/vnd.sdmx.schema+xml; version=3.0.0"
        );
        let namespace = attr(&xsd, "targetNamespace").expect("targetNamespace").to_owned();
        std::fs::write(dir.join("dsd3.xsd"), &xsd).unwrap();
        imports.push_str(&format!(
            "<xs:import namespace=\"{namespace}\" schemaLocation=\"dsd3.xsd\"/>"
        ));
    }
    std::fs::write(
        dir.join("both3.xsd"),
        format!("<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">{imports}</xs:schema>"),
    )
    .unwrap();
    let out = xmllint(&dir.join("both3.xsd"), &dir.join("answer3.xml"), body);
    assert!(
        out.status.success(),
        "not valid SDMX-ML 3.0 ({dimension:?}):\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &body[..body.len().min(3000)]
    );
}

/// The figures of an SDMX-JSON 2.0 time-series message (every data set).
fn json_figures(v: &Value) -> Vec<Figure> {
    let structure = &v["data"]["structures"][0];
    let series_dims = structure["dimensions"]["series"].as_array().unwrap();
    let time = &structure["dimensions"]["observation"][0]["values"];
    let obs_attrs: Vec<&str> = structure["attributes"]["observation"]
        .as_array()
        .map(|a| a.iter().map(|x| x["id"].as_str().unwrap()).collect())
        .unwrap_or_default();
    let status_at = obs_attrs.iter().position(|a| *a == "OBS_STATUS").unwrap() + 1;
    let mut out = Vec::new();
    for ds in v["data"]["dataSets"].as_array().unwrap() {
        for (key, series) in ds["series"].as_object().unwrap() {
            let codes: Vec<&str> = key
                .split(':')
                .zip(series_dims)
                .map(|(i, d)| d["values"][i.parse::<usize>().unwrap()]["id"].as_str().unwrap())
                .collect();
            for (t, o) in series["observations"].as_object().unwrap() {
                out.push((
                    codes[1..4].join("."),
                    time[t.parse::<usize>().unwrap()]["value"].as_str().unwrap().to_owned(),
                    codes[4].to_owned(),
                    o[0].to_string().parse().unwrap(),
                    o[status_at].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The figures of SDMX-ML 3.0 structure-specific data (time series).
fn ml_figures(body: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    for series in body.split("<Series ").skip(1) {
        let key = ["SERVICE_TYPE", "INDUSTRY", "COUNTERPART"]
            .map(|d| attr(series, d).unwrap())
            .join(".");
        let measure = attr(series, "MEASURE").unwrap().to_owned();
        for o in series.split("<Obs ").skip(1) {
            out.push((
                key.clone(),
                attr(o, "TIME_PERIOD").unwrap().to_owned(),
                measure.clone(),
                attr(o, "OBS_VALUE").unwrap().parse().unwrap(),
                attr(o, "OBS_STATUS").unwrap().to_owned(),
            ));
        }
    }
    out.sort();
    out
}

/// The figures of SDMX-CSV 2.0, whose rows name the dataflow.
fn csv2_figures(body: &str) -> Vec<Figure> {
    for r in csv_rows(body) {
        assert_eq!(r["STRUCTURE"], "dataflow");
        assert_eq!(r["STRUCTURE_ID"], "BOK:KR_KNOWLEDGE_SERVICES(1.0.0)");
    }
    csv_figures(body)
}

/// The three formats, latest and as of a time between the preliminary release and the
/// revision, hold GraphQL's figures; every answer validates; SDMX-JSON is the default.
#[tokio::test]
async fn v30_data_in_every_format_equals_graphql() {
    let app = spawn_app().await;
    for (as_of, query) in [(None, String::new()), (Some(BETWEEN), format!("?asOf={BETWEEN}"))] {
        let expected = graphql_figures(&app, as_of).await;
        assert!(!expected.is_empty());
        let path = format!("{DATA}{query}");
        let (status, headers, body) = get(&app, &path, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            headers["content-type"],
            "application/vnd.sdmx.data+json; version=2.0.0; charset=utf-8"
        );
        let v = validate_json(&app, &path, &body);
        assert_eq!(json_figures(&v), expected, "SDMX-JSON {query}");

        let (status, _, body) = get(&app, &path, Some(ML)).await;
        assert_eq!(status, 200, "{body}");
        validate_ml(&app, Some("TIME_PERIOD"), &body).await;
        assert_eq!(ml_figures(&body), expected, "SDMX-ML 3.0 {query}");

        let (status, headers, body) = get(&app, &path, Some(CSV)).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers["content-type"].to_str().unwrap().contains("version=2.0.0"));
        assert!(body.starts_with("STRUCTURE,STRUCTURE_ID,ACTION,FREQ,"), "{body}");
        assert_eq!(csv2_figures(&body), expected, "SDMX-CSV 2.0 {query}");
    }
    // */* is SDMX-JSON, as SDMX-REST 2.2 makes it the default.
    let (_, headers, _) = get(&app, DATA, Some("*/*")).await;
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/vnd.sdmx.data+json"));
}

/// includeHistory: one data set per release, each `Replace` with its publication time; the
/// preliminary and the revised value of the total are both there, with their vintage.
#[tokio::test]
async fn v30_history_carries_every_version() {
    let app = spawn_app().await;
    let path = format!("{DATA}/S._T._T._T.BAL?includeHistory=true");
    let (status, _, body) = get(&app, &path, Some(CSV)).await;
    assert_eq!(status, 200, "{body}");
    let rows = csv_rows(&body);
    let h1: Vec<_> = rows.iter().filter(|r| r["TIME_PERIOD"] == "2025-S1").collect();
    assert!(h1.len() >= 2, "{body}");
    assert_eq!(h1[0]["OBS_VALUE"], "-4530");
    assert_eq!(h1[0]["RELEASE_STATUS"], "PRELIMINARY");
    assert!(h1.iter().all(|r| r["ACTION"] == "R"));
    assert_ne!(h1[0]["RELEASE_ID"], h1[1]["RELEASE_ID"]);

    let (status, _, body) = get(&app, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let v = validate_json(&app, &path, &body);
    let sets = v["data"]["dataSets"].as_array().unwrap();
    assert!(sets.len() >= 2);
    assert!(sets
        .iter()
        .all(|s| s["action"] == "Replace" && s["validFrom"].is_string()));

    let (status, _, body) = get(&app, &path, Some(ML)).await;
    assert_eq!(status, 200, "{body}");
    validate_ml(&app, Some("TIME_PERIOD"), &body).await;
    assert!(body.matches("ss:action=\"Replace\"").count() >= 2);
}

/// Keys with `*`, `,` and trailing parts left out; c[] filters with operators on
/// dimensions, the time and the value; the other views; attributes and measures.
#[tokio::test]
async fn v30_keys_filters_and_views() {
    let app = spawn_app().await;
    let latest = graphql_figures(&app, None).await;
    let csv = |path: String| {
        let app = &app;
        async move {
            let (status, _, body) = get(app, &path, Some(CSV)).await;
            assert_eq!(status, 200, "{path}: {body}");
            csv2_figures(&body)
        }
    };
    let only = |f: &dyn Fn(&Figure) -> bool| latest.iter().filter(|x| f(x)).cloned().collect::<Vec<_>>();
    assert_eq!(
        csv(format!("{DATA}/S.IPR,S.ICT")).await,
        only(&|f| f.0 == "IPR._T._T" || f.0 == "ICT._T._T")
    );
    assert_eq!(csv(format!("{DATA}/*.*._T.ASIA")).await, only(&|f| f.0 == "_T._T.ASIA"));
    assert_eq!(
        csv(format!("{DATA}?c[COUNTERPART]=sw:A,ew:R&c[SERVICE_TYPE]=_T")).await,
        only(&|f| f.0 == "_T._T.ASIA" || f.0 == "_T._T.EUR")
    );
    assert_eq!(
        csv(format!("{DATA}?c%5BOBS_VALUE%5D=ge:0+ne:440")).await,
        only(&|f| f.3 >= rust_decimal::Decimal::ZERO && f.3 != rust_decimal::Decimal::from(440))
    );
    assert_eq!(
        csv(format!("{DATA}?c[TIME_PERIOD]=lt:2025")).await,
        only(&|f| f.1.as_str() < "2025")
    );
    assert_eq!(csv(format!("{DATA}?c[OBS_STATUS]=A")).await, only(&|f| f.4 == "A"));

    // Flat and cross-sectional views validate, in SDMX-JSON and SDMX-ML 3.0.
    for d in ["AllDimensions", "COUNTERPART"] {
        let path = format!("{DATA}?dimensionAtObservation={d}");
        let (status, _, body) = get(&app, &path, None).await;
        assert_eq!(status, 200, "{body}");
        validate_json(&app, &path, &body);
        let (status, _, body) = get(&app, &path, Some(ML)).await;
        assert_eq!(status, 200, "{body}");
        validate_ml(&app, Some(d), &body).await;
    }
    // No attributes, no measure: the keys alone.
    let path = format!("{DATA}/S.IPR?attributes=none&measures=none");
    let (_, _, body) = get(&app, &path, Some(CSV)).await;
    assert_eq!(
        body.lines().next().unwrap(),
        "STRUCTURE,STRUCTURE_ID,ACTION,FREQ,SERVICE_TYPE,INDUSTRY,COUNTERPART,MEASURE,TIME_PERIOD"
    );
    let (_, _, body) = get(&app, &path, None).await;
    let v = validate_json(&app, &path, &body);
    assert!(v["data"]["structures"][0]["attributes"].as_object().unwrap().is_empty());
    let path = format!("{DATA}/S.IPR?attributes=OBS_STATUS");
    let (_, _, body) = get(&app, &path, Some(ML)).await;
    validate_ml(&app, Some("TIME_PERIOD"), &body).await;
    assert!(!body.contains("UNIT=") && !body.contains("RELEASE_ID=") && body.contains("OBS_STATUS="));
}

/// Errors are SDMX-JSON for SDMX-JSON requests and SDMX-ML 3.0 otherwise, each naming what
/// was wrong: 404, 400, 406, 413 and 501.
#[tokio::test]
async fn v30_errors_in_the_format_asked_for() {
    let app = spawn_app().await;
    let cases: [(&str, u16, &str); 10] = [
        ("data/dataflow/BOK/NO_SUCH_FLOW", 404, "no dataflow"),
        (
            "data/dataflow/BOK/KR_KNOWLEDGE_SERVICES/2.0",
            404,
            "has version 1.0.0 only",
        ),
        (
            &format!("{DATA}/S.XXX"),
            400,
            "`XXX` is no code of dimension SERVICE_TYPE",
        ),
        (&format!("{DATA}/S._T._T._T.BAL.X"), 400, "has 6 parts"),
        (&format!("{DATA}?c[COLOUR]=red"), 400, "`COLOUR` is no component"),
        (&format!("{DATA}?c[OBS_VALUE]=gt:big"), 400, "not a number"),
        (&format!("{DATA}?startPeriod=2025"), 400, "c[TIME_PERIOD]"),
        (
            &format!("{DATA}?updatedAfter=2026-01-01&asOf=2025-01-01"),
            400,
            "updatedAfter",
        ),
        (&format!("{DATA}?offset=10"), 501, "offset"),
        ("availability/dataflow/BOK", 501, "not implemented"),
    ];
    for (path, status, text) in cases {
        let (got, headers, body) = get(&app, path, None).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/vnd.sdmx.data+json"));
        let v = validate_json(&app, path, &body);
        assert!(
            v["errors"][0]["title"].as_str().unwrap().contains(text),
            "{path}: {body}"
        );
        let (got, headers, body) = get(&app, path, Some(ML)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("application/xml"));
        assert!(body.contains(text), "{path}: {body}");
        validate_ml(&app, None, &body).await;
    }
    // The fixed bounds: 64 keys, 64 conditions.
    let keys = vec!["S.IPR"; 65].join(",");
    let (status, _, body) = get(&app, &format!("{DATA}/{keys}"), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than 64 keys"), "{body}");
    let conditions = vec!["ne:X"; 65].join("+");
    let (status, _, body) = get(&app, &format!("{DATA}?c[FREQ]={conditions}"), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than 64 conditions"), "{body}");

    // 406: a format not offered, answered as SDMX-ML 3.0.
    let (status, _, body) = get(&app, DATA, Some("application/vnd.sdmx.data+json;version=2.1.0")).await;
    assert_eq!(status, 406, "{body}");
    assert!(body.contains("not offered"), "{body}");
    validate_ml(&app, None, &body).await;

    // 413: beyond the observation limit, before anything is sent.
    let small = spawn_app_with(|c| c.sdmx.max_observations = 5, true).await;
    let (status, _, body) = get(&small, DATA, None).await;
    assert_eq!(status, 413, "{body}");
    let v = validate_json(&small, "413", &body);
    assert_eq!(v["errors"][0]["code"], 130);
}

/// The version part of a data query follows the rules of the structure queries (SDMX-REST
/// 2.2 "Query syntax for specific, latest or all artefact versions") against the dataflow's
/// version 1.0.0: whatever matches answers the same data; what matches nothing is a 404
/// naming the version there is; SDMX-REST 1.5 keywords are refused.
#[tokio::test]
async fn v30_data_versions_follow_the_structure_rules() {
    let app = spawn_app().await;
    let path = |v: &str| format!("data/dataflow/BOK/KR_KNOWLEDGE_SERVICES/{v}/S.IPR");
    let (status, _, want) = get(&app, &path("1.0.0"), Some(CSV)).await;
    assert_eq!(status, 200, "{want}");
    assert!(want.lines().count() > 1, "{want}");
    for v in [
        "+",
        "~",
        "*",
        "+.0.0",
        "1+.0.0",
        "1.+.0",
        "1.*.0",
        "1.0.*",
        "1.0.0~",
        "2.0.0,1.0.0",
    ] {
        let (status, _, body) = get(&app, &path(v), Some(CSV)).await;
        assert_eq!((status, body.as_str()), (200, want.as_str()), "{v}");
    }
    // `1.0` and `1.*` are two-part forms (no artefact has such a version).
    for v in ["2.0.0", "1.1+.0", "1.0.1+", "2+.0.0", "1.0", "1.*", "~.0"] {
        let (status, _, body) = get(&app, &path(v), None).await;
        assert_eq!(status, 404, "{v}: {body}");
        let e = validate_json(&app, v, &body);
        let title = e["errors"][0]["title"].as_str().unwrap();
        assert!(
            title.contains(&format!(
                "version `{v}` matches no version of dataflow KR_KNOWLEDGE_SERVICES: every artefact here has version 1.0.0 only"
            )),
            "{v}: {title}"
        );
    }
    for (v, text) in [
        ("latest", "writes `~`"),
        ("2.3+", "three parts"),
        ("x", "is not a version"),
    ] {
        let (status, _, body) = get(&app, &path(v), None).await;
        assert_eq!(status, 400, "{v}: {body}");
        assert!(body.contains(text), "{v}: {body}");
    }
    // The schema query too.
    let schema = |v: &str| format!("schema/dataflow/BOK/KR_KNOWLEDGE_SERVICES/{v}");
    assert_eq!(get(&app, &schema("+"), None).await.0, 200);
    let (status, _, body) = get(&app, &schema("1.0"), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has version 1.0.0 only"), "{body}");
}
