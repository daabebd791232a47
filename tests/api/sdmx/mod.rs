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

mod structure30;
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
        &format!("schema/dataflow/BOK/{FLOW}/1.0?dimensionAtObservation={dimension}"),
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

/// The dataflow with `references=all` is one valid Structure message holding the flow, the
/// DSD (FREQ, the three dimensions, MEASURE, TIME_PERIOD; OBS_VALUE; UNIT, UNIT_MULT,
/// OBS_STATUS and the vintage attributes), every code list with its codes and labels, and
/// the concept scheme, all maintained by the agency.
#[tokio::test]
async fn dataflow_with_its_structure() {
    let app = spawn_app().await;
    let (headers, body) = get_xml(&app, &format!("dataflow/BOK/{FLOW}/latest?references=all"), None).await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.structure+xml; version=2.1"
    );
    // The server's caching policy: read at the head, revalidated with a 304.
    assert_eq!(headers["cache-control"], "public, max-age=2, stale-while-revalidate=10");
    assert!(headers["xkey"].to_str().unwrap().contains("tl:ledger"));
    let again = app
        .client
        .get(format!(
            "http://{}/sdmx/2.1/dataflow/BOK/{FLOW}/latest?references=all",
            app.addr
        ))
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"], headers["etag"]);
    for part in [
        "<structure:Dataflow id=\"KR_KNOWLEDGE_SERVICES\" agencyID=\"BOK\" version=\"1.0\"",
        "<structure:DataStructure id=\"KR_KNOWLEDGE_SERVICES\" agencyID=\"BOK\"",
        "<structure:Dimension id=\"FREQ\" position=\"1\">",
        "<structure:Dimension id=\"SERVICE_TYPE\" position=\"2\">",
        "<structure:Dimension id=\"COUNTERPART\" position=\"4\">",
        "<structure:Dimension id=\"MEASURE\" position=\"5\">",
        "<structure:TimeDimension id=\"TIME_PERIOD\" position=\"6\">",
        "<structure:Attribute id=\"UNIT_MULT\" assignmentStatus=\"Mandatory\">",
        "<structure:Attribute id=\"OBS_STATUS\" assignmentStatus=\"Mandatory\">",
        "<structure:Attribute id=\"RELEASE_ID\"",
        "<structure:Attribute id=\"PUBLISHED_AT\"",
        "<structure:PrimaryMeasure id=\"OBS_VALUE\">",
        "<structure:Codelist id=\"CL_FREQ\" agencyID=\"BOK\"",
        "<structure:Code id=\"S\" urn=\"urn:sdmx:org.sdmx.infomodel.codelist.Code=BOK:CL_FREQ(1.0).S\"><common:Name xml:lang=\"en\">Half-yearly, semester</common:Name>",
        "<structure:Codelist id=\"CL_KR_KNOWLEDGE_SERVICES_SERVICE_TYPE\"",
        "<structure:Code id=\"IPR\" urn=\"urn:sdmx:org.sdmx.infomodel.codelist.Code=BOK:CL_KR_KNOWLEDGE_SERVICES_SERVICE_TYPE(1.0).IPR\"><common:Name xml:lang=\"en\">Intellectual property royalties</common:Name><structure:Parent><Ref id=\"_T\"/></structure:Parent>",
        "<structure:Code id=\"BAL\"",
        "<structure:Code id=\"P\"",
        "<structure:ConceptScheme id=\"CS_KR_KNOWLEDGE_SERVICES\"",
        "<structure:Concept id=\"UNIT_MULT\"",
    ] {
        assert!(body.contains(part), "missing {part}:\n{body}");
    }
    // The sections come in the order the schema requires.
    let at = |s: &str| body.find(s).unwrap_or_else(|| panic!("no {s}"));
    assert!(at("<structure:Dataflows>") < at("<structure:Codelists>"));
    assert!(at("<structure:Codelists>") < at("<structure:Concepts>"));
    assert!(at("<structure:Concepts>") < at("<structure:DataStructures>"));
}

