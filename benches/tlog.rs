//! Criterion benchmarks of the transparency log: what the tree adds to an append, proof
//! latency as the tree grows (it must stay O(log n)), and the start-up cost of building the
//! tree from stored leaves.
//!
//! A log of 10^4 figure versions has 21 events (500 per release), one of 10^7 versions
//! 20,001; 10^6 events shows growth beyond that, and proofs are also timed in trees of 10^4
//! and 10^7 events. `cargo bench --bench tlog`.

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tradeledger::domain::Event;
use tradeledger::generate::{self, Generator};
use tradeledger::store::{encode, Envelope, Hash, FORMAT_VERSION};
use tradeledger::tlog::{leaf_hash, MerkleTree, Node};
use uuid::Uuid;

/// Events of the 10^4- and 10^7-version logs, and a million.
const SIZES: [(&str, u64); 3] = [
    ("10^4_versions", 21),
    ("10^7_versions", 20_001),
    ("10^6_events", 1_000_000),
];

/// Tree sizes for proof latency: 10^4 and 10^7 events (the in-memory tree of 10^7 leaves
/// takes some 640 MB and a few seconds to build).
const PROOF_SIZES: [(&str, u64); 2] = [("10^4_events", 10_000), ("10^7_events", 10_000_000)];

fn tree(n: u64) -> MerkleTree {
    MerkleTree::from_leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect())
}

/// One release event of 500 observations, as the writer builds it.
fn envelope() -> Envelope {
    let ds = generate::dataset();
    let release = Generator::new(1, 500, 7).next().unwrap().validate(&ds).unwrap();
    Envelope {
        format: FORMAT_VERSION,
        revision: 2,
        event_id: Uuid::new_v4(),
        recorded_at: Utc::now(),
        actor: "bench".into(),
        prev_hash: Hash::GENESIS.to_hex(),
        event: Event::ReleasePublished { release },
    }
}

fn append(c: &mut Criterion) {
    let env = envelope();
    let (_, bytes) = encode(&env);
    let mut g = c.benchmark_group("tlog_append_500_observation_event");
    // What every append did before the tree: serialise and hash the event.
    g.bench_function("encode_and_chain_hash (before)", |b| {
        b.iter(|| black_box(encode(&env).0))
    });
    // What the tree adds: the leaf hash of the same bytes, and the push.
    let mut t = tree(20_001);
    g.bench_function("leaf_hash_and_push (added)", |b| {
        b.iter(|| t.push(leaf_hash(black_box(&bytes[32..]))))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let mut g = c.benchmark_group("tlog_proof");
    for (label, n) in SIZES.into_iter().chain(PROOF_SIZES) {
        let t = tree(n);
        let index = n / 3;
        g.bench_with_input(BenchmarkId::new("inclusion", label), &t, |b, t| {
            b.iter(|| black_box(t.inclusion_proof(black_box(index), n).unwrap().len()))
        });
        g.bench_with_input(BenchmarkId::new("consistency", label), &t, |b, t| {
            b.iter(|| black_box(t.consistency_proof(black_box(n / 3 + 1), n).unwrap().len()))
        });
        g.bench_with_input(BenchmarkId::new("root_of_old_size", label), &t, |b, t| {
            b.iter(|| black_box(t.root(black_box(n - 1)).unwrap()))
        });
    }
    g.finish();
}

fn startup(c: &mut Criterion) {
    let mut g = c.benchmark_group("tlog_startup_from_leaves");
    g.sample_size(10);
    for (label, n) in SIZES {
        let leaves: Vec<Node> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        g.bench_with_input(BenchmarkId::from_parameter(label), &leaves, |b, l| {
            b.iter(|| black_box(MerkleTree::from_leaves(l.clone()).heap_bytes()))
        });
    }
    g.finish();
}

criterion_group!(benches, append, proofs, startup);
criterion_main!(benches);
