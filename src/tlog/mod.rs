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
//! the events and compare ([`crate::store::check_tree`]), and `tradeledger rebuild` rewrites
//! them.
//!
//! **Architecture invariant:** `tlog` knows no storage and no ledger: the tree, proofs, notes
//! and keys only, below `store` in the layers (`src/layers.rs`). The store keeps the tree
//! beside its events; the ledger's queries over it (checkpoints, inclusion and consistency
//! proofs at a tree size) are in `ledger::transparency`.

pub mod merkle;
pub mod note;
pub mod verify;
pub mod witness;

use std::io::Write;
use std::path::Path;

pub use merkle::{leaf_hash, MerkleTree, Node, TreeError};
pub use note::{Checkpoint, NoteError, Signer, Verifier};

/// The Merkle tree a store keeps over its events, shared with readers.
pub type TreeLock = std::sync::RwLock<MerkleTree>;

/// The leaf data of a stored record (`hash || canonical bytes`): its canonical bytes.
pub fn leaf_of_record(stored: &[u8]) -> Node {
    leaf_hash(stored.get(32..).unwrap_or_default())
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
