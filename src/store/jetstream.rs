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

/// The stream configuration we create, and require of an existing stream.
fn wanted_config(config: &JetStreamConfig, subject: &str) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some("tradeledger event log: sequence = revision".into()),
        subjects: vec![subject.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        discard: stream::DiscardPolicy::New,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        allow_atomic_publish: true,
        ..Default::default()
    }
}

/// What an existing stream has that we cannot use, naming the field; `None` if it fits.
fn config_mismatch(have: &stream::Config, want: &stream::Config) -> Option<String> {
    let mut wrong = Vec::new();
    if have.subjects != want.subjects {
        wrong.push(format!("subjects is {:?}, expected {:?}", have.subjects, want.subjects));
    }
    if have.num_replicas != want.num_replicas {
        wrong.push(format!(
            "replicas is {}, expected {} (--nats-replicas)",
            have.num_replicas, want.num_replicas
        ));
    }
    if have.retention != stream::RetentionPolicy::Limits {
        wrong.push(format!("retention is {:?}, expected Limits", have.retention));
    }
    if have.storage != stream::StorageType::File {
        wrong.push(format!("storage is {:?}, expected File", have.storage));
    }
    if have.max_messages > 0 || have.max_bytes > 0 || have.max_messages_per_subject > 0 || !have.max_age.is_zero() {
        wrong.push("it has limits that drop records (max_msgs, max_bytes, max_msgs_per_subject or max_age)".into());
    }
    if !have.allow_atomic_publish {
        wrong.push("allow_atomic (atomic batch publish) is off".into());
    }
    if !have.deny_delete || !have.deny_purge {
        wrong.push("deny_delete and deny_purge must be on".into());
    }
    if have.mirror.is_some() || have.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        wrong.push("it is a mirror or has sources".into());
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// A publish acknowledgement, single message or batch commit.
#[derive(Debug, Deserialize)]
struct Ack {
    #[serde(rename = "seq")]
    sequence: u64,
    #[serde(default)]
    duplicate: bool,
}

/// Why a publish failed.
enum PublishError {
    /// `Nats-Expected-Last-Sequence` did not hold: the stream's last sequence is another
    /// (the one the server named, when it did).
    WrongLastSequence(Option<u64>),
    Other(String),
}

/// A stream reached and checked, and this node's copy of it checked too, before anything
/// is read: see [`JetStreamStore::connect`] and [`Connection::follow`].
pub struct Connection {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    name: String,
    subject: String,
    timeout: Duration,
    max_payload: usize,
    /// The stream's last sequence when the node connected.
    pub last: u64,
    /// Where the copy is kept (`None`: in memory).
    copy: Option<PathBuf>,
    /// The copy's head: the stream's record at this revision is the copy's.
    pub local: Head,
}

impl Connection {
    /// Empties the copy (it was found damaged): the follower then fetches the whole stream.
    pub async fn discard_copy(&mut self, why: &str) -> Result<(), StoreError> {
        if let Some(path) = &self.copy {
            wipe_copy(path, why).await?;
        }
        self.local = Head::default();
        Ok(())
    }

    /// Opens the copy and starts following the stream from the copy's head. With `feed`,
    /// also returns the records after the head up to [`Connection::last`], handed over as
    /// the follower stores them, so that a start-up fold runs while the stream downloads.
    pub async fn follow(self, feed: bool) -> Result<(JetStreamStore, Option<Feed>), StoreError> {
        let mirror: Arc<dyn LogStore> = match &self.copy {
            Some(path) => {
                let path = path.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || SledStore::open(&path))
                        .await
                        .map_err(|e| io(format!("opening this node's copy of the stream: {e}")))??,
                )
            }
            None => Arc::new(MemoryStore::new()),
        };
        self.follow_into(mirror, feed).await
    }

    /// [`Connection::follow`] with the copy kept in `mirror`, which holds [`Connection::local`].
    pub(super) async fn follow_into(
        self,
        mirror: Arc<dyn LogStore>,
        feed: bool,
    ) -> Result<(JetStreamStore, Option<Feed>), StoreError> {
        let head = mirror.head()?;
        if head != self.local {
            return Err(io(format!(
                "this node's copy of the stream changed while the node started (revision {} instead of {})",
                head.revision, self.local.revision
            )));
        }
        let (feed, fed) = if feed && self.last > head.revision {
            let (sender, receiver) = tokio::sync::mpsc::channel(FEED_QUEUE);
            (Some((self.last, sender)), Some(receiver))
        } else {
            (None, None)
        };
        let (tx, head_rx) = watch::channel(head);
        let follower_error = Arc::new(Mutex::new(None));
        let copy_failure = Arc::new(Mutex::new(None));
        let kick = Arc::new(tokio::sync::Notify::new());
        let follower = tokio::spawn(follow(
            Follower {
                client: self.client.clone(),
                stream: self.stream,
                subject: self.subject.clone(),
                mirror: mirror.clone(),
                tx,
                error: follower_error.clone(),
                copy_failure: copy_failure.clone(),
                kick: kick.clone(),
            },
            feed,
        ));
        let probe_failure = Arc::new(Mutex::new(None));
        let appended = Arc::new(AtomicU64::new(0));
        let probe = tokio::spawn(probe(
            self.js.clone(),
            self.name.clone(),
            self.timeout,
            probe_failure.clone(),
            appended.clone(),
        ));
        let feed = fed.map(|receiver| Feed {
            receiver,
            next: head.revision + 1,
            upto: self.last,
            timeout: self.timeout,
            runtime: tokio::runtime::Handle::current(),
            stream: self.name.clone(),
            follower_error: follower_error.clone(),
            failed: false,
        });
        let store = JetStreamStore {
            probe_failure,
            appended,
            probe,
            max_payload: self.max_payload,
            client: self.client,
            js: self.js,
            stream: self.name,
            subject: self.subject,
            timeout: self.timeout,
            mirror,
            head: head_rx,
            follower_error,
            copy_failure,
            kick,
            follower,
            sealed: tokio::sync::OnceCell::new(),
        };
        Ok((store, feed))
    }
}

