//! Scheduled releases: a release committed to before its publication time and revealed at it.
//!
//! When a writer schedules a release, the log records only a commitment: the dataset, title,
//! status and publication time, and `SHA-256(salt || release)`, where `release` is the
//! release's JSON exactly as the reveal event will carry it (`data.release` in its canonical
//! text) and `salt` 32 random bytes. The figures themselves wait beside the log, sealed, and
//! are in no event, no answer and no page. At the publication time the ledger appends the
//! reveal: the release and the salt. Anyone holding the log can then check that the revealed
//! release is the one committed to, in an event that a checkpoint covered before the
//! publication time: the figures did not change during the embargo.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::release::{Release, ReleaseStatus};

/// Bytes of the random salt a commitment hides the release with.
pub const SALT_BYTES: usize = 32;

/// How far ahead a release may be scheduled: ten years.
pub const MAX_SCHEDULE_AHEAD: chrono::Duration = chrono::Duration::days(3653);

/// The public half of a scheduled release, as recorded in a `ReleaseScheduled` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// The id the release will have once revealed.
    pub id: Uuid,
    pub dataset: String,
    pub title: String,
    pub status: ReleaseStatus,
    /// When the release becomes public, and is revealed.
    pub published_at: DateTime<Utc>,
    /// `SHA-256(salt || release JSON)`, lowercase hex.
    pub commitment: String,
    /// The commitment this one replaces, when a writer replaced a scheduled release before
    /// its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// What a writer asks to withdraw: a scheduled release that is not revealed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Withdrawal {
    pub id: Uuid,
    pub dataset: String,
    /// The commitment withdrawn.
    pub commitment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The release's JSON as committed to and as the reveal event carries it.
pub fn release_bytes(release: &Release) -> Vec<u8> {
    serde_json::to_vec(release).expect("releases always serialize")
}

/// `SHA-256(salt || release JSON)` in lowercase hex.
pub fn commitment(salt: &[u8], release: &Release) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(release_bytes(release));
    hex::encode(h.finalize())
}

/// The sealed half of a scheduled release, kept beside the log until its reveal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The salt, lowercase hex.
    pub salt: String,
    pub release: Release,
}

impl Sealed {
    /// A new sealed release with a fresh random salt.
    pub fn new(release: Release) -> Self {
        let salt: [u8; SALT_BYTES] = rand::random();
        Sealed {
            salt: hex::encode(salt),
            release,
        }
    }

    /// Its commitment.
    pub fn commitment(&self) -> String {
        let salt = hex::decode(&self.salt).unwrap_or_default();
        commitment(&salt, &self.release)
    }
}

/// Checks a reveal against its commitment; the reason when it does not match.
pub fn check_reveal(schedule: &Schedule, salt_hex: &str, release: &Release) -> Result<(), String> {
    let salt = hex::decode(salt_hex).map_err(|_| "the salt is not hex".to_owned())?;
    if salt.len() != SALT_BYTES {
        return Err(format!("the salt is {} bytes, not {SALT_BYTES}", salt.len()));
    }
    if release.id != schedule.id || release.dataset != schedule.dataset {
        return Err("the revealed release is not the one scheduled".to_owned());
    }
    if release.published_at != schedule.published_at || release.title != schedule.title {
        return Err("the revealed release's time or title differs from the schedule".to_owned());
    }
    if release.status != schedule.status {
        return Err("the revealed release's status differs from the schedule".to_owned());
    }
    let computed = commitment(&salt, release);
    if computed != schedule.commitment {
        return Err(format!(
            "SHA-256(salt || release) is {computed}, the commitment {}",
            schedule.commitment
        ));
    }
    Ok(())
}
