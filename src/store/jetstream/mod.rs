//! The log on a NATS JetStream stream: replicated by the NATS servers (Raft), shared by every
//! tradeledger node that follows it.
//!
//! Stream sequence = revision: the stream holds our records only (one subject,
//! `<stream>.events`, no deletes, no limits that drop records), so record `n` is message `n`.
//!
//! - **Writes** ([`LogStore::append`]) publish the records as one atomic batch (ADR-50: every
//!   message carries `Nats-Batch-Id` and `Nats-Batch-Sequence`, the last `Nats-Batch-Commit`);
//!   the first message carries `Nats-Expected-Last-Sequence: expected.revision`, so of two
//!   nodes appending at the same head exactly one wins and the other gets
//!   [`StoreError::Conflict`]. Each message carries `Nats-Msg-Id: <revision>-<hash>`: unique
//!   per record, so JetStream's deduplication never drops a record of a batch that its
//!   expected sequence accepted. Idempotency of releases is the ledger's (its release index),
//!   not the dedup window's. A batch holds at most [`MAX_ATOMIC_BATCH`] messages (the
//!   server's limit): a longer append is published as consecutive batches, each atomic, and
//!   a failure between two of them leaves the first ones in the log (reported as an error,
//!   like a sled flush that failed after the write). The ledger's writer never asks for more
//!   than [`LogStore::max_batch`] records at once, so its groups stay atomic.
//! - **Reads** (`head`, `scan`, `get`, `tree`) are served from this node's copy of the
//!   stream (a [`SledStore`] under the data directory, checked against the stream at start;
//!   a [`MemoryStore`] without one) that a follower task fills in sequence order from an
//!   ordered push consumer. An append returns only once that copy holds the records it published
//!   (read-your-writes on this node); records published by other nodes arrive the same way
//!   and are announced through [`LogStore::watch_head`].
//! - **Durability**: JetStream acknowledges a batch once a quorum of the stream's replicas
//!   stored it, so [`LogStore::flush`] has nothing left to do. Every wait on NATS is bounded by
//!   the configured timeout: without a quorum, appends fail with [`StoreError::Io`] and the
//!   ledger's writer refuses writes until [`LogStore::recover`] reaches the stream again.
//! - **Readiness**: a probe asks for the stream's info every [`PROBE_EVERY`]; while it gets
//!   no answer within the timeout, or a stream without a leader, [`LogStore::unavailable`]
//!   says so and `/readyz` answers 503, on a node that is not writing too. So it does while
//!   the copy refuses the follower's writes (a full disk): the node falls behind the stream.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, ErrorCode};
use async_nats::{HeaderMap, Request};
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;

use super::{BoxFuture, Hash, Head, LogStore, MemoryStore, Record, RecordIter, SledStore, StoreError};

/// Most messages the server takes in one atomic batch.
pub const MAX_ATOMIC_BATCH: usize = 1000;

/// Default name of the stream.
pub const DEFAULT_STREAM: &str = "TRADELEDGER";

/// Tries to find the stream at start-up, half a second apart, while the servers do not answer.
const START_TRIES: u32 = 10;

/// Default bound on every wait on NATS.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an idle node asks the stream whether it answers (has a leader and a quorum), so
/// that `/readyz` reports a lost quorum without waiting for a write to fail. Each probe waits
/// at most the configured timeout.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How to reach the stream.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Server URLs, comma-separated.
    pub urls: String,
    pub stream: String,
    pub replicas: usize,
    /// A NATS credentials file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    pub token: Option<String>,
    /// Bound on every wait on NATS (connect, publish acknowledgement, API request, the
    /// follower catching up with an acknowledged write).
    pub timeout: Duration,
}

