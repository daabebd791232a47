//! Scheduled releases over real HTTP and WebSocket: committed to before their time with the
//! figures sealed, revealed at the time (never before, exactly once, across a restart), the
//! reveal opening the commitment as an auditor recomputes it from the log, and withdrawals
//! and replacements recorded as events.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::support::{release_input, spawn_app, TestApp, DATASET, PUBLISH};

const SCHEDULE: &str = "mutation($input: ReleaseInput!, $replace: Boolean) {
    scheduleRelease(input: $input, replace: $replace) {
        revision commitment duplicate
        entry { releaseId state scheduled commitment replaced publishedAt revision release { id } }
    } }";

const WITHDRAW: &str = "mutation($id: UUID!, $reason: String) {
    withdrawScheduledRelease(id: $id, reason: $reason) { revision duplicate entry { state withdrawalReason } } }";

const CALENDAR: &str = r#"{ releaseCalendar(dataset: "KR_KNOWLEDGE_SERVICES") {
    releaseId title state scheduled commitment scheduledRevision revision replaced publishedAt withdrawalReason } }"#;

const TOTAL: &str =
    r#"{ observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") { value } }"#;

/// Longest wait for a reveal; it only guards against one that never comes.
const REVEAL_WAIT: Duration = Duration::from_secs(60);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A release of the 2025-S1 total at `value`, due `after` from now.
fn scheduled_input(id: Uuid, value: &str, after: Duration) -> Value {
    let mut input = release_input(&id.to_string(), "_T._T._T", "2025-S1", value);
    input["publishedAt"] = json!(rfc3339(Utc::now() + chrono::Duration::from_std(after).unwrap()));
    input
}

