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

mod failures;
mod replication;
mod streams;

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

/// Waits until nodes A and B have both caught up with the newer of their heads, checks each
/// one's log, and asserts they hold the same log; returns its head and releases.
async fn same_log_on_both(a: &Server, b: &Server) -> (u64, HashMap<String, (u64, String)>) {
    let newest = head_of(a).await.max(head_of(b).await);
    wait_head(a, newest, "node A catches up").await;
    wait_head(b, newest, "node B catches up").await;
    let (head_a, log_a) = checked_log(a, "node A").await;
    let (head_b, log_b) = checked_log(b, "node B").await;
    assert_eq!(head_a, head_b, "equal heads");
    assert_eq!(log_a, log_b, "the same log on both nodes");
    (head_a, log_a)
}
