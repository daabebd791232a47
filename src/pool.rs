//! The query pool: where GraphQL operations run, away from the threads that serve I/O.
//!
//! async-graphql resolves a whole query in one poll when no resolver waits on anything, so a
//! heavy query run on the I/O runtime holds a worker for seconds: `/healthz`, WebSocket pings
//! and cheap queries queue behind it, and `tokio::time::timeout` around it cannot fire until
//! it is done. Operations run here instead, on a runtime of their own with a fixed number of
//! threads, under admission control:
//!
//! - at most `max_running` operations run at once, and at most `max_waiting` more wait for a
//!   slot; beyond that [`QueryPool::run`] refuses at once ([`Refused::Busy`]: HTTP 503 with
//!   `Retry-After`), rather than queueing without limit;
//! - the caller's deadline covers the wait and the run; when it passes the task is aborted
//!   ([`Refused::TimedOut`]), and since list items yield to the scheduler as they resolve
//!   ([`crate::graphql`]'s `Tick`), the abort takes effect within one slice of work: the CPU
//!   is given back, not just the answer sent early. The same yields let cheap operations
//!   interleave with heavy ones on the pool's threads.
//!
//! The timer of the deadline runs on the caller's (I/O) runtime, so it fires on time however
//! busy the pool is.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Why an operation was not run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every running slot and every waiting place is taken.
    Busy,
    /// The deadline passed (waiting included); the work was cancelled.
    TimedOut,
    /// The operation panicked; the pool carries on.
    Panicked,
}

/// A bounded pool of threads for GraphQL execution; see the module docs.
pub struct QueryPool {
    /// Owned here so that dropping the pool stops its threads without waiting for them.
    runtime: Option<Runtime>,
    handle: Handle,
    /// Permits for operations running or waiting to run.
    admitted: Arc<Semaphore>,
    /// Permits for operations running.
    running: Arc<Semaphore>,
    pub threads: usize,
    pub max_running: usize,
    pub max_waiting: usize,
}

/// Aborts the task when the caller stops waiting for it (timeout, or a client that left).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl QueryPool {
    /// A pool of `threads` threads (0: one per core) running at most `max_running`
    /// operations, with at most `max_waiting` more waiting.
    pub fn new(threads: usize, max_running: usize, max_waiting: usize) -> std::io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let max_running = max_running.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("tl-query")
            .enable_all()
            .build()?;
        Ok(QueryPool {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            admitted: Arc::new(Semaphore::new(max_running.saturating_add(max_waiting))),
            running: Arc::new(Semaphore::new(max_running)),
            threads,
            max_running,
            max_waiting,
        })
    }

    /// Operations admitted and not yet finished (running or waiting).
    pub fn in_flight(&self) -> usize {
        (self.max_running + self.max_waiting).saturating_sub(self.admitted.available_permits())
    }

    /// Runs `work` on the pool if there is room, within `timeout` (waiting included).
    pub async fn run<T, F>(&self, timeout: Duration, work: F) -> Result<T, Refused>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            return Err(Refused::Busy);
        };
        let running = self.running.clone();
        let task = AbortOnDrop(self.handle.spawn(async move {
            // Both permits go back when the task ends, including when it is aborted.
            let _admitted = admitted;
            let _slot = running.acquire_owned().await.expect("the pool's semaphore is never closed");
            work.await
        }));
        let mut task = task;
        match tokio::time::timeout(timeout, &mut task.0).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is_panic() => {
                tracing::error!(error = %e, "a GraphQL operation panicked");
                Err(Refused::Panicked)
            }
            Ok(Err(_)) => Err(Refused::TimedOut),
            Err(_) => Err(Refused::TimedOut),
        }
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        // Dropping a runtime inside another one panics; this never blocks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_running_plus_waiting() {
        let pool = Arc::new(QueryPool::new(1, 1, 1).unwrap());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut held = Vec::new();
        for _ in 0..2 {
            let pool = pool.clone();
            let mut rx = rx.clone();
            held.push(tokio::spawn(async move {
                pool.run(Duration::from_secs(10), async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await
            }));
        }
        // Let both be admitted.
        while pool.in_flight() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.run(Duration::from_secs(1), async {}).await, Err(Refused::Busy));
        tx.send(true).unwrap();
        for h in held {
            assert_eq!(h.await.unwrap(), Ok(()));
        }
        assert_eq!(pool.run(Duration::from_secs(1), async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn a_timeout_aborts_work_that_yields() {
        let pool = QueryPool::new(1, 4, 0).unwrap();
        let steps = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = steps.clone();
        let result = pool
            .run(Duration::from_millis(50), async move {
                loop {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                    tokio::task::yield_now().await;
                }
            })
            .await;
        assert_eq!(result, Err(Refused::TimedOut));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = steps.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(steps.load(std::sync::atomic::Ordering::Relaxed), after, "the work stopped");
        assert_eq!(pool.in_flight(), 0, "the aborted task gave its permits back");
    }
}
