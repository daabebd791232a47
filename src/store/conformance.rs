//! The cases every [`LogStore`] must pass, run against each implementation.
//!
//! To check a new store, add one line at the bottom: `conformance!(name, || make_store());`
//! where the closure returns a fresh, empty store.

use futures_util::StreamExt;

use super::{encode, Envelope, Hash, Head, LogStore, Record, StoreError, FORMAT_VERSION};
use crate::domain::Event;
use crate::tlog::leaf_of_record;

/// `n` records continuing `head`, each hash-chained to the one before.
pub(super) fn records_after(head: Head, n: usize) -> Vec<Record> {
    let mut prev = head;
    (0..n)
        .map(|i| {
            let mut dataset = crate::generate::dataset();
            dataset.id = format!("DS_{}_{i}", prev.revision + 1);
            let envelope = Envelope {
                format: FORMAT_VERSION,
                revision: prev.revision + 1,
                event_id: uuid::Uuid::new_v4(),
                recorded_at: chrono::Utc::now(),
                actor: "conformance".into(),
                prev_hash: prev.hash.to_hex(),
                event: Event::DatasetDefined { dataset },
            };
            let (hash, bytes) = encode(&envelope);
            prev = Head {
                revision: envelope.revision,
                hash,
            };
            Record {
                revision: envelope.revision,
                hash,
                bytes,
            }
        })
        .collect()
}

fn scanned(store: &dyn LogStore, from: u64) -> Vec<(u64, Vec<u8>)> {
    store.scan(from).collect::<Result<_, _>>().expect("scan")
}

pub(super) async fn empty_store_has_genesis_head(store: &dyn LogStore) {
    assert_eq!(store.head().unwrap(), Head::default());
    assert_eq!(store.head().unwrap().hash, Hash::GENESIS);
    assert!(scanned(store, 1).is_empty());
    assert_eq!(store.get(1).unwrap(), None);
}

pub(super) async fn append_reports_the_head_and_revisions_stay_dense(store: &dyn LogStore) {
    let first = records_after(Head::default(), 3);
    let head = store.append(first.clone(), Head::default()).await.unwrap();
    assert_eq!(
        head,
        Head {
            revision: 3,
            hash: first[2].hash
        }
    );
    store.flush().await.unwrap();
    assert_eq!(store.head().unwrap(), head);
    let second = records_after(head, 2);
    let head = store.append(second.clone(), head).await.unwrap();
    assert_eq!(head.revision, 5);
    let revisions: Vec<u64> = scanned(store, 1).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5]);
    for r in first.iter().chain(&second) {
        assert_eq!(store.get(r.revision).unwrap().as_deref(), Some(r.bytes.as_slice()));
    }
    // An empty batch changes nothing and reports the head.
    assert_eq!(store.append(Vec::new(), head).await.unwrap(), head);
}

pub(super) async fn an_append_that_does_not_continue_the_head_is_refused_whole(store: &dyn LogStore) {
    let head = store
        .append(records_after(Head::default(), 2), Head::default())
        .await
        .unwrap();
    // A gap, a repeat, and a batch whose second record breaks density.
    let gap = records_after(Head { revision: 3, ..head }, 1);
    let repeat = records_after(Head { revision: 1, ..head }, 1);
    let mut broken = records_after(head, 2);
    broken[1].revision = 9;
    for (what, batch) in [("gap", gap), ("repeat", repeat), ("broken", broken)] {
        match store.append(batch, head).await {
            Err(StoreError::OutOfOrder { head: 2, .. }) => {}
            other => panic!("{what}: expected OutOfOrder at head 2, got {other:?}"),
        }
        assert_eq!(store.head().unwrap(), head, "{what}: nothing appended");
        assert_eq!(scanned(store, 1).len(), 2, "{what}: nothing appended");
    }
}