async fn total(app: &TestApp) -> String {
    let v = app.gql(TOTAL, json!({})).await;
    v["data"]["observation"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

async fn calendar_entry(app: &TestApp, id: Uuid) -> Value {
    let v = app.gql(CALENDAR, json!({})).await;
    assert!(v.get("errors").is_none(), "{v}");
    v["data"]["releaseCalendar"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["releaseId"] == id.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("release {id} is not in the calendar: {v}"))
}

/// Every event of the log: (kind, recordedAt, canonical text).
async fn events(app: &TestApp) -> Vec<(String, String, String)> {
    let v = app
        .gql(
            "{ events(first: 1000) { nodes { kind recordedAt canonical } } }",
            json!({}),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    v["data"]["events"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["recordedAt"].as_str().unwrap().to_owned(),
                e["canonical"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn wait_for_state(app: &TestApp, id: Uuid, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let e = calendar_entry(app, id).await;
        if e["state"] == state {
            return e;
        }
        assert!(
            start.elapsed() < REVEAL_WAIT,
            "release {id} is still {e} after {REVEAL_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The commitment check an auditor makes from the log alone: SHA-256 over the salt and the
/// bytes of `data.release` in the reveal's canonical text equals the commitment recorded
/// before the publication time.
fn opens(commitment: &str, reveal_canonical: &str) -> bool {
    let start = reveal_canonical
        .find(r#""data":{"release":"#)
        .expect("a reveal carries its release")
        + 18;
    let end = reveal_canonical.rfind(r#","salt":""#).expect("and its salt");
    let release = &reveal_canonical[start..end];
    let reveal: Value = serde_json::from_str(reveal_canonical).unwrap();
    let salt = hex::decode(reveal["event"]["data"]["salt"].as_str().unwrap()).unwrap();
    let mut h = Sha256::new();
    h.update(&salt);
    h.update(release.as_bytes());
    hex::encode(h.finalize()) == commitment
}

#[tokio::test]
async fn a_scheduled_release_is_sealed_until_its_time_then_revealed_once_and_opens_its_commitment() {
    let app = spawn_app().await;
    let before = total(&app).await;
    let id = Uuid::new_v4();
    let mut sub = app
        .subscribe(
            "r",
            "subscription { releasePublished { revision release { id publishedAt } } }",
            json!({}),
        )
        .await;
    let input = scheduled_input(id, "-777123", Duration::from_secs(3));
    let published_at: DateTime<Utc> = input["publishedAt"].as_str().unwrap().parse().unwrap();
    let v = app.gql_write(SCHEDULE, json!({ "input": input })).await;
    assert!(v.get("errors").is_none(), "{v}");
    let s = &v["data"]["scheduleRelease"];
    let commitment = s["commitment"].as_str().unwrap().to_owned();
    assert_eq!(s["entry"]["state"], "SCHEDULED");
    assert_eq!(s["entry"]["release"], Value::Null);
    assert_eq!(s["duplicate"], false);

    // Sealed: the figure is not readable anywhere, and no event carries it.
    assert_eq!(total(&app).await, before);
    let log = events(&app).await;
    let (kind, _, canonical) = log.last().unwrap();
    assert_eq!(kind, "RELEASE_SCHEDULED");
    assert!(canonical.contains(&commitment), "{canonical}");
    assert!(
        log.iter().all(|(_, _, c)| !c.contains("777123")),
        "the figures leaked into the log"
    );
    // The same schedule again is a retry: nothing new.
    let again = app.gql_write(SCHEDULE, json!({ "input": input })).await;
    assert_eq!(again["data"]["scheduleRelease"]["duplicate"], true, "{again}");
    assert_eq!(again["data"]["scheduleRelease"]["commitment"], commitment.as_str());

    // Subscribers hear of it at its time.
    let note = sub.recv().await;
    assert_eq!(
        note["payload"]["data"]["releasePublished"]["release"]["id"],
        id.to_string(),
        "{note}"
    );
    assert!(Utc::now() >= published_at, "notified before the publication time");
    assert_eq!(total(&app).await, "-777123");
    let entry = wait_for_state(&app, id, "PUBLISHED").await;
    assert_eq!(entry["commitment"], commitment.as_str());

    // Exactly one reveal, recorded no earlier than the publication time, opening the
    // commitment recorded before it.
    let log = events(&app).await;
    let reveals: Vec<_> = log.iter().filter(|(k, _, _)| k == "RELEASE_REVEALED").collect();
    assert_eq!(reveals.len(), 1, "{log:?}");
    let (_, recorded_at, reveal) = reveals[0];
    let recorded_at: DateTime<Utc> = recorded_at.parse().unwrap();
    assert!(
        recorded_at >= published_at,
        "revealed at {recorded_at}, before {published_at}"
    );
    assert!(opens(&commitment, reveal), "the reveal does not open the commitment");
    assert!(!opens(&"0".repeat(64), reveal), "the check must be able to fail");
}

#[tokio::test]
async fn a_restart_during_the_embargo_still_reveals_exactly_once() {
    let mut app = spawn_app().await;
    let id = Uuid::new_v4();
    let input = scheduled_input(id, "-555001", Duration::from_secs(4));
    let published_at: DateTime<Utc> = input["publishedAt"].as_str().unwrap().parse().unwrap();
    let v = app.gql_write(SCHEDULE, json!({ "input": input })).await;
    assert!(v.get("errors").is_none(), "{v}");
    app.stop().await;
    let TestApp { dir, ledger, .. } = app;
    drop(ledger);
    // Down over the publication time.
    let wait = (published_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(500);
    tokio::time::sleep(wait).await;
    let app = crate::support::spawn_app_on(dir).await;
    wait_for_state(&app, id, "PUBLISHED").await;
    assert_eq!(total(&app).await, "-555001");
    // Give a second reveal every chance to happen, then count.
    tokio::time::sleep(crate::support::ws::QUIET * 2).await;
    let reveals = events(&app)
        .await
        .into_iter()
        .filter(|(k, _, _)| k == "RELEASE_REVEALED")
        .count();
    assert_eq!(reveals, 1);
}

#[tokio::test]
async fn replacing_and_withdrawing_are_events_and_a_withdrawn_release_is_never_revealed() {
    let app = spawn_app().await;
    let before = total(&app).await;
    let id = Uuid::new_v4();
    let first = scheduled_input(id, "-100", Duration::from_secs(2));
    let v = app.gql_write(SCHEDULE, json!({ "input": first })).await;
    let c1 = v["data"]["scheduleRelease"]["commitment"].as_str().unwrap().to_owned();

    // Other content under the same id needs `replace`.
    let mut second = first.clone();
    second["observations"][0]["value"] = json!("-200");
    let v = app.gql_write(SCHEDULE, json!({ "input": second })).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "CONFLICT", "{v}");
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("replace"), "{v}");
    let v = app
        .gql_write(SCHEDULE, json!({ "input": second, "replace": true }))
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    let c2 = v["data"]["scheduleRelease"]["commitment"].as_str().unwrap().to_owned();
    assert_ne!(c1, c2);
    assert_eq!(v["data"]["scheduleRelease"]["entry"]["replaced"], 1);

    let v = app
        .gql_write(WITHDRAW, json!({ "id": id, "reason": "figures under review" }))
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    assert_eq!(v["data"]["withdrawScheduledRelease"]["entry"]["state"], "WITHDRAWN");
    // Its id cannot be published directly, before or after.
    let mut direct = first.clone();
    direct["publishedAt"] = json!("2026-01-20T00:00:00Z");
    let v = app.gql_write(PUBLISH, json!({ "input": direct })).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "CONFLICT", "{v}");
    let again = app.gql_write(WITHDRAW, json!({ "id": id })).await;
    assert_eq!(again["data"]["withdrawScheduledRelease"]["duplicate"], true, "{again}");

    // Past its time: nothing revealed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let entry = calendar_entry(&app, id).await;
    assert_eq!(entry["state"], "WITHDRAWN", "{entry}");
    assert_eq!(entry["withdrawalReason"], "figures under review");
    assert_eq!(total(&app).await, before);
    let kinds: Vec<String> = events(&app).await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "RELEASE_SCHEDULED").count(),
        2,
        "the schedule and its replacement: {kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "SCHEDULED_RELEASE_WITHDRAWN");
    assert!(!kinds.iter().any(|k| k == "RELEASE_REVEALED"), "{kinds:?}");
}

#[tokio::test]
async fn schedule_times_are_checked() {
    let app = spawn_app().await;
    let (head, _) = app.head().await;
    // In the past: that is a publication.
    let mut input = scheduled_input(Uuid::new_v4(), "-1", Duration::ZERO);
    input["publishedAt"] = json!("2026-01-01T00:00:00Z");
    let v = app.gql_write(SCHEDULE, json!({ "input": input })).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{v}");
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("publishedAt"),
        "{v}"
    );
    // A back-fill cannot be scheduled.
    let mut input = scheduled_input(Uuid::new_v4(), "-1", Duration::from_secs(3600));
    input["backfill"] = json!(true);
    let v = app.gql_write(SCHEDULE, json!({ "input": input })).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{v}");
    // A future publishedAt without scheduling is refused, pointing at scheduleRelease.
    let input = scheduled_input(Uuid::new_v4(), "-1", Duration::from_secs(3600));
    let v = app.gql_write(PUBLISH, json!({ "input": input })).await;
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("scheduleRelease"),
        "{v}"
    );
    // More than ten years ahead.
    let mut input = scheduled_input(Uuid::new_v4(), "-1", Duration::ZERO);
    input["publishedAt"] = json!(rfc3339(Utc::now() + chrono::Duration::days(3660)));
    let v = app.gql_write(SCHEDULE, json!({ "input": input })).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{v}");
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("days ahead"),
        "{v}"
    );
    // A withdrawal reason over 1,000 characters.
    let v = app
        .gql_write(WITHDRAW, json!({ "id": Uuid::new_v4(), "reason": "x".repeat(1001) }))
        .await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{v}");
    // Withdrawing what was never scheduled.
    let v = app.gql_write(WITHDRAW, json!({ "id": Uuid::new_v4() })).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "NOT_FOUND", "{v}");
    assert_eq!(app.head().await.0, head, "refusals record nothing");
    // The calendar lists the dataset's published releases too.
    let v = app.gql(CALENDAR, json!({})).await;
    let entries = v["data"]["releaseCalendar"].as_array().unwrap();
    assert!(
        !entries.is_empty() && entries.iter().all(|e| e["state"] == "PUBLISHED"),
        "{v}"
    );
    assert_eq!(DATASET, "KR_KNOWLEDGE_SERVICES");
}
