//! Purging HTTP caches when the ledger changes (`--purge-url`).
//!
//! A task follows the ledger's notices (the channel subscriptions are fed from, so events
//! recorded by other nodes of a JetStream cluster count too) and, for every burst of events
//! (those announced within [`COALESCE`] of the first), sends each configured cache
//! `PURGE <url>` once per dataset they changed, with the surrogate keys of the head answers
//! they can change in `xkey-purge` (the dataset's key and [`TAG_LEDGER`]) and the dataset in
//! `X-Tradeledger-Dataset`. Pinned answers carry neither key and stay cached.
//!
//! Every node purges after it applied the events itself, whichever node recorded them: a
//! cache may fetch the new answer from any node, and only a purge sent once that node has
//! applied the event keeps it from storing the old answer again; a node cannot know when the
//! others have applied it without coordinating with them. Caches may also be per node.
//!
//! Writes never wait for it: the notice is sent after the write is applied, and each purge
//! runs as a task of its own. A purge that fails (no answer within the timeout, or not 2xx)
//! is retried with growing pauses and counted; one that still fails is counted and left to
//! the caches' `max-age`. If the task falls behind the notices, it purges every dataset.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, Method};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::caching::{dataset_tag, TAG_LEDGER};
use super::AppState;
use crate::projection::Applied;

/// The header naming the surrogate keys to purge (Varnish's xkey vmod reads it in VCL).
pub const PURGE_KEYS_HEADER: &str = "xkey-purge";
/// The header naming the dataset that changed.
pub const DATASET_HEADER: &str = "x-tradeledger-dataset";
/// How long the task waits after a notice for the events recorded with it, which it purges
/// together: each dataset once per burst of events, not once per event.
const COALESCE: Duration = Duration::from_millis(20);
/// Longest wait for a cache to answer one purge.
const PURGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pauses before the retries of a failed purge.
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
];

/// Starts the purge task when caches are configured; it ends when `state`'s server stops.
pub fn spawn(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    if state.config.purge_urls.is_empty() {
        return None;
    }
    Some(tokio::spawn(run(state)))
}

async fn run(state: Arc<AppState>) {
    let client = match reqwest::Client::builder().timeout(PURGE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for cache purges; caches will not be purged");
            return;
        }
    };
    let mut notices = state.ledger.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => return,
            notice = notices.recv() => notice,
        };
        // The events recorded with it (a group commit, an import's batch) are applied and
        // announced within moments: wait that long, take every notice there is, and purge each
        // dataset once for all of them.
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(COALESCE) => {}
        }
        let mut datasets = BTreeSet::new();
        let mut next = Some(first);
        while let Some(notice) = next.take() {
            match notice {
                Ok(notice) => datasets.extend(dataset_of(&state, &notice.applied)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "cache purges fell behind the ledger; purging every dataset");
                    // Off the worker while the lock is not free at once (a write waiting for a
                    // long reader): see `Ledger::read_on_runtime`.
                    datasets.extend(
                        state
                            .ledger
                            .read_on_runtime(|p| p.datasets().iter().map(|d| d.def.id.to_string()).collect::<Vec<_>>()),
                    );
                }
                Err(RecvError::Closed) => return,
            }
            next = match notices.try_recv() {
                Ok(notice) => Some(Ok(notice)),
                Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => None,
            };
        }
        for dataset in datasets {
            for url in &state.config.purge_urls {
                tokio::spawn(purge(state.clone(), client.clone(), url.clone(), dataset.clone()));
            }
        }
    }
}

/// The dataset whose head answers an event can change.
fn dataset_of(state: &AppState, applied: &Applied) -> Option<String> {
    match applied {
        Applied::DatasetDefined { id } | Applied::DatasetAmended { id } => Some(id.clone()),
        // Off the worker while the lock is not free at once: see `Ledger::read_on_runtime`.
        Applied::ReleasePublished { release, .. } => state
            .ledger
            .read_on_runtime(|p| p.releases().get(*release as usize).map(|r| r.dataset.clone())),
        // The calendar changes.
        Applied::ReleaseScheduled { id } | Applied::ScheduleWithdrawn { id } => state
            .ledger
            .read_on_runtime(|p| p.schedule(id).map(|s| s.schedule.dataset.clone())),
    }
}

/// Sends one purge, with retries; counts the outcome.
async fn purge(state: Arc<AppState>, client: reqwest::Client, url: String, dataset: String) {
    let keys = format!("{} {TAG_LEDGER}", dataset_tag(&dataset));
    let method = Method::from_bytes(b"PURGE").expect("a valid method");
    let (Ok(keys), Ok(dataset_value)) = (HeaderValue::from_str(&keys), HeaderValue::from_str(&dataset)) else {
        return;
    };
    for attempt in 0..=RETRY_PAUSES.len() {
        let sent = client
            .request(method.clone(), &url)
            .header(PURGE_KEYS_HEADER, keys.clone())
            .header(DATASET_HEADER, dataset_value.clone())
            .send()
            .await;
        let why = match sent {
            Ok(r) if r.status().is_success() => {
                state.metrics.purges.inc();
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) => e.to_string(),
        };
        match RETRY_PAUSES.get(attempt) {
            Some(pause) => {
                tracing::debug!(url, dataset, attempt, error = %why, "cache purge failed; retrying");
                state.metrics.purge_retries.inc();
                tokio::time::sleep(*pause).await;
            }
            None => {
                tracing::warn!(url, dataset, error = %why, "cache purge failed; the cache keeps answers until their max-age");
                state.metrics.purge_failures.inc();
            }
        }
    }
}
