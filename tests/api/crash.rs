//! Proof of reliability: concurrent writers publish over HTTP to the real binary, which is
//! killed with SIGKILL at a random moment, round after round on the same data directory.
//! Every acknowledged release must survive with its revision and hash, the log must stay
//! dense and chained, and `tradeledger verify` must pass between rounds.

use crate::proc_support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proc_support::*;
use rand::Rng;
use serde_json::{json, Value};
use uuid::Uuid;

const TOKEN: &str = "crash-test-secret";
const SERVE_ARGS: &[&str] = &[
    "--write-tokens",
    "crash:crash-test-secret",
    "--no-fixtures",
    "--log",
    "warn",
];
const WRITERS: usize = 8;
const ROUNDS: usize = 8;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A release the test sent, with the exact input (so it can be re-sent unchanged).
#[derive(Clone, Debug)]
struct Sent {
    id: String,
    input: Value,
}

/// What the server acknowledged for a release.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ack {
    revision: u64,
    hash: String,
}

#[derive(Default)]
struct WriterLog {
    acked: Vec<(Sent, Ack)>,
    in_doubt: Vec<Sent>,
    /// Failures that cannot be blamed on the kill.
    errors: Vec<String>,
}

/// Parses a successful `publishRelease` answer.
fn ack_of(status: u16, body: &Value) -> Option<(Ack, bool)> {
    let r = &body["data"]["publishRelease"];
    if status != 200 || !r.is_object() || body.get("errors").is_some() {
        return None;
    }
    Some((
        Ack {
            revision: r["revision"].as_u64()?,
            hash: r["hash"].as_str()?.to_owned(),
        },
        r["duplicate"].as_bool()?,
    ))
}

/// Publishes fresh releases until the server goes away.
async fn writer(client: reqwest::Client, url: String, counter: Arc<AtomicU64>, killed: Arc<AtomicBool>) -> WriterLog {
    let mut log = WriterLog::default();
    loop {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let id = Uuid::new_v4().to_string();
        // A distinct half-year per release: 2030-S1, 2030-S2, 2031-S1, ...
        let period = format!("{}-S{}", 2030 + n / 2, n % 2 + 1);
        let input = release_input(&id, "_T._T._T", &period, &format!("-{}.5", 1000 + n));
        let sent = Sent { id, input };
        match post_graphql(&client, &url, PUBLISH, json!({ "input": sent.input }), Some(TOKEN)).await {
            Ok((status, body)) => match ack_of(status, &body) {
                Some((ack, false)) => log.acked.push((sent, ack)),
                Some((_, true)) => {
                    log.errors
                        .push(format!("a fresh release was answered as a duplicate: {body}"));
                    return log;
                }
                None => {
                    if !killed.load(Ordering::SeqCst) {
                        log.errors
                            .push(format!("publish refused before the kill: HTTP {status} {body}"));
                    }
                    log.in_doubt.push(sent);
                    return log;
                }
            },
            Err(e) => {
                if !killed.load(Ordering::SeqCst) {
                    log.errors.push(format!("request failed before the kill: {e}"));
                }
                log.in_doubt.push(sent);
                return log;
            }
        }
    }
}

/// What a check after a restart found.
struct Check {
    head: u64,
    /// In-doubt releases (request sent, no answer) that turned out to be recorded.
    in_doubt_recorded: usize,
}

