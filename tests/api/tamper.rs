//! Tamper evidence through the real binary: the sled files of a stopped server are altered
//! in-process, then `verify`, `serve`, `serve --read-only` and `rebuild` are run as child
//! processes and must all notice the damage and name the first bad revision.

use crate::proc_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proc_support::*;
use serde_json::{json, Value};
use tradeledger::store::{LogStore, SledStore};
use tradeledger::testing::*;
use uuid::Uuid;

const TOKEN: &str = "tamper-test-secret";
const WRITE_TOKENS: &str = "tamper:tamper-test-secret";

/// A data directory holding the fixtures, imported by the binary: revision 1 defines the
/// dataset, 2 is the preliminary release, 3 the synthetic revision.
async fn fixture_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let out = import(&data, &files).await;
    assert!(out.stdout.contains("head revision 3"), "{out:?}");
    (dir, data)
}

/// Opens the stopped store in this process, lets `f` alter it, flushes and closes it, and
/// waits until sled has let go of its lock on the directory (it does so a moment after the
/// handle is dropped), so that the binary can open the store next.
async fn tamper(data: &Path, f: impl FnOnce(&SledStore)) {
    {
        let store = SledStore::open(&data.join("log")).expect("open the stopped store");
        assert_eq!(
            store.head().expect("head").revision,
            3,
            "the fixtures are revisions 1 to 3"
        );
        f(&store);
        store.flush_blocking().expect("flush");
    }
    // The deadline only guards against a lock that is never let go of.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = verify(data).await;
        if !out.stderr.contains("could not acquire lock") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store stayed locked 120 s after the tamper: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn raw(store: &SledStore, revision: u64) -> Vec<u8> {
    store.get(revision).expect("read").expect("the event exists")
}

fn put(store: &SledStore, revision: u64, value: &[u8]) {
    store
        .events_tree()
        .insert(revision.to_be_bytes(), value)
        .expect("insert");
}

fn remove(store: &SledStore, revision: u64) {
    let old = store.events_tree().remove(revision.to_be_bytes()).expect("remove");
    assert!(old.is_some(), "revision {revision} was there to remove");
}

/// Replaces the only occurrence of `from` in `bytes` by `to` (same length).
fn replace_once(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let hits: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from.as_bytes())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "`{from}` should occur exactly once");
    let mut out = bytes.to_vec();
    out[hits[0]..hits[0] + to.len()].copy_from_slice(to.as_bytes());
    out
}

/// A valid release for a `publishRelease` attempt.
fn fresh_release() -> Value {
    release_input(&Uuid::new_v4().to_string(), "_T._T._T", "2030-S1", "-1")
}

/// Asserts that `verify` exits 1 naming `bad` as the first bad revision.
async fn assert_verify_names(data: &Path, bad: u64, when: &str) {
    let out = verify(data).await;
    assert_eq!(out.code(), Some(1), "{when}: verify should fail: {out:?}");
    assert!(
        out.stdout.contains(&format!("first bad revision {bad}:")),
        "{when}: verify should name revision {bad}: {out:?}"
    );
    assert!(
        out.stdout.contains(&format!("{} events before it check out", bad - 1)),
        "{when}: {out:?}"
    );
}

/// Checks every way the binary must show that the log was damaged at revision `bad`.
async fn assert_damage_is_evident(data: &Path, bad: u64) {
    assert_verify_names(data, bad, "before serving").await;

    // `serve` refuses the damaged log.
    match start_server(data, &["--write-tokens", WRITE_TOKENS]).await {
        Ok(mut server) => {
            server.kill();
            panic!("serve started on a log damaged at revision {bad}");
        }
        Err(failure) => {
            assert!(!failure.status.success(), "{failure:?}");
            assert!(failure.stderr.contains("damaged"), "{failure:?}");
            assert!(failure.stderr.contains(&format!("revision {bad}")), "{failure:?}");
        }
    }

    // `serve --read-only` serves what comes before the damage and says what is wrong.
    let mut server = Server::start(data, &["--write-tokens", WRITE_TOKENS, "--read-only"]).await;
    let data_ = server
        .query(
            "{ verifyLedger { ok checked firstBadRevision } ledger { revision readOnlyReason } }",
            json!({}),
        )
        .await;
    let v = &data_["verifyLedger"];
    assert_eq!(v["ok"], json!(false), "{data_}");
    assert_eq!(v["firstBadRevision"].as_u64(), Some(bad), "{data_}");
    assert_eq!(v["checked"].as_u64(), Some(bad - 1), "{data_}");
    assert_eq!(data_["ledger"]["revision"].as_u64(), Some(bad - 1), "{data_}");
    let reason = data_["ledger"]["readOnlyReason"]
        .as_str()
        .unwrap_or_else(|| panic!("{data_}"));
    assert!(
        reason.contains("damaged") && reason.contains(&format!("revision {bad}")),
        "{reason}"
    );

    // Writes are refused with a valid token, and nothing is recorded.
    let (status, body) = server
        .post(PUBLISH, json!({ "input": fresh_release() }), Some(TOKEN))
        .await
        .expect("publish request");
    assert!(body["data"]["publishRelease"].is_null(), "HTTP {status}: {body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("FORBIDDEN"),
        "HTTP {status}: {body}"
    );
    let head = server.query("{ ledger { revision } }", json!({})).await;
    assert_eq!(head["ledger"]["revision"].as_u64(), Some(bad - 1), "{head}");
    server.kill();

    // `rebuild` does not paper over a damaged chain.
    let out = rebuild(data).await;
    assert_eq!(out.code(), Some(1), "rebuild should refuse: {out:?}");
    assert!(out.stdout.contains(&format!("first bad revision {bad}")), "{out:?}");
    assert_verify_names(data, bad, "after rebuild").await;
}