pub(super) async fn range_reads_start_and_stop_where_asked(store: &dyn LogStore) {
    let records = records_after(Head::default(), 10);
    store.append(records.clone(), Head::default()).await.unwrap();
    let revisions = |items: Vec<(u64, Vec<u8>)>| items.into_iter().map(|(r, _)| r).collect::<Vec<_>>();
    assert_eq!(revisions(scanned(store, 4)), (4..=10).collect::<Vec<_>>());
    assert!(scanned(store, 11).is_empty());
    let streamed: Vec<_> = store.read_range(3, Some(6)).collect().await;
    let streamed: Vec<_> = streamed.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(revisions(streamed.clone()), [3, 4, 5, 6]);
    assert_eq!(streamed[0].1, records[2].bytes);
    let rest: Vec<_> = store.read_range(9, None).collect().await;
    assert_eq!(rest.len(), 2);
    assert!(store.read_range(11, None).next().await.is_none());
}

pub(super) async fn stored_records_keep_the_hash_chain(store: &dyn LogStore) {
    let mut head = Head::default();
    for n in [1, 3, 2] {
        head = store.append(records_after(head, n), head).await.unwrap();
    }
    let mut prev = Hash::GENESIS;
    for (revision, bytes) in scanned(store, 1) {
        let event = super::decode(revision, &bytes, &prev).unwrap_or_else(|d| panic!("{d}"));
        prev = event.hash;
    }
    assert_eq!(prev, head.hash);
    assert_eq!(store.head().unwrap(), head);
}

