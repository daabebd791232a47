//! The single writer task: group commit, storage failures and recovery.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::Subject;
use crate::projection::{Applied, ReleaseInfo};
use crate::store::{decode, encode, Envelope, Head, Record, StoreError, StoredEvent, FORMAT_VERSION};

use super::command::{Command, Context, Decision};
use super::error::poisoned;
use super::{Committed, Inner, LedgerError, Notice};

/// Most commands taken into one group commit.
pub(super) const MAX_GROUP: usize = 4096;
/// First pause before the writer tries to bring a failed store back; it doubles after each
/// failed attempt, up to [`RECOVER_MAX`].
pub const RECOVER_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between two attempts to bring a failed store back.
pub const RECOVER_MAX: Duration = Duration::from_secs(5);

/// A command on its way to the writer, with who sent it and where the answer goes.
pub(super) struct Pending {
    pub command: Command,
    pub expected_revision: Option<u64>,
    pub actor: String,
    pub reply: oneshot::Sender<Result<Reply, LedgerError>>,
}

/// What the writer answers a command with: the commit and, for a release, its position and
/// what the projection keeps of it, taken under the lock the group holds anyway, so that
/// the caller need not read the projection again.
#[derive(Debug)]
pub(super) struct Reply {
    pub committed: Committed,
    pub release: Option<Box<(u32, ReleaseInfo)>>,
}

/// The single writer. Holds only a weak reference so dropping every `Ledger` stops it.
///
/// After a group fails to reach the disk, it refuses every command and, with a pause that
/// doubles from [`RECOVER_FIRST`] to [`RECOVER_MAX`], tries to bring the store back.
pub(super) async fn writer(inner: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Pending>) {
    // One command makes at most one event: a group never holds more records than the store
    // appends atomically.
    let (max_group, mut moved) = match inner.upgrade() {
        Some(i) => (MAX_GROUP.min(i.store.max_batch()).max(1), i.store.watch_head()),
        None => return,
    };
    let mut group = Vec::with_capacity(max_group);
    // While the store fails: when to try to bring it back next, and the pause after that.
    let mut retry: Option<(Instant, Duration)> = None;
    // A shared log may have moved between the fold and now.
    let mut foreign = moved.is_some();
    loop {
        if foreign && retry.is_none() {
            let Some(inner) = inner.upgrade() else { return };
            apply_foreign(&inner).await;
        }
        foreign = false;
        // `recv_many` is cancel-safe: losing the race to the timer or the head watch loses
        // no command.
        let closed = tokio::select! {
            n = rx.recv_many(&mut group, max_group) => n == 0,
            () = sleep_until(retry.map(|(at, _)| at)) => false,
            changed = head_moved(moved.as_mut()) => {
                match changed {
                    true => foreign = true,
                    // The store stopped announcing its head: nothing more will come.
                    false => moved = None,
                }
                false
            }
        };
        if closed {
            return;
        }
        let Some(inner) = inner.upgrade() else { return };
        if let Some((at, pause)) = retry {
            if Instant::now() >= at {
                retry = match recover(&inner).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "the store still fails");
                        set_storage_failure(&inner, &e);
                        Some((Instant::now() + pause, (pause * 2).min(RECOVER_MAX)))
                    }
                };
            }
        }
        if group.is_empty() {
            continue;
        }
        let commands = std::mem::take(&mut group);
        if retry.is_some() {
            let why = inner
                .storage_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            for c in commands {
                let _ = c.reply.send(Err(LedgerError::storage(why.clone())));
            }
            continue;
        }
        if let Err(e) = commit_group(&inner, commands).await {
            set_storage_failure(&inner, &e);
            retry = Some((Instant::now() + RECOVER_FIRST, (RECOVER_FIRST * 2).min(RECOVER_MAX)));
        }
    }
}

