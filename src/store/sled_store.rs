use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{BoxFuture, Hash, Head, LogStore, Record, RecordIter, StoreError};
use crate::tlog::{leaf_of_record, MerkleTree, Node, TreeLock};

const HEAD_KEY: &[u8] = b"head";

/// Longest wait for sled's file lock to be let go by an earlier handle of this same process.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The event log in sled: `events` (big-endian revision -> `hash || canonical bytes`),
/// `meta` (`head` -> revision || hash) and `tlog` (big-endian revision -> the Merkle leaf hash
/// of its event, see [`crate::tlog`]). One append is one transaction over the three trees.
/// (Stores written before the release index moved to the projection also hold a `releases`
/// tree, no longer read or written.)
///
/// Clones share one set of handles, which [`LogStore::recover`] replaces after a storage
/// failure: sled 0.34 keeps the first I/O error it meets and fails every later write and
/// flush with it until the store is opened again.
#[derive(Clone)]
pub struct SledStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// `None` for a temporary store, which cannot be opened again.
    path: Option<PathBuf>,
    /// `None` only while [`LogStore::recover`] reopens the store.
    handles: RwLock<Option<Handles>>,
    /// The Merkle tree over `tlog`'s leaves, built at open and again after a reopen.
    tree: TreeLock,
}

#[derive(Clone)]
struct Handles {
    db: sled::Db,
    events: sled::Tree,
    meta: sled::Tree,
    tlog: sled::Tree,
    /// Scheduled releases' sealed content, by commitment, until their reveal.
    sealed: sled::Tree,
}

impl Handles {
    fn new(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Handles {
            events: db.open_tree(EVENTS)?,
            meta: db.open_tree("meta")?,
            tlog: db.open_tree("tlog")?,
            sealed: db.open_tree("sealed")?,
            db,
        })
    }
}