impl JetStreamConfig {
    pub fn new(urls: &str, stream: &str) -> Self {
        JetStreamConfig {
            urls: urls.to_owned(),
            stream: stream.to_owned(),
            replicas: 1,
            creds: None,
            token: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A [`LogStore`] over a JetStream stream; see the module docs.
pub struct JetStreamStore {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    subject: String,
    timeout: Duration,
    /// The stream as far as the follower has read it: this node's copy, in a sled store
    /// under the data directory (see [`JetStreamStore::connect`]) or in memory.
    mirror: Arc<dyn LogStore>,
    head: watch::Receiver<Head>,
    /// Why the follower stopped or last failed, for error messages.
    follower_error: Arc<Mutex<Option<String>>>,
    /// Why the copy refused the follower's last write (a full disk, say); `None` once it
    /// takes one. Readiness reports it: the node falls behind the stream meanwhile.
    copy_failure: Arc<Mutex<Option<String>>>,
    /// Tells the follower to make its consumer again: a wait for it timed out (a consumer
    /// on a server that went away is otherwise noticed only after missed heartbeats).
    kick: Arc<tokio::sync::Notify>,
    follower: tokio::task::JoinHandle<()>,
    /// Why the last probe found the stream not answering; `None` while it answers.
    probe_failure: Arc<Mutex<Option<String>>>,
    /// Appends acknowledged so far: a probe that failed while an append succeeded is stale.
    appended: Arc<AtomicU64>,
    probe: tokio::task::JoinHandle<()>,
    /// The largest message the servers take.
    max_payload: usize,
    /// The key-value bucket that keeps scheduled releases' sealed content beside the
    /// stream, opened (or created, with the stream's replicas) at its first use.
    sealed: tokio::sync::OnceCell<jetstream::kv::Store>,
}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        self.follower.abort();
        self.probe.abort();
    }
}

fn io(what: impl std::fmt::Display) -> StoreError {
    StoreError::io(what.to_string())
}

mod config;
mod connection;
mod copy;
mod feed;
mod follower;
mod probe;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use config::*;
pub use connection::Connection;
use connection::*;
use copy::*;
pub use feed::Feed;
use feed::*;
use follower::*;
use probe::*;

impl JetStreamStore {
    /// The bucket of sealed releases, `<stream>_SEALED`, with the stream's replicas.
    async fn sealed_bucket(&self) -> Result<&jetstream::kv::Store, StoreError> {
        self.sealed
            .get_or_try_init(|| async {
                let bucket = format!("{}_SEALED", self.stream);
                match self.js.get_key_value(&bucket).await {
                    Ok(kv) => return Ok(kv),
                    Err(e) if e.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {}
                    Err(e) => return Err(io(format!("opening the bucket {bucket}: {e}"))),
                }
                let mut stream = self
                    .js
                    .get_stream(&self.stream)
                    .await
                    .map_err(|e| io(format!("reading the JetStream stream {}: {e}", self.stream)))?;
                let replicas = stream
                    .info()
                    .await
                    .map_err(|e| io(format!("reading the JetStream stream {}: {e}", self.stream)))?
                    .config
                    .num_replicas;
                self.js
                    .create_key_value(jetstream::kv::Config {
                        bucket: bucket.clone(),
                        description: "tradeledger: scheduled releases' sealed content until their reveal".into(),
                        history: 1,
                        num_replicas: replicas,
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| io(format!("creating the bucket {bucket}: {e}")))
            })
            .await
    }

    /// Connects, creates the stream if it is missing (checks it otherwise), and checks this
    /// node's copy of it at `copy` (`None`: the copy is kept in memory). The copy is a sled
    /// store that the follower appends to without waiting for the disk (the stream is the
    /// durable log; the copy only spares a restarted node the download of what it had
    /// already read). It is kept when the stream holds its head record (same revision, same
    /// hash, so by the hash chain the same log up to there); otherwise (the stream was
    /// replaced, is shorter, or the copy does not open) it is emptied, with a warning.
    pub async fn connect(config: &JetStreamConfig, copy: Option<&Path>) -> Result<Connection, StoreError> {
        let timeout = config.timeout;
        let subject = format!("{}.events", config.stream);
        let mut options = async_nats::ConnectOptions::new()
            .name("tradeledger")
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            // Reconnect for ever: a node outlives a NATS outage and writes resume after it.
            .max_reconnects(None);
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let Some(creds) = &config.creds {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| io(format!("reading the NATS credentials file {}: {e}", creds.display())))?;
        }
        let urls: Vec<async_nats::ServerAddr> = config
            .urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| u.parse().map_err(|e| io(format!("--nats-url: `{u}`: {e}"))))
            .collect::<Result<_, _>>()?;
        if urls.is_empty() {
            return Err(io("--nats-url: no server URL given"));
        }
        let client = tokio::time::timeout(timeout, options.connect(urls))
            .await
            .map_err(|_| {
                io(format!(
                    "connecting to NATS at {}: no answer within {timeout:?}",
                    config.urls
                ))
            })?
            .map_err(|e| io(format!("connecting to NATS at {}: {e}", config.urls)))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(timeout);