/// Sleeps until `at`; for ever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves when a shared log's head moves (true), or its store stops announcing it (false);
/// never without a watch.
async fn head_moved(watch: Option<&mut tokio::sync::watch::Receiver<Head>>) -> bool {
    match watch {
        Some(w) => w.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Applies the records other nodes appended to a shared log, and tells subscribers, as for
/// this node's own writes. A record that breaks the hash chain poisons the ledger (see
/// [`catch_up`]). Runs on a blocking thread: the catch-up reads the store and waits for the
/// projection's write lock, which would stall every connection of a runtime worker.
async fn apply_foreign(inner: &Arc<Inner>) {
    if inner.poisoned.load(Ordering::Acquire) {
        return;
    }
    let task_inner = inner.clone();
    match tokio::task::spawn_blocking(move || catch_up(&task_inner)).await {
        Ok(caught) => tell_foreign(inner, caught),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => tracing::error!(error = %e, "the records other nodes appended were not applied"),
    }
}

fn tell_foreign(inner: &Inner, caught: Result<Vec<Arc<Notice>>, String>) {
    match caught {
        Ok(notices) => {
            for n in notices {
                let _ = inner.notices.send(n);
            }
        }
        Err(e) => tracing::error!(error = %e, "could not apply the records other nodes appended"),
    }
}

fn set_storage_failure(inner: &Inner, error: &str) {
    *inner.storage_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
        "writes are refused until the store takes them again (retried every few seconds; GET /readyz \
         says when): {error}"
    ));
}

/// Brings a failed store back: reopens it, checks that it takes a write, and folds into the
/// projection whatever the failed group left in the log. Writes resume when this succeeds.
async fn recover(inner: &Arc<Inner>) -> Result<(), String> {
    inner.store.recover().await.map_err(|e| e.to_string())?;
    // Off the runtime, as in `apply_foreign`.
    let task_inner = inner.clone();
    let notices = match tokio::task::spawn_blocking(move || catch_up(&task_inner)).await {
        Ok(caught) => caught?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => return Err(e.to_string()),
    };
    *inner.storage_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
    tracing::info!(
        revision = inner.state.read().head().revision,
        recovered_events = notices.len(),
        "the store takes writes again"
    );
    for n in notices {
        let _ = inner.notices.send(n);
    }
    Ok(())
}

/// Applies to the projection the events the store holds beyond it: those of a group whose
/// flush failed but which reached the disk all the same. Their callers were told the write
/// failed; a re-send gets the original revision. The log and the projection agree after.
fn catch_up(inner: &Inner) -> Result<Vec<Arc<Notice>>, String> {
    let store = inner.store.as_ref();
    let (from, prev) = {
        let state = inner.state.read();
        (state.head().revision, state.head().hash)
    };
    let stored = store.head().map_err(|e| e.to_string())?;
    let poison = |why: String| {
        tracing::error!(error = %why, "the log and the projection disagree after a storage failure");
        inner.poisoned.store(true, Ordering::Release);
        why
    };
    if stored.revision < from {
        return Err(poison(format!(
            "the store's head is revision {} but revision {from} was acknowledged",
            stored.revision
        )));
    }
    // Only the writer changes the projection, so decoding before taking the lock is safe.
    let mut events = Vec::new();
    let mut prev = prev;
    // A shared log may grow while this runs: only up to the head read above.
    let upto = stored.revision;
    let records = store
        .scan(from + 1)
        .take_while(|item| item.as_ref().map_or(true, |(revision, _)| *revision <= upto));
    for item in records {
        let (revision, bytes) = item.map_err(|e| e.to_string())?;
        let event = decode(revision, &bytes, &prev).map_err(|d| poison(d.to_string()))?;
        prev = event.hash;
        events.push(event);
    }
    if from + events.len() as u64 != stored.revision || prev != stored.hash {
        return Err(poison(format!(
            "the store's head record ({}) does not match its events",
            stored.revision
        )));
    }
    let mut state = inner.state.write();
    let mut notices = Vec::with_capacity(events.len());
    for event in &events {
        let applied = state.apply(event).map_err(|e| poison(e.to_string()))?;
        notices.push(Arc::new(Notice {
            revision: event.revision(),
            applied,
        }));
    }
    Ok(notices)
}

/// Applies a durable group to the projection on a blocking thread, and returns its events
/// and the notices for subscribers; `None` when the runtime shut down first.
///
/// The write lock waits for the readers that hold the projection (a long query holds it for
/// one root field at a time), and meanwhile lets no new reader in: waiting for it on one of
/// the runtime's workers would stall every connection that worker serves, and any reader
/// the runtime runs would then block the other workers too.
async fn apply_off_runtime(inner: &Arc<Inner>, events: Vec<StoredEvent>) -> Option<(Vec<StoredEvent>, Applying)> {
    let task_inner = inner.clone();
    let applying = tokio::task::spawn_blocking(move || {
        let applied = apply_now(&task_inner, &events);
        (events, applied)
    });
    match applying.await {
        Ok(done) => Some(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            // The runtime is shutting down: the events are durable and the next start
            // folds them; nothing more is accepted meanwhile.
            tracing::error!(error = %e, "a recorded group was not applied");
            inner.poisoned.store(true, Ordering::Release);
            None
        }
    }
}

