//! The event log: an append-only sequence of hash-chained records.
//!
//! [`LogStore`] is the small seam between the ledger and its storage: it knows records,
//! revisions and hashes, never what an event means (indexes over the domain, like release
//! ids, are the projection's). [`SledStore`] is the embedded implementation and
//! [`MemoryStore`] one for tests; a replicated log (e.g. a JetStream stream) would be another,
//! and has to pass the same conformance suite (`store::conformance`).

#[cfg(test)]
mod conformance;
mod jetstream;
mod memory;
mod record;
mod sled_store;
mod tree_check;
pub mod upcast;

use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;

pub use jetstream::{JetStreamConfig, JetStreamStore, DEFAULT_STREAM as DEFAULT_NATS_STREAM, MAX_ATOMIC_BATCH};
pub use memory::MemoryStore;
pub use record::{decode, encode, Damage, Envelope, Hash, StoredEvent, FORMAT_VERSION};
pub use sled_store::{ColdScan, SledStore, COLD_SCAN_CHUNK};
pub use tree_check::{check_tree, TreeCheck};

/// A record ready to be appended: its revision, hash and encoded bytes.
#[derive(Debug, Clone)]
pub struct Record {
    pub revision: u64,
    pub hash: Hash,
    /// `hash || canonical bytes`, as stored.
    pub bytes: Vec<u8>,
}

/// The newest record of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    pub revision: u64,
    pub hash: Hash,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {message}")]
    Io {
        message: String,
        /// The storage engine's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("append at revision {got} does not follow head revision {head}")]
    OutOfOrder { head: u64, got: u64 },
    /// The log's head is not the one the appender expected: another append got there first.
    #[error(
        "the log's head is revision {} ({}), not the expected revision {} ({}): another append came first",
        .found.revision, .found.hash.to_hex(), .expected.revision, .expected.hash.to_hex()
    )]
    Conflict { expected: Head, found: Head },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

