//! Release files: JSON (datasets and releases) and CSV (one observation per row).
//!
//! A JSON file holds one object or an array of them. An object with `dimensions` is a
//! dataset definition, one with `observations` a release; a `$comment` member is ignored
//! everywhere, so files can say where their figures come from.
//!
//! A CSV file has the header
//! `dataset,release_id,status,title,published_at,source,key,period,measure,value`; rows with
//! the same `release_id` form one release and must agree on its other columns.
//!
//! The format is the one asked for ([`Format`], `import --format`), or else the file's
//! extension (`.json`, `.csv`); `-` is standard input. Errors name the file and, in it, the
//! item (JSON, numbered from 0 like an array index) or the line (CSV).
//!
//! Input is bounded where it is read, and errors quote it briefly: a CSV row is at most
//! [`MAX_CSV_ROW_BYTES`] and a JSON string (value or member name) at most
//! [`MAX_JSON_STRING_BYTES`], refused naming the file and line before more of it is held; an
//! error quotes at most 200 bytes of a value, then `… (N bytes)` (a CSV line of a gigabyte
//! once made an error message of a gigabyte, and took four of memory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::domain::release::MAX_OBSERVATIONS_PER_RELEASE;
use crate::domain::text::{quote_at_most, QUOTE};
use crate::domain::{Dataset, ObservationDraft, ReleaseDraft, ReleaseStatus};
use sha2::{Digest, Sha256};

use crate::ledger::{Ledger, LedgerError};

/// The contents of release files, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub datasets: Vec<Dataset>,
    pub releases: Vec<ReleaseDraft>,
    /// Where each release came from, for the releases read from files.
    pub origins: Vec<Origin>,
}

/// A file that cannot be read as release data; `at` locates the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {at}: {message}")]
pub struct ImportError {
    pub file: String,
    pub at: String,
    pub message: String,
}

/// Largest file held in memory (a JSON file, or any file read from a pipe), to keep a
/// mistaken path from exhausting memory; a regular CSV file is streamed, whatever its size.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Longest row (record) of a CSV file, in bytes; a longer one is refused naming its file
/// and line, once about this much of it was read (so a line of a gigabyte is never held).
/// A real row is a few hundred bytes: titles and sources are at most 1,000 characters.
pub const MAX_CSV_ROW_BYTES: usize = 1 << 20;

/// Longest string (a value or a member name, `$comment` included) of a JSON release file,
/// in bytes; a longer one is refused naming its file and line before it is copied. Titles,
/// sources, names and labels are at most 1,000 characters (4,000 bytes).
pub const MAX_JSON_STRING_BYTES: usize = 64 * 1024;

/// The format of a release file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

/// The path that means standard input.
pub const STDIN: &str = "-";

/// The format of `path`: `format` if given, else the one its extension names.
pub fn format_of(path: &Path, format: Option<Format>) -> Result<Format, ImportError> {
    if let Some(f) = format {
        return Ok(f);
    }
    let fail = |message: String| ImportError {
        file: display_name(path),
        at: "file".into(),
        message,
    };
    if path.as_os_str() == STDIN {
        return Err(fail(
            "no extension to tell the format by: give --format json or --format csv".into(),
        ));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Ok(Format::Json),
        Some(e) if e.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
        Some(e) => Err(fail(format!(
            "unknown extension `.{e}`: name the file .json or .csv, or give --format json or --format csv"
        ))),
        None => Err(fail(
            "no extension: name the file .json or .csv, or give --format json or --format csv".into(),
        )),
    }
}

pub(crate) fn display_name(path: &Path) -> String {
    if path.as_os_str() == STDIN {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// Where a release came from: its file and, in it, its item (JSON) or the line of each of its
/// observations (CSV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Position in the file's array (0 for a file holding one object).
    Item(usize),
    /// Line of each observation, in order.
    Lines(Vec<usize>),
}

impl Origin {
    /// The error `e` about this release, located: `file: item 3: release "title": ...`, or for
    /// CSV the line of the observation the error is about (else the release's first line).
    fn locate(&self, title: &str, e: &LedgerError) -> String {
        let at = match &self.place {
            Place::Item(i) => format!("item {i}"),
            Place::Lines(lines) => {
                let observation = match e {
                    LedgerError::BadInput { field, .. } => field
                        .strip_prefix("observations[")
                        .and_then(|rest| rest.split(']').next())
                        .and_then(|n| n.parse::<usize>().ok()),
                    _ => None,
                };
                let line = observation
                    .and_then(|n| lines.get(n))
                    .or(lines.first())
                    .copied()
                    .unwrap_or(0);
                format!("line {line}")
            }
        };
        format!("{}: {at}: release \"{}\": {e}", self.file, quote_at_most(title, QUOTE))
    }
}

/// A release error, located by `origin` when known, else by the release's position in the
/// batch.
fn release_error(i: usize, origin: Option<&Origin>, title: &str, e: &LedgerError) -> String {
    match origin {
        Some(o) => o.locate(title, e),
        None => format!("release {i} ({}): {e}", quote_at_most(title, QUOTE)),
    }
}

impl Batch {
    pub fn extend(&mut self, other: Batch) {
        self.datasets.extend(other.datasets);
        self.releases.extend(other.releases);
        self.origins.extend(other.origins);
    }

    /// Reads one file, choosing the format by its extension (`.json` or `.csv`).
    pub fn read_file(path: &Path) -> Result<Batch, ImportError> {
        let format = format_of(path, None)?;
        let (name, bytes, _) = read_bytes(path)?;
        match format {
            Format::Csv => parse_csv(&name, &bytes),
            Format::Json => parse_json(&name, &bytes),
        }
    }

    /// Reads every `.json` and `.csv` file of a directory, in file-name order.
    pub fn read_dir(dir: &Path) -> Result<Batch, ImportError> {
        let fail = |message: String| ImportError {
            file: dir.display().to_string(),
            at: "directory".into(),
            message,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| fail(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("csv"))
            })
            .collect();
        paths.sort();
        let mut batch = Batch::default();
        for p in paths {
            batch.extend(Batch::read_file(&p)?);
        }
        Ok(batch)
    }
}

/// A file's name and contents, and whether it is a regular file (not a pipe); refuses files
/// over [`MAX_FILE_BYTES`].
pub(crate) fn read_bytes(path: &Path) -> Result<(String, Vec<u8>, bool), ImportError> {
    let name = display_name(path);
    let fail = |message: String| ImportError {
        file: name.clone(),
        at: "file".into(),
        message,
    };
    if path.as_os_str() == STDIN {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), MAX_FILE_BYTES + 1),
            &mut bytes,
        )
        .map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(fail(format!("more than the {MAX_FILE_BYTES} bytes accepted")));
        }
        return Ok((name, bytes, false));
    }
    let metadata = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    let len = metadata.len();
    if len > MAX_FILE_BYTES {
        return Err(fail(format!("{len} bytes is more than the {MAX_FILE_BYTES} accepted")));
    }
    // The length of a pipe is not known in advance: stop reading past the limit.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE_BYTES + 1), &mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!("more than the {MAX_FILE_BYTES} bytes accepted")));
    }
    Ok((name, bytes, metadata.is_file()))
}

