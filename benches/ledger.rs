//! Criterion benchmarks of the ledger core at growing sizes, so that growth is visible.
//!
//! Sizes are figure versions: 10^4 and 10^6 by default; set `TL_BENCH_SIZES=4,6,7` to add
//! 10^7 (about 1.5 GB of memory and a minute of set-up). Compare the same benchmark across
//! sizes in one run: `cargo bench --bench ledger`.

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use tradeledger::domain::{Event, ReleaseDraft};
use tradeledger::generate::{self, Generator};
use tradeledger::ledger::{fold_log, Ledger, OpenOptions};
use tradeledger::projection::{AsOf, CellKey, Filter, Projection, RevisionSummary};
use tradeledger::store::{decode, encode, Envelope, Hash, Head, LogStore, Record, SledStore, FORMAT_VERSION};
use uuid::Uuid;

const PER_RELEASE: usize = 500;

fn sizes() -> Vec<u32> {
    std::env::var("TL_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![4, 6])
}

/// The encoded events of a synthetic log with about `versions` figure versions.
fn records(versions: usize) -> Vec<Record> {
    let ds = generate::dataset();
    let mut prev = Hash::GENESIS;
    let mut out = Vec::new();
    let mut push = |event: Event, out: &mut Vec<Record>| {
        let revision = out.len() as u64 + 1;
        let (hash, bytes) = encode(&Envelope {
            format: FORMAT_VERSION,
            revision,
            event_id: Uuid::new_v4(),
            recorded_at: Utc::now(),
            actor: "bench".into(),
            prev_hash: prev.to_hex(),
            event,
        });
        prev = hash;
        out.push(Record { revision, hash, bytes });
    };
    push(Event::DatasetDefined { dataset: ds.clone() }, &mut out);
    let releases = versions.div_ceil(PER_RELEASE);
    for draft in Generator::new(releases, PER_RELEASE, 42) {
        let release = draft.validate(&ds).expect("generated releases are valid");
        push(Event::ReleasePublished { release }, &mut out);
    }
    out
}

fn fold(records: &[Record]) -> Projection {
    let mut p = Projection::new();
    let mut prev = Hash::GENESIS;
    for r in records {
        let e = decode(r.revision, &r.bytes, &prev).unwrap();
        prev = e.hash;
        p.apply(&e).unwrap();
    }
    p
}

fn reads(c: &mut Criterion) {
    for exp in sizes() {
        let n = 10usize.pow(exp);
        let p = fold(&records(n));
        let ds = p.dataset(generate::DATASET_ID).unwrap();
        let latest = p.latest();
        let early = p.bound(Some(AsOf::Revision(3))).unwrap();
        let releases = n.div_ceil(PER_RELEASE);
        // A figure of the first period, which every later release leaves alone: as-of reads
        // of it touch the start of its version list whatever the log's length.
        let key = ds.def.parse_key("_T._T._T").unwrap();
        let cell = CellKey {
            key,
            period: generate::period(0),
            measure: 0,
        };
        let mid = CellKey {
            period: generate::period(releases / 2),
            ..cell
        };
        let label = format!("10^{exp}");
        let mut g = c.benchmark_group("read");
        g.bench_with_input(BenchmarkId::new("lookup_current", &label), &mid, |b, cell| {
            b.iter(|| black_box(ds.get(cell, latest).map(|o| o.current())))
        });
        g.bench_with_input(BenchmarkId::new("lookup_as_of_early", &label), &cell, |b, cell| {
            b.iter(|| black_box(ds.get(cell, early).map(|o| o.current())))
        });
        g.bench_with_input(BenchmarkId::new("breakdown_20_items", &label), &mid, |b, cell| {
            b.iter(|| black_box(ds.breakdown(&cell.key, 1, cell.period, 0, latest).residual))
        });
        g.bench_with_input(BenchmarkId::new("breakdown_as_of_early", &label), &cell, |b, cell| {
            b.iter(|| black_box(ds.breakdown(&cell.key, 1, cell.period, 0, early).residual))
        });
        g.bench_with_input(BenchmarkId::new("history", &label), &mid, |b, cell| {
            b.iter(|| black_box(ds.history(cell).map(|h| h.versions.len())))
        });
        let filter = Filter {
            periods: Some(vec![mid.period]),
            ..Filter::default()
        };
        g.bench_with_input(
            BenchmarkId::new("revision_summary_one_period", &label),
            &filter,
            |b, f| b.iter(|| black_box(RevisionSummary::of(p.select(ds, f, latest, None)).mean_revision)),
        );
        g.finish();
    }
}

fn rebuild(c: &mut Criterion) {
    let mut g = c.benchmark_group("rebuild_from_sled");
    g.sample_size(10);
    for exp in sizes().into_iter().filter(|&e| e <= 6) {
        let n = 10usize.pow(exp);
        let store = SledStore::temporary().unwrap();
        store.append_blocking(&records(n), Head::default()).unwrap();
        g.throughput(criterion::Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("10^{exp}")), |b| {
            b.iter(|| black_box(fold_log(&store).unwrap().0.version_count()))
        });
    }
    g.finish();
}

fn one_release(i: u64) -> ReleaseDraft {
    let mut gen = Generator::new(1, 1, i);
    let mut d = gen.next().unwrap();
    d.id = Some(Uuid::new_v4());
    d
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = rt.block_on(async {
        let store: Arc<dyn LogStore> = Arc::new(SledStore::open(dir.path()).unwrap());
        let (ledger, _) = Ledger::open(store, OpenOptions::default()).unwrap();
        ledger.define_dataset(generate::dataset(), "bench").await.unwrap();
        ledger
    });
    let mut g = c.benchmark_group("append_durable");
    g.sample_size(20);
    g.bench_function("single_release_1_observation", |b| {
        b.to_async(&rt).iter_batched(
            || one_release(1),
            |d| {
                let l = ledger.clone();
                async move { l.publish(d, None, "bench").await.unwrap() }
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(criterion::Throughput::Elements(64));
    g.bench_function("64_concurrent_writers_1_observation", |b| {
        b.to_async(&rt).iter_batched(
            || (0..64).map(one_release).collect::<Vec<_>>(),
            |drafts| {
                let l = ledger.clone();
                async move {
                    let tasks: Vec<_> = drafts
                        .into_iter()
                        .map(|d| {
                            let l = l.clone();
                            tokio::spawn(async move { l.publish(d, None, "bench").await.unwrap() })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, reads, rebuild, append);
criterion_main!(benches);