impl StoreError {
    /// A storage failure the store describes itself, without an underlying error.
    pub fn io(message: impl Into<String>) -> Self {
        StoreError::Io {
            message: message.into(),
            source: None,
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Stored records in revision order: `(revision, hash || canonical bytes)`.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + Send + 'a>;

/// Stored records in revision order, as an async stream.
pub type RecordStream<'a> = Pin<Box<dyn Stream<Item = Result<(u64, Vec<u8>), StoreError>> + Send + 'a>>;

/// Durable, ordered storage of encoded records: the seam a new log engine implements.
///
/// It knows records, revisions and hashes, never what an event means. Appends are async:
/// sled does its blocking work on tokio's blocking pool, the in-memory store answers at once,
/// and a networked log (JetStream) awaits a publish. Nothing above the trait may assume an
/// append blocks or is immediate. The trait is used as `Arc<dyn LogStore>` (the ledger, the
/// fold and the tools take any store without being generic), so its futures are boxed.
///
/// Every implementation passes the conformance suite (`store::conformance`).
pub trait LogStore: Send + Sync + 'static {
    /// The newest record, as recorded in the store's metadata.
    fn head(&self) -> Result<Head, StoreError>;

    /// Appends `records` atomically, all of them or none, if and only if the log's head is
    /// still `expected` (revision and hash): [`StoreError::Conflict`] otherwise, and
    /// [`StoreError::OutOfOrder`] if the records do not continue `expected` densely. Of two
    /// appends racing at the same expected head, exactly one succeeds. Resolves to the new
    /// head (`expected` itself for an empty batch).
    ///
    /// An acknowledged append is visible to every later read, but it is durable only once a
    /// later [`LogStore::flush`] resolves `Ok`: until then a crash may lose it (never a part
    /// of it, and never an earlier flushed record). Tell nobody about a write before that.
    fn append(&self, records: Vec<Record>, expected: Head) -> BoxFuture<'_, Result<Head, StoreError>>;

    /// Resolves once everything appended so far is on stable storage: after `Ok`, those
    /// records survive a crash and are read back, in order, by a reopened store.
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// [`LogStore::flush`], and also whatever the store keeps beside the log for its next
    /// start (a JetStream node's local copy of the stream, which its appends do not wait
    /// for): called at shutdown and before a snapshot is written. By default, a flush.
    fn flush_all(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.flush()
    }

    /// After a failed append or flush: makes the store take writes again if its storage
    /// does. `Ok` means a write reached stable storage; what the store then holds is what
    /// survived the failure (records appended before it may or may not be there). Any log
    /// must offer this (a file store reopens, a networked one reconnects); by default, a
    /// flush: for stores that recover from a failed write by themselves.
    fn recover(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.flush()
    }

    /// The raw stored values from `from` (inclusive) on, in revision order, read on the
    /// calling thread (for the fold, which runs on its own thread).
    fn scan(&self, from: u64) -> RecordIter<'_>;

    /// The raw stored values from `from` to `to` (both inclusive; `None`: to the end), as a
    /// stream. By default [`LogStore::scan`] wrapped, for stores whose reads do not block for
    /// long; a networked store reads in pages.
    fn read_range(&self, from: u64, to: Option<u64>) -> RecordStream<'_> {
        let to = to.unwrap_or(u64::MAX);
        let records = self
            .scan(from)
            .take_while(move |r| r.as_ref().map_or(true, |(revision, _)| *revision <= to));
        Box::pin(futures_util::stream::iter(records))
    }

    /// One raw stored value.
    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Rewrites what the store derives from its records (the head metadata, the transparency
    /// log leaves) from the records themselves, `head` being the last good one.
    fn rebuild_derived(&self, head: Head) -> Result<(), StoreError>;

    /// The Merkle tree over the stored records ([`crate::tlog`]; it may run ahead of what is
    /// flushed). Any log offers it: it is a pure function of the records, so a store that
    /// keeps no leaves of its own builds it in memory from a scan when it opens and pushes
    /// each appended record's leaf (as [`MemoryStore`] does); sled also caches the leaves on
    /// disk so that opening a large log does not hash every event again.
    fn tree(&self) -> &crate::tlog::TreeLock;

    /// For a log that others append to too (a JetStream stream shared by several nodes): the
    /// head of what this store has read, announced each time it moves, so that the ledger
    /// applies records it did not write. `None` (the default) for a log only this process
    /// writes.
    fn watch_head(&self) -> Option<tokio::sync::watch::Receiver<Head>> {
        None
    }

    /// Most records one [`LogStore::append`] keeps atomic (a JetStream atomic batch holds at
    /// most 1000 messages); the ledger's writer never appends more at once.
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    /// Largest record, in bytes, the store takes (a NATS server's `max_payload`); the
    /// writer refuses a bigger event as bad input, naming its size.
    fn max_record_bytes(&self) -> usize {
        usize::MAX
    }

    /// Why the log would not take a write now, as far as a background check of the store
    /// knows without writing (a JetStream stream without a leader or quorum); `None` (the
    /// default) when nothing is known to be wrong. Health and readiness report it.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Keeps a scheduled release's sealed content beside the log (not in it) under its
    /// commitment, until its reveal: durable once this resolves `Ok`. A store that cannot
    /// keep it refuses (the default), and scheduling is refused with it.
    fn seal(&self, commitment: &str, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = (commitment, bytes);
        Box::pin(async { Err(no_sealed()) })
    }

    /// The sealed content kept under `commitment`, if any.
    fn sealed(&self, commitment: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let _ = commitment;
        Box::pin(async { Ok(None) })
    }

    /// Drops the sealed content kept under `commitment` (revealed or withdrawn).
    fn unseal(&self, commitment: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = commitment;
        Box::pin(async { Ok(()) })
    }
}

/// The refusal of a store that keeps no sealed releases.
pub fn no_sealed() -> StoreError {
    StoreError::io("this store keeps no scheduled releases (use the embedded sled store)")
}