/// The follower's end of a [`Feed`]: the last revision it wants, and where to send records.
type FeedSender = (u64, tokio::sync::mpsc::Sender<(u64, Vec<u8>)>);

/// Records the follower hands to the start-up fold at most ahead of it.
const FEED_QUEUE: usize = 64;

/// The records of the stream after the copy's head up to its last sequence at start-up, in
/// order, as the follower stores them in the copy: a blocking iterator (for the fold's
/// reading thread) that fails, naming why, when no record comes within the timeout.
pub struct Feed {
    receiver: tokio::sync::mpsc::Receiver<(u64, Vec<u8>)>,
    next: u64,
    upto: u64,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
    stream: String,
    follower_error: Arc<Mutex<Option<String>>>,
    failed: bool,
}

impl Iterator for Feed {
    type Item = Result<(u64, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next > self.upto {
            return None;
        }
        let (timeout, receiver) = (self.timeout, &mut self.receiver);
        // The timer is made inside the runtime: `block_on` enters it only when polled.
        let got = self
            .runtime
            .block_on(async move { tokio::time::timeout(timeout, receiver.recv()).await });
        match got {
            Ok(Some(record)) if record.0 == self.next => {
                self.next = record.0 + 1;
                return Some(Ok(record));
            }
            // The follower hands each revision once, in order: anything else is a bug.
            Ok(Some(record)) => {
                self.failed = true;
                return Some(Err(io(format!(
                    "reading the JetStream stream {}: revision {} was handed over where {} was due",
                    self.stream, record.0, self.next
                ))));
            }
            _ => {}
        }
        self.failed = true;
        let problem = match &*self.follower_error.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => format!(": {e}"),
            None => String::new(),
        };
        Some(Err(io(format!(
            "reading the JetStream stream {}: stuck at revision {} of {} for {:?}{problem}",
            self.stream,
            self.next - 1,
            self.upto,
            self.timeout
        ))))
    }
}

