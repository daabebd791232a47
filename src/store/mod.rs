//! The event log: an append-only sequence of hash-chained records.
//!
//! [`LogStore`] is the small seam between the ledger and its storage. [`SledStore`] is the
//! embedded implementation; a replicated log (e.g. a JetStream stream) would be another.

mod record;
mod sled_store;

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

pub use record::{decode, encode, Damage, Envelope, Hash, StoredEvent, FORMAT_VERSION};
pub use sled_store::{ColdScan, SledStore, COLD_SCAN_CHUNK};

/// A record ready to be appended: its revision, hash and encoded bytes.
#[derive(Debug, Clone)]
pub struct Record {
    pub revision: u64,
    pub hash: Hash,
    pub bytes: Vec<u8>,
    /// Set for `ReleasePublished`, so the store can index release ids.
    pub release_id: Option<Uuid>,
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

/// Durable, ordered storage of encoded records.
pub trait LogStore: Send + Sync + 'static {
    /// The newest record, as recorded in the store's metadata.
    fn head(&self) -> Result<Head, StoreError>;

    /// Appends records atomically: all of them or none. They must continue the head densely.
    /// Not yet durable: call [`LogStore::flush`] before telling anyone.
    fn append(&self, records: &[Record]) -> Result<Head, StoreError>;

    /// Resolves once everything appended so far is on stable storage.
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// After a failed append or flush: makes the store take writes again if its storage
    /// does. `Ok` means a write reached stable storage; what the store then holds is what
    /// survived the failure (records appended before it may or may not be there). By
    /// default, a flush: for stores that recover from a failed write by themselves.
    fn recover(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.flush()
    }

    /// The raw stored values from `from` (inclusive) on, in revision order.
    fn scan(&self, from: u64) -> RecordIter<'_>;

    /// One raw stored value.
    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The revision that recorded release `id`, from the release index.
    fn release_revision(&self, id: Uuid) -> Result<Option<u64>, StoreError>;

    /// Rewrites the release index, head metadata and transparency log leaves from the events
    /// themselves.
    fn rebuild_indexes(&self, head: Head, releases: &[(Uuid, u64)]) -> Result<(), StoreError>;

    /// The Merkle tree over the stored events (it may run ahead of what is acknowledged).
    fn tree(&self) -> &crate::tlog::TreeLock;
}
