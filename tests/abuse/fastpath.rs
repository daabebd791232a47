//! Issue 16: the compiled fast path keeps every limit. A query text is answered by a plan once
//! async-graphql has answered it cleanly; from then on the same limits refuse it with the
//! same bytes, and a read after a write sees the write.

use serde_json::{json, Value};

use crate::proc_support::{generated_store, release_input, Server, PUBLISH};

const WRITER: &str = "writer:fastpath-secret";
const WRITE_SECRET: &str = "fastpath-secret";

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("JSON body");
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_owned()
}

const PAGE: &str =
    "query Page($n: Int) { observations(dataset: \"SYNTHETIC_TRADE\", first: $n) { nodes { key period value } } }";

/// A server over 30 generated releases of 100 observations, without the response cache (so
/// every answer is executed), a cost limit of 60 and responses of at most 2,000 bytes.
async fn limited_server(dir: &std::path::Path) -> Server {
    let data = generated_store(dir, 30, 100).await;
    Server::start(
        &data,
        &[
            "--no-fixtures",
            "--response-cache-entries",
            "0",
            "--max-cost",
            "60",
            "--max-response-bytes",
            "2000",
        ],
    )
    .await
}

/// The cost limit and the response-size limit refuse a learned query exactly as they refused
/// it before it was learned (same status, same bytes), and a smaller page of it runs on the
/// fast path.
#[tokio::test]
async fn the_fast_path_refuses_what_async_graphql_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let server = limited_server(dir.path()).await;

    // Before the text is learned, async-graphql's path refuses both before anything runs:
    // the page of 80 by its cost, the page of 50 by its estimated size (more than 2,000
    // bytes; the plan's own stop at the response limit is a unit test of `fast`).
    let too_costly = server
        .post_raw("application/json", json!({ "query": PAGE, "variables": { "n": 80 } }))
        .await
        .parts();
    assert_eq!(code(&too_costly.1), "LIMIT_EXCEEDED", "{too_costly:?}");
    assert!(too_costly.1.contains("maxCost"), "{too_costly:?}");
    let too_large = server
        .post_raw("application/json", json!({ "query": PAGE, "variables": { "n": 50 } }))
        .await
        .parts();
    assert_eq!(code(&too_large.1), "LIMIT_EXCEEDED", "{too_large:?}");
    assert!(too_large.1.contains("maxResponseBytes"), "{too_large:?}");
    assert_eq!(server.fast_path_answers().await, 0);

    // A smaller page runs cleanly (the plan is learned from it), then on the plan.
    let (status, body) = server
        .post_raw("application/json", json!({ "query": PAGE, "variables": { "n": 5 } }))
        .await
        .parts();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["observations"]["nodes"].as_array().map(Vec::len),
        Some(5),
        "{body}"
    );
    assert_eq!(
        server
            .post_raw("application/json", json!({ "query": PAGE, "variables": { "n": 5 } }))
            .await
            .parts(),
        (status, body)
    );
    assert_eq!(server.fast_path_answers().await, 1, "answered by the plan");
    // The limits are checked before the plan runs: refused with the same bytes.
    assert_eq!(
        server
            .post_raw("application/json", json!({ "query": PAGE, "variables": { "n": 50 } }))
            .await
            .parts(),
        too_large
    );
    assert_eq!(
        server
            .post_raw("application/json", json!({ "query": PAGE, "variables": { "n": 80 } }))
            .await
            .parts(),
        too_costly
    );
    assert_eq!(server.fast_path_answers().await, 1, "refused before the plan runs");
}

/// A read answered by the fast path after an acknowledged write sees that write.
#[tokio::test]
async fn a_read_after_a_write_sees_it_on_the_fast_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--write-tokens", WRITER, "--response-cache-entries", "0"],
    )
    .await;
    let q = "query($k: String!) { observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $k, period: \"2030-S1\") { value revision } }";
    let vars = json!({ "k": "IPR._T._T" });
    assert_eq!(server.query(q, vars.clone()).await, json!({ "observation": null }));
    assert_eq!(server.query(q, vars.clone()).await, json!({ "observation": null }));
    let before = server.fast_path_answers().await;
    assert_eq!(before, 1, "the second read ran on the fast path");

    let input = release_input("6b1f0c2e-4d3a-4e51-9a57-2030a0000016", "IPR._T._T", "2030-S1", "16");
    let (_, body) = server
        .post(PUBLISH, json!({ "input": input }), Some(WRITE_SECRET))
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["publishRelease"]["release"]["id"],
        "6b1f0c2e-4d3a-4e51-9a57-2030a0000016"
    );
    let revision = body["data"]["publishRelease"]["revision"].clone();

    let data = server.query(q, vars).await;
    assert_eq!(data, json!({ "observation": { "value": "16", "revision": revision } }));
    assert_eq!(server.fast_path_answers().await, before + 1, "read on the fast path");
}

