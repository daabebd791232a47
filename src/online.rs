//! The clients of the online operations (`/admin/` on a running server, admin token):
//! `tradeledger export --url` and `tradeledger import --url`.
//!
//! - [`export`] appends the server's log to a file in the format `tradeledger export` writes,
//!   checking every hash and link on the way, and resumes where the file ends (or after a
//!   given revision), so an interrupted backup is continued, not restarted. The stream ends
//!   with the server's signed checkpoint; the file's Merkle root must be the one it states,
//!   and it is written beside the file for `import --event-log FILE --checkpoint FILE.checkpoint`.
//!   With the log's verifier key (`--vkey`), the checkpoint's signature must verify too.
//! - [`import`] reads release files (JSON or CSV, as `tradeledger import` does) on this
//!   machine twice, streaming a CSV file from disk a release at a time (never whole): the
//!   first pass sends bounded batches for the server to check (nothing recorded), so that a
//!   file that does not parse, or a release the server refuses, stops it all naming its file
//!   and line; the second sends the same batches to be recorded as `import` records them,
//!   each acknowledged (recorded and flushed) before the next is sent. Every release must
//!   carry its id, so that a second run (after an interruption or a refused batch) finds
//!   what the first recorded and reports it as duplicates.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::domain::{Dataset, ReleaseDraft};
use crate::export::Line;
use crate::import::{Batch, Format, ImportError, Item, Origin, Place, STDIN};
use crate::store::Hash;
use crate::tlog::{leaf_of_record, Checkpoint, MerkleTree};

/// Releases per batch sent by [`import`] (the server takes at most 1000).
const BATCH_RELEASES: usize = 500;
/// Bytes of releases per batch sent by [`import`], well under the server's limit.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// `BASE/path`, `BASE` being the server's address with or without a trailing `/`.
fn endpoint(base: &str, path: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/graphql").unwrap_or(base);
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url must be the server's http:// address, e.g. http://127.0.0.1:8000 (got `{base}`)");
    }
    Ok(format!("{base}{path}"))
}

/// The errors of a refused request, as the server gave them.
async fn refusal(what: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let errors = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| e.as_array().cloned())
        .map(|e| {
            e.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("\n  ")
        })
        .unwrap_or_else(|| text.chars().take(2000).collect());
    anyhow::anyhow!("{what}: the server refused ({status}):\n  {errors}")
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Events the file held before.
    pub kept: u64,
    /// Events appended now.
    pub appended: u64,
    /// The checkpoint's tree size and root, which the whole file matches.
    pub checkpoint: Checkpoint,
    /// Where the checkpoint note was written.
    pub checkpoint_file: PathBuf,
}

/// The events of an exported log file, checked, up to `keep` of them (all when `None`): the
/// Merkle tree and head hash, and the byte length of the lines kept (a last line cut short
/// by an interruption is not kept).
fn read_existing(path: &Path, keep: Option<u64>) -> Result<(MerkleTree, Hash, u64)> {
    let mut tree = MerkleTree::default();
    let mut prev = Hash::GENESIS;
    let mut offset = 0u64;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((tree, prev, 0)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut input = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        if keep.is_some_and(|k| tree.len() >= k) {
            break;
        }
        buf.clear();
        let read =
            std::io::Read::take(&mut input, crate::export::MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf)?;
        if read == 0 || buf.last() != Some(&b'\n') {
            break; // the end, or a line cut short by an interruption: written again
        }
        number += 1;
        let line: Line = serde_json::from_slice(&buf)
            .with_context(|| format!("{}: line {number}: not an exported event", path.display()))?;
        if line.revision != tree.len() + 1 {
            bail!(
                "{}: line {number}: revision {} where {} was expected",
                path.display(),
                line.revision,
                tree.len() + 1
            );
        }
        let record = line
            .check(&prev)
            .map_err(|e| anyhow::anyhow!("{}: line {number}: {e}", path.display()))?;
        prev = record.hash;
        tree.push(leaf_of_record(&record.bytes));
        offset += buf.len() as u64;
    }
    if let Some(k) = keep.filter(|&k| k > tree.len()) {
        bail!(
            "--after {k}: {} holds only {} complete events; resume after {} (or leave --after out)",
            path.display(),
            tree.len(),
            tree.len()
        );
    }
    Ok((tree, prev, offset))
}

