//! "Face the public, round 2": the findings of an attacker's second run, each reproduced
//! against the real binary over real HTTP (or the real `import`), and the protection that
//! stops it.
//!
//! 1. Every distinct HTTP method became a `/metrics` label kept for ever (12,000 methods of
//!    60 KB made `/metrics` 600 MB): methods are labelled from a closed set (`OTHER` for the
//!    rest), and one longer than 32 bytes gets `400` before anything else.
//! 2. `defineDataset`'s parent-cycle check was O(N³): a deep chain of 20,000 codes would take
//!    hours. It is O(N) now, and a definition's size is bounded.
//! 3. `import` echoed the whole offending value (a 1 GB CSV line to stderr): quotes are cut
//!    at 200 bytes, and a CSV row or JSON string beyond a documented size is refused.
//! 4. A variable's default in `@include(if: $v)` was ignored by async-graphql and applied by
//!    the fast path: both apply it now.
//! 5. Writes answered "timed out" were recorded all the same: a write handed to the writer
//!    is waited for (`--write-timeout-ms`), or answered `OUTCOME_UNKNOWN` with its id.
//! 6. `100 Continue` was sent for a body announced over the limit.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::proc_support::Server;

/// Sends `method` to `/healthz`; returns the status.
async fn status_of_method(server: &Server, method: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method token");
    server
        .client
        .request(method, format!("http://{}/healthz", server.addr))
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

/// The count of `tradeledger_http_requests_total` for `route`, `method` and `status`, if the
/// series exists.
fn requests_counted(metrics: &str, route: &str, method: &str, status: u16) -> Option<u64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix("tradeledger_http_requests_total{")?;
        let (labels, value) = rest.split_once("} ")?;
        let mut labels: Vec<&str> = labels.split(',').collect();
        labels.sort_unstable();
        let mut wanted = [
            format!("method=\"{method}\""),
            format!("route=\"{route}\""),
            format!("status=\"{status}\""),
        ];
        wanted.sort_unstable();
        (labels == wanted).then(|| value.trim().parse().expect("a count"))
    })
}

/// Item 1: 600 distinct odd methods (up to 32 bytes, the limit) add one series labelled
/// `OTHER`, not 600 series named by the client, so `/metrics` stays small; a method of 33
/// bytes (or 60 KB) is answered `400` and never reaches the router or the metrics.
#[tokio::test]
async fn odd_methods_are_labelled_other_and_long_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    // Standard methods keep their label.
    assert_eq!(status_of_method(&server, "GET").await, 200);
    let before = server.metrics().await;
    const ODD: usize = 600;
    for i in 0..ODD {
        let method = format!("ODD{i:04}{}", "Z".repeat(i % 26));
        assert!(method.len() <= 32);
        // The router answers them: no such method on this route.
        assert_eq!(status_of_method(&server, &method).await, 405, "{method}");
    }
    let after = server.metrics().await;
    assert!(!after.contains("ODD"), "a raw method is a label:\n{after}");
    assert_eq!(
        requests_counted(&after, "/healthz", "OTHER", 405),
        Some(ODD as u64),
        "{after}"
    );
    assert_eq!(requests_counted(&after, "/healthz", "GET", 200), Some(1), "{after}");
    // A few series more (OTHER, and /metrics' own count and latency histogram): far below
    // the line per method (some 90 bytes each) that raw labels took.
    assert!(
        after.len() < before.len() + 4_000,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );

    assert_ne!(status_of_method(&server, &"M".repeat(32)).await, 400);
    for len in [33, 60_000] {
        assert_eq!(status_of_method(&server, &"M".repeat(len)).await, 400, "{len} bytes");
    }
    let last = server.metrics().await;
    assert_eq!(requests_counted(&last, "/healthz", "OTHER", 400), None, "{last}");
    assert!(!last.contains("MMMM"), "{last}");
    assert_eq!(status_of_method(&server, "GET").await, 200, "still serving");
}

