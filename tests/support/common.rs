//! Helpers shared by the store and ledger tests: fixtures, and ledgers over sled stores in
//! temporary directories.
#![allow(dead_code)]

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;
use tempfile::TempDir;
use tradeledger::domain::{Dataset, ObservationDraft, ReleaseDraft, ReleaseStatus};
use tradeledger::import::Batch;
use tradeledger::ledger::{Committed, OpenOptions};
use tradeledger::projection::{AsOf, CellKey};
use tradeledger::store::{LogStore, SledStore};
use tradeledger::Ledger;

#[allow(unused_imports)]
pub use super::fixtures::{fixtures_dir, DATASET, PRELIMINARY_ID, REVISION_ID};

pub fn fixtures() -> Batch {
    Batch::read_dir(&fixtures_dir()).expect("fixtures load")
}

pub fn dataset() -> Dataset {
    fixtures().datasets.remove(0)
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Opens a sled store at `path`. A store dropped a moment ago may still hold sled's file
/// lock (the writer task lets go of its handle just after answering): `SledStore::open`
/// waits for it.
pub async fn open_store(path: &Path) -> SledStore {
    SledStore::open(path).unwrap_or_else(|e| panic!("cannot open the store at {}: {e}", path.display()))
}

/// A ledger over `store`, which must hold an undamaged log.
pub fn open_ledger(store: &SledStore) -> Ledger {
    let (ledger, verification) =
        Ledger::open(Arc::new(store.clone()) as Arc<dyn LogStore>, OpenOptions::default()).expect("ledger opens");
    assert!(verification.ok(), "{verification:?}");
    ledger
}

/// A fresh ledger in a temporary directory.
pub async fn fresh() -> (TempDir, SledStore, Ledger) {
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path()).await;
    let ledger = open_ledger(&store);
    (dir, store, ledger)
}

/// Defines the fixture dataset and publishes the fixture releases; one result per event.
pub async fn load_fixtures(ledger: &Ledger) -> Vec<Committed> {
    let batch = fixtures();
    let mut out = Vec::new();
    for ds in batch.datasets {
        out.push(ledger.define_dataset(ds, "test").await.expect("dataset defined"));
    }
    for draft in batch.releases {
        out.push(ledger.publish(draft, None, "test").await.expect("release published"));
    }
    out
}

/// The BAL figure `key` for `period` as of `as_of`, read from the ledger's projection.
pub fn figure(ledger: &Ledger, key: &str, period: &str, as_of: Option<AsOf>) -> Option<Decimal> {
    let p = ledger.read();
    let ds = p.dataset(DATASET)?;
    let cell = CellKey {
        key: ds.def.parse_key(key).unwrap(),
        period: period.parse().unwrap(),
        measure: ds.measure("BAL").unwrap(),
    };
    ds.get(&cell, p.bound(as_of).unwrap()).map(|o| o.current().value)
}

pub fn obs(key: &str, period: &str, measure: Option<&str>, value: &str) -> ObservationDraft {
    ObservationDraft {
        key: key.into(),
        period: period.into(),
        measure: measure.map(Into::into),
        value: value.into(),
    }
}

/// A release of the fixture dataset with the given observations.
pub fn draft(observations: Vec<ObservationDraft>) -> ReleaseDraft {
    ReleaseDraft {
        id: None,
        dataset: DATASET.into(),
        status: ReleaseStatus::Revised,
        title: "test release".into(),
        published_at: "2026-01-05T00:00:00Z".parse().unwrap(),
        source: None,
        observations,
        backfill: false,
        revision_reason: None,
    }
}
