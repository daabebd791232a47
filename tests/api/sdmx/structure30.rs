//! Structure queries in the formats besides SDMX-ML 2.1, over real HTTP on port 0:
//! SDMX-REST 2.2 under `/sdmx/3.0/` (SDMX-JSON 2.0 by default, SDMX-ML 3.0 on request), with
//! its semantic versions, `references` and `detail`; SDMX-JSON 1.0 under `/sdmx/2.1/`.
//!
//! Every SDMX-ML 3.0 answer is validated with `xmllint` against the standard's schemas
//! (`tests/data/sdmx-ml-3.0/schemas`), every SDMX-JSON answer with Python's `jsonschema`
//! against the standard's structure schema (`tests/data/sdmx-json-2.0.0`,
//! `tests/data/sdmx-json-1.0`). `sdmx1` reads the dataflow with its DSD from SDMX-ML 3.0.

use std::process::Command;

use serde_json::Value;

use super::{data_dir, skip_tools, validate_json_schema, xmllint};
use crate::support::{spawn_app, TestApp};

const FLOW: &str = "KR_KNOWLEDGE_SERVICES";
const ML3: &str = "application/vnd.sdmx.structure+xml;version=3.0.0";
const JSON2: &str = "application/vnd.sdmx.structure+json;version=2.0.0";

async fn get(app: &TestApp, api: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let (status, headers, body) = super::get_below(app, api, path, accept).await;
    let media = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, media, body)
}

/// Validates an SDMX-JSON message against `schema` (below `tests/data`).
fn validate_json(app: &TestApp, schema: &str, what: &str, body: &str) -> Value {
    validate_json_schema(app, schema, what, body)
}

/// Validates an SDMX-ML 3.0 message (a Structure or an Error).
fn validate_ml(app: &TestApp, what: &str, body: &str) {
    if skip_tools() {
        return;
    }
    let xsd = data_dir("sdmx-ml-3.0/schemas/SDMXMessage.xsd");
    let out = xmllint(&xsd, &app.dir.path().join("structure3.xml"), body);
    assert!(
        out.status.success(),
        "{what}: not valid SDMX-ML 3.0:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &body[..body.len().min(3000)]
    );
}

