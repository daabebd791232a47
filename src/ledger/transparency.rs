//! The ledger's queries over its transparency log: checkpoints, inclusion and consistency
//! proofs at a tree size (the tree itself, and the formats, are `crate::tlog`'s).

use crate::tlog::tiles::{self, TileError, TilePath};
use crate::tlog::{entry_of_record, leaf_hash, leaf_of_record, MerkleTree, Node, TreeError};

use super::{Ledger, LedgerError};

/// A signed checkpoint as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Node,
    /// The whole signed note.
    pub note: String,
}

/// An inclusion proof as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub revision: u64,
    pub size: u64,
    /// The event's canonical text.
    pub canonical: String,
    /// The leaf data: a statement of the event's hash, or, for an event recorded in
    /// format 1, its canonical text (see [`crate::tlog`]).
    pub entry: String,
    pub hashes: Vec<Node>,
    pub root: Node,
}

/// A consistency proof as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consistency {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<Node>,
    pub from_root: Node,
    pub to_root: Node,
}

fn tree_failure(e: TreeError) -> LedgerError {
    LedgerError::storage(format!("the transparency log is behind the ledger: {e}"))
}

/// A tree size argument: the acknowledged head when absent, else 1 to the head.
pub fn tree_size(ledger: &Ledger, field: &str, value: Option<i64>) -> Result<u64, LedgerError> {
    let head = ledger.read().head().revision;
    match value {
        None => Ok(head),
        Some(v) if v < 1 => Err(LedgerError::bad_input(field, format!("must be at least 1 (got {v})"))),
        Some(v) if v as u64 > head => Err(LedgerError::bad_input(
            field,
            format!("{v} is beyond the ledger head (revision {head})"),
        )),
        Some(v) => Ok(v as u64),
    }
}

fn read_tree(ledger: &Ledger) -> std::sync::RwLockReadGuard<'_, MerkleTree> {
    ledger.log().tree().read().unwrap_or_else(|e| e.into_inner())
}

/// The signed checkpoint of the tree of `size` leaves.
pub fn checkpoint(ledger: &Ledger, size: u64) -> Result<SignedCheckpoint, LedgerError> {
    let signer = ledger
        .signer()
        .ok_or_else(|| LedgerError::storage("this server has no checkpoint signing key"))?;
    let root = read_tree(ledger).root(size).map_err(tree_failure)?;
    Ok(SignedCheckpoint {
        origin: signer.name().to_owned(),
        size,
        root,
        note: signer.checkpoint(size, &root),
    })
}

/// The proof that the event at `revision` is leaf `revision - 1` of the tree of `size`.
pub fn inclusion(ledger: &Ledger, revision: u64, size: u64) -> Result<Inclusion, LedgerError> {
    if revision == 0 || revision > size {
        return Err(LedgerError::bad_input(
            "revision",
            format!("must be from 1 to the tree size {size} (got {revision})"),
        ));
    }
    let stored = ledger
        .log()
        .get(revision)
        .map_err(LedgerError::from)?
        .ok_or_else(|| LedgerError::storage(format!("revision {revision} is missing from the log")))?;
    let tree = read_tree(ledger);
    // The tree's leaves are derived data: a proof is only given for a leaf its event matches.
    if tree.leaf(revision - 1) != Some(&leaf_of_record(&stored)) {
        return Err(LedgerError::storage(format!(
            "the transparency log's leaf for revision {revision} does not match the event; run verifyLedger"
        )));
    }
    let hashes = tree.inclusion_proof(revision - 1, size).map_err(tree_failure)?;
    let root = tree.root(size).map_err(tree_failure)?;
    drop(tree);
    Ok(Inclusion {
        revision,
        size,
        canonical: String::from_utf8_lossy(&stored[32..]).into_owned(),
        entry: String::from_utf8_lossy(&entry_of_record(&stored)).into_owned(),
        hashes,
        root,
    })
}

/// The proof that the tree of `from` leaves is a prefix of the tree of `to` leaves.
pub fn consistency(ledger: &Ledger, from: u64, to: u64) -> Result<Consistency, LedgerError> {
    if from > to {
        return Err(LedgerError::bad_input(
            "fromSize",
            format!("{from} is greater than toSize {to}"),
        ));
    }
    let tree = read_tree(ledger);
    Ok(Consistency {
        from,
        to,
        hashes: tree.consistency_proof(from, to).map_err(tree_failure)?,
        from_root: tree.root(from).map_err(tree_failure)?,
        to_root: tree.root(to).map_err(tree_failure)?,
    })
}

/// The hash tile at `path` of the acknowledged tree (`tlog-tiles`).
pub fn hash_tile(ledger: &Ledger, path: &TilePath) -> Result<Vec<u8>, TileError> {
    let size = ledger.read().head().revision;
    tiles::hash_tile(&read_tree(ledger), size, path)
}

/// The entry bundle at `path` of the acknowledged tree: each event's entry, checked against
/// its leaf in the tree before it is served.
pub fn entry_bundle(ledger: &Ledger, path: &TilePath) -> Result<Vec<u8>, TileError> {
    let size = ledger.read().head().revision;
    let Some((start, end)) = path.leaf_range().filter(|_| path.within(size)) else {
        return Err(TileError::NotFound(format!(
            "the tree of {size} leaves has no entry bundle {}",
            tiles::encode_path(path)
        )));
    };
    let unavailable = |why: String| TileError::Unavailable(why);
    let mut bundle = Vec::new();
    let mut next = start + 1;
    for item in ledger.log().scan(start + 1) {
        let (revision, stored) = item.map_err(|e| unavailable(format!("reading the log: {e}")))?;
        if revision > end {
            break;
        }
        if revision != next {
            return Err(unavailable(format!("revision {next} is missing from the log")));
        }
        next += 1;
        let entry = entry_of_record(&stored);
        if read_tree(ledger).leaf(revision - 1) != Some(&leaf_hash(&entry)) {
            return Err(unavailable(format!(
                "the transparency log's leaf for revision {revision} does not match the event; run verifyLedger"
            )));
        }
        tiles::push_entry(&mut bundle, &entry).map_err(|len| {
            unavailable(format!(
                "the entry of revision {revision} is {len} bytes, more than the {} an entry bundle \
                 can hold: it was recorded in format 1, whose entry is the whole event; read it at \
                 /tlog/event/{revision}",
                tiles::MAX_ENTRY_BYTES
            ))
        })?;
    }
    if next != end + 1 {
        return Err(unavailable(format!("revision {next} is missing from the log")));
    }
    Ok(bundle)
}

/// The canonical bytes of the event at `revision`, if the acknowledged log has it.
pub fn event_bytes(ledger: &Ledger, revision: u64) -> Result<Option<Vec<u8>>, LedgerError> {
    if revision == 0 || revision > ledger.read().head().revision {
        return Ok(None);
    }
    let stored = ledger.log().get(revision).map_err(LedgerError::from)?;
    Ok(stored.map(|mut s| s.split_off(32.min(s.len()))))
}
