//! The ledger's queries over its transparency log: checkpoints, inclusion and consistency
//! proofs at a tree size (the tree itself, and the formats, are `crate::tlog`'s).

use crate::tlog::{leaf_of_record, MerkleTree, Node, TreeError};

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
    /// The event's canonical text: the leaf data.
    pub canonical: String,
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
