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

use std::io::{Read, Write};
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
/// Largest snapshot read at start-up (8 GiB; one of 10^7 versions is a few hundred MB): a
/// bigger one, or a file whose size is not the one its header gives, is ignored with a
/// warning before it is read, and the whole log is folded.
pub const MAX_BYTES: u64 = 8 << 30;
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
    let bytes = match read_bounded(&path, MAX_BYTES) {
        Ok(Ok(b)) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("no snapshot at {}; folding the whole log", path.display());
            return None;
        }
        Err(e) => {
            tracing::warn!(reason = %e, "ignoring the snapshot {}: {e}; folding the whole log", path.display());
            return None;
        }
        Ok(Err(why)) => {
            tracing::warn!(reason = %why, "ignoring the snapshot {}: {why}; folding the whole log", path.display());
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

/// Reads a snapshot file of at most `cap` bytes: its header first, then only the body that
/// header announces, and only when the file has exactly that size. `Ok(Err(why))` for a file
/// refused before its body is read.
fn read_bounded(path: &Path, cap: u64) -> std::io::Result<Result<Vec<u8>, String>> {
    use crate::projection::{read_header, SNAPSHOT_HEADER_LEN};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut bytes = vec![0; SNAPSHOT_HEADER_LEN.min(usize::try_from(size).unwrap_or(usize::MAX))];
    file.read_exact(&mut bytes)?;
    let header = match read_header(&bytes) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let announced = header.body_len.saturating_add(SNAPSHOT_HEADER_LEN as u64);
    if announced > cap {
        return Ok(Err(format!(
            "its header announces {announced} bytes, more than the {cap} bytes a snapshot may have"
        )));
    }
    if size != announced {
        return Ok(Err(format!(
            "the file has {size} bytes but its header announces {announced} (torn write?)"
        )));
    }
    // Bounded even if the file grows meanwhile.
    (&mut file).take(header.body_len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != announced {
        return Ok(Err(format!(
            "the file changed while it was read ({} bytes of {announced})",
            bytes.len()
        )));
    }
    Ok(Ok(bytes))
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

/// Writes the ledger's projection to `DIR/snapshot`: serialized under the projection's read
/// lock, then checksummed and written without it, to a temporary file that is fsynced and
/// renamed over the old snapshot (the directory fsynced after), so a crash leaves the old
/// snapshot or the new one, never a torn one under the name. The store is flushed in between
/// ([`crate::store::LogStore::flush_all`]), so that the snapshot never covers more than the
/// store keeps for the next start (a JetStream node's local copy of the stream).
pub async fn save(ledger: &Ledger, dir: &Path) -> Result<Saved> {
    let started = Instant::now();
    let l = ledger.clone();
    let (unsealed, revision, pause) = tokio::task::spawn_blocking(move || {
        let p = l.read();
        (p.snapshot_unsealed(), p.head().revision, started.elapsed())
    })
    .await
    .context("writing the snapshot")?;
    ledger
        .log()
        .flush_all()
        .await
        .context("flushing the store before writing the snapshot")?;
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let bytes = unsealed.seal();
        write_file(&dir, &bytes)?;
        Ok(Saved {
            revision,
            bytes: bytes.len() as u64,
            pause,
            total: started.elapsed(),
        })
    })
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
                let head = l.read_on_runtime(|p| p.head().revision);
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
        if self.ledger.read_on_runtime(|p| p.head().revision) > covered {
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

#[cfg(test)]
mod bound_tests {
    use super::*;

    /// A valid header announcing `body_len` body bytes, and nothing else.
    fn header(body_len: u64) -> Vec<u8> {
        let p = Projection::default();
        let mut bytes = p.to_snapshot();
        bytes.truncate(crate::projection::SNAPSHOT_HEADER_LEN);
        bytes[52..60].copy_from_slice(&body_len.to_le_bytes());
        assert!(crate::projection::read_header(&bytes).is_ok());
        bytes
    }

    /// A (sparse) file of 1 GiB whose header announces all of it is refused above the cap
    /// before its body is read; one whose size is not what its header says likewise; a real
    /// snapshot is read whole.
    #[test]
    fn oversized_or_mis_sized_snapshots_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let big: u64 = 1 << 30;
        let write = |head: Vec<u8>, len: u64| {
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(&head).unwrap();
            f.set_len(len).unwrap();
        };
        write(header(big - crate::projection::SNAPSHOT_HEADER_LEN as u64), big);
        let refused = |cap: u64| match read_bounded(&path, cap).unwrap() {
            Ok(bytes) => panic!("read {} bytes instead of refusing the file", bytes.len()),
            Err(why) => why,
        };
        let why = refused(1 << 20);
        assert!(why.contains("more than the 1048576 bytes"), "{why}");

        write(header(10), big);
        let why = refused(MAX_BYTES);
        assert!(why.contains("the file has 1073741824 bytes"), "{why}");

        let real = Projection::default().to_snapshot();
        std::fs::write(&path, &real).unwrap();
        assert_eq!(read_bounded(&path, MAX_BYTES).unwrap().unwrap(), real);
        assert!(load(dir.path()).is_some());
    }
}
