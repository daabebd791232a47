//! The clients of the online operations (`/admin/` on a running server, admin token):
//! `tradeledger export --url` and `tradeledger import --url`.
//!
//! - [`export`] appends the server's log to a file in the format `tradeledger export` writes,
//!   checking every hash and link on the way, and resumes where the file ends (or after a
//!   given revision), so an interrupted backup is continued, not restarted. The stream ends
//!   with the server's signed checkpoint; the file's Merkle root must be the one it states,
//!   and it is written beside the file for `import --event-log FILE --checkpoint FILE.checkpoint`.
//! - [`import`] reads release files (JSON or CSV, as `tradeledger import` does) on this
//!   machine, so that a file that does not parse is refused naming its file and line before
//!   anything is sent; then has the server check every release (nothing recorded), and only
//!   then sends them in batches that the server records as `import` does. Every release must
//!   carry its id, so that a second run (after an interruption) finds what the first recorded
//!   and reports it as duplicates.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::export::Line;
use crate::import::{Batch, Format, Origin, Place};
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
) -> Result<Exported> {
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
    let body = note.split_once("\n\n").map_or(note.as_str(), |(b, _)| b);
    let checkpoint = Checkpoint::parse(&format!("{}\n", body.trim_end_matches('\n')))
        .map_err(|e| anyhow::anyhow!("the server's checkpoint: {e}"))?;
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

/// The bodies to send, with their release counts: the releases in batches, with the
/// datasets in the first batch, or in `every` batch.
fn bodies(batch: &Batch, every: bool) -> Result<Vec<(Vec<u8>, usize)>> {
    let datasets = serde_json::to_vec(&batch.datasets)?;
    let open = |datasets: &[u8]| {
        let mut body = b"{\"datasets\":".to_vec();
        body.extend_from_slice(datasets);
        body.extend_from_slice(b",\"releases\":[");
        body
    };
    let mut out = Vec::new();
    let mut body = open(&datasets);
    let mut count = 0;
    for (r, o) in batch.releases.iter().zip(&batch.origins) {
        let item = serde_json::to_vec(&serde_json::json!({ "origin": origin_json(o), "release": r }))?;
        if item.len() + datasets.len() + 64 > BATCH_BYTES {
            bail!(
                "{}: release \"{}\" is {} bytes, more than a batch takes ({BATCH_BYTES})",
                where_(o),
                r.title,
                item.len()
            );
        }
        if count == BATCH_RELEASES || body.len() + item.len() + 2 > BATCH_BYTES {
            body.extend_from_slice(b"]}");
            let next = open(if every { &datasets } else { b"[]" });
            out.push((std::mem::replace(&mut body, next), count));
            count = 0;
        }
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item);
        count += 1;
    }
    if count > 0 || out.is_empty() {
        body.extend_from_slice(b"]}");
        out.push((body, count));
    }
    Ok(out)
}

/// Reads `files`, has the server at `url` check them, then records them there in batches,
/// reporting progress on standard error.
pub async fn import(url: &str, token: &str, files: &[PathBuf], format: Option<Format>) -> Result<Imported> {
    // Every file is read before anything is sent: one that does not parse stops it all.
    let mut batch = Batch::default();
    for f in files {
        batch.extend(crate::import::read_file_as(f, format).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    import_batch(url, token, batch).await
}

/// Has the server at `url` check `batch`, then records it there in batches, reporting
/// progress on standard error (what [`import`] does once the files are read).
pub async fn import_batch(url: &str, token: &str, batch: Batch) -> Result<Imported> {
    let missing: Vec<String> = batch
        .releases
        .iter()
        .zip(&batch.origins)
        .filter(|(r, _)| r.id.is_none())
        .map(|(r, o)| format!("{}: release \"{}\" has no id", where_(o), r.title))
        .collect();
    if !missing.is_empty() {
        bail!(
            "refused: every release needs an id for `import --url` (so that a second run is safe); nothing was sent:\n  {}",
            missing.join("\n  ")
        );
    }
    let total = batch.releases.len();
    let http = client()?;
    let check_url = endpoint(url, "/admin/releases?check=true")?;
    let record_url = endpoint(url, "/admin/releases")?;
    // Checked with every dataset in each batch: a release may belong to a dataset that the
    // files define and that is not recorded yet.
    let checks = bodies(&batch, true)?;
    let mut checked = 0;
    for (body, count) in checks {
        let response = http
            .post(&check_url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {check_url}"))?;
        if !response.status().is_success() {
            return Err(refusal("refused; nothing was recorded", response).await);
        }
        checked += count;
        eprintln!("import: checked {checked}/{total} releases");
    }
    let sends = bodies(&batch, false)?;
    let started = Instant::now();
    let mut done = Imported::default();
    let mut sent = 0;
    for (body, count) in sends {
        let response = http
            .post(&record_url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| {
                format!("POST {record_url} after {sent} releases; run the same command again to continue")
            })?;
        if !response.status().is_success() {
            let what = format!("after {sent} of {total} releases (those are recorded)");
            return Err(refusal(&what, response).await);
        }
        let r: Value = response.json().await.context("the server's answer")?;
        let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        done.datasets_defined += n("datasetsDefined");
        done.releases_recorded += n("releasesRecorded");
        done.duplicates += n("duplicates");
        done.observations += n("observations");
        done.head_revision = n("headRevision");
        sent += count;
        eprintln!(
            "import: {sent}/{total} releases sent; {} recorded, {} already there; head revision {} ({:.0} releases/s)",
            done.releases_recorded,
            done.duplicates,
            done.head_revision,
            sent as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    }
    Ok(done)
}
