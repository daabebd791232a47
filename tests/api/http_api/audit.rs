//! The auditor's queries: `changes` between two points of history and the
//! filters of `events`, over real HTTP against the fixtures (dataset at revision 1, the
//! preliminary release at 2, the SYNTHETIC revision at 3, which revises 5 of its 12 figures
//! and republishes the other 7 unchanged).

use serde_json::{json, Value};

use crate::support::*;

const CHANGES: &str = "query($from: AsOf!, $to: AsOf, $first: Int, $after: String, $all: Boolean, $filter: ObservationFilter) {
  changes(dataset: \"KR_KNOWLEDGE_SERVICES\", from: $from, to: $to, first: $first, after: $after, includeUnchanged: $all, filter: $filter) {
    nodes { key period measure kind fromValue toValue delta status revision release { id status } dimensions { dimension code } }
    edges { cursor }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}";

/// `(key period, kind, fromValue, toValue, delta)` of each change.
fn rows(conn: &Value) -> Vec<(String, String, Value, Value, Value)> {
    conn["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                format!("{} {}", n["key"].as_str().unwrap(), n["period"].as_str().unwrap()),
                n["kind"].as_str().unwrap().to_owned(),
                n["fromValue"].clone(),
                n["toValue"].clone(),
                n["delta"].clone(),
            )
        })
        .collect()
}

fn row(key: &str, kind: &str, from: Value, to: &str, delta: Value) -> (String, String, Value, Value, Value) {
    (key.to_owned(), kind.to_owned(), from, json!(to), delta)
}

/// From the preliminary release to the head: exactly the five revised figures, in key order,
/// with both values, the delta and the revising release.
#[tokio::test]
async fn changes_lists_the_revised_figures_with_both_values() {
    let app = spawn_app().await;
    let data = app.query(CHANGES, json!({ "from": { "revision": 2 } })).await;
    let c = &data["changes"];
    assert_eq!(
        rows(c),
        vec![
            row("_T._T._T 2024-S2", "REVISED", json!("-3760"), "-3790", json!("-30")),
            row("_T._T._T 2025-S1", "REVISED", json!("-4530"), "-4610", json!("-80")),
            row("_T._T.NAM 2025-S1", "REVISED", json!("-3770"), "-3800", json!("-30")),
            row("_T.ICT._T 2025-S1", "REVISED", json!("1640"), "1600", json!("-40")),
            row("IPR._T._T 2025-S1", "REVISED", json!("-2450"), "-2530", json!("-80")),
        ]
    );
    for n in c["nodes"].as_array().unwrap() {
        assert_eq!(n["release"]["id"], REVISION_ID, "{n}");
        assert_eq!(n["status"], "REVISED");
        assert_eq!(n["revision"], 3);
        assert_eq!(n["measure"], "BAL");
    }
    let dims = &c["nodes"][3]["dimensions"];
    assert_eq!(
        dims,
        &json!([
            { "dimension": "SERVICE_TYPE", "code": "_T" },
            { "dimension": "INDUSTRY", "code": "ICT" },
            { "dimension": "COUNTERPART", "code": "_T" },
        ])
    );
    assert_eq!(c["pageInfo"]["hasNextPage"], false);
    // The same points named by release: as of the preliminary release, to the revision.
    let by_release = app
        .query(
            CHANGES,
            json!({ "from": { "release": PRELIMINARY_ID }, "to": { "release": REVISION_ID } }),
        )
        .await;
    assert_eq!(rows(&by_release["changes"]), rows(c));
    // A filter narrows the list.
    let filtered = app
        .query(
            CHANGES,
            json!({ "from": { "revision": 2 }, "filter": { "key": "IPR+ICT.._T" } }),
        )
        .await;
    assert_eq!(
        rows(&filtered["changes"]),
        vec![row(
            "IPR._T._T 2025-S1",
            "REVISED",
            json!("-2450"),
            "-2530",
            json!("-80")
        )]
    );
}

