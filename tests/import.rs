//! `import_files`: release files recorded without holding them in memory, with the
//! guarantees of `load` (everything checked before anything is recorded).

mod common;

use std::path::PathBuf;

use common::*;
use tradeledger::domain::ReleaseDraft;
use tradeledger::import::{import_files, load, Batch};

fn fixture_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    [
        "00_dataset.json",
        "01_bok_2025_s1_preliminary.json",
        "02_synthetic_2025_s1_revision.json",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect()
}

fn release(title: &str, value: &str) -> ReleaseDraft {
    ReleaseDraft {
        title: title.into(),
        ..draft(vec![obs("_T._T._T", "2025-S2", Some("BAL"), value)])
    }
}

/// Writes a JSON array of `items` to `name` in `dir`.
fn write_json<T: serde::Serialize>(dir: &std::path::Path, name: &str, items: &[T]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(items).unwrap()).unwrap();
    path
}

/// The fixture files imported one item at a time give the same ledger as `load` of the whole
/// batch, and a CSV file and a release placed before its dataset's definition are recorded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_recorded_like_a_batch() {
    let files = fixture_files();
    let (_d1, _s1, streamed) = fresh().await;
    let report = import_files(&streamed, &files, "test").await.expect("fixtures import");
    assert_eq!(
        (report.datasets_defined, report.releases_recorded, report.duplicates),
        (1, 2, 0)
    );
    assert_eq!(report.head_revision, 3);

    let (_d2, _s2, batched) = fresh().await;
    let mut batch = Batch::default();
    for f in &files {
        batch.extend(Batch::read_file(f).unwrap());
    }
    let expected = load(&batched, batch, "test").await.expect("fixtures load");
    assert_eq!(report, expected);
    assert_eq!(
        figure(&streamed, "_T._T._T", "2025-S1", None),
        figure(&batched, "_T._T._T", "2025-S1", None)
    );
    assert_eq!(streamed.read().releases().len(), batched.read().releases().len());

    // Importing again records nothing new.
    let again = import_files(&streamed, &files, "test").await.expect("re-import");
    assert_eq!((again.releases_recorded, again.duplicates), (0, 3));

    // A release before the definition of its dataset, in a fresh ledger; and a CSV file.
    let dir = tempfile::TempDir::new().unwrap();
    let dataset = serde_json::to_value(dataset()).unwrap();
    let early = serde_json::to_value(release("early", "7")).unwrap();
    let json = write_json(dir.path(), "a.json", &[early, dataset]);
    let csv = dir.path().join("b.csv");
    std::fs::write(
        &csv,
        format!(
            "dataset,release_id,status,title,published_at,source,key,period,measure,value\n\
             {DATASET},6b1f0c2e-4d3a-4e51-9a57-2025a00000c1,REVISED,from csv,2026-02-01T00:00:00Z,,_T._T._T,2025-S2,BAL,8\n"
        ),
    )
    .unwrap();
    let (_d3, _s3, fresh_ledger) = fresh().await;
    let report = import_files(&fresh_ledger, &[json, csv], "test")
        .await
        .expect("imports");
    assert_eq!((report.datasets_defined, report.releases_recorded), (1, 2));
    assert_eq!(figure(&fresh_ledger, "_T._T._T", "2025-S2", None), Some(dec("8")));
}

