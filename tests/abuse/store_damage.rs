//! Backup, restore and damage below the event layer, over the real binary on a
//! generated store: `export` then `import --event-log` restores the same head hash and
//! Merkle root; a byte changed in sled's own files never passes `verify` as a different
//! history: either the content still reads intact (exit 0, same head and root), or `verify`
//! names the first bad revision (exit 1), or sled refuses to open its files (exit 2, "Read
//! corrupted data"), as docs/operations.md's "A damaged log and a damaged store" says.

use crate::proc_support::*;

/// `(head hash, tree root)` from `verify`'s `ok:` line, or `None` when it did not say ok.
fn verified(out: &Output) -> Option<(String, String)> {
    let line = out.stdout.lines().find(|l| l.starts_with("ok: "))?;
    let after = |label: &str| {
        let rest = &line[line.find(label)? + label.len()..];
        Some(rest.split([' ', ',']).next()?.to_owned())
    };
    Some((after("head ")?, after("tree root ")?))
}

/// `export` of a generated store, restored with `import --event-log` into an empty one,
/// verifies to the same head hash and tree root; the restore refuses a changed line.
#[tokio::test]
async fn export_and_import_round_trip_a_generated_store() {
    let dir = tempfile::tempdir().unwrap();
    let source = generated_store(dir.path(), 60, 50).await;
    let original = verify(&source).await;
    let expected = verified(&original).unwrap_or_else(|| panic!("{original:?}"));
    let log = dir.path().join("log.jsonl");
    let out = run_cli([
        "export".as_ref(),
        "--data-dir".as_ref(),
        source.as_os_str(),
        "--out".as_ref(),
        log.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 61, "one line per event");

    let target = dir.path().join("restored");
    let out = run_cli([
        "import".as_ref(),
        "--data-dir".as_ref(),
        target.as_os_str(),
        "--event-log".as_ref(),
        log.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let restored = verify(&target).await;
    assert_eq!(verified(&restored), Some(expected), "{restored:?}");

    // One digit changed on line 30: refused before anything is written.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = lines[29].find("\\\"value\\\":\\\"").expect("a value on line 30") + 14;
    let digit = lines[29].as_bytes()[at];
    let other = if digit == b'1' { "2" } else { "1" };
    lines[29].replace_range(at..at + 1, other);
    let forged = dir.path().join("forged.jsonl");
    std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
    let empty = dir.path().join("forged-target");
    let out = run_cli([
        "import".as_ref(),
        "--data-dir".as_ref(),
        empty.as_os_str(),
        "--event-log".as_ref(),
        forged.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("line 30"), "{out:?}");
}

/// One byte changed at offsets spread over sled's data file: `verify` never reports another
/// history as ok; it exits 0 with the original head and root, 1 naming a revision, or 2 with
/// sled's "Read corrupted data", and at least one of the offsets is caught.
#[tokio::test]
async fn a_byte_changed_in_sleds_files_is_never_a_silent_change() {
    let dir = tempfile::tempdir().unwrap();
    let source = generated_store(dir.path(), 200, 50).await;
    let original = verify(&source).await;
    let expected = verified(&original).unwrap_or_else(|| panic!("{original:?}"));
    // The hash of every event, to recognise a shorter log as a prefix of this one.
    let log = dir.path().join("log.jsonl");
    let out = run_cli([
        "export".as_ref(),
        "--data-dir".as_ref(),
        source.as_os_str(),
        "--out".as_ref(),
        log.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "{out:?}");
    let hashes: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["hash"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut shortened = 0;
    let db = source.join("log/db");
    let bytes = std::fs::read(&db).expect("sled's data file log/db");
    let len = bytes.len();
    let mut caught = 0;
    for k in 0..20 {
        let offset = len * k / 20 + 7;
        let copy = dir.path().join(format!("damaged-{k}"));
        copy_dir(&source, &copy);
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0xff;
        std::fs::write(copy.join("log/db"), &damaged).unwrap();
        // The same damage with the snapshot gone, so that sled rebuilds it from its log.
        let no_snapshot = dir.path().join(format!("damaged-{k}-no-snapshot"));
        copy_dir(&copy, &no_snapshot);
        for entry in std::fs::read_dir(no_snapshot.join("log")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with("snap.") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        for copy in [copy, no_snapshot] {
            let out = verify(&copy).await;
            match out.code() {
                Some(0) => {
                    let got = verified(&out).unwrap_or_else(|| panic!("offset {offset}: {out:?}"));
                    let count: usize = out.stdout["ok: ".len()..].split(' ').next().unwrap().parse().unwrap();
                    if count == hashes.len() {
                        assert_eq!(got, expected, "offset {offset}: {out:?}");
                    } else {
                        // sled recovered to an earlier intact point of its log, as after a crash:
                        // a prefix of the same history, never another one.
                        if let Some(i) = count.checked_sub(1) {
                            assert_eq!(got.0, hashes[i], "offset {offset}: not a prefix: {out:?}");
                        }
                        shortened += 1;
                    }
                }
                Some(1) => {
                    assert!(
                        out.stdout.contains("DAMAGED: first bad revision"),
                        "offset {offset}: {out:?}"
                    );
                    caught += 1;
                }
                Some(2) => {
                    assert!(
                        out.stderr.contains("opening the store")
                            && (out.stderr.contains("corrupt") || out.stderr.contains("damaged below the event layer")),
                        "offset {offset}: {out:?}"
                    );
                    caught += 1;
                }
                _ => panic!("offset {offset}: unexpected exit: {out:?}"),
            }
        }
    }
    assert!(caught > 0, "no changed byte was caught at any offset");
    eprintln!("{caught} of 40 damaged copies caught, {shortened} recovered to a shorter prefix");
}
