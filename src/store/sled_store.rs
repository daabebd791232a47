use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use uuid::Uuid;

use super::{BoxFuture, Hash, Head, LogStore, Record, RecordIter, StoreError};
use crate::tlog::{leaf_of_record, MerkleTree, Node, TreeLock};

const HEAD_KEY: &[u8] = b"head";

/// The event log in sled: `events` (big-endian revision -> `hash || canonical bytes`),
/// `releases` (release id -> big-endian revision), `meta` (`head` -> revision || hash) and
/// `tlog` (big-endian revision -> the Merkle leaf hash of its event, see [`crate::tlog`]).
/// One append is one transaction over the four trees.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    events: sled::Tree,
    releases: sled::Tree,
    meta: sled::Tree,
    tlog: sled::Tree,
    /// The Merkle tree over `tlog`'s leaves, built at open.
    tree: std::sync::Arc<TreeLock>,
}

impl SledStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // The projection keeps everything readers need in memory and the log is read in full
        // only at start-up, so sled's page cache (1 GiB by default) buys little: keep it small.
        Self::from_db(Self::config(path).open()?)
    }

    fn config(path: &Path) -> sled::Config {
        sled::Config::new().path(path).cache_capacity(64 * 1024 * 1024)
    }

    /// A store that lives only as long as the value (for tests and benchmarks).
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let store = SledStore {
            events: db.open_tree(EVENTS)?,
            releases: db.open_tree("releases")?,
            meta: db.open_tree("meta")?,
            tlog: db.open_tree("tlog")?,
            tree: Default::default(),
            db,
        };
        store.load_tree()?;
        Ok(store)
    }

    /// Builds the in-memory Merkle tree from the stored leaves (no event is hashed again),
    /// then brings it level with the head record: leaves missing (a store written before the
    /// transparency log) are computed from their events and stored, and leaves beyond the
    /// head are ignored. When the last leaf does not match the head event, the stored leaves
    /// are not trusted and all are recomputed.
    fn load_tree(&self) -> Result<(), StoreError> {
        let head = self.head()?.revision;
        let mut leaves = Vec::new();
        for item in self.tlog.iter() {
            let (k, v) = item?;
            let expected = leaves.len() as u64 + 1;
            let (Ok(key), Ok(leaf)) = (<[u8; 8]>::try_from(k.as_ref()), <Node>::try_from(v.as_ref())) else {
                break;
            };
            if u64::from_be_bytes(key) != expected || expected > head {
                break;
            }
            leaves.push(leaf);
        }
        if let Some(last) = leaves.last() {
            let at = leaves.len() as u64;
            if self.get(at)?.map(|b| leaf_of_record(&b)).as_ref() != Some(last) {
                tracing::warn!(
                    revision = at,
                    "transparency log leaves do not match the events; recomputing them"
                );
                leaves.clear();
            }
        }
        if (leaves.len() as u64) < head {
            let from = leaves.len() as u64 + 1;
            let mut batch = sled::Batch::default();
            for item in self.scan(from) {
                let (revision, bytes) = item?;
                if revision > head || revision != leaves.len() as u64 + 1 {
                    break;
                }
                let leaf = leaf_of_record(&bytes);
                batch.insert(&revision.to_be_bytes(), &leaf);
                leaves.push(leaf);
            }
            self.tlog.apply_batch(batch)?;
            tracing::info!(
                from,
                to = leaves.len(),
                "computed transparency log leaves from the events"
            );
        }
        *self.tree.write().unwrap_or_else(PoisonError::into_inner) = MerkleTree::from_leaves(leaves);
        Ok(())
    }

    /// The raw events tree, for tests that tamper with the log on purpose.
    pub fn events_tree(&self) -> &sled::Tree {
        &self.events
    }

    /// The raw tree of transparency log leaves, for tests that damage it on purpose.
    pub fn tlog_tree(&self) -> &sled::Tree {
        &self.tlog
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Log bytes read through one sled handle before [`ColdScan`] opens the store afresh.
pub const COLD_SCAN_CHUNK: usize = 128 * 1024 * 1024;

/// Reads the log of the (closed) store at a path, opening it afresh every `chunk` bytes.
///
/// sled 0.34 keeps every page a scan reads in memory for as long as the store stays open:
/// its `cache_capacity` does not bound them (measured: a full scan of a 743 MB log holds
/// 780 MB, with a capacity of 64 MiB or of 256 bytes alike). Closing the store frees them,
/// so reading the log in chunks through short-lived handles bounds what a start-up scan
/// costs to about one chunk. Each reopen takes some 70 ms on a 743 MB log.
pub struct ColdScan {
    path: PathBuf,
    next: u64,
    chunk: usize,
    read: usize,
    open: Option<(sled::Db, sled::Iter)>,
    done: bool,
}

impl ColdScan {
    pub fn new(path: &Path, from: u64, chunk: usize) -> Self {
        ColdScan {
            path: path.to_owned(),
            next: from,
            chunk,
            read: 0,
            open: None,
            done: false,
        }
    }

    fn item(&mut self) -> Option<Result<(u64, Vec<u8>), StoreError>> {
        if self.open.is_none() {
            let db = SledStore::config(&self.path).open();
            let opened = db.and_then(|db| Ok((db.open_tree(EVENTS)?, db)));
            match opened {
                Ok((events, db)) => self.open = Some((db, events.range(self.next.to_be_bytes()..))),
                Err(e) => return Some(Err(e.into())),
            }
            self.read = 0;
        }
        let record = event_record(self.open.as_mut()?.1.next()?);
        if let Ok((revision, bytes)) = &record {
            self.next = revision + 1;
            self.read += bytes.len();
            if self.read >= self.chunk {
                self.open = None;
            }
        }
        Some(record)
    }
}

impl Iterator for ColdScan {
    type Item = Result<(u64, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.item();
        if !matches!(item, Some(Ok(_))) {
            // The end of the log, or an error: either way the scan is over.
            self.done = true;
            self.open = None;
        }
        item
    }
}

/// The tree of events: big-endian revision -> stored record.
const EVENTS: &str = "events";

/// One entry of the events tree as `(revision, stored bytes)`.
fn event_record(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(u64, Vec<u8>), StoreError> {
    let (k, v) = item?;
    let key: [u8; 8] = k
        .as_ref()
        .try_into()
        .map_err(|_| StoreError::Io("event key is not 8 bytes".into()))?;
    Ok((u64::from_be_bytes(key), v.to_vec()))
}

fn encode_head(head: &Head) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&head.revision.to_be_bytes());
    out[8..].copy_from_slice(&head.hash.0);
    out
}

