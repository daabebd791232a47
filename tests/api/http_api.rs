//! Every field of the GraphQL API, over real HTTP, against the fixtures: the dataset at
//! revision 1, the Bank of Korea's preliminary 2025-S1 release at revision 2 and the
//! SYNTHETIC revision at revision 3.

mod amend;
mod arguments;
mod audit;
mod auth;
mod bad_input;
mod catalog;
mod observations;
mod order;
mod summaries;
mod transparency;
mod writes;

use crate::support;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;
use tradeledger::auth::Token;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")).to_owned())
        .collect()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Keys ("key period") and values of an `observations` connection's nodes.
fn keys_and_values(conn: &Value) -> Vec<(String, String)> {
    conn["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                format!("{} {}", n["key"].as_str().unwrap(), n["period"].as_str().unwrap()),
                n["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const OBSERVATIONS: &str = "query($filter: ObservationFilter, $asOf: AsOf, $first: Int, $after: String) {
  observations(dataset: \"KR_KNOWLEDGE_SERVICES\", filter: $filter, asOf: $asOf, first: $first, after: $after) {
    nodes { key period measure value status }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}";

async fn observations(app: &TestApp, filter: Value) -> Vec<(String, String)> {
    let data = app.query(OBSERVATIONS, json!({ "filter": filter })).await;
    keys_and_values(&data["observations"])
}

fn kv(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const OBSERVATION: &str = "query($key: String!, $period: Period!, $asOf: AsOf) {
  observation(dataset: \"KR_KNOWLEDGE_SERVICES\", key: $key, period: $period, asOf: $asOf) {
    key period measure value status revision preliminaryValue revisedFrom versionCount revisionCount
    revisionFromPreliminary asOfRevision publishedAt
    dimensions { dimension code label }
    release { id status }
  }
}";

async fn total_as_of(app: &TestApp, as_of: Value) -> Value {
    let data = app
        .query(
            OBSERVATION,
            json!({ "key": "_T._T._T", "period": "2025-S1", "asOf": as_of }),
        )
        .await;
    data["observation"].clone()
}

const BREAKDOWN: &str = "query($dimension: String!, $asOf: AsOf) {
  breakdown(dataset: \"KR_KNOWLEDGE_SERVICES\", dimension: $dimension, period: \"2025-S1\", asOf: $asOf) {
    dimension asOfRevision total { key value } items { key value } sumOfItems residual
  }
}";

async fn breakdown(app: &TestApp, dimension: &str, as_of: Value) -> Value {
    app.query(BREAKDOWN, json!({ "dimension": dimension, "asOf": as_of }))
        .await["breakdown"]
        .clone()
}

/// The ids of releases the tests publish.
const NEW_ID: &str = "0f6a3c1e-2b7d-4c1a-9e55-00000000aa01";
const LATER_ID: &str = "0f6a3c1e-2b7d-4c1a-9e55-00000000aa02";