/// `references` and `detail` choose what comes with the match, `all`/`*`/`latest` and `+`
/// lists match, and an item query returns a partial code list.
#[tokio::test]
async fn structure_references_detail_and_wildcards() {
    let app = spawn_app().await;
    let count = |body: &str, s: &str| body.matches(s).count();

    let (_, plain) = get_xml(&app, &format!("datastructure/all/{FLOW}"), None).await;
    assert_eq!(count(&plain, "<structure:DataStructure "), 1);
    assert_eq!(
        count(&plain, "<structure:Codelist "),
        0,
        "references=none is the default"
    );

    let (_, children) = get_xml(&app, &format!("datastructure/*/{FLOW}/*?references=children"), None).await;
    assert_eq!(count(&children, "<structure:Codelist "), 6);
    assert_eq!(count(&children, "<structure:ConceptScheme "), 1);
    assert_eq!(count(&children, "<structure:Dataflow "), 0);

    let (_, parents) = get_xml(&app, &format!("datastructure/BOK/{FLOW}/1.0?references=parents"), None).await;
    assert_eq!(count(&parents, "<structure:Dataflow "), 1);
    assert_eq!(count(&parents, "<structure:Codelist "), 0);

    let (_, only) = get_xml(&app, &format!("dataflow/BOK/{FLOW}?references=codelist"), None).await;
    assert_eq!(count(&only, "<structure:Codelist "), 6);
    assert_eq!(count(&only, "<structure:DataStructure "), 0);

    let (_, stubs) = get_xml(&app, "codelist?detail=allstubs", None).await;
    assert_eq!(count(&stubs, "isExternalReference=\"true\""), 6);
    assert_eq!(count(&stubs, "<structure:Code "), 0);

    let (_, two) = get_xml(&app, "codelist/BOK/CL_FREQ+CL_MEASURE/latest", None).await;
    assert_eq!(count(&two, "<structure:Codelist "), 2);

    let (_, item) = get_xml(
        &app,
        "codelist/BOK/CL_KR_KNOWLEDGE_SERVICES_COUNTERPART/latest/ASIA",
        None,
    )
    .await;
    assert!(item.contains("isPartial=\"true\""), "{item}");
    // The item and its parent, nothing else.
    assert_eq!(count(&item, "<structure:Code "), 2, "{item}");

    let (_, concepts) = get_xml(&app, "conceptscheme/BOK", None).await;
    assert!(concepts.contains("<structure:Concept id=\"COUNTERPART\""));
}

/// The whole dataflow in GenericData is exactly GraphQL's latest figures, as a time series
/// per key and measure with the unit attributes, and valid SDMX-ML.
#[tokio::test]
async fn generic_data_equals_graphql() {
    let app = spawn_app().await;
    let (headers, body) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.genericdata+xml; version=2.1"
    );
    assert_eq!(headers["vary"], "Accept, Authorization");
    let figures = generic_figures(&body);
    assert_eq!(figures, graphql_figures(&app, None).await);
    assert_eq!(figures.len(), 12);
    assert!(body.contains("<generic:Value id=\"UNIT\" value=\"USD\"/><generic:Value id=\"UNIT_MULT\" value=\"6\"/>"));
    assert!(body.contains(&format!("<generic:Value id=\"RELEASE_ID\" value=\"{REVISION_ID}\"/>")));
    // One series per key: the total's two periods in one series.
    assert_eq!(body.matches("<generic:Series>").count(), 11);
}

