//! `tradeledger import --format sdmx-ml|sdmx-csv --structure ...` over the real binary: the
//! ECB exchange-rate samples of the SDMX-ML 2.1 standard (`tests/data/sdmx-exr/`), the round
//! trip of the Bank of Korea dataset through `/sdmx/2.1/` (every figure and every version the
//! same), and bad files refused naming file and line with nothing recorded.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::proc_support::{run_cli, Output};
use crate::support::{spawn_app, spawn_app_on, TestApp, DATASET};

fn exr(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sdmx-exr/ecb_exr_ng")
        .join(path)
}

/// Five forms of one message; the sixth, the generic cross-sectional one, differs from them
/// in one figure (see [`ecb_exchange_rate_samples_import_with_their_figures`]).
const EXR_FORMS: [&str; 5] = [
    "generic/ecb_exr_ng_ts.xml",
    "generic/ecb_exr_ng_flat.xml",
    "structured/ecb_exr_ng_ts.xml",
    "structured/ecb_exr_ng_flat.xml",
    "structured/ecb_exr_ng_xs.xml",
];

/// `tradeledger import --data-dir DIR --format FORMAT --structure S [EXTRA...] FILES...`.
async fn import(dir: &Path, format: &str, structure: &Path, extra: &[&str], files: &[PathBuf]) -> Output {
    let mut args: Vec<OsString> = vec![
        "import".into(),
        "--data-dir".into(),
        dir.into(),
        "--format".into(),
        format.into(),
        "--structure".into(),
        structure.into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run_cli(args).await
}

/// The value of attribute `name` in one line of XML.
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    line[start..].split('"').next()
}

/// The figures of the structure-specific time-series sample, read from its text:
/// (`CURRENCY.CURRENCY_DENOM.EXR_TYPE.EXR_VAR`, period) -> value.
fn exr_figures() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(exr("structured/ecb_exr_ng_ts.xml")).unwrap();
    let mut out = BTreeMap::new();
    let mut key = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("<Series ") {
            key = ["CURRENCY", "CURRENCY_DENOM", "EXR_TYPE", "EXR_VAR"]
                .map(|d| attr(line, d).unwrap())
                .join(".");
        } else if line.trim_start().starts_with("<Obs ") {
            let period = attr(line, "TIME_PERIOD").unwrap().to_owned();
            out.insert((key.clone(), period), attr(line, "OBS_VALUE").unwrap().to_owned());
        }
    }
    assert_eq!(out.len(), 12, "the sample has 4 series of 3 months");
    out
}

/// Every figure of `dataset` over GraphQL: (key, period, measure) -> node.
async fn figures(app: &TestApp, dataset: &str) -> BTreeMap<(String, String, String), Value> {
    let r = app
        .gql(
            "query($d: ID!) { observations(dataset: $d, first: 1000) { nodes { key period measure value status } } }",
            json!({ "d": dataset }),
        )
        .await;
    let nodes = r["data"]["observations"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    nodes
        .into_iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap().to_owned();
            ((s("key"), s("period"), s("measure")), n)
        })
        .collect()
}