/// Item 6: a POST whose `Content-Length` is over `--max-body-bytes` and that asks for
/// `Expect: 100-continue` gets `413` at once, not `100 Continue` (which would invite the
/// client to send what will be refused).
/// How long a read of the server's answer may wait: the answers are immediate, so this only
/// guards against a hang, and says what it waited for when it gives up.
const HANG_GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn no_100_continue_for_a_body_announced_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body-bytes", "1000"]).await;
    let head = |length: usize| {
        format!(
            "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             accept: application/json\r\ncontent-length: {length}\r\nexpect: 100-continue\r\n\r\n"
        )
    };
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head(2_000_000).as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the head of the first response is complete (or the server closes).
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no answer head within {HANG_GUARD:?} of a head announcing a body over the limit (the \
                     body is never sent); received so far: {:?}",
                    String::from_utf8_lossy(&answer)
                )
            })
            .expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // Within the limit, the client is invited to send its body, and it is served.
    let body = json!({ "query": "{ ledger { revision } }" }).to_string();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head(body.len()).as_bytes()).await.unwrap();
    let n = timeout(HANG_GUARD, stream.read(&mut buf))
        .await
        .unwrap_or_else(|_| {
            panic!("nothing within {HANG_GUARD:?} of a head with expect: 100-continue and a body within the limit")
        })
        .expect("read");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 100 Continue"), "{first}");
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut rest = first;
    while !rest.contains("\"revision\"") {
        let n = timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("no answer within {HANG_GUARD:?} of sending the body; received so far: {rest:?}")
            })
            .expect("read");
        assert!(n > 0, "closed before answering: {rest}");
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
}

const WRITER: &str = "writer:round2-secret";
const WRITE_SECRET: &str = "round2-secret";
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

/// Requests answered by the fast path so far, from `/metrics`.
async fn fast_answers(server: &Server) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("tradeledger_graphql_fast_path_answers_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fast path counter in {text}"))
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
        let before = fast_answers(&server).await;
        let first = server.query(query, json!({})).await;
        let second = server.query(query, json!({})).await;
        assert_eq!(
            fast_answers(&server).await,
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

const PUBLISH_ID: &str =
    "mutation($input: ReleaseInput!) { publishRelease(input: $input) { release { id } duplicate } }";

/// The 80 series keys of the fixtures' dataset.
fn fixture_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for a in ["_T", "IPR", "ICT", "CUL", "PBS"] {
        for b in ["_T", "ICT", "MFG", "DIP"] {
            for c in ["_T", "ASIA", "NAM", "EUR"] {
                keys.push(format!("{a}.{b}.{c}"));
            }
        }
    }
    keys
}

/// A release of the fixtures' dataset titled `title` with `n` observations.
fn release_of(title: &str, n: usize) -> serde_json::Value {
    let keys = fixture_keys();
    let observations: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let period = format!("{}-S{}", 2100 + i / 160, 1 + (i / 80) % 2);
            json!({"key": keys[i % 80], "period": period, "value": (i % 997).to_string()})
        })
        .collect();
    json!({
        "dataset": "KR_KNOWLEDGE_SERVICES",
        "status": "PRELIMINARY",
        "title": title,
        "publishedAt": "2026-01-15T00:00:00Z",
        "observations": observations
    })
}

/// How the server answered one `publishRelease`.
#[derive(Debug)]
enum Published {
    Recorded {
        id: String,
        duplicate: bool,
    },
    /// `OUTCOME_UNKNOWN`, with the id to retry with.
    Unknown(String),
    /// Refused before the write reached the writer: a timeout, or the server busy.
    Refused,
}

async fn publish_once(server: &Server, input: &serde_json::Value) -> Published {
    let (_, body) = server
        .post(PUBLISH_ID, json!({ "input": input }), Some(WRITE_SECRET))
        .await
        .expect("an answer");
    if let Some(id) = body["data"]["publishRelease"]["release"]["id"].as_str() {
        let duplicate = body["data"]["publishRelease"]["duplicate"].as_bool().unwrap();
        return Published::Recorded {
            id: id.to_owned(),
            duplicate,
        };
    }
    let e = &body["errors"][0];
    let message = e["message"].as_str().unwrap_or_default().to_owned();
    match e["extensions"]["code"].as_str() {
        Some("OUTCOME_UNKNOWN") => {
            let id = e["extensions"]["releaseId"].as_str().expect("the id to retry with");
            assert!(message.contains(&format!("Retry with the same id ({id})")), "{body}");
            if let Some(given) = input["id"].as_str() {
                assert_eq!(id, given, "{body}");
            }
            Published::Unknown(id.to_owned())
        }
        Some("LIMIT_EXCEEDED") => Published::Refused,
        _ => panic!("unexpected answer: {body}"),
    }
}

/// What became of one release a client tried to publish.
#[derive(Debug)]
struct Job {
    title: String,
    /// The id it was acknowledged with, at once or after retries of an `OUTCOME_UNKNOWN`.
    acknowledged: Option<String>,
    /// Answered with a plain refusal (a timeout): it must not be recorded.
    refused: bool,
    unknown: bool,
    duplicate_on_retry: bool,
}

