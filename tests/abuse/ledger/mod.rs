//! The ledger and its store: start-up over and over (issue 17), `verifyLedger` that costs
//! nothing at a head already verified (item 7), and health that tells the truth about
//! writes, which resume by themselves after a storage failure (item 10).

use crate::support::common;
mod health;
mod startup;
mod verify;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::proc_support::run_cli;

/// Writes a SYNTHETIC release file of `releases` x `per_release` observations into `dir`
/// and imports it into the data directory `data` (which must be new).
async fn generated_store(dir: &Path, data: &Path, releases: usize, per_release: usize) {
    let file: PathBuf = dir.join(format!("generated-{releases}x{per_release}.json"));
    let out = run_cli([
        OsStr::new("generate"),
        OsStr::new("--releases"),
        OsStr::new(&releases.to_string()),
        OsStr::new("--observations-per-release"),
        OsStr::new(&per_release.to_string()),
        file.as_os_str(),
    ])
    .await;
    assert_eq!(out.code(), Some(0), "generate failed: {out:?}");
    crate::proc_support::import(data, &[file]).await;
}
