//! Issue 13, "joining fast": the projection snapshot in DATA_DIR/snapshot. A graceful stop
//! writes it; a later start loads it and folds only the log's tail, giving the same answers
//! as a full fold; a torn, altered or foreign snapshot is ignored with a warning naming why,
//! and the answers still come from the whole log.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::proc_support::*;

const TOKENS: &str = "snap:snapshot-write-secret";
const ID_A: &str = "5a000000-0000-4000-8000-00000000000a";
const ID_B: &str = "5a000000-0000-4000-8000-00000000000b";

/// What every start must answer alike, whatever it started from.
const ANSWERS: &str = r#"{
  ledger { revision hash eventCount }
  releases(first: 50) { edges { node { id title status } } }
  a: observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "IPR._T._T", period: "2026-S1") { value revision }
  b: observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "ICT._T._T", period: "2026-S1") { value revision }
  total: observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { value revision versions { value revision } }
  verifyLedger { ok checked firstBadRevision }
}"#;

async fn start(data: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--write-tokens", TOKENS, "--shutdown-grace-ms", "2000"];
    args.extend_from_slice(extra);
    Server::start(data, &args).await
}

/// Starts a server on `data` (with `extra` flags), answers [`ANSWERS`], stops it (SIGKILL, so
/// no snapshot is written), and returns the answers and its log.
async fn answers(data: &Path, extra: &[&str]) -> (Value, String) {
    let mut server = start(data, extra).await;
    let got = server.query(ANSWERS, json!({})).await;
    server.kill();
    // Standard error is collected once the pipe closes, on a thread of its own.
    for _ in 0..100 {
        if server.stderr().contains("ledger opened") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (got, server.stderr())
}

/// The `snapshot=N` field of the "ledger opened" line: the revision the start continued from.
fn snapshot_used(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("ledger opened"))
        .unwrap_or_else(|| panic!("no `ledger opened` line in:\n{log}"));
    let rest = &line[line.find("snapshot=").unwrap_or_else(|| panic!("{line}")) + "snapshot=".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A store of 3 fixture events and one release, stopped gracefully (snapshot at revision 4),
/// then one more release published by a start that is killed (no new snapshot): revision 5 is
/// the tail.
async fn store_with_tail(data: &Path) {
    let server = start(data, &[]).await;
    server
        .publish(release_input(ID_A, "IPR._T._T", "2026-S1", "-12.5"))
        .await;
    let log = server.stop().await;
    assert!(log.contains("wrote a snapshot"), "{log}");
    assert!(data.join("snapshot").is_file(), "no snapshot after a graceful stop");

    let mut server = start(data, &[]).await;
    server.publish(release_input(ID_B, "ICT._T._T", "2026-S1", "7")).await;
    server.kill();
}

/// Graceful stop writes the snapshot; the next start loads it, folds the tail after it, and
/// answers exactly as a full fold of the log does (`--no-snapshot`), `verifyLedger` ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_snapshot_plus_tail_answers_as_a_full_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    store_with_tail(&data).await;

    let (full, _) = answers(&data, &["--no-snapshot"]).await;
    assert_eq!(full["ledger"]["revision"], 5, "{full}");
    assert_eq!(full["b"]["value"], "7", "{full}");
    assert_eq!(full["verifyLedger"]["ok"], true, "{full}");

    let (snap, log) = answers(&data, &[]).await;
    assert_eq!(
        snapshot_used(&log),
        4,
        "the start did not continue from the snapshot:\n{log}"
    );
    assert_eq!(snap, full, "a start from the snapshot answers differently");
}

/// A snapshot altered on disk (a release title changed), torn (cut short), or taken of another
/// store is not used: a warning names why, and the answers are those of the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_snapshot_is_ignored_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    store_with_tail(&data).await;
    let (full, _) = answers(&data, &["--no-snapshot"]).await;
    let path = data.join("snapshot");
    let good = std::fs::read(&path).unwrap();

    // Altered: a title's text, which decodes fine without the checksum.
    let needle = b"SYNTHETIC process test release";
    let at = good
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the release title is in the snapshot");
    let mut altered = good.clone();
    altered[at + 10..at + 17].copy_from_slice(b"PROCESS");
    std::fs::write(&path, &altered).unwrap();
    let (got, log) = answers(&data, &[]).await;
    assert!(
        log.contains("ignoring the snapshot") && log.contains("checksum"),
        "{log}"
    );
    assert_eq!(snapshot_used(&log), 0, "{log}");
    assert_eq!(got, full, "an altered snapshot changed the answers");

    // Torn: cut short, as a crash in the middle of a write without the rename would leave it.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let (got, log) = answers(&data, &[]).await;
    assert!(log.contains("ignoring the snapshot") && log.contains("torn"), "{log}");
    assert_eq!(got, full);

    // Foreign: the snapshot of another store at the same revision (the same fixtures and one
    // release, recorded there with other event ids, so other hashes).
    let other = tmp.path().join("other");
    let mut server = start(&other, &[]).await;
    server
        .publish(release_input(ID_A, "IPR._T._T", "2026-S1", "-12.5"))
        .await;
    server.kill();
    let server = start(&other, &[]).await;
    server.publish(release_input(ID_B, "ICT._T._T", "2026-S1", "7")).await;
    let log = server.stop().await;
    assert!(log.contains("wrote a snapshot"), "{log}");
    std::fs::copy(other.join("snapshot"), &path).unwrap();
    let (got, log) = answers(&data, &[]).await;
    assert!(
        log.contains("not using the snapshot") && log.contains("another hash"),
        "{log}"
    );
    assert_eq!(snapshot_used(&log), 0, "{log}");
    assert_eq!(got, full, "a foreign snapshot changed the answers");
}

/// The background writer: with `--snapshot-every-revisions 1` a snapshot covering a new
/// release appears while the server runs, so a start after a SIGKILL continues from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_writer_snapshots_new_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let every = ["--snapshot-every-revisions", "1"];
    let mut server = start(&data, &every).await;
    server
        .publish(release_input(ID_A, "IPR._T._T", "2026-S1", "-12.5"))
        .await;
    let mut covered = None;
    for _ in 0..200 {
        if let Ok(bytes) = std::fs::read(data.join("snapshot")) {
            // The header's revision (bytes 12..20, little-endian).
            let revision = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
            if revision == 4 {
                covered = Some(revision);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    assert_eq!(covered, Some(4), "no background snapshot of revision 4 within 10 s");
    let (got, log) = answers(&data, &[]).await;
    assert_eq!(snapshot_used(&log), 4, "{log}");
    assert_eq!(got["a"]["value"], "-12.5", "{got}");
}

/// 0 revisions or 0 seconds between snapshots is refused with a message naming the flag.
#[tokio::test]
async fn zero_snapshot_spacing_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for flag in ["--snapshot-every-revisions", "--snapshot-interval"] {
        let out = run_cli([
            "serve".as_ref(),
            "--data-dir".as_ref(),
            tmp.path().as_os_str(),
            flag.as_ref(),
            "0".as_ref(),
        ])
        .await;
        assert_eq!(out.code(), Some(2), "{out:?}");
        assert!(out.stderr.contains(flag) && out.stderr.contains("'0'"), "{out:?}");
    }
}
