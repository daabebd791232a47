//! The local projection snapshot, `DATA_DIR/snapshot`: written on graceful shutdown and in the
//! background, read at start-up so that only the events recorded after it are folded.
//!
//! The snapshot is derived data and never the truth. It is used only when its header and
//! checksum are intact and the log's event at its revision has its hash; the events after it
//! are then folded with their chain checked from that hash. Anything else (a torn or altered
//! file, another format, a store that was replaced, restored or damaged after it) is logged as
//! a warning naming why and the whole log is folded, exactly as without a snapshot. A full
//! verification (`verify`, `verifyLedger`) re-reads and re-folds the whole log whatever the
//! snapshot says, and compares the result with the projection being served.
//!
//! Format and decoding: `projection::snapshot`. It works over any `LogStore`: see
//! `ledger::Prefold::from_snapshot`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use tokio::sync::watch;

use crate::ledger::{Ledger, OpenError, Prefold};
use crate::projection::Projection;
use crate::store::RecordIter;

/// The snapshot's file name in the data directory.
pub const FILE: &str = "snapshot";
/// Where a snapshot is written before it is renamed over [`FILE`].
const TEMP_FILE: &str = "snapshot.tmp";

/// The flags of `serve` that govern snapshots.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotArgs {
    /// Neither read nor write DATA_DIR/snapshot: every start folds the whole log.
    #[arg(long, env = "TRADELEDGER_NO_SNAPSHOT")]
    pub no_snapshot: bool,
    /// Write a snapshot in the background once this many revisions were recorded since the
    /// last one (at least 1).
    #[arg(
        long,
        env = "TRADELEDGER_SNAPSHOT_EVERY_REVISIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub snapshot_every_revisions: u64,
    /// Seconds between background snapshots while anything new was recorded (at least 1).
    /// One is also written on graceful shutdown.
    #[arg(
        long,
        env = "TRADELEDGER_SNAPSHOT_INTERVAL",
        value_name = "SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub snapshot_interval: u64,
}

impl Default for SnapshotArgs {
    fn default() -> Self {
        SnapshotArgs {
            no_snapshot: false,
            snapshot_every_revisions: 10_000,
            snapshot_interval: 300,
        }
    }
}

/// Reads `DIR/snapshot`. `None` when there is none, or (with a warning naming why) when it
/// cannot be read or fails its checks.
pub fn load(dir: &Path) -> Option<Projection> {
    let path = dir.join(FILE);
    let started = Instant::now();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("no snapshot at {}; folding the whole log", path.display());
            return None;
        }
        Err(e) => {
            tracing::warn!(reason = %e, "ignoring the snapshot {}: {e}; folding the whole log", path.display());
            return None;
        }
    };
    match Projection::from_snapshot(&bytes) {
        Ok(p) => {
            tracing::info!(
                revision = p.head().revision,
                versions = p.version_count(),
                bytes = bytes.len(),
                millis = started.elapsed().as_millis() as u64,
                "loaded the snapshot {}",
                path.display()
            );
            Some(p)
        }
        Err(e) => {
            tracing::warn!(reason = %e, "ignoring the snapshot {}: {e}; folding the whole log", path.display());
            None
        }
    }
}

/// The start-up fold: continues `snapshot` over `scan(R)` (R its revision) when the log
/// agrees with it, else folds `scan(1)`, the whole log. True when the snapshot was used.
pub(crate) fn prefold<'a>(
    snapshot: Option<Projection>,
    scan: impl Fn(u64) -> RecordIter<'a>,
) -> Result<(Prefold, bool), OpenError> {
    if let Some(p) = snapshot {
        let revision = p.head().revision;
        let why = match Prefold::from_snapshot(p, scan(revision)) {
            Ok(prefold) => match prefold.damage() {
                None => return Ok((prefold, true)),
                Some(d) => format!("the log after it is damaged at {d}"),
            },
            Err(e) => e.to_string(),
        };
        tracing::warn!(revision, reason = %why, "not using the snapshot: {why}; folding the whole log");
    }
    Ok((Prefold::from_records(scan(1))?, false))
}

/// What [`save`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    pub revision: u64,
    pub bytes: u64,
    /// How long the projection was read-locked (writes wait that long at most).
    pub pause: Duration,
    /// The whole write, fsyncs included.
    pub total: Duration,
}

