//! The ledger on a NATS JetStream cluster: a 3-server NATS cluster on loopback with a
//! 3-replica stream, and tradeledger nodes (the real binary) with `--store jetstream` over it.
//! A release published through one node is read and heard on the other; concurrent writers
//! through both nodes give one dense log; a quorum loss refuses writes and keeps reads, and
//! writes resume when the quorum is back.

use crate::proc_support::*;
use crate::support::nats::NatsCluster;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tradeledger::store::{LogStore, SledStore};
use tradeledger::testing::*;
use uuid::Uuid;

const TOKEN: &str = "cluster-test-secret";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Starts a node over `cluster`; `fixtures`: load the fixtures into an empty stream. A
/// 3-replica stream and warnings only, unless `extra` says otherwise.
async fn start_node(data: &Path, cluster: &NatsCluster, fixtures: bool, extra: &[&str]) -> Server {
    let urls = cluster.urls();
    let mut args = vec![
        "--store",
        "jetstream",
        "--nats-url",
        urls.as_str(),
        "--write-tokens",
        "cluster:cluster-test-secret",
    ];
    for (flag, default) in [("--nats-replicas", "3"), ("--log", "warn")] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    if !fixtures {
        args.push("--no-fixtures");
    }
    args.extend_from_slice(extra);
    Server::start(data, &args).await
}

/// `(revision, hash, duplicate)` of a successful `publishRelease`.
fn ack_of(status: u16, body: &Value) -> Option<(u64, String, bool)> {
    let r = &body["data"]["publishRelease"];
    if status != 200 || body.get("errors").is_some() {
        return None;
    }
    Some((
        r["revision"].as_u64()?,
        r["hash"].as_str()?.to_owned(),
        r["duplicate"].as_bool()?,
    ))
}

async fn head_of(server: &Server) -> u64 {
    let data = server.query("{ ledger { revision } }", json!({})).await;
    data["ledger"]["revision"].as_u64().expect("revision")
}

