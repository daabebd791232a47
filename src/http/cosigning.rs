//! Witness cosigning pushed by the log (`serve --witness-policy`): after each checkpoint, at
//! most once a second, `add-checkpoint` (C2SP `tlog-witness`) to every witness of the policy
//! that has a URL, with the consistency proof from the size the witness last cosigned.
//!
//! One task per witness, each with its own timeouts, off the request path: a witness that
//! hangs delays only its own cosignatures, never a write or a read. A 409 is answered by
//! resubmitting from the size the witness states; a 403, 404 or 422 is an alarm (the metric
//! `tradeledger_witness_alarms_total`, an error log line naming the witness, and the
//! witness's `alarm` in the GraphQL `checkpoint`), and the server stays ready.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::metrics::WitnessAlarmLabels;
use super::AppState;
use crate::ledger::transparency::{self, Witnessing};
use crate::tlog::note::{parse_signature_line, split_note};

/// At most one submission per witness per this period.
const PERIOD: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response read from a witness.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// Starts one task per witness with a URL; they end when the server shuts down.
pub(super) fn spawn(state: Arc<AppState>) {
    let Some(w) = state.ledger.witnessing().cloned() else {
        return;
    };
    let client = match reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the witnesses");
            return;
        }
    };
    for (index, witness) in w.policy.witnesses.iter().enumerate() {
        if let Some(url) = &witness.url {
            let url = format!("{}/add-checkpoint", url.trim_end_matches('/'));
            tokio::spawn(run(state.clone(), w.clone(), index, url, client.clone()));
        }
    }
}

/// What one submission came to.
enum Outcome {
    Cosigned,
    /// 409: the witness has cosigned this size.
    Conflict(u64),
    Alarm(String, String),
    /// Unreachable, timed out, or an unexpected answer: tried again later.
    Failed(String),
}

async fn run(state: Arc<AppState>, w: Arc<Witnessing>, index: usize, url: String, client: reqwest::Client) {
    let name = w.policy.witnesses[index].name.clone();
    let mut shutdown = state.shutdown.clone();
    // The size the witness last cosigned, as far as this server knows (0: it may know more,
    // and says so with a 409).
    let mut known: u64 = 0;
    let mut done: Option<u64> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let head = state.ledger.read_on_runtime(|p| p.head().revision);
        if head == 0 || done == Some(head) {
            continue;
        }
        // A 409 gives the witness's size: resubmit once from it, in the same round.
        let mut outcome = submit(&state, &w, index, &url, &client, known, head).await;
        if let Outcome::Conflict(size) = outcome {
            if size > head {
                outcome = Outcome::Alarm(
                    "409".into(),
                    format!("the witness has cosigned size {size}, larger than this log's {head}"),
                );
            } else {
                known = size;
                outcome = submit(&state, &w, index, &url, &client, known, head).await;
            }
        }
        match outcome {
            Outcome::Cosigned => {
                if failing {
                    tracing::info!(witness = %name, size = head, "the witness cosigns again");
                }
                failing = false;
                known = head;
                done = Some(head);
            }
            Outcome::Conflict(size) => {
                known = size;
            }
            Outcome::Alarm(reason, message) => {
                state
                    .metrics
                    .witness_alarms
                    .get_or_create(&WitnessAlarmLabels {
                        witness: name.clone(),
                        reason: reason.clone(),
                    })
                    .inc();
                tracing::error!(witness = %name, %url, status = %reason, size = head, "witness alarm: {message}");
                w.alarm(index, format!("{reason}: {message}"));
                // Not again for this size; a new checkpoint is submitted afresh.
                done = Some(head);
            }
            Outcome::Failed(why) => {
                if !failing {
                    tracing::warn!(witness = %name, %url, "the witness cannot be reached: {why}");
                }
                failing = true;
            }
        }
    }
}

async fn submit(
    state: &AppState,
    w: &Witnessing,
    index: usize,
    url: &str,
    client: &reqwest::Client,
    old: u64,
    size: u64,
) -> Outcome {
    let note = match transparency::log_checkpoint(&state.ledger, size) {
        Ok(n) => n,
        Err(e) => return Outcome::Failed(format!("no checkpoint to submit: {e}")),
    };
    let proof = if old == 0 || old >= size {
        Vec::new()
    } else {
        match transparency::consistency(&state.ledger, old, size) {
            Ok(p) => p.hashes,
            Err(e) => return Outcome::Failed(format!("no consistency proof from {old} to {size}: {e}")),
        }
    };
    let mut body = format!("old {old}\n");
    for h in &proof {
        body.push_str(&STANDARD.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&note);
    let response = match client.post(url).body(body).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = match read_bounded(response).await {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e),
    };
    match status {
        200 => {
            let (body_text, _) = split_note(&note).expect("our own note");
            let verifier = &w.policy.witnesses[index].verifier;
            for line in text.lines() {
                let Ok(sig) = parse_signature_line(line) else {
                    continue;
                };
                if verifier.matches(&sig) && verifier.verify(body_text, &sig).is_ok() {
                    w.cosigned(index, size, line.to_owned());
                    return Outcome::Cosigned;
                }
            }
            Outcome::Alarm(
                "cosignature".into(),
                "answered 200 without a valid cosignature by its key".into(),
            )
        }
        409 if content_type.starts_with(crate::tlog::witness_server::SIZE_CONTENT_TYPE) => {
            match text.strip_suffix('\n').and_then(|t| t.parse::<u64>().ok()) {
                Some(n) => Outcome::Conflict(n),
                None => Outcome::Failed(format!("a 409 whose body is not a tree size: {:?}", text)),
            }
        }
        403 | 404 | 422 => Outcome::Alarm(status.to_string(), text.trim_end().to_owned()),
        other => Outcome::Failed(format!("status {other}: {}", text.trim_end())),
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(format!("the response is longer than {MAX_RESPONSE_BYTES} bytes"));
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
