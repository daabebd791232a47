//! `import_files`: release files recorded without holding them in memory, with the
//! guarantees of `load` (everything checked before anything is recorded).

use crate::common;

use std::path::PathBuf;

use common::*;
use tradeledger::domain::ReleaseDraft;
use tradeledger::import::{import_files, load, Batch};

mod json_schema;

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
/// even the datasets; the error names the file and the item in it, or the line.
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
    // The second item of the second file, not the fourth release over both.
    let expected = format!("{}: item 1: release \"bad one\": ", dir.path().join("2.json").display());
    assert!(errors[0].starts_with(&expected), "{errors:?}");
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

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const CSV_HEADER: &str = "dataset,release_id,status,title,published_at,source,key,period,measure,value\n";

/// A CSV error names the file and the line of the observation at fault, counted in that file,
/// not in the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_errors_name_the_file_and_line() {
    let dir = tempfile::TempDir::new().unwrap();
    let row = |period: &str, value: &str| {
        format!("{DATASET},6b1f0c2e-4d3a-4e51-9a57-2025a00000c2,FINAL,csv release,2026-02-01T00:00:00Z,,_T._T._T,{period},BAL,{value}\n")
    };
    let good = write(dir.path(), "a.csv", &format!("{CSV_HEADER}{}", row("2026-S1", "1")));
    let bad = write(
        dir.path(),
        "b.csv",
        &format!(
            "{CSV_HEADER}{}{}{}",
            row("2027-S1", "1"),
            row("2027-S2", "2"),
            row("2028-S1", "1.5.5")
        ),
    );
    let (_d, _s, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let head = ledger.read().head().revision;
    let errors = import_files(&ledger, &[good, bad.clone()], "test")
        .await
        .unwrap_err()
        .errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let expected = format!(
        "{}: line 4: release \"csv release\": observations[2].value",
        bad.display()
    );
    assert!(errors[0].starts_with(&expected), "{errors:?}");
    assert!(errors[0].contains("1.5.5"), "{errors:?}");
    assert_eq!(ledger.read().head().revision, head, "nothing recorded");
}

/// `--format` decides over the extension; without it an unknown extension, or none (standard
/// input), is refused naming the file, before anything is read or recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_is_asked_for_or_named_by_the_extension() {
    use tradeledger::import::{format_of, import_files_as, Format};
    let dir = tempfile::TempDir::new().unwrap();
    let dataset = serde_json::to_string(&dataset()).unwrap();
    let txt = write(dir.path(), "dataset.txt", &dataset);
    let (_d, _s, ledger) = fresh().await;
    let errors = import_files(&ledger, std::slice::from_ref(&txt), "test")
        .await
        .unwrap_err()
        .errors;
    assert!(
        errors[0].contains("dataset.txt")
            && errors[0].contains("unknown extension `.txt`")
            && errors[0].contains("--format"),
        "{errors:?}"
    );
    assert!(ledger.read().dataset(DATASET).is_none());
    let report = import_files_as(&ledger, &[txt], Some(Format::Json), "test")
        .await
        .expect("read as JSON");
    assert_eq!(report.datasets_defined, 1);

    // CSV in a file named .json: as CSV when asked, else parsed as JSON and refused.
    let csv_named_json = write(
        dir.path(),
        "rows.json",
        &format!("{CSV_HEADER}{DATASET},,FINAL,t,2026-02-01T00:00:00Z,,_T._T._T,2030-S1,BAL,5\n"),
    );
    assert!(import_files(&ledger, std::slice::from_ref(&csv_named_json), "test")
        .await
        .is_err());
    let report = import_files_as(&ledger, &[csv_named_json], Some(Format::Csv), "test")
        .await
        .expect("read as CSV");
    assert_eq!(report.releases_recorded, 1);

    let stdin = std::path::Path::new("-");
    let e = format_of(stdin, None).unwrap_err();
    assert_eq!(e.file, "standard input");
    assert!(e.message.contains("--format"), "{e}");
    assert_eq!(format_of(stdin, Some(Format::Csv)), Ok(Format::Csv));
    assert_eq!(format_of(std::path::Path::new("A.CSV"), None), Ok(Format::Csv));
    assert!(format_of(std::path::Path::new("/dev/stdin"), None).is_err());
}

