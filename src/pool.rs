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
//! The pool has two lanes of `threads` threads each. Every operation starts on the first;
//! one still running after [`FAST_LANE_TIME`] moves on to the second and finishes there. Heavy
//! operations thus share the slow lane among themselves, while the fast lane's threads stay
//! mostly idle, so a cheap operation starts at once even when the machine is loaded and the
//! operating system, not only tokio, decides who runs (with one lane, a cheap query waited
//! up to 180 ms behind three heavy ones on two loaded cores; see bench/abuse-runtime.sh).
//!
//! The timer of the deadline runs on the caller's (I/O) runtime, so it fires on time however
//! busy the pool is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::ledger::WriteGate;

/// Why an operation was not run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every running slot and every waiting place is taken.
    Busy,
    /// The deadline passed (waiting included); the work was cancelled.
    TimedOut,
    /// The operation panicked; the pool carries on.
    Panicked,
    /// The deadline passed after the operation handed writes to the ledger's writer, and
    /// their outcome was not known within the write timeout either (see
    /// [`crate::ledger::WriteGate`]): the gate says which writes.
    OutcomeUnknown,
}

/// How long an operation may run on the fast lane before it moves to the slow one.
pub const FAST_LANE_TIME: Duration = Duration::from_millis(10);

/// A bounded pool of threads for GraphQL execution; see the module docs.
pub struct QueryPool {
    /// Owned here so that dropping the pool stops their threads without waiting for them.
    runtimes: Vec<Runtime>,
    fast: Handle,
    slow: Handle,
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
        let lane = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(name)
                // Operations yield every few milliseconds and go back to their worker's local
                // queue; a new one waits in the shared queue, which a busy worker looks at
                // only every so many polls (61 by default) unless told otherwise.
                .global_queue_interval(2)
                .enable_all()
                .build()
        };
        let (fast, slow) = (lane("tl-query")?, lane("tl-query-slow")?);
        Ok(QueryPool {
            fast: fast.handle().clone(),
            slow: slow.handle().clone(),
            runtimes: vec![fast, slow],
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
        self.run_writing(timeout, None, work).await
    }

    /// [`QueryPool::run`] for work that may hand writes to the ledger's writer through
    /// `writes.0`. When `timeout` passes, the gate is closed: if nothing was handed over the
    /// work is cancelled ([`Refused::TimedOut`]; none of its writes can be recorded any
    /// more); if something was, the work goes on and is waited for until `writes.1` after
    /// the start (the write timeout), and only beyond is it given up
    /// ([`Refused::OutcomeUnknown`]): a write that reached the writer is never answered as
    /// timed out.
    pub async fn run_writing<T, F>(
        &self,
        timeout: Duration,
        writes: Option<(&WriteGate, Duration)>,
        work: F,
    ) -> Result<T, Refused>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let start = Instant::now();
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            return Err(Refused::Busy);
        };
        let running = self.running.clone();
        let slow = self.slow.clone();
        let mut task = AbortOnDrop(self.fast.spawn(async move {
            // Both permits go back when the task ends, including when it is aborted.
            let _admitted = admitted;
            let _slot = running
                .acquire_owned()
                .await
                .expect("the pool's semaphore is never closed");
            let started = Instant::now();
            let mut work = Box::pin(work);
            let first = std::future::poll_fn(|cx| {
                if started.elapsed() >= FAST_LANE_TIME {
                    return Poll::Ready(None);
                }
                work.as_mut().poll(cx).map(Some)
            })
            .await;
            match first {
                Some(value) => value,
                None => {
                    // Aborting this task drops the guard, which aborts the moved work too.
                    let mut moved = AbortOnDrop(slow.spawn(work as Pin<Box<dyn Future<Output = T> + Send>>));
                    match (&mut moved.0).await {
                        Ok(value) => value,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // Cancelled: the pool is shutting down; the caller times out.
                        Err(_) => std::future::pending().await,
                    }
                }
            }
        }));
        let joined = match tokio::time::timeout(timeout, &mut task.0).await {
            Ok(joined) => joined,
            Err(_) => {
                let Some((gate, write_timeout)) = writes else {
                    return Err(Refused::TimedOut);
                };
                if gate.close().is_empty() {
                    return Err(Refused::TimedOut);
                }
                let left = write_timeout.saturating_sub(start.elapsed());
                match tokio::time::timeout(left, &mut task.0).await {
                    Ok(joined) => joined,
                    Err(_) => return Err(Refused::OutcomeUnknown),
                }
            }
        };
        match joined {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, "a GraphQL operation panicked");
                Err(Refused::Panicked)
            }
            Err(_) => Err(Refused::TimedOut),
        }
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        // Dropping a runtime inside another one panics; this never blocks.
        for runtime in self.runtimes.drain(..) {
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
        // Left alone the work never ends: it must stop growing, two samples a window apart
        // equal, within a bounded number of windows (the abort reaches the moved work once
        // the pool's threads get to run, which on a loaded machine can take a while).
        const WINDOW: Duration = Duration::from_millis(100);
        const WINDOWS: usize = 100;
        let load = || steps.load(std::sync::atomic::Ordering::Relaxed);
        let mut before = load();
        let mut stopped = false;
        for _ in 0..WINDOWS {
            tokio::time::sleep(WINDOW).await;
            let now = load();
            if now == before {
                stopped = true;
                break;
            }
            before = now;
        }
        assert!(
            stopped,
            "the work still ran {WINDOWS} windows of {WINDOW:?} after the timeout"
        );
        assert_eq!(pool.in_flight(), 0, "the aborted task gave its permits back");
    }
}