/// Appends the log of the server at `url` to `out` after revision `after` (default: where
/// `out` ends), then writes the checkpoint note to `checkpoint_out` (default `OUT.checkpoint`).
pub async fn export(
    url: &str,
    token: &str,
    after: Option<u64>,
    out: &Path,
    checkpoint_out: Option<&Path>,
    vkey: Option<&str>,
) -> Result<Exported> {
    let verifier = vkey
        .map(crate::tlog::note::Verifier::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--vkey: {e}"))?;
    let (mut tree, mut prev, offset) = read_existing(out, after)?;
    let kept = tree.len();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    file.set_len(offset)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut file = std::io::BufWriter::new(file);

    let url = endpoint(url, &format!("/admin/events?after={kept}"))?;
    let mut response = client()?
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        return Err(refusal("export", response).await);
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut note = None;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let cut = |tree: &MerkleTree| {
        anyhow::anyhow!(
            "the stream ended after revision {} without the server's checkpoint; what arrived is kept in {}: run the same command again to resume",
            tree.len(),
            out.display()
        )
    };
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                file.flush()?;
                return Err(cut(&tree).context(e));
            }
        };
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + end + 1];
            start += end + 1;
            if note.is_some() {
                bail!("the server sent more after its checkpoint");
            }
            let value: Value = serde_json::from_slice(line).context("the server sent a line that is not JSON")?;
            if let Some(c) = value.get("checkpoint") {
                note = Some(c.as_str().context("the checkpoint is not a string")?.to_owned());
                continue;
            }
            let event: Line = serde_json::from_value(value).context("the server sent a line that is not an event")?;
            if event.revision != tree.len() + 1 {
                bail!(
                    "the server sent revision {} where {} was expected",
                    event.revision,
                    tree.len() + 1
                );
            }
            let record = event
                .check(&prev)
                .map_err(|e| anyhow::anyhow!("the server sent a bad event: {e}"))?;
            prev = record.hash;
            tree.push(leaf_of_record(&record.bytes));
            file.write_all(line)?;
        }
        pending.drain(..start);
        if pending.len() > crate::export::MAX_LINE_BYTES {
            bail!(
                "the server sent a line longer than {} bytes",
                crate::export::MAX_LINE_BYTES
            );
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "export: {} events so far ({:.0} events/s)",
                tree.len(),
                (tree.len() - kept) as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    file.flush()?;
    file.get_ref().sync_all()?;
    let note = note.ok_or_else(|| cut(&tree))?;
    let checkpoint = match &verifier {
        Some(v) => v.open_checkpoint(&note).map_err(|e| {
            anyhow::anyhow!(
                "the server's checkpoint does not verify with --vkey: {e}; the events are kept in {} but nothing \
                 proves they are the log of the key's owner (no checkpoint written)",
                out.display()
            )
        })?,
        None => {
            let body = note.split_once("\n\n").map_or(note.as_str(), |(b, _)| b);
            Checkpoint::parse(&format!("{}\n", body.trim_end_matches('\n')))
                .map_err(|e| anyhow::anyhow!("the server's checkpoint: {e}"))?
        }
    };
    let root = tree.root(tree.len()).expect("its own size");
    if (checkpoint.size, checkpoint.root) != (tree.len(), root) {
        bail!(
            "{} (size {}, root {}) is not the log the server's checkpoint states (size {}, root {})",
            out.display(),
            tree.len(),
            hex::encode(root),
            checkpoint.size,
            hex::encode(checkpoint.root)
        );
    }
    let checkpoint_file = checkpoint_out.map(Path::to_path_buf).unwrap_or_else(|| {
        let mut name = out.as_os_str().to_owned();
        name.push(".checkpoint");
        PathBuf::from(name)
    });
    std::fs::write(&checkpoint_file, &note).with_context(|| format!("writing {}", checkpoint_file.display()))?;
    Ok(Exported {
        kept,
        appended: tree.len() - kept,
        checkpoint,
        checkpoint_file,
    })
}