/// What [`load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub datasets_defined: usize,
    pub releases_recorded: usize,
    /// Releases and datasets already in the ledger with identical content (the sum of
    /// `duplicate_datasets` and `duplicate_releases`).
    pub duplicates: usize,
    pub duplicate_datasets: usize,
    pub duplicate_releases: usize,
    /// Observations of all the releases handled, recorded or already there.
    pub observations: usize,
    /// Observations of the releases recorded now.
    pub observations_recorded: usize,
    /// Releases recorded now that were back-fills: published before their dataset's latest
    /// publication, so placed in publication order among the versions already there.
    pub backfilled: usize,
    pub head_revision: u64,
}

impl LoadReport {
    /// What was recorded and what was already there, in releases with their observations:
    /// `recorded 1 dataset and 2 releases (23 observations); already there: ...`.
    pub fn summary(&self) -> String {
        fn n(count: usize, one: &str, many: &str) -> String {
            format!("{count} {}", if count == 1 { one } else { many })
        }
        format!(
            "recorded {} and {} ({}); already there: {} and {} ({})",
            n(self.datasets_defined, "dataset", "datasets"),
            n(self.releases_recorded, "release", "releases"),
            n(self.observations_recorded, "observation", "observations"),
            n(self.duplicate_datasets, "dataset", "datasets"),
            n(self.duplicate_releases, "release", "releases"),
            n(
                self.observations - self.observations_recorded,
                "observation",
                "observations"
            ),
        ) + &match self.backfilled {
            0 => String::new(),
            b => format!(
                "; {} back-filled (published before their dataset's latest publication, placed by publication time)",
                n(b, "release", "releases")
            ),
        }
    }
}

/// Records a batch: first checks every release (against the batch's datasets and the
/// ledger's), then defines the datasets, then records the releases in order. A batch with a
/// bad release records nothing. Errors name a release by its file and item or line (see
/// [`Origin`]), or by its position in the batch when it was not read from a file.
pub async fn load(ledger: &Ledger, batch: Batch, actor: &str) -> Result<LoadReport, Vec<String>> {
    let mut check = Check::new(ledger);
    batch.datasets.iter().for_each(|d| check.dataset(d.clone()));
    let mut origins = batch.origins.into_iter();
    let releases: Vec<(ReleaseDraft, Option<Origin>)> =
        batch.releases.into_iter().map(|r| (r, origins.next())).collect();
    releases.iter().for_each(|(r, o)| check.release(r.clone(), o.clone()));
    let datasets = check.finish()?;
    let mut record = Record::new(ledger, actor, datasets).await?;
    record.releases(releases).await;
    record.finish()
}

/// The checks [`load`] makes, without recording anything: `Err` with every error found.
pub fn check(ledger: &Ledger, batch: Batch) -> Result<(), Vec<String>> {
    let mut check = Check::new(ledger);
    batch.datasets.into_iter().for_each(|d| check.dataset(d));
    let mut origins = batch.origins.into_iter();
    for r in batch.releases {
        check.release(r, origins.next());
    }
    check.finish().map(drop)
}

/// Reads one file whole as `format`, else as its extension says; `-` is standard input.
pub fn read_file_as(path: &Path, format: Option<Format>) -> Result<Batch, ImportError> {
    let format = format_of(path, format)?;
    let (name, bytes, _) = read_bytes(path)?;
    match format {
        Format::Csv => parse_csv(&name, &bytes),
        Format::Json => parse_json(&name, &bytes),
    }
}

/// Why [`import_files`] stopped, and what it had recorded by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFailure {
    pub errors: Vec<String>,
    /// All zero when the files failed their check: then nothing was recorded.
    pub recorded: LoadReport,
}

/// Records release files (JSON or CSV) as [`load`] records their concatenation, without
/// holding them in memory: each file is read twice, once to check it and once to record it,
/// and parsed one item (JSON) or release (CSV) at a time on a blocking thread while the
/// ledger records the releases before it. A JSON file is held whole while it is read, so
/// memory stays near the size of the largest JSON file; a CSV file is streamed from disk, so
/// memory holds one release plus the chunks in the writer's pipeline, whatever its size.
///
/// The second reading must be what was checked: a regular JSON file is compared with the
/// digest taken the first time, and each release of a regular CSV file with the digest of
/// the same release the first time (a file changed in between stops the import there,
/// before the first release that changed); anything else (a pipe, `/dev/stdin`) is kept in
/// memory from the first reading.
pub async fn import_files(ledger: &Ledger, files: &[PathBuf], actor: &str) -> Result<LoadReport, ImportFailure> {
    import_files_as(ledger, files, None, actor).await
}