        let want = wanted_config(config, &subject);
        // A cluster that is electing its leaders (just started, a server just back) does not
        // answer at once: a few tries before giving up.
        let mut tries = 0;
        let found = loop {
            tries += 1;
            match js.get_stream(&config.stream).await {
                Err(e)
                    if tries < START_TRIES && matches!(e.kind(), jetstream::context::GetStreamErrorKind::Request) =>
                {
                    tracing::warn!(error = %e, "the JetStream stream does not answer yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => break other,
            }
        };
        let mut stream = match found {
            Ok(stream) => stream,
            Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                tracing::info!(stream = %config.stream, replicas = config.replicas, "creating the JetStream stream");
                js.create_stream(want.clone())
                    .await
                    .map_err(|e| io(format!("creating the JetStream stream {}: {e}", config.stream)))?
            }
            Err(e) => return Err(io(format!("reading the JetStream stream {}: {e}", config.stream))),
        };
        let mut info = stream
            .info()
            .await
            .map_err(|e| io(format!("reading the JetStream stream {}: {e}", config.stream)))?
            .clone();
        // A replicated stream just created (or a cluster just started) elects its leader
        // after it answers; until then a publish gets "no responders". Wait for the leader
        // as for the stream itself, then go on: the readiness probe reports one still missing.
        let mut tries = 0;
        while leaderless(&info) && tries < START_TRIES {
            tries += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok(fresh) = stream.info().await {
                info = fresh.clone();
            }
        }
        if leaderless(&info) {
            tracing::warn!(stream = %config.stream, "the JetStream stream has no leader yet; writes wait for one");
        }
        if let Some(wrong) = config_mismatch(&info.config, &want) {
            return Err(io(format!(
                "the JetStream stream {} does not fit a tradeledger log: {wrong}",
                config.stream
            )));
        }
        let state = &info.state;
        if state.messages != state.last_sequence || (state.messages > 0 && state.first_sequence != 1) {
            return Err(io(format!(
                "the JetStream stream {} has gaps (messages {}, sequences {} to {}): its sequence cannot be the revision",
                config.stream, state.messages, state.first_sequence, state.last_sequence
            )));
        }
        let last = state.last_sequence;
        let local = match copy {
            Some(path) => check_copy(&stream, path, last).await?,
            None => Head::default(),
        };
        Ok(Connection {
            max_payload: client.server_info().max_payload,
            client,
            js,
            stream,
            name: config.stream.clone(),
            subject,
            timeout,
            last,
            copy: copy.map(Path::to_owned),
            local,
        })
    }

    /// The largest record the servers take (their `max_payload`, less room for headers).
    pub fn max_record(&self) -> usize {
        self.max_payload.saturating_sub(1024)
    }