/// Publishes `input`; retries an `OUTCOME_UNKNOWN` with the id it names until the answer is
/// known (the writer gets through its queue once the load ends).
async fn publish_job(server: &Server, title: String, mut input: serde_json::Value) -> Job {
    let mut job = Job {
        title,
        acknowledged: None,
        refused: false,
        unknown: false,
        duplicate_on_retry: false,
    };
    match publish_once(server, &input).await {
        Published::Recorded { id, .. } => job.acknowledged = Some(id),
        Published::Refused => job.refused = true,
        Published::Unknown(id) => {
            job.unknown = true;
            input["id"] = json!(id);
            for _ in 0..2_000 {
                match publish_once(server, &input).await {
                    Published::Recorded { id, duplicate } => {
                        job.acknowledged = Some(id);
                        job.duplicate_on_retry = duplicate;
                        break;
                    }
                    Published::Unknown(_) | Published::Refused => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            assert!(job.acknowledged.is_some(), "{} never known", job.title);
        }
    }
    job
}

/// Item 5: with a request timeout of 100 ms and the writer kept busy by concurrent releases
/// of 5,000 figures, publishes (with ids and without) are answered either as recorded, or
/// `OUTCOME_UNKNOWN` with the id whose retry settles it (`duplicate: true` when it had been
/// recorded), or refused before reaching the writer. In the end every acknowledged release
/// is recorded once, nothing else is (the releases recorded are exactly the distinct ids
/// acknowledged), and no write answered with a plain timeout was recorded. Before, such writes
/// were answered `503 … took longer than the limit` and recorded anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_write_answered_as_failed_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(
        Server::start(
            dir.path(),
            &[
                "--write-tokens",
                WRITER,
                "--request-timeout-ms",
                "100",
                "--write-timeout-ms",
                "250",
            ],
        )
        .await,
    );
    let fixtures: usize = server
        .query("{ releases(first: 1000) { nodes { id } } }", json!({}))
        .await["releases"]["nodes"]
        .as_array()
        .unwrap()
        .len();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..4 {
        let server = server.clone();
        tasks.spawn(async move {
            let mut jobs = Vec::new();
            for i in 0..6 {
                let title = format!("SYNTHETIC big {client}-{i}");
                let mut input = release_of(&title, 5_000);
                input["id"] = json!(uuid_v4_like(client, i));
                jobs.push(publish_job(&server, title, input).await);
            }
            jobs
        });
    }
    for client in 0..6 {
        let server = server.clone();
        tasks.spawn(async move {
            let mut jobs = Vec::new();
            for i in 0..30 {
                let title = format!("SYNTHETIC small {client}-{i}");
                let input = release_of(&title, 1);
                jobs.push(publish_job(&server, title, input).await);
            }
            jobs
        });
    }
    let mut jobs = Vec::new();
    while let Some(done) = tasks.join_next().await {
        jobs.extend(done.expect("a client task"));
    }

    let recorded = server
        .query("{ releases(first: 1000) { nodes { id title } } }", json!({}))
        .await;
    let recorded: Vec<(String, String)> = recorded["releases"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .skip(fixtures)
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_owned(),
                n["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let count = |title: &str| recorded.iter().filter(|(_, t)| t == title).count();
    let mut wrong = Vec::new();
    for job in &jobs {
        match &job.acknowledged {
            Some(id) if !recorded.contains(&(id.clone(), job.title.clone())) => {
                wrong.push(format!("{}: acknowledged as {id} but not recorded", job.title))
            }
            _ if job.refused && count(&job.title) > 0 => {
                wrong.push(format!("{}: answered as timed out, yet recorded", job.title))
            }
            _ if count(&job.title) > 1 => wrong.push(format!("{}: recorded {} times", job.title, count(&job.title))),
            _ => {}
        }
    }
    let acknowledged: std::collections::HashSet<&String> =
        jobs.iter().filter_map(|j| j.acknowledged.as_ref()).collect();
    let summary = format!(
        "{} jobs: {} acknowledged ({} after OUTCOME_UNKNOWN, {} of them duplicates on retry), {} refused; {} recorded",
        jobs.len(),
        acknowledged.len(),
        jobs.iter().filter(|j| j.unknown).count(),
        jobs.iter().filter(|j| j.duplicate_on_retry).count(),
        jobs.iter().filter(|j| j.refused).count(),
        recorded.len()
    );
    assert!(wrong.is_empty(), "{summary}\n{}", wrong.join("\n"));
    assert_eq!(recorded.len(), acknowledged.len(), "{summary}");
    eprintln!("{summary}");
}

/// A fixed, valid UUID for the big release `i` of `client`.
fn uuid_v4_like(client: usize, i: usize) -> String {
    format!("00000000-0000-4000-8000-{:012}", client * 100 + i + 1)
}