/// True for sled's refusal to open a store whose file lock is held.
fn is_lock_conflict(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens the sled store at `path`, waiting (at most [`LOCK_WAIT`]) for sled's file lock.
///
/// Dropping a `sled::Db` does not release that lock at once: sled's I/O threads keep a
/// reference to the open file until the task that wrote or truncated it returns, a moment
/// after whoever waited for it was woken. A store closed and reopened in one process (the
/// start-up scan's handles, then the server's; a reopen after a storage failure) can
/// therefore meet its own lock. The command line holds `DATA_DIR/lock` for the whole
/// process, so a conflict there can only come from such a lingering handle, and waiting for
/// it is safe; any other error is returned at once.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut attempts = 0u32;
    loop {
        match SledStore::config(path).open() {
            Ok(db) => {
                if attempts > 0 {
                    tracing::info!(
                        path = %path.display(),
                        attempts,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "sled's file lock was still held by an earlier handle of this process; opened after waiting"
                    );
                }
                return Ok(db);
            }
            Err(e) if is_lock_conflict(&e) && started.elapsed() < LOCK_WAIT => {
                attempts += 1;
                tracing::debug!(path = %path.display(), attempts, "sled's file lock is held; waiting");
                std::thread::sleep(pause.min(LOCK_WAIT.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store at `path`; see [`open_db`] for the wait on sled's lock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::from_handles(Some(path.to_owned()), Handles::new(open_db(path)?)?)
    }

    /// The head of the (closed) store at `path`, read without loading its Merkle leaves;
    /// the empty head when there is no store there.
    pub fn head_at(path: &Path) -> Result<Head, StoreError> {
        if !path.exists() {
            return Ok(Head::default());
        }
        let db = open_db(path)?;
        match db.open_tree("meta")?.get(HEAD_KEY)? {
            Some(bytes) => decode_head(&bytes),
            None => Ok(Head::default()),
        }
    }

    // The projection keeps everything readers need in memory and the log is read in full only
    // at start-up, so sled's page cache (1 GiB by default) buys little: keep it small.
    fn config(path: &Path) -> sled::Config {
        sled::Config::new().path(path).cache_capacity(64 * 1024 * 1024)
    }

    /// A store that lives only as long as the value (for tests and benchmarks).
    pub fn temporary() -> Result<Self, StoreError> {
        Self::from_handles(None, Handles::new(sled::Config::new().temporary(true).open()?)?)
    }

    fn from_handles(path: Option<PathBuf>, handles: Handles) -> Result<Self, StoreError> {
        let store = SledStore {
            shared: Arc::new(Shared {
                path,
                handles: RwLock::new(Some(handles)),
                tree: Default::default(),
            }),
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
        let h = self.handles()?;
        let head = self.head()?.revision;
        let mut leaves = Vec::new();
        for item in h.tlog.iter() {
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
            h.tlog.apply_batch(batch)?;
            tracing::info!(
                from,
                to = leaves.len(),
                "computed transparency log leaves from the events"
            );
        }
        *self.shared.tree.write().unwrap_or_else(PoisonError::into_inner) = MerkleTree::from_leaves(leaves);
        Ok(())
    }

    /// The current handles (cheap clones); an error while the store is being reopened.
    fn handles(&self) -> Result<Handles, StoreError> {
        self.shared
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::io("the store is being reopened after a storage failure"))
    }

    /// The raw events tree, for tests that tamper with the log on purpose (see
    /// [`crate::testing`]).
    pub(crate) fn raw_events_tree(&self) -> sled::Tree {
        self.handles().expect("the store is open").events
    }

    /// The raw tree of transparency log leaves, for tests that damage it on purpose.
    pub(crate) fn raw_tlog_tree(&self) -> sled::Tree {
        self.handles().expect("the store is open").tlog
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.handles()?.db.flush()?;
        Ok(())
    }

    /// [`LogStore::append`] on the calling thread, for tools and tests that hold a sled
    /// store and do not await (`import --event-log`, the benches); the trait's `append` runs
    /// it on tokio's blocking pool.
    pub fn append_blocking(&self, records: &[Record], expected: Head) -> Result<Head, StoreError> {
        let Some(last) = records.last() else {
            let found = self.head()?;
            return if found == expected {
                Ok(found)
            } else {
                Err(StoreError::Conflict { expected, found })
            };
        };
        let new_head = Head {
            revision: last.revision,
            hash: last.hash,
        };
        let leaves: Vec<Node> = records.iter().map(|r| leaf_of_record(&r.bytes)).collect();
        let h = self.handles()?;
        // Held across the transaction, so that racing appends push their leaves in the order
        // they committed.
        let mut tree = self.shared.tree.write().unwrap_or_else(PoisonError::into_inner);
        let trees = (&h.events, &h.meta, &h.tlog);
        let result = trees.transaction(|(events, meta, tlog)| {
            let head = match meta.get(HEAD_KEY)? {
                Some(b) => decode_head(&b).map_err(ConflictableTransactionError::Abort)?,
                None => Head::default(),
            };
            if head != expected {
                return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                    expected,
                    found: head,
                }));
            }
            for ((revision, r), leaf) in (head.revision + 1..).zip(records).zip(&leaves) {
                if r.revision != revision {
                    return Err(ConflictableTransactionError::Abort(StoreError::OutOfOrder {
                        head: head.revision,
                        got: r.revision,
                    }));
                }
                events.insert(&r.revision.to_be_bytes(), r.bytes.as_slice())?;
                tlog.insert(&r.revision.to_be_bytes(), leaf.as_slice())?;
            }
            meta.insert(HEAD_KEY, encode_head(&new_head).to_vec())?;
            Ok(())
        });
        match result {
            Ok(()) => {
                // The transaction checked the head, so the tree is level with `expected`.
                tree.truncate(expected.revision);
                for leaf in leaves {
                    tree.push(leaf);
                }
                Ok(new_head)
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Closes the handles and opens the store again from what is on disk.
    fn reopen(&self) -> Result<(), StoreError> {
        let Some(path) = &self.shared.path else {
            return Ok(());
        };
        // Ours go first, so that sled can let go of its lock; readers meanwhile get an error.
        drop(self.shared.handles.write().unwrap_or_else(|e| e.into_inner()).take());
        let handles = Handles::new(open_db(path)?)?;
        *self.shared.handles.write().unwrap_or_else(|e| e.into_inner()) = Some(handles);
        // What reached the disk may end before what the tree had taken in.
        self.load_tree()
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
            let opened = open_db(&self.path).and_then(|db| Ok((db.open_tree(EVENTS)?, db)));
            match opened {
                Ok((events, db)) => self.open = Some((db, events.range(self.next.to_be_bytes()..))),
                Err(e) => return Some(Err(e)),
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

/// What a store error says when sled hands back what it never stored (its own checks passed):
/// damage below the event layer, as sled's "Read corrupted data" says when they fail.
const CORRUPT: &str = "the store's files are corrupt";

/// The tree of events: big-endian revision -> stored record.
const EVENTS: &str = "events";

/// One entry of the events tree as `(revision, stored bytes)`.
fn event_record(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(u64, Vec<u8>), StoreError> {
    let (k, v) = item?;
    let key: [u8; 8] = k
        .as_ref()
        .try_into()
        .map_err(|_| StoreError::io(format!("{CORRUPT}: an event key is {} bytes, not 8", k.len())))?;
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
        return Err(StoreError::io(format!(
            "{CORRUPT}: the head record is {} bytes, not 40",
            bytes.len()
        )));
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
        match self.handles()?.meta.get(HEAD_KEY)? {
            Some(bytes) => decode_head(&bytes),
            None => Ok(Head::default()),
        }
    }

    fn append(&self, records: Vec<Record>, expected: Head) -> BoxFuture<'_, Result<Head, StoreError>> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.append_blocking(&records, expected))
                .await
                .map_err(|e| StoreError::io(format!("appending: {e}")))?
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let db = self.handles()?.db;
            db.flush_async().await?;
            Ok(())
        })
    }

    fn seal(&self, commitment: &str, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = commitment.as_bytes().to_vec();
        Box::pin(async move {
            let h = self.handles()?;
            h.sealed.insert(key, bytes)?;
            h.db.flush_async().await?;
            Ok(())
        })
    }

    fn sealed(&self, commitment: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let key = commitment.as_bytes().to_vec();
        Box::pin(async move { Ok(self.handles()?.sealed.get(key)?.map(|v| v.to_vec())) })
    }

    fn unseal(&self, commitment: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = commitment.as_bytes().to_vec();
        Box::pin(async move {
            self.handles()?.sealed.remove(key)?;
            Ok(())
        })
    }

    /// Reopens the store from disk (what was flushed, and whatever sled wrote on its own
    /// since), then rewrites the head record as it is and flushes: only a write that reaches
    /// the disk shows that it takes data again.
    fn recover(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.reopen())
                .await
                .map_err(|e| StoreError::io(format!("reopening the store: {e}")))??;
            let h = self.handles()?;
            if let Some(head) = h.meta.get(HEAD_KEY)? {
                h.meta.insert(HEAD_KEY, head)?;
            }
            h.db.flush_async().await?;
            Ok(())
        })
    }

    fn scan(&self, from: u64) -> RecordIter<'_> {
        match self.handles() {
            Ok(h) => Box::new(h.events.range(from.to_be_bytes()..).map(event_record)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.handles()?.events.get(revision.to_be_bytes())?.map(|v| v.to_vec()))
    }

    fn rebuild_derived(&self, head: Head) -> Result<(), StoreError> {
        let h = self.handles()?;
        h.meta.insert(HEAD_KEY, encode_head(&head).to_vec())?;
        h.tlog.clear()?;
        self.load_tree()?;
        h.db.flush()?;
        Ok(())
    }

    fn tree(&self) -> &TreeLock {
        &self.shared.tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event key or a head record of the wrong length can only be damage that sled's own
    /// checks let through: the error says the files are corrupt, not only what was wrong.
    #[test]
    fn malformed_keys_and_heads_are_reported_as_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree(EVENTS).unwrap().insert([0u8; 9], &[1u8][..]).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let e = store.scan(0).next().expect("an entry").unwrap_err().to_string();
        assert!(
            e.contains("corrupt") && e.contains("event key is 9 bytes, not 8"),
            "{e}"
        );
        let e = decode_head(&[0; 39]).unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("39 bytes, not 40"), "{e}");
    }
}