/// [`import_files`], reading every file as `format` when given, else by its extension
/// ([`format_of`]); `-` is standard input, which needs a format.
pub async fn import_files_as(
    ledger: &Ledger,
    files: &[PathBuf],
    format: Option<Format>,
    actor: &str,
) -> Result<LoadReport, ImportFailure> {
    let refused = |errors: Vec<String>| ImportFailure {
        errors,
        recorded: LoadReport::default(),
    };
    // Every file's format first: a wrong name is found before reading anything.
    let formats = files
        .iter()
        .map(|p| format_of(p, format))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refused(vec![e.to_string()]))?;
    if files.iter().filter(|p| p.as_os_str() == STDIN).count() > 1 {
        return Err(refused(vec!["standard input (`-`) can be read only once".into()]));
    }
    let mut check = Check::new(ledger);
    let mut checked = Vec::with_capacity(files.len());
    for (path, &format) in files.iter().zip(&formats) {
        if format == Format::Csv && is_regular(path) {
            let name = display_name(path);
            let file = open(path).map_err(|e| refused(vec![e.to_string()]))?;
            let mut digests = Vec::new();
            for_each_csv_release(&name, file, |r, o| {
                digests.push(release_digest(&r));
                check.release(r, Some(o));
                Ok(())
            })
            .map_err(|e| refused(vec![e.to_string()]))?;
            checked.push(Checked::Releases(digests));
            continue;
        }
        let (name, bytes, regular) = read_bytes(path).map_err(|e| refused(vec![e.to_string()]))?;
        match format {
            Format::Csv => {
                for_each_csv_release(&name, &bytes[..], |r, o| {
                    check.release(r, Some(o));
                    Ok(())
                })
                .map_err(|e| refused(vec![e.to_string()]))?;
            }
            Format::Json => {
                for_each_json_item(&name, &bytes, |i, item| {
                    match item {
                        Item::Dataset(d) => check.dataset(d),
                        Item::Release(r) => check.release(r, Some(json_origin(&name, i))),
                    }
                    Ok(())
                })
                .map_err(|e| refused(vec![e.to_string()]))?;
            }
        }
        checked.push(if regular {
            Checked::Digest(Sha256::digest(&bytes).into())
        } else {
            Checked::Kept(bytes)
        });
    }
    let datasets = check.finish().map_err(refused)?;
    let mut record = Record::new(ledger, actor, datasets).await.map_err(refused)?;
    for ((path, checked), format) in files.iter().zip(checked).zip(formats) {
        let name = display_name(path);
        let bytes = match checked {
            Checked::Releases(digests) => {
                record
                    .csv_releases(name, CsvInput::File(path.clone()), Some(digests))
                    .await;
                if !record.errors.is_empty() {
                    break;
                }
                continue;
            }
            Checked::Kept(bytes) => bytes,
            Checked::Digest(digest) => match read_bytes(path) {
                Ok((_, bytes, _)) if <[u8; 32]>::from(Sha256::digest(&bytes)) == digest => bytes,
                Ok(_) => {
                    record
                        .errors
                        .push(format!("{name}: changed since it was checked; not recorded"));
                    break;
                }
                Err(e) => {
                    record.errors.push(e.to_string());
                    break;
                }
            },
        };
        match format {
            Format::Csv => record.csv_releases(name, CsvInput::Bytes(bytes), None).await,
            Format::Json => record.json_releases(name, bytes).await,
        }
        if !record.errors.is_empty() {
            break;
        }
    }
    let recorded = record.report();
    if record.errors.is_empty() {
        Ok(recorded)
    } else {
        Err(ImportFailure {
            errors: record.errors,
            recorded,
        })
    }
}

/// What the first reading of a file leaves for the second.
enum Checked {
    Digest([u8; 32]),
    /// The digest of each release of a CSV file streamed from disk, in order.
    Releases(Vec<[u8; 32]>),
    Kept(Vec<u8>),
}

/// Where [`Record::csv_releases`] reads a CSV file from.
enum CsvInput {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// Releases handed to the ledger at a time by [`import_files`].
const RECORD_CHUNK: usize = 256;
/// Observations handed to the ledger at a time from a CSV file (a chunk ends at the release
/// that reaches it), so that large releases do not fill the pipeline.
const RECORD_CHUNK_OBSERVATIONS: usize = 1 << 17;

/// True for a regular file (which can be read again), false for standard input, a pipe or a
/// device.
pub(crate) fn is_regular(path: &Path) -> bool {
    path.as_os_str() != STDIN && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

pub(crate) fn open(path: &Path) -> Result<std::fs::File, ImportError> {
    std::fs::File::open(path).map_err(|e| ImportError {
        file: display_name(path),
        at: "file".into(),
        message: e.to_string(),
    })
}

/// A digest of a release's contents, to tell whether a second reading gives what was checked.
fn release_digest(draft: &ReleaseDraft) -> [u8; 32] {
    let mut h = Sha256::new();
    serde_json::to_writer(&mut h, draft).expect("a release draft serializes");
    h.finalize().into()
}

pub(crate) fn json_origin(file: &str, item: usize) -> Origin {
    Origin {
        file: file.to_owned(),
        place: Place::Item(item),
    }
}

/// The checks [`load`] makes before recording anything.
struct Check<'a> {
    ledger: &'a Ledger,
    datasets: Vec<Dataset>,
    releases: usize,
    /// Releases of a dataset defined later in the batch, checked once all are known.
    deferred: Vec<(usize, ReleaseDraft, Option<Origin>)>,
    /// By release position.
    errors: Vec<(usize, String)>,
}

impl<'a> Check<'a> {
    fn new(ledger: &'a Ledger) -> Self {
        Check {
            ledger,
            datasets: Vec::new(),
            releases: 0,
            deferred: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn dataset(&mut self, d: Dataset) {
        self.datasets.push(d);
    }

    fn release(&mut self, draft: ReleaseDraft, origin: Option<Origin>) {
        let i = self.releases;
        self.releases += 1;
        if let Some(draft) = self.check(i, draft, origin.as_ref(), false) {
            self.deferred.push((i, draft, origin));
        }
    }

    /// Checks release `i` against its dataset: the ledger's definition (a batch that
    /// redefines it differently fails when its datasets are checked) or else the batch's.
    /// A release of a dataset neither knows yet is handed back, unless `last`: then it gets
    /// the ledger's "unknown dataset" error.
    fn check(&mut self, i: usize, draft: ReleaseDraft, origin: Option<&Origin>, last: bool) -> Option<ReleaseDraft> {
        let title = draft.title.clone();
        let in_ledger = self.ledger.read().dataset(&draft.dataset).is_some();
        let result = match self.datasets.iter().find(|d| d.id == draft.dataset) {
            Some(d) if !in_ledger => draft.validate(d).map(drop).map_err(LedgerError::from),
            None if !in_ledger && !last => return Some(draft),
            _ => self.ledger.validate(draft).map(drop),
        };
        if let Err(e) = result {
            self.errors.push((i, release_error(i, origin, &title, &e)));
        }
        None
    }

    /// The batch's datasets, if they and every release checked out.
    fn finish(mut self) -> Result<Vec<Dataset>, Vec<String>> {
        for (i, draft, origin) in std::mem::take(&mut self.deferred) {
            self.check(i, draft, origin.as_ref(), true);
        }
        let mut errors = Vec::new();
        for (i, d) in self.datasets.iter().enumerate() {
            let recorded = self.ledger.read().dataset(&d.id).map(|v| v.def.clone());
            if let Err(e) = d.validate() {
                errors.push(format!("dataset {}: {e}", quote_at_most(&d.id, QUOTE)));
            } else if recorded.is_some_and(|r| *r != *d) {
                errors.push(format!("dataset {}: already defined with different content", d.id));
            } else if self.datasets[..i].iter().any(|e| e.id == d.id && e != d) {
                errors.push(format!("dataset {}: defined twice with different content", d.id));
            }
        }
        self.errors.sort_by_key(|(i, _)| *i);
        errors.extend(self.errors.into_iter().map(|(_, e)| e));
        if errors.is_empty() {
            Ok(self.datasets)
        } else {
            Err(errors)
        }
    }
}

/// Defines the datasets, then records releases in order, tallying what happened.
struct Record<'a> {
    ledger: &'a Ledger,
    actor: &'a str,
    report: LoadReport,
    next: usize,
    errors: Vec<String>,
}

impl<'a> Record<'a> {
    async fn new(ledger: &'a Ledger, actor: &'a str, datasets: Vec<Dataset>) -> Result<Record<'a>, Vec<String>> {
        let mut report = LoadReport::default();
        for ds in datasets {
            let id = ds.id.clone();
            match ledger.define_dataset(ds, actor).await {
                Ok(c) if c.duplicate => {
                    report.duplicates += 1;
                    report.duplicate_datasets += 1;
                }
                Ok(_) => report.datasets_defined += 1,
                Err(e) => return Err(vec![format!("dataset {id}: {e}")]),
            }
        }
        Ok(Record {
            ledger,
            actor,
            report,
            next: 0,
            errors: Vec::new(),
        })
    }