/// What applying a group gives: the notices for subscribers, and for each event that
/// recorded a release its position and what the projection keeps of it.
struct Applying {
    notices: Vec<Arc<Notice>>,
    releases: Vec<Option<(u32, ReleaseInfo)>>,
}

/// Applies `events` under the write lock. Records the new head as seen, so that
/// [`super::Ledger::head_revision`] never answers below an acknowledged write.
fn apply_now(inner: &Inner, events: &[StoredEvent]) -> Applying {
    let mut notices = Vec::with_capacity(events.len());
    let mut releases = Vec::with_capacity(events.len());
    let mut state = inner.state.write();
    for event in events {
        let applied = state.apply(event);
        releases.push(match &applied {
            Ok(Applied::ReleasePublished { release, .. }) => Some((*release, state.release_at(*release).clone())),
            _ => None,
        });
        match applied {
            Ok(applied) => notices.push(Arc::new(Notice {
                revision: event.revision(),
                applied,
            })),
            Err(e) => {
                // Validated events always apply; if one does not, stop accepting writes.
                tracing::error!(error = %e, "projection rejected a recorded event");
                inner.poisoned.store(true, Ordering::Release);
            }
        }
    }
    inner.seen_head.fetch_max(state.head().revision, Ordering::Relaxed);
    Applying { notices, releases }
}

/// How one command of a group is answered.
enum Outcome {
    /// Answered without writing.
    Answer(Result<Reply, LedgerError>),
    /// The event at this index of the group: appended for this command, or (`duplicate`)
    /// for an earlier identical command of the same group.
    Event { index: usize, duplicate: bool },
}

/// How long a group may keep losing the race to other nodes appending to a shared log
/// first, being decided again each time, before its writes are refused (retryable).
const REDECIDE_FOR: Duration = Duration::from_secs(10);

/// One command of a group, kept until it is answered.
struct Slot {
    /// `None` once decided, unless it may have to be decided again (a shared log).
    command: Option<Command>,
    expected_revision: Option<u64>,
    actor: String,
}

/// A group decided against the projection: the records to append after `start`, their
/// events, and how each command is answered.
struct Decided {
    start: Head,
    records: Vec<Record>,
    events: Vec<StoredEvent>,
    outcomes: Vec<Outcome>,
}

/// Decides every command of the group against the projection as it stands.
fn decide_group(inner: &Inner, slots: &mut [Slot], again: bool) -> Decided {
    let mut records: Vec<Record> = Vec::new();
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut outcomes = Vec::with_capacity(slots.len());
    #[cfg(test)]
    inner.reads.fetch_add(1, Ordering::Relaxed);
    let state = inner.state.read();
    // Recording times never go back, whatever the clock does: "known at" stays a prefix.
    let now = state
        .last_recorded_at()
        .map_or_else(Utc::now, |last| last.max(Utc::now()));
    let ctx = Context {
        state: &state,
        store: inner.store.as_ref(),
        now,
        max_clock_skew: i64::try_from(inner.max_clock_skew_ms.load(Ordering::Relaxed))
            .ok()
            .and_then(chrono::Duration::try_milliseconds)
            .unwrap_or(chrono::Duration::MAX),
        group: Default::default(),
    };
    let mut head = state.head();
    let start = head;
    let max_record = inner.store.max_record_bytes();
    // The event this group appends for each subject, for duplicate checks between its
    // own commands.
    let mut subjects: HashMap<Subject, usize> = HashMap::new();
    for slot in slots {
        let command = match again {
            true => slot.command.clone(),
            false => slot.command.take(),
        };
        let Some(command) = command else {
            outcomes.push(Outcome::Answer(Err(writer_lost())));
            continue;
        };
        let outcome = match command.decide(&ctx) {
            // A release recorded before (a retry) is in the projection this group reads.
            Decision::Answer(answer) => Outcome::Answer(answer.map(|committed| {
                Reply {
                    release: committed
                        .release
                        .and_then(|id| state.release(&id))
                        .map(|(position, info)| Box::new((position, info.clone()))),
                    committed,
                }
            })),
            Decision::Append(event) => {
                let subject = event.subject();
                if let Some(&index) = subjects.get(&subject) {
                    if events[index].envelope.event == event {
                        Outcome::Event { index, duplicate: true }
                    } else {
                        Outcome::Answer(Err(LedgerError::Conflict(format!(
                            "{subject} is being recorded with different content"
                        ))))
                    }
                } else if let Some(expected) = slot.expected_revision.filter(|&e| e != head.revision) {
                    Outcome::Answer(Err(LedgerError::Conflict(format!(
                        "expectedRevision {expected} does not match the ledger head {}",
                        head.revision
                    ))))
                } else {
                    let envelope = Envelope {
                        format: FORMAT_VERSION,
                        revision: head.revision + 1,
                        event_id: Uuid::new_v4(),
                        recorded_at: now,
                        actor: slot.actor.clone(),
                        prev_hash: head.hash.to_hex(),
                        event,
                    };
                    let (hash, bytes) = encode(&envelope);
                    if bytes.len() > max_record {
                        outcomes.push(Outcome::Answer(Err(LedgerError::bad_input(
                            "input",
                            format!(
                                "{subject} encodes to {} bytes, more than the store takes in one record ({max_record} \
                                 bytes); split it",
                                bytes.len()
                            ),
                        ))));
                        continue;
                    }
                    let index = events.len();
                    subjects.insert(subject, index);
                    records.push(Record {
                        revision: envelope.revision,
                        hash,
                        bytes,
                    });
                    head = Head {
                        revision: envelope.revision,
                        hash,
                    };
                    events.push(StoredEvent { envelope, hash });
                    Outcome::Event {
                        index,
                        duplicate: false,
                    }
                }
            }
        };
        outcomes.push(outcome);
    }
    Decided {
        start,
        records,
        events,
        outcomes,
    }
}

