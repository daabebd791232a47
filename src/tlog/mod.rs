//! The transparency log: a Merkle tree over the events (RFC 9162 hashing), signed
//! checkpoints in the C2SP formats, and the witness that checks a server from outside.
//!
//! - [`merkle`]: the tree in memory: roots of any size, inclusion and consistency proofs.
//! - [`note`]: checkpoint bodies, Ed25519 signed notes, verifier and signing keys.
//! - [`verify`]: the client side of the proofs (RFC 9162 verification algorithms).
//! - [`witness`]: `tradeledger witness`: fetch, verify, check consistency, save.
//! - [`witness_server`]: `tradeledger witness serve`, a C2SP `tlog-witness`.
//!
//! - [`tiles`]: the C2SP `tlog-tiles` paths, hash tiles and entry bundles.
//! - [`cosign`], [`policy`], [`proof`]: C2SP `tlog-cosignature` (Ed25519), `tlog-policy`
//!   files and `tlog-proof` offline evidence.
//!
//! The leaf of revision `r` is leaf index `r - 1`, so the tree size is the head revision.
//! Its entry (the leaf data, what an entry bundle carries) is a statement of about 90 bytes
//! that commits to the event by its hash ([`event_statement`]), so that every entry fits
//! the 65,535 bytes a bundle allows whatever the size of the release; the event itself is
//! served beside it. Events recorded in format 1, before that rule, keep their canonical
//! bytes as their entry, so that the checkpoints signed over them stay valid and every
//! later tree is an extension of them: the rule is read from the event's own `format`
//! field, which the hash chain covers, so an auditor recomputes every leaf from the log. The store keeps the leaf hashes beside the
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

pub mod cosign;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod proof;
pub mod tiles;
pub mod verify;
pub mod witness;
pub mod witness_server;

use std::io::Write;
use std::path::Path;

pub use merkle::{leaf_hash, MerkleTree, Node, TreeError};
pub use note::{Checkpoint, NoteError, Signer, Verifier};

/// The Merkle tree a store keeps over its events, shared with readers.
pub type TreeLock = std::sync::RwLock<MerkleTree>;

/// The first line of an event statement, naming its format.
pub const STATEMENT_HEADER: &str = "tradeledger/event/v1";

/// The entry of an event recorded in format 2 or later: three lines, the header, the
/// revision and the lowercase hex SHA-256 of the event's canonical bytes (its `hash`, which
/// covers `prev_hash` and so the whole history before it).
pub fn event_statement(revision: u64, hash: &[u8; 32]) -> String {
    format!("{STATEMENT_HEADER}\n{revision}\n{}\n", hex::encode(hash))
}

/// The canonical bytes of an event in format 1 start with this (the envelope's fields are
/// serialized in declaration order, `format` first).
const FORMAT_1_PREFIX: &[u8] = b"{\"format\":1,";

/// The entry (leaf data) of a stored record (`hash || canonical bytes`): the canonical bytes
/// for an event in format 1, else its [`event_statement`].
pub fn entry_of_record(stored: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let Some((hash, canonical)) = stored.split_first_chunk::<32>() else {
        return std::borrow::Cow::Borrowed(&[]);
    };
    if canonical.starts_with(FORMAT_1_PREFIX) {
        return std::borrow::Cow::Borrowed(canonical);
    }
    std::borrow::Cow::Owned(event_statement(revision_of(canonical), hash).into_bytes())
}

/// The revision an event's canonical bytes state (`{"format":N,"revision":R,...`), 0 when
/// they do not start that way (a damaged record, which reading it reports).
pub(crate) fn revision_of(canonical: &[u8]) -> u64 {
    let Some(rest) = canonical.strip_prefix(b"{\"format\":") else {
        return 0;
    };
    let Some(comma) = rest.iter().position(|b| *b == b',') else {
        return 0;
    };
    let Some(rest) = rest[comma + 1..].strip_prefix(b"\"revision\":") else {
        return 0;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The leaf hash of a stored record (`hash || canonical bytes`): that of its entry.
pub fn leaf_of_record(stored: &[u8]) -> Node {
    leaf_hash(&entry_of_record(stored))
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
        keys::check_name(origin).context("--log-origin")?;
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
    fn entries_are_statements_except_for_format_1_events() {
        let hash = [7u8; 32];
        let mut old = hash.to_vec();
        old.extend_from_slice(br#"{"format":1,"revision":3,"x":1}"#);
        assert_eq!(&*entry_of_record(&old), &old[32..]);
        let mut new = hash.to_vec();
        new.extend_from_slice(br#"{"format":2,"revision":31,"x":1}"#);
        let statement = format!("tradeledger/event/v1\n31\n{}\n", hex::encode(hash));
        assert_eq!(&*entry_of_record(&new), statement.as_bytes());
        assert_eq!(leaf_of_record(&new), leaf_hash(statement.as_bytes()));
        assert_eq!(revision_of(b"{\"format\":2,\"revision\":x"), 0);
    }

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
