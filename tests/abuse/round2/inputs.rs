//! A deep code list is checked in linear time, import errors quote huge values briefly, and
//! variable defaults decide `@include`/`@skip` on both paths.

use super::*;

const DEFINE: &str = "mutation($input: DatasetInput!) { defineDataset(input: $input) { id } }";

/// A SYNTHETIC dataset whose dimensions have `codes[i]` codes each: `_T`, then a chain in
/// which every code is the parent of the next (as deep as a hierarchy can be).
fn chained_dataset(id: &str, codes: &[usize]) -> serde_json::Value {
    let dimensions: Vec<serde_json::Value> = codes
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            let mut list = vec![json!({"code": "_T", "label": "All"})];
            list.extend((1..n).map(|i| {
                let parent = if i == 1 { "_T".to_owned() } else { format!("C{}", i - 1) };
                json!({"code": format!("C{i}"), "label": format!("SYNTHETIC {i}"), "parent": parent})
            }));
            json!({"id": format!("D{d}"), "label": format!("SYNTHETIC dimension {d}"), "codes": list})
        })
        .collect();
    json!({"input": {
        "id": id,
        "name": "SYNTHETIC deep code list",
        "publisher": "tests",
        "unit": "USD",
        "unitMultiplier": 6,
        "dimensions": dimensions
    }})
}

async fn revision(server: &Server) -> u64 {
    server.query("{ ledger { revision } }", json!({})).await["ledger"]["revision"]
        .as_u64()
        .expect("a revision")
}

/// Item 2: a code list of 20,000 codes (the limit per dimension) chained 20,000 deep is
/// defined within a request timeout of 5 s (the O(N³) check would take hours: 10^12 steps),
/// and definitions over the limits (per dimension, and all dimensions together) are refused
/// with `BAD_USER_INPUT` naming the limit, recording nothing.
#[tokio::test]
async fn a_deep_code_list_is_checked_in_linear_time_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--write-tokens",
            WRITER,
            "--request-timeout-ms",
            "5000",
            "--max-body-bytes",
            "8000000",
            "--max-variables-nodes",
            "300000",
        ],
    )
    .await;
    let before = revision(&server).await;
    let deep = chained_dataset("SYNTHETIC_DEEP", &[20_000]);
    let (status, body) = server.post(DEFINE, deep, Some(WRITE_SECRET)).await.expect("an answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["defineDataset"]["id"], "SYNTHETIC_DEEP", "{body}");
    assert_eq!(revision(&server).await, before + 1);
    let data = server
        .query(
            "{ dataset(id: \"SYNTHETIC_DEEP\") { dimensions { codes { code } } } }",
            json!({}),
        )
        .await;
    let codes = data["dataset"]["dimensions"][0]["codes"].as_array().expect("codes");
    assert_eq!(codes.len(), 20_000);

    // A cycle at the far end of the chain is still found.
    let mut cyclic = chained_dataset("SYNTHETIC_CYCLE", &[20_000]);
    cyclic["input"]["dimensions"][0]["codes"][1]["parent"] = json!("C19999");
    let (_, body) = server.post(DEFINE, cyclic, Some(WRITE_SECRET)).await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("form a cycle"),
        "{body}"
    );

    let refusals = [
        (
            chained_dataset("SYNTHETIC_WIDE", &[20_001]),
            "20000 codes per dimension",
        ),
        (
            chained_dataset("SYNTHETIC_MANY", &[17_000, 17_000, 17_000]),
            "50000 codes in all dimensions together",
        ),
    ];
    for (input, limit) in refusals {
        let (_, body) = server.post(DEFINE, input, Some(WRITE_SECRET)).await.unwrap();
        let e = &body["errors"][0];
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert!(e["message"].as_str().unwrap().contains(limit), "{body}");
    }
    assert_eq!(revision(&server).await, before + 1, "nothing more recorded");
}

/// A SYNTHETIC dataset file for the import tests: one dimension, `_T` and `A`.
const IMPORT_DATASET: &str = r#"{"id": "SYNTHETIC_IMPORT", "name": "SYNTHETIC import test", "publisher": "tests",
 "unit": "USD", "unit_multiplier": 6, "measures": ["BAL"],
 "dimensions": [{"id": "ITEM", "label": "Item", "codes": [{"code": "_T", "label": "All"},
   {"code": "A", "label": "A", "parent": "_T"}]}]}"#;

const CSV_HEAD: &str = "dataset,status,title,published_at,key,period,value\n";

