//! The readiness probe: the stream's info, asked for on a timer.

use super::*;

/// Asks the stream for its info every [`PROBE_EVERY`] (bounded by `timeout`) and keeps in
/// `failure` why it did not answer or has no leader, so that readiness says so on a node that
/// does not write; cleared when it answers again. A probe that overlapped a successful append
/// is not believed.
pub(super) async fn probe(
    js: jetstream::Context,
    stream: String,
    timeout: Duration,
    failure: Arc<Mutex<Option<String>>>,
    appended: Arc<AtomicU64>,
) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let before = appended.load(Ordering::Acquire);
        let problem = match tokio::time::timeout(timeout, js.get_stream(&stream)).await {
            Err(_) => Some(format!("no answer within {timeout:?} (no leader or no quorum)")),
            Ok(Err(e)) => Some(format!("no answer ({e}; no leader or no quorum)")),
            Ok(Ok(s)) => leaderless(s.cached_info()).then(|| "it has no leader (no quorum)".to_owned()),
        };
        let mut failure = failure.lock().unwrap_or_else(PoisonError::into_inner);
        match problem {
            Some(_) if appended.load(Ordering::Acquire) != before => {}
            Some(problem) => {
                if failure.is_none() {
                    tracing::warn!(stream = %stream, problem = %problem, "the JetStream stream does not answer");
                }
                *failure = Some(format!(
                    "the JetStream stream {stream} does not answer: {problem}; writes would fail until it does \
                     (checked every {} s)",
                    PROBE_EVERY.as_secs()
                ));
            }
            None => {
                if failure.take().is_some() {
                    tracing::info!(stream = %stream, "the JetStream stream answers again");
                }
            }
        }
    }
}

/// Whether a replicated stream has no leader (being elected, or no quorum).
pub(super) fn leaderless(info: &stream::Info) -> bool {
    info.config.num_replicas > 1
        && info
            .cluster
            .as_ref()
            .is_some_and(|c| c.leader.as_deref().is_none_or(str::is_empty))
}
