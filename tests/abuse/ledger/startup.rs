//! Issue 17: `serve` must start every time. Start-up reads the log through short-lived sled
//! handles and then opens the one the server keeps; sled lets go of its file lock a moment
//! after a handle is dropped, so the next open could lose the race and the process exit.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use serde_json::json;

use super::generated_store;
use tradeledger::store::SledStore;
use tradeledger::testing::*;

use crate::proc_support::{rebuild, start_server, verify};

/// Starts `serve` on `data` `times` times in a row (killing it each time) and returns the
/// failures; each start must serve the expected head revision.
async fn start_many(data: &std::path::Path, args: &[&str], times: usize, head: u64) -> Vec<String> {
    let mut failures = Vec::new();
    for i in 0..times {
        match start_server(data, args).await {
            Ok(mut server) => {
                let d = server.query("{ ledger { revision } }", json!({})).await;
                assert_eq!(d["ledger"]["revision"].as_u64(), Some(head), "start {i}: {d}");
                server.kill();
            }
            Err(f) => failures.push(format!("start {i}: {}", f.stderr.trim())),
        }
    }
    failures
}

/// `serve` starts every time: on fresh data directories (loading the fixtures), again and
/// again on the same one, and over a log read in many chunks (a fresh store handle per
/// record), where the hand-over of sled's lock happens once per record. `verify` and
/// `rebuild` over that log, which open the store as often, succeed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_every_time() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();

    // Fresh directories, with the fixtures.
    for i in 0..8 {
        let data = tmp.path().join(format!("fresh-{i}"));
        failures.extend(start_many(&data, &[], 1, 3).await);
    }
    // The same directory again (killed each time, so sled recovers it at every start), read
    // in chunks of one record.
    let data = tmp.path().join("fresh-0");
    failures.extend(start_many(&data, &[], 6, 3).await);
    failures.extend(start_many(&data, &["--cold-scan-chunk", "1"], 6, 3).await);

    // A generated log of 1 + 80 events, read through 81 handles at each start.
    let big = tmp.path().join("big");
    generated_store(tmp.path(), &big, 80, 5).await;
    failures.extend(start_many(&big, &["--cold-scan-chunk", "1"], 8, 81).await);
    for _ in 0..3 {
        for out in [verify(&big).await, rebuild(&big).await] {
            if out.code() != Some(0) {
                failures.push(format!("{out:?}"));
            }
        }
    }
    // `verify` and `rebuild` take the same global flag.
    let out = crate::proc_support::run_cli([
        OsStr::new("verify"),
        OsStr::new("--cold-scan-chunk"),
        OsStr::new("1"),
        OsStr::new("--data-dir"),
        big.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.starts_with("ok: 81 events checked"), "{out:?}");

    assert!(
        failures.is_empty(),
        "{} start(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("serve_starts_every_time: {:.1} s", started.elapsed().as_secs_f64());
}

/// A chunk size of 0 is refused with a clear error, and nothing is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_scan_chunk_must_be_positive() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = crate::proc_support::run_cli([
        OsStr::new("verify"),
        OsStr::new("--cold-scan-chunk"),
        OsStr::new("0"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--cold-scan-chunk"), "{out:?}");
    assert!(!data.exists(), "nothing is created");
}

/// In one process, an open waits (bounded) for sled's lock held by an earlier handle of the
/// same process that has not let go yet, as sled's I/O threads do for a moment after a
/// handle is dropped: a handle let go of after 300 ms is waited for; one held until the
/// open has returned makes the open give up, after its 5 s bound, with sled's lock error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_waits_for_a_lingering_handle_of_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    for opens in [true, false] {
        let store = SledStore::open(&path).unwrap();
        store.events_tree().insert(1u64.to_be_bytes(), vec![7u8; 4096]).unwrap();
        store.flush_blocking().unwrap();
        // A clone of a tree keeps the store, and sled's lock, open.
        let lingering = store.events_tree();
        drop(store);
        // The handle is let go of after 300 ms, or once the open has returned (at the latest
        // after 120 s, which only guards against an open that never gives up: it then opens,
        // and the test fails).
        let (opened, release) = std::sync::mpsc::channel::<()>();
        let hold = if opens {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(120)
        };
        let releaser = std::thread::spawn(move || {
            let _ = release.recv_timeout(hold);
            drop(lingering);
        });
        let started = Instant::now();
        let reopened = tokio::task::spawn_blocking({
            let path = path.clone();
            move || SledStore::open(&path)
        })
        .await
        .unwrap();
        let waited = started.elapsed();
        if opens {
            let store = reopened.unwrap_or_else(|e| panic!("after {waited:?}: {e}"));
            assert!(waited >= Duration::from_millis(250), "opened after {waited:?}");
            drop(store);
        } else {
            let _ = opened.send(());
            let e = reopened
                .err()
                .unwrap_or_else(|| panic!("opened after {waited:?} while the lock was still held"));
            assert!(e.to_string().contains("could not acquire lock"), "{e}");
            assert!(waited >= Duration::from_millis(4900), "gave up after {waited:?}");
        }
        releaser.join().unwrap();
    }
}

/// A mistyped `--data-dir` is not a store: `verify`, `rebuild` and `export` exit non-zero
/// naming it, and create nothing (before, `verify` made the directory and printed
/// `ok: 0 events checked`).
#[tokio::test]
async fn commands_that_read_refuse_a_missing_data_dir() {
    let parent = tempfile::tempdir().unwrap();
    let typo = parent.path().join("typo");
    for command in ["verify", "rebuild", "export"] {
        let out = crate::proc_support::run_cli([OsStr::new(command), OsStr::new("--data-dir"), typo.as_os_str()]).await;
        assert_ne!(out.code(), Some(0), "{command}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("no store in") && out.stderr.contains("typo"),
            "{command}: {}",
            out.stderr
        );
        assert!(!typo.exists(), "{command} created {}", typo.display());
    }
    // An existing directory without a store is refused the same way.
    std::fs::create_dir(&typo).unwrap();
    let out = verify(&typo).await;
    assert_ne!(out.code(), Some(0), "{}", out.stdout);
    assert!(!typo.join("log").exists());
}
