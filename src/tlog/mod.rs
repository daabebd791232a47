//! The transparency log: a Merkle tree over the events (RFC 9162 hashing), signed
//! checkpoints in the C2SP formats, and the witness that checks a server from outside.
//!
//! - [`merkle`]: the tree in memory: roots of any size, inclusion and consistency proofs.
//! - [`note`]: checkpoint bodies, Ed25519 signed notes, verifier and signing keys.
//! - [`verify`]: the client side of the proofs (RFC 9162 verification algorithms).
//! - [`witness`]: `tradeledger witness`: fetch, verify, check consistency, save.
//!
//! The tree's leaves are the events' canonical bytes: the leaf of revision `r` is leaf index
//! `r - 1`, so the tree size is the head revision. The store keeps the leaf hashes beside the
//! events, written in the same transaction ([`crate::store::SledStore`]), and builds the
//! interior levels in memory at start-up from them: the log itself is not hashed again.
//! They are derived data: `verifyLedger` and `tradeledger verify` recompute every leaf from
//! the events and compare, and `tradeledger rebuild` rewrites them.

pub mod merkle;
pub mod note;
pub mod verify;
pub mod witness;

use std::io::Write;
use std::path::Path;

pub use merkle::{leaf_hash, MerkleTree, Node, TreeError};
pub use note::{Checkpoint, NoteError, Signer, Verifier};

use crate::ledger::{Ledger, LedgerError};
use crate::store::{Damage, LogStore, StoreError};

/// The Merkle tree a store keeps over its events, shared with readers.
pub type TreeLock = std::sync::RwLock<MerkleTree>;

/// The leaf data of a stored record (`hash || canonical bytes`): its canonical bytes.
pub fn leaf_of_record(stored: &[u8]) -> Node {
    leaf_hash(stored.get(32..).unwrap_or_default())
}

/// What recomputing the tree from the events found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCheck {
    /// The root recomputed from the events' canonical bytes.
    pub root: Node,
    /// The first revision whose stored leaf differs from its event, if any.
    pub damage: Option<Damage>,
}

/// Recomputes the leaves of revisions `1..=size` from the events and compares them with the
/// store's tree. Reads the whole log: for audits, not for every request.
pub fn check_tree(store: &dyn LogStore, size: u64) -> Result<TreeCheck, StoreError> {
    let mut fresh = MerkleTree::default();
    let mut damage = None;
    let mut prev = crate::store::Hash::GENESIS;
    for item in store.scan(1) {
        let (revision, bytes) = item?;
        if revision > size {
            break;
        }
        if revision != fresh.len() + 1 {
            // A damaged store can read back differently through another handle (sled drops
            // what it cannot read): a gap is damage, never a smaller tree.
            damage.get_or_insert(Damage {
                revision: fresh.len() + 1,
                reason: "the event does not read back from the store (its files are damaged)".into(),
            });
            break;
        }
        // The chain is checked again on these reads: the fold that checked it first may have
        // read the log through other handles, and a damaged store can answer each handle
        // differently.
        match crate::store::decode(revision, &bytes, &prev) {
            Ok(event) => prev = event.hash,
            Err(d) => {
                damage.get_or_insert(Damage {
                    revision,
                    reason: format!(
                        "the event reads back differently through the store's handle: {}",
                        d.reason
                    ),
                });
                break;
            }
        }
        let leaf = leaf_of_record(&bytes);
        if damage.is_none()
            && store
                .tree()
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .leaf(revision - 1)
                != Some(&leaf)
        {
            damage = Some(Damage {
                revision,
                reason: "the transparency log's leaf differs from the event (derived data: \
                         `tradeledger rebuild` rewrites it)"
                    .into(),
            });
        }
        fresh.push(leaf);
    }
    if damage.is_none() && fresh.len() < size {
        damage = Some(Damage {
            revision: fresh.len() + 1,
            reason: "the event does not read back from the store (its files are damaged)".into(),
        });
    }
    let root = fresh.root(fresh.len()).expect("the size of the tree itself");
    if damage.is_none() && fresh.len() == size {
        let stored = store.tree().read().unwrap_or_else(|e| e.into_inner()).root(size).ok();
        if stored != Some(root) {
            damage = Some(Damage {
                revision: size,
                reason: "the transparency log's root differs from the events'".into(),
            });
        }
    }
    Ok(TreeCheck { root, damage })
}

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

/// Name of the file, in the data directory, holding the generated signing key.
pub const KEY_FILE: &str = "signing-key";

/// Where the signing key comes from, and the origin asked for.
#[derive(Debug, Clone, Default)]
pub struct KeyConfig<'a> {
    pub key_file: Option<&'a Path>,
    pub origin: Option<&'a str>,
}

/// Loads the signing key (from `key_file`, else `DATA_DIR/signing-key`, generated on first
/// start, owner-only). Returns it and, only when it was just generated, the verifier key to
/// print once. A key file names its origin; `origin` must agree with it when both are given.
pub fn load_signer(data_dir: &Path, config: KeyConfig<'_>) -> anyhow::Result<(Signer, bool)> {
    use anyhow::Context;
    if let Some(origin) = config.origin {
        note::check_name(origin).context("--log-origin")?;
    }
    let path = match config.key_file {
        Some(p) => p.to_owned(),
        None => data_dir.join(KEY_FILE),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.key_file.is_none() => None,
        Err(e) => return Err(e).with_context(|| format!("reading the signing key {}", path.display())),
    };
    if let Some(text) = text {
        let signer = Signer::parse(&text).with_context(|| format!("the signing key {}", path.display()))?;
        if let Some(origin) = config.origin.filter(|o| *o != signer.name()) {
            anyhow::bail!(
                "the signing key {} is for log origin `{}`, not `{origin}`: the origin is part of the \
                 log's identity (witnesses know it by it), so it cannot change under the same key",
                path.display(),
                signer.name()
            );
        }
        return Ok((signer, false));
    }
    let origin = match config.origin {
        Some(o) => o.to_owned(),
        None => {
            use rand::RngCore;
            let mut id = [0u8; 4];
            rand::rngs::OsRng.fill_bytes(&mut id);
            format!("tradeledger.local/{}", hex::encode(id))
        }
    };
    let signer = Signer::generate(&origin)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating the signing key {}", path.display()))?;
    file.write_all(format!("{}\n", signer.to_private_text()).as_bytes())?;
    file.sync_all()?;
    Ok((signer, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_private_stable_and_keeps_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let (s1, created) = load_signer(dir.path(), KeyConfig::default()).unwrap();
        assert!(created);
        assert!(s1.name().starts_with("tradeledger.local/"), "{}", s1.name());
        let (s2, again) = load_signer(dir.path(), KeyConfig::default()).unwrap();
        assert!(!again);
        assert_eq!(s1.verifier_key(), s2.verifier_key());
        let same = KeyConfig {
            origin: Some(s1.name()),
            key_file: None,
        };
        assert!(load_signer(dir.path(), same).is_ok());
        let other = KeyConfig {
            origin: Some("example.org/other"),
            key_file: None,
        };
        let e = load_signer(dir.path(), other).unwrap_err().to_string();
        assert!(e.contains("is for log origin"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_missing_or_bad_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let config = KeyConfig {
            key_file: Some(&missing),
            origin: None,
        };
        assert!(load_signer(dir.path(), config).is_err());
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "not a key").unwrap();
        let config = KeyConfig {
            key_file: Some(&bad),
            origin: None,
        };
        let e = format!("{:#}", load_signer(dir.path(), config).unwrap_err());
        assert!(e.contains("not a note signing key"), "{e}");
    }
}
