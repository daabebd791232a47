//! The follower's records handed to a reader that asked for them as they arrive.

use super::*;

/// The follower's end of a [`Feed`]: the last revision it wants, and where to send records.
pub(super) type FeedSender = (u64, tokio::sync::mpsc::Sender<(u64, Vec<u8>)>);

/// Records the follower hands to the start-up fold at most ahead of it.
pub(super) const FEED_QUEUE: usize = 64;

/// The records of the stream after the copy's head up to its last sequence at start-up, in
/// order, as the follower stores them in the copy: a blocking iterator (for the fold's
/// reading thread) that fails, naming why, when no record comes within the timeout.
pub struct Feed {
    pub(super) receiver: tokio::sync::mpsc::Receiver<(u64, Vec<u8>)>,
    pub(super) next: u64,
    pub(super) upto: u64,
    pub(super) timeout: Duration,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) stream: String,
    pub(super) follower_error: Arc<Mutex<Option<String>>>,
    pub(super) failed: bool,
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
