//! SDMX-REST 1.5 under `/sdmx/2.1/`, over real HTTP on port 0: structure and data queries in
//! every format, the vintage parameters, every error code, a streamed answer of many pages,
//! and a real client (Python's `sdmx1`) whose figures must equal GraphQL's.
//!
//! Every SDMX-ML 2.1 answer is validated with `xmllint` against the standard's
//! `SDMXMessage.xsd`, structure-specific data together with the schema the service derives
//! from the DSD (`schema/dataflow/...`); the standard's schemas are kept in
//! `tests/data/sdmx-ml-2.1/schemas` (or `TRADELEDGER_SDMX_SCHEMAS`). `bash .ci/setup` installs `xmllint` (Debian `libxml2-utils`)
//! and `sdmx1`. Without them the tests fail, unless `TRADELEDGER_SKIP_SDMX_TOOLS=1` says to
//! skip what needs them.
//!
//! Here are the helpers the files share: `v21_structure` (structure queries), `v21_data`
//! (data in every format and view, parameters, long answers), `v21_vintages` (vintages,
//! caching and `sdmx1`), `v21_errors`, `json10` (SDMX-JSON 1.0), `rsdmx` (R's client),
//! `structure30` (SDMX-REST 2.2 structure queries), `v30` and `multi` (SDMX-REST 2.2 data,
//! one and several dataflows).

mod json10;
mod multi;
mod rsdmx;
mod structure30;
mod v21_data;
mod v21_errors;
mod v21_structure;
mod v21_vintages;
mod v30;

use std::path::PathBuf;
use std::process::Command;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::support::{spawn_app, spawn_app_with, TestApp, DATASET, PRELIMINARY_ID, PUBLISH, READ_SECRET, REVISION_ID};

const FLOW: &str = "KR_KNOWLEDGE_SERVICES";
/// Between the real preliminary release (2025-09-03) and the synthetic revision (2025-12-10).
const BETWEEN: &str = "2025-10-01T00:00:00+00:00";

fn skip_tools() -> bool {
    std::env::var("TRADELEDGER_SKIP_SDMX_TOOLS").as_deref() == Ok("1")
}

/// Runs an SDMX client's script (`program tests/api/sdmx/{script} BASE_URL [BETWEEN]`)
/// against `app`'s SDMX API `api` (`2.1` or `3.0`), off the runtime, and returns what it
/// printed; panics with its standard error unless it succeeded.
async fn run_client(app: &TestApp, program: &'static str, script: &'static str, api: &str, with_time: bool) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/sdmx")
        .join(script);
    let base = format!("http://{}/sdmx/{api}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(program);
        command.arg(&path).arg(&base);
        if with_time {
            command.arg(BETWEEN);
        }
        command.output()
    })
    .await
    .expect("client task")
    .unwrap_or_else(|e| panic!("running {program} (bash .ci/setup installs the SDMX clients): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {script} failed (run `bash .ci/setup` to install the clients, or set TRADELEDGER_SKIP_SDMX_TOOLS=1):\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A file below `tests/data`.
fn data_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Parses an SDMX-JSON message and validates it with Python's `jsonschema` against `schema`
/// (below `tests/data`: one of the standard's SDMX-JSON schemas); panics naming `what`
/// unless it is valid.
fn validate_json_schema(app: &TestApp, schema: &str, what: &str, body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    if skip_tools() {
        return v;
    }
    let file = app.dir.path().join("sdmx-answer.json");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.validate(json.load(open(sys.argv[2])), schema, format_checker=jsonschema.FormatChecker())",
        ])
        .arg(data_dir(schema))
        .arg(&file)
        .output()
        .expect("running python3 (bash .ci/setup installs jsonschema)");
    assert!(
        out.status.success(),
        "{what}: not valid against {schema}:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &body[..body.len().min(2000)]
    );
    v
}

fn schemas() -> PathBuf {
    std::env::var_os("TRADELEDGER_SDMX_SCHEMAS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sdmx-ml-2.1/schemas"),
        PathBuf::from,
    )
}

/// Validates an SDMX-ML 2.1 message against `SDMXMessage.xsd`; panics with xmllint's
/// complaints unless it is valid.
fn validate(app: &TestApp, what: &str, body: &str) {
    if skip_tools() {
        return;
    }
    let xsd = schemas().join("SDMXMessage.xsd");
    assert!(
        xsd.is_file(),
        "no SDMX-ML 2.1 schemas at {} (set TRADELEDGER_SDMX_SCHEMAS, or TRADELEDGER_SKIP_SDMX_TOOLS=1 to skip)",
        xsd.display()
    );
    let file = app.dir.path().join("answer.xml");
    std::fs::write(&file, body).expect("write answer");
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}); run `bash .ci/setup`, or set TRADELEDGER_SKIP_SDMX_TOOLS=1 to skip")
        });
    assert!(
        out.status.success(),
        "{what}: not valid SDMX-ML 2.1:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &body[..body.len().min(3000)]
    );
}

/// Writes `body` to `file` and runs xmllint on it with `schema`.
fn xmllint(schema: &std::path::Path, file: &std::path::Path, body: &str) -> std::process::Output {
    std::fs::write(file, body).expect("write answer");
    Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(schema)
        .arg(file)
        .output()
        .expect("running xmllint")
}