/// Waits (bounded) until `server`'s head is at least `revision`.
async fn wait_head(server: &Server, revision: u64, what: &str) {
    let started = Instant::now();
    loop {
        let head = head_of(server).await;
        if head >= revision {
            return;
        }
        // The deadline only guards against a node that never catches up.
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: head still {head} after 120 s, waited for {revision}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The log as `server` has it: dense, chained, each release once; release id → (revision, hash).
async fn checked_log(server: &Server, what: &str) -> (u64, HashMap<String, (u64, String)>) {
    let head = head_of(server).await;
    let log = walk_events(server).await;
    let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
    assert_eq!(
        revisions,
        (1..=head).collect::<Vec<_>>(),
        "{what}: revisions are not dense"
    );
    let mut prev = GENESIS.to_owned();
    let mut releases = HashMap::new();
    for e in &log {
        assert_eq!(e.prev_hash, prev, "{what}: broken link at revision {}", e.revision);
        prev = e.hash.clone();
        if let Some(id) = &e.release {
            let again = releases.insert(id.clone(), (e.revision, e.hash.clone()));
            assert!(again.is_none(), "{what}: release {id} is in the log twice");
        }
    }
    let data = server.query("{ verifyLedger { ok checked } }", json!({})).await;
    assert_eq!(data["verifyLedger"]["ok"], json!(true), "{what}: {data}");
    assert_eq!(data["verifyLedger"]["checked"].as_u64(), Some(head), "{what}: {data}");
    (head, releases)
}

/// A release published through node A is readable on node B, at the same revision and hash,
/// and a subscriber on B hears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_published_on_one_node_is_read_and_heard_on_the_other() {
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    let fixtures_head = head_of(&a).await;
    assert!(fixtures_head > 0, "node A loaded the fixtures");
    wait_head(&b, fixtures_head, "node B reads the fixtures node A wrote").await;

    let mut ws = b
        .subscribe(
            "1",
            "subscription { releasePublished { revision release { id } } }",
            json!({}),
        )
        .await;
    // The subscription is set up once node B counts it.
    let started = Instant::now();
    loop {
        let metrics = b.client.get(format!("http://{}/metrics", b.addr)).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        if text.lines().any(|l| l == "tradeledger_subscribers 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the subscription on node B was not set up within 60 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let id = Uuid::new_v4().to_string();
    let (status, body) = a
        .try_publish(&release_input(&id, "_T._T._T", "2031-S1", "1.5"))
        .await
        .unwrap();
    let (revision, hash, duplicate) = ack_of(status, &body).unwrap_or_else(|| panic!("publish on A: {body}"));
    assert!(!duplicate);
    assert_eq!(revision, fixtures_head + 1);

    let heard = ws.next_data().await;
    assert_eq!(
        heard["releasePublished"]["revision"].as_u64(),
        Some(revision),
        "{heard}"
    );
    assert_eq!(
        heard["releasePublished"]["release"]["id"].as_str(),
        Some(id.as_str()),
        "{heard}"
    );

    let data = b
        .query(
            "query($id: ID!) { release(id: $id) { revision hash } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["release"]["revision"].as_u64(), Some(revision), "{data}");
    assert_eq!(data["release"]["hash"].as_str(), Some(hash.as_str()), "{data}");

    // The same release re-sent through node B is a duplicate with the original revision.
    let (status, body) = b
        .try_publish(&release_input(&id, "_T._T._T", "2031-S1", "1.5"))
        .await
        .unwrap();
    assert_eq!(ack_of(status, &body), Some((revision, hash, true)), "{body}");
}

/// A release scheduled through node A is revealed exactly once although both nodes run the
/// reveal at its time: the log (the same on both) holds one reveal, after the time, and both
/// nodes serve its figure. Node B never had the sealed content in memory: it is in the
/// stream's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_to_reveal_a_scheduled_release_reveal_it_once() {
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    wait_head(&b, head_of(&a).await, "node B reads the fixtures").await;

    let id = Uuid::new_v4().to_string();
    let mut input = release_input(&id, "_T._T._T", "2031-S1", "4.25");
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    input["publishedAt"] = json!(due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (status, body) = a
        .post(
            "mutation($input: ReleaseInput!) { scheduleRelease(input: $input) { revision commitment } }",
            json!({ "input": input }),
            Some(TOKEN),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    let figure = format!(r#"{{ release(id: "{id}") {{ revision }} }}"#);
    let started = Instant::now();
    let revision = loop {
        let data = b.query(&figure, json!({})).await;
        if let Some(r) = data["release"]["revision"].as_u64() {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not revealed on node B within 120 s: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Both nodes had every chance to reveal; then the logs are compared.
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_head(&a, head_of(&b).await, "node A catches up").await;
    for (server, name) in [(&a, "A"), (&b, "B")] {
        let (_, releases) = checked_log(server, name).await;
        assert_eq!(releases.get(&id).map(|r| r.0), Some(revision), "node {name}");
        let data = server
            .query("{ events(first: 1000) { nodes { kind recordedAt } } }", json!({}))
            .await;
        let reveals: Vec<&Value> = data["events"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "RELEASE_REVEALED")
            .collect();
        assert_eq!(reveals.len(), 1, "node {name}: {data}");
        let at: chrono::DateTime<chrono::Utc> = reveals[0]["recordedAt"].as_str().unwrap().parse().unwrap();
        assert!(at >= due, "node {name}: revealed at {at}, before {due}");
    }
}

/// Four writers through two nodes, two of them re-sending the same release ids through the
/// other node: the log is dense and chained, the same on both nodes, each release is in it
/// once at the revision its acknowledgement named, and a re-send is a duplicate of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_through_two_nodes_keep_one_dense_log() {
    const PER_WRITER: usize = 25;
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    let start = head_of(&a).await;

    // Writers 0 and 1 send their own releases; writers 2 and 3 send writer 0's and 1's again,
    // through the other node, in another order.
    let inputs: Vec<Vec<(String, Value)>> = (0..2)
        .map(|w| {
            (0..PER_WRITER)
                .map(|i| {
                    let id = Uuid::new_v4().to_string();
                    let period = format!("{}-S{}", 2040 + w * 18 + i / 2, i % 2 + 1);
                    let input = release_input(&id, "_T._T._T", &period, &format!("{w}{i}.5"));
                    (id, input)
                })
                .collect()
        })
        .collect();
    let servers = [&a, &b];
    let runs = (0..4).map(|w| {
        let mut mine = inputs[w % 2].clone();
        if w >= 2 {
            mine.reverse();
        }
        // Writer w goes through node w % 2 for its own ids, the other node for re-sends.
        let server = servers[(w + w / 2) % 2];
        async move {
            let mut acks = Vec::new();
            for (id, input) in mine {
                let (status, body) = server.try_publish(&input).await.expect("publish");
                let ack = ack_of(status, &body).unwrap_or_else(|| panic!("writer {w}: {body}"));
                acks.push((id, ack));
            }
            acks
        }
    });
    let results = futures_util::future::join_all(runs).await;

    // Writes recorded through one node reach the other's copy a moment later: both catch up
    // with the newest head before their logs are read.
    let newest = head_of(&a).await.max(head_of(&b).await);
    wait_head(&a, newest, "node A catches up").await;
    wait_head(&b, newest, "node B catches up").await;
    let (head_a, log_a) = checked_log(&a, "node A").await;
    let (head_b, log_b) = checked_log(&b, "node B").await;
    assert_eq!(head_a, head_b, "equal heads");
    assert_eq!(log_a, log_b, "the same log on both nodes");
    assert_eq!(head_a, start + 2 * PER_WRITER as u64, "each release recorded once");

    let mut fresh = 0;
    for (id, (revision, hash, duplicate)) in results.into_iter().flatten() {
        assert_eq!(
            log_a.get(&id),
            Some(&(revision, hash.clone())),
            "release {id} acknowledged at {revision}"
        );
        if !duplicate {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 2 * PER_WRITER, "each release acknowledged as new exactly once");
}

/// Without a quorum (2 of 3 NATS servers killed) a write fails (storage failure) within the
/// timeout, reads still answer, `/readyz` says not ready; once the servers are back, writes
/// resume without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_quorum_refuses_writes_keeps_reads_and_recovers() {
    let mut cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &["--nats-timeout-ms", "2000"]).await;
    let head = head_of(&a).await;

    // Node A may be connected to any of the servers: keep one alive, kill the others.
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    // The probe: /readyz says so within seconds, before any write is attempted.
    let (headers, body) = wait_ready(&a, 503, "an idle node without quorum").await;
    assert!(headers.contains_key("retry-after"), "{body}");
    assert!(
        body["reason"].as_str().unwrap_or("").contains("JetStream"),
        "the reason names the stream: {body}"
    );
    // Answered within the node's HTTP client timeout (20 s; the NATS timeout is 2 s): a write
    // that hangs fails here.
    let (status, body) = a
        .try_publish(&release_input(
            &Uuid::new_v4().to_string(),
            "_T._T._T",
            "2050-S1",
            "2.5",
        ))
        .await
        .expect("a write without quorum is answered");
    assert!(
        ack_of(status, &body).is_none(),
        "a write without quorum succeeded: {body}"
    );
    // The storage-failure path of every store: UNAVAILABLE naming the cause, /readyz 503.
    assert_eq!(body["errors"][0]["extensions"]["code"], json!("UNAVAILABLE"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("JetStream"),
        "{body}"
    );

    assert_eq!(head_of(&a).await, head, "reads answer with the last state");
    let ready = a.client.get(format!("http://{}/readyz", a.addr)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "readyz without quorum");
    assert!(ready.headers().contains_key("retry-after"));

    cluster.nodes[1].start();
    cluster.nodes[2].start();
    cluster.wait_healthy().await;
    // Ready again once the quorum is back, before any write is attempted.
    wait_ready(&a, 200, "once the quorum is back").await;
    let started = Instant::now();
    loop {
        let id = Uuid::new_v4().to_string();
        let (status, body) = a
            .try_publish(&release_input(&id, "_T._T._T", "2050-S2", "3.5"))
            .await
            .expect("publish answers");
        if let Some((revision, _, false)) = ack_of(status, &body) {
            assert!(revision > head);
            break;
        }
        // The deadline only guards against writes that never resume.
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "writes did not resume within 180 s after the quorum came back: last answer {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ready = a.client.get(format!("http://{}/readyz", a.addr)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "readyz once writes resumed");
    checked_log(&a, "after the quorum came back").await;
}

/// Polls `/readyz` (bounded) until it answers `status`; returns the headers and body.
async fn wait_ready(server: &Server, status: u16, what: &str) -> (reqwest::header::HeaderMap, Value) {
    let started = Instant::now();
    loop {
        let r = server
            .client
            .get(format!("http://{}/readyz", server.addr))
            .send()
            .await
            .expect("readyz answers");
        let got = r.status().as_u16();
        let headers = r.headers().clone();
        let body: Value = r.json().await.expect("readyz body");
        if got == status {
            return (headers, body);
        }
        // The deadline only guards against a node whose readiness never changes.
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: /readyz still answers {got} after {:?}, waited for {status}: {body}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `tradeledger import --store jetstream` fills a fresh stream through the write path of
/// `serve`; a node over the stream then serves the imported figures. A file with a bad
/// release changes nothing, and the sled-only commands refuse `--store jetstream`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_fills_a_stream_that_a_node_serves_and_a_bad_file_changes_nothing() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let urls = cluster.urls();
    let file = dir.path().join("generated.json");
    let file_s = file.display().to_string();
    let out = run_cli([
        "generate",
        "--releases",
        "40",
        "--observations-per-release",
        "25",
        file_s.as_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let import_dir = dir.path().join("import");
    let import_s = import_dir.display().to_string();
    let import_into = |files: Vec<String>| {
        let mut args: Vec<String> = [
            "import",
            "--data-dir",
            import_s.as_str(),
            "--store",
            "jetstream",
            "--nats-url",
            urls.as_str(),
            "--nats-stream",
            "FILLED",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(files);
        run_cli(args)
    };
    let out = import_into(vec![file_s.clone()]).await;
    assert_eq!(out.code(), Some(0), "import into a fresh stream: {out:?}");
    assert!(out.stdout.contains("head revision 41"), "{out:?}");

    // A file whose second release names an unknown code: refused whole, the stream unchanged.
    let releases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mut good = releases[1].clone();
    good["id"] = json!(Uuid::new_v4().to_string());
    good["title"] = json!("SYNTHETIC release not to be recorded");
    let mut bad = good.clone();
    bad["id"] = json!(Uuid::new_v4().to_string());
    bad["observations"][0]["key"] = json!("NOPE._T._T");
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, serde_json::to_vec(&json!([good, bad])).unwrap()).unwrap();
    let out = import_into(vec![bad_file.display().to_string()]).await;
    assert_ne!(out.code(), Some(0), "a bad file was imported: {out:?}");
    assert!(out.stderr.contains("nothing was recorded"), "{out:?}");
    assert!(out.stderr.contains("NOPE"), "the error names the bad code: {out:?}");

    let node = Server::start(
        &dir.path().join("node"),
        &[
            "--store",
            "jetstream",
            "--nats-url",
            urls.as_str(),
            "--nats-stream",
            "FILLED",
            "--no-fixtures",
            "--log",
            "warn",
        ],
    )
    .await;
    let (head, logged) = checked_log(&node, "the imported stream").await;
    assert_eq!(head, 41, "the dataset and 40 releases, nothing of the bad file");
    assert_eq!(logged.len(), 40);
    for r in &releases[1..] {
        let id = r["id"].as_str().unwrap();
        assert!(logged.contains_key(id), "release {id} is not in the stream");
    }
    // The latest figures are those of the last release that set them.
    let last = releases.last().unwrap();
    for o in last["observations"].as_array().unwrap().iter().take(10) {
        let data = node
            .query(
                "query($k: String!, $p: Period!) { observation(dataset: \"SYNTHETIC_TRADE\", key: $k, period: $p) { value } }",
                json!({ "k": o["key"], "p": o["period"] }),
            )
            .await;
        assert_eq!(data["observation"]["value"], o["value"], "{o}");
    }

    // The sled-only commands refuse a JetStream store, from the flag or the environment.
    for command in ["verify", "rebuild", "export", "snapshot"] {
        let data = dir.path().join(format!("refused-{command}"));
        let out = std::process::Command::new(BIN)
            .args([command, "--data-dir"])
            .arg(&data)
            .env("TRADELEDGER_STORE", "jetstream")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("sled store only"), "{command}: {stderr}");
        assert!(!data.exists(), "{command} created its data directory");
    }
    let out = run_cli(["import", "--store", "jetstream", "--event-log", file_s.as_str()]).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("sled store only"), "{out:?}");
}

/// What a writer saw.
#[derive(Default)]
struct WriterLog {
    /// Release id, input, and the acknowledged (revision, hash).
    acked: Vec<(String, Value, (u64, String))>,
    /// Sent without an acknowledgement (an error, or no answer): recorded or not.
    in_doubt: Vec<(String, Value)>,
}

/// Publishes fresh releases through `server` until `stop`, or until the server is gone.
async fn keep_writing(
    client: reqwest::Client,
    url: String,
    writer: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> WriterLog {
    use std::sync::atomic::Ordering;
    let mut log = WriterLog::default();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = Uuid::new_v4().to_string();
        let period = format!("{}-S{}", 2100 + writer as u64 * 1200 + n / 2, n % 2 + 1);
        let input = release_input(&id, "_T._T._T", &period, &format!("{writer}{n}.25"));
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .bearer_auth(TOKEN)
            .json(&json!({ "query": PUBLISH, "variables": { "input": input } }))
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.json::<Value>().await.ok().map(|body| (status, body))
            }
            Err(_) => None,
        };
        match answer {
            Some((status, body)) => match ack_of(status, &body) {
                Some((revision, hash, false)) => log.acked.push((id, input, (revision, hash))),
                Some((_, _, true)) => panic!("writer {writer}: a fresh release is a duplicate: {body}"),
                None => {
                    log.in_doubt.push((id, input));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            None => {
                // The node is gone (killed): this writer is done.
                log.in_doubt.push((id, input));
                return log;
            }
        }
    }
    log
}

/// Four writers through two nodes while one NATS server is SIGKILLed and restarted, then a
/// tradeledger node is SIGKILLed and restarted: every acknowledged release is on both nodes
/// at its acknowledged revision, the log is dense and the same on both, `verifyLedger` is ok,
/// and an in-doubt release re-sent is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_releases_survive_killed_nats_and_tradeledger_nodes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_node(&data_a, &cluster, true, &["--nats-timeout-ms", "2000"]).await;
    let mut b = start_node(&data_b, &cluster, false, &["--nats-timeout-ms", "2000"]).await;

    let (_, fixtures) = checked_log(&a, "node A before the writers").await;
    let stop = Arc::new(AtomicBool::new(false));
    let spawn_writers = |server: &Server, first: usize| -> Vec<tokio::task::JoinHandle<WriterLog>> {
        (first..first + 2)
            .map(|w| tokio::spawn(keep_writing(server.client.clone(), server.url.clone(), w, stop.clone())))
            .collect()
    };
    let mut writers = spawn_writers(&a, 0);
    writers.extend(spawn_writers(&b, 2));

    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.nodes[0].kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.nodes[0].start();
    cluster.wait_healthy().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill();
    b = start_node(&data_b, &cluster, false, &["--nats-timeout-ms", "2000"]).await;
    writers.extend(spawn_writers(&b, 4));
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);

    let mut acked: HashMap<String, (u64, String)> = HashMap::new();
    let mut in_doubt = Vec::new();
    for w in writers {
        let log = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a writer did not stop")
            .expect("writer task");
        for (id, _, ack) in log.acked {
            assert!(acked.insert(id, ack).is_none(), "a release id was acknowledged twice");
        }
        in_doubt.extend(log.in_doubt);
    }
    assert!(!acked.is_empty(), "nothing was acknowledged");

    // Each node applies what the other wrote, within a bound.
    let newest = head_of(&a).await.max(head_of(&b).await);
    wait_head(&a, newest, "node A catches up").await;
    wait_head(&b, newest, "node B catches up").await;
    let (head_a, log_a) = checked_log(&a, "node A").await;
    let (head_b, log_b) = checked_log(&b, "node B").await;
    assert_eq!(head_a, head_b, "equal heads");
    assert_eq!(log_a, log_b, "the same log on both nodes");
    let lost: Vec<_> = acked
        .iter()
        .filter(|(id, ack)| log_a.get(*id) != Some(ack))
        .map(|(id, ack)| format!("{id} acknowledged at {ack:?}, the log has {:?}", log_a.get(id)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged releases lost or moved: {lost:#?}",
        lost.len()
    );
    for id in log_a.keys().filter(|id| !fixtures.contains_key(*id)) {
        assert!(
            acked.contains_key(id) || in_doubt.iter().any(|(d, _)| d == id),
            "release {id} is in the log but was never sent"
        );
    }

    // An in-doubt release re-sent through either node: its original revision if it was
    // recorded, recorded once otherwise.
    for (i, (id, input)) in in_doubt.iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, body) = server.try_publish(input).await.expect("re-send");
        let (revision, hash, duplicate) = ack_of(status, &body).unwrap_or_else(|| panic!("re-send of {id}: {body}"));
        match log_a.get(id) {
            Some(recorded) => {
                assert!(duplicate, "{id} recorded again: {body}");
                assert_eq!(&(revision, hash), recorded, "{id}");
            }
            None => assert!(!duplicate, "{id} is a duplicate of nothing: {body}"),
        }
    }
    // A re-send recorded through one node reaches the other's copy a moment later: both
    // catch up with the newest head before their logs are read (a log that grows during the
    // walk would not match the head read before it).
    let newest = head_of(&a).await.max(head_of(&b).await);
    wait_head(&a, newest, "node A after the re-sends").await;
    wait_head(&b, newest, "node B after the re-sends").await;
    let (head_a, _) = checked_log(&a, "node A after the re-sends").await;
    assert_eq!(checked_log(&b, "node B after the re-sends").await.0, head_a);
}

/// Measurement, not a check (run with `--ignored --nocapture`): the time from an
/// acknowledgement on node A to a subscriber on node B being notified of the release (node B
/// has applied it, so it is readable there, before it notifies), over 200 sequential publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_cross_node_visibility() {
    let cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&dir.path().join("a"), &cluster, true, &[]).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &[]).await;
    wait_head(&b, head_of(&a).await, "node B reads the fixtures").await;
    let mut ws = b
        .subscribe("1", "subscription { releasePublished { revision } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lags = Vec::new();
    for i in 0..200u64 {
        let input = release_input(
            &Uuid::new_v4().to_string(),
            "_T._T._T",
            &format!("{}-S{}", 2400 + i / 2, i % 2 + 1),
            "1.5",
        );
        let (status, body) = a.try_publish(&input).await.unwrap();
        let acked = Instant::now();
        let (revision, _, _) = ack_of(status, &body).unwrap_or_else(|| panic!("{body}"));
        loop {
            let heard = ws.next_data().await;
            if heard["releasePublished"]["revision"].as_u64() >= Some(revision) {
                break;
            }
        }
        lags.push(acked.elapsed());
    }
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    println!(
        "ack on A -> subscriber on B notified, {} publishes: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        lags.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        lags[lags.len() - 1]
    );
}

/// A node over stream `stream` with one replica (a one-server cluster), logging at info.
async fn start_logged(data: &Path, cluster: &NatsCluster, stream: &str, fixtures: bool, extra: &[&str]) -> Server {
    let args = [
        &["--nats-stream", stream, "--nats-replicas", "1", "--log", "info"],
        extra,
    ]
    .concat();
    start_node(data, cluster, fixtures, &args).await
}

/// The `key=value` fields of the first line of `log` that contains `message`.
fn logged(log: &str, message: &str) -> HashMap<String, String> {
    let line = log
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no `{message}` line in the log:\n{log}"));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// Publishes `n` one-observation releases through `server`; returns their ids.
async fn publish_n(server: &Server, n: usize, period: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::new_v4().to_string();
        let value = format!("{}.5", i + 1);
        let (status, body) = server
            .try_publish(&release_input(&id, "_T._T._T", period, &value))
            .await
            .unwrap();
        assert!(ack_of(status, &body).is_some(), "{body}");
        ids.push(id);
    }
    ids
}

async fn release_revision(server: &Server, id: &str) -> Option<u64> {
    let data = server
        .query("query($id: ID!) { release(id: $id) { revision } }", json!({ "id": id }))
        .await;
    data["release"]["revision"].as_u64()
}

/// A node keeps its copy of the stream in `DATA_DIR/jetstream`. Restarted, it folds the copy
/// from its disk (continuing its snapshot) and fetches from the stream only what the stream
/// gained meanwhile. Pointed at another stream (a stream replaced under the name it knows
/// shows the same), it empties the copy and reads the new stream whole: nothing of the old
/// log survives, and the new one verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_fetches_only_what_its_copy_lacks() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));

    let a = start_logged(&a_dir, &cluster, "COPIED", true, &[]).await;
    let first = publish_n(&a, 2, "2031-S1").await;
    let head = head_of(&a).await;
    let log = a.stop().await;
    let read = logged(&log, "read the JetStream stream");
    assert_eq!((read["local"].as_str(), read["fetched"].as_str()), ("0", "0"), "{log}");
    assert!(
        a_dir.join("jetstream").is_dir(),
        "no copy of the stream in the data directory"
    );

    // Node B joins fresh and writes while A is down.
    let b = start_logged(&b_dir, &cluster, "COPIED", false, &[]).await;
    assert_eq!(head_of(&b).await, head);
    let later = publish_n(&b, 3, "2031-S2").await;
    let b_head = head_of(&b).await;
    let read = logged(&b.stderr(), "read the JetStream stream");
    assert_eq!(read["local"], "0");
    assert_eq!(read["fetched"], head.to_string(), "node B reads the whole stream");

    let a = start_logged(&a_dir, &cluster, "COPIED", false, &[]).await;
    let log = a.stderr();
    let read = logged(&log, "read the JetStream stream");
    assert_eq!(read["local"], head.to_string(), "node A reads its copy: {log}");
    assert_eq!(
        read["fetched"],
        (b_head - head).to_string(),
        "and fetches only the tail: {log}"
    );
    assert_eq!(
        logged(&log, "ledger opened")["snapshot"],
        head.to_string(),
        "the snapshot is continued over the copy: {log}"
    );
    for id in first.iter().chain(&later) {
        assert!(
            release_revision(&a, id).await.is_some(),
            "release {id} is missing on node A"
        );
    }
    let (a_head, _) = checked_log(&a, "node A after its restart").await;
    assert_eq!(a_head, b_head);
    // Writes through the restarted node continue the log both nodes see.
    let more = publish_n(&a, 1, "2032-S1").await;
    wait_head(&b, b_head + 1, "node B sees node A's write").await;
    assert_eq!(release_revision(&b, &more[0]).await, Some(b_head + 1));
    drop(b);
    a.stop().await;

    // A damaged copy (a flipped byte in revision 2) is fetched again, not served as a
    // damaged log. Without the snapshot, the whole copy is read.
    let head = b_head + 1;
    {
        let copy = SledStore::open(&a_dir.join("jetstream")).expect("open the stopped node's copy");
        assert_eq!(copy.head().unwrap().revision, head);
        let mut bytes = copy.get(2).unwrap().expect("revision 2 is in the copy");
        let at = bytes.len() - 2;
        bytes[at] ^= 1;
        copy.events_tree().insert(2u64.to_be_bytes(), bytes).unwrap();
        copy.flush_blocking().unwrap();
    }
    let a = start_logged(&a_dir, &cluster, "COPIED", false, &["--no-snapshot"]).await;
    let log = a.stderr();
    assert!(
        log.contains("emptying this node's copy of the JetStream stream") && log.contains("damaged at revision 2"),
        "the damaged copy is not emptied: {log}"
    );
    let read = logged(&log, "read the JetStream stream");
    assert_eq!(read["local"], "0", "{log}");
    assert_eq!(read["fetched"], head.to_string(), "{log}");
    let (a_head, _) = checked_log(&a, "node A after its copy was damaged").await;
    assert_eq!(a_head, head);
    a.stop().await;

    // Another stream, longer than A's copy, whose record at the copy's head differs.
    let c = start_logged(&dir.path().join("c"), &cluster, "OTHER", true, &[]).await;
    let other = publish_n(&c, 8, "2033-S1").await;
    let other_head = head_of(&c).await;
    assert!(other_head > b_head + 1);
    drop(c);
    let a = start_logged(&a_dir, &cluster, "OTHER", false, &[]).await;
    let log = a.stderr();
    assert!(
        log.contains("emptying this node's copy of the JetStream stream"),
        "the copy of the old stream is not emptied: {log}"
    );
    let read = logged(&log, "read the JetStream stream");
    assert_eq!(read["local"], "0", "{log}");
    assert_eq!(read["fetched"], other_head.to_string(), "{log}");
    let (a_head, releases) = checked_log(&a, "node A on the other stream").await;
    assert_eq!(a_head, other_head);
    assert!(other.iter().all(|id| releases.contains_key(id)), "{releases:?}");
    assert!(
        !first.iter().chain(&later).any(|id| releases.contains_key(id)),
        "releases of the old stream survived on node A"
    );
}

/// The admin endpoints on a JetStream node: a batch posted to node A (`POST
/// /admin/releases`) is recorded once in the stream, a retry through node B answers it as
/// duplicates, and `GET /admin/events` gives the same log, byte for byte, from either node,
/// ending with a checkpoint of all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_import_and_export_on_jetstream_nodes() {
    const ADMIN: &str = "cluster-admin-secret";
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--nats-replicas", "1", "--admin-tokens", "ops:cluster-admin-secret"];
    let a = start_node(&dir.path().join("a"), &cluster, true, &extra).await;
    let b = start_node(&dir.path().join("b"), &cluster, false, &extra).await;
    let fixtures_head = head_of(&a).await;
    let releases: Vec<Value> = (0..3)
        .map(|i| json!({ "release": release_input(&Uuid::new_v4().to_string(), "_T._T._T", &format!("203{i}-S1"), "7") }))
        .collect();
    let batch = json!({ "releases": releases }).to_string();
    let post = |server: &Server| {
        server
            .client
            .post(format!("http://{}/admin/releases", server.addr))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(batch.clone())
            .send()
    };
    let r: Value = post(&a).await.unwrap().json().await.unwrap();
    assert_eq!(r["releasesRecorded"], 3, "{r}");
    assert_eq!(r["headRevision"].as_u64(), Some(fixtures_head + 3), "{r}");
    wait_head(&b, fixtures_head + 3, "node B reads the batch node A recorded").await;
    let r: Value = post(&b).await.unwrap().json().await.unwrap();
    assert_eq!(
        (r["releasesRecorded"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{r}"
    );
    assert_eq!(head_of(&a).await, fixtures_head + 3, "the retry added revisions");

    let events = |server: &Server| {
        let url = format!("http://{}/admin/events", server.addr);
        let client = server.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let (from_a, from_b) = (events(&a).await, events(&b).await);
    let lines: Vec<&str> = from_b.lines().collect();
    assert_eq!(lines.len() as u64, fixtures_head + 4, "{from_b}");
    let (events_a, events_b) = (
        from_a.rsplit_once("{\"checkpoint\"").unwrap().0,
        from_b.rsplit_once("{\"checkpoint\"").unwrap().0,
    );
    assert_eq!(events_a, events_b, "the nodes export different logs");
    let last: Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    let note = last["checkpoint"].as_str().unwrap();
    assert_eq!(
        note.lines().nth(1),
        Some((fixtures_head + 3).to_string().as_str()),
        "{note}"
    );
    let (_, log) = checked_log(&b, "node B").await;
    assert_eq!(log.len(), 5, "the fixtures' 2 releases and the batch's 3, once each");
}
