//! The transparency log's tree checked against the events it is derived from.

use crate::tlog::{leaf_of_record, MerkleTree, Node};

use super::{Damage, LogStore, StoreError};

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
    let mut prev = super::Hash::GENESIS;
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
        match super::decode(revision, &bytes, &prev) {
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