/// An untouched store verifies (`ok:`, exit 0), survives `rebuild`, and serves writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untouched_store_verifies() {
    let (_dir, data) = fixture_store().await;
    let out = verify(&data).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.starts_with("ok: 3 events checked"), "{out:?}");

    let out = rebuild(&data).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.starts_with("rebuilt: 3 events"), "{out:?}");
    let out = verify(&data).await;
    assert_eq!(out.code(), Some(0), "{out:?}");

    let mut server = Server::start(&data, &["--write-tokens", WRITE_TOKENS]).await;
    let d = server
        .query(
            "{ verifyLedger { ok checked firstBadRevision } ledger { revision readOnlyReason } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["verifyLedger"],
        json!({ "ok": true, "checked": 3, "firstBadRevision": null }),
        "{d}"
    );
    assert_eq!(d["ledger"], json!({ "revision": 3, "readOnlyReason": null }), "{d}");
    // The token that the damaged-store tests see refused is a valid write token.
    let (status, body) = server
        .post(PUBLISH, json!({ "input": fresh_release() }), Some(TOKEN))
        .await
        .expect("publish request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["publishRelease"]["revision"].as_u64(), Some(4), "{body}");
    // A second process on the same data directory is refused, naming why, and the server
    // goes on serving.
    let out = verify(&data).await;
    assert_eq!(out.code(), Some(2), "exit 2: could not check; {out:?}");
    assert!(out.stderr.contains("another tradeledger process is using"), "{out:?}");
    assert_eq!(
        server.query("{ ledger { revision } }", json!({})).await["ledger"]["revision"],
        4
    );
    server.kill();
    let out = verify(&data).await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.starts_with("ok: 4 events checked"), "{out:?}");
}

/// Changing one observation value inside revision 2 (keeping its stored hash) is caught at 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_value_is_evident() {
    let (_dir, data) = fixture_store().await;
    tamper(&data, |store| {
        let bad = replace_once(&raw(store, 2), r#""value":"-2450""#, r#""value":"-2451""#);
        put(store, 2, &bad);
    })
    .await;
    assert_damage_is_evident(&data, 2).await;
}

/// Swapping the stored events of revisions 2 and 3 is caught at 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_events_are_evident() {
    let (_dir, data) = fixture_store().await;
    tamper(&data, |store| {
        let (two, three) = (raw(store, 2), raw(store, 3));
        put(store, 2, &three);
        put(store, 3, &two);
    })
    .await;
    assert_damage_is_evident(&data, 2).await;
}

/// Deleting revision 2 from the middle of the log is caught at 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_middle_event_is_evident() {
    let (_dir, data) = fixture_store().await;
    tamper(&data, |store| remove(store, 2)).await;
    assert_damage_is_evident(&data, 2).await;
}

/// Deleting the last event (revision 3) is caught at 3 through the head record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_last_event_is_evident() {
    let (_dir, data) = fixture_store().await;
    tamper(&data, |store| remove(store, 3)).await;
    assert_damage_is_evident(&data, 3).await;
}

/// `serve --read-only` on a damaged log serves `events` up to the last good revision (as docs/operations.md says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_serves_events_before_the_damage() {
    let mut failures = Vec::new();
    for (what, bad) in [("edited", 2u64), ("deleted", 2), ("deleted last", 3)] {
        let (_dir, data) = fixture_store().await;
        tamper(&data, |store| match what {
            "edited" => put(
                store,
                2,
                &replace_once(&raw(store, 2), r#""value":"-2450""#, r#""value":"-2451""#),
            ),
            "deleted" => remove(store, 2),
            _ => remove(store, 3),
        })
        .await;
        let mut server = Server::start(&data, &["--write-tokens", WRITE_TOKENS, "--read-only"]).await;
        let (status, body) = server
            .post(
                "{ events(first: 100) { edges { node { revision } } } }",
                json!({}),
                None,
            )
            .await
            .expect("events request");
        server.kill();
        let served: Vec<u64> = body["data"]["events"]["edges"]
            .as_array()
            .map(|edges| edges.iter().filter_map(|e| e["node"]["revision"].as_u64()).collect())
            .unwrap_or_default();
        if (&served, body.get("errors")) != (&(1..bad).collect::<Vec<_>>(), None) {
            failures.push(format!("{what} revision {bad}: HTTP {status}: {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "the events before the damage should be served: {failures:#?}"
    );
}

/// Damage at revision 1 (the dataset definition) is caught at 1, and writes are still refused with FORBIDDEN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_first_event_is_evident() {
    let (_dir, data) = fixture_store().await;
    tamper(&data, |store| {
        let bad = replace_once(
            &raw(store, 1),
            r#""publisher":"Bank of Korea""#,
            r#""publisher":"Bank of Kerea""#,
        );
        put(store, 1, &bad);
    })
    .await;
    assert_damage_is_evident(&data, 1).await;
}