/// What [`import`] did, summed over its batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub datasets_defined: u64,
    pub releases_recorded: u64,
    pub duplicates: u64,
    pub observations: u64,
    pub head_revision: u64,
}

fn origin_json(o: &Origin) -> Value {
    match &o.place {
        Place::Item(i) => serde_json::json!({ "file": o.file, "item": i }),
        Place::Lines(lines) => serde_json::json!({ "file": o.file, "lines": lines }),
    }
}

fn where_(o: &Origin) -> String {
    match &o.place {
        Place::Item(i) => format!("{}: item {i}", o.file),
        Place::Lines(lines) => format!("{}: line {}", o.file, lines.first().copied().unwrap_or(0)),
    }
}

/// A file to send: read from disk on each pass, or held (standard input, a pipe), which can
/// be read only once.
enum Source {
    File(PathBuf),
    Held(Vec<u8>),
    /// Releases read already, with where each came from.
    Read(Batch),
}

/// What the reading of a file hands to the sender, in file order.
enum Piece {
    Dataset(Dataset),
    Release {
        /// The batch item, `{"origin": ..., "release": ...}`, serialized.
        item: Vec<u8>,
        /// Its file and line (CSV) or item (JSON).
        at: String,
        title: String,
        has_id: bool,
    },
}

/// Reads `source` as `format` on this (blocking) thread, handing each dataset and release on
/// as it is read: a CSV file from disk is streamed, one release at a time.
fn read_pieces(name: &str, source: &Source, format: Format, tx: &mpsc::Sender<Piece>) -> Result<(), ImportError> {
    let stopped = || ImportError {
        file: name.to_owned(),
        at: "file".into(),
        message: "the import stopped".into(),
    };
    let release = |r: ReleaseDraft, o: Origin| {
        let item = serde_json::to_vec(&serde_json::json!({ "origin": origin_json(&o), "release": &r }))
            .expect("a release serializes");
        tx.blocking_send(Piece::Release {
            item,
            at: where_(&o),
            title: r.title.clone(),
            has_id: r.id.is_some(),
        })
        .map_err(|_| stopped())
    };
    let held;
    let bytes: &[u8] = match (source, format) {
        (Source::Read(batch), _) => {
            for d in &batch.datasets {
                tx.blocking_send(Piece::Dataset(d.clone())).map_err(|_| stopped())?;
            }
            for (r, o) in batch.releases.iter().zip(&batch.origins) {
                release(r.clone(), o.clone())?;
            }
            return Ok(());
        }
        (Source::File(path), Format::Csv) => {
            return crate::import::for_each_csv_release(name, crate::import::open(path)?, release)
        }
        (Source::File(path), Format::Json) => {
            held = crate::import::read_bytes(path)?.1;
            &held
        }
        (Source::Held(bytes), _) => bytes,
    };
    match format {
        Format::Csv => crate::import::for_each_csv_release(name, bytes, release),
        Format::Json => crate::import::for_each_json_item(name, bytes, |i, item| match item {
            Item::Dataset(d) => tx.blocking_send(Piece::Dataset(d)).map_err(|_| stopped()),
            Item::Release(r) => release(r, crate::import::json_origin(name, i)),
        }),
    }
}

/// The batch body of `datasets` and the serialized `items` (comma-separated).
fn body(datasets: &[Dataset], items: &[u8]) -> Result<Vec<u8>> {
    let mut body = b"{\"datasets\":".to_vec();
    serde_json::to_writer(&mut body, datasets)?;
    body.extend_from_slice(b",\"releases\":[");
    body.extend_from_slice(items);
    body.extend_from_slice(b"]}");
    Ok(body)
}