/// The head of this node's copy of the stream at `path`, if the stream holds the same record
/// there; otherwise the copy is emptied (with a warning naming why) and the head is empty.
async fn check_copy(stream: &stream::Stream, path: &Path, last: u64) -> Result<Head, StoreError> {
    let at = path.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        // sled panics on some damage to its own files: a copy that does not open is replaced.
        std::panic::catch_unwind(|| SledStore::head_at(&at))
            .unwrap_or_else(|_| Err(StoreError::io("the storage engine panicked reading it")))
    })
    .await
    .map_err(|e| io(format!("reading this node's copy of the stream: {e}")))?;
    let head = match read {
        Ok(head) => head,
        Err(e) => {
            wipe_copy(path, &format!("it does not open ({e})")).await?;
            return Ok(Head::default());
        }
    };
    if head.revision == 0 {
        return Ok(head);
    }
    let why = if head.revision > last {
        format!("it holds revision {}, but the stream ends at {last}", head.revision)
    } else {
        match stream.get_raw_message(head.revision).await {
            Ok(m) if m.payload.get(..32) == Some(&head.hash.0[..]) => return Ok(head),
            Ok(_) => format!(
                "its revision {} is not the stream's (another stream under the same name)",
                head.revision
            ),
            Err(e) => {
                return Err(io(format!(
                    "reading revision {} of the JetStream stream to check this node's copy: {e}",
                    head.revision
                )))
            }
        }
    };
    wipe_copy(path, &why).await?;
    Ok(Head::default())
}

/// Removes the copy at `path`, saying why.
async fn wipe_copy(path: &Path, why: &str) -> Result<(), StoreError> {
    tracing::warn!(path = %path.display(), reason = %why, "emptying this node's copy of the JetStream stream: it is fetched again");
    let at = path.to_owned();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&at) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await
    .map_err(|e| io(format!("emptying this node's copy of the stream: {e}")))?
    .map_err(|e| {
        io(format!(
            "emptying this node's copy of the stream at {}: {e}",
            path.display()
        ))
    })
}

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

/// Asks the stream for its info every [`PROBE_EVERY`] (bounded by `timeout`) and keeps in
/// `failure` why it did not answer or has no leader, so that readiness says so on a node that
/// does not write; cleared when it answers again. A probe that overlapped a successful append
/// is not believed.
async fn probe(
    js: jetstream::Context,
    stream: String,
    timeout: Duration,
    failure: Arc<Mutex<Option<String>>>,
    appended: Arc<AtomicU64>,
) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let before = appended.load(Ordering::Acquire);
        let problem = match tokio::time::timeout(timeout, js.get_stream(&stream)).await {
            Err(_) => Some(format!("no answer within {timeout:?} (no leader or no quorum)")),
            Ok(Err(e)) => Some(format!("no answer ({e}; no leader or no quorum)")),
            Ok(Ok(s)) => leaderless(s.cached_info()).then(|| "it has no leader (no quorum)".to_owned()),
        };
        let mut failure = failure.lock().unwrap_or_else(PoisonError::into_inner);
        match problem {
            Some(_) if appended.load(Ordering::Acquire) != before => {}
            Some(problem) => {
                if failure.is_none() {
                    tracing::warn!(stream = %stream, problem = %problem, "the JetStream stream does not answer");
                }
                *failure = Some(format!(
                    "the JetStream stream {stream} does not answer: {problem}; writes would fail until it does \
                     (checked every {} s)",
                    PROBE_EVERY.as_secs()
                ));
            }
            None => {
                if failure.take().is_some() {
                    tracing::info!(stream = %stream, "the JetStream stream answers again");
                }
            }
        }
    }
}

/// Whether a replicated stream has no leader (being elected, or no quorum).
fn leaderless(info: &stream::Info) -> bool {
    info.config.num_replicas > 1
        && info
            .cluster
            .as_ref()
            .is_some_and(|c| c.leader.as_deref().is_none_or(str::is_empty))
}

/// Most messages the follower stores in the copy at once (what has arrived already, up to
/// this many or [`FOLLOW_BATCH_BYTES`]).
const FOLLOW_BATCH: usize = 512;

/// Most payload bytes the follower stores in the copy at once.
const FOLLOW_BATCH_BYTES: usize = 8 << 20;

/// Where a batch of messages ended other than by running out of ready messages.
enum BatchEnd {
    /// The subscription ended: make the consumer again.
    Closed,
    /// A failure, named: make the consumer again after saying so.
    Failed(String),
}