/// Checks the restarted server against everything acknowledged so far, then re-sends the
/// in-doubt releases (which must be recorded exactly once) and counts them as acknowledged.
async fn check_after_restart(
    server: &Server,
    round: usize,
    acked: &mut HashMap<String, Ack>,
    in_doubt: &mut Vec<Sent>,
) -> Check {
    // The log is dense, chained, and records each release once.
    let data = server.query("{ ledger { revision eventCount } }", json!({})).await;
    let head = data["ledger"]["revision"].as_u64().expect("revision");
    assert_eq!(
        data["ledger"]["eventCount"].as_u64(),
        Some(head),
        "round {round}: {data}"
    );
    let log = walk_events(server).await;
    let revisions: Vec<u64> = log.iter().map(|e| e.revision).collect();
    assert_eq!(
        revisions,
        (1..=head).collect::<Vec<_>>(),
        "round {round}: revisions are not dense"
    );
    let mut in_log: HashMap<String, Ack> = HashMap::new();
    let mut prev = GENESIS.to_owned();
    for e in &log {
        assert_eq!(
            e.prev_hash, prev,
            "round {round}: broken link at revision {}",
            e.revision
        );
        prev = e.hash.clone();
        if let Some(id) = &e.release {
            let again = in_log.insert(
                id.clone(),
                Ack {
                    revision: e.revision,
                    hash: e.hash.clone(),
                },
            );
            assert!(again.is_none(), "round {round}: release {id} appears twice in the log");
        }
    }
    let doubtful: HashSet<&str> = in_doubt.iter().map(|s| s.id.as_str()).collect();
    for id in in_log.keys() {
        assert!(
            acked.contains_key(id) || doubtful.contains(id.as_str()),
            "round {round}: release {id} is in the log but was never sent"
        );
    }

    // Every acknowledged release is there, at the same revision with the same hash: in the
    // log, and as `release(id:)` reports it.
    let lost: Vec<String> = acked
        .iter()
        .filter(|(id, ack)| in_log.get(*id) != Some(ack))
        .map(|(id, ack)| format!("{id} acknowledged at {ack:?}, log has {:?}", in_log.get(id)))
        .collect();
    assert!(
        lost.is_empty(),
        "round {round}: {} acknowledged releases lost or changed: {lost:#?}",
        lost.len()
    );
    let ids: Vec<&String> = acked.keys().collect();
    for chunk in ids.chunks(25) {
        let fields: String = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| format!("r{i}: release(id: \"{id}\") {{ revision hash }} "))
            .collect();
        let data = server.query(&format!("{{ {fields} }}"), json!({})).await;
        for (i, id) in chunk.iter().enumerate() {
            let r = &data[format!("r{i}")];
            let ack = &acked[*id];
            assert_eq!(
                r["revision"].as_u64(),
                Some(ack.revision),
                "round {round}: release {id}: {r}"
            );
            assert_eq!(
                r["hash"].as_str(),
                Some(ack.hash.as_str()),
                "round {round}: release {id}: {r}"
            );
        }
    }
    let data = server
        .query("{ verifyLedger { ok checked firstBadRevision } }", json!({}))
        .await;
    assert_eq!(data["verifyLedger"]["ok"], json!(true), "round {round}: {data}");
    assert_eq!(
        data["verifyLedger"]["checked"].as_u64(),
        Some(head),
        "round {round}: {data}"
    );

    // Re-sending an in-doubt release gives its original revision if it was recorded, and
    // records it (once) if it was not.
    let mut in_doubt_recorded = 0;
    let mut next = head + 1;
    for sent in in_doubt.drain(..) {
        let (status, body) = server
            .try_publish(&sent.input)
            .await
            .expect("re-sending an in-doubt release");
        let (ack, duplicate) =
            ack_of(status, &body).unwrap_or_else(|| panic!("round {round}: re-send refused: {body}"));
        match in_log.get(&sent.id) {
            Some(recorded) => {
                assert!(
                    duplicate,
                    "round {round}: recorded release {} recorded again: {body}",
                    sent.id
                );
                assert_eq!(&ack, recorded, "round {round}: release {}", sent.id);
                in_doubt_recorded += 1;
            }
            None => {
                assert!(
                    !duplicate,
                    "round {round}: release {} is a duplicate of nothing: {body}",
                    sent.id
                );
                assert_eq!(ack.revision, next, "round {round}: release {}", sent.id);
                next += 1;
            }
        }
        acked.insert(sent.id, ack);
    }
    Check {
        head,
        in_doubt_recorded,
    }
}

/// `tradeledger verify` on the stopped store passes.
async fn assert_verifies(data: &Path, round: usize) {
    let out = verify(data).await;
    assert_eq!(out.code(), Some(0), "round {round}: verify failed: {out:?}");
    assert!(out.stdout.starts_with("ok:"), "round {round}: {out:?}");
}

