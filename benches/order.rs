//! The cost of putting responses in selection-set order ([`ResponseOrder::apply`]) against
//! executing the query that made them, for a small answer and a page of 100 figures, over a
//! generated ledger of 20 releases x 500 figures. `cargo bench --bench order`; the ratio of
//! `order` to `execute` for the same query is the share reordering adds to an execution by
//! async-graphql (the fast path and the response cache do not reorder).

use std::sync::Arc;

use async_graphql::{Request, Response};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tradeledger::generate::{self, Generator};
use tradeledger::graphql::{build_schema, Limits, QueryLimits};
use tradeledger::import::{load, Batch};
use tradeledger::ledger::{Ledger, OpenOptions};
use tradeledger::store::MemoryStore;

const QUERIES: [(&str, &str); 2] = [
    ("small", "{ c: ledger { revision hash } a: datasets { id name } zz: ledger { eventCount } }"),
    (
        "page100",
        "{ observations(dataset: \"SYNTH\", first: 100) { edges { cursor node { key period measure value status \
         revision versionCount revisedFrom preliminaryValue publishedAt dimensions { dimension code label } } } pageInfo { hasNextPage endCursor } } }",
    ),
];

fn order(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ledger, dataset) = rt.block_on(async {
        let (ledger, _) = Ledger::open(Arc::new(MemoryStore::new()), OpenOptions::default()).unwrap();
        let ds = generate::dataset();
        let id = ds.id.to_string();
        let batch = Batch {
            datasets: vec![ds],
            releases: Generator::new(20, 500, 42).collect(),
            origins: Vec::new(),
        };
        load(&ledger, batch, "bench").await.unwrap();
        (ledger, id)
    });
    let limits = Limits {
        query_plans: 0,
        ..Limits::default()
    };
    let schema = build_schema(ledger.clone(), limits);
    let queries = QueryLimits::new(limits, ledger);
    let mut group = c.benchmark_group("order");
    for (name, query) in QUERIES {
        let query = query.replace("SYNTH", &dataset);
        let prepare = || queries.prepare(Request::new(query.as_str())).unwrap();
        let (request, ordering) = prepare();
        let response = rt.block_on(schema.execute(request));
        assert!(response.errors.is_empty(), "{name}: {:?}", response.errors);
        group.bench_function(format!("{name}/execute"), |b| {
            b.to_async(&rt)
                .iter_batched(|| prepare().0, |request| schema.execute(request), BatchSize::SmallInput)
        });
        group.bench_function(format!("{name}/order"), |b| {
            b.iter_batched(
                || Response::new(response.data.clone()),
                |mut r| {
                    ordering.apply(&mut r);
                    r
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, order);
criterion_main!(benches);