/// One pass over the files: checking (`/admin/releases?check=true`, nothing recorded) or
/// recording, a bounded batch at a time.
struct Pass<'a> {
    http: reqwest::Client,
    url: String,
    token: &'a str,
    check: bool,
    /// Every dataset read so far (checks), or those not sent yet (recording).
    datasets: Vec<Dataset>,
    /// Their size in a body.
    datasets_bytes: usize,
    items: Vec<u8>,
    count: usize,
    /// Where the releases of the batch being filled start and end.
    first: Option<String>,
    last: String,
    /// Releases read, and sent in batches the server answered.
    read: usize,
    sent: usize,
    /// Releases the check pass read (recording).
    total: usize,
    /// Releases without an id (checks).
    missing: Vec<String>,
    done: Imported,
    started: Instant,
}

impl Pass<'_> {
    async fn release(&mut self, item: Vec<u8>, at: String, title: &str) -> Result<()> {
        let datasets_bytes = self.datasets_bytes;
        if item.len() + datasets_bytes + 64 > BATCH_BYTES {
            bail!(
                "{at}: release \"{title}\" is {} bytes, more than a batch takes ({BATCH_BYTES})",
                item.len()
            );
        }
        if self.count == BATCH_RELEASES || self.items.len() + item.len() + datasets_bytes + 64 > BATCH_BYTES {
            self.send().await?;
        }
        if self.count > 0 {
            self.items.push(b',');
        }
        self.items.extend_from_slice(&item);
        self.count += 1;
        self.read += 1;
        if self.first.is_none() {
            self.first = Some(at.clone());
        }
        self.last = at;
        Ok(())
    }

    /// Sends the batch filled so far, if there is one (or datasets to record).
    async fn send(&mut self) -> Result<()> {
        if self.count == 0 && (self.check || self.datasets.is_empty()) {
            return Ok(());
        }
        let span = match &self.first {
            Some(first) if *first != self.last => format!("{first} to {}", self.last),
            Some(first) => first.clone(),
            None => "the datasets".into(),
        };
        let payload = body(&self.datasets, &self.items)?;
        let sent = self.sent;
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload)
            .send()
            .await;
        let not_recorded = || {
            format!(
                "the batch of {span} was not recorded ({sent} releases before it were); fix it if the server named a \
                 problem, then run the same command again: what was recorded is found again as duplicates"
            )
        };
        let response = match response {
            Ok(r) => r,
            Err(e) if self.check => {
                return Err(anyhow::Error::new(e).context(format!("checking {span}; nothing was recorded")))
            }
            Err(e) => return Err(anyhow::Error::new(e).context(not_recorded())),
        };
        if !response.status().is_success() {
            if self.check {
                return Err(refusal(&format!("checking {span}: refused; nothing was recorded"), response).await);
            }
            return Err(refusal(&not_recorded(), response).await);
        }
        if self.check {
            self.sent += self.count;
            eprintln!("import: checked {} releases", self.sent);
        } else {
            let r: Value = response.json().await.with_context(not_recorded)?;
            let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.done.datasets_defined += n("datasetsDefined");
            self.done.releases_recorded += n("releasesRecorded");
            self.done.duplicates += n("duplicates");
            self.done.observations += n("observations");
            self.done.head_revision = n("headRevision");
            self.sent += self.count;
            self.datasets.clear();
            self.datasets_bytes = 2;
            eprintln!(
                "import: {}/{} releases sent, up to {}; {} recorded, {} already there; head revision {} ({:.0} releases/s)",
                self.sent,
                self.total,
                self.last,
                self.done.releases_recorded,
                self.done.duplicates,
                self.done.head_revision,
                self.sent as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
            );
        }
        self.items.clear();
        self.count = 0;
        self.first = None;
        Ok(())
    }
}

/// Most releases without an id listed when refusing.
const MAX_LISTED: usize = 100;