/// What the follower task works with.
struct Follower {
    client: async_nats::Client,
    stream: jetstream::stream::Stream,
    subject: String,
    /// This node's copy of the stream.
    mirror: Arc<dyn LogStore>,
    /// The head announced to the node, sent after each batch the copy stores beyond it.
    tx: watch::Sender<Head>,
    /// Why following last failed, for error messages.
    error: Arc<Mutex<Option<String>>>,
    /// Why the copy last refused a batch, for readiness.
    copy_failure: Arc<Mutex<Option<String>>>,
    /// Make the consumer again.
    kick: Arc<tokio::sync::Notify>,
}

/// How far the follower has come.
struct Progress {
    /// What the copy holds. The head announced on `tx` never goes back, but the copy can: a
    /// copy reopened after a failed write (a full disk) holds only what reached its disk,
    /// and what it lost is fetched again without being announced (or fed) a second time.
    copied: Head,
    /// Where the start-up fold wants records, until it has them all or hangs up.
    feed: Option<FeedSender>,
    /// The last revision handed to the feed.
    fed_upto: u64,
}

/// Reads the stream into `mirror` in sequence order, for as long as the store lives: an
/// ordered push consumer from the copy's head on, made again after any failure. Messages that
/// have arrived are stored in batches. `feed`, if any, gets a copy of each record up to its
/// revision once it is stored.
async fn follow(follower: Follower, feed: Option<FeedSender>) {
    let copied = *follower.tx.borrow();
    let mut progress = Progress {
        copied,
        feed,
        fed_upto: copied.revision,
    };
    loop {
        let Some(mut messages) = follower.consume_from(progress.copied).await else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        loop {
            let first = tokio::select! {
                m = messages.next() => m,
                () = follower.kick.notified() => {
                    follower.set_error(Some("a wait for this node's copy timed out: making the consumer again".into()));
                    break;
                }
            };
            let (records, end) = gather(first, &mut messages, progress.copied);
            if !records.is_empty() && !follower.store(&mut progress, records).await {
                break;
            }
            match end {
                None => {}
                Some(BatchEnd::Closed) => break,
                Some(BatchEnd::Failed(e)) => {
                    follower.set_error(Some(e));
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `first` and the messages that have arrived since (up to [`FOLLOW_BATCH`] or
/// [`FOLLOW_BATCH_BYTES`]) as records continuing `head`, skipping those it already holds;
/// with why the batch ended early, if it did (the records before that are kept).
fn gather<E: std::fmt::Display>(
    first: Option<Result<jetstream::Message, E>>,
    messages: &mut (impl futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin),
    head: Head,
) -> (Vec<Record>, Option<BatchEnd>) {
    let mut records = Vec::new();
    let (mut taken, mut bytes) = (0, 0);
    let mut next = Some(first);
    while let Some(item) = next.take() {
        let message = match item {
            None => return (records, Some(BatchEnd::Closed)),
            Some(Err(e)) => return (records, Some(BatchEnd::Failed(format!("reading: {e}")))),
            Some(Ok(m)) => m,
        };
        taken += 1;
        bytes += message.payload.len();
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => {
                let why = format!("a message without its stream sequence: {e}");
                return (records, Some(BatchEnd::Failed(why)));
            }
        };
        let expected = head.revision + records.len() as u64 + 1;
        if sequence > expected {
            let why = format!("sequence {sequence} follows {}: a gap in the stream", expected - 1);
            return (records, Some(BatchEnd::Failed(why)));
        }
        if sequence == expected {
            // Foreign or damaged records are kept as they are: the ledger checks the hash
            // chain of every record it applies and refuses a broken one.
            let payload = message.payload.to_vec();
            let hash = payload
                .get(..32)
                .and_then(|h| h.try_into().ok())
                .map(Hash)
                .unwrap_or_default();
            records.push(Record {
                revision: sequence,
                hash,
                bytes: payload,
            });
        }
        if taken < FOLLOW_BATCH && bytes < FOLLOW_BATCH_BYTES {
            next = messages.next().now_or_never();
        }
    }
    (records, None)
}

impl Follower {
    fn set_error(&self, e: Option<String>) {
        if let Some(e) = &e {
            tracing::warn!(error = %e, "following the JetStream stream");
        }
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = e;
    }

    fn name(&self) -> &str {
        &self.stream.cached_info().config.name
    }

    /// An ordered push consumer from after `head` on; `None` (the failure said) if there is
    /// none for now.
    async fn consume_from(&self, head: Head) -> Option<consumer::push::Ordered> {
        let config = consumer::push::OrderedConfig {
            deliver_subject: self.client.new_inbox(),
            filter_subject: self.subject.clone(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: head.revision + 1,
            },
            ..Default::default()
        };
        let consumer = match self.stream.create_consumer(config).await {
            Ok(consumer) => consumer,
            Err(e) => {
                self.set_error(Some(format!("creating a consumer: {e}")));
                return None;
            }
        };
        match consumer.messages().await {
            Ok(messages) => Some(messages),
            Err(e) => {
                self.set_error(Some(format!("subscribing: {e}")));
                None
            }
        }
    }

    /// Stores `records` (continuing the copy) in the copy, announces the new head if it is
    /// beyond the announced one, and feeds them. False when the copy refused them: it has
    /// been reopened, and the consumer must be made again from what it holds.
    async fn store(&self, progress: &mut Progress, records: Vec<Record>) -> bool {
        let fed: Vec<(u64, Vec<u8>)> = match &progress.feed {
            Some((upto, _)) => records
                .iter()
                .filter(|r| r.revision > progress.fed_upto && r.revision <= *upto)
                .map(|r| (r.revision, r.bytes.clone()))
                .collect(),
            None => Vec::new(),
        };
        let (first, last) = (records[0].revision, records[records.len() - 1].revision);
        match self.mirror.append(records, progress.copied).await {
            Ok(new_head) => {
                progress.copied = new_head;
                let announced = self.tx.borrow().revision;
                if new_head.revision > announced {
                    self.tx.send_replace(new_head);
                }
                let mut failure = self.copy_failure.lock().unwrap_or_else(PoisonError::into_inner);
                if new_head.revision >= announced && failure.take().is_some() {
                    tracing::info!(stream = %self.name(), revision = new_head.revision, "this node's copy of the stream takes writes again");
                }
            }
            Err(e) => {
                self.copy_refused(progress, e, first, last).await;
                return false;
            }
        }
        if let Some((upto, sender)) = &progress.feed {
            let mut gone = false;
            for record in fed {
                let revision = record.0;
                gone = sender.send(record).await.is_err();
                if gone {
                    break;
                }
                progress.fed_upto = revision;
            }
            if gone || last >= *upto {
                progress.feed = None;
            }
        }
        if self.error.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
            self.set_error(None);
        }
        true
    }

    /// The copy refused sequences `first` to `last`: says so (readiness too), and reopens
    /// it, since sled keeps its first I/O error (a full disk) until it is opened again. The
    /// reopened copy holds what reached its disk, from which the follower goes on.
    async fn copy_refused(&self, progress: &mut Progress, e: StoreError, first: u64, last: u64) {
        self.set_error(Some(format!("copying sequences {first} to {last}: {e}")));
        *self.copy_failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
            "this node's copy of the JetStream stream {} refused sequences {first} to {last} ({e}): \
             the node serves revision {} and falls behind the stream until the copy takes writes \
             again (tried again every 0.1 to 1 s)",
            self.name(),
            self.tx.borrow().revision
        ));
        if let Err(e) = self.mirror.recover().await {
            self.set_error(Some(format!(
                "copying sequences {first} to {last}: reopening this node's copy: {e}"
            )));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match self.mirror.head() {
            Ok(now) => {
                if now.revision < progress.copied.revision {
                    tracing::warn!(
                        stream = %self.name(),
                        from = now.revision + 1,
                        to = progress.copied.revision,
                        "this node's copy lost records that had not reached its disk: fetching them again"
                    );
                }
                progress.copied = now;
            }
            Err(e) => self.set_error(Some(format!(
                "copying sequences {first} to {last}: reading the head of this node's copy: {e}"
            ))),
        }
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

/// A nats-server for the unit tests: one per test process, with JetStream in a temporary
/// directory, on a free port of 127.0.0.1; it stops when the test process ends.
#[cfg(test)]
pub(crate) mod test_server {
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// The nats-server binary: `$TRADELEDGER_NATS_SERVER`, or `nats-server` on the PATH.
    pub fn binary() -> PathBuf {
        let path = std::env::var_os("TRADELEDGER_NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        match Command::new(&path).arg("--version").output() {
            Ok(out) if out.status.success() => path,
            other => panic!(
                "nats-server ({}) is needed by the JetStream tests and does not run ({other:?}): \
                 run .ci/setup (it installs nats-server 2.15.1), or set TRADELEDGER_NATS_SERVER",
                path.display()
            ),
        }
    }

    struct Server {
        url: String,
        /// Holds the server's storage and the stores' copies of their streams.
        dir: PathBuf,
        // Kept open for the life of the process: the wrapper shell stops the server when its
        // standard input closes, that is when this process ends however it ends.
        _stdin: std::process::ChildStdin,
        _child: Child,
        _dir: tempfile::TempDir,
    }

    fn server() -> std::sync::MutexGuard<'static, Server> {
        static SERVER: OnceLock<std::sync::Mutex<Server>> = OnceLock::new();
        let server = SERVER.get_or_init(|| std::sync::Mutex::new(start()));
        server.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The URL of the shared test server, started on first use.
    pub fn url() -> String {
        server().url.clone()
    }

    /// A fresh directory for a store's copy of its stream, removed with the server's.
    pub fn copy_dir() -> PathBuf {
        server()
            .dir
            .join("copies")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    fn start() -> Server {
        let binary = binary();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@" & pid=$!; cat >/dev/null; kill $pid; wait $pid"#)
            .arg(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.flush().unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            url: format!("nats://127.0.0.1:{port}"),
            dir: dir.path().to_owned(),
            _stdin: stdin,
            _child: child,
            _dir: dir,
        }
    }

    /// A store over the stream `config` names (created if missing), keeping its copy at
    /// `copy` (`None`: in memory), once the copy holds the whole stream.
    pub async fn open(
        config: &super::JetStreamConfig,
        copy: Option<&std::path::Path>,
    ) -> Result<super::JetStreamStore, super::StoreError> {
        let connection = super::JetStreamStore::connect(config, copy).await?;
        let last = connection.last;
        let (store, _) = connection.follow(false).await?;
        store.wait_for_progress(last).await?;
        Ok(store)
    }

    /// A fresh stream on the shared server.
    pub async fn store() -> super::JetStreamStore {
        let name = format!("T{}", uuid::Uuid::new_v4().simple());
        open(&super::JetStreamConfig::new(&url(), &name), None).await.unwrap()
    }

    /// A store over stream `name` keeping its copy at `copy`.
    pub async fn store_over(name: &str, copy: &std::path::Path) -> super::JetStreamStore {
        open(&super::JetStreamConfig::new(&url(), name), Some(copy))
            .await
            .unwrap()
    }

    /// A fresh stream on the shared server, copied on disk.
    pub async fn store_with_copy() -> super::JetStreamStore {
        store_over(&format!("T{}", uuid::Uuid::new_v4().simple()), &copy_dir()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The follower takes at most [`FOLLOW_BATCH`] messages at once, however many have
    /// arrived, so what it holds before storing them stays bounded; the rest follow, dense.
    #[tokio::test]
    async fn the_follower_takes_at_most_a_batch_of_what_has_arrived() {
        let store = test_server::store().await;
        let mut head = Head::default();
        while head.revision < 600 {
            head = store
                .append(super::super::conformance::records_after(head, 200), head)
                .await
                .unwrap();
        }
        let consumer = store
            .js
            .get_stream(&store.stream)
            .await
            .unwrap()
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: store.client.new_inbox(),
                filter_subject: store.subject.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let first = messages.next().await;
        // Let all 600 arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Out of tokio's cooperative budget, which otherwise ends a batch at 128 polls.
        let (records, end) = tokio::task::unconstrained(async { gather(first, &mut messages, Head::default()) }).await;
        assert!(end.is_none());
        assert_eq!(records.len(), FOLLOW_BATCH);
        let at = records[FOLLOW_BATCH - 1].revision;
        assert!(records.iter().map(|r| r.revision).eq(1..=at));
        let first = messages.next().await;
        let (rest, _) = gather(
            first,
            &mut messages,
            Head {
                revision: at,
                ..Head::default()
            },
        );
        assert!(rest.iter().map(|r| r.revision).eq(at + 1..=600));
    }
}