pub(super) async fn large_batches_append_atomically(store: &dyn LogStore) {
    let records = records_after(Head::default(), 5_000);
    let head = store.append(records.clone(), Head::default()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(head.revision, 5_000);
    assert_eq!(scanned(store, 4_990).len(), 11);
    assert_eq!(
        store.get(5_000).unwrap().as_deref(),
        Some(records[4_999].bytes.as_slice())
    );
}

pub(super) async fn the_merkle_tree_follows_appends_and_rebuilds(store: &dyn LogStore) {
    let records = records_after(Head::default(), 7);
    let head = store.append(records.clone(), Head::default()).await.unwrap();
    let leaves = |store: &dyn LogStore| {
        let tree = store.tree().read().unwrap();
        (0..tree.len()).map(|i| *tree.leaf(i).unwrap()).collect::<Vec<_>>()
    };
    let expected: Vec<_> = records.iter().map(|r| leaf_of_record(&r.bytes)).collect();
    assert_eq!(leaves(store), expected);
    store.rebuild_derived(head).unwrap();
    assert_eq!(leaves(store), expected);
    assert_eq!(store.head().unwrap(), head);
}

pub(super) async fn an_append_at_a_stale_head_is_a_conflict_and_changes_nothing(store: &dyn LogStore) {
    let head = store
        .append(records_after(Head::default(), 3), Head::default())
        .await
        .unwrap();
    let next = records_after(head, 2);
    // Stale revision (the head before the last append), and the right revision with another
    // hash: both are refused, and the log is as it was.
    let stale = Head {
        revision: 2,
        hash: store.head().unwrap().hash,
    };
    let forged = Head {
        hash: Hash([7; 32]),
        ..head
    };
    let empty = Head::default();
    for (what, expected, batch) in [
        ("stale revision", stale, next.clone()),
        ("other hash", forged, next.clone()),
        ("empty log expected", empty, records_after(empty, 1)),
        ("empty batch at a stale head", stale, Vec::new()),
    ] {
        match store.append(batch, expected).await {
            Err(StoreError::Conflict { expected: e, found }) => {
                assert_eq!((e, found), (expected, head), "{what}");
            }
            other => panic!("{what}: expected a conflict, got {other:?}"),
        }
        assert_eq!(store.head().unwrap(), head, "{what}: nothing appended");
        assert_eq!(scanned(store, 1).len(), 3, "{what}: nothing appended");
        assert_eq!(store.tree().read().unwrap().len(), 3, "{what}: no leaf pushed");
    }
    // At the real head, the same batch goes in.
    assert_eq!(store.append(next, head).await.unwrap().revision, 5);
}

/// Two appenders race at the same expected head, many times over: exactly one wins each
/// round, the other gets a conflict, and the log holds the winner's records whole.
pub(super) async fn of_two_racing_appends_at_one_head_exactly_one_wins(store: std::sync::Arc<dyn LogStore>) {
    let mut head = Head::default();
    for round in 0..20 {
        // Two different batches continuing the same head (distinct event ids, so hashes).
        let a = records_after(head, 1 + round % 3);
        let b = records_after(head, 2);
        let (sa, sb) = (store.clone(), store.clone());
        let (ta, tb) = (a.clone(), b.clone());
        let ra = tokio::spawn(async move { sa.append(ta, head).await });
        let rb = tokio::spawn(async move { sb.append(tb, head).await });
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        let (winner, new_head) = match (ra, rb) {
            (Ok(h), Err(StoreError::Conflict { found, .. })) => {
                assert_eq!(found, h, "round {round}: the loser saw the winner's head");
                (a, h)
            }
            (Err(StoreError::Conflict { found, .. }), Ok(h)) => {
                assert_eq!(found, h, "round {round}: the loser saw the winner's head");
                (b, h)
            }
            other => panic!("round {round}: expected one success and one conflict, got {other:?}"),
        };
        let last = winner.last().unwrap();
        assert_eq!(
            new_head,
            Head {
                revision: last.revision,
                hash: last.hash
            }
        );
        for r in &winner {
            assert_eq!(store.get(r.revision).unwrap().as_deref(), Some(r.bytes.as_slice()));
        }
        head = new_head;
    }
    assert_eq!(store.head().unwrap(), head);
    assert_eq!(scanned(store.as_ref(), 1).len() as u64, head.revision);
    let tree = store.tree().read().unwrap();
    let leaves: Vec<_> = (0..tree.len()).map(|i| *tree.leaf(i).unwrap()).collect();
    let expected: Vec<_> = scanned(store.as_ref(), 1)
        .iter()
        .map(|(_, bytes)| leaf_of_record(bytes))
        .collect();
    assert_eq!(leaves, expected, "the tree holds the winners' leaves in order");
}

macro_rules! conformance {
    // A store made by an async constructor (one that connects to a server).
    ($name:ident, async $make:expr) => {
        conformance!(@cases $name, async fn make() -> Box<dyn LogStore> {
            Box::new(($make)().await)
        });
    };
    ($name:ident, $make:expr) => {
        conformance!(@cases $name, async fn make() -> Box<dyn LogStore> {
            Box::new(($make)())
        });
    };
    (@cases $name:ident, $make:item) => {
        mod $name {
            use super::*;

            $make

            #[tokio::test]
            async fn empty_store_has_genesis_head() {
                super::empty_store_has_genesis_head(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn append_reports_the_head_and_revisions_stay_dense() {
                super::append_reports_the_head_and_revisions_stay_dense(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn an_append_that_does_not_continue_the_head_is_refused_whole() {
                super::an_append_that_does_not_continue_the_head_is_refused_whole(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn range_reads_start_and_stop_where_asked() {
                super::range_reads_start_and_stop_where_asked(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn stored_records_keep_the_hash_chain() {
                super::stored_records_keep_the_hash_chain(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn large_batches_append_atomically() {
                super::large_batches_append_atomically(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn the_merkle_tree_follows_appends_and_rebuilds() {
                super::the_merkle_tree_follows_appends_and_rebuilds(make().await.as_ref()).await
            }
            #[tokio::test]
            async fn an_append_at_a_stale_head_is_a_conflict_and_changes_nothing() {
                super::an_append_at_a_stale_head_is_a_conflict_and_changes_nothing(make().await.as_ref()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn of_two_racing_appends_at_one_head_exactly_one_wins() {
                super::of_two_racing_appends_at_one_head_exactly_one_wins(make().await.into()).await
            }
        }
    };
}

conformance!(sled, || super::super::SledStore::temporary().unwrap());
conformance!(memory, super::super::MemoryStore::new);
conformance!(jetstream, async super::super::jetstream::test_server::store);
conformance!(jetstream_copied, async super::super::jetstream::test_server::store_with_copy);

/// Durability, for stores that live on disk: what was flushed is there after a reopen, and
/// appends continue from it.
#[tokio::test]
async fn sled_keeps_flushed_records_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let records = records_after(Head::default(), 4);
    let head = {
        let store = super::SledStore::open(dir.path()).unwrap();
        let head = store.append(records, Head::default()).await.unwrap();
        store.flush().await.unwrap();
        head
    };
    let store = super::SledStore::open(dir.path()).unwrap();
    assert_eq!(store.head().unwrap(), head);
    assert_eq!(scanned(&store, 1).len(), 4);
    assert_eq!(store.tree().read().unwrap().len(), 4);
    let head = store.append(records_after(head, 1), head).await.unwrap();
    assert_eq!(head.revision, 5);
}

/// A JetStream store's copy on disk: closed and opened again, it still holds what it had,
/// the store starts from it and goes on following the stream, appends included.
#[tokio::test]
async fn a_jetstream_copy_is_kept_across_a_reopen() {
    use super::jetstream::test_server;
    let name = format!("T{}", uuid::Uuid::new_v4().simple());
    let copy = test_server::copy_dir();
    let head = {
        let store = test_server::store_over(&name, &copy).await;
        let head = store
            .append(records_after(Head::default(), 4), Head::default())
            .await
            .unwrap();
        store.flush_all().await.unwrap();
        head
    };
    let connection =
        super::JetStreamStore::connect(&super::JetStreamConfig::new(&test_server::url(), &name), Some(&copy))
            .await
            .unwrap();
    assert_eq!(connection.local, head, "the copy keeps what it had");
    let (store, feed) = connection.follow(true).await.unwrap();
    assert!(feed.is_none(), "nothing to fetch: the copy holds the whole stream");
    assert_eq!(store.head().unwrap(), head);
    assert_eq!(scanned(&store, 1).len(), 4);
    assert_eq!(store.tree().read().unwrap().len(), 4);
    let head = store.append(records_after(head, 1), head).await.unwrap();
    assert_eq!(head.revision, 5);
}

/// A copy whose appends fail while `fail` is set, or once when they reach `fail_once_at`,
/// as sled's do on a full disk; reopened (`recover`), it keeps only the records up to
/// `durable`, as a sled copy keeps only what reached its disk. Counts the reopenings.
struct RefusingCopy {
    inner: super::MemoryStore,
    fail: std::sync::atomic::AtomicBool,
    fail_once_at: std::sync::atomic::AtomicU64,
    durable: std::sync::atomic::AtomicU64,
    reopened: std::sync::atomic::AtomicUsize,
}

impl RefusingCopy {
    fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(RefusingCopy {
            inner: super::MemoryStore::new(),
            fail: false.into(),
            fail_once_at: u64::MAX.into(),
            durable: u64::MAX.into(),
            reopened: 0.into(),
        })
    }
}

impl LogStore for RefusingCopy {
    fn head(&self) -> Result<Head, StoreError> {
        self.inner.head()
    }

    fn append(&self, records: Vec<Record>, expected: Head) -> super::BoxFuture<'_, Result<Head, StoreError>> {
        use std::sync::atomic::Ordering;
        let reaches = records.last().map_or(0, |r| r.revision);
        let once = self.fail_once_at.load(Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst)
            || (reaches >= once
                && self
                    .fail_once_at
                    .compare_exchange(once, u64::MAX, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok())
        {
            return Box::pin(async { Err(StoreError::io("No space left on device (injected)")) });
        }
        self.inner.append(records, expected)
    }

    fn flush(&self) -> super::BoxFuture<'_, Result<(), StoreError>> {
        self.inner.flush()
    }

    fn recover(&self) -> super::BoxFuture<'_, Result<(), StoreError>> {
        use std::sync::atomic::Ordering;
        self.reopened.fetch_add(1, Ordering::SeqCst);
        self.inner.truncate(self.durable.load(Ordering::SeqCst));
        self.inner.recover()
    }

    fn scan(&self, from: u64) -> super::RecordIter<'_> {
        self.inner.scan(from)
    }

    fn get(&self, revision: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(revision)
    }

    fn rebuild_derived(&self, head: Head) -> Result<(), StoreError> {
        self.inner.rebuild_derived(head)
    }

    fn tree(&self) -> &crate::tlog::TreeLock {
        self.inner.tree()
    }
}

/// A config for a fresh stream on the test server, with a short timeout.
fn fresh_stream() -> super::JetStreamConfig {
    let mut config = super::JetStreamConfig::new(
        &super::jetstream::test_server::url(),
        &format!("T{}", uuid::Uuid::new_v4().simple()),
    );
    config.timeout = std::time::Duration::from_secs(2);
    config
}

/// A JetStream node whose copy refuses writes (a full disk): the write it was asked for is
/// on the stream but not acknowledged, readiness names the copy and the sequences it
/// refused, and the follower reopens the copy and tries again. Once the copy takes writes,
/// the node catches up by itself, readiness clears and writes go on.
#[tokio::test]
async fn a_jetstream_copy_that_refuses_writes_is_reported_reopened_and_caught_up() {
    use std::sync::atomic::Ordering;
    let copy = RefusingCopy::new();
    copy.fail.store(true, Ordering::SeqCst);
    let connection = super::JetStreamStore::connect(&fresh_stream(), None).await.unwrap();
    let (store, _) = connection.follow_into(copy.clone(), false).await.unwrap();
    assert_eq!(store.unavailable(), None);
    let records = records_after(Head::default(), 2);
    let err = store.append(records.clone(), Head::default()).await.unwrap_err();
    assert!(err.to_string().contains("No space left on device (injected)"), "{err}");
    let why = store.unavailable().expect("readiness names the refusing copy");
    assert!(
        why.contains("copy of the JetStream stream") && why.contains("refused sequences 1 to 2"),
        "{why}"
    );
    assert!(
        copy.reopened.load(Ordering::SeqCst) > 0,
        "the follower reopens the copy"
    );
    assert_eq!(store.head().unwrap(), Head::default(), "nothing is in the copy yet");

    copy.fail.store(false, Ordering::SeqCst);
    let mut head = store.watch_head().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), head.wait_for(|h| h.revision >= 2))
        .await
        .expect("the node catches up once the copy takes writes")
        .unwrap();
    assert_eq!(store.unavailable(), None, "readiness clears");
    let got: Vec<_> = scanned(&store, 1).into_iter().map(|(_, bytes)| bytes).collect();
    let want: Vec<_> = records.iter().map(|r| r.bytes.clone()).collect();
    assert_eq!(got, want, "the copy holds what the stream holds");
    let last = Head {
        revision: 2,
        hash: records[1].hash,
    };
    assert_eq!(store.append(records_after(last, 1), last).await.unwrap().revision, 3);
}

/// A copy reopened after a failed write keeps only what reached its disk (sled's last half
/// second can be missing). The node's head never goes back, so its ledger, which has
/// applied those revisions, is not told the log shrank (that poisoned it for good): the
/// copy fetches what it lost, the node applies the other node's write and writes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_lost_unflushed_records_is_refilled_without_going_back() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let config = fresh_stream();
    let copy = RefusingCopy::new();
    let connection = super::JetStreamStore::connect(&config, None).await.unwrap();
    let (store, _) = connection.follow_into(copy.clone(), false).await.unwrap();
    let (ledger, _) = crate::Ledger::open(std::sync::Arc::new(store), Default::default()).unwrap();
    for i in 0..3 {
        let mut dataset = crate::generate::dataset();
        dataset.id = format!("DS_LEDGER_{i}");
        ledger.define_dataset(dataset, "test").await.unwrap();
    }
    let head = ledger.log().head().unwrap();
    assert_eq!(head.revision, 3);

    // Another node writes revision 4; this node's copy refuses it and, reopened, holds
    // revision 1 only.
    copy.durable.store(1, Ordering::SeqCst);
    copy.fail.store(true, Ordering::SeqCst);
    let other = super::jetstream::test_server::open(&config, None).await.unwrap();
    other.append(records_after(head, 1), head).await.unwrap();
    // The deadline only guards against a hang.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while copy.reopened.load(Ordering::SeqCst) == 0 || copy.head().unwrap().revision != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy is not reopened within 120 s (reopened {} times, holds revision {})",
            copy.reopened.load(Ordering::SeqCst),
            copy.head().unwrap().revision
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ledger.log().head().unwrap(), head, "the node's head does not go back");
    assert!(ledger.health().degraded, "readiness reports the copy");
    // A snapshot now would cover more than the copy holds: the flush before it says so.
    let err = ledger.flush().await.unwrap_err().to_string();
    assert!(err.contains("holds revision 1, behind the revision 3"), "{err}");

    copy.fail.store(false, Ordering::SeqCst);
    while ledger.read().head().revision < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other node's write is not applied within 120 s (head {})",
            ledger.read().head().revision
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let health = ledger.health();
    assert!(!health.degraded && health.writable, "{:?}", health.reason);
    let mut dataset = crate::generate::dataset();
    dataset.id = "DS_LEDGER_AFTER".into();
    assert_eq!(ledger.define_dataset(dataset, "test").await.unwrap().revision, 5);
    let theirs: Vec<_> = other.read_range(1, None).map(|r| r.unwrap()).collect().await;
    let ours = scanned(copy.as_ref(), 1);
    assert_eq!(ours.len(), 5);
    assert_eq!(ours[..4], theirs[..4], "the copy holds the stream");
}

/// The start-up feed hands each revision once and in order, even when the copy fails a
/// write halfway through the download and, reopened, lost part of what it had fed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_feed_hands_each_revision_once_across_a_copy_failure() {
    use std::sync::atomic::Ordering;
    let config = fresh_stream();
    let writer = super::jetstream::test_server::open(&config, None).await.unwrap();
    let mut head = Head::default();
    for _ in 0..6 {
        let records = records_after(head, 200);
        head = writer.append(records, head).await.unwrap();
    }
    let copy = RefusingCopy::new();
    copy.fail_once_at.store(900, Ordering::SeqCst);
    copy.durable.store(300, Ordering::SeqCst);
    let connection = super::JetStreamStore::connect(&config, None).await.unwrap();
    assert_eq!(connection.last, 1200);
    let (store, feed) = connection.follow_into(copy.clone(), true).await.unwrap();
    let feed = feed.expect("the stream is fed to the start-up fold");
    let fed = tokio::task::spawn_blocking(move || feed.map(|r| r.map(|(revision, _)| revision)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        copy.reopened.load(Ordering::SeqCst),
        1,
        "the copy failed once and was reopened"
    );
    let fed: Vec<u64> = fed.into_iter().map(|r| r.unwrap()).collect();
    let out_of_order = fed.iter().zip(1u64..).find(|(got, want)| **got != *want);
    assert!(
        out_of_order.is_none() && fed.len() == 1200,
        "{} revisions fed; the first out of order (fed, due): {out_of_order:?}",
        fed.len()
    );
    let mut watch = store.watch_head().unwrap();
    watch.wait_for(|h| h.revision >= 1200).await.unwrap();
    assert_eq!(copy.head().unwrap(), head, "the copy refetched what it lost");
}

/// Records the follower has stored in the copy but not announced yet are not read: a scan
/// ends at the announced head and `get` past it finds nothing, so no reader (a
/// verification of the whole log, say) sees a log longer than the head it is told.
#[tokio::test]
async fn a_jetstream_store_reads_its_copy_up_to_the_announced_head_only() {
    let copy = RefusingCopy::new();
    let connection = super::JetStreamStore::connect(&fresh_stream(), None).await.unwrap();
    let (store, _) = connection.follow_into(copy.clone(), false).await.unwrap();
    let head = store
        .append(records_after(Head::default(), 2), Head::default())
        .await
        .unwrap();
    // As the follower does, just before it announces revision 3.
    copy.inner.append(records_after(head, 1), head).await.unwrap();
    assert_eq!(store.head().unwrap(), head);
    let revisions: Vec<u64> = scanned(&store, 1).into_iter().map(|(revision, _)| revision).collect();
    assert_eq!(revisions, [1, 2]);
    assert_eq!(store.get(3).unwrap(), None);
    assert!(store.get(2).unwrap().is_some());
    let read: Vec<_> = store.read_range(2, None).collect().await;
    assert_eq!(read.len(), 1);
}
