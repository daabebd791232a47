//! Projection tests: the worked example of the design (real Bank of Korea figures), the
//! synthetic revision, as-of reads, breakdowns, revision statistics, selections, and a
//! property test that incremental folding equals a rebuild from the log.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::*;
use crate::domain::{Dataset, Event, ObservationDraft, Release, ReleaseDraft, ReleaseStatus};
use crate::import::Batch;
use crate::ledger::fold_log;
use crate::store::{decode, encode, Envelope, Hash, Record, SledStore, StoredEvent, FORMAT_VERSION};

const DATASET: &str = "KR_KNOWLEDGE_SERVICES";
const PRELIMINARY_ID: &str = "6b1f0c2e-4d3a-4e51-9a57-2025a0000001";
const REVISION_ID: &str = "6b1f0c2e-4d3a-4e51-9a57-2025a0000002";

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn period(s: &str) -> Period {
    Period::parse(s).unwrap()
}

/// A hash-chained log built in memory: every event goes through `encode` and `decode`, as it
/// would through the store.
#[derive(Default)]
struct Log {
    events: Vec<StoredEvent>,
    records: Vec<Record>,
    prev: Hash,
}

impl Log {
    fn push(&mut self, event: Event) -> StoredEvent {
        let revision = self.events.len() as u64 + 1;
        let envelope = Envelope {
            format: FORMAT_VERSION,
            revision,
            event_id: Uuid::new_v4(),
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(revision as i64),
            actor: "test".into(),
            prev_hash: self.prev.to_hex(),
            event,
        };
        let (hash, bytes) = encode(&envelope);
        let stored = decode(revision, &bytes, &self.prev).expect("a fresh record decodes");
        assert_eq!(stored.hash, hash);
        self.prev = hash;
        self.records.push(Record { revision, hash, bytes });
        self.events.push(stored.clone());
        stored
    }
}

fn fixtures() -> Batch {
    Batch::read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")).expect("fixtures load")
}

/// The fixtures folded into a projection: revision 1 defines the dataset, 2 is the
/// preliminary release, 3 the synthetic revision. Returns the projection after `upto` events.
fn fixture_projection(upto: usize) -> (Projection, Log) {
    let batch = fixtures();
    assert_eq!(batch.datasets.len(), 1);
    assert_eq!(batch.releases.len(), 2);
    let dataset = batch.datasets[0].clone();
    let mut log = Log::default();
    let mut projection = Projection::new();
    let mut events = vec![Event::DatasetDefined {
        dataset: dataset.clone(),
    }];
    for draft in batch.releases {
        events.push(Event::ReleasePublished {
            release: draft.validate(&dataset).expect("fixture releases are valid"),
        });
    }
    for event in events.into_iter().take(upto) {
        let stored = log.push(event);
        projection.apply(&stored).expect("fixture events apply");
    }
    (projection, log)
}

fn preliminary_id() -> Uuid {
    Uuid::parse_str(PRELIMINARY_ID).unwrap()
}

fn revision_id() -> Uuid {
    Uuid::parse_str(REVISION_ID).unwrap()
}

/// The figure `key` for `period` (measure BAL) as of `as_of`.
fn value_at(p: &Projection, key: &str, per: &str, as_of: Option<AsOf>) -> Option<Decimal> {
    let ds = p.dataset(DATASET).unwrap();
    let cell = CellKey {
        key: ds.def.parse_key(key).unwrap(),
        period: period(per),
        measure: ds.measure("BAL").unwrap(),
    };
    ds.get(&cell, p.bound(as_of).unwrap()).map(|o| o.current().value)
}

fn history<'a>(p: &'a Projection, key: &str, per: &str) -> ObservationAt<'a> {
    let ds = p.dataset(DATASET).unwrap();
    let cell = CellKey {
        key: ds.def.parse_key(key).unwrap(),
        period: period(per),
        measure: ds.measure("BAL").unwrap(),
    };
    ds.history(&cell).expect("figure exists")
}

/// Every figure of the design's table (2025-S1 and the 2024-S2 total).
const TABLE: [(&str, &str, &str); 12] = [
    ("_T._T._T", "2025-S1", "-4530"),
    ("_T._T._T", "2024-S2", "-3760"),
    ("IPR._T._T", "2025-S1", "-2450"),
    ("ICT._T._T", "2025-S1", "1960"),
    ("CUL._T._T", "2025-S1", "440"),
    ("PBS._T._T", "2025-S1", "-4480"),
    ("_T.ICT._T", "2025-S1", "1640"),
    ("_T.MFG._T", "2025-S1", "-2470"),
    ("_T.DIP._T", "2025-S1", "-2200"),
    ("_T._T.ASIA", "2025-S1", "3570"),
    ("_T._T.NAM", "2025-S1", "-3770"),
    ("_T._T.EUR", "2025-S1", "-2180"),
];

/// What the synthetic revision (fixtures/02) changes: key, period, preliminary, revised.
const REVISED: [(&str, &str, &str, &str); 5] = [
    ("_T._T._T", "2025-S1", "-4530", "-4610"),
    ("_T._T._T", "2024-S2", "-3760", "-3790"),
    ("IPR._T._T", "2025-S1", "-2450", "-2530"),
    ("_T.ICT._T", "2025-S1", "1640", "1600"),
    ("_T._T.NAM", "2025-S1", "-3770", "-3800"),
];