    /// Records the releases of a JSON file, parsed on a blocking thread meanwhile; stops at
    /// the first error.
    async fn json_releases(&mut self, name: String, bytes: Vec<u8>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(RECORD_CHUNK);
        let parser = tokio::task::spawn_blocking(move || {
            for_each_json_item(&name, &bytes, |i, item| match item {
                Item::Release(r) => tx
                    .blocking_send((r, Some(json_origin(&name, i))))
                    .map_err(|_| ImportError {
                        file: name.clone(),
                        at: "release".into(),
                        message: "the import stopped".into(),
                    }),
                Item::Dataset(_) => Ok(()),
            })
        });
        let mut chunk = Vec::with_capacity(RECORD_CHUNK);
        while rx.recv_many(&mut chunk, RECORD_CHUNK).await > 0 {
            self.releases(std::mem::take(&mut chunk)).await;
            if !self.errors.is_empty() {
                // Hanging up stops the parser at its next release.
                drop(rx);
                let _ = parser.await;
                return;
            }
        }
        self.parsed(parser.await);
    }

    /// Records the releases of a CSV file, parsed on a blocking thread meanwhile, in chunks
    /// of at most [`RECORD_CHUNK`] releases or [`RECORD_CHUNK_OBSERVATIONS`] observations,
    /// one chunk ahead of the ledger; stops at the first error. With `digests`, each release
    /// must be the one checked before (see [`import_files`]).
    async fn csv_releases(&mut self, name: String, input: CsvInput, digests: Option<Vec<[u8; 32]>>) {
        type Chunk = Vec<(ReleaseDraft, Option<Origin>)>;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(1);
        let parser = tokio::task::spawn_blocking(move || {
            let stopped = |name: &str| ImportError {
                file: name.to_owned(),
                at: "release".into(),
                message: "the import stopped".into(),
            };
            let changed = |name: &str, at: String| ImportError {
                file: name.to_owned(),
                at,
                message: "changed since it was checked; not recorded from here".into(),
            };
            let mut chunk: Chunk = Vec::new();
            let mut observations = 0;
            let mut n = 0;
            let each = |draft: ReleaseDraft, origin: Origin| {
                if let Some(digests) = &digests {
                    if digests.get(n) != Some(&release_digest(&draft)) {
                        let at = match &origin.place {
                            Place::Lines(lines) => format!("line {}", lines.first().copied().unwrap_or(0)),
                            Place::Item(i) => format!("item {i}"),
                        };
                        // The releases before it were checked: they are recorded.
                        if !chunk.is_empty() {
                            tx.blocking_send(std::mem::take(&mut chunk))
                                .map_err(|_| stopped(&name))?;
                        }
                        return Err(changed(&name, at));
                    }
                }
                n += 1;
                observations += draft.observations.len();
                chunk.push((draft, Some(origin)));
                if chunk.len() >= RECORD_CHUNK || observations >= RECORD_CHUNK_OBSERVATIONS {
                    observations = 0;
                    tx.blocking_send(std::mem::take(&mut chunk))
                        .map_err(|_| stopped(&name))?;
                }
                Ok(())
            };
            match input {
                CsvInput::File(path) => for_each_csv_release(&name, open(&path)?, each)?,
                CsvInput::Bytes(bytes) => for_each_csv_release(&name, &bytes[..], each)?,
            }
            if digests.as_ref().is_some_and(|d| d.len() != n) {
                return Err(changed(&name, "end of file".into()));
            }
            if !chunk.is_empty() {
                tx.blocking_send(chunk).map_err(|_| stopped(&name))?;
            }
            Ok(())
        });
        while let Some(chunk) = rx.recv().await {
            self.releases(chunk).await;
            if !self.errors.is_empty() {
                // Hanging up stops the parser at its next chunk.
                drop(rx);
                let _ = parser.await;
                return;
            }
        }
        self.parsed(parser.await);
    }

    /// Takes the end of a parser that ran to its end: its own error, if it had one.
    fn parsed(&mut self, joined: Result<Result<(), ImportError>, tokio::task::JoinError>) {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.errors.push(e.to_string()),
            Err(e) => self.errors.push(format!("parsing failed: {e}")),
        }
    }

    /// Records releases in order. An import may back-fill: an agency's archive of older
    /// vintages is recorded with each release in its place by publication time (each marked
    /// `backfilled`, counted in the report).
    async fn releases(&mut self, releases: Vec<(ReleaseDraft, Option<Origin>)>) {
        let (mut releases, origins): (Vec<ReleaseDraft>, Vec<Option<Origin>>) = releases.into_iter().unzip();
        releases.iter_mut().for_each(|r| r.backfill = true);
        let about: Vec<(String, usize)> = releases
            .iter()
            .map(|r| (r.title.clone(), r.observations.len()))
            .collect();
        self.report.observations += about.iter().map(|(_, n)| n).sum::<usize>();
        for ((result, (title, observations)), origin) in self
            .ledger
            .publish_all(releases, self.actor)
            .await
            .into_iter()
            .zip(about)
            .zip(origins)
        {
            match result {
                Ok(c) if c.duplicate => {
                    self.report.duplicates += 1;
                    self.report.duplicate_releases += 1;
                }
                Ok(c) => {
                    self.report.releases_recorded += 1;
                    self.report.observations_recorded += observations;
                    let p = self.ledger.read();
                    if c.release
                        .and_then(|id| p.release(&id))
                        .is_some_and(|(_, r)| r.backfilled)
                    {
                        self.report.backfilled += 1;
                    }
                }
                Err(e) => self.errors.push(release_error(self.next, origin.as_ref(), &title, &e)),
            }
            self.next += 1;
        }
    }

    fn report(&self) -> LoadReport {
        LoadReport {
            head_revision: self.ledger.read().head().revision,
            ..self.report.clone()
        }
    }

    fn finish(self) -> Result<LoadReport, Vec<String>> {
        if self.errors.is_empty() {
            Ok(self.report())
        } else {
            Err(self.errors)
        }
    }
}

