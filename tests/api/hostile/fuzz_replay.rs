use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tradeledger::domain::{Dataset, Period};
use tradeledger::import::{parse_csv, parse_json};
use tradeledger::projection::KeyPattern;
use tradeledger::store::{decode, encode, Hash};

// The fuzz crate's shared harness (fixture dataset, checks on what the importers
// accept); its targets' bodies live in `fuzz_target!` closures of `#![no_main]` binaries
// that need libFuzzer, so the per-target checks below stay here.
use crate::fuzz_harness as harness;

fn fixture_dataset() -> Dataset {
    harness::dataset().clone()
}

/// The files kept for `target`, from both the corpus and the regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("readable");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

pub fn period(input: &[u8]) {
    let Ok(s) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(p) = Period::parse(s) {
        let canonical = p.to_string();
        assert_eq!(Period::parse(&canonical).as_ref(), Ok(&p), "{s:?} -> {canonical:?}");
    }
}

pub fn series_key(ds: &Dataset, input: &[u8]) {
    let Ok(s) = std::str::from_utf8(input) else {
        return;
    };
    let pattern = KeyPattern::parse(ds, s);
    if let Ok(k) = ds.parse_key(s) {
        assert_eq!(ds.format_key(&k), s);
        assert!(pattern.expect("a key is a pattern").matches(&k));
    }
}

pub fn import_json(input: &[u8]) {
    if let Ok(batch) = parse_json("fuzz.json", input) {
        for d in &batch.datasets {
            if d.validate().is_ok() {
                let total = d.total_key();
                assert_eq!(d.parse_key(&d.format_key(&total)).as_ref(), Ok(&total));
            }
        }
        harness::validate_all(batch);
    }
}

pub fn import_csv(input: &[u8]) {
    if let Ok(batch) = parse_csv("fuzz.csv", input) {
        harness::validate_all(batch);
    }
}

/// Modes 0 and 1 of the `event_decode` target (mode 2 needs the target's canonical
/// events): the low two bits of the first byte are the mode, the high six the revision
/// (0 means 1, n means n - 1).
pub fn event_decode(input: &[u8]) {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let revision = match first >> 2 {
        0 => 1,
        n => u64::from(n) - 1,
    };
    match first & 3 {
        0 => {
            let _ = decode(revision, rest, &Hash::GENESIS);
        }
        1 => {
            let hash: [u8; 32] = Sha256::digest(rest).into();
            let mut value = hash.to_vec();
            value.extend_from_slice(rest);
            if let Ok(event) = decode(revision, &value, &Hash::GENESIS) {
                let (_, bytes) = encode(&event.envelope);
                let again = decode(revision, &bytes, &Hash::GENESIS).expect("a re-encoded record decodes");
                assert_eq!(again.envelope, event.envelope);
            }
        }
        _ => {}
    }
}

#[test]
fn fuzz_corpora_and_regressions_replay_cleanly() {
    let ds = fixture_dataset();
    let mut counts = Vec::new();
    for target in ["period", "series_key", "import_json", "import_csv", "event_decode"] {
        let files = inputs(target);
        for (path, bytes) in &files {
            let run = std::panic::catch_unwind(|| match target {
                "period" => period(bytes),
                "series_key" => series_key(&ds, bytes),
                "import_json" => import_json(bytes),
                "import_csv" => import_csv(bytes),
                _ => event_decode(bytes),
            });
            assert!(run.is_ok(), "{target}: {} fails", path.display());
        }
        counts.push(format!("{target}: {}", files.len()));
    }
    println!("replayed {}", counts.join(", "));
    assert!(
        counts.iter().all(|c| !c.ends_with(": 0")),
        "a corpus is missing: {counts:?}"
    );
}

/// `decode` at revision 0 with a mismatched prev_hash reports damage instead of panicking
/// on `revision - 1` (found while writing the fuzz target; kept in `fuzz/regressions/`).
#[test]
fn decode_at_revision_zero_reports_damage_instead_of_panicking() {
    let input =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/event_decode/revision_zero"))
            .expect("regression input");
    // Mode 1 at revision 0: the body of a record whose hash is recomputed.
    assert_eq!(input[0], (1 << 2) | 1);
    let body = &input[1..];
    let hash: [u8; 32] = Sha256::digest(body).into();
    let mut value = hash.to_vec();
    value.extend_from_slice(body);
    let result = std::panic::catch_unwind(|| decode(0, &value, &Hash::GENESIS).map(|_| ()));
    assert!(
        matches!(result, Ok(Err(_))),
        "decode(0, ..) must report damage, got {result:?}"
    );
}