/// The worked example's total comes back as the exact decimal -4530, printed as "-4530".
#[test]
fn worked_example_total_is_exact() {
    let (p, _) = fixture_projection(2);
    let v = value_at(&p, "_T._T._T", "2025-S1", None).unwrap();
    assert_eq!(v, dec("-4530"));
    assert_eq!(v.to_string(), "-4530");
    assert_eq!(v.scale(), 0, "the value keeps the scale it was published with");
    let obs = history(&p, "_T._T._T", "2025-S1");
    assert_eq!(obs.versions.len(), 1);
    assert_eq!(p.release_at(obs.current().release).id, preliminary_id());
    assert_eq!(p.release_at(obs.current().release).status, ReleaseStatus::Preliminary);
}

/// Every figure of the fixture table is present, exactly, as of the preliminary release,
/// and nothing else is.
#[test]
fn every_table_figure_as_of_the_preliminary_release() {
    let (p, _) = fixture_projection(3);
    let prelim = Some(AsOf::Release(preliminary_id()));
    for (key, per, expected) in TABLE {
        let got = value_at(&p, key, per, prelim).unwrap_or_else(|| panic!("{key} {per} missing"));
        assert_eq!(got, dec(expected), "{key} {per}");
        assert_eq!(got.to_string(), expected, "{key} {per}");
    }
    let ds = p.dataset(DATASET).unwrap();
    assert_eq!(ds.cell_count(), TABLE.len());
    let filter = Filter::default();
    assert_eq!(
        p.select(ds, &filter, p.bound(prelim).unwrap(), None).count(),
        TABLE.len()
    );
    // A figure the release did not publish is absent rather than zero.
    assert_eq!(value_at(&p, "IPR._T._T", "2024-S2", prelim), None);
}

/// The synthetic revision keeps the preliminary -4530 beside the revised -4610, a delta of -80.
#[test]
fn synthetic_revision_keeps_preliminary_and_latest() {
    let (p, _) = fixture_projection(3);
    let obs = history(&p, "_T._T._T", "2025-S1");
    assert_eq!(obs.versions.len(), 2);
    assert_eq!(obs.preliminary().value, dec("-4530"));
    assert_eq!(obs.current().value, dec("-4610"));
    assert_eq!(obs.revised_from(), Some(dec("-4530")));
    assert_eq!(p.release_at(obs.current().release).status, ReleaseStatus::Revised);
    let stat = RevisionStat::of(&obs);
    assert_eq!(stat.revision, dec("-80"));
    assert_eq!(stat.revision.to_string(), "-80");
    assert_eq!(stat.revisions, 1);
    for (key, per, before, after) in REVISED {
        let obs = history(&p, key, per);
        assert_eq!(obs.preliminary().value, dec(before), "{key} {per}");
        assert_eq!(obs.current().value, dec(after), "{key} {per}");
    }
    // A republished unchanged figure has two versions but no revision.
    let cul = history(&p, "CUL._T._T", "2025-S1");
    assert_eq!(cul.versions.len(), 2);
    assert_eq!(RevisionStat::of(&cul).revisions, 0);
    assert_eq!(RevisionStat::of(&cul).revision, Decimal::ZERO);
}

/// Applying the revision reports exactly the five changed figures, and the release records
/// how many figures it revised.
#[test]
fn applying_the_revision_reports_revised_figures() {
    let (mut p, mut log) = fixture_projection(2);
    let batch = fixtures();
    let release = batch.releases[1].clone().validate(&batch.datasets[0]).unwrap();
    let stored = log.push(Event::ReleasePublished { release });
    let Applied::ReleasePublished { release, revised } = p.apply(&stored).unwrap() else {
        panic!("not a release");
    };
    assert_eq!(release, 1);
    let mut got: Vec<_> = revised
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.period.to_string(),
                r.previous.to_string(),
                r.value.to_string(),
                r.version,
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<_> = REVISED
        .iter()
        .map(|(k, per, a, b)| (*k, per.to_string(), a.to_string(), b.to_string(), 2))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let (_, info) = p.release(&revision_id()).unwrap();
    assert_eq!(info.revised_count, 5);
    assert_eq!(info.observation_count, 12);
    assert_eq!(info.revision, 3);
    assert_eq!(p.head().revision, 3);
    assert_eq!(p.head().hash, stored.hash);
    assert_eq!(p.version_count(), 24);
}

/// As of the preliminary release's revision, named by revision, by release or by a time
/// between the two publications, the total is still -4530 after the revision was appended.
#[test]
fn as_of_the_preliminary_release_after_the_revision() {
    let (p, _) = fixture_projection(3);
    let between: DateTime<Utc> = "2025-10-01T00:00:00Z".parse().unwrap();
    let prelim_published: DateTime<Utc> = "2025-09-03T03:00:00Z".parse().unwrap();
    let revision_published: DateTime<Utc> = "2025-12-10T03:00:00Z".parse().unwrap();
    for as_of in [
        AsOf::Revision(2),
        AsOf::Release(preliminary_id()),
        AsOf::PublishedAt(between),
        AsOf::PublishedAt(prelim_published),
        AsOf::PublishedAt(revision_published - Duration::nanoseconds(1)),
    ] {
        assert_eq!(p.bound(Some(as_of)).unwrap().revision, 2, "{as_of:?}");
        assert_eq!(
            value_at(&p, "_T._T._T", "2025-S1", Some(as_of)),
            Some(dec("-4530")),
            "{as_of:?}"
        );
        assert_eq!(
            value_at(&p, "_T._T._T", "2024-S2", Some(as_of)),
            Some(dec("-3760")),
            "{as_of:?}"
        );
    }
    for as_of in [
        None,
        Some(AsOf::Revision(3)),
        Some(AsOf::Release(revision_id())),
        Some(AsOf::PublishedAt(revision_published)),
    ] {
        assert_eq!(
            value_at(&p, "_T._T._T", "2025-S1", as_of),
            Some(dec("-4610")),
            "{as_of:?}"
        );
    }
    // Before anything was published, and at the revision that only defined the dataset,
    // there is no figure.
    for as_of in [
        AsOf::Revision(0),
        AsOf::Revision(1),
        AsOf::PublishedAt(prelim_published - Duration::seconds(1)),
    ] {
        assert_eq!(value_at(&p, "_T._T._T", "2025-S1", Some(as_of)), None, "{as_of:?}");
    }
}

