//! Live subscriptions over WebSocket: `releasePublished` (live, resumed with `afterRevision`,
//! filtered by dataset, racing with a replay), `observationRevised`, fan-out to many
//! subscribers, isolation from a subscriber that never reads, every close code and message
//! rule of `graphql-transport-ws`, the legacy `graphql-ws` protocol, and graceful shutdown.
//!
//! Every test talks to a real server (tests/support) through tokio-tungstenite, and every
//! receive has a timeout, so a broken server fails a test instead of hanging it.

use crate::support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::ws::*;
use support::*;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::{self, Message};
use tradeledger::auth::Token;
use uuid::Uuid;

mod events;
mod fan_out;
mod protocol;

const RELEASES: &str =
    "subscription($after: Int) { releasePublished(afterRevision: $after) { revision release { id title } } }";

/// `start` padded with `x` to 1,000 characters: big enough titles fill socket buffers.
fn long_title(start: String) -> String {
    format!("{start:x<1000}")
}

/// Waits until the ledger has at least `n` notice receivers, that is, `n` subscription
/// streams have been set up on the server, so a publish after this is seen live.
async fn wait_subscribers(app: &TestApp, n: usize) {
    let start = Instant::now();
    while app.ledger.subscriber_count() < n {
        // The deadline only guards against subscriptions that are never set up.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {n} subscriptions set up after 120 s",
            app.ledger.subscriber_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the ledger has at most `n` notice receivers.
async fn wait_subscribers_at_most(app: &TestApp, n: usize) {
    let start = Instant::now();
    while app.ledger.subscriber_count() > n {
        assert!(
            start.elapsed() < RECV,
            "still {} subscriptions (expected at most {n})",
            app.ledger.subscriber_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing helpers
// ---------------------------------------------------------------------------------------------

/// A release of KR_KNOWLEDGE_SERVICES with a fresh id: (id, input).
fn new_release(key: &str, period: &str, value: &str) -> (String, Value) {
    let id = Uuid::new_v4().to_string();
    let input = release_input(&id, key, period, value);
    (id, input)
}

/// Publishes over HTTP with the write token; returns the revision.
async fn publish_revision(app: &TestApp, input: Value) -> u64 {
    let r = timeout(RECV, app.publish(input)).await.expect("publish timed out");
    r["revision"].as_u64().unwrap_or_else(|| panic!("no revision in {r}"))
}

/// Publishes all `inputs`, `concurrency` at a time; returns their revisions.
async fn publish_many(app: &TestApp, inputs: Vec<Value>, concurrency: usize) -> Vec<u64> {
    stream::iter(inputs)
        .map(|input| publish_revision(app, input))
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// `n` releases of one figure with fresh ids: (ids, inputs).
fn releases(n: usize, key: &str) -> (Vec<String>, Vec<Value>) {
    (0..n).map(|i| new_release(key, "2026-S1", &i.to_string())).unzip()
}
