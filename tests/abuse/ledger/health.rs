//! Item 10: after a failed flush (a full disk), writes stayed refused until a restart while
//! `/healthz` said `ok` with `readOnly: null`. Now `/healthz` says `writable: false`,
//! `/readyz` answers 503, and writes resume by themselves once the store takes them again.
//!
//! The failure is injected by a store that wraps the real sled store (in a temp directory)
//! and fails its flushes while told to: sled itself then stays healthy, so this exercises
//! the ledger's side (refusal, reopen, catch-up) over a real HTTP server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tradeledger::auth::{Token, Tokens};
use tradeledger::http::{run, ServerConfig};
use tradeledger::ledger::OpenOptions;
use tradeledger::store::{BoxFuture, Head, LogStore, Record, RecordIter, SledStore, StoreError};
use tradeledger::Ledger;

use super::common::load_fixtures;
use crate::proc_support::{post_graphql, release_input, PUBLISH};

const SECRET: &str = "health-write-secret";

/// The sled store, with flushes (and recovery) that fail while `failing` is set.
struct FailingDisk {
    store: SledStore,
    failing: AtomicBool,
}

impl FailingDisk {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::io("No space left on device (os error 28) [injected]"))
        } else {
            Ok(())
        }
    }
}

impl LogStore for FailingDisk {
    fn head(&self) -> Result<Head, StoreError> {
        self.store.head()
    }
    fn append(&self, records: Vec<Record>, expected: Head) -> BoxFuture<'_, Result<Head, StoreError>> {
        self.store.append(records, expected)
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.flush().await
        })
    }
    fn recover(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check()?;
            self.store.recover().await
        })
    }
    fn scan(&self, from: u64) -> RecordIter<'_> {
        self.store.scan(from)
    }
    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(revision)
    }
    fn rebuild_derived(&self, head: Head) -> Result<(), StoreError> {
        self.store.rebuild_derived(head)
    }
    fn tree(&self) -> &tradeledger::tlog::TreeLock {
        self.store.tree()
    }
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Option<String>, Value) {
    let resp = client.get(url).send().await.expect("GET");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, resp.json().await.expect("JSON body"))
}

async fn publish(client: &reqwest::Client, url: &str, id: &str, value: &str) -> Value {
    let input = release_input(id, "_T._T._T", "2026-S1", value);
    post_graphql(client, url, PUBLISH, json!({ "input": input }), Some(SECRET))
        .await
        .expect("POST")
        .1
}

/// A flush fails: the publish is refused as not acknowledged, `/healthz` says
/// `writable: false`, `/readyz` answers 503 with `Retry-After`, and further publishes are
/// refused. Once the disk takes writes again, writes resume without a restart: the refused
/// release, which reached the log after all, is in the projection, a re-send of it is a
/// duplicate with its revision, and the log verifies in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_a_failed_flush() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(FailingDisk {
        store: SledStore::open(&dir.path().join("log")).unwrap(),
        failing: AtomicBool::new(false),
    });
    let (ledger, _) = Ledger::open(disk.clone() as Arc<dyn LogStore>, OpenOptions::default()).unwrap();
    load_fixtures(&ledger).await;
    let config = ServerConfig {
        tokens: Tokens {
            write: vec![Token::parse(&format!("tester:{SECRET}")).unwrap()],
            read: vec![],
            admin: vec![],
        },
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, ledger.clone(), config, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/graphql");
    let healthz = || get(&client, format!("http://{addr}/healthz"));
    let readyz = || get(&client, format!("http://{addr}/readyz"));

    let (status, _, body) = healthz().await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "status": "ok", "revision": 3, "readOnly": false, "writable": true })
    );
    let (status, _, body) = readyz().await;
    assert_eq!((status, body), (200, json!({ "ready": true, "revision": 3 })));

    // The disk fills up: the write is refused, and said not to be acknowledged.
    disk.failing.store(true, Ordering::SeqCst);
    const IN_DOUBT: &str = "0f6a3c1e-2b7d-4c1a-9e55-00000000ac01";
    let body = publish(&client, &url, IN_DOUBT, "-4100").await;
    assert!(body["data"]["publishRelease"].is_null(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("not acknowledged") && message.contains("No space left"),
        "{body}"
    );

    let (status, _, body) = healthz().await;
    assert_eq!(status, 200);
    assert_eq!(body["writable"], false, "{body}");
    assert_eq!(body["readOnly"], false, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["revision"], 3, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("No space left"), "{body}");
    let (status, retry_after, body) = readyz().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert_eq!(body["ready"], false, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("No space left"), "{body}");

    // Further writes are refused with a clear error while the disk stays full.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = publish(&client, &url, "0f6a3c1e-2b7d-4c1a-9e55-00000000ac02", "-4200").await;
    assert!(body["data"]["publishRelease"].is_null(), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("writes are refused"),
        "{body}"
    );
    assert_eq!(ledger.read().head().revision, 3);
    assert_eq!(readyz().await.0, 503);
    // A client of application/graphql-response+json is told by status: 503, Retry-After,
    // UNAVAILABLE (an application/json client got 200 above, as GraphQL over HTTP requires).
    let refused = client
        .post(&url)
        .bearer_auth(SECRET)
        .header("Accept", "application/graphql-response+json")
        .json(&json!({ "query": PUBLISH, "variables": { "input":
            release_input("0f6a3c1e-2b7d-4c1a-9e55-00000000ac03", "_T._T._T", "2026-S1", "-4300") } }))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: Value = refused.json().await.expect("JSON body");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body}");

    // Space returns: writes resume by themselves.
    disk.failing.store(false, Ordering::SeqCst);
    // The deadline only guards against writes that never resume.
    let deadline = Instant::now() + Duration::from_secs(120);
    while readyz().await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume within 120 s of the space returning: /healthz says {:?}",
            healthz().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, body) = healthz().await;
    assert_eq!(body["writable"], true, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert!(body.get("reason").is_none(), "{body}");

    // The refused release reached the log after all: the projection took it in, at the next
    // revision, and a re-send gets that revision back.
    assert_eq!(ledger.read().head().revision, 4);
    let body = publish(&client, &url, IN_DOUBT, "-4100").await;
    let r = &body["data"]["publishRelease"];
    assert_eq!(
        (r["revision"].as_u64(), r["duplicate"].as_bool()),
        (Some(4), Some(true)),
        "{body}"
    );
    let body = publish(&client, &url, "0f6a3c1e-2b7d-4c1a-9e55-00000000ac03", "-4300").await;
    let r = &body["data"]["publishRelease"];
    assert_eq!(
        (r["revision"].as_u64(), r["duplicate"].as_bool()),
        (Some(5), Some(false)),
        "{body}"
    );
    let v = ledger.verify_in_turn().await.unwrap();
    assert_eq!((v.ok(), v.checked), (true, 5), "{v:?}");
    assert_eq!(disk.head().unwrap().revision, 5);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