/// Each format by `Accept` and by `format`, with its registered media type and the same
/// figures; `*/*` and `application/xml` give GenericData.
#[tokio::test]
async fn every_data_format() {
    let app = spawn_app().await;
    let expected = graphql_figures(&app, None).await;
    let path = format!("data/{FLOW}/all/all");
    for (accept, media) in [
        ("*/*", "application/vnd.sdmx.genericdata+xml; version=2.1"),
        ("application/xml", "application/vnd.sdmx.genericdata+xml; version=2.1"),
        (
            "application/vnd.sdmx.genericdata+xml;version=2.1",
            "application/vnd.sdmx.genericdata+xml; version=2.1",
        ),
        (
            "application/vnd.sdmx.generictimeseriesdata+xml;version=2.1",
            "application/vnd.sdmx.generictimeseriesdata+xml; version=2.1",
        ),
    ] {
        let (headers, body) = get_xml(&app, &path, Some(accept)).await;
        assert_eq!(headers["content-type"], media, "{accept}");
        assert_eq!(generic_figures(&body), expected, "{accept}");
    }
    let (headers, body) = get_xml(&app, &format!("{path}?format=generictimeseriesdata"), Some("text/csv")).await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.generictimeseriesdata+xml; version=2.1"
    );
    assert!(body.contains("<message:GenericTimeSeriesData "));

    // Structure-specific: the DSD's ids as XML attributes.
    let (status, headers, body) = get(
        &app,
        &path,
        Some("application/vnd.sdmx.structurespecificdata+xml;version=2.1"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.sdmx.structurespecificdata+xml; version=2.1"
    );
    assert!(body.contains("xsi:type=\"ns1:DataSetType\""), "{body}");
    assert!(body.contains("<Series FREQ=\"S\" SERVICE_TYPE=\"IPR\" INDUSTRY=\"_T\" COUNTERPART=\"_T\" MEASURE=\"BAL\" UNIT=\"USD\" UNIT_MULT=\"6\"><Obs TIME_PERIOD=\"2025-S1\" OBS_VALUE=\"-2530\" OBS_STATUS=\"A\""), "{body}");
    assert_eq!(body.matches("<Obs ").count(), 12);
    validate_structure_specific(&app, "TIME_PERIOD", &body).await;

    // SDMX-CSV 1.0, by Accept and by format; the vintage in attribute columns.
    for (path, accept) in [
        (path.clone(), Some("application/vnd.sdmx.data+csv;version=1.0.0")),
        (format!("{path}?format=csvdata"), None),
    ] {
        let (status, headers, body) = get(&app, &path, accept).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["content-type"],
            "application/vnd.sdmx.data+csv; version=1.0.0; charset=utf-8"
        );
        assert!(body.starts_with("DATAFLOW,FREQ,SERVICE_TYPE,INDUSTRY,COUNTERPART,MEASURE,TIME_PERIOD,OBS_VALUE,UNIT,UNIT_MULT,OBS_STATUS,RELEASE_ID,RELEASE_STATUS,PUBLISHED_AT\r\n"), "{body}");
        assert_eq!(csv_figures(&body), expected);
        let rows = csv_rows(&body);
        assert!(rows.iter().all(|r| r["DATAFLOW"] == "BOK:KR_KNOWLEDGE_SERVICES(1.0)"));
        let revised = rows.iter().find(|r| r["SERVICE_TYPE"] == "IPR").unwrap();
        assert_eq!(revised["RELEASE_ID"], REVISION_ID);
        assert_eq!(revised["RELEASE_STATUS"], "REVISED");
        assert_eq!(revised["PUBLISHED_AT"], "2025-12-10T03:00:00Z");
    }
    let (_, _, labelled) = get(
        &app,
        &path,
        Some("application/vnd.sdmx.data+csv; version=1.0.0; labels=both"),
    )
    .await;
    assert!(
        labelled.starts_with("DATAFLOW,FREQ: Frequency,SERVICE_TYPE: Service type,"),
        "{labelled}"
    );
    assert!(
        labelled.contains(",IPR: Intellectual property royalties,"),
        "{labelled}"
    );
}