/// Residuals of the three breakdowns under the total: 0, -1500 and -2150 as of the
/// preliminary release; 0, -1540 and -2200 after the revision.
#[test]
fn breakdown_residuals_before_and_after_the_revision() {
    let (p, _) = fixture_projection(3);
    let ds = p.dataset(DATASET).unwrap();
    let total = ds.def.total_key();
    let bal = ds.measure("BAL").unwrap();
    let s1 = period("2025-S1");
    let cases = [
        (
            Some(AsOf::Release(preliminary_id())),
            [("0", "-4530", 4), ("-1500", "-3030", 3), ("-2150", "-2380", 3)],
            "-4530",
        ),
        (
            None,
            [("0", "-4610", 4), ("-1540", "-3070", 3), ("-2200", "-2410", 3)],
            "-4610",
        ),
    ];
    for (as_of, expected, total_value) in cases {
        let bound = p.bound(as_of).unwrap();
        for (dim, (residual, sum, items)) in expected.into_iter().enumerate() {
            let b = ds.breakdown(&total, dim, s1, bal, bound);
            assert_eq!(
                b.total.map(|t| t.current().value),
                Some(dec(total_value)),
                "{as_of:?} dim {dim}"
            );
            assert_eq!(b.items.len(), items, "{as_of:?} dim {dim}");
            assert_eq!(b.sum_of_items, dec(sum), "{as_of:?} dim {dim}");
            assert_eq!(b.residual, Some(dec(residual)), "{as_of:?} dim {dim}");
        }
    }
    // The service-type items are named in code-list order.
    let b = ds.breakdown(&total, 0, s1, bal, p.latest());
    let keys: Vec<_> = b.items.iter().map(|o| ds.def.format_key(&o.cell.key)).collect();
    assert_eq!(keys, ["IPR._T._T", "ICT._T._T", "CUL._T._T", "PBS._T._T"]);
    // For 2024-S2 only the total is known: no items, and the whole total is residual.
    let b = ds.breakdown(&total, 0, period("2024-S2"), bal, p.latest());
    assert!(b.items.is_empty());
    assert_eq!(b.residual, Some(dec("-3790")));
    // Nothing published for the period: no total, no residual.
    let b = ds.breakdown(&total, 0, period("2023-S1"), bal, p.latest());
    assert!(b.total.is_none() && b.residual.is_none());
}

/// The revision summary over the whole dataset: 12 figures, 5 revised by -80, -30, -80,
/// -40 and -30, so the mean revision is -260/12 and the mean absolute revision 260/12.
#[test]
fn revision_summary_over_the_dataset() {
    let (p, _) = fixture_projection(3);
    let ds = p.dataset(DATASET).unwrap();
    let all = Filter::default();
    let s = RevisionSummary::of(p.select(ds, &all, p.latest(), None));
    assert_eq!(s.observations, 12);
    assert_eq!(s.revised, 5);
    assert_eq!(s.revisions, 5);
    assert_eq!(s.mean_revision, Some(dec("-21.666667")));
    assert_eq!(s.mean_absolute_revision, Some(dec("21.666667")));
    assert_eq!(s.max_absolute_revision, Some(dec("80")));

    // As of the preliminary release nothing has been revised yet.
    let s = RevisionSummary::of(p.select(ds, &all, p.bound(Some(AsOf::Revision(2))).unwrap(), None));
    assert_eq!((s.observations, s.revised, s.revisions), (12, 0, 0));
    assert_eq!(s.mean_revision, Some(Decimal::ZERO));
    assert_eq!(s.mean_absolute_revision, Some(Decimal::ZERO));

    // Royalties and ICT services: one revised by -80, one unchanged.
    let f = Filter {
        key: Some(KeyPattern::parse(&ds.def, "IPR+ICT..").unwrap()),
        ..Filter::default()
    };
    let s = RevisionSummary::of(p.select(ds, &f, p.latest(), None));
    assert_eq!((s.observations, s.revised, s.revisions), (2, 1, 1));
    assert_eq!(s.mean_revision, Some(dec("-40")));
    assert_eq!(s.mean_absolute_revision, Some(dec("40")));

    // Only the revised figures: the mean is over the five of them.
    let f = Filter {
        revised_only: true,
        ..Filter::default()
    };
    let s = RevisionSummary::of(p.select(ds, &f, p.latest(), None));
    assert_eq!((s.observations, s.revised), (5, 5));
    assert_eq!(s.mean_revision, Some(dec("-52")));

    // An empty selection has no means.
    let f = Filter {
        measures: Some(vec![ds.measure("CRE").unwrap()]),
        ..Filter::default()
    };
    let s = RevisionSummary::of(p.select(ds, &f, p.latest(), None));
    assert_eq!(s.observations, 0);
    assert_eq!(s.mean_revision, None);
    assert_eq!(s.mean_absolute_revision, None);
}