fn strip_comments(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("$comment");
            map.values_mut().for_each(strip_comments);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_comments),
        _ => {}
    }
}

/// One item of a release file.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Dataset(Dataset),
    Release(ReleaseDraft),
}

/// Parses a JSON release file.
pub fn parse_json(file: &str, bytes: &[u8]) -> Result<Batch, ImportError> {
    let mut batch = Batch::default();
    for_each_json_item(file, bytes, |i, item| {
        match item {
            Item::Dataset(d) => batch.datasets.push(d),
            Item::Release(r) => {
                batch.releases.push(r);
                batch.origins.push(json_origin(file, i));
            }
        }
        Ok(())
    })?;
    Ok(batch)
}

/// Calls `each` with the position and contents of every item of a JSON release file in order,
/// holding one item at a time
/// in memory rather than the whole document (whose tree takes some 15 times the file's size).
/// Stops at the first error, from the file or from `each`.
pub fn for_each_json_item(
    file: &str,
    bytes: &[u8],
    each: impl FnMut(usize, Item) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    use serde::de::Deserializer as _;
    let mut visitor = ItemVisitor {
        file,
        each,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = (&mut de).deserialize_any(&mut visitor).and_then(|()| de.end());
    if let Some(e) = visitor.failed {
        return Err(e);
    }
    parsed.map_err(|e| ImportError {
        file: file.to_owned(),
        at: format!("line {}", e.line()),
        message: brief(&e.to_string()),
    })
}

struct ItemVisitor<'f, F> {
    file: &'f str,
    each: F,
    /// The error `each` (or an item's conversion) returned, which stopped the parse.
    failed: Option<ImportError>,
}

impl<F: FnMut(usize, Item) -> Result<(), ImportError>> ItemVisitor<'_, F> {
    fn take<E: serde::de::Error>(&mut self, i: usize, value: Value) -> Result<(), E> {
        let result = item_from_value(self.file, format!("item {i}"), value).and_then(|item| (self.each)(i, item));
        result.map_err(|e| {
            self.failed = Some(e);
            E::custom("stopped")
        })
    }
}

impl<'de, F: FnMut(usize, Item) -> Result<(), ImportError>> serde::de::Visitor<'de> for &mut ItemVisitor<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object or an array of objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(value) = seq.next_element_seed(BoundedValue)? {
            self.take(i, value)?;
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        use serde::de::DeserializeSeed as _;
        let value = BoundedValue.deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.take(0, value)
    }

    /// Not serde's default, which quotes the whole string.
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        Err(E::custom(format_args!(
            "expected an object or an array of objects, not a string of {} bytes",
            v.len()
        )))
    }
}

/// Deserializes a JSON value as `serde_json::Value` does, but refuses a string or a member
/// name longer than [`MAX_JSON_STRING_BYTES`] before copying it.
struct BoundedValue;

fn too_long<E: serde::de::Error>(what: &str, len: usize) -> E {
    E::custom(format_args!(
        "a JSON {what} of {len} bytes is longer than the limit of {MAX_JSON_STRING_BYTES} bytes"
    ))
}

impl<'de> serde::de::DeserializeSeed<'de> for BoundedValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedValue {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("string", v.len()));
        }
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("string", v.len()));
        }
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(BoundedValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(BoundedKey)? {
            let value = map.next_value_seed(BoundedValue)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// A member name, refused beyond [`MAX_JSON_STRING_BYTES`] as strings are.
struct BoundedKey;

impl<'de> serde::de::DeserializeSeed<'de> for BoundedKey {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for BoundedKey {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("member name", v.len()));
        }
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("member name", v.len()));
        }
        Ok(v)
    }
}

fn item_from_value(file: &str, at: String, mut item: Value) -> Result<Item, ImportError> {
    let fail = |at: String, message: String| ImportError {
        file: file.to_owned(),
        at,
        message,
    };
    strip_comments(&mut item);
    let Value::Object(map) = &item else {
        return Err(fail(at, "expected an object".into()));
    };
    if map.contains_key("dimensions") {
        serde_json::from_value(item)
            .map(Item::Dataset)
            .map_err(|e| fail(at, format!("dataset: {}", brief(&e.to_string()))))
    } else if map.contains_key("observations") {
        serde_json::from_value(item)
            .map(Item::Release)
            .map_err(|e| fail(at, format!("release: {}", brief(&e.to_string()))))
    } else {
        Err(fail(
            at,
            "neither a dataset (no `dimensions`) nor a release (no `observations`)".into(),
        ))
    }
}

const CSV_COLUMNS: [&str; 10] = [
    "dataset",
    "release_id",
    "status",
    "title",
    "published_at",
    "source",
    "key",
    "period",
    "measure",
    "value",
];

/// Writes releases as a CSV release file, header first: what [`for_each_csv_release`] reads.
pub struct CsvWriter<W: std::io::Write> {
    out: csv::Writer<W>,
}

impl<W: std::io::Write> CsvWriter<W> {
    pub fn new(out: W) -> csv::Result<Self> {
        let mut out = csv::Writer::from_writer(out);
        out.write_record(CSV_COLUMNS)?;
        Ok(CsvWriter { out })
    }

    /// One row per observation.
    pub fn release(&mut self, r: &ReleaseDraft) -> csv::Result<()> {
        let id = r.id.map(|id| id.to_string()).unwrap_or_default();
        let published_at = r.published_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        for o in &r.observations {
            self.out.write_record([
                r.dataset.as_str(),
                &id,
                r.status.as_str(),
                &r.title,
                &published_at,
                r.source.as_deref().unwrap_or(""),
                &o.key,
                &o.period,
                o.measure.as_deref().unwrap_or(""),
                &o.value,
            ])?;
        }
        Ok(())
    }

    /// Flushes what is buffered and gives the output back.
    pub fn finish(self) -> csv::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error().into())
    }
}

/// The input of a CSV reader, failing once more than [`MAX_CSV_ROW_BYTES`] were read since
/// `read` was last set to 0 (after each row). The reader asks for more only when it has used
/// all it read, inside a row: then that row is longer than the limit. (A row up to the limit
/// always passes; one longer is refused within one buffer of the reader, 8 KiB, past it.)
struct RowLimit<R> {
    input: R,
    read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<R: std::io::Read> std::io::Read for RowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.read.get();
        if read > MAX_CSV_ROW_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a row longer than the limit of {MAX_CSV_ROW_BYTES} bytes"),
            ));
        }
        let n = self.input.read(buf)?;
        self.read.set(read + n);
        Ok(n)
    }
}