fn decode_head(bytes: &[u8]) -> Result<Head, StoreError> {
    if bytes.len() != 40 {
        return Err(StoreError::Io("head metadata is malformed".into()));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[8..]);
    Ok(Head {
        revision: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
        hash: Hash(hash),
    })
}

impl LogStore for SledStore {
    fn head(&self) -> Result<Head, StoreError> {
        match self.meta.get(HEAD_KEY)? {
            Some(bytes) => decode_head(&bytes),
            None => Ok(Head::default()),
        }
    }

    fn append(&self, records: &[Record]) -> Result<Head, StoreError> {
        let Some(last) = records.last() else {
            return self.head();
        };
        let new_head = Head {
            revision: last.revision,
            hash: last.hash,
        };
        let leaves: Vec<Node> = records.iter().map(|r| leaf_of_record(&r.bytes)).collect();
        let trees = (&self.events, &self.releases, &self.meta, &self.tlog);
        let result = trees.transaction(|(events, releases, meta, tlog)| {
            let head = match meta.get(HEAD_KEY)? {
                Some(b) => decode_head(&b).map_err(ConflictableTransactionError::Abort)?,
                None => Head::default(),
            };
            for ((expected, r), leaf) in (head.revision + 1..).zip(records).zip(&leaves) {
                if r.revision != expected {
                    return Err(ConflictableTransactionError::Abort(StoreError::OutOfOrder {
                        head: head.revision,
                        got: r.revision,
                    }));
                }
                events.insert(&r.revision.to_be_bytes(), r.bytes.as_slice())?;
                tlog.insert(&r.revision.to_be_bytes(), leaf.as_slice())?;
                if let Some(id) = r.release_id {
                    releases.insert(id.as_bytes(), &r.revision.to_be_bytes())?;
                }
            }
            meta.insert(HEAD_KEY, encode_head(&new_head).to_vec())?;
            Ok(())
        });
        match result {
            Ok(()) => {
                let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
                // The writer is the only appender, so the tree is level with the old head.
                tree.truncate(records[0].revision - 1);
                for leaf in leaves {
                    tree.push(leaf);
                }
                Ok(new_head)
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.db.flush_async().await?;
            Ok(())
        })
    }

    fn scan(&self, from: u64) -> RecordIter<'_> {
        Box::new(self.events.range(from.to_be_bytes()..).map(event_record))
    }

    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.events.get(revision.to_be_bytes())?.map(|v| v.to_vec()))
    }

    fn release_revision(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        Ok(self.releases.get(id.as_bytes())?.and_then(|v| {
            let b: [u8; 8] = v.as_ref().try_into().ok()?;
            Some(u64::from_be_bytes(b))
        }))
    }

    fn rebuild_indexes(&self, head: Head, releases: &[(Uuid, u64)]) -> Result<(), StoreError> {
        self.releases.clear()?;
        for (id, rev) in releases {
            self.releases.insert(id.as_bytes(), &rev.to_be_bytes())?;
        }
        self.meta.insert(HEAD_KEY, encode_head(&head).to_vec())?;
        self.tlog.clear()?;
        self.load_tree()?;
        self.db.flush()?;
        Ok(())
    }

    fn tree(&self) -> &TreeLock {
        &self.tree
    }
}