fn selected(p: &Projection, filter: &Filter, as_of: Option<AsOf>) -> Vec<String> {
    let ds = p.dataset(DATASET).unwrap();
    p.select(ds, filter, p.bound(as_of).unwrap(), None)
        .map(|o| format!("{} {}", ds.def.format_key(&o.cell.key), o.cell.period))
        .collect()
}

/// Key patterns, period lists and ranges, measures, statuses and `revised_only` select
/// exactly the figures they describe.
#[test]
fn filters_select_what_they_describe() {
    let (p, _) = fixture_projection(3);
    let ds = p.dataset(DATASET).unwrap();
    let key = |s: &str| Some(KeyPattern::parse(&ds.def, s).unwrap());
    let prelim = Some(AsOf::Revision(2));

    let f = Filter {
        key: key("IPR+ICT.."),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None), ["IPR._T._T 2025-S1", "ICT._T._T 2025-S1"]);

    let f = Filter {
        key: key("_T._T._T"),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None), ["_T._T._T 2024-S2", "_T._T._T 2025-S1"]);

    let f = Filter {
        key: key("_T.._T"),
        ..Filter::default()
    };
    assert_eq!(
        selected(&p, &f, None).len(),
        5,
        "total for two periods plus three industries"
    );

    let f = Filter {
        key: key("_T._T.ASIA+EUR"),
        periods: Some(vec![period("2025-S1")]),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None), ["_T._T.ASIA 2025-S1", "_T._T.EUR 2025-S1"]);

    let f = Filter {
        period_from: Some(period("2025-S1")),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None).len(), 11);
    let f = Filter {
        period_to: Some(period("2024-S2")),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None), ["_T._T._T 2024-S2"]);
    let f = Filter {
        period_from: Some(period("2024-S2")),
        period_to: Some(period("2025-S1")),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None).len(), 12);
    // A bound of another frequency matches none of the half-year figures.
    let f = Filter {
        period_from: Some(period("2020-Q1")),
        ..Filter::default()
    };
    assert!(selected(&p, &f, None).is_empty());

    let f = Filter {
        measures: Some(vec![ds.measure("BAL").unwrap()]),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None).len(), 12);

    // The revision republished every figure, so at the head all are REVISED; as of the
    // preliminary release all were PRELIMINARY.
    let status = |s: ReleaseStatus| Filter {
        statuses: Some(vec![s]),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &status(ReleaseStatus::Revised), None).len(), 12);
    assert!(selected(&p, &status(ReleaseStatus::Preliminary), None).is_empty());
    assert_eq!(selected(&p, &status(ReleaseStatus::Preliminary), prelim).len(), 12);
    assert!(selected(&p, &status(ReleaseStatus::Revised), prelim).is_empty());
    assert!(selected(&p, &status(ReleaseStatus::Final), None).is_empty());

    let revised = Filter {
        revised_only: true,
        ..Filter::default()
    };
    let mut got = selected(&p, &revised, None);
    got.sort();
    let mut want: Vec<_> = REVISED.iter().map(|(k, per, _, _)| format!("{k} {per}")).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(selected(&p, &revised, prelim).is_empty());
    let f = Filter {
        key: key("IPR+CUL.."),
        revised_only: true,
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None), ["IPR._T._T 2025-S1"]);
}

/// Key patterns refuse wrong arity and unknown codes, `restrict` intersects, and `after`
/// resumes a selection right after the given cell.
#[test]
fn key_patterns_and_paging() {
    let (p, _) = fixture_projection(3);
    let ds = p.dataset(DATASET).unwrap();
    let e = KeyPattern::parse(&ds.def, "IPR.").unwrap_err();
    assert!(
        e.message.contains("2 parts") && e.message.contains("3 dimensions"),
        "{e}"
    );
    let e = KeyPattern::parse(&ds.def, "IPR+XYZ..").unwrap_err();
    assert!(e.message.contains("XYZ") && e.message.contains("SERVICE_TYPE"), "{e}");
    // Codes are per dimension: ASIA is a region, not a service type.
    assert!(KeyPattern::parse(&ds.def, "ASIA..").is_err());

    let mut k = KeyPattern::parse(&ds.def, "IPR+ICT+CUL..").unwrap();
    k.restrict(0, vec![2, 3, 4]);
    assert_eq!(k.0[0], Some(vec![2, 3]));
    k.restrict(2, vec![0]);
    let f = Filter {
        key: Some(k),
        ..Filter::default()
    };
    assert_eq!(selected(&p, &f, None), ["ICT._T._T 2025-S1", "CUL._T._T 2025-S1"]);

    // Paging: resuming after each cell in turn visits every cell once, in order.
    let all = Filter::default();
    let cells: Vec<CellKey> = p.select(ds, &all, p.latest(), None).map(|o| o.cell).collect();
    assert_eq!(cells.len(), 12);
    assert!(cells.windows(2).all(|w| w[0] < w[1]), "key order");
    for (i, c) in cells.iter().enumerate() {
        let rest: Vec<CellKey> = p.select(ds, &all, p.latest(), Some(c)).map(|o| o.cell).collect();
        assert_eq!(rest, cells[i + 1..].to_vec());
    }
}