/// Keys (wildcards, `+`, trailing parts left out, providerRef), periods, first/last N,
/// dimensionAtObservation and detail select and shape the answer as the standard says.
#[tokio::test]
async fn data_query_parameters() {
    let app = spawn_app().await;
    let csv = |body: &str| csv_figures(body);
    let total_and_ipr = format!("data/BOK,{FLOW},1.0/S.IPR+_T._T._T.BAL/BOK");
    let (status, _, body) = get(&app, &format!("{total_and_ipr}?format=csvdata"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(csv(&body).len(), 3, "{body}");

    let (_, _, body) = get(&app, &format!("{total_and_ipr}?format=csvdata&startPeriod=2025"), None).await;
    assert_eq!(
        csv(&body).iter().map(|f| f.1.as_str()).collect::<Vec<_>>(),
        ["2025-S1", "2025-S1"]
    );
    let (_, _, body) = get(
        &app,
        &format!("{total_and_ipr}?format=csvdata&endPeriod=2024-12-31"),
        None,
    )
    .await;
    assert_eq!(csv(&body).len(), 1, "{body}");
    assert_eq!(csv(&body)[0].1, "2024-S2");
    // A period of another frequency covers the half-years it overlaps.
    let (_, _, body) = get(
        &app,
        &format!("{total_and_ipr}?format=csvdata&startPeriod=2025-Q2&endPeriod=2025-Q2"),
        None,
    )
    .await;
    assert_eq!(csv(&body).len(), 2, "{body}");

    let (_, _, body) = get(
        &app,
        &format!("data/{FLOW}/S._T._T._T.BAL?format=csvdata&lastNObservations=1"),
        None,
    )
    .await;
    assert_eq!(csv(&body).iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["2025-S1"]);
    let (_, _, body) = get(
        &app,
        &format!("data/{FLOW}/S._T._T._T.BAL?format=csvdata&firstNObservations=1"),
        None,
    )
    .await;
    assert_eq!(csv(&body).iter().map(|f| f.1.as_str()).collect::<Vec<_>>(), ["2024-S2"]);

    // Wildcards: the empty part and `*`; a left-out key and provider.
    let (_, _, body) = get(&app, &format!("data/{FLOW}/.._T.*.?format=csvdata"), None).await;
    assert_eq!(csv(&body).len(), 9, "{body}");
    let (_, _, body) = get(&app, &format!("data/{FLOW}/?format=csvdata"), None).await;
    assert_eq!(csv(&body).len(), 12);

    // Views.
    let (_, flat) = get_xml(
        &app,
        &format!("data/{FLOW}/S.._T._T.BAL?dimensionAtObservation=AllDimensions"),
        None,
    )
    .await;
    assert_eq!(flat.matches("<generic:ObsKey>").count(), 6, "{flat}");
    assert!(flat.contains("dimensionAtObservation=\"AllDimensions\""));
    let (_, cross) = get_xml(
        &app,
        &format!("data/{FLOW}/S._T.._T.BAL?dimensionAtObservation=INDUSTRY"),
        None,
    )
    .await;
    // Two sections (2024-S2, 2025-S1) with the industries as observations.
    assert_eq!(cross.matches("<generic:Series>").count(), 2, "{cross}");
    assert!(cross.contains("<generic:ObsDimension value=\"MFG\"/>"), "{cross}");
    let (status, _, cross_ss) = get(
        &app,
        &format!("data/{FLOW}/S._T.._T.BAL?dimensionAtObservation=INDUSTRY&format=structurespecificdata"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(cross_ss.contains("<Series FREQ=\"S\" SERVICE_TYPE=\"_T\" COUNTERPART=\"_T\" MEASURE=\"BAL\" TIME_PERIOD=\"2025-S1\"><Obs INDUSTRY=\"_T\""), "{cross_ss}");
    validate_structure_specific(&app, "INDUSTRY", &cross_ss).await;

    // detail.
    let (_, keys) = get_xml(&app, &format!("data/{FLOW}?detail=serieskeysonly"), None).await;
    assert_eq!(keys.matches("<generic:Series>").count(), 11);
    assert!(!keys.contains("<generic:Obs>") && !keys.contains("UNIT"), "{keys}");
    let (_, nodata) = get_xml(&app, &format!("data/{FLOW}?detail=nodata"), None).await;
    assert!(
        !nodata.contains("<generic:Obs>") && nodata.contains("UNIT_MULT"),
        "{nodata}"
    );
    let (_, dataonly) = get_xml(&app, &format!("data/{FLOW}?detail=dataonly"), None).await;
    assert_eq!(dataonly.matches("<generic:Obs>").count(), 12);
    assert!(!dataonly.contains("<generic:Attributes>"), "{dataonly}");
}

/// `asOf` gives the figures as published then, whether its `+` arrives as `+`, as `%2B` or
/// as a space; `includeHistory` one data set per release with its validity; `updatedAfter`
/// only what later releases set; `knownAt` in the past is pinned and cached for good; the
/// ETag answers `If-None-Match` with 304.
#[tokio::test]
async fn vintages() {
    let app = spawn_app().await;
    let expected = graphql_figures(&app, Some(BETWEEN)).await;
    assert!(expected.iter().all(|f| f.4 == "P"), "{expected:?}");
    assert_ne!(expected, graphql_figures(&app, None).await);
    for as_of in [
        BETWEEN,
        "2025-10-01T00:00:00%2B00:00",
        "2025-10-01T00:00:00%2000:00",
        "2025-10-01",
    ] {
        let (headers, body) = get_xml(&app, &format!("data/{FLOW}?asOf={as_of}"), None).await;
        assert_eq!(generic_figures(&body), expected, "asOf={as_of}");
        assert!(headers.contains_key("etag"));
        assert_eq!(
            headers["cache-control"], "public, max-age=2, stale-while-revalidate=10",
            "publication time alone can change by a back-fill: the head's policy"
        );
    }
    let (_, _, csv) = get(
        &app,
        &format!("data/{FLOW}/S.IPR._T._T.BAL?asOf={BETWEEN}&format=csvdata"),
        None,
    )
    .await;
    let row = &csv_rows(&csv)[0];
    assert_eq!(
        (row["OBS_VALUE"].as_str(), row["RELEASE_ID"].as_str()),
        ("-2450", PRELIMINARY_ID)
    );
    assert_eq!(
        (row["OBS_STATUS"].as_str(), row["RELEASE_STATUS"].as_str()),
        ("P", "PRELIMINARY")
    );

    // Every version, one data set per release, valid from its publication.
    let (_, history) = get_xml(&app, &format!("data/{FLOW}/S.IPR._T._T.BAL?includeHistory=true"), None).await;
    let sets: Vec<&str> = history.split("<message:DataSet ").skip(1).collect();
    assert_eq!(sets.len(), 2, "{history}");
    assert!(
        sets[0].starts_with(&format!(
            "structureRef=\"STR\" action=\"Replace\" setID=\"R{}\" validFromDate=\"2025-09-03T03:00:00Z\"",
            PRELIMINARY_ID.replace('-', "")
        )),
        "{}",
        sets[0]
    );
    assert!(sets[0].contains("<generic:ObsValue value=\"-2450\"/>"));
    assert!(sets[1].contains("validFromDate=\"2025-12-10T03:00:00Z\"") && sets[1].contains("value=\"-2530\""));
    let (_, _, history_csv) = get(
        &app,
        &format!("data/{FLOW}/S.IPR._T._T.BAL?includeHistory=true&format=csvdata"),
        None,
    )
    .await;
    let values: Vec<String> = csv_rows(&history_csv)
        .iter()
        .map(|r| format!("{} {}", r["OBS_VALUE"], r["RELEASE_STATUS"]))
        .collect();
    assert_eq!(values, ["-2450 PRELIMINARY", "-2530 REVISED"]);
    // History as of a time stops there.
    let (_, early) = get_xml(
        &app,
        &format!("data/{FLOW}/S.IPR._T._T.BAL?includeHistory=true&asOf={BETWEEN}"),
        None,
    )
    .await;
    assert_eq!(early.matches("<message:DataSet ").count(), 1);

    // updatedAfter: only what the revision set.
    let (_, _, updated) = get(
        &app,
        &format!("data/{FLOW}?updatedAfter={BETWEEN}&format=csvdata"),
        None,
    )
    .await;
    let rows = csv_rows(&updated);
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["RELEASE_ID"] == REVISION_ID));
    let (status, _, _) = get(&app, &format!("data/{FLOW}?updatedAfter=2026-01-01T00:00:00Z"), None).await;
    assert_eq!(status, 404);

    // knownAt: what the ledger showed then. Before the fixtures were recorded it showed
    // nothing; now it shows everything, pinned and cached for good.
    let (status, _, _) = get(&app, &format!("data/{FLOW}?knownAt=2020-01-01T00:00:00Z"), None).await;
    assert_eq!(status, 404);
    // A whole second after the fixtures were recorded, and past by the time it is asked for.
    let now = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let pinned = format!("data/{FLOW}?knownAt={now}&asOf={BETWEEN}");
    let (headers, body) = get_xml(&app, &pinned, None).await;
    assert_eq!(generic_figures(&body), expected);
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(format!("http://{}/sdmx/2.1/{pinned}", app.addr))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    // A release changes the latest answer's ETag, not the pinned one's.
    let (latest_headers, _) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    let input = crate::support::release_input("6b1f0c2e-4d3a-4e51-9a57-2025a0000099", "CUL._T._T", "2025-S2", "500");
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(v["errors"].is_null(), "{v}");
    let (after_headers, _) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    assert_ne!(latest_headers["etag"], after_headers["etag"]);
    let (pinned_after, _) = get_xml(&app, &pinned, None).await;
    assert_eq!(pinned_after["etag"].to_str().unwrap(), etag);
}

/// Every error is an SDMX-ML 2.1 error message with its code and a text naming what was
/// wrong: 404 (100), 400 (140), 401 (110), 406, 413 (130) and 501.
#[tokio::test]
async fn errors_are_sdmx_messages() {
    let app = spawn_app().await;
    let many_codes = format!("{}.._T._T.BAL", vec!["S"; 600].join("+"));
    let long_key = format!("S.{}._T._T.BAL", "X".repeat(3000));
    let cases: Vec<(String, Option<&str>, u16, &str, &str)> = vec![
        (
            "data/NO_SUCH_FLOW".to_owned(),
            None,
            404,
            "100",
            "no dataflow `NO_SUCH_FLOW`",
        ),
        (format!("data/OTHER,{FLOW}"), None, 404, "100", "maintained by `OTHER`"),
        (format!("data/BOK,{FLOW},2.0"), None, 404, "100", "only version 1.0"),
        (
            format!("data/{FLOW}/all/ECB"),
            None,
            404,
            "100",
            "provided by `BOK` only",
        ),
        (
            format!("data/{FLOW}?startPeriod=2031"),
            None,
            404,
            "100",
            "no observation matches",
        ),
        (
            format!("data/{FLOW}/S.._T._T.DEB"),
            None,
            404,
            "100",
            "no observation matches",
        ),
        (
            "dataflow/ECB".to_owned(),
            None,
            404,
            "100",
            "no dataflow matches ECB/all/latest",
        ),
        (
            "codelist/BOK/CL_FREQ/2.0".to_owned(),
            None,
            404,
            "100",
            "no codelist matches",
        ),
        (
            "nothing/here".to_owned(),
            None,
            404,
            "100",
            "`nothing` is no SDMX-REST resource",
        ),
        (
            format!("data/{FLOW}/S.IPR"),
            None,
            400,
            "140",
            "has 2 parts; the dataflow has 5 dimensions: FREQ.SERVICE_TYPE.INDUSTRY.COUNTERPART.MEASURE",
        ),
        (
            format!("data/{FLOW}/S.XYZ._T._T.BAL"),
            None,
            400,
            "140",
            "`XYZ` is no code of dimension SERVICE_TYPE",
        ),
        (
            format!("data/{FLOW}/W.._T._T.BAL"),
            None,
            400,
            "140",
            "`W` is no code of dimension FREQ",
        ),
        (
            format!("data/{FLOW}/S.._T._T.XXX"),
            None,
            400,
            "140",
            "`XXX` is no code of dimension MEASURE",
        ),
        (
            format!("data/{FLOW}/{many_codes}"),
            None,
            400,
            "140",
            "the key names more than 512 codes",
        ),
        (
            format!("data/{FLOW}/{long_key}"),
            None,
            400,
            "140",
            "the key has 3012 bytes; the limit is 2048",
        ),
        (
            format!("data/{FLOW}?startPeriod=yesterday"),
            None,
            400,
            "140",
            "parameter `startPeriod`: `yesterday` is not a period",
        ),
        (
            format!("data/{FLOW}?asOf=2025-13-01"),
            None,
            400,
            "140",
            "parameter `asOf`",
        ),
        (
            format!("data/{FLOW}?firstNObservations=0"),
            None,
            400,
            "140",
            "`firstNObservations` must be a positive integer",
        ),
        (
            format!("data/{FLOW}?detail=everything"),
            None,
            400,
            "140",
            "parameter `detail` must be full, dataonly, serieskeysonly or nodata",
        ),
        (
            format!("data/{FLOW}?dimensionAtObservation=NOPE"),
            None,
            400,
            "140",
            "`dimensionAtObservation` must be TIME_PERIOD, AllDimensions or one of",
        ),
        (
            format!("data/{FLOW}?includeHistory=yes"),
            None,
            400,
            "140",
            "`includeHistory` must be `true` or `false`",
        ),
        (
            format!("data/{FLOW}?colour=red"),
            None,
            400,
            "140",
            "unknown parameter `colour`",
        ),
        (
            format!("data/{FLOW}?detail=full&detail=full"),
            None,
            400,
            "140",
            "parameter `detail` is given twice",
        ),
        (
            format!("data/{FLOW}?format=csvdata&dimensionAtObservation=INDUSTRY&format=x"),
            None,
            400,
            "140",
            "given twice",
        ),
        (
            format!("data/{FLOW}/all/all/extra"),
            None,
            400,
            "140",
            "at most three path parts",
        ),
        (
            "dataflow?references=cousins".to_owned(),
            None,
            400,
            "140",
            "parameter `references` must be",
        ),
        (
            "dataflow?detail=some".to_owned(),
            None,
            400,
            "140",
            "parameter `detail` must be full, allstubs",
        ),
        (
            format!("data/{FLOW}"),
            Some("application/vnd.sdmx.data+json;version=1.0.0"),
            406,
            "140",
            "is not offered",
        ),
        (
            format!("data/{FLOW}?format=jsondata"),
            None,
            406,
            "140",
            "format jsondata is not offered",
        ),
        (
            format!("data/{FLOW}"),
            Some("application/vnd.sdmx.genericdata+xml;version=3.0.0"),
            406,
            "140",
            "is not offered",
        ),
        (
            format!("data/{FLOW}"),
            Some("application/vnd.sdmx.data+csv;version=1.0.0;timeFormat=normalized"),
            406,
            "140",
            "is not offered",
        ),
        (
            "dataflow".to_owned(),
            Some("application/vnd.sdmx.structure+json;version=2.0.0"),
            406,
            "140",
            "is not offered",
        ),
        (
            "categoryscheme/all".to_owned(),
            None,
            501,
            "501",
            "the `categoryscheme` resource is not implemented",
        ),
        (
            format!("schema/metadatastructure/BOK/{FLOW}"),
            None,
            501,
            "501",
            "schemas in the context `metadatastructure` are not implemented",
        ),
        (
            format!("schema/dataflow/ECB/{FLOW}"),
            None,
            404,
            "100",
            "no dataflow ECB:KR_KNOWLEDGE_SERVICES(latest)",
        ),
        (
            format!("schema/dataflow/BOK/{FLOW}?dimensionAtObservation=X"),
            None,
            400,
            "140",
            "`dimensionAtObservation` must be",
        ),
        (
            "schema/things/BOK/X".to_owned(),
            None,
            400,
            "140",
            "the schema context must be",
        ),
        ("metadata/x".to_owned(), None, 501, "501", "not implemented"),
    ];
    for (path, accept, status, code, text) in cases {
        let (got, headers, body) = get(&app, &path, accept).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/xml; charset=utf-8", "{path}");
        assert!(
            body.contains(&format!("<message:ErrorMessage code=\"{code}\">")),
            "{path}: {body}"
        );
        assert!(body.contains(text), "{path}: expected `{text}` in {body}");
        validate(&app, &path, &body);
    }

    // 413: beyond the observation limit, counted before anything is sent.
    let small = spawn_app_with(|c| c.sdmx.max_observations = 5, true).await;
    let (status, _, body) = get(&small, &format!("data/{FLOW}"), None).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("code=\"130\"") && body.contains("more than 5 observations"),
        "{body}"
    );
    validate(&small, "413", &body);
    let (status, _, _) = get(&small, &format!("data/{FLOW}/S.IPR._T._T.BAL"), None).await;
    assert_eq!(status, 200, "a narrower query fits");
    let (status, _, _) = get(&small, &format!("data/{FLOW}?includeHistory=true"), None).await;
    assert_eq!(status, 413, "a history counts its versions");

    // 401 (110): reads protected by tokens cover SDMX too.
    let protected = spawn_app_with(
        |c| c.tokens.read = vec![tradeledger::auth::Token::parse(&format!("viewer:{READ_SECRET}")).unwrap()],
        true,
    )
    .await;
    for path in [format!("data/{FLOW}"), "dataflow".to_owned()] {
        let (status, headers, body) = get(&protected, &path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(
            body.contains("code=\"110\"") && body.contains("needs a bearer token for reads"),
            "{body}"
        );
        validate(&protected, "401", &body);
        let url = format!("http://{}/sdmx/2.1/{path}", protected.addr);
        let wrong = protected.client.get(&url).bearer_auth("nope").send().await.unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let right = protected
            .client
            .get(&url)
            .bearer_auth(READ_SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status().as_u16(), 200, "{path}");
    }
}

/// An answer of many pages (more figures than one page reads) holds every figure once, each
/// series whole and in period order.
#[tokio::test]
async fn long_answers_stream_in_pages() {
    let app = spawn_app().await;
    let services = ["_T", "IPR", "ICT", "CUL", "PBS"];
    let industries = ["_T", "ICT", "MFG", "DIP"];
    let regions = ["_T", "ASIA", "NAM", "EUR"];
    let mut observations = Vec::new();
    for s in services {
        for i in industries {
            for r in regions {
                for year in 1990..2024 {
                    for half in 1..=2 {
                        observations.push(json!({ "key": format!("{s}.{i}.{r}"), "period": format!("{year}-S{half}"), "value": format!("{year}.{half}") }));
                    }
                }
            }
        }
    }
    let n = observations.len();
    assert!(n > 5000, "more than a page of 4096 figures");
    let input = json!({
        "id": "6b1f0c2e-4d3a-4e51-9a57-2025a0000077",
        "dataset": DATASET,
        "status": "FINAL",
        "title": "SYNTHETIC back series",
        "publishedAt": "2025-12-20T00:00:00Z",
        "observations": observations,
    });
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(v["errors"].is_null(), "{v}");

    let (_, _, body) = get(&app, &format!("data/{FLOW}?format=csvdata"), None).await;
    let rows = csv_rows(&body);
    assert_eq!(rows.len(), n + 12);
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(
            seen.insert((
                r["SERVICE_TYPE"].clone(),
                r["INDUSTRY"].clone(),
                r["COUNTERPART"].clone(),
                r["TIME_PERIOD"].clone()
            )),
            "a figure twice"
        );
    }
    let (_, generic) = get_xml(&app, &format!("data/{FLOW}"), None).await;
    let series: Vec<&str> = generic.split("<generic:Series>").skip(1).collect();
    assert_eq!(series.len(), 80, "one series per key, none split across pages");
    for s in series {
        let periods: Vec<&str> = s
            .split("<generic:ObsDimension value=\"")
            .skip(1)
            .map(|p| &p[..7])
            .collect();
        assert!(periods.windows(2).all(|w| w[0] < w[1]), "periods in order: {periods:?}");
    }
    assert_eq!(generic_figures(&generic).len(), n + 12);
}

/// Python's sdmx1 reads the dataflow with its structure, the whole dataflow, a key with
/// startPeriod, and the figures as of a time between the preliminary release and the
/// revision; each time the figures equal GraphQL's for the same point.
#[tokio::test(flavor = "multi_thread")]
async fn sdmx1_reads_what_graphql_answers() {
    if skip_tools() {
        eprintln!("skipped: TRADELEDGER_SKIP_SDMX_TOOLS=1");
        return;
    }
    let app = spawn_app().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/sdmx/client.py");
    let base = format!("http://{}/sdmx/2.1", app.addr);
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(&script).arg(&base).arg(BETWEEN).output())
            .await
            .expect("python3 task")
            .expect("running python3");
    assert!(
        out.status.success(),
        "sdmx1 failed (run `bash .ci/setup` to install it, or set TRADELEDGER_SKIP_SDMX_TOOLS=1):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    assert_eq!(read["maintainer"], "BOK");
    assert_eq!(
        read["dimensions"],
        json!([
            "FREQ",
            "SERVICE_TYPE",
            "INDUSTRY",
            "COUNTERPART",
            "MEASURE",
            "TIME_PERIOD"
        ])
    );
    assert_eq!(
        read["attributes"],
        json!([
            "UNIT",
            "UNIT_MULT",
            "OBS_STATUS",
            "RELEASE_ID",
            "RELEASE_STATUS",
            "PUBLISHED_AT"
        ])
    );
    assert_eq!(
        read["codes"]["CL_KR_KNOWLEDGE_SERVICES_COUNTERPART"]["NAM"],
        "North America"
    );
    assert_eq!(read["codes"]["CL_FREQ"]["S"], "Half-yearly, semester");

    let figures = |v: &Value| -> Vec<Figure> {
        let mut out: Vec<Figure> = v
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|f| {
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
    assert_eq!(figures(&read["all"]), latest);
    let key: Vec<Figure> = latest
        .iter()
        .filter(|f| (f.0 == "_T._T._T" || f.0 == "IPR._T._T") && f.1.as_str() >= "2025")
        .cloned()
        .collect();
    assert_eq!(key.len(), 2);
    assert_eq!(figures(&read["key"]), key);
    let then = graphql_figures(&app, Some(BETWEEN)).await;
    assert_eq!(figures(&read["as_of"]), then);
    assert_ne!(then, latest);
}

/// Structure-specific data in every view (time series, flat, cross-sectional), every
/// `detail` and with `includeHistory` validates against the schema the service derives from
/// the DSD; and that schema refuses a code the code list lacks.
#[tokio::test]
async fn structure_specific_data_validates_against_its_schema() {
    let app = spawn_app().await;
    for dimension in ["TIME_PERIOD", "AllDimensions", "COUNTERPART"] {
        for extra in [
            "",
            "&detail=nodata",
            "&detail=serieskeysonly",
            "&detail=dataonly",
            "&includeHistory=true",
        ] {
            let path = format!("data/{FLOW}?format=structurespecificdata&dimensionAtObservation={dimension}{extra}");
            let (status, _, body) = get(&app, &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            validate_structure_specific(&app, dimension, &body).await;
        }
    }
    if skip_tools() {
        return;
    }
    let (_, _, body) = get(&app, &format!("data/{FLOW}?format=structurespecificdata"), None).await;
    let broken = body.replacen("SERVICE_TYPE=\"IPR\"", "SERVICE_TYPE=\"NOPE\"", 1);
    let outcome = std::panic::AssertUnwindSafe(validate_structure_specific(&app, "TIME_PERIOD", &broken));
    let caught = futures_util::FutureExt::catch_unwind(outcome).await;
    assert!(caught.is_err(), "an unknown code must not validate");
}
