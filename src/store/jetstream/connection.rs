//! A stream reached and checked: publishing batches and their acknowledgements.

use super::*;

/// A publish acknowledgement, single message or batch commit.
#[derive(Debug, Deserialize)]
pub(super) struct Ack {
    #[serde(rename = "seq")]
    pub(super) sequence: u64,
    #[serde(default)]
    pub(super) duplicate: bool,
}

/// Why a publish failed.
pub(super) enum PublishError {
    /// `Nats-Expected-Last-Sequence` did not hold: the stream's last sequence is another
    /// (the one the server named, when it did).
    WrongLastSequence(Option<u64>),
    Other(String),
}

/// A stream reached and checked, and this node's copy of it checked too, before anything
/// is read: see [`JetStreamStore::connect`] and [`Connection::follow`].
pub struct Connection {
    pub(super) client: async_nats::Client,
    pub(super) js: jetstream::Context,
    pub(super) stream: stream::Stream,
    pub(super) name: String,
    pub(super) subject: String,
    pub(super) timeout: Duration,
    pub(super) max_payload: usize,
    /// The stream's last sequence when the node connected.
    pub last: u64,
    /// Where the copy is kept (`None`: in memory).
    pub(super) copy: Option<PathBuf>,
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
    pub(in crate::store) async fn follow_into(
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
