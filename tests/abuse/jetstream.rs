//! The JetStream store against a hostile or mistaken stream, over the real binary
//! and a real nats-server: a stream whose configuration could drop or reorder records is
//! refused at start-up, naming the field; a record that someone else published into the
//! stream and that does not continue the hash chain stops writes on a running node (reads go
//! on) and stops a starting node, naming the revision.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;

use crate::proc_support::*;
use crate::support::nats::NatsCluster;

const TOKEN: &str = "abuse-nats-secret";

fn args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--store",
        "jetstream",
        "--nats-url",
        url,
        "--write-tokens",
        "abuse:abuse-nats-secret",
        "--log",
        "warn",
    ];
    args.extend_from_slice(extra);
    args
}

async fn context(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.expect("connecting to NATS"))
}

/// A stream that keeps at most 100 messages (and so would drop records) is refused, and so
/// is one with other replicas than `--nats-replicas`; both name the field. Nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_does_not_fit_the_log_is_refused_naming_the_field() {
    // No server named at all.
    let dir = tempfile::tempdir().unwrap();
    let failure = start_server(&dir.path().join("none"), &["--store", "jetstream"])
        .await
        .err()
        .expect("a JetStream node started without --nats-url");
    assert!(failure.stderr.contains("--nats-url"), "{failure:?}");

    let nats = NatsCluster::start(1).await;
    let url = nats.urls();
    let js = context(&url).await;
    js.create_stream(jetstream::stream::Config {
        name: "LIMITED".into(),
        subjects: vec!["LIMITED.events".into()],
        max_messages: 100,
        ..Default::default()
    })
    .await
    .expect("creating the stream");
    let failure = start_server(&dir.path().join("a"), &args(&url, &["--nats-stream", "LIMITED"]))
        .await
        .err()
        .expect("a node started on a stream that drops records");
    assert_ne!(failure.status.code(), Some(0));
    assert!(
        failure.stderr.contains("LIMITED") && failure.stderr.contains("max_msgs"),
        "{failure:?}"
    );

    // A fitting stream made with one replica, asked for with three.
    let node = Server::start(&dir.path().join("b"), &args(&url, &["--no-fixtures"])).await;
    drop(node);
    let failure = start_server(&dir.path().join("c"), &args(&url, &["--nats-replicas", "3"]))
        .await
        .err()
        .expect("a node started on a stream with other replicas");
    assert!(failure.stderr.contains("replicas is 1, expected 3"), "{failure:?}");
    let mut stream = js.get_stream("TRADELEDGER").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0, "nothing was written");
}

/// Someone with access to the NATS account publishes a record of their own into the stream:
/// it does not continue the hash chain. A running node stops taking writes (reads go on,
/// `/readyz` says why), and a node starting on the stream refuses, naming the revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_in_the_stream_stops_writes_and_start_up() {
    let nats = NatsCluster::start(1).await;
    let url = nats.urls();
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start(&dir.path().join("a"), &args(&url, &[])).await;
    let data = a.query("{ ledger { revision } }", json!({})).await;
    let head = data["ledger"]["revision"].as_u64().unwrap();
    assert!(head > 0, "fixtures loaded");

    // A well-formed record (its hash matches its bytes) at the right revision, chained to
    // a made-up predecessor.
    let body = format!(
        r#"{{"format":1,"revision":{},"event_id":"6b1f0c2e-4d3a-4e51-9a57-2025a00000ff","recorded_at":"2030-01-01T00:00:00Z","actor":"mallory","prev_hash":"{}","event":{{}}}}"#,
        head + 1,
        "ab".repeat(32)
    );
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(body.as_bytes()).into();
    let mut record = hash.to_vec();
    record.extend_from_slice(body.as_bytes());
    let js = context(&url).await;
    js.publish("TRADELEDGER.events", record.into())
        .await
        .unwrap()
        .await
        .expect("the forged record is stored");

    // The running node notices and refuses writes; reads still answer at the old head.
    let started = Instant::now();
    loop {
        let input = release_input(&uuid::Uuid::new_v4().to_string(), "_T._T._T", "2060-S1", "1.5");
        let (_, body) = a.post(PUBLISH, json!({ "input": input }), Some(TOKEN)).await.unwrap();
        assert!(
            body["data"]["publishRelease"].is_null(),
            "a write was accepted after a forged record: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        if message.contains("inconsistency") {
            break;
        }
        // The deadline only guards against a node that never notices.
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "writes were not refused as an inconsistency within 120 s of the forged record: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data = a.query("{ ledger { revision } }", json!({})).await;
    assert!(data["ledger"]["revision"].as_u64().unwrap() >= head);
    let ready = a.client.get(format!("http://{}/readyz", a.addr)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // A node starting on the stream refuses it, naming where the chain breaks.
    let failure = start_server(&dir.path().join("b"), &args(&url, &["--no-fixtures"]))
        .await
        .err()
        .expect("a node started on a forged stream");
    let forged = format!("revision {}", head + 1);
    assert!(
        failure.stderr.contains("damaged") && failure.stderr.contains(&forged),
        "{failure:?}"
    );
}