/// Checks `files` with the server at `url`, then records them there, each in bounded batches:
/// a CSV file on disk is streamed (read twice, never held whole), JSON files and standard
/// input are read whole as `tradeledger import` reads them. Reports progress on standard
/// error. Nothing is recorded unless every file parses and the server accepts every batch's
/// checks; a batch the server acknowledged is recorded (and flushed) before the next is sent,
/// so after a failure, running the same command again records the rest, the releases already
/// recorded answering as duplicates.
pub async fn import(url: &str, token: &str, files: &[PathBuf], format: Option<Format>) -> Result<Imported> {
    if files.iter().filter(|p| p.as_os_str() == STDIN).count() > 1 {
        bail!("standard input (`-`) can be read only once");
    }
    let mut sources = Vec::with_capacity(files.len());
    for path in files {
        let format = crate::import::format_of(path, format)?;
        let name = crate::import::display_name(path);
        let source = if crate::import::is_regular(path) {
            Source::File(path.clone())
        } else {
            Source::Held(crate::import::read_bytes(path)?.1)
        };
        sources.push((name, Arc::new(source), format));
    }
    send(url, token, sources).await
}

/// Has the server at `url` check `batch` (already read, as the SDMX import reads its files),
/// then records it there in bounded batches, as [`import`] does with files.
pub async fn import_batch(url: &str, token: &str, batch: Batch) -> Result<Imported> {
    send(
        url,
        token,
        vec![("the files".to_owned(), Arc::new(Source::Read(batch)), Format::Json)],
    )
    .await
}

/// Checks, then records, the releases of `sources`: see [`import`].
async fn send(url: &str, token: &str, sources: Vec<(String, Arc<Source>, Format)>) -> Result<Imported> {
    let check_url = endpoint(url, "/admin/releases?check=true")?;
    let record_url = endpoint(url, "/admin/releases")?;
    let http = client()?;
    let mut digests: Vec<Vec<[u8; 32]>> = vec![Vec::new(); sources.len()];
    let mut done = Imported::default();
    let mut total = 0;
    for check in [true, false] {
        let mut pass = Pass {
            http: http.clone(),
            url: if check { check_url.clone() } else { record_url.clone() },
            token,
            check,
            datasets: Vec::new(),
            datasets_bytes: 2,
            items: Vec::new(),
            count: 0,
            first: None,
            last: String::new(),
            read: 0,
            sent: 0,
            total,
            missing: Vec::new(),
            done: Imported::default(),
            started: Instant::now(),
        };
        for ((name, source, format), digests) in sources.iter().zip(digests.iter_mut()) {
            let (tx, mut rx) = mpsc::channel::<Piece>(256);
            let reader = {
                let (name, source, format) = (name.clone(), source.clone(), *format);
                tokio::task::spawn_blocking(move || read_pieces(&name, &source, format, &tx))
            };
            let mut index = 0;
            let outcome: Result<()> = async {
                while let Some(piece) = rx.recv().await {
                    match piece {
                        Piece::Dataset(d) => {
                            pass.datasets_bytes += serde_json::to_vec(&d)?.len() + 1;
                            pass.datasets.push(d);
                        }
                        Piece::Release { item, at, title, has_id } => {
                            let digest: [u8; 32] = Sha256::digest(&item).into();
                            if check {
                                digests.push(digest);
                                if !has_id {
                                    if pass.missing.len() < MAX_LISTED {
                                        pass.missing.push(format!("{at}: release \"{title}\" has no id"));
                                    }
                                    continue;
                                }
                            } else if digests.get(index) != Some(&digest) {
                                bail!(
                                    "{at}: the file changed since it was checked; stopped there ({} releases before it were sent)",
                                    pass.sent
                                );
                            }
                            index += 1;
                            if pass.missing.is_empty() {
                                pass.release(item, at, &title).await?;
                            }
                        }
                    }
                }
                Ok(())
            }
            .await;
            drop(rx);
            let read = reader.await.context("reading the files")?;
            outcome?;
            read.map_err(|e| {
                if check {
                    anyhow::anyhow!("{e}; nothing was recorded")
                } else {
                    anyhow::anyhow!("{e}; {} releases before it were sent", pass.sent)
                }
            })?;
        }
        if !pass.missing.is_empty() {
            bail!(
                "refused: every release needs an id for `import --url` (so that a second run is safe); nothing was recorded:\n  {}",
                pass.missing.join("\n  ")
            );
        }
        pass.send().await?;
        if check {
            total = pass.read;
        } else {
            done = pass.done;
        }
    }
    Ok(done)
}