    /// Waits until the copy holds `revision`, for as long as it keeps making progress
    /// within the timeout (reading a long stream at start-up takes longer than one timeout).
    #[cfg(test)]
    async fn wait_for_progress(&self, revision: u64) -> Result<(), StoreError> {
        let mut rx = self.head.clone();
        loop {
            let seen = rx.borrow_and_update().revision;
            if seen >= revision {
                return Ok(());
            }
            match tokio::time::timeout(self.timeout, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(io(format!(
                        "reading the JetStream stream {}: stuck at revision {seen} of {revision} for {:?}{}",
                        self.stream,
                        self.timeout,
                        self.follower_problem()
                    )))
                }
            }
        }
    }

    /// Waits (at most the timeout) until the copy holds `revision`.
    async fn wait_for(&self, revision: u64) -> Result<(), StoreError> {
        let mut rx = self.head.clone();
        let waited = tokio::time::timeout(self.timeout, rx.wait_for(|h| h.revision >= revision)).await;
        if waited.is_err() {
            self.kick.notify_one();
        }
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(io(format!(
                "this node's copy of the JetStream stream {} did not reach revision {revision} within {:?} \
                 (it is at {}){}",
                self.stream,
                self.timeout,
                self.mirror_head().revision,
                self.follower_problem()
            ))),
        }
    }

    fn follower_problem(&self) -> String {
        match &*self.follower_error.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => format!(": {e}"),
            None => String::new(),
        }
    }

    fn mirror_head(&self) -> Head {
        *self.head.borrow()
    }

    /// The stream's last sequence, from the server.
    async fn last_sequence(&self) -> Result<u64, StoreError> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| io(format!("reading the JetStream stream {}: {e}", self.stream)))?;
        Ok(stream.cached_info().state.last_sequence)
    }

    /// A conflict: the stream's head is not `expected`. Reports the head this node's copy has
    /// once it has caught up with the stream (with its last sequence `last`, when known).
    async fn conflict(&self, expected: Head, last: Option<u64>) -> StoreError {
        let last = match last {
            Some(last) => last,
            None => match self.last_sequence().await {
                Ok(last) => last,
                Err(e) => return e,
            },
        };
        if let Err(e) = self.wait_for(last).await {
            return e;
        }
        StoreError::Conflict {
            expected,
            found: self.mirror_head(),
        }
    }

    /// Publishes `records` as one atomic batch whose first message expects the stream's last
    /// sequence to be `after`. Returns the sequence of the last message.
    async fn publish_batch(&self, records: &[Record], after: u64) -> Result<u64, PublishError> {
        let batch_id = uuid::Uuid::new_v4().simple().to_string();
        let n = records.len();
        for (i, record) in records.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            headers.insert(
                "Nats-Msg-Id",
                format!("{}-{}", record.revision, record.hash.to_hex()).as_str(),
            );
            if i == 0 {
                headers.insert("Nats-Expected-Last-Sequence", after.to_string().as_str());
            }
            let last = i + 1 == n;
            if last {
                headers.insert("Nats-Batch-Commit", "1");
            }
            let payload = record.bytes.clone();
            if i == 0 || last {
                // The first message is acknowledged too (flow control, and an early error
                // for a wrong expected sequence); the commit's acknowledgement is the batch's.
                let request = Request::new()
                    .headers(headers)
                    .payload(payload.into())
                    .timeout(Some(self.timeout));
                let response = self
                    .client
                    .send_request(self.subject.clone(), request)
                    .await
                    .map_err(|e| PublishError::Other(format!("publishing to the JetStream stream: {e}")))?;
                if response.payload.is_empty() && !last {
                    continue;
                }
                let answer: jetstream::response::Response<Ack> = serde_json::from_slice(&response.payload)
                    .map_err(|e| PublishError::Other(format!("the JetStream acknowledgement does not decode: {e}")))?;
                match answer {
                    jetstream::response::Response::Err { error } => {
                        return Err(if error.error_code() == ErrorCode::STREAM_WRONG_LAST_SEQUENCE {
                            // "wrong last sequence: N"
                            let text = error.to_string();
                            let last = text
                                .split("wrong last sequence: ")
                                .nth(1)
                                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
                            PublishError::WrongLastSequence(last)
                        } else {
                            PublishError::Other(format!("the JetStream stream refused the write: {error}"))
                        });
                    }
                    jetstream::response::Response::Ok(ack) if last => {
                        if ack.duplicate {
                            return Err(PublishError::Other(
                                "the JetStream stream took the write as a duplicate".into(),
                            ));
                        }
                        return Ok(ack.sequence);
                    }
                    jetstream::response::Response::Ok(_) => {}
                }
            } else {
                self.client
                    .publish_with_headers(self.subject.clone(), headers, payload.into())
                    .await
                    .map_err(|e| PublishError::Other(format!("publishing to the JetStream stream: {e}")))?;
            }
        }
        Err(PublishError::Other("an empty batch".into()))
    }

    async fn append_records(&self, records: Vec<Record>, expected: Head) -> Result<Head, StoreError> {
        // The hash of the expected head is checked here (the stream checks the sequence only).
        self.wait_for(expected.revision).await?;
        let hash_at = |revision: u64| -> Result<Hash, StoreError> {
            if revision == 0 {
                return Ok(Hash::GENESIS);
            }
            let bytes = self.mirror.get(revision)?.unwrap_or_default();
            Ok(bytes
                .get(..32)
                .and_then(|h| h.try_into().ok())
                .map(Hash)
                .unwrap_or_default())
        };
        if hash_at(expected.revision)? != expected.hash {
            return Err(StoreError::Conflict {
                expected,
                found: self.mirror_head(),
            });
        }
        if records.is_empty() {
            let found = self.mirror_head();
            return if found == expected {
                Ok(expected)
            } else {
                Err(self.conflict(expected, None).await)
            };
        }
        for (revision, r) in (expected.revision + 1..).zip(&records) {
            if r.revision != revision {
                return Err(StoreError::OutOfOrder {
                    head: expected.revision,
                    got: r.revision,
                });
            }
        }
        if let Some(r) = records.iter().find(|r| r.bytes.len() > self.max_record()) {
            return Err(io(format!(
                "revision {}: the record is {} bytes, more than the NATS servers take ({} bytes: their max_payload less headers)",
                r.revision,
                r.bytes.len(),
                self.max_record()
            )));
        }
        let mut after = expected.revision;
        for (i, chunk) in records.chunks(MAX_ATOMIC_BATCH).enumerate() {
            match self.publish_batch(chunk, after).await {
                Ok(sequence) if sequence == after + chunk.len() as u64 => after = sequence,
                Ok(sequence) => {
                    return Err(io(format!(
                        "the JetStream stream stored the batch after revision {after} at sequence {sequence}, \
                         not {}",
                        after + chunk.len() as u64
                    )))
                }
                Err(PublishError::WrongLastSequence(last)) if i == 0 => {
                    return Err(self.conflict(expected, last).await)
                }
                Err(PublishError::WrongLastSequence(_)) => {
                    return Err(io(format!(
                        "another write came between two batches of one append; revisions up to {after} are stored"
                    )))
                }
                Err(PublishError::Other(e)) if i == 0 => return Err(io(e)),
                Err(PublishError::Other(e)) => {
                    return Err(io(format!("{e}; revisions up to {after} are stored")));
                }
            }
        }
        // The stream took a write: whatever a probe found before is over.
        self.appended.fetch_add(1, Ordering::AcqRel);
        *self.probe_failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
        // Read-your-writes: answer once this node's copy holds what was published.
        self.wait_for(after).await?;
        let last = records.last().expect("not empty");
        if hash_at(after)? != last.hash {
            return Err(io(format!(
                "revision {after} of the JetStream stream is not the record this node published"
            )));
        }
        Ok(Head {
            revision: after,
            hash: last.hash,
        })
    }
}

