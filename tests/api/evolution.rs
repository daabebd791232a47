//! Events that evolve: a data directory written by the previous release of tradeledger
//! (`tests/data/before-time-axes/`, its records in format 1) opened by the current binary.
//! Its records are read through the upcasters, their hashes stay those of the stored bytes,
//! new records are written in the current format and chain onto the old ones, and the
//! directory answers the same after a restart.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::proc_support::{copy_dir, release_input, run_cli, Server};
use crate::support::PUBLISH;
use tradeledger::store::FORMAT_VERSION;

const EVENTS: &str = "{ events(first: 100) { nodes { revision hash prevHash canonical } } }";

const FIGURES: &str = r#"{ history(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { value publishedAt backfilled revision }
    releases(dataset: "KR_KNOWLEDGE_SERVICES") { nodes { id title status observationCount } }
    verifyLedger { ok checked } }"#;

fn old_data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-time-axes"),
        &data,
    );
    (dir, data)
}

/// Every event's canonical bytes, checked: its hash is the SHA-256 of those bytes and its
/// `prevHash` the hash before it.
fn checked_events(v: &Value) -> Vec<(u64, String, String)> {
    let mut prev = "0".repeat(64);
    let mut out = Vec::new();
    for n in v["events"]["nodes"].as_array().expect("events") {
        let canonical = n["canonical"].as_str().unwrap().to_owned();
        let hash = n["hash"].as_str().unwrap().to_owned();
        assert_eq!(hex::encode(Sha256::digest(canonical.as_bytes())), hash, "{n}");
        assert_eq!(n["prevHash"], prev.as_str(), "{n}");
        prev = hash.clone();
        out.push((n["revision"].as_u64().unwrap(), hash, canonical));
    }
    out
}

fn format_of(canonical: &str) -> u64 {
    serde_json::from_str::<Value>(canonical).unwrap()["format"]
        .as_u64()
        .unwrap()
}

/// The records of the previous release are format 1 and read as such; a write appends one
/// of the current format to the same chain, and the directory answers the same when opened
/// again.
#[tokio::test]
async fn the_previous_release_s_records_read_through_the_upcasters_and_the_chain_continues() {
    let (_dir, data) = old_data_dir();
    let out = run_cli(["verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]).await;
    assert_eq!(out.code(), Some(0), "verify: {out:?}");
    let server = Server::start(&data, &["--write-tokens", "t:legacy-secret"]).await;
    let old = checked_events(&server.query(EVENTS, json!({})).await);
    assert_eq!(old.len(), 4);
    for (revision, _, canonical) in &old {
        assert!(
            canonical.starts_with(r#"{"format":1,"#),
            "revision {revision}: {canonical}"
        );
    }
    let before = server.query(FIGURES, json!({})).await;
    assert_eq!(before["verifyLedger"]["ok"], true, "{before}");

    let mut input = release_input(&Uuid::new_v4().to_string(), "_T._T._T", "2025-S1", "-4616");
    input["publishedAt"] = json!("2026-01-02T00:00:00Z");
    let (_, body) = server
        .post(PUBLISH, json!({ "input": input }), Some("legacy-secret"))
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let all = checked_events(&server.query(EVENTS, json!({})).await);
    assert_eq!(all.len(), 5);
    assert_eq!(all[..4], old[..], "the old records are untouched");
    assert_eq!(format_of(&all[4].2), u64::from(FORMAT_VERSION));
    let written = server.query(FIGURES, json!({})).await;
    assert_eq!(written["history"].as_array().unwrap().len(), 4, "{written}");
    assert_eq!(written["verifyLedger"]["checked"], 5, "{written}");
    server.stop().await;

    // Opened again (a snapshot of the old format, then the fold of the rest): the same.
    let out = run_cli(["verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]).await;
    assert_eq!(out.code(), Some(0), "verify: {out:?}");
    let server = Server::start(&data, &[]).await;
    assert_eq!(checked_events(&server.query(EVENTS, json!({})).await), all);
    assert_eq!(server.query(FIGURES, json!({})).await, written);
    server.stop().await;

    // And without the snapshot, folded from the records alone.
    std::fs::remove_file(data.join("snapshot")).unwrap();
    let server = Server::start(&data, &[]).await;
    assert_eq!(server.query(FIGURES, json!({})).await, written);
    server.stop().await;
}

/// A record of a format newer than this build is refused at start-up, naming the format,
/// rather than read as something it is not.
#[tokio::test]
async fn a_log_with_a_record_of_a_newer_format_is_refused_naming_it() {
    use tradeledger::store::{encode, Envelope, Hash, Head, LogStore, Record, SledStore};
    let (_dir, data) = old_data_dir();
    {
        let store = SledStore::open(&data.join("log")).unwrap();
        let head = store.head().unwrap();
        let bytes = store.get(head.revision).unwrap().unwrap();
        let last = tradeledger::store::decode(head.revision, &bytes, &{
            let prev = store.get(head.revision - 1).unwrap().unwrap();
            Hash(prev[..32].try_into().unwrap())
        })
        .unwrap();
        let envelope = Envelope {
            format: FORMAT_VERSION + 1,
            revision: head.revision + 1,
            event_id: Uuid::new_v4(),
            prev_hash: head.hash.to_hex(),
            ..last.envelope
        };
        let (hash, bytes) = encode(&envelope);
        store
            .append(
                vec![Record {
                    revision: envelope.revision,
                    hash,
                    bytes,
                }],
                Head {
                    revision: head.revision,
                    hash: head.hash,
                },
            )
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    std::fs::remove_file(data.join("snapshot")).unwrap();
    let out = run_cli(["verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]).await;
    assert_ne!(out.code(), Some(0), "verify: {out:?}");
    let text = format!("{out:?}");
    assert!(
        text.contains(&format!("unknown record format {}", FORMAT_VERSION + 1)),
        "{text}"
    );
}
