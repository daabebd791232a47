//! What a request with a deadline handed to the writer, so that its answer never lies about
//! a write.
//!
//! A request that times out is cancelled where it stands. Cancelled before its write reached
//! the writer's queue, nothing is recorded and "timed out" is the truth; cancelled after,
//! the writer records the write all the same, and a client told "timed out" that retries
//! records it twice. So a request carries a [`WriteGate`]: the ledger hands a write to the
//! writer only through the gate ([`WriteGate::hand_over`], in the same step as the write
//! enters the queue, with nothing to wait for in between), and the request's deadline closes
//! the gate ([`WriteGate::close`]) before it answers. Closing tells the two cases apart for
//! good: with nothing handed over, no write of the request can be recorded any more (the
//! gate refuses them), and "timed out" is safe; with writes handed over, the request waits
//! for their outcome (`--write-timeout-ms`) or answers that it is unknown, naming each write
//! by the id to retry it with (`OUTCOME_UNKNOWN`).

use std::sync::Mutex;

use uuid::Uuid;

use super::LedgerError;

/// A write a request handed to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandedWrite {
    /// A release, by the id a retry must carry (generated up front when the client gave none).
    Release(Uuid),
    /// A dataset definition or amendment, by the dataset's id.
    Dataset(String),
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    handed: Vec<HandedWrite>,
}

/// The writes one request handed to the writer, and whether it may still hand any; see the
/// module docs.
#[derive(Debug, Default)]
pub struct WriteGate {
    state: Mutex<State>,
}

impl WriteGate {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that `write` is handed to the writer now; refused (nothing may be handed over)
    /// once the request's deadline closed the gate.
    pub(super) fn hand_over(&self, write: HandedWrite) -> Result<(), LedgerError> {
        let mut state = self.lock();
        if state.closed {
            return Err(LedgerError::TimedOut(
                "the request's time limit passed before this write reached the ledger's writer: nothing was \
                 recorded; re-send it"
                    .into(),
            ));
        }
        state.handed.push(write);
        Ok(())
    }

    /// Closes the gate (the request's deadline passed): no write can be handed over after
    /// this. Returns the writes handed over before; none means nothing of the request can be
    /// recorded.
    pub fn close(&self) -> Vec<HandedWrite> {
        let mut state = self.lock();
        state.closed = true;
        state.handed.clone()
    }

    /// The writes handed over so far.
    pub fn handed(&self) -> Vec<HandedWrite> {
        self.lock().handed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_hands_nothing_over() {
        let gate = WriteGate::new();
        let id = Uuid::new_v4();
        gate.hand_over(HandedWrite::Release(id)).unwrap();
        assert_eq!(gate.close(), vec![HandedWrite::Release(id)]);
        assert!(matches!(
            gate.hand_over(HandedWrite::Dataset("D".into())),
            Err(LedgerError::TimedOut(_))
        ));
        assert_eq!(gate.handed(), vec![HandedWrite::Release(id)]);
    }
}