async fn head_revision(app: &TestApp) -> u64 {
    let r = app.gql("{ ledger { revision } }", json!({})).await;
    r["data"]["ledger"]["revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("{r}"))
}

/// Five forms of the ECB sample (generic and structure-specific; time series, flat and
/// cross-sectional) are one release: the first records it, the other four find it there; the
/// figures read back over GraphQL are the file's, monthly, in the unit given. The sixth, the
/// generic cross-sectional message, gives the Swiss franc 1.3809 for 2010-09 where the others
/// give 1.3089 (a transposition in the standard's sample): it is a second release, and that
/// figure has two versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecb_exchange_rate_samples_import_with_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    let structure = exr("ecb_exr_ng_full.xml");
    // The four series have four units (CHF, GBP, JPY, USD): a dataset has one.
    let out = import(dir.path(), "sdmx-ml", &structure, &[], &[exr(EXR_FORMS[0])]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.contains("different units (CHF, GBP, JPY, USD)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was recorded"), "{}", out.stderr);
    for (i, form) in EXR_FORMS.iter().enumerate() {
        let out = import(
            dir.path(),
            "sdmx-ml",
            &structure,
            &["--unit", "currency per euro"],
            &[exr(form)],
        )
        .await;
        assert_eq!(out.code(), Some(0), "{form}: {out:?}");
        let expected = if i == 0 {
            "recorded 1 dataset and 1 release (12 observations)"
        } else {
            "recorded 0 datasets and 0 releases (0 observations); already there: 0 datasets and 1 release (12 observations)"
        };
        assert!(out.stdout.contains(expected), "{form}: {}", out.stdout);
    }
    let out = import(
        dir.path(),
        "sdmx-ml",
        &structure,
        &["--unit", "currency per euro"],
        &[exr("generic/ecb_exr_ng_xs.xml")],
    )
    .await;
    assert!(
        out.stdout
            .contains("recorded 0 datasets and 1 release (12 observations)"),
        "{out:?}"
    );
    let app = spawn_app_on(dir).await;
    assert_eq!(head_revision(&app).await, 3);
    let r = app
        .gql(
            r#"{ history(dataset: "ECB_EXR_NG", key: "CHF.EUR.SP00.E", period: "2010-09") { value } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["history"],
        json!([{ "value": "1.3089" }, { "value": "1.3809" }]),
        "{r}"
    );
    let mut want = exr_figures();
    want.insert(("CHF.EUR.SP00.E".into(), "2010-09".into()), "1.3809".into());
    let got = figures(&app, "ECB_EXR_NG").await;
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((key, period), value) in &want {
        let n = &got[&(key.clone(), period.clone(), "BAL".to_owned())];
        assert_eq!(n["value"].as_str(), Some(value.as_str()), "{key} {period}");
        // OBS_STATUS A (normal value) everywhere, no RELEASE_STATUS: FINAL.
        assert_eq!(n["status"], "FINAL", "{key} {period}");
    }
    let r = app
        .gql(
            r#"{ dataset(id: "ECB_EXR_NG") { publisher unit unitMultiplier frequency dimensions { id codes { code label parent } } } }"#,
            json!({}),
        )
        .await;
    let d = &r["data"]["dataset"];
    assert_eq!(
        (&d["publisher"], &d["unit"], &d["unitMultiplier"], &d["frequency"]),
        (&json!("ECB"), &json!("currency per euro"), &json!(0), &json!("MONTH")),
        "{r}"
    );
    let ids: Vec<&str> = d["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["CURRENCY", "CURRENCY_DENOM", "EXR_TYPE", "EXR_VAR"]);
    let chf = &d["dimensions"][0]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "CHF")
        .cloned()
        .unwrap();
    assert_eq!((&chf["label"], &chf["parent"]), (&json!("Swiss franc"), &json!("_T")));
}

