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

mod csv_file;
mod json;
#[cfg(test)]
mod tests;

pub use csv_file::*;
pub use json::*;

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
        // One read of the projection per release.
        let recorded = crate::ledger::definition_of(&self.ledger.read(), &draft.dataset).ok();
        let result = match (recorded, self.datasets.iter().find(|d| d.id == draft.dataset)) {
            (Some((def, frequency)), _) => draft.validate_at(&def, frequency).map(drop).map_err(LedgerError::from),
            (None, Some(d)) => draft.validate(d).map(drop).map_err(LedgerError::from),
            (None, None) if !last => return Some(draft),
            // The ledger's "unknown dataset" error.
            (None, None) => self.ledger.validate(draft).map(drop),
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
        let results = self.ledger.publish_all(releases, self.actor).await;
        // One read of the projection for the chunk, to count its back-fills.
        let backfilled: Vec<bool> = {
            let p = self.ledger.read();
            results
                .iter()
                .map(|r| {
                    r.as_ref()
                        .ok()
                        .and_then(|c| c.release)
                        .and_then(|id| p.release(&id))
                        .is_some_and(|(_, r)| r.backfilled)
                })
                .collect()
        };
        for (((result, backfilled), (title, observations)), origin) in
            results.into_iter().zip(backfilled).zip(about).zip(origins)
        {
            match result {
                Ok(c) if c.duplicate => {
                    self.report.duplicates += 1;
                    self.report.duplicate_releases += 1;
                }
                Ok(_) => {
                    self.report.releases_recorded += 1;
                    self.report.observations_recorded += observations;
                    if backfilled {
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
