//! A log kept in memory: for tests, and as the reference a new store is compared with.

use std::sync::{PoisonError, RwLock};

use super::{BoxFuture, Hash, Head, LogStore, Record, RecordIter, StoreError};
use crate::tlog::{leaf_of_record, MerkleTree, TreeLock};

/// An event log in a vector: nothing survives the value, and every write is "durable" at
/// once. Appends are atomic and dense like sled's.
#[derive(Default)]
pub struct MemoryStore {
    /// `records[i]` is revision `i + 1`, as `hash || canonical bytes`.
    records: RwLock<Vec<Vec<u8>>>,
    tree: TreeLock,
    sealed: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the records after `revision`, as a store reopened from a disk that did not get
    /// them would (for fault-injection tests).
    #[cfg(test)]
    pub(crate) fn truncate(&self, revision: u64) {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        records.truncate(revision as usize);
        let leaves = records.iter().map(|r| leaf_of_record(r)).collect();
        *self.tree.write().unwrap_or_else(PoisonError::into_inner) = MerkleTree::from_leaves(leaves);
    }

    fn records(&self) -> std::sync::RwLockReadGuard<'_, Vec<Vec<u8>>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn head_of(records: &[Vec<u8>]) -> Result<Head, StoreError> {
    match records.last() {
        None => Ok(Head::default()),
        Some(bytes) => Ok(Head {
            revision: records.len() as u64,
            hash: Hash(
                bytes
                    .get(..32)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| StoreError::io("a stored record is shorter than its hash"))?,
            ),
        }),
    }
}

impl LogStore for MemoryStore {
    fn head(&self) -> Result<Head, StoreError> {
        head_of(&self.records())
    }

    fn append(&self, batch: Vec<Record>, expected: Head) -> BoxFuture<'_, Result<Head, StoreError>> {
        Box::pin(async move {
            let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
            let found = head_of(&records)?;
            if found != expected {
                return Err(StoreError::Conflict { expected, found });
            }
            let head = found.revision;
            for (revision, r) in (head + 1..).zip(&batch) {
                if r.revision != revision {
                    return Err(StoreError::OutOfOrder { head, got: r.revision });
                }
            }
            let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
            for r in batch {
                tree.push(leaf_of_record(&r.bytes));
                records.push(r.bytes);
            }
            head_of(&records)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn seal(&self, commitment: &str, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut sealed = self.sealed.lock().unwrap_or_else(PoisonError::into_inner);
        sealed.insert(commitment.to_owned(), bytes);
        Box::pin(async { Ok(()) })
    }

    fn sealed(&self, commitment: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let sealed = self.sealed.lock().unwrap_or_else(PoisonError::into_inner);
        let found = sealed.get(commitment).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn unseal(&self, commitment: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.sealed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(commitment);
        Box::pin(async { Ok(()) })
    }

    fn scan(&self, from: u64) -> RecordIter<'_> {
        // Up to the head at the call: appends after it are not seen, as with sled's
        // iterators. Records are never removed, so each is copied only when it is reached
        // (a whole-log copy up front would double the memory of a JetStream node's start).
        let end = self.records().len() as u64;
        Box::new((from.max(1)..=end).map(move |revision| {
            let records = self.records();
            Ok((revision, records[(revision - 1) as usize].clone()))
        }))
    }

    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let records = self.records();
        Ok(revision.checked_sub(1).and_then(|i| records.get(i as usize)).cloned())
    }

    fn rebuild_derived(&self, _head: Head) -> Result<(), StoreError> {
        let records = self.records();
        let leaves = records.iter().map(|r| leaf_of_record(r)).collect();
        *self.tree.write().unwrap_or_else(PoisonError::into_inner) = MerkleTree::from_leaves(leaves);
        Ok(())
    }

    fn tree(&self) -> &TreeLock {
        &self.tree
    }
}
