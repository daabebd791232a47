//! The log as JSON Lines, for auditors and for backup: `tradeledger export` writes one event
//! per line (`{"revision":…,"hash":…,"canonical":…}`, the canonical text exactly as hashed),
//! and `tradeledger import --event-log` restores such a file into an empty store.
//!
//! Restoring checks everything before writing anything: each line's hash, the chain, and that
//! the events fold (the same checks as start-up). Only then is the log appended, and the
//! restored store's head hash and Merkle root are compared with those computed from the file,
//! and with a checkpoint of the source when one is given.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::projection::Projection;
use crate::store::{decode, Hash, Head, LogStore, Record, SledStore, StoreError};
use crate::tlog::{leaf_of_record, Checkpoint, MerkleTree, Node};

/// Longest line `import --event-log` reads (one event's canonical text, JSON-escaped).
pub const MAX_LINE_BYTES: usize = 256 * 1024 * 1024;
/// Bytes of records appended per store transaction while restoring.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// One line of an exported log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub revision: u64,
    pub hash: String,
    pub canonical: String,
}

impl Line {
    /// The line of one stored event, newline included.
    pub fn encode(revision: u64, hash: &Hash, canonical: &str) -> Vec<u8> {
        let line = Line {
            revision,
            hash: hash.to_hex(),
            canonical: canonical.to_owned(),
        };
        let mut out = serde_json::to_vec(&line).expect("strings and numbers serialize");
        out.push(b'\n');
        out
    }

    /// The stored record (`hash || canonical`) this line carries, checked against the hash
    /// of the event before (`prev`): the same checks as a restore makes.
    pub fn check(&self, prev: &Hash) -> Result<Record, String> {
        let hash = Hash::from_hex(&self.hash).ok_or("hash is not 64 hex digits")?;
        let mut bytes = Vec::with_capacity(32 + self.canonical.len());
        bytes.extend_from_slice(&hash.0);
        bytes.extend_from_slice(self.canonical.as_bytes());
        decode(self.revision, &bytes, prev).map_err(|d| d.to_string())?;
        Ok(Record {
            revision: self.revision,
            hash,
            bytes,
        })
    }
}

/// What an export or a restore covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub head: Hash,
    /// The Merkle root of the tree of all the events.
    pub root: Node,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line}: {message}")]
    Bad { line: u64, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("reading or writing: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(line: u64, message: impl Into<String>) -> ExportError {
    ExportError::Bad {
        line,
        message: message.into(),
    }
}

/// Writes every event of `store` up to `head`, checking the chain on the way.
pub fn export(store: &dyn LogStore, head: u64, out: &mut dyn Write) -> Result<Summary, ExportError> {
    let mut prev = Hash::GENESIS;
    let mut tree = MerkleTree::default();
    for item in store.scan(1) {
        let (revision, bytes) = item?;
        if revision > head {
            break;
        }
        let event =
            decode(revision, &bytes, &prev).map_err(|d| ExportError::Refused(format!("the log is damaged at {d}")))?;
        prev = event.hash;
        let canonical = std::str::from_utf8(&bytes[32..])
            .map_err(|_| ExportError::Refused(format!("revision {revision} is not UTF-8")))?;
        tree.push(leaf_of_record(&bytes));
        let line = Line {
            revision,
            hash: event.hash.to_hex(),
            canonical: canonical.to_owned(),
        };
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    if tree.len() != head {
        return Err(ExportError::Refused(format!(
            "the log ends at revision {} before {head}",
            tree.len()
        )));
    }
    out.flush()?;
    Ok(Summary {
        events: tree.len(),
        head: prev,
        root: tree.root(tree.len()).expect("its own size"),
    })
}

/// Reads and checks every line: the records to append and what they add up to.
fn read_log(
    input: &mut dyn BufRead,
    mut each: impl FnMut(Record) -> Result<(), ExportError>,
) -> Result<Summary, ExportError> {
    let mut prev = Hash::GENESIS;
    let mut tree = MerkleTree::default();
    let mut projection = Projection::new();
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        let read = Read::take(&mut *input, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        number += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(bad(number, format!("longer than {MAX_LINE_BYTES} bytes")));
        }
        let line: Line =
            serde_json::from_slice(&buf).map_err(|e| bad(number, format!("not an exported event: {e}")))?;
        let expected = tree.len() + 1;
        if line.revision != expected {
            return Err(bad(
                number,
                format!("revision {} where {expected} was expected", line.revision),
            ));
        }
        let hash = Hash::from_hex(&line.hash).ok_or_else(|| bad(number, "hash is not 64 hex digits"))?;
        let mut bytes = Vec::with_capacity(32 + line.canonical.len());
        bytes.extend_from_slice(&hash.0);
        bytes.extend_from_slice(line.canonical.as_bytes());
        let event = decode(line.revision, &bytes, &prev).map_err(|d| bad(number, d.to_string()))?;
        projection
            .apply(&event)
            .map_err(|e| bad(number, format!("revision {}: {e}", line.revision)))?;
        prev = event.hash;
        tree.push(leaf_of_record(&bytes));
        each(Record {
            revision: line.revision,
            hash,
            bytes,
        })?;
    }
    Ok(Summary {
        events: tree.len(),
        head: prev,
        root: tree.root(tree.len()).expect("its own size"),
    })
}

/// Restores an exported log into the empty sled `store` (an offline tool: it appends on the
/// calling thread, see [`SledStore::append_blocking`]). `open` reopens the file: it is read
/// twice, once to check everything and once to append, so that bad input changes nothing.
/// `checkpoint`, a checkpoint note of the source, must then state the same size and root.
pub fn restore(
    store: &SledStore,
    mut open: impl FnMut() -> std::io::Result<Box<dyn BufRead>>,
    checkpoint: Option<&str>,
) -> Result<Summary, ExportError> {
    let held = store.head()?.revision;
    if held != 0 {
        return Err(ExportError::Refused(format!(
            "the store is not empty (it holds revisions 1 to {held}); restore into a new data directory"
        )));
    }
    let expected = read_log(&mut *open()?, |_| Ok(()))?;
    if let Some(note) = checkpoint {
        let body = note.split_once("\n\n").map_or(note, |(b, _)| b);
        let c = Checkpoint::parse(&format!("{}\n", body.trim_end_matches('\n')))
            .map_err(|e| ExportError::Refused(format!("the checkpoint: {e}")))?;
        if (c.size, c.root) != (expected.events, expected.root) {
            return Err(ExportError::Refused(format!(
                "the log (size {}, root {}) is not the one the checkpoint states (size {}, root {})",
                expected.events,
                hex::encode(expected.root),
                c.size,
                hex::encode(c.root)
            )));
        }
    }
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut head = Head::default();
    let mut append = |batch: &mut Vec<Record>| -> Result<(), ExportError> {
        head = store.append_blocking(batch, head)?;
        batch.clear();
        Ok(())
    };
    read_log(&mut *open()?, |record| {
        bytes += record.bytes.len();
        batch.push(record);
        if bytes >= BATCH_BYTES {
            bytes = 0;
            append(&mut batch)?;
        }
        Ok(())
    })?;
    append(&mut batch)?;
    let head = store.head()?;
    let root = store
        .tree()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .root(head.revision)
        .map_err(|e| ExportError::Refused(e.to_string()))?;
    let restored = Summary {
        events: head.revision,
        head: head.hash,
        root,
    };
    if restored != expected {
        return Err(ExportError::Refused(format!(
            "the restored store does not match the file: {restored:?} against {expected:?}"
        )));
    }
    Ok(restored)
}