fn csv_row(status: &str, title: &str, key: &str) -> String {
    format!("SYNTHETIC_IMPORT,{status},{title},2026-01-15T00:00:00Z,{key},2030,1\n")
}

fn json_release(status: &str, title: &str, key: &str) -> String {
    json!([{"dataset": "SYNTHETIC_IMPORT", "status": status, "title": title,
        "publishedAt": "2026-01-15T00:00:00Z",
        "observations": [{"key": key, "period": "2030", "value": "1"}]}])
    .to_string()
}

/// Item 3: `import` of a file with a huge value (5 MB in a CSV row or a JSON string, or
/// 100 KB to 500 KB where it passes the size bounds and fails a check) fails with an error
/// of less than 1 KB naming the file and the line (or item and field), a non-zero exit code,
/// and nothing recorded. It once wrote the whole value to stderr.
#[tokio::test]
async fn import_errors_quote_huge_values_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dataset = dir.path().join("dataset.json");
    std::fs::write(&dataset, IMPORT_DATASET).unwrap();
    let huge = "T".repeat(5 << 20);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "title.csv",
            format!("{CSV_HEAD}{}", csv_row("FINAL", &huge, "A")),
            "line 2: a row longer than the limit of 1048576 bytes",
        ),
        (
            "status.csv",
            format!("{CSV_HEAD}{}", csv_row(&"S".repeat(100_000), "t", "_T")),
            "line 2: status `SSSS",
        ),
        (
            "key.csv",
            format!("{CSV_HEAD}{}", csv_row("FINAL", "t", &"K".repeat(500_000))),
            "line 2: release \"t\": observations[0].key: key `KKKK",
        ),
        (
            "title.json",
            json_release("FINAL", &huge, "_T"),
            "line 1: a JSON string of 5242880 bytes is longer than the limit of 65536 bytes",
        ),
        (
            "status.json",
            json_release(&"S".repeat(60_000), "t", "_T"),
            "item 0: release: unknown variant `SSSS",
        ),
        (
            "key.json",
            json_release("FINAL", "t", &"K".repeat(60_000)),
            "item 0: release \"t\": observations[0].key: key `KKKK",
        ),
    ];
    let mut failed = Vec::new();
    for (name, text, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = crate::proc_support::run_cli([
            "import".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            dataset.as_os_str(),
            file.as_os_str(),
        ])
        .await;
        let shown = &out.stderr[..out.stderr.len().min(1500)];
        let ok = out.code().is_some_and(|c| c != 0)
            && out.stderr.len() < 1024
            && out.stderr.contains(&format!("{name}: {expected}"))
            && out.stderr.contains("nothing was recorded");
        if !ok {
            failed.push(format!(
                "{name}: exit {:?}, {} bytes on stderr: {shown}",
                out.code(),
                out.stderr.len()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // Nothing was recorded: the dataset alone is new.
    let out = crate::proc_support::import(&data, &[dataset]).await;
    assert!(out.stdout.starts_with("recorded 1 dataset and 0 releases"), "{out:?}");
}

/// Item 4: a variable's default decides `@include` and `@skip` when the request leaves the
/// variable out, on async-graphql's path (the first answer) as on the compiled plan (the
/// answers after it): the same answer each time, as the GraphQL specification has it.
#[tokio::test]
async fn variable_defaults_decide_include_and_skip_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--response-cache-entries", "0"]).await;
    let include = "query($inc: Boolean = true) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", \
        key: \"_T._T._T\", period: \"2025-S1\") { value status @include(if: $inc) } }";
    let skip = "query($skip: Boolean! = true) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", \
        key: \"_T._T._T\", period: \"2025-S1\") { value status @skip(if: $skip) } }";
    for (query, shown) in [(include, true), (skip, false)] {
        let before = server.fast_path_answers().await;
        let first = server.query(query, json!({})).await;
        let second = server.query(query, json!({})).await;
        assert_eq!(
            server.fast_path_answers().await,
            before + 1,
            "the second answer comes from the plan"
        );
        assert_eq!(first, second, "{query}");
        let observation = first["observation"].as_object().expect("an observation");
        assert!(observation.contains_key("value"), "{first}");
        assert_eq!(observation.contains_key("status"), shown, "{query}: {first}");
        // A value sent still wins over the default (true in both), on the plan too.
        let name = if shown { "inc" } else { "skip" };
        let flipped = server.query(query, json!({ name: false })).await;
        assert_eq!(
            flipped["observation"].as_object().unwrap().contains_key("status"),
            !shown,
            "{flipped}"
        );
    }
}
