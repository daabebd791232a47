//! The follower: copies the stream into this node's copy, in sequence order.

use super::*;

/// Most messages the follower stores in the copy at once (what has arrived already, up to
/// this many or [`FOLLOW_BATCH_BYTES`]).
pub(super) const FOLLOW_BATCH: usize = 512;

/// Most payload bytes the follower stores in the copy at once.
pub(super) const FOLLOW_BATCH_BYTES: usize = 8 << 20;

/// Where a batch of messages ended other than by running out of ready messages.
pub(super) enum BatchEnd {
    /// The subscription ended: make the consumer again.
    Closed,
    /// A failure, named: make the consumer again after saying so.
    Failed(String),
}

/// What the follower task works with.
pub(super) struct Follower {
    pub(super) client: async_nats::Client,
    pub(super) stream: jetstream::stream::Stream,
    pub(super) subject: String,
    /// This node's copy of the stream.
    pub(super) mirror: Arc<dyn LogStore>,
    /// The head announced to the node, sent after each batch the copy stores beyond it.
    pub(super) tx: watch::Sender<Head>,
    /// Why following last failed, for error messages.
    pub(super) error: Arc<Mutex<Option<String>>>,
    /// Why the copy last refused a batch, for readiness.
    pub(super) copy_failure: Arc<Mutex<Option<String>>>,
    /// Make the consumer again.
    pub(super) kick: Arc<tokio::sync::Notify>,
}

/// How far the follower has come.
pub(super) struct Progress {
    /// What the copy holds. The head announced on `tx` never goes back, but the copy can: a
    /// copy reopened after a failed write (a full disk) holds only what reached its disk,
    /// and what it lost is fetched again without being announced (or fed) a second time.
    pub(super) copied: Head,
    /// Where the start-up fold wants records, until it has them all or hangs up.
    pub(super) feed: Option<FeedSender>,
    /// The last revision handed to the feed.
    pub(super) fed_upto: u64,
}

/// Reads the stream into `mirror` in sequence order, for as long as the store lives: an
/// ordered push consumer from the copy's head on, made again after any failure. Messages that
/// have arrived are stored in batches. `feed`, if any, gets a copy of each record up to its
/// revision once it is stored.
pub(super) async fn follow(follower: Follower, feed: Option<FeedSender>) {
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
pub(super) fn gather<E: std::fmt::Display>(
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