/// `message` with every quoted run (between `"`, honouring backslash escapes, or between
/// backticks) longer than [`QUOTE`] bytes cut by [`quote_at_most`], and at most four times
/// that in all: for messages of libraries that quote input whole (serde's
/// ``invalid type: string "…"`` or ``unknown variant `…` ``).
fn brief(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open];
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let mut escaped = false;
        let close = body.bytes().position(|b| {
            let closes = b == quote && !escaped;
            escaped = quote == b'"' && b == b'\\' && !escaped;
            closes
        });
        match close {
            Some(end) => {
                out.push_str(&quote_at_most(&body[..end], QUOTE));
                out.push(quote as char);
                rest = &body[end + 1..];
            }
            None => {
                out.push_str(&quote_at_most(body, QUOTE));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if out.len() > 4 * QUOTE {
        return quote_at_most(&out, 4 * QUOTE);
    }
    out
}

/// Parses a CSV release file (see the module docs for its columns).
pub fn parse_csv(file: &str, bytes: &[u8]) -> Result<Batch, ImportError> {
    let mut batch = Batch::default();
    for_each_csv_release(file, bytes, |draft, origin| {
        batch.releases.push(draft);
        batch.origins.push(origin);
        Ok(())
    })?;
    Ok(batch)
}

/// Calls `each` with every release of a CSV release file in order, with the line of each of
/// its observations, holding one release at a time in memory: the rows of a release are
/// contiguous, so a release is complete at the first row of the next. A row of a release
/// that came before the one just ended is refused naming both lines, as is a release of
/// more than [`MAX_OBSERVATIONS_PER_RELEASE`] rows. Besides that release, memory holds one
/// entry per release id seen (to find such rows), never the file. Stops at the first error,
/// from the file or from `each`.
pub fn for_each_csv_release(
    file: &str,
    input: impl std::io::Read,
    mut each: impl FnMut(ReleaseDraft, Origin) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let fail = |at: String, message: String| ImportError {
        file: file.to_owned(),
        at,
        message,
    };
    let row_bytes = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = RowLimit {
        input,
        read: row_bytes.clone(),
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| fail("header".into(), brief(&e.to_string())))?
        .clone();
    row_bytes.set(0);
    let mut col = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !CSV_COLUMNS.contains(&h) {
            return Err(fail(
                "header".into(),
                format!(
                    "unknown column `{}`; expected {}",
                    quote_at_most(h, QUOTE),
                    CSV_COLUMNS.join(",")
                ),
            ));
        }
        if col.insert(h.to_owned(), i).is_some() {
            return Err(fail("header".into(), format!("column `{h}` appears twice")));
        }
    }
    for required in ["dataset", "status", "title", "published_at", "key", "period", "value"] {
        if !col.contains_key(required) {
            return Err(fail("header".into(), format!("missing column `{required}`")));
        }
    }
    let index = |c: &str| col.get(c).copied();
    let [dataset_col, rid_col, status_col, title_col, published_col, source_col, key_col, period_col, measure_col, value_col] =
        CSV_COLUMNS.map(index);
    // The release being read: its release_id cell, the line of each observation, its draft.
    let mut current: Option<(String, Vec<usize>, ReleaseDraft)> = None;
    // The first line of every release ended so far, by id (rows without an id form one
    // release too).
    let mut ended: HashMap<Option<uuid::Uuid>, usize> = HashMap::new();
    let mut row = csv::StringRecord::new();
    let mut rows = 0usize;
    loop {
        let more = match reader.read_record(&mut row) {
            Ok(more) => more,
            Err(e) => {
                // An I/O error (a row over the limit) has no position: the row that failed
                // begins where the reader stands.
                let line = e.position().unwrap_or(reader.position()).line();
                return Err(fail(format!("line {line}"), brief(&e.to_string())));
            }
        };
        row_bytes.set(0);
        if !more {
            break;
        }
        rows += 1;
        let line = row.position().map_or(rows + 1, |p| p.line() as usize);
        let at = || format!("line {line}");
        let get = |c: Option<usize>| c.and_then(|i| row.get(i)).unwrap_or("");
        let rid = get(rid_col);
        let same_release = current.as_ref().is_some_and(|(r, _, _)| r == rid);
        if !same_release {
            let id = if rid.is_empty() {
                None
            } else {
                Some(rid.parse::<uuid::Uuid>().map_err(|e| {
                    fail(
                        at(),
                        format!("release_id `{}` is not a UUID: {e}", quote_at_most(rid, QUOTE)),
                    )
                })?)
            };
            if let Some(first) = ended.get(&id) {
                return Err(fail(
                    at(),
                    format!(
                        "release `{rid}` began at line {first} and other rows came after it: the rows of a release must be contiguous"
                    ),
                ));
            }
            if let Some((_, lines, draft)) = current.take() {
                ended.insert(draft.id, lines[0]);
                each(
                    draft,
                    Origin {
                        file: file.to_owned(),
                        place: Place::Lines(lines),
                    },
                )?;
            }
            let status = ReleaseStatus::parse(get(status_col)).ok_or_else(|| {
                fail(
                    at(),
                    format!(
                        "status `{}` is not PRELIMINARY, REVISED or FINAL",
                        quote_at_most(get(status_col), QUOTE)
                    ),
                )
            })?;
            let published_at = get(published_col).parse().map_err(|e| {
                fail(
                    at(),
                    format!(
                        "published_at `{}` is not an RFC 3339 time: {e}",
                        quote_at_most(get(published_col), QUOTE)
                    ),
                )
            })?;
            let draft = ReleaseDraft {
                id,
                dataset: get(dataset_col).to_owned(),
                status,
                title: get(title_col).to_owned(),
                published_at,
                source: Some(get(source_col).to_owned()).filter(|s| !s.is_empty()),
                observations: Vec::new(),
                backfill: false,
                revision_reason: None,
            };
            current = Some((rid.to_owned(), Vec::new(), draft));
        }
        let (_, lines, draft) = current.as_mut().expect("a release is being read");
        if same_release {
            let first = lines[0];
            let status = ReleaseStatus::parse(get(status_col)).ok_or_else(|| {
                fail(
                    at(),
                    format!(
                        "status `{}` is not PRELIMINARY, REVISED or FINAL",
                        quote_at_most(get(status_col), QUOTE)
                    ),
                )
            })?;
            let published_at = get(published_col)
                .parse::<chrono::DateTime<chrono::Utc>>()
                .map_err(|e| {
                    fail(
                        at(),
                        format!(
                            "published_at `{}` is not an RFC 3339 time: {e}",
                            quote_at_most(get(published_col), QUOTE)
                        ),
                    )
                })?;
            for (field, same) in [
                ("dataset", draft.dataset == get(dataset_col)),
                ("status", status == draft.status),
                ("title", draft.title == get(title_col)),
                ("published_at", published_at == draft.published_at),
                ("source", draft.source.as_deref().unwrap_or("") == get(source_col)),
            ] {
                if !same {
                    return Err(fail(
                        at(),
                        format!(
                            "{field} differs from line {first} of the same release `{}`",
                            quote_at_most(rid, QUOTE)
                        ),
                    ));
                }
            }
        }
        if draft.observations.len() == MAX_OBSERVATIONS_PER_RELEASE {
            return Err(fail(
                at(),
                format!(
                    "release `{rid}` (from line {}) has more than {MAX_OBSERVATIONS_PER_RELEASE} observations; split it",
                    lines[0]
                ),
            ));
        }
        lines.push(line);
        draft.observations.push(ObservationDraft {
            key: get(key_col).to_owned(),
            period: get(period_col).to_owned(),
            measure: Some(get(measure_col).to_owned()).filter(|m| !m.is_empty()),
            value: get(value_col).to_owned(),
        });
    }
    if let Some((_, lines, draft)) = current {
        each(
            draft,
            Origin {
                file: file.to_owned(),
                place: Place::Lines(lines),
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "dataset,release_id,status,title,published_at,source,key,period,measure,value
KR,6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001,PRELIMINARY,T,2025-09-03T00:00:00Z,,_T._T._T,2025-S1,BAL,-4530
KR,6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001,PRELIMINARY,T,2025-09-03T00:00:00Z,,IPR._T._T,2025H1,,-2450
KR,6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0002,REVISED,U,2025-12-03T00:00:00Z,src,_T._T._T,2025-S1,BAL,-4610
";

    #[test]
    fn groups_csv_rows_into_releases() {
        let b = parse_csv("x.csv", CSV.as_bytes()).unwrap();
        assert_eq!(b.releases.len(), 2);
        assert_eq!(b.releases[0].observations.len(), 2);
        assert_eq!(b.releases[0].observations[1].measure, None);
        assert_eq!(b.releases[0].observations[1].value, "-2450");
        assert_eq!(b.releases[1].status, ReleaseStatus::Revised);
        assert_eq!(b.releases[1].source.as_deref(), Some("src"));
    }

    #[test]
    fn csv_errors_name_the_line() {
        let bad = CSV.replace("REVISED,U", "REVISED?,U");
        let e = parse_csv("x.csv", bad.as_bytes()).unwrap_err();
        assert_eq!(e.at, "line 4");
        assert!(e.message.contains("REVISED?"));
        let bad = CSV.replacen("PRELIMINARY,T,", "PRELIMINARY,Other title,", 1);
        let e = parse_csv("x.csv", bad.replacen("Other title", "T2", 1).as_bytes()).unwrap_err();
        assert!(e.message.contains("title differs from line 2"), "{e}");
        let e = parse_csv("x.csv", b"dataset,colour\n").unwrap_err();
        assert!(e.message.contains("unknown column `colour`"));
        let e = parse_csv("x.csv", CSV.replace("2025-09-03T00:00:00Z", "yesterday").as_bytes()).unwrap_err();
        assert!(e.message.contains("yesterday"));
    }

    /// Rows of a release that resume after another release are refused, naming the line
    /// where they resume and the one where the release began; so are rows without an id
    /// after another release.
    #[test]
    fn csv_rows_of_a_release_must_be_contiguous() {
        let mut lines: Vec<&str> = CSV.lines().collect();
        let resumed = lines[2];
        lines.remove(2);
        lines.push(resumed);
        let split = lines.join("\n");
        let e = parse_csv("x.csv", split.as_bytes()).unwrap_err();
        assert_eq!(e.at, "line 4", "{e}");
        assert!(
            e.message
                .contains("release `6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001` began at line 2")
                && e.message.contains("contiguous"),
            "{e}"
        );
        // The same id in capitals is the same release.
        let upper = split.replacen(
            "6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001",
            "6F1C1A52-3A39-4C8E-9D43-0D2F2B1A0001",
            1,
        );
        assert!(parse_csv("x.csv", upper.as_bytes())
            .unwrap_err()
            .message
            .contains("contiguous"));
        let no_ids = CSV.replace("6f1c1a52-3a39-4c8e-9d43-0d2f2b1a0001", "").replace(
            "REVISED,U,2025-12-03T00:00:00Z,src",
            "PRELIMINARY,T,2025-09-03T00:00:00Z,",
        );
        assert_eq!(parse_csv("x.csv", no_ids.as_bytes()).unwrap().releases.len(), 2);
        let e = parse_csv(
            "x.csv",
            format!("{no_ids}KR,,PRELIMINARY,T,2025-09-03T00:00:00Z,,_T._T._T,2025-S2,BAL,1\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.at, "line 5", "{e}");
        assert!(e.message.contains("release `` began at line 2"), "{e}");
    }

    /// A reader that gives `text`, then fails.
    struct FailsAfter<'a>(&'a [u8]);

    impl std::io::Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// A release is handed on as soon as the next one begins, before the rest of the file is
    /// read: here the file fails after the first row of the second release.
    #[test]
    fn csv_releases_are_handed_on_before_the_file_is_read() {
        let mut seen = Vec::new();
        let e = for_each_csv_release("x.csv", FailsAfter(CSV.as_bytes()), |r, o| {
            seen.push((r.observations.len(), o.place));
            Ok(())
        })
        .unwrap_err();
        assert!(e.message.contains("disk on fire"), "{e}");
        assert_eq!(seen, vec![(2, Place::Lines(vec![2, 3]))]);
    }

    /// One release may not grow past the ledger's limit: the row beyond it is refused before
    /// it is held (rows are made as they are read, so this test holds one release, not a file).
    #[test]
    fn a_csv_release_is_bounded() {
        struct Rows {
            next: usize,
            pending: Vec<u8>,
        }
        impl std::io::Read for Rows {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                while self.pending.len() < buf.len() && self.next <= MAX_OBSERVATIONS_PER_RELEASE + 5 {
                    if self.next == 0 {
                        self.pending
                            .extend_from_slice(b"dataset,status,title,published_at,key,period,value\n");
                    } else {
                        self.pending
                            .extend_from_slice(b"KR,FINAL,T,2025-09-03T00:00:00Z,_T,2025,1\n");
                    }
                    self.next += 1;
                }
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                Ok(n)
            }
        }
        let rows = Rows {
            next: 0,
            pending: Vec::new(),
        };
        let e = for_each_csv_release("big.csv", rows, |_, _| Ok(())).unwrap_err();
        assert_eq!(e.at, format!("line {}", MAX_OBSERVATIONS_PER_RELEASE + 2), "{e}");
        assert!(e.message.contains("split it"), "{e}");
    }

    /// A CSV release that differs from the one checked (the file changed between the two
    /// readings) is not recorded, nor anything after it; the releases before it are.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_csv_release_changed_since_its_check_is_not_recorded() {
        let (ledger, _) = Ledger::open(
            std::sync::Arc::new(crate::store::MemoryStore::new()),
            crate::ledger::OpenOptions::default(),
        )
        .unwrap();
        ledger.define_dataset(crate::generate::dataset(), "t").await.unwrap();
        let checked: Vec<ReleaseDraft> = crate::generate::Generator::new(3, 10, 1).collect();
        let mut now = checked.clone();
        now[1].observations[4].value = "1234".into();
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        now.iter().for_each(|r| w.release(r).unwrap());
        let digests = checked.iter().map(release_digest).collect();
        let mut record = Record::new(&ledger, "t", Vec::new()).await.unwrap();
        record
            .csv_releases("x.csv".into(), CsvInput::Bytes(w.finish().unwrap()), Some(digests))
            .await;
        assert_eq!(
            record.errors,
            vec!["x.csv: line 12: changed since it was checked; not recorded from here".to_owned()]
        );
        assert_eq!(
            ledger.read().head().revision,
            2,
            "the dataset and the first release only"
        );
    }

    /// What `CsvWriter` writes reads back as the same releases.
    #[test]
    fn csv_written_reads_back_the_same() {
        let releases: Vec<ReleaseDraft> = crate::generate::Generator::new(5, 40, 7).collect();
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        releases.iter().for_each(|r| w.release(r).unwrap());
        let bytes = w.finish().unwrap();
        let batch = parse_csv("g.csv", &bytes).unwrap();
        assert_eq!(batch.releases, releases);
        assert_eq!(batch.origins[1].place, Place::Lines((42..82).collect()));
    }

    /// A CSV row over the limit is refused naming its line, before more of it is read; a row
    /// just under it is read; quoted values are cut at 200 bytes.
    #[test]
    fn csv_rows_are_bounded_and_quoted_briefly() {
        let head = "dataset,status,title,published_at,key,period,value\n";
        let row = |title: &str| format!("KR,FINAL,{title},2025-09-03T00:00:00Z,_T,2025,1\n");
        /// Gives `text` and counts what was read of it.
        struct Counted<'a>(&'a [u8], usize);
        impl std::io::Read for Counted<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let huge = format!("{head}{}{}{}", row("a"), row(&"t".repeat(50 << 20)), row("b"));
        let mut input = Counted(huge.as_bytes(), 0);
        let e = for_each_csv_release("big.csv", &mut input, |_, _| Ok(())).unwrap_err();
        assert_eq!(e.at, "line 3", "{e}");
        assert!(e.message.contains("longer than the limit of 1048576 bytes"), "{e}");
        assert!(input.1 < (MAX_CSV_ROW_BYTES + (64 << 10)), "read {} bytes", input.1);
        let near = format!("{head}{}", row(&"t".repeat(MAX_CSV_ROW_BYTES - 100)));
        let mut seen = 0;
        for_each_csv_release("near.csv", near.as_bytes(), |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 1);
        let bad_status = format!("{head}KR,{},t,2025-09-03T00:00:00Z,_T,2025,1\n", "S".repeat(100_000));
        let e = parse_csv("s.csv", bad_status.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 500, "{e}");
        assert!(e.message.contains("… (100000 bytes)"), "{e}");
    }

    /// A JSON string over the limit is refused naming its line; serde's messages quoting a
    /// value are cut.
    #[test]
    fn json_strings_are_bounded_and_quoted_briefly() {
        let release = |status: &str, title: &str| {
            format!(
                "[\n{{\"dataset\": \"KR\", \"status\": \"{status}\", \"title\": \"{title}\", \
                 \"publishedAt\": \"2025-09-03T00:00:00Z\", \"observations\": []}}]"
            )
        };
        let e = parse_json("f.json", release("FINAL", &"t".repeat(5 << 20)).as_bytes()).unwrap_err();
        assert_eq!(e.at, "line 2", "{e}");
        assert!(
            e.message
                .contains("a JSON string of 5242880 bytes is longer than the limit of 65536 bytes"),
            "{e}"
        );
        let e = parse_json("f.json", release(&"S".repeat(60_000), "t").as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 1000, "{e}");
        assert!(e.message.contains("… (60000 bytes)"), "{e}");
        let key = format!("[{{\"{}\": 1}}]", "k".repeat(70_000));
        let e = parse_json("f.json", key.as_bytes()).unwrap_err();
        assert!(e.message.contains("member name of 70000 bytes"), "{e}");
        let top = format!("\"{}\"", "x".repeat(100_000));
        let e = parse_json("f.json", top.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 1000, "{e}");
    }

    #[test]
    fn brief_cuts_long_quotes_only() {
        assert_eq!(
            brief("unknown field `x`, expected `y`"),
            "unknown field `x`, expected `y`"
        );
        let long = format!(
            "invalid type: string \"{}\\\"{}\", expected a sequence",
            "a".repeat(300),
            "b".repeat(10)
        );
        let short = brief(&long);
        assert!(
            short.starts_with(&format!("invalid type: string \"{}… (", "a".repeat(200))),
            "{short}"
        );
        assert!(short.ends_with("\", expected a sequence"), "{short}");
        assert!(brief(&"z".repeat(5000)).len() < 1000);
    }

    #[test]
    fn json_items_are_told_apart_and_comments_ignored() {
        let json = r#"[
          {"$comment": "synthetic", "id": "KR", "name": "n", "publisher": "p", "unit": "USD",
           "unit_multiplier": 6, "dimensions": [], "measures": ["BAL"]},
          {"dataset": "KR", "status": "PRELIMINARY", "title": "t", "publishedAt": "2025-09-03T00:00:00Z",
           "observations": [{"key": "_T", "period": "2025-S1", "value": "-1.5", "$comment": "x"},
                            {"key": "_T", "period": "2025-S2", "value": 7}]}
        ]"#;
        let b = parse_json("f.json", json.as_bytes()).unwrap();
        assert_eq!(b.datasets.len(), 1);
        assert_eq!(b.releases[0].observations[1].value, "7");
    }

    #[test]
    fn json_refuses_floats_unknown_fields_and_garbage() {
        let release = |obs: &str| {
            format!(
                r#"{{"dataset": "KR", "status": "FINAL", "title": "t", "publishedAt": "2025-09-03T00:00:00Z", "observations": [{obs}]}}"#
            )
        };
        let e = parse_json(
            "f",
            release(r#"{"key": "_T", "period": "2025", "value": 1.5}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.contains("write decimals as strings"), "{e}");
        let e = parse_json(
            "f",
            release(r#"{"key": "_T", "period": "2025", "value": "1", "colour": 1}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        assert!(parse_json("f", b"{").is_err());
        assert!(parse_json("f", b"42").is_err());
        assert!(parse_json("f", b"[{}]").unwrap_err().message.contains("neither"));
    }
}
