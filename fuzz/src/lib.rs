//! Helpers shared by the fuzz targets and the seed generator: the fixture dataset, the
//! checks run on whatever the importers accept, and canonical encoded events.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use tradeledger::domain::{Dataset, Event, ReleaseDraft};
use tradeledger::import::Batch;
use tradeledger::store::{encode, Envelope, Hash, FORMAT_VERSION};

/// `fixtures/00_dataset.json` (the Bank of Korea dataset, three dimensions).
pub const DATASET_JSON: &str = include_str!("../../fixtures/00_dataset.json");
/// The fixture releases, used to build a `ReleasePublished` event.
pub const PRELIMINARY_JSON: &str = include_str!("../../fixtures/01_bok_2025_s1_preliminary.json");
pub const REVISION_JSON: &str = include_str!("../../fixtures/02_synthetic_2025_s1_revision.json");

/// The fixture dataset, parsed once.
pub fn dataset() -> &'static Dataset {
    static DATASET: OnceLock<Dataset> = OnceLock::new();
    DATASET.get_or_init(|| {
        let mut v: serde_json::Value = serde_json::from_str(DATASET_JSON).expect("fixture dataset is JSON");
        v.as_object_mut().expect("an object").remove("$comment");
        let ds: Dataset = serde_json::from_value(v).expect("fixture dataset decodes");
        ds.validate().expect("fixture dataset is valid");
        ds
    })
}

/// Validates every release of an imported batch against the fixture dataset. The dataset
/// id is set to the fixture's first: `ReleaseDraft::validate` expects the caller to have
/// resolved the dataset (it `debug_assert`s the ids match), as the ledger does.
pub fn validate_all(batch: Batch) {
    for mut draft in batch.releases {
        draft.dataset = dataset().id.clone();
        check_release(draft);
    }
}

fn check_release(draft: ReleaseDraft) {
    let ds = dataset();
    let n = draft.observations.len();
    match draft.validate(ds) {
        Ok(release) => {
            // A validated release has canonical keys and periods, sorted and without duplicates.
            assert_eq!(release.observations.len(), n);
            for o in &release.observations {
                let key = ds.parse_key(&o.key).expect("validated keys parse");
                assert_eq!(ds.format_key(&key), o.key);
                assert!(ds.has_measure(&o.measure));
            }
            for w in release.observations.windows(2) {
                assert!(
                    (&w[0].key, w[0].period, &w[0].measure) < (&w[1].key, w[1].period, &w[1].measure),
                    "observations sorted and unique"
                );
            }
            assert!(!release.title.is_empty());
            // What is recorded must survive the event encoding unchanged.
            let event = Event::ReleasePublished { release };
            let env = envelope(1, &Hash::GENESIS, event);
            let (_, bytes) = encode(&env);
            let back = tradeledger::store::decode(1, &bytes, &Hash::GENESIS).expect("a fresh record decodes");
            assert_eq!(back.envelope, env);
        }
        Err(e) => {
            assert!(
                !e.field.is_empty() && !e.message.is_empty(),
                "errors name a field and a reason"
            );
        }
    }
}

/// An envelope with fixed id and time, so that the encoding is reproducible.
pub fn envelope(revision: u64, prev: &Hash, event: Event) -> Envelope {
    let recorded_at: DateTime<Utc> = "2026-01-15T00:00:00Z".parse().expect("time");
    Envelope {
        format: FORMAT_VERSION,
        revision,
        event_id: uuid::Uuid::from_u128(0x6b1f0c2e_4d3a_4e51_9a57_000000000000 + revision as u128),
        recorded_at,
        actor: "fuzz".into(),
        prev_hash: prev.to_hex(),
        event,
    }
}

/// Canonical encoded events at revision 1 after the genesis hash: a `DatasetDefined` (the
/// fixture dataset) and a `ReleasePublished` (the fixture preliminary release).
pub fn canonical_events() -> &'static [Vec<u8>] {
    static EVENTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let ds = dataset().clone();
        let batch = tradeledger::import::parse_json("01.json", PRELIMINARY_JSON.as_bytes()).expect("fixture release");
        let draft = batch.releases.into_iter().next().expect("one release");
        let release = draft.validate(&ds).expect("fixture release is valid");
        [
            Event::DatasetDefined { dataset: ds },
            Event::ReleasePublished { release },
        ]
        .into_iter()
        .map(|ev| encode(&envelope(1, &Hash::GENESIS, ev)).1)
        .collect()
    })
}