async fn get(app: &TestApp, path: &str) -> String {
    let r = app
        .client
        .get(format!("http://{}/sdmx/2.1/{path}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// Every figure's versions: value, status, publication time and release.
async fn histories(app: &TestApp, keys: &[(String, String, String)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (key, period, measure) in keys {
        let r = app
            .gql(
                "query($d: ID!, $k: String!, $p: Period!, $m: String) { history(dataset: $d, key: $k, period: $p, measure: $m) { value status publishedAt release { id } } }",
                json!({ "d": DATASET, "k": key, "p": period, "m": measure }),
            )
            .await;
        out.push(r["data"]["history"].clone());
    }
    out
}

/// The Bank of Korea dataset exported over `/sdmx/2.1/` with every version
/// (`includeHistory=true`) as GenericData, StructureSpecificData and SDMX-CSV 1.0 (and that
/// CSV rewritten as SDMX-CSV 2.0), each imported into a fresh ledger with the exported
/// structure: every figure has the same versions (value, status, publication time, release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_of_korea_dataset_round_trips_through_sdmx() {
    let source = spawn_app().await;
    let keys: Vec<(String, String, String)> = figures(&source, DATASET).await.into_keys().collect();
    assert_eq!(keys.len(), 12);
    let want = histories(&source, &keys).await;
    assert!(
        want.iter().any(|h| h.as_array().unwrap().len() == 2),
        "the fixtures revise some figures"
    );
    let work = tempfile::tempdir().unwrap();
    let structure = work.path().join("structure.xml");
    std::fs::write(
        &structure,
        get(&source, &format!("dataflow/BOK/{DATASET}?references=descendants")).await,
    )
    .unwrap();
    let csv = get(&source, &format!("data/{DATASET}?includeHistory=true&format=csvdata")).await;
    // SDMX-CSV 2.0: STRUCTURE and STRUCTURE_ID in place of DATAFLOW, and an ACTION column.
    let csv2: String = csv
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => l.replacen("DATAFLOW", "STRUCTURE,STRUCTURE_ID,ACTION", 1) + "\r\n",
            _ => {
                l.replacen("BOK:", "dataflow,BOK:", 1)
                    .replacen("(1.0.0),", "(1.0.0),I,", 1)
                    + "\r\n"
            }
        })
        .collect();
    let forms = [
        (
            "generic.xml",
            "sdmx-ml",
            get(
                &source,
                &format!("data/{DATASET}?includeHistory=true&format=genericdata"),
            )
            .await,
        ),
        (
            "specific.xml",
            "sdmx-ml",
            get(
                &source,
                &format!("data/{DATASET}?includeHistory=true&format=structurespecificdata"),
            )
            .await,
        ),
        ("data.csv", "sdmx-csv", csv.clone()),
        ("data2.csv", "sdmx-csv", csv2),
        // As earlier builds wrote them, naming version 1.0 of the dataflow: read as 1.0.0.
        ("legacy.csv", "sdmx-csv", csv.replace("(1.0.0)", "(1.0)")),
    ];
    // A structure as earlier builds wrote it (version 1.0), for the data written now.
    let legacy = work.path().join("legacy-structure.xml");
    let text = std::fs::read_to_string(&structure).unwrap();
    assert!(text.contains("version=\"1.0.0\""));
    std::fs::write(
        &legacy,
        text.replace("version=\"1.0.0\"", "version=\"1.0\"")
            .replace("(1.0.0)", "(1.0)"),
    )
    .unwrap();
    let forms = forms.into_iter().map(|(n, f, b)| (n, f, b, &structure));
    for (name, format, body, structure) in forms.chain([("data-now.csv", "sdmx-csv", csv.clone(), &legacy)]) {
        let file = work.path().join(name);
        std::fs::write(&file, body).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = import(dir.path(), format, structure, &[], &[file]).await;
        assert_eq!(out.code(), Some(0), "{name}: {out:?}");
        assert!(
            out.stdout
                .contains("recorded 1 dataset and 2 releases (24 observations)"),
            "{name}: {}",
            out.stdout
        );
        let copy = spawn_app_on(dir).await;
        assert_eq!(
            figures(&copy, DATASET).await.into_keys().collect::<Vec<_>>(),
            keys,
            "{name}"
        );
        assert_eq!(histories(&copy, &keys).await, want, "{name}");
    }
}

/// Bad files, each derived from the ECB sample, are refused with the file and the line (or
/// element) named, and the ledger keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sdmx_files_are_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let structure = exr("ecb_exr_ng_full.xml");
    let unit = ["--unit", "currency per euro"];
    let good = exr("structured/ecb_exr_ng_ts.xml");
    let out = import(dir.path(), "sdmx-ml", &structure, &unit, std::slice::from_ref(&good)).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(&good).unwrap();
    // The 1-based line of the first line containing `needle` in `text`.
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let first_obs = r#"<Obs TIME_PERIOD="2010-08" OBS_VALUE="1.3413" OBS_STATUS="A" CONF_STATUS_OBS="F"/>"#;
    let duplicated = text.replacen(first_obs, &format!("{first_obs}\n      {first_obs}"), 1);
    // Good, with figures the ledger has not seen: July instead of August.
    let july = dir.path().join("july.xml");
    std::fs::write(&july, text.replace("2010-08", "2010-07")).unwrap();
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "malformed.xml",
            text.replacen("</Series>", "</Serie>", 1),
            line_of(&text, "</Series>"),
            "not well-formed XML",
        ),
        (
            "unknown-code.xml",
            text.replacen(r#"CURRENCY="CHF""#, r#"CURRENCY="XXX""#, 1),
            line_of(&text, first_obs),
            "unknown code `XXX` for dimension CURRENCY",
        ),
        (
            "other-version.xml",
            text.replacen(
                r#"id="ECB_EXR_NG" version="1.0""#,
                r#"id="ECB_EXR_NG" version="2.0""#,
                1,
            ),
            line_of(&text, r#"<Ref agencyID="ECB" id="ECB_EXR_NG""#),
            "names version 2.0 of ECB_EXR_NG; the structure file",
        ),
        (
            "no-structure.xml",
            text.replacen(r#"id="ECB_EXR_NG""#, r#"id="ECB_EXR_XX""#, 1),
            line_of(&text, r#"<Ref agencyID="ECB" id="ECB_EXR_NG""#),
            "defines no data structure or dataflow ECB_EXR_XX",
        ),
        (
            "duplicate.xml",
            duplicated,
            line_of(&text, first_obs) + 1,
            "duplicate observation CHF.EUR.SP00.E 2010-08",
        ),
        (
            "bad-number.xml",
            text.replacen(r#"OBS_VALUE="1.3413""#, r#"OBS_VALUE="1,3413""#, 1),
            line_of(&text, first_obs),
            "1,3413",
        ),
        (
            "daily.xml",
            text.replacen(r#"FREQ="M""#, r#"FREQ="D""#, 1),
            line_of(&text, first_obs),
            "FREQ `D` cannot be represented",
        ),
    ];
    for (name, body, line, message) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, body).unwrap();
        let out = import(dir.path(), "sdmx-ml", &structure, &unit, std::slice::from_ref(&file)).await;
        assert_ne!(out.code(), Some(0), "{name}: {out:?}");
        let located = format!("{}: line {line}", file.display());
        assert!(
            out.stderr.contains(&located) && out.stderr.contains(message),
            "{name}: expected `{located}` and `{message}` in:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("nothing was recorded"), "{name}: {}", out.stderr);
    }
    // A good file before a bad one in one invocation: nothing of either is recorded.
    let bad = dir.path().join("duplicate.xml");
    let out = import(dir.path(), "sdmx-ml", &structure, &unit, &[july, bad]).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("nothing was recorded"), "{}", out.stderr);
    // The structure must be a Structure message.
    let out = import(dir.path(), "sdmx-ml", &good, &unit, std::slice::from_ref(&good)).await;
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}: line 2: element StructureSpecificTimeSeriesData",
            good.display()
        )) && out.stderr.contains("not an SDMX-ML Structure message"),
        "{}",
        out.stderr
    );
    let app = spawn_app_on(dir).await;
    assert_eq!(head_revision(&app).await, 2, "only the good import was recorded");
    assert_eq!(figures(&app, "ECB_EXR_NG").await.len(), 12);
}