/// The summary counts releases, with their observations in parentheses, for what was recorded
/// and for what was already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_says_what_was_recorded_and_what_was_there() {
    let files = fixture_files();
    let (_d, _s, ledger) = fresh().await;
    let first = import_files(&ledger, &files, "test").await.unwrap();
    assert_eq!(
        first.summary(),
        "recorded 1 dataset and 2 releases (24 observations); already there: 0 datasets and 0 releases (0 observations)"
    );
    let again = import_files(&ledger, &files, "test").await.unwrap();
    assert_eq!(
        again.summary(),
        "recorded 0 datasets and 0 releases (0 observations); already there: 1 dataset and 2 releases (24 observations)"
    );
}

/// The command line: `-` reads standard input with `--format csv` (or the env variable), is
/// refused without a format, and the summary and errors reach the user.
#[test]
fn the_command_reads_standard_input() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_tradeledger");
    let run = |args: &[&str], env: Option<(&str, &str)>, input: &str| {
        let mut cmd = Command::new(bin);
        cmd.arg("import").arg("--data-dir").arg(&data).args(args);
        cmd.env_remove("TRADELEDGER_IMPORT_FORMAT");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let fixtures: Vec<String> = fixture_files().iter().map(|p| p.display().to_string()).collect();
    let args: Vec<&str> = fixtures.iter().map(String::as_str).collect();
    let (ok, out, err) = run(&args, None, "");
    assert!(ok, "{err}");
    assert!(
        out.starts_with("recorded 1 dataset and 2 releases (24 observations)"),
        "{out}"
    );

    let csv = format!("{CSV_HEADER}{DATASET},6b1f0c2e-4d3a-4e51-9a57-2025a00000c3,FINAL,from stdin,2026-02-01T00:00:00Z,,_T._T._T,2031-S1,BAL,7\n");
    let (ok, _, err) = run(&["-"], None, &csv);
    assert!(!ok);
    assert!(err.contains("standard input") && err.contains("--format"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let (ok, out, err) = run(&["--format", "csv", "-"], None, &csv);
    assert!(ok, "{err}");
    assert!(out.starts_with("recorded 0 datasets and 1 release (1 observation); already there: 0 datasets and 0 releases (0 observations); refused: none"), "{out}");
    let (ok, out, err) = run(&["-"], Some(("TRADELEDGER_IMPORT_FORMAT", "csv")), &csv);
    assert!(ok, "{err}");
    assert!(
        out.contains("already there: 0 datasets and 1 release (1 observation)"),
        "{out}"
    );

    let bad = csv.replace(",7\n", ",1.5.5\n");
    let (ok, _, err) = run(&["--format", "csv", "-"], None, &bad);
    assert!(!ok);
    assert!(
        err.contains("standard input: line 2: release \"from stdin\": observations[0].value"),
        "{err}"
    );
    assert!(err.contains("refused: 1 error(s) above; nothing was recorded"), "{err}");
}

/// A CSV file is streamed one release at a time, so the rows of a release must be
/// contiguous: a release whose rows resume after another's is refused naming the file, the
/// line and where the release began, and nothing of any file is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_releases_split_across_the_file_are_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let row = |id: &str, period: &str| {
        format!("{DATASET},6b1f0c2e-4d3a-4e51-9a57-2025a00000{id},FINAL,split {id},2026-02-01T00:00:00Z,,_T._T._T,{period},BAL,1\n")
    };
    let good = write(dir.path(), "a.csv", &format!("{CSV_HEADER}{}", row("d1", "2032-S1")));
    let split = write(
        dir.path(),
        "b.csv",
        &format!(
            "{CSV_HEADER}{}{}{}",
            row("d2", "2033-S1"),
            row("d3", "2033-S1"),
            row("d2", "2033-S2")
        ),
    );
    let (_d, _s, ledger) = fresh().await;
    load_fixtures(&ledger).await;
    let head = ledger.read().head().revision;
    let errors = import_files(&ledger, &[good.clone(), split.clone()], "test")
        .await
        .unwrap_err()
        .errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}: line 4: release `6b1f0c2e-4d3a-4e51-9a57-2025a00000d2` began at line 2",
            split.display()
        )),
        "{errors:?}"
    );
    assert_eq!(ledger.read().head().revision, head, "nothing recorded");

    // Contiguous, the same rows are recorded as two releases.
    let fixed = write(
        dir.path(),
        "c.csv",
        &format!(
            "{CSV_HEADER}{}{}{}",
            row("d2", "2033-S1"),
            row("d2", "2033-S2"),
            row("d3", "2033-S1")
        ),
    );
    let report = import_files(&ledger, &[good, fixed], "test").await.expect("imports");
    assert_eq!((report.releases_recorded, report.observations_recorded), (3, 4));
}