/// Writes the ledger's projection to `DIR/snapshot` on the calling thread: serialized under
/// the projection's read lock, then checksummed and written without it, to a temporary file
/// that is fsynced and renamed over the old snapshot (the directory fsynced after), so a
/// crash leaves the old snapshot or the new one, never a torn one under the name.
pub fn save_blocking(ledger: &Ledger, dir: &Path) -> Result<Saved> {
    let started = Instant::now();
    let (unsealed, revision) = {
        let p = ledger.read();
        (p.snapshot_unsealed(), p.head().revision)
    };
    let pause = started.elapsed();
    let bytes = unsealed.seal();
    write_file(dir, &bytes)?;
    Ok(Saved {
        revision,
        bytes: bytes.len() as u64,
        pause,
        total: started.elapsed(),
    })
}

/// [`save_blocking`] on tokio's blocking pool.
pub async fn save(ledger: &Ledger, dir: &Path) -> Result<Saved> {
    let (ledger, dir) = (ledger.clone(), dir.to_owned());
    tokio::task::spawn_blocking(move || save_blocking(&ledger, &dir))
        .await
        .context("writing the snapshot")?
}

fn write_file(dir: &Path, bytes: &[u8]) -> Result<()> {
    let temp = dir.join(TEMP_FILE);
    let path = dir.join(FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    drop(file);
    std::fs::rename(&temp, &path).with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// When `serve` writes snapshots, and where.
#[derive(Debug, Clone)]
pub struct Policy {
    pub dir: PathBuf,
    pub args: SnapshotArgs,
    /// The revision the snapshot on disk covers (0: none).
    pub covered: u64,
}

/// The background writer of a running server.
pub struct Writer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
    ledger: Ledger,
    dir: PathBuf,
}

impl Policy {
    /// Starts writing snapshots in the background: every `--snapshot-every-revisions`
    /// revisions, or every `--snapshot-interval` seconds while anything new was recorded.
    pub fn spawn(self, ledger: Ledger) -> Writer {
        let (stop, mut stopped) = watch::channel(false);
        let every = self.args.snapshot_every_revisions;
        let interval = Duration::from_secs(self.args.snapshot_interval);
        let poll = interval.min(Duration::from_secs(1));
        let (l, dir) = (ledger.clone(), self.dir.clone());
        let mut covered = self.covered;
        let task = tokio::spawn(async move {
            let mut since = Instant::now();
            // After a failed write (a full disk, a degraded ledger), the next try waits for
            // the interval rather than coming back at every poll.
            let mut next_try = Instant::now();
            loop {
                tokio::select! {
                    _ = stopped.changed() => return covered,
                    () = tokio::time::sleep(poll) => {}
                }
                let head = l.read().head().revision;
                let due = head >= covered.saturating_add(every) || (head > covered && since.elapsed() >= interval);
                if due && Instant::now() >= next_try {
                    match save_logged(&l, &dir, "background").await {
                        Some(saved) => covered = saved.revision,
                        None => next_try = Instant::now() + interval,
                    }
                    since = Instant::now();
                }
            }
        });
        Writer {
            stop,
            task,
            ledger,
            dir: self.dir,
        }
    }
}

impl Writer {
    /// Stops the background writer and writes a last snapshot if anything is new (called on
    /// graceful shutdown, after the store's final flush).
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let covered = self.task.await.unwrap_or(0);
        if self.ledger.read().head().revision > covered {
            save_logged(&self.ledger, &self.dir, "shutdown").await;
        }
    }
}

/// Saves unless the ledger is degraded (a damaged log, a store that failed): its projection
/// may then not be the log's, and the snapshot on disk stays as it was.
async fn save_logged(ledger: &Ledger, dir: &Path, why: &'static str) -> Option<Saved> {
    if ledger.health().degraded {
        tracing::debug!("not writing a snapshot: the ledger is degraded");
        return None;
    }
    match save(ledger, dir).await {
        Ok(s) => {
            tracing::info!(
                revision = s.revision,
                bytes = s.bytes,
                pause_ms = s.pause.as_millis() as u64,
                total_ms = s.total.as_millis() as u64,
                "wrote a snapshot ({why})"
            );
            Some(s)
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not write a snapshot ({why})");
            None
        }
    }
}