/// `import --url` sends SDMX files to a running server as it sends release files (checked,
/// then recorded in batches, with the admin token): the figures are the file's, and a second
/// run records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdmx_files_import_into_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::proc_support::Server::start(
        &dir.path().join("data"),
        &["--no-fixtures", "--admin-tokens", "ops:sdmx-admin-secret"],
    )
    .await;
    let base = format!("http://{}", server.addr);
    let structure = exr("ecb_exr_ng_full.xml");
    let url = [
        "--url",
        base.as_str(),
        "--token",
        "sdmx-admin-secret",
        "--unit",
        "currency per euro",
    ];
    for expected in [
        "recorded 1 datasets and 1 releases (12 observations sent)",
        "already there: 2",
    ] {
        let out = import(
            dir.path(),
            "sdmx-ml",
            &structure,
            &url,
            &[exr("generic/ecb_exr_ng_ts.xml")],
        )
        .await;
        assert_eq!(out.code(), Some(0), "{out:?}");
        assert!(out.stdout.contains(expected), "{out:?}");
    }
    let v = server
        .query(
            r#"{ observation(dataset: "ECB_EXR_NG", key: "USD.EUR.SP00.E", period: "2010-10") { value status } }"#,
            json!({}),
        )
        .await;
    assert_eq!(v["observation"], json!({ "value": "1.3898", "status": "FINAL" }), "{v}");
}
