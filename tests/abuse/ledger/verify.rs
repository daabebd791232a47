//! Item 7: `verifyLedger` is public, and each call re-verified the whole log: 30 concurrent
//! anonymous calls pinned a core for 30 s at 10^6 versions. Now a call continues the chain
//! from the head verified last (free at a head already verified), and the full walk from
//! revision 1 needs a write token.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tradeledger::ledger::OpenOptions;
use tradeledger::store::{LogStore, SledStore};
use tradeledger::testing::*;
use tradeledger::Ledger;

use super::common::{draft, load_fixtures, obs};
use super::generated_store;
use crate::proc_support::{release_input, Server, PUBLISH};
use crate::support::code;

const WRITE_TOKENS: &str = "auditor:verify-write-secret";
const SECRET: &str = "verify-write-secret";
const VERIFY: &str = "{ verifyLedger { ok checked firstBadRevision } }";
const VERIFY_FULL: &str = "{ verifyLedgerFull { ok checked firstBadRevision } }";

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the parenthesised command name, from field 3 (state) on.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Thirty concurrent anonymous `verifyLedger` calls at a head already verified all answer
/// `ok` over the whole chain, and together cost the server less CPU than one full
/// verification (which a write token may still ask for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_verifications_at_a_verified_head_cost_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generated_store(tmp.path(), &data, 250, 80).await;
    let server = Server::start(&data, &["--write-tokens", WRITE_TOKENS]).await;
    let head = server.query("{ ledger { revision } }", json!({})).await["ledger"]["revision"]
        .as_u64()
        .expect("revision");
    let pid = server.child.id();

    let before = cpu_ticks(pid);
    let started = Instant::now();
    let calls = (0..30).map(|_| server.post(VERIFY, json!({}), None));
    for answer in futures_util::future::join_all(calls).await {
        let (status, body) = answer.expect("verifyLedger request");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"]["verifyLedger"],
            json!({ "ok": true, "checked": head, "firstBadRevision": null }),
            "{body}"
        );
    }
    let anonymous = cpu_ticks(pid) - before;
    let anonymous_secs = started.elapsed().as_secs_f64();

    let before = cpu_ticks(pid);
    let (status, body) = server.post(VERIFY_FULL, json!({}), Some(SECRET)).await.expect("full");
    let full = cpu_ticks(pid) - before;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["verifyLedgerFull"],
        json!({ "ok": true, "checked": head, "firstBadRevision": null }),
        "{body}"
    );
    eprintln!("30 anonymous calls: {anonymous} ticks in {anonymous_secs:.2} s; one full verification: {full} ticks");
    assert!(
        full >= 5,
        "a full verification is too cheap here to compare with ({full} ticks)"
    );
    assert!(
        anonymous < full,
        "30 anonymous calls at a verified head cost {anonymous} ticks, one full verification {full}"
    );
}

/// `verifyLedgerFull` is refused (FORBIDDEN) without a write token; with one it
/// walks the whole log. After new events, the default verification covers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_verification_needs_a_write_token() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &["--write-tokens", WRITE_TOKENS]).await;
    let (status, body) = server.post(VERIFY_FULL, json!({}), None).await.expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("write token"),
        "{body}"
    );

    for (i, id) in [
        "0f6a3c1e-2b7d-4c1a-9e55-00000000ab01",
        "0f6a3c1e-2b7d-4c1a-9e55-00000000ab02",
    ]
    .iter()
    .enumerate()
    {
        let input = release_input(id, "_T._T._T", "2026-S1", &format!("-{}", 4000 + i));
        let (status, body) = server
            .post(PUBLISH, json!({ "input": input }), Some(SECRET))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let d = server.query(VERIFY, json!({})).await;
    assert_eq!(
        d["verifyLedger"],
        json!({ "ok": true, "checked": 5, "firstBadRevision": null }),
        "{d}"
    );
    let (_, body) = server.post(VERIFY_FULL, json!({}), Some(SECRET)).await.unwrap();
    assert_eq!(
        body["data"]["verifyLedgerFull"],
        json!({ "ok": true, "checked": 5, "firstBadRevision": null }),
        "{body}"
    );
}

/// The default verification re-hashes the stored bytes of every event recorded since the
/// last one: a new event altered in the store is caught, and reported from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_events_are_checked_from_their_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("log")).unwrap();
    let (ledger, _) = Ledger::open(Arc::new(store.clone()) as Arc<dyn LogStore>, OpenOptions::default()).unwrap();
    load_fixtures(&ledger).await;
    let v = ledger.verify_new().await.unwrap();
    assert_eq!((v.ok(), v.checked), (true, 3), "{v:?}");

    let d = draft(vec![obs("_T._T._T", "2026-S1", None, "-4001")]);
    assert_eq!(ledger.publish(d, None, "test").await.unwrap().revision, 4);
    let mut bytes = store.get(4).unwrap().expect("revision 4");
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    store.events_tree().insert(4u64.to_be_bytes(), bytes).unwrap();

    for _ in 0..2 {
        let v = ledger.verify_new().await.unwrap();
        assert_eq!(v.damage.as_ref().map(|d| d.revision), Some(4), "{v:?}");
        assert_eq!(v.checked, 3, "{v:?}");
    }
}