/// One bad release anywhere, or a syntax error late in a file, and nothing is recorded, not
/// even the datasets; the error names the release by its position over all files, or the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_item_records_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let dataset = serde_json::to_value(dataset()).unwrap();
    let good = |t: &str| serde_json::to_value(release(t, "1")).unwrap();
    let mut bad = serde_json::to_value(release("bad one", "1")).unwrap();
    bad["observations"][0]["key"] = "NOPE._T._T".into();
    let first = write_json(dir.path(), "1.json", &[dataset.clone(), good("r0"), good("r1")]);
    let second = write_json(dir.path(), "2.json", &[good("r2"), bad, good("r4")]);

    let (_d, _s, ledger) = fresh().await;
    let errors = import_files(&ledger, &[first.clone(), second], "test")
        .await
        .unwrap_err()
        .errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("release 3 (bad one)"), "{errors:?}");
    assert!(errors[0].contains("NOPE"), "{errors:?}");
    assert_eq!(ledger.read().head().revision, 0, "nothing recorded");
    assert!(ledger.read().dataset(DATASET).is_none());

    // Truncated JSON after valid items.
    let text = std::fs::read_to_string(&first).unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, &text[..text.len() - 10]).unwrap();
    let errors = import_files(&ledger, &[broken], "test").await.unwrap_err().errors;
    assert!(
        errors[0].contains("broken.json") && errors[0].contains("line"),
        "{errors:?}"
    );
    assert_eq!(ledger.read().head().revision, 0, "nothing recorded");

    // An item that is neither a dataset nor a release.
    let odd = write_json(dir.path(), "odd.json", &[dataset, serde_json::json!({"title": "?"})]);
    let errors = import_files(&ledger, &[odd], "test").await.unwrap_err().errors;
    assert!(
        errors[0].contains("item 1") && errors[0].contains("neither"),
        "{errors:?}"
    );
    assert_eq!(ledger.read().head().revision, 0, "nothing recorded");
}

/// A dataset that conflicts with the recorded one, or is defined twice differently, is found
/// in the check: nothing is recorded, not even the other, valid datasets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_datasets_record_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let (_d, _s, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let head = ledger.read().head().revision;

    let mut other = dataset();
    other.id = "OTHER".into();
    let mut changed = dataset();
    changed.name = "another name".into();
    let file = write_json(dir.path(), "c.json", &[&other, &changed]);
    let failure = import_files(&ledger, &[file], "test").await.unwrap_err();
    assert_eq!(failure.errors.len(), 1, "{:?}", failure.errors);
    assert!(
        failure.errors[0].contains(DATASET) && failure.errors[0].contains("different"),
        "{:?}",
        failure.errors
    );
    assert_eq!(
        failure.recorded.datasets_defined + failure.recorded.releases_recorded,
        0
    );
    assert_eq!(ledger.read().head().revision, head);
    assert!(ledger.read().dataset("OTHER").is_none());

    let mut twice = other.clone();
    twice.name = "second".into();
    let file = write_json(dir.path(), "d.json", &[&other, &twice]);
    let errors = import_files(&ledger, &[file], "test").await.unwrap_err().errors;
    assert!(errors[0].contains("OTHER") && errors[0].contains("twice"), "{errors:?}");
    assert_eq!(ledger.read().head().revision, head);
}

/// Many releases (more than one chunk handed to the ledger at a time) from a pipe, which can
/// be read only once: the checked bytes are the recorded bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_is_read_once_and_everything_recorded() {
    let dir = tempfile::TempDir::new().unwrap();
    let fifo = dir.path().join("releases.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let mut items = vec![serde_json::to_value(dataset()).unwrap()];
    for i in 0..600 {
        let period = format!("{}-S{}", 1900 + i / 2, i % 2 + 1);
        let draft = ReleaseDraft {
            title: format!("r{i}"),
            ..draft(vec![obs("_T._T._T", &period, Some("BAL"), &i.to_string())])
        };
        items.push(serde_json::to_value(draft).unwrap());
    }
    let body = serde_json::to_vec(&items).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, body).expect("write to the pipe"))
    };
    let (_d, _s, ledger) = fresh().await;
    let report = import_files(&ledger, std::slice::from_ref(&fifo), "test")
        .await
        .expect("imports");
    writer.join().unwrap();
    assert_eq!((report.datasets_defined, report.releases_recorded), (1, 600));
    assert_eq!(ledger.read().head().revision, 601);
    assert_eq!(figure(&ledger, "_T._T._T", "2199-S2", None), Some(dec("599")));
}