/// A listing walks only the keys between the pattern's [`KeyPattern::span`]: for every
/// pattern of open, single and alternative parts, and every cursor, it selects what a walk
/// over every key filtered by the pattern selects.
#[test]
fn key_spans_select_what_the_whole_walk_selects() {
    let (p, _) = fixture_projection(3);
    let ds = p.dataset(DATASET).unwrap();
    let all: Vec<CellKey> = p
        .select(ds, &Filter::default(), p.latest(), None)
        .map(|o| o.cell)
        .collect();
    let choices = |d: &crate::domain::Dimension| {
        let last = d.codes.len() as u16 - 1;
        vec![
            None,
            Some(vec![0]),
            Some(vec![last]),
            Some(vec![last, 0]),
            Some(vec![1.min(last)]),
        ]
    };
    let dims = &ds.def.dimensions;
    let mut checked = 0;
    for a in choices(&dims[0]) {
        for b in choices(&dims[1]) {
            for c in choices(&dims[2]) {
                let pattern = KeyPattern(vec![a.clone(), b.clone(), c]);
                let f = Filter {
                    key: Some(pattern.clone()),
                    ..Filter::default()
                };
                for after in std::iter::once(None).chain(all.iter().map(Some)) {
                    let got: Vec<CellKey> = p.select(ds, &f, p.latest(), after).map(|o| o.cell).collect();
                    let want: Vec<CellKey> = all
                        .iter()
                        .filter(|cell| pattern.matches(&cell.key) && after.is_none_or(|a| *cell > a))
                        .copied()
                        .collect();
                    assert_eq!(got, want, "pattern {:?} after {after:?}", pattern.0);
                    checked += usize::from(!want.is_empty());
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} non-empty selections");
}

/// An as-of revision beyond the head, and an unknown release, are errors naming the problem.
#[test]
fn as_of_errors() {
    let (p, _) = fixture_projection(3);
    assert!(p.bound(Some(AsOf::Revision(3))).is_ok());
    let e = p.bound(Some(AsOf::Revision(4))).unwrap_err();
    assert_eq!(e, ProjectionError::RevisionBeyondHead { requested: 4, head: 3 });
    assert!(e.to_string().contains('4') && e.to_string().contains('3'), "{e}");
    let unknown = Uuid::new_v4();
    let e = p.bound(Some(AsOf::Release(unknown))).unwrap_err();
    assert_eq!(e, ProjectionError::UnknownRelease(unknown));
    assert!(e.to_string().contains(&unknown.to_string()));
    assert!(matches!(
        Projection::new().bound(Some(AsOf::Revision(1))),
        Err(ProjectionError::RevisionBeyondHead { requested: 1, head: 0 })
    ));
}

/// `apply` refuses events out of order, a second definition, a release of an unknown dataset,
/// a replayed release and a release with an unresolvable key, and leaves no trace of them.
#[test]
fn apply_refuses_inconsistent_events_without_a_trace() {
    let (mut p, mut log) = fixture_projection(2);
    let before = p.clone();
    let batch = fixtures();
    let dataset = batch.datasets[0].clone();
    let revision = batch.releases[1].clone().validate(&dataset).unwrap();

    // Skipping revision 3.
    let mut skip = Log {
        prev: log.prev,
        events: log.events.clone(),
        ..Log::default()
    };
    skip.events.push(log.events[0].clone());
    let out_of_order = skip.push(Event::ReleasePublished {
        release: revision.clone(),
    });
    assert_eq!(out_of_order.revision(), 4);
    assert!(matches!(
        p.apply(&out_of_order),
        Err(ProjectionError::Inconsistent { revision: 4, .. })
    ));
    assert_eq!(p, before);

    let cases: Vec<Event> = vec![
        Event::DatasetDefined {
            dataset: dataset.clone(),
        },
        Event::ReleasePublished {
            release: Release {
                dataset: "NO_SUCH_DATASET".into(),
                ..revision.clone()
            },
        },
        Event::ReleasePublished {
            release: Release {
                id: preliminary_id(),
                ..revision.clone()
            },
        },
        Event::ReleasePublished {
            release: {
                let mut r = revision.clone();
                r.observations.last_mut().unwrap().key = "_T._T.MARS".into();
                r
            },
        },
        Event::ReleasePublished {
            release: {
                let mut r = revision.clone();
                r.observations.last_mut().unwrap().measure = "XYZ".into();
                r
            },
        },
    ];
    for event in cases {
        let mut attempt = Log {
            prev: log.prev,
            events: log.events.clone(),
            ..Log::default()
        };
        let stored = attempt.push(event.clone());
        assert!(
            matches!(p.apply(&stored), Err(ProjectionError::Inconsistent { revision: 3, .. })),
            "{event:?} applied"
        );
        assert_eq!(p, before, "{event:?} left a trace");
    }
    // The real revision still applies afterwards.
    let stored = log.push(Event::ReleasePublished { release: revision });
    p.apply(&stored).unwrap();
    assert_eq!(value_at(&p, "_T._T._T", "2025-S1", None), Some(dec("-4610")));
}

/// Folding the fixtures one event at a time equals a rebuild from a sled log holding them.
#[test]
fn incremental_fold_equals_rebuild_for_the_fixtures() {
    let (p, log) = fixture_projection(3);
    let store = SledStore::temporary().unwrap();
    store.append_blocking(&log.records, Head::default()).unwrap();
    let (rebuilt, verification) = fold_log(&store).unwrap();
    assert!(verification.ok(), "{verification:?}");
    assert_eq!(verification.checked, 3);
    assert_eq!(rebuilt, p);
}

// ---------------------------------------------------------------------------------------
// Property test: random releases over a small dataset.

/// A small dataset: two dimensions, three codes each; measures BAL and CRE (no DEB, so that
/// random values never break BAL = CRE - DEB).
fn small_dataset() -> Dataset {
    let mut ds = fixtures().datasets.remove(0);
    ds.id = "SMALL".into();
    ds.dimensions.truncate(2);
    for d in &mut ds.dimensions {
        d.codes.truncate(3);
    }
    ds.measures = vec!["BAL".into(), "CRE".into()];
    // Periods of several frequencies, to test that they never mix in reads (the writer
    // refuses them in one dataset; the projection takes what the log says).
    ds.frequency = None;
    ds.validate().unwrap();
    ds
}

const KEYS: [&str; 5] = ["_T._T", "IPR._T", "ICT._T", "_T.ICT", "IPR.MFG"];
const PERIODS: [&str; 4] = ["2024-S2", "2025-S1", "2025-Q1", "2025"];
const MEASURES: [&str; 2] = ["BAL", "CRE"];

#[derive(Debug, Clone)]
struct GenRelease {
    status: ReleaseStatus,
    /// Days after 2025-01-01: publication times are deliberately not in log order.
    published_day: i64,
    observations: Vec<((usize, usize, usize), i64, u32)>,
}

fn gen_release() -> impl Strategy<Value = GenRelease> {
    (
        prop_oneof![
            Just(ReleaseStatus::Preliminary),
            Just(ReleaseStatus::Revised),
            Just(ReleaseStatus::Final)
        ],
        0i64..40,
        // Cells drawn from 5 x 4 x 2 = 40, values from a narrow range so that republishing
        // the same value happens too.
        prop::collection::btree_map(
            (0..KEYS.len(), 0..PERIODS.len(), 0..MEASURES.len()),
            (-3i64..4, 0u32..3),
            1..8,
        ),
    )
        .prop_map(|(status, published_day, obs)| GenRelease {
            status,
            published_day,
            observations: obs.into_iter().map(|(c, (v, s))| (c, v, s)).collect(),
        })
}

fn build_release(ds: &Dataset, g: &GenRelease) -> Release {
    ReleaseDraft {
        id: None,
        dataset: ds.id.clone(),
        status: g.status,
        title: "generated".into(),
        published_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::days(g.published_day),
        source: None,
        observations: g
            .observations
            .iter()
            .map(|&((k, per, m), v, scale)| ObservationDraft {
                key: KEYS[k].into(),
                period: PERIODS[per].into(),
                measure: Some(MEASURES[m].into()),
                value: Decimal::new(v, scale).into(),
            })
            .collect(),
        backfill: false,
        revision_reason: None,
    }
    .validate(ds)
    .expect("generated releases are valid")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Folding random releases one at a time equals rebuilding from the sled log, and every
    /// as-of read agrees with a naive model of "the last value at or before".
    #[test]
    fn incremental_fold_equals_rebuild_and_model(releases in prop::collection::vec(gen_release(), 1..12)) {
        let ds = small_dataset();
        let mut log = Log::default();
        let mut incremental = Projection::new();
        incremental.apply(&log.push(Event::DatasetDefined { dataset: ds.clone() })).unwrap();
        let mut built = Vec::new();
        for g in &releases {
            let r = build_release(&ds, g);
            incremental.apply(&log.push(Event::ReleasePublished { release: r.clone() })).unwrap();
            built.push(r);
        }

        let store = SledStore::temporary().unwrap();
        // Appended in two transactions, as two group commits would.
        let split = log.records.len() / 2;
        let head = store.append_blocking(&log.records[..split], Head::default()).unwrap();
        store.append_blocking(&log.records[split..], head).unwrap();
        let (rebuilt, verification) = fold_log(&store).unwrap();
        prop_assert!(verification.ok(), "{:?}", verification);
        prop_assert_eq!(verification.checked, log.records.len() as u64);
        prop_assert_eq!(&rebuilt, &incremental);
        prop_assert_eq!(rebuilt.head().hash, log.prev);

        // Model: release i is at revision i + 2. A version is visible at (revision R,
        // publication time T) when its release is at or before R and was published at or
        // before T; versions are in publication order (ties: recording order), so the value
        // is the visible version published last. Releases are generated out of publication
        // order, so back-fills (derived, as for a log written before the rule) are common.
        let view = incremental.dataset("SMALL").unwrap();
        let head = log.records.len() as u64;
        let model_versions = |revision: u64, t: Option<DateTime<Utc>>, key: &str, per: Period, m: &str| -> Vec<Decimal> {
            let mut found: Vec<(DateTime<Utc>, usize, Decimal)> = built
                .iter()
                .enumerate()
                .filter(|(i, r)| *i as u64 + 2 <= revision && t.is_none_or(|t| r.published_at <= t))
                .filter_map(|(i, r)| {
                    r.observations
                        .iter()
                        .find(|o| o.key == key && o.period == per && o.measure == m)
                        .map(|o| (r.published_at, i, o.value))
                })
                .collect();
            found.sort();
            found.into_iter().map(|f| f.2).collect()
        };
        let model_at = |revision: u64, t: Option<DateTime<Utc>>, key: &str, per: Period, m: &str| {
            model_versions(revision, t, key, per, m).last().copied()
        };
        for (i, r) in built.iter().enumerate() {
            let backfill = built[..i].iter().any(|e| e.published_at > r.published_at);
            prop_assert_eq!(incremental.releases()[i].backfilled, backfill, "release {}", i);
        }
        let mut times: Vec<DateTime<Utc>> = built.iter().map(|r| r.published_at).collect();
        times.push(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        times.extend(built.iter().map(|r| r.published_at + Duration::hours(12)));
        for key in KEYS {
            for per in PERIODS {
                let per = period(per);
                for m in MEASURES {
                    let cell = CellKey { key: ds.parse_key(key).unwrap(), period: per, measure: view.measure(m).unwrap() };
                    for revision in 0..=head {
                        let bound = incremental.bound(Some(AsOf::Revision(revision))).unwrap();
                        let got = view.get(&cell, bound).map(|o| o.versions.to_vec().iter().map(|v| v.value).collect::<Vec<_>>());
                        let want = model_versions(revision, None, key, per, m);
                        prop_assert_eq!(got.unwrap_or_default(), want, "{} {} {} @{}", key, per, m, revision);
                        for &t in &times {
                            // Both axes at once: recorded by `revision`, published by `t`.
                            let bound = Bound { published: Some(t), ..bound };
                            let got = view.get(&cell, bound).map(|o| o.current().value);
                            prop_assert_eq!(got, model_at(revision, Some(t), key, per, m), "{} {} {} @{} at {}", key, per, m, revision, t);
                        }
                    }
                    for &t in &times {
                        let got = view.get(&cell, incremental.bound(Some(AsOf::PublishedAt(t))).unwrap()).map(|o| o.current().value);
                        prop_assert_eq!(got, model_at(head, Some(t), key, per, m), "{} {} {} at {}", key, per, m, t);
                    }
                    // Revision statistics against the model's full history.
                    let values = model_versions(head, None, key, per, m);
                    match view.history(&cell) {
                        None => prop_assert!(values.is_empty()),
                        Some(obs) => {
                            let stat = RevisionStat::of(&obs);
                            prop_assert_eq!(obs.versions.len(), values.len());
                            prop_assert_eq!(stat.preliminary, values[0]);
                            prop_assert_eq!(stat.latest, *values.last().unwrap());
                            prop_assert_eq!(stat.revisions as usize, values.windows(2).filter(|w| w[0] != w[1]).count());
                        }
                    }
                }
            }
        }

        // Listings in key order, narrowed by key, period and measure, and resumed after any
        // figure, agree with point reads of every cell.
        let all_cells: Vec<CellKey> = KEYS
            .iter()
            .flat_map(|k| PERIODS.iter().flat_map(move |p| MEASURES.iter().map(move |m| (*k, *p, *m))))
            .map(|(k, p, m)| CellKey { key: ds.parse_key(k).unwrap(), period: period(p), measure: view.measure(m).unwrap() })
            .collect();
        let filters = [
            Filter::default(),
            Filter { period_from: Some(period("2025-S1")), ..Filter::default() },
            Filter { period_to: Some(period("2024-S2")), ..Filter::default() },
            Filter { period_from: Some(period("2024-S2")), period_to: Some(period("2024-S2")), ..Filter::default() },
            Filter { periods: Some(vec![period("2025"), period("2025-Q1")]), ..Filter::default() },
            Filter { key: Some(KeyPattern::parse(&ds, "IPR+ICT.").unwrap()), measures: Some(vec![1]), ..Filter::default() },
        ];
        for revision in [head / 2, head] {
            let bound = incremental.bound(Some(AsOf::Revision(revision))).unwrap();
            for f in &filters {
                let mut expected: Vec<CellKey> =
                    all_cells.iter().filter(|c| f.matches_cell(c) && view.get(c, bound).is_some()).copied().collect();
                expected.sort();
                let got: Vec<CellKey> = incremental.select(view, f, bound, None).map(|o| o.cell).collect();
                prop_assert_eq!(&got, &expected, "{:?} @{}", f, revision);
                for (i, c) in all_cells.iter().enumerate() {
                    let rest: Vec<CellKey> = incremental.select(view, f, bound, Some(c)).map(|o| o.cell).collect();
                    let want: Vec<CellKey> = expected.iter().filter(|e| *e > c).copied().collect();
                    prop_assert_eq!(rest, want, "{:?} after cell {}", f, i);
                }
            }
        }
    }
}

/// The list sizes the cost model reads follow the events: the largest release, code list and
/// version list, and the number of figures.
#[test]
fn extents_follow_the_events() {
    let batch = fixtures();
    let def = &batch.datasets[0];
    let (one, _) = fixture_projection(1);
    let e = one.extents();
    assert_eq!(
        (e.datasets, e.releases, e.events, e.max_versions, e.max_figures),
        (1, 0, 1, 0, 0)
    );
    assert_eq!(e.max_dimensions, def.dimensions.len() as u64);
    assert_eq!(e.max_measures, def.measures.len() as u64);
    assert_eq!(
        e.max_codes,
        def.dimensions.iter().map(|d| d.codes.len()).max().unwrap() as u64
    );
    let (two, _) = fixture_projection(2);
    let first = batch.releases[0].observations.len() as u64;
    let e = two.extents();
    assert_eq!((e.releases, e.events, e.max_versions), (1, 2, 1));
    assert_eq!((e.max_release_observations, e.max_figures), (first, first));
    let (three, _) = fixture_projection(3);
    let e = three.extents();
    let largest = batch.releases.iter().map(|r| r.observations.len()).max().unwrap() as u64;
    assert_eq!(
        (e.releases, e.events, e.max_versions),
        (2, 3, 2),
        "the revision adds a second version"
    );
    assert_eq!(e.max_release_observations, largest);
    assert_eq!(e.max_figures, three.datasets()[0].cell_count() as u64);
}

/// Ten codes under `_T`, each at 9999999999999999999999999999: publishing refuses such values
/// now (they are beyond ±10^20), but a log written before that bound holds them, so the read
/// path must report the sums as overflowed, naming the figure, instead of panicking.
#[test]
fn sums_beyond_the_decimal_range_are_reported_not_panicked() {
    let mut dataset = fixtures().datasets[0].clone();
    for i in 0..10 {
        dataset.dimensions[0].codes.push(crate::domain::Code {
            code: format!("C{i}"),
            label: format!("SYNTHETIC code {i}"),
            parent: Some("_T".into()),
        });
    }
    let big = dec("9999999999999999999999999999");
    let obs = |key: &str, per: &str, value: Decimal| crate::domain::Observation {
        key: key.into(),
        period: period(per),
        measure: "BAL".into(),
        value,
    };
    let release = |observations: Vec<crate::domain::Observation>| {
        let mut observations = observations;
        observations.sort_by(|a, b| (&a.key, a.period).cmp(&(&b.key, b.period)));
        Event::ReleasePublished {
            release: Release {
                id: Uuid::new_v4(),
                dataset: DATASET.into(),
                status: ReleaseStatus::Preliminary,
                title: "SYNTHETIC values beyond the publishing bound".into(),
                published_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                source: None,
                observations,
                backfill: false,
                revision_reason: None,
            },
        }
    };
    let mut first: Vec<_> = (0..10).map(|i| obs(&format!("C{i}._T._T"), "2025-S1", big)).collect();
    first.push(obs("_T._T._T", "2025-S1", -big));
    // 2025-S2: the items add up, but the residual does not fit.
    first.push(obs("C0._T._T", "2025-S2", Decimal::MAX));
    first.push(obs("_T._T._T", "2025-S2", -big));
    let mut log = Log::default();
    let mut p = Projection::new();
    for event in [
        Event::DatasetDefined { dataset },
        release(first),
        // A revision from 10^28 to -7.9 * 10^28: the revision itself does not fit.
        release(vec![obs("C1._T._T", "2025-S1", Decimal::MIN)]),
    ] {
        p.apply(&log.push(event)).expect("events apply");
    }
    let ds = p.dataset(DATASET).unwrap();
    let total = ds.def.total_key();
    let bal = ds.measure("BAL").unwrap();
    // Before the revision, ten times 10^28.
    let b = ds.breakdown(
        &total,
        0,
        period("2025-S1"),
        bal,
        p.bound(Some(AsOf::Revision(2))).unwrap(),
    );
    assert_eq!(b.items.len(), 10);
    assert_eq!(b.overflow, Some(Overflow { figure: "sumOfItems" }));
    let b = ds.breakdown(&total, 0, period("2025-S2"), bal, p.latest());
    assert_eq!(b.sum_of_items, Decimal::MAX);
    assert_eq!(b.overflow, Some(Overflow { figure: "residual" }));
    let c1 = history(&p, "C1._T._T", "2025-S1");
    let stat = RevisionStat::of(&c1);
    assert_eq!(stat.overflow, Some(Overflow { figure: "revision" }));
    let s = RevisionSummary::of(p.select(ds, &Filter::default(), p.latest(), None));
    assert_eq!(s.overflow, Some(Overflow { figure: "revision" }));
    assert_eq!((s.mean_revision, s.max_absolute_revision), (None, None));
    assert_eq!(s.observations, 13);
}

#[path = "snapshot/tests.rs"]
mod snapshot;

/// A scheduled release applies only when its reveal opens the commitment recorded before it:
/// a reveal whose figures differ (changed during the embargo) is refused, the genuine one
/// applies as a release, and the schedules survive a snapshot.
#[test]
fn a_reveal_applies_only_when_it_opens_its_commitment() {
    use crate::domain::{Schedule, Sealed};
    let (mut p, mut log) = fixture_projection(3);
    let batch = fixtures();
    let mut draft = batch.releases[1].clone();
    draft.id = Some(Uuid::new_v4());
    draft.published_at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let release = draft.validate(&batch.datasets[0]).unwrap();
    let sealed = Sealed::new(release.clone());
    let schedule = Schedule {
        id: release.id,
        dataset: release.dataset.clone(),
        title: release.title.clone(),
        status: release.status,
        published_at: release.published_at,
        commitment: sealed.commitment(),
        replaces: None,
    };
    p.apply(&log.push(Event::ReleaseScheduled { schedule })).unwrap();
    assert_eq!(p.schedules().len(), 1);
    let back = Projection::from_snapshot(&p.to_snapshot()).expect("a snapshot with a schedule loads");
    assert_eq!(back, p);

    let mut changed = release.clone();
    changed.observations[0].value += Decimal::ONE;
    let forged = log.push(Event::ReleaseRevealed {
        release: changed,
        salt: sealed.salt.clone(),
        commitment: sealed.commitment(),
    });
    let before = p.clone();
    let err = p.apply(&forged).unwrap_err().to_string();
    assert!(err.contains("SHA-256"), "{err}");
    assert_eq!(p, before, "a refused reveal changes nothing");

    let mut log2 = Log::default();
    for e in &log.events[..4] {
        log2.push(e.envelope.event.clone());
    }
    let genuine = log2.push(Event::ReleaseRevealed {
        release: release.clone(),
        salt: sealed.salt.clone(),
        commitment: sealed.commitment(),
    });
    assert!(matches!(p.apply(&genuine).unwrap(), Applied::ReleasePublished { .. }));
    assert!(p.release(&release.id).is_some());
    assert!(matches!(
        p.schedule(&release.id).unwrap().state,
        ScheduleState::Revealed { revision: 5 }
    ));
}
