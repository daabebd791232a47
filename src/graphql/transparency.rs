//! Types of the transparency log's API: signed checkpoints, inclusion and consistency
//! proofs. Hashes are lowercase hex; the checkpoint note carries the root in base64, as the
//! C2SP format has it.

use async_graphql::{ComplexObject, Context, Result, SimpleObject};

/// A signed tree head of the transparency log.
#[derive(SimpleObject)]
pub struct Checkpoint {
    /// The log's origin, also the name of its signing key.
    pub origin: String,
    /// Number of events the tree covers (the ledger revision it was taken at).
    pub tree_size: u64,
    /// Root of the Merkle tree (RFC 9162), lowercase hex.
    pub root_hash: String,
    /// The whole C2SP signed note: origin, size and base64 root lines, a blank line, the
    /// log's Ed25519 signature line, then the witnesses' cosignature lines of this size.
    pub note: String,
    /// Names, as the witness policy has them, of the witnesses whose cosignatures the note
    /// carries (`cosignature/v1`, verified when they were received).
    pub cosigners: Vec<String>,
    /// Whether those cosigners meet the witness policy's quorum; null when the server has no
    /// witness policy.
    pub quorum: Option<bool>,
    /// Every witness of the server's witness policy and what it last did.
    pub witnesses: Vec<WitnessStatus>,
}

/// A witness of the server's witness policy (`serve --witness-policy`).
#[derive(SimpleObject)]
pub struct WitnessStatus {
    /// Its name in the policy.
    pub name: String,
    /// The largest tree size it cosigned for this server since the server started.
    pub cosigned_size: Option<u64>,
    /// The last alarm it raised since its last cosignature: the status it answered with
    /// (403, 404, 422) and its message.
    pub alarm: Option<String>,
}

impl From<crate::ledger::transparency::SignedCheckpoint> for Checkpoint {
    fn from(c: crate::ledger::transparency::SignedCheckpoint) -> Self {
        Checkpoint {
            origin: c.origin,
            tree_size: c.size,
            root_hash: hex::encode(c.root),
            note: c.note,
            cosigners: c.cosigners,
            quorum: c.quorum,
            witnesses: c
                .witnesses
                .into_iter()
                .map(|(name, state)| WitnessStatus {
                    name,
                    cosigned_size: state.cosigned.map(|(n, _)| n),
                    alarm: state.alarm,
                })
                .collect(),
        }
    }
}

/// Proof that one event is a leaf of the tree of a given size (RFC 9162 section 2.1.3).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct InclusionProof {
    /// The event's revision.
    pub revision: u64,
    pub tree_size: u64,
    /// `revision - 1`.
    pub leaf_index: u64,
    /// The event's canonical text; its SHA-256 is the event's hash.
    pub canonical: String,
    /// The leaf data; the leaf hash is `SHA-256(0x00 || entry)`. For an event recorded in
    /// format 2 or later, the three lines `tradeledger/event/v1`, the revision and the
    /// event's hash in lowercase hex, each ending in a newline; for one recorded in format 1,
    /// the canonical text itself.
    pub entry: String,
    /// The audit path, from the leaf's sibling upwards, lowercase hex.
    pub hashes: Vec<String>,
    /// Root of the tree of `treeSize`, lowercase hex.
    pub root_hash: String,
}

impl From<crate::ledger::transparency::Inclusion> for InclusionProof {
    fn from(p: crate::ledger::transparency::Inclusion) -> Self {
        InclusionProof {
            revision: p.revision,
            tree_size: p.size,
            leaf_index: p.revision - 1,
            canonical: p.canonical,
            entry: p.entry,
            hashes: p.hashes.iter().map(hex::encode).collect(),
            root_hash: hex::encode(p.root),
        }
    }
}

#[ComplexObject]
impl InclusionProof {
    /// The same proof as offline evidence, a `c2sp.org/tlog-proof@v1` text (index, audit
    /// path, and the checkpoint of `treeSize` with the witnesses' cosignatures of that size),
    /// for `tradeledger verify-proof` or any tlog-proof verifier, with `canonical` as the
    /// event.
    async fn tlog_proof(&self, ctx: &Context<'_>) -> Result<String> {
        let ledger = super::ledger_of(ctx);
        let text = crate::ledger::transparency::tlog_proof(ledger, self.revision, self.tree_size)
            .map_err(super::error::ledger)?;
        super::limits::charge_texts(ctx, [text.as_str()])?;
        Ok(text)
    }
}

/// Proof that the tree of `fromSize` is a prefix of the tree of `toSize` (RFC 9162 section
/// 2.1.4).
#[derive(SimpleObject)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub to_size: u64,
    /// The proof's hashes, lowercase hex.
    pub hashes: Vec<String>,
    pub from_root: String,
    pub to_root: String,
}

impl From<crate::ledger::transparency::Consistency> for ConsistencyProof {
    fn from(p: crate::ledger::transparency::Consistency) -> Self {
        ConsistencyProof {
            from_size: p.from,
            to_size: p.to,
            hashes: p.hashes.iter().map(hex::encode).collect(),
            from_root: hex::encode(p.from_root),
            to_root: hex::encode(p.to_root),
        }
    }
}
