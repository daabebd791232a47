//! The ledger's queries over its transparency log: checkpoints, inclusion and consistency
//! proofs at a tree size (the tree itself, and the formats, are `crate::tlog`'s).

use crate::tlog::policy::Policy;
use crate::tlog::tiles::{self, TileError, TilePath};
use crate::tlog::{entry_of_record, leaf_hash, leaf_of_record, MerkleTree, Node, TreeError};

use super::{Ledger, LedgerError};

/// A signed checkpoint as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Node,
    /// The whole signed note, with the witnesses' cosignatures of this size.
    pub note: String,
    /// Names (in the witness policy) of the witnesses whose cosignatures the note carries.
    pub cosigners: Vec<String>,
    /// Whether they meet the policy's quorum; `None` without a policy.
    pub quorum: Option<bool>,
    /// Every witness of the policy: its name, and what it last did.
    pub witnesses: Vec<(String, WitnessState)>,
}

/// The witness policy of `serve --witness-policy`, and what each witness last did.
#[derive(Debug)]
pub struct Witnessing {
    pub policy: Policy,
    states: std::sync::RwLock<Vec<WitnessState>>,
}

/// What one witness of the policy last did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitnessState {
    /// The tree size of its latest cosignature, and the cosignature line (verified).
    pub cosigned: Option<(u64, String)>,
    /// The last alarm it raised (refused a checkpoint, unknown log), if any since.
    pub alarm: Option<String>,
}

impl Witnessing {
    pub fn new(policy: Policy) -> Witnessing {
        let states = vec![WitnessState::default(); policy.witnesses.len()];
        Witnessing {
            policy,
            states: std::sync::RwLock::new(states),
        }
    }

    /// Records witness `index`'s verified cosignature of the tree of `size`.
    pub fn cosigned(&self, index: usize, size: u64, line: String) {
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        states[index] = WitnessState {
            cosigned: Some((size, line)),
            alarm: None,
        };
    }

    /// Records an alarm raised by witness `index`.
    pub fn alarm(&self, index: usize, alarm: String) {
        self.states.write().unwrap_or_else(|e| e.into_inner())[index].alarm = Some(alarm);
    }

    /// Every witness's state, in policy order.
    pub fn states(&self) -> Vec<WitnessState> {
        self.states.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The cosignature lines of the tree of `size`, with the positions of their witnesses.
    fn lines_for(&self, size: u64) -> Vec<(usize, String)> {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.cosigned {
                Some((n, line)) if *n == size => Some((i, line.clone())),
                _ => None,
            })
            .collect()
    }
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
    let head = ledger.read_on_runtime(|p| p.head().revision);
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
    let mut note = signer.checkpoint(size, &root);
    let (mut cosigners, mut quorum, mut witnesses) = (Vec::new(), None, Vec::new());
    if let Some(w) = ledger.witnessing() {
        witnesses = w
            .policy
            .witnesses
            .iter()
            .map(|p| p.name.clone())
            .zip(w.states())
            .collect();
        let lines = w.lines_for(size);
        let mut set = std::collections::BTreeSet::new();
        // Ed25519 signatures are deterministic: the note of a size is always the same text,
        // so the cosignatures of that size hold for it.
        for (i, line) in lines {
            note.push_str(&line);
            note.push('\n');
            cosigners.push(w.policy.witnesses[i].name.clone());
            set.insert(i);
        }
        quorum = Some(w.policy.quorum_met(&set));
    }
    Ok(SignedCheckpoint {
        origin: signer.name().to_owned(),
        size,
        root,
        note,
        cosigners,
        quorum,
        witnesses,
    })
}

/// The checkpoint of `size` signed by the log alone, as it is submitted to witnesses.
pub fn log_checkpoint(ledger: &Ledger, size: u64) -> Result<String, LedgerError> {
    let signer = ledger
        .signer()
        .ok_or_else(|| LedgerError::storage("this server has no checkpoint signing key"))?;
    let root = read_tree(ledger).root(size).map_err(tree_failure)?;
    Ok(signer.checkpoint(size, &root))
}

/// The tree size a proof of `revision` is best given against: the largest one the witnesses
/// cosigned up to the quorum, else the largest any witness cosigned, else the head.
pub fn proof_size(ledger: &Ledger, revision: u64) -> u64 {
    let head = ledger.read_on_runtime(|p| p.head().revision);
    let Some(w) = ledger.witnessing() else {
        return head;
    };
    let mut sizes: Vec<u64> = w
        .states()
        .iter()
        .filter_map(|s| s.cosigned.as_ref().map(|(n, _)| *n))
        .filter(|n| *n >= revision && *n <= head)
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    let quorate = sizes.iter().copied().find(|n| {
        let set: std::collections::BTreeSet<usize> = w.lines_for(*n).into_iter().map(|(i, _)| i).collect();
        w.policy.quorum_met(&set)
    });
    quorate.or(sizes.first().copied()).unwrap_or(head)
}

/// The `c2sp.org/tlog-proof@v1` text proving the event at `revision` in the tree of `size`,
/// against its checkpoint with the cosignatures gathered for that size.
pub fn tlog_proof(ledger: &Ledger, revision: u64, size: u64) -> Result<String, LedgerError> {
    let p = inclusion(ledger, revision, size)?;
    let c = checkpoint(ledger, size)?;
    Ok(crate::tlog::proof::encode(revision - 1, &p.hashes, &c.note))
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
    let size = ledger.read_on_runtime(|p| p.head().revision);
    tiles::hash_tile(&read_tree(ledger), size, path)
}

/// The entry bundle at `path` of the acknowledged tree: each event's entry, checked against
/// its leaf in the tree before it is served.
pub fn entry_bundle(ledger: &Ledger, path: &TilePath) -> Result<Vec<u8>, TileError> {
    let size = ledger.read_on_runtime(|p| p.head().revision);
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
    if revision == 0 || revision > ledger.read_on_runtime(|p| p.head().revision) {
        return Ok(None);
    }
    let stored = ledger.log().get(revision).map_err(LedgerError::from)?;
    Ok(stored.map(|mut s| s.split_off(32.min(s.len()))))
}