/// `includeUnchanged` adds the seven figures the revision republished with the same value,
/// as REPUBLISHED with a zero delta.
#[tokio::test]
async fn changes_include_unchanged_lists_republished_figures() {
    let app = spawn_app().await;
    let data = app
        .query(CHANGES, json!({ "from": { "revision": 2 }, "all": true }))
        .await;
    let all = rows(&data["changes"]);
    assert_eq!(all.len(), 12, "{all:?}");
    let republished: Vec<_> = all.iter().filter(|r| r.1 == "REPUBLISHED").collect();
    assert_eq!(republished.len(), 7, "{all:?}");
    for r in &republished {
        assert_eq!(r.2, r.3, "{r:?}");
        assert_eq!(r.4, json!("0"), "{r:?}");
    }
    assert!(all.contains(&row(
        "ICT._T._T 2025-S1",
        "REPUBLISHED",
        json!("1960"),
        "1960",
        json!("0")
    )));
    assert_eq!(all.iter().filter(|r| r.1 == "REVISED").count(), 5);
    // Nothing happened between the head and itself, even with includeUnchanged.
    let data = app
        .query(CHANGES, json!({ "from": { "revision": 3 }, "all": true }))
        .await;
    assert_eq!(rows(&data["changes"]), vec![]);
}

/// Before the first release every figure is NEW: no older value, no delta.
#[tokio::test]
async fn changes_from_before_the_first_release_are_new() {
    let app = spawn_app().await;
    let data = app
        .query(CHANGES, json!({ "from": { "revision": 1 }, "to": { "revision": 2 } }))
        .await;
    let c = &data["changes"];
    let all = rows(c);
    assert_eq!(all.len(), 12);
    assert!(
        all.iter().all(|r| r.1 == "NEW" && r.2.is_null() && r.4.is_null()),
        "{all:?}"
    );
    assert!(all.contains(&row("_T._T._T 2025-S1", "NEW", Value::Null, "-4530", Value::Null)));
    assert!(c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["release"]["id"] == PRELIMINARY_ID && n["status"] == "PRELIMINARY"));
    // To the head, the newer value is the revised one.
    let data = app.query(CHANGES, json!({ "from": { "revision": 0 } })).await;
    assert!(rows(&data["changes"]).contains(&row("_T._T._T 2025-S1", "NEW", Value::Null, "-4610", Value::Null)));
}