/// Validates StructureSpecificData (`dimension` at the observation level) against
/// `SDMXMessage.xsd` and the schema the service gives for the DSD.
async fn validate_structure_specific(app: &TestApp, dimension: &str, body: &str) {
    if skip_tools() {
        return;
    }
    let (status, headers, xsd) = get(
        app,
        &format!("schema/dataflow/BOK/{FLOW}/1.0.0?dimensionAtObservation={dimension}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{xsd}");
    assert_eq!(headers["content-type"], "application/vnd.sdmx.schema+xml; version=2.1");
    let namespace = attr(&xsd, "targetNamespace").expect("targetNamespace").to_owned();
    let dir = app.dir.path();
    std::fs::write(dir.join("dsd.xsd"), &xsd).unwrap();
    // One schema for both namespaces: the message's, and the DSD's (whose imports of the
    // standard's schemas are then already loaded).
    std::fs::write(
        dir.join("both.xsd"),
        format!(
            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\
             <xs:import namespace=\"http://www.sdmx.org/resources/sdmxml/schemas/v2_1/message\" schemaLocation=\"{}\"/>\
             <xs:import namespace=\"{namespace}\" schemaLocation=\"dsd.xsd\"/></xs:schema>",
            schemas().join("SDMXMessage.xsd").display()
        ),
    )
    .unwrap();
    let out = xmllint(&dir.join("both.xsd"), &dir.join("answer.xml"), body);
    assert!(
        out.status.success(),
        "not valid structure-specific data ({dimension}):\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &body[..body.len().min(3000)]
    );
}

/// A GET below `/sdmx/2.1/` with an optional `Accept`: status, headers and body.
async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    get_below(app, "2.1", path, accept).await
}

/// A GET below `/sdmx/{api}/`.
async fn get_below(
    app: &TestApp,
    api: &str,
    path: &str,
    accept: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = app.client.get(format!("http://{}/sdmx/{api}/{path}", app.addr));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

/// GETs and expects 200 and a valid SDMX-ML message.
async fn get_xml(app: &TestApp, path: &str, accept: Option<&str>) -> (reqwest::header::HeaderMap, String) {
    let (status, headers, body) = get(app, path, accept).await;
    assert_eq!(status, 200, "{path}: {body}");
    validate(app, path, &body);
    (headers, body)
}

/// `(ledger key, period, measure, value, OBS_STATUS)`, sorted.
type Figure = (String, String, String, Decimal, String);

/// The value of XML attribute `name` in `tag` (`name="..."`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("{name}=\"");
    let (at, _) = tag
        .match_indices(&pattern)
        .find(|(i, _)| *i == 0 || tag.as_bytes()[i - 1] == b' ')?;
    let at = at + pattern.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// The figures of a GenericData message (time series view).
fn generic_figures(body: &str) -> Vec<Figure> {
    let mut out = Vec::new();
    for series in body.split("<generic:Series>").skip(1) {
        let (key, obs) = series.split_once("</generic:SeriesKey>").expect("series key");
        let values: Vec<(&str, &str)> = key
            .split("<generic:Value ")
            .skip(1)
            .map(|v| (attr(v, "id").unwrap(), attr(v, "value").unwrap()))
            .collect();
        let dim = |id: &str| values.iter().find(|v| v.0 == id).map(|v| v.1).unwrap_or_default();
        let ledger_key = ["SERVICE_TYPE", "INDUSTRY", "COUNTERPART"].map(dim).join(".");
        for o in obs.split("<generic:Obs>").skip(1) {
            let period = attr(o, "value").unwrap().to_owned();
            let value_at = o.find("<generic:ObsValue").unwrap();
            let value = attr(&o[value_at..], "value").unwrap().parse().unwrap();
            let status = o
                .find("id=\"OBS_STATUS\"")
                .map(|i| attr(&o[i..], "value").unwrap().to_owned())
                .unwrap_or_default();
            out.push((ledger_key.clone(), period, dim("MEASURE").to_owned(), value, status));
        }
    }
    out.sort();
    out
}

/// The rows of an SDMX-CSV answer as maps from column to value.
fn csv_rows(body: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().expect("header row").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("CSV row");
            headers
                .iter()
                .map(str::to_owned)
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn csv_figures(body: &str) -> Vec<Figure> {
    let mut out: Vec<Figure> = csv_rows(body)
        .into_iter()
        .map(|r| {
            (
                format!("{}.{}.{}", r["SERVICE_TYPE"], r["INDUSTRY"], r["COUNTERPART"]),
                r["TIME_PERIOD"].clone(),
                r["MEASURE"].clone(),
                r["OBS_VALUE"].parse().unwrap(),
                r["OBS_STATUS"].clone(),
            )
        })
        .collect();
    out.sort();
    out
}

/// GraphQL's figures of the dataset, optionally as of a publication time; OBS_STATUS from
/// the status (PRELIMINARY is P, the others A).
async fn graphql_figures(app: &TestApp, published_at: Option<&str>) -> Vec<Figure> {
    let as_of = published_at.map(|t| json!({ "publishedAt": t }));
    let v = app
        .gql(
            "query($asOf: AsOf) { observations(dataset: \"KR_KNOWLEDGE_SERVICES\", asOf: $asOf, first: 1000) { nodes { key period measure value status } } }",
            json!({ "asOf": as_of }),
        )
        .await;
    let mut out: Vec<Figure> = v["data"]["observations"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|n| {
            let status = if n["status"] == "PRELIMINARY" { "P" } else { "A" };
            (
                n["key"].as_str().unwrap().to_owned(),
                n["period"].as_str().unwrap().to_owned(),
                n["measure"].as_str().unwrap().to_owned(),
                n["value"].as_str().unwrap().parse().unwrap(),
                status.to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}
