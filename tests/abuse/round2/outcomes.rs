//! No write answered as failed is recorded.

use super::*;

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