/// Acknowledged releases survive repeated random `kill -9` under 8 writers: none lost, log dense, `verify` ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_releases_survive_kill_9() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    import(&data, &[fixtures_dir().join("00_dataset.json")]).await;

    // `verify` cannot open the store while `serve` holds sled's lock on it: that is why it
    // runs between rounds, on the stopped store.
    let mut server = Server::start(&data, SERVE_ARGS).await;
    let locked = verify(&data).await;
    assert_ne!(
        locked.code(),
        Some(0),
        "verify opened a store that serve holds: {locked:?}"
    );
    assert!(locked.stderr.contains("lock"), "{locked:?}");

    let counter = Arc::new(AtomicU64::new(0));
    let mut acked: HashMap<String, Ack> = HashMap::new();
    let mut in_doubt: Vec<Sent> = Vec::new();
    let mut acked_by_writers = 0usize;
    let mut in_doubt_total = 0usize;
    let mut in_doubt_recorded = 0usize;
    for round in 1..=ROUNDS {
        let killed = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                tokio::spawn(writer(
                    server.client.clone(),
                    server.url.clone(),
                    counter.clone(),
                    killed.clone(),
                ))
            })
            .collect();
        let delay = rand::thread_rng().gen_range(50..=400u64);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed.store(true, Ordering::SeqCst);
        server.kill();

        let mut round_acked = 0;
        let mut round_in_doubt = 0;
        for w in writers {
            let log = tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a writer did not stop after the kill")
                .expect("writer task");
            assert!(log.errors.is_empty(), "round {round}: {:#?}", log.errors);
            round_acked += log.acked.len();
            round_in_doubt += log.in_doubt.len();
            for (sent, ack) in log.acked {
                assert!(acked.insert(sent.id, ack).is_none(), "a release id was used twice");
            }
            in_doubt.extend(log.in_doubt);
        }
        acked_by_writers += round_acked;
        in_doubt_total += round_in_doubt;

        assert_verifies(&data, round).await;
        server = Server::start(&data, SERVE_ARGS).await;
        let check = check_after_restart(&server, round, &mut acked, &mut in_doubt).await;
        in_doubt_recorded += check.in_doubt_recorded;
        println!(
            "round {round}: killed after {delay} ms; {round_acked} acknowledged, {round_in_doubt} in doubt \
             ({} of them recorded); head revision {} after restart; 0 lost",
            check.in_doubt_recorded, check.head
        );
    }
    server.kill();
    assert_verifies(&data, ROUNDS + 1).await;
    assert!(
        acked_by_writers >= 50,
        "too few writes to prove anything: {acked_by_writers}"
    );
    println!(
        "crash test: {ROUNDS} rounds of kill -9 with {WRITERS} writers; {acked_by_writers} releases acknowledged \
         before a kill, {in_doubt_total} in doubt ({in_doubt_recorded} recorded, the rest re-sent), \
         {} releases checked in total; lost releases = 0 ({:.1} s)",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
}

/// `events` never shows a revision ahead of the `ledger` head read afterwards (no unacknowledged events).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_log_shows_only_acknowledged_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    import(&data, &[fixtures_dir().join("00_dataset.json")]).await;
    let mut server = Server::start(&data, SERVE_ARGS).await;
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (client, url, counter, stop) =
                (server.client.clone(), server.url.clone(), counter.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let input = release_input(
                        &Uuid::new_v4().to_string(),
                        "_T._T._T",
                        &format!("{}-S{}", 2030 + n / 2, n % 2 + 1),
                        "1",
                    );
                    let (status, body) = post_graphql(&client, &url, PUBLISH, json!({ "input": input }), Some(TOKEN))
                        .await
                        .expect("publish");
                    assert!(ack_of(status, &body).is_some(), "{body}");
                    acked += 1;
                }
                acked
            })
        })
        .collect();

    // Tail the log; after each page, ask for the head: it must include what the page showed.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut after = 0u64;
    let mut pages = 0;
    let mut ahead = Vec::new();
    while Instant::now() < deadline {
        let page = server
            .query(
                "query($a: Int) { events(after: $a, first: 1000) { edges { node { revision } } } }",
                json!({ "a": after }),
            )
            .await;
        let newest = page["events"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .filter_map(|e| e["node"]["revision"].as_u64())
            .max();
        let head = server.query("{ ledger { revision } }", json!({})).await["ledger"]["revision"]
            .as_u64()
            .expect("revision");
        if let Some(newest) = newest {
            if newest > head {
                ahead.push((newest, head));
            }
            after = newest;
        }
        pages += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = 0;
    for w in writers {
        acked += tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("writer stops")
            .expect("writer");
    }
    server.kill();
    println!(
        "audit tail: {pages} pages read while {acked} releases were acknowledged; {} pages ahead of the head",
        ahead.len()
    );
    assert!(acked > 0 && pages > 0);
    assert!(
        ahead.is_empty(),
        "`events` returned revisions the ledger had not acknowledged yet (newest shown, head read afterwards): {ahead:?}"
    );
}