/// Walking `changes` with `first: 2` and `after: endCursor` visits each change once.
#[tokio::test]
async fn changes_pages_visit_each_change_once() {
    let app = spawn_app().await;
    let whole = rows(&app.query(CHANGES, json!({ "from": { "revision": 2 } })).await["changes"]);
    let mut seen = Vec::new();
    let mut after = Value::Null;
    for page in 0.. {
        assert!(page < 10, "pagination does not end");
        let data = app
            .query(
                CHANGES,
                json!({ "from": { "revision": 2 }, "first": 2, "after": after }),
            )
            .await;
        let c = &data["changes"];
        assert_eq!(c["pageInfo"]["hasPreviousPage"], page > 0);
        seen.extend(rows(c));
        if c["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert_eq!(c["nodes"].as_array().unwrap().len(), 2);
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, whole);
}

/// `from` after `to`, a point beyond the head, a bad cursor or page size: BAD_USER_INPUT.
#[tokio::test]
async fn changes_refuses_bad_arguments() {
    let app = spawn_app().await;
    for (vars, what) in [
        (
            json!({ "from": { "revision": 3 }, "to": { "revision": 2 } }),
            "from (revision 3) is after to (revision 2)",
        ),
        (json!({ "from": { "revision": 4 } }), "from:"),
        (json!({ "from": { "revision": 1 }, "to": { "revision": 9 } }), "to:"),
        (json!({ "from": { "revision": -1 } }), "from:"),
        (json!({ "from": {} }), "from:"),
        (json!({ "from": { "revision": 1 }, "after": "not a cursor" }), "after"),
        (json!({ "from": { "revision": 1 }, "first": 1001 }), "first"),
    ] {
        let v = app.gql(CHANGES, vars.clone()).await;
        assert_eq!(code(&v), "BAD_USER_INPUT", "{vars}: {v}");
        let message = v["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(what), "{vars}: `{message}` should mention `{what}`");
    }
    let v = app
        .gql(
            "{ changes(dataset: \"NO_SUCH\", from: { revision: 1 }) { nodes { key } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&v), "NOT_FOUND", "{v}");
}

const EVENTS: &str = "query($after: Int, $first: Int, $dataset: ID, $kind: EventKind, $actor: String, $from: DateTime, $to: DateTime) {
  events(after: $after, first: $first, dataset: $dataset, kind: $kind, actor: $actor, recordedFrom: $from, recordedTo: $to) {
    nodes { revision kind actor recordedAt dataset }
    edges { cursor }
    pageInfo { hasNextPage hasPreviousPage endCursor }
    totalCount examinedThrough
  }
}";

fn revisions(conn: &Value) -> Vec<u64> {
    conn["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["revision"].as_u64().unwrap())
        .collect()
}

async fn events(app: &TestApp, vars: Value) -> Value {
    app.query(EVENTS, vars).await["events"].clone()
}

/// Each filter of `events` keeps exactly the events it names.
#[tokio::test]
async fn events_filter_by_dataset_kind_actor_and_time() {
    let app = spawn_app().await;
    let input = release_input("0b7e4f7e-0000-4000-8000-0000000a0d17", "CUL._T._T", "2025-S1", "455");
    let v = app
        .gql_write(
            "mutation($input: ReleaseInput!) { publishRelease(input: $input) { revision } }",
            json!({ "input": input }),
        )
        .await;
    assert_eq!(data_of(v)["publishRelease"]["revision"], 4);
    let all = events(&app, json!({})).await;
    assert_eq!(revisions(&all), [1, 2, 3, 4]);
    assert_eq!(all["nodes"][3]["actor"], "tester");
    let at = |i: usize| all["nodes"][i]["recordedAt"].clone();

    for (vars, expected) in [
        (json!({ "kind": "DATASET_DEFINED" }), vec![1]),
        (json!({ "kind": "RELEASE_PUBLISHED" }), vec![2, 3, 4]),
        (json!({ "dataset": DATASET }), vec![1, 2, 3, 4]),
        (json!({ "actor": "tester" }), vec![4]),
        (json!({ "actor": "fixtures", "kind": "RELEASE_PUBLISHED" }), vec![2, 3]),
        (json!({ "actor": "nobody" }), vec![]),
        (json!({ "from": at(3) }), vec![4]),
        (json!({ "to": at(3) }), vec![1, 2, 3]),
        (json!({ "from": at(3), "to": at(3) }), vec![]),
        (json!({ "kind": "RELEASE_PUBLISHED", "after": 2 }), vec![3, 4]),
    ] {
        let c = events(&app, vars.clone()).await;
        assert_eq!(revisions(&c), expected, "{vars}");
        assert_eq!(c["totalCount"], 4, "{vars}");
        assert_eq!(c["pageInfo"]["hasNextPage"], false, "{vars}");
        assert_eq!(c["examinedThrough"], 4, "{vars}");
    }
    // Filtered pages follow each other by endCursor.
    let c = events(&app, json!({ "kind": "RELEASE_PUBLISHED", "first": 2 })).await;
    assert_eq!(revisions(&c), [2, 3]);
    assert_eq!(c["pageInfo"]["hasNextPage"], true);
    assert_eq!(c["pageInfo"]["endCursor"], "3");
    let c = events(&app, json!({ "kind": "RELEASE_PUBLISHED", "first": 2, "after": 3 })).await;
    assert_eq!(revisions(&c), [4]);
    assert_eq!(c["pageInfo"]["hasNextPage"], false);
}

/// Bad filters are BAD_USER_INPUT (or NOT_FOUND for an unknown dataset).
#[tokio::test]
async fn events_refuses_bad_filters() {
    let app = spawn_app().await;
    let v = app
        .gql(
            EVENTS,
            json!({ "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(code(&v), "BAD_USER_INPUT", "{v}");
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("recordedFrom"),
        "{v}"
    );
    let v = app.gql(EVENTS, json!({ "from": "yesterday" })).await;
    assert!(v["errors"][0].is_object(), "{v}");
    let v = app.gql(EVENTS, json!({ "dataset": "NO_SUCH" })).await;
    assert_eq!(code(&v), "NOT_FOUND", "{v}");
}

/// A filter that matches rarely examines at most `max_events_scanned` events per page: the
/// page comes back short with `hasNextPage` and an `endCursor` past what it examined, and
/// following the cursors finds every match.
#[tokio::test]
async fn filtered_events_examine_a_bounded_number_per_page() {
    let app = spawn_app_with(|c| c.limits.max_events_scanned = 2, true).await;
    let c = events(&app, json!({ "actor": "nobody" })).await;
    assert_eq!(revisions(&c), Vec::<u64>::new());
    assert_eq!(c["examinedThrough"], 2);
    assert_eq!(c["pageInfo"]["endCursor"], "2");
    assert_eq!(c["pageInfo"]["hasNextPage"], true);

    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let c = events(&app, json!({ "kind": "RELEASE_PUBLISHED", "after": after })).await;
        pages += 1;
        assert!(pages < 10, "pagination does not end");
        seen.extend(revisions(&c));
        if c["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = json!(c["pageInfo"]["endCursor"].as_str().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(seen, [2, 3]);
    assert_eq!(pages, 2);
    // Without a filter every examined event is returned: the cap does not apply.
    assert_eq!(revisions(&events(&app, json!({})).await), [1, 2, 3]);
}