impl LogStore for JetStreamStore {
    fn head(&self) -> Result<Head, StoreError> {
        Ok(self.mirror_head())
    }

    fn append(&self, records: Vec<Record>, expected: Head) -> BoxFuture<'_, Result<Head, StoreError>> {
        Box::pin(self.append_records(records, expected))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // Acknowledged appends are on a quorum of the replicas already.
        Box::pin(async { Ok(()) })
    }

    fn flush_all(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // The copy, for the next start (the follower stores it without waiting for the disk),
        // once it holds all the node has served: a copy reopened after a failed write may be
        // fetching again what it lost, and a snapshot must not cover more than it holds.
        Box::pin(async move {
            let served = self.mirror_head().revision;
            let deadline = tokio::time::Instant::now() + self.timeout;
            loop {
                let held = self.mirror.head()?.revision;
                if held >= served {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(io(format!(
                        "this node's copy of the JetStream stream {} holds revision {held}, behind the revision \
                         {served} the node serves, after {:?}{}",
                        self.stream,
                        self.timeout,
                        self.follower_problem()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.mirror.flush().await
        })
    }

    fn recover(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            // The stream answers through its leader: it does once a quorum is back.
            let last = self.last_sequence().await?;
            self.wait_for(last).await
        })
    }

    fn scan(&self, from: u64) -> RecordIter<'_> {
        // Up to the head announced when the scan starts: the follower stores a batch in the
        // copy just before it announces it, and a reader must not see a log longer than the
        // head it is told (a verification would call that damage).
        let upto = self.mirror_head().revision;
        Box::new(
            self.mirror
                .scan(from)
                .take_while(move |r| r.as_ref().map_or(true, |(revision, _)| *revision <= upto)),
        )
    }

    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if revision > self.mirror_head().revision {
            return Ok(None);
        }
        self.mirror.get(revision)
    }

    fn rebuild_derived(&self, head: Head) -> Result<(), StoreError> {
        self.mirror.rebuild_derived(head)
    }

    fn tree(&self) -> &crate::tlog::TreeLock {
        self.mirror.tree()
    }

    fn watch_head(&self) -> Option<watch::Receiver<Head>> {
        Some(self.head.clone())
    }

    fn max_batch(&self) -> usize {
        MAX_ATOMIC_BATCH
    }

    fn seal(&self, commitment: &str, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = commitment.to_owned();
        Box::pin(async move {
            let kv = self.sealed_bucket().await?;
            tokio::time::timeout(self.timeout, kv.put(&key, bytes.into()))
                .await
                .map_err(|_| io(format!("sealing {key}: no answer within {:?}", self.timeout)))?
                .map_err(|e| io(format!("sealing {key}: {e}")))?;
            Ok(())
        })
    }

    fn sealed(&self, commitment: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, StoreError>> {
        let key = commitment.to_owned();
        Box::pin(async move {
            let kv = self.sealed_bucket().await?;
            let value = tokio::time::timeout(self.timeout, kv.get(&key))
                .await
                .map_err(|_| io(format!("reading sealed {key}: no answer within {:?}", self.timeout)))?
                .map_err(|e| io(format!("reading sealed {key}: {e}")))?;
            Ok(value.map(|b| b.to_vec()))
        })
    }

    fn unseal(&self, commitment: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = commitment.to_owned();
        Box::pin(async move {
            let kv = self.sealed_bucket().await?;
            tokio::time::timeout(self.timeout, kv.purge(&key))
                .await
                .map_err(|_| io(format!("dropping sealed {key}: no answer within {:?}", self.timeout)))?
                .map_err(|e| io(format!("dropping sealed {key}: {e}")))?;
            Ok(())
        })
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record()
    }

    fn unavailable(&self) -> Option<String> {
        let probe = self
            .probe_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        probe.or_else(|| self.copy_failure.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}