/// GETs below `/sdmx/3.0/` in both formats; expects 200, valid messages, and returns the
/// SDMX-JSON 2.0 one parsed and the SDMX-ML 3.0 one.
async fn both(app: &TestApp, path: &str) -> (Value, String) {
    let (status, media, body) = get(app, "3.0", path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(media, "application/vnd.sdmx.structure+json; version=2.0.0", "{path}");
    let json = validate_json(app, "sdmx-json-2.0.0/sdmx-json-structure-schema.json", path, &body);
    let (status, media, xml) = get(app, "3.0", path, Some(ML3)).await;
    assert_eq!(status, 200, "{path}: {xml}");
    assert_eq!(media, "application/vnd.sdmx.structure+xml; version=3.0.0", "{path}");
    validate_ml(app, path, &xml);
    // Both formats carry the same artefacts.
    let data = json["data"].as_object().expect("data");
    let in_json: usize = data.values().map(|v| v.as_array().map_or(0, Vec::len)).sum();
    let in_xml: usize = ["Codelist", "ConceptScheme", "Dataflow", "DataStructure"]
        .iter()
        .map(|e| xml.matches(&format!("<structure:{e} ")).count())
        .sum();
    assert_eq!(in_json, in_xml, "{path}");
    (json, xml)
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v["data"][key]
        .as_array()
        .map(|a| a.iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The dataflow with everything it references, in SDMX-JSON 2.0 and SDMX-ML 3.0: the DSD's
/// components in key order, the code lists with their codes and parents, the concepts.
#[tokio::test]
async fn v30_structure_in_both_formats() {
    let app = spawn_app().await;
    let (json, xml) = both(&app, &format!("structure/dataflow/BOK/{FLOW}/~?references=all")).await;
    assert_eq!(ids(&json, "dataflows"), [FLOW]);
    assert_eq!(ids(&json, "dataStructures"), [FLOW]);
    assert_eq!(ids(&json, "conceptSchemes"), [format!("CS_{FLOW}")]);
    assert_eq!(ids(&json, "codelists").len(), 6);
    let flow = &json["data"]["dataflows"][0];
    assert_eq!(
        flow["structure"],
        format!("urn:sdmx:org.sdmx.infomodel.datastructure.DataStructure=BOK:{FLOW}(1.0.0)")
    );
    let dsd = &json["data"]["dataStructures"][0]["dataStructureComponents"];
    let dims: Vec<&str> = dsd["dimensionList"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["FREQ", "SERVICE_TYPE", "INDUSTRY", "COUNTERPART", "MEASURE"]);
    assert_eq!(dsd["dimensionList"]["timeDimension"]["id"], "TIME_PERIOD");
    assert_eq!(dsd["measureList"]["measures"][0]["id"], "OBS_VALUE");
    let status = dsd["attributeList"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "OBS_STATUS")
        .expect("OBS_STATUS");
    assert_eq!(status["usage"], "mandatory");
    assert_eq!(status["attributeRelationship"], serde_json::json!({"observation": {}}));
    let services = json["data"]["codelists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == format!("CL_{FLOW}_SERVICE_TYPE"))
        .expect("the SERVICE_TYPE code list");
    let ipr = services["codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "IPR")
        .unwrap();
    assert_eq!(ipr["name"], "Intellectual property royalties");
    assert_eq!(ipr["parent"], "_T");

    for part in [
        &format!("<structure:Dataflow urn=\"urn:sdmx:org.sdmx.infomodel.datastructure.Dataflow=BOK:{FLOW}(1.0.0)\" agencyID=\"BOK\" id=\"{FLOW}\" version=\"1.0.0\">"),
        &format!("<structure:Structure>urn:sdmx:org.sdmx.infomodel.datastructure.DataStructure=BOK:{FLOW}(1.0.0)</structure:Structure>"),
        "<structure:Dimension id=\"COUNTERPART\" position=\"4\">",
        &format!("<structure:Enumeration>urn:sdmx:org.sdmx.infomodel.codelist.Codelist=BOK:CL_{FLOW}_COUNTERPART(1.0.0)</structure:Enumeration>"),
        "<structure:Attribute id=\"RELEASE_ID\" usage=\"optional\">",
        "<structure:Measure id=\"OBS_VALUE\" usage=\"mandatory\">",
        // SDMX-ML 3.0.0 admits only NCNames as parents: `_T` is left out (SDMX-JSON has it).
        "<common:Name xml:lang=\"en\">Intellectual property royalties</common:Name></structure:Code>",
    ] {
        assert!(xml.contains(part), "missing {part}:\n{xml}");
    }
    // SDMX-ML 3.0 lists the sections alphabetically.
    let at = |s: &str| xml.find(s).unwrap_or_else(|| panic!("no {s}"));
    assert!(at("<structure:Codelists>") < at("<structure:ConceptSchemes>"));
    assert!(at("<structure:ConceptSchemes>") < at("<structure:Dataflows>"));
    assert!(at("<structure:Dataflows>") < at("<structure:DataStructures>"));

    // `format` picks the format as Accept does.
    let (status, media, _) = get(
        &app,
        "3.0",
        &format!("structure/dataflow/BOK/{FLOW}?format=structure"),
        None,
    )
    .await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/vnd.sdmx.structure+xml; version=3.0.0")
    );
    let (status, media, _) = get(
        &app,
        "3.0",
        &format!("structure/dataflow/BOK/{FLOW}"),
        Some("application/xml"),
    )
    .await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/vnd.sdmx.structure+xml; version=3.0.0")
    );
}

/// Versions as SDMX-REST 2.2 defines them against the artefacts' version 1.0.0 (a stable
/// semantic version: `+` finds it); `references` (several, `ancestors`) and `detail`; `*` as
/// structure type; item queries.
#[tokio::test]
async fn v30_structure_versions_references_and_detail() {
    let app = spawn_app().await;
    for v in [
        "~",
        "*",
        "+",
        "1.0.0",
        "+.0.0",
        "1+.0.0",
        "1.+.0",
        "1.0.0~",
        "1.*.0",
        "1.0.*",
        "1.0,1.0.0",
        "2.0.0,1.*.0",
    ] {
        let (status, _, body) = get(
            &app,
            "3.0",
            &format!("structure/datastructure/BOK/{FLOW}/{v}"),
            Some(JSON2),
        )
        .await;
        assert_eq!(status, 200, "{v}: {body}");
        assert_eq!(
            ids(&serde_json::from_str(&body).unwrap(), "dataStructures"),
            [FLOW],
            "{v}"
        );
    }
    // `1.0` and `1.*` are two-part forms; `2.0.0` and `1.1+.0` ask for later versions.
    for v in ["1.0", "1.*", "~.0", "2.0.0", "1.1+.0", "1.0.1+", "2+.0.0"] {
        let (status, _, body) = get(
            &app,
            "3.0",
            &format!("structure/datastructure/BOK/{FLOW}/{v}"),
            Some(JSON2),
        )
        .await;
        assert_eq!(status, 404, "{v}: {body}");
        assert!(
            body.contains("every artefact here has version 1.0.0 only"),
            "{v}: {body}"
        );
        validate_json(&app, "sdmx-json-2.0.0/sdmx-json-structure-schema.json", v, &body);
    }
    for (v, text) in [
        ("latest", "writes `~`"),
        ("~.2", "after a bare wildcard"),
        ("2.3+", "three parts"),
        ("1.~.0+", "more than one wildcard"),
    ] {
        let (status, _, body) = get(&app, "3.0", &format!("structure/datastructure/BOK/{FLOW}/{v}"), None).await;
        assert_eq!(status, 400, "{v}: {body}");
        assert!(body.contains(text), "{v}: {body}");
    }

    let (parents, _) = both(
        &app,
        &format!("structure/datastructure/BOK/{FLOW}/~?references=parents"),
    )
    .await;
    assert_eq!(ids(&parents, "dataflows"), [FLOW]);
    assert!(ids(&parents, "codelists").is_empty());
    // A code list's parents are the DSD; its ancestors add the dataflow.
    let cl = "structure/codelist/BOK/CL_FREQ/~";
    let (up, _) = both(&app, &format!("{cl}?references=parents")).await;
    assert!(ids(&up, "dataflows").is_empty());
    let (up, _) = both(&app, &format!("{cl}?references=ancestors")).await;
    assert_eq!(ids(&up, "dataflows"), [FLOW]);
    assert_eq!(ids(&up, "dataStructures"), [FLOW]);
    // Several references: the union.
    let (two, _) = both(
        &app,
        &format!("structure/datastructure/BOK/{FLOW}?references=dataflow,conceptscheme"),
    )
    .await;
    assert_eq!(ids(&two, "dataflows"), [FLOW]);
    assert_eq!(ids(&two, "conceptSchemes").len(), 1);
    assert!(ids(&two, "codelists").is_empty());

    // Stubs: no codes; complete stubs keep the description.
    let (stubs, xml) = both(&app, "structure/codelist/*/*/*?detail=allstubs").await;
    assert_eq!(ids(&stubs, "codelists").len(), 6);
    assert!(stubs["data"]["codelists"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["isExternalReference"] == true && c.get("codes").is_none()));
    assert!(!xml.contains("<structure:Code "));
    let (refstubs, _) = both(
        &app,
        &format!("structure/dataflow/BOK/{FLOW}?references=descendants&detail=referencecompletestubs"),
    )
    .await;
    assert_eq!(refstubs["data"]["dataflows"][0]["isExternalReference"], false);
    assert_eq!(refstubs["data"]["dataStructures"][0]["isExternalReference"], true);
    assert!(refstubs["data"]["dataStructures"][0]
        .get("dataStructureComponents")
        .is_none());

    // `*` as structure type: every artefact of the agency.
    let (every, _) = both(&app, "structure/*/BOK").await;
    assert_eq!(ids(&every, "dataflows"), [FLOW]);
    assert_eq!(ids(&every, "codelists").len(), 6);
    assert_eq!(ids(&every, "conceptSchemes").len(), 1);
    assert_eq!(ids(&every, "dataStructures").len(), 1);

    // An item query: the item and its ancestors, in a partial code list; `,` joins items.
    let (item, xml) = both(&app, &format!("structure/codelist/BOK/CL_{FLOW}_COUNTERPART/~/ASIA")).await;
    let list = &item["data"]["codelists"][0];
    assert_eq!(list["isPartial"], true);
    assert_eq!(list["codes"].as_array().unwrap().len(), 2, "{list}");
    assert!(xml.contains("isPartial=\"true\""));
    let (freq, _) = both(&app, "structure/codelist/BOK/CL_FREQ/~/A,M").await;
    let codes: Vec<&str> = freq["data"]["codelists"][0]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["A", "M"]);
    let (concept, _) = both(&app, "structure/conceptscheme/BOK/*/~/OBS_STATUS").await;
    assert_eq!(
        concept["data"]["conceptSchemes"][0]["concepts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Errors under `/sdmx/3.0/structure`: SDMX-JSON when SDMX-JSON was asked for (or nothing),
/// SDMX-ML 3.0 otherwise, each naming what was wrong.
#[tokio::test]
async fn v30_structure_errors_in_the_format_asked_for() {
    let app = spawn_app().await;
    let cases: [(&str, u16, &str); 9] = [
        (
            "structure/categoryscheme/BOK",
            501,
            "`categoryscheme` is not implemented",
        ),
        ("structure/colours", 400, "no SDMX-REST 2.2 structure type"),
        ("structure", 400, "names its structure type"),
        ("structure/dataflow/BOK/NO_SUCH_FLOW", 404, "no dataflow matches"),
        (&format!("structure/dataflow/BOK/{FLOW}/~/X"), 400, "no item scheme"),
        ("structure/dataflow/BOK?detail=most", 400, "parameter `detail`"),
        (
            "structure/dataflow/BOK?references=friends",
            400,
            "parameter `references`",
        ),
        ("structure/dataflow/BOK?asOf=2025-01-01T00:00:00Z", 501, "asOf"),
        ("structure/dataflow/B%20K", 400, "not an id"),
    ];
    for (path, status, text) in cases {
        let (got, media, body) = get(&app, "3.0", path, None).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            media.starts_with("application/vnd.sdmx.structure+json"),
            "{path}: {media}"
        );
        let v = validate_json(&app, "sdmx-json-2.0.0/sdmx-json-structure-schema.json", path, &body);
        assert!(
            v["errors"][0]["title"].as_str().unwrap().contains(text),
            "{path}: {body}"
        );
        let (got, media, body) = get(&app, "3.0", path, Some(ML3)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(media.starts_with("application/xml"), "{path}: {media}");
        assert!(body.contains(text), "{path}: {body}");
        validate_ml(&app, path, &body);
    }
    // 406: a format not offered (SDMX-ML 2.1 and SDMX-JSON 2.1.0 are not, here).
    for accept in [
        "application/vnd.sdmx.structure+xml;version=2.1",
        "application/vnd.sdmx.structure+json;version=2.1.0",
    ] {
        let (status, _, body) = get(&app, "3.0", "structure/dataflow", Some(accept)).await;
        assert_eq!(status, 406, "{accept}: {body}");
        assert!(body.contains("not offered"), "{body}");
        validate_ml(&app, accept, &body);
    }
}

/// SDMX-JSON 1.0 under `/sdmx/2.1/`, by `Accept` or `format=jsonstructure`, carries what the
/// SDMX-ML 2.1 answer carries.
#[tokio::test]
async fn v21_structure_as_sdmx_json_10() {
    let app = spawn_app().await;
    let schema = "sdmx-json-1.0/sdmx-json-structure-schema.json";
    let path = format!("dataflow/BOK/{FLOW}/latest?references=all");
    let (status, media, body) = get(
        &app,
        "2.1",
        &path,
        Some("application/vnd.sdmx.structure+json;version=1.0.0"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(media, "application/vnd.sdmx.structure+json; version=1.0.0");
    let json = validate_json(&app, schema, &path, &body);
    let (_, _, xml) = get(&app, "2.1", &path, None).await;
    for (key, element) in [
        ("dataflows", "Dataflow"),
        ("dataStructures", "DataStructure"),
        ("codelists", "Codelist"),
        ("conceptSchemes", "ConceptScheme"),
    ] {
        let in_xml: Vec<String> = xml
            .split(&format!("<structure:{element} id=\""))
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].to_owned())
            .collect();
        assert_eq!(ids(&json, key), in_xml, "{key}");
    }
    let dsd = &json["data"]["dataStructures"][0]["dataStructureComponents"];
    assert_eq!(dsd["measureList"]["primaryMeasure"]["id"], "OBS_VALUE");
    assert_eq!(dsd["dimensionList"]["timeDimensions"][0]["position"], 6);
    let release = dsd["attributeList"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "RELEASE_ID")
        .unwrap();
    assert_eq!(release["assignmentStatus"], "Conditional");
    assert_eq!(release["attributeRelationship"]["primaryMeasure"], "OBS_VALUE");

    let (status, media, body) = get(&app, "2.1", "codelist/BOK/CL_FREQ?format=jsonstructure", None).await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/vnd.sdmx.structure+json; version=1.0.0"),
        "{body}"
    );
    let freq = validate_json(&app, schema, "CL_FREQ", &body);
    assert_eq!(freq["data"]["codelists"][0]["codes"].as_array().unwrap().len(), 4);

    let (status, _, body) = get(&app, "2.1", "codelist?format=jsonstructure&formatVersion=2.0.0", None).await;
    assert_eq!(status, 406, "{body}");
}

/// `sdmx1` reads the dataflow with its DSD and code lists from SDMX-ML 3.0 under `/sdmx/3.0/`.
#[tokio::test]
async fn sdmx1_reads_sdmx_ml_30_structure() {
    if skip_tools() {
        eprintln!("skipped: TRADELEDGER_SKIP_SDMX_TOOLS=1");
        return;
    }
    let app = spawn_app().await;
    let (status, _, xml) = get(
        &app,
        "3.0",
        &format!("structure/dataflow/BOK/{FLOW}/~?references=all"),
        Some(ML3),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let file = app.dir.path().join("flow3.xml");
    std::fs::write(&file, &xml).unwrap();
    let script = "import json, sys, sdmx\n\
                  msg = sdmx.read_sdmx(sys.argv[1])\n\
                  flow = msg.dataflow[sys.argv[2]]\n\
                  dsd = flow.structure\n\
                  print(json.dumps({\n\
                    'maintainer': flow.maintainer.id,\n\
                    'dimensions': [d.id for d in dsd.dimensions],\n\
                    'attributes': [a.id for a in dsd.attributes],\n\
                    'measures': [m.id for m in dsd.measures],\n\
                    'freq': {c.id: str(c.name) for c in msg.codelist['CL_FREQ']},\n\
                  }))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .arg(FLOW)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "sdmx1 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    assert_eq!(read["maintainer"], "BOK");
    assert_eq!(
        read["dimensions"],
        serde_json::json!([
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
        serde_json::json!([
            "UNIT",
            "UNIT_MULT",
            "OBS_STATUS",
            "RELEASE_ID",
            "RELEASE_STATUS",
            "PUBLISHED_AT"
        ])
    );
    assert_eq!(read["measures"], serde_json::json!(["OBS_VALUE"]));
    assert_eq!(read["freq"]["S"], "Half-yearly, semester");
}

/// `sdmx1`'s own SDMX-REST 2.2 client asks for structures in its default version `+`, the
/// latest stable semantic version: it gets the dataflow (version 1.0.0) with its DSD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdmx1_queries_v30_structure_with_its_default_version() {
    if skip_tools() {
        eprintln!("skipped: TRADELEDGER_SKIP_SDMX_TOOLS=1");
        return;
    }
    let app = spawn_app().await;
    let script = "import json, sys, sdmx\n\
                  sdmx.add_source({'id': 'TL3', 'url': sys.argv[1], 'name': 'tradeledger', 'versions': ['3.0.0']}, override=True)\n\
                  client = sdmx.Client('TL3')\n\
                  client.session.headers['Accept'] = sys.argv[3]\n\
                  kw = dict(agency_id='BOK', params={'references': 'all'})\n\
                  url = client.get('dataflow', sys.argv[2], dry_run=True, **kw).url\n\
                  msg = client.get('dataflow', sys.argv[2], **kw)\n\
                  flow = msg.dataflow[sys.argv[2]]\n\
                  print(json.dumps({\n\
                    'url': url,\n\
                    'version': str(flow.version),\n\
                    'dimensions': [d.id for d in flow.structure.dimensions],\n\
                  }))";
    let base = format!("http://{}/sdmx/3.0", app.addr);
    // Off the runtime: the server answers sdmx1 meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", script])
            .arg(base)
            .arg(FLOW)
            .arg(ML3)
            .output()
    })
    .await
    .expect("client task")
    .expect("running python3");
    assert!(
        out.status.success(),
        "sdmx1 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    let url = read["url"].as_str().unwrap();
    assert!(url.contains(&format!("/structure/dataflow/BOK/{FLOW}/+")), "{url}");
    assert_eq!(read["version"], "1.0.0");
    assert_eq!(read["dimensions"].as_array().unwrap().len(), 6, "{read}");
}