/// `--query-plans 0` turns the fast path off: every answer comes from async-graphql.
#[tokio::test]
async fn no_query_plans_no_fast_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--query-plans", "0", "--response-cache-entries", "0"],
    )
    .await;
    let q = "{ history(dataset: \"KR_KNOWLEDGE_SERVICES\", key: \"IPR._T._T\", period: \"2025-S1\") { value } }";
    let first = server.query(q, json!({})).await;
    assert_eq!(server.query(q, json!({})).await, first);
    assert_eq!(server.fast_path_answers().await, 0);
}

/// The mixed workload's listing (`bench/mixed_bodies.py`): the whole filter and the point
/// in history as variables of input-object types, with `totalCount`.
const LISTING: &str = "query Listing($filter: ObservationFilter, $asOf: AsOf, $first: Int) { \
    observations(dataset: \"SYNTHETIC_TRADE\", filter: $filter, asOf: $asOf, first: $first) { \
    totalCount nodes { key period value } pageInfo { hasNextPage endCursor } } }";

/// The mixed workload's revision summary.
const SUMMARY: &str = "query Summary($filter: ObservationFilter) { \
    revisionSummary(dataset: \"SYNTHETIC_TRADE\", filter: $filter) { \
    observationCount revisedCount meanRevision meanAbsoluteRevision maxAbsoluteRevision } }";

/// Listings and revision summaries with input-object variables run on the fast path with
/// async-graphql's answers; a variable naming a field its type does not have is still
/// refused by async-graphql, and the cost and response-size limits hold on the new plans.
#[tokio::test]
async fn listings_and_summaries_of_the_mix_run_on_the_fast_path_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = limited_server(dir.path()).await;

    let listing = json!({
        "filter": { "key": "_T.P01.", "periodFrom": "1990-01", "periodTo": "1992-06" },
        "asOf": { "revision": 20 },
        "first": 5,
    });
    // async-graphql answers first (and the plan is learned), then the plan: the same bytes.
    let first = server
        .post_raw(
            "application/json",
            json!({ "query": LISTING, "variables": listing.clone() }),
        )
        .await
        .parts();
    assert_eq!(first.0, 200, "{first:?}");
    let v: Value = serde_json::from_str(&first.1).unwrap();
    assert!(v.get("errors").is_none(), "{first:?}");
    assert_eq!(
        v["data"]["observations"]["nodes"].as_array().map(Vec::len),
        Some(5),
        "{first:?}"
    );
    assert!(
        v["data"]["observations"]["totalCount"].as_u64().unwrap() > 5,
        "{first:?}"
    );
    assert_eq!(server.fast_path_answers().await, 0);
    assert_eq!(
        server
            .post_raw("application/json", json!({ "query": LISTING, "variables": listing }))
            .await
            .parts(),
        first
    );
    assert_eq!(server.fast_path_answers().await, 1, "answered by the plan");

    let summary = json!({ "filter": { "key": "_T.P02.", "periods": ["1991-03"] } });
    let first_summary = server
        .post_raw(
            "application/json",
            json!({ "query": SUMMARY, "variables": summary.clone() }),
        )
        .await
        .parts();
    assert!(!first_summary.1.contains("errors"), "{first_summary:?}");
    assert!(first_summary.1.contains("observationCount"), "{first_summary:?}");
    assert_eq!(
        server
            .post_raw("application/json", json!({ "query": SUMMARY, "variables": summary }))
            .await
            .parts(),
        first_summary
    );
    assert_eq!(server.fast_path_answers().await, 2, "answered by the plan");

    // A field the filter type does not have: async-graphql's refusal, not the plan's answer.
    let (_, body) = server
        .post_raw(
            "application/json",
            json!({ "query": LISTING, "variables": { "filter": { "key": "_T.P01.", "nope": 1 }, "first": 5 } }),
        )
        .await
        .parts();
    assert!(body.contains("nope") && body.contains("errors"), "{body}");
    assert!(!body.contains("\"nodes\""), "{body}");
    assert_eq!(server.fast_path_answers().await, 2, "not answered by the plan");

    // The cost limit refuses a page too large before the plan runs.
    let (_, body) = server
        .post_raw(
            "application/json",
            json!({ "query": LISTING, "variables": { "filter": { "key": "_T.." }, "first": 80 } }),
        )
        .await
        .parts();
    assert_eq!(code(&body), "LIMIT_EXCEEDED", "{body}");
    assert!(body.contains("maxCost"), "{body}");
    assert_eq!(server.fast_path_answers().await, 2, "refused before the plan runs");

    // The response-size limit refuses a page too large, by its estimate, before the plan
    // runs.
    let (_, body) = server
        .post_raw(
            "application/json",
            json!({ "query": LISTING, "variables": { "filter": { "key": "_T.." }, "first": 50 } }),
        )
        .await
        .parts();
    assert_eq!(code(&body), "LIMIT_EXCEEDED", "{body}");
    assert!(body.contains("maxResponseBytes"), "{body}");
    assert_eq!(server.fast_path_answers().await, 2, "refused before the plan runs");
}