/// A command that was taken to decide it and is not there to decide it again: cannot
/// happen (commands are kept whenever the log is shared).
fn writer_lost() -> LedgerError {
    LedgerError::storage("the write was lost between two decisions; re-send it".to_owned())
}

/// Decides, appends, flushes, applies and answers one group. `Err` when the group did not
/// reach the disk: the store must then be brought back before the next write.
///
/// On a shared log (several nodes append to it) the group is decided against the records
/// the other nodes appended so far; if one of them appends first all the same, the store
/// answers with a conflict, and the group is decided again after applying their records: a
/// release recorded meanwhile is then a duplicate, a stale `expectedRevision` a conflict,
/// exactly as if the writes had come through this node.
async fn commit_group(inner: &Arc<Inner>, group: Vec<Pending>) -> Result<(), String> {
    if inner.poisoned.load(Ordering::Acquire) {
        for p in group {
            let _ = p.reply.send(Err(poisoned()));
        }
        return Ok(());
    }
    let shared = inner.store.watch_head().is_some();
    let mut replies = Vec::with_capacity(group.len());
    let mut slots = Vec::with_capacity(group.len());
    for p in group {
        replies.push(p.reply);
        slots.push(Slot {
            command: Some(p.command),
            expected_revision: p.expected_revision,
            actor: p.actor,
        });
    }
    let mut attempt = 0usize;
    let first = Instant::now();
    let Decided {
        records: _,
        events,
        outcomes,
        start: _,
    } = loop {
        if shared {
            apply_foreign(inner).await;
            if inner.poisoned.load(Ordering::Acquire) {
                for reply in replies {
                    let _ = reply.send(Err(poisoned()));
                }
                return Ok(());
            }
        }
        let mut decided = decide_group(inner, &mut slots, shared);
        if decided.records.is_empty() {
            break decided;
        }
        let records = std::mem::take(&mut decided.records);
        let appended = inner.store.append(records, decided.start).await;
        let durable = match appended {
            Ok(_) => inner.store.flush().await.map_err(|e| e.to_string()),
            Err(StoreError::Conflict { found, .. }) if shared && first.elapsed() < REDECIDE_FOR => {
                attempt += 1;
                tracing::debug!(
                    attempt,
                    head = found.revision,
                    "another node appended first; deciding again"
                );
                if attempt > 1 {
                    // Two nodes losing to each other in step: a short random pause breaks it.
                    let pause = rand::random::<u64>() % (attempt.min(10) as u64 + 1);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                continue;
            }
            Err(StoreError::Conflict { .. }) if shared => {
                let busy = LedgerError::storage(format!(
                    "other nodes appended first for {} s ({attempt} times); nothing was recorded, re-send the write",
                    REDECIDE_FOR.as_secs()
                ));
                for (reply, outcome) in replies.into_iter().zip(decided.outcomes) {
                    let _ = reply.send(match outcome {
                        Outcome::Answer(a) => a,
                        Outcome::Event { .. } => Err(busy.clone()),
                    });
                }
                return Ok(());
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = durable {
            // The group may or may not be in the log: the projection is left as it was, and
            // takes in whatever the store holds once it is back (see `catch_up`).
            tracing::error!(error = %e, "a write did not reach the disk; the group is refused");
            // Before anyone is answered, so that a caller told of the failure who then asks
            // GET /healthz finds writes refused.
            set_storage_failure(inner, &e);
            let in_doubt = format!(
                "the write did not reach the disk and is not acknowledged ({e}); it may still be \
                 recorded once storage recovers: re-send it with the same release id to learn its revision"
            );
            for (reply, outcome) in replies.into_iter().zip(decided.outcomes) {
                let answer = match outcome {
                    Outcome::Answer(a) => a,
                    Outcome::Event { .. } => Err(LedgerError::storage(in_doubt.clone())),
                };
                let _ = reply.send(answer);
            }
            return Err(e);
        }
        break decided;
    };

    let Some((events, Applying { notices, releases })) = apply_off_runtime(inner, events).await else {
        for reply in replies {
            let _ = reply.send(Err(poisoned()));
        }
        return Ok(());
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let answer = match outcome {
            Outcome::Answer(a) => a,
            Outcome::Event { index, duplicate } => Ok(Reply {
                committed: Committed {
                    revision: events[index].revision(),
                    hash: events[index].hash,
                    duplicate,
                    release: match events[index].envelope.event.subject() {
                        crate::domain::Subject::Release(id) => Some(id),
                        crate::domain::Subject::Dataset(_) => None,
                    },
                },
                release: releases[index].clone().map(Box::new),
            }),
        };
        let _ = reply.send(answer);
    }
    for n in notices {
        // No receivers is fine: nobody is subscribed.
        let _ = inner.notices.send(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Ledger, LedgerError, OpenOptions};
    use super::*;
    use crate::domain::dataset::tests::sample;
    use crate::domain::{ObservationDraft, ReleaseDraft, ReleaseStatus};
    use crate::store::MemoryStore;

    fn draft(value: &str) -> ReleaseDraft {
        ReleaseDraft {
            id: Some(Uuid::new_v4()),
            dataset: "KR_KNOWLEDGE_SERVICES".into(),
            status: ReleaseStatus::Preliminary,
            title: "SYNTHETIC one read".into(),
            published_at: "2025-09-03T00:00:00Z".parse().unwrap(),
            source: None,
            observations: vec![ObservationDraft {
                key: "IPR._T".into(),
                period: "2025-S1".into(),
                measure: None,
                value: value.into(),
            }],
            backfill: false,
            revision_reason: None,
        }
    }

    /// A publication takes the projection for reading once, in the writer, which validates
    /// the draft against it and answers with the recorded release: not before (to validate)
    /// nor after (to show the release).
    #[tokio::test]
    async fn a_publication_reads_the_projection_once_in_the_writer() {
        let (ledger, _) = Ledger::open(Arc::new(MemoryStore::new()), OpenOptions::default()).unwrap();
        ledger.define_dataset(sample(), "t").await.unwrap();
        let reads = || ledger.inner.reads.load(Ordering::Relaxed);
        let d = draft("-4530.0");
        let before = reads();
        let published = ledger.publish_gated(d.clone(), None, "t", None).await.unwrap();
        assert_eq!(reads() - before, 1, "reads of the projection for one publication");
        let (position, info) = published.release.expect("the recorded release");
        assert_eq!(
            (position, info.id, info.title.as_str()),
            (0, d.id.unwrap(), "SYNTHETIC one read")
        );
        assert!(!published.committed.duplicate);

        // A retry is answered from the same single read, with the release as recorded.
        let before = reads();
        let again = ledger.publish_gated(d, None, "t", None).await.unwrap();
        assert_eq!(reads() - before, 1);
        assert!(again.committed.duplicate);
        assert_eq!(again.release.map(|(p, i)| (p, i.revision)), Some((0, info.revision)));

        // A refusal names the field, from the writer's validation.
        let before = reads();
        let e = ledger.publish_gated(draft("1.5.5"), None, "t", None).await.unwrap_err();
        assert_eq!(reads() - before, 1);
        assert!(
            matches!(&e, LedgerError::BadInput { field, message } if field == "observations[0].value" && message.contains("1.5.5")),
            "{e:?}"
        );
    }
}
