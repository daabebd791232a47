//! Scheduled releases on the ledger: committing to one, replacing or withdrawing it, and the
//! task that reveals each at its time (see `domain::schedule` for the commitment).
//!
//! The release's content is sealed in the store beside the log (never in it) before its
//! commitment is appended, so that an acknowledged schedule can always be revealed. The
//! reveal is a command like any other: the writer decides it against the projection, so a
//! second reveal of the same release (a retry, a restart, another node of a shared log) is a
//! duplicate, and a reveal before the time is refused. Every node runs the task; on a shared
//! log the first append wins and the others find it recorded.

use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::command::Command;
use super::{Committed, Inner, Ledger, LedgerError, WriteGate};
use crate::domain::{ReleaseDraft, Schedule, Sealed, Withdrawal};
use crate::projection::ScheduleState;

/// The longest the reveal task sleeps before looking at the schedules again (a release
/// scheduled meanwhile for an earlier time is found within it).
pub const REVEAL_POLL: Duration = Duration::from_millis(250);

/// What `scheduleRelease` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub committed: Committed,
    pub commitment: String,
}

impl Ledger {
    /// Commits to `draft`, to be revealed at its `publishedAt`, which must be in the future.
    /// With `replace`, it replaces the pending schedule of the same release id. The same
    /// release scheduled again (a retry) is a duplicate.
    pub async fn schedule_gated(
        &self,
        draft: ReleaseDraft,
        replace: bool,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<Scheduled, LedgerError> {
        self.writable()?;
        if draft.backfill {
            return Err(LedgerError::bad_input(
                "backfill",
                "a scheduled release is published at its time, after every earlier one: it cannot be a back-fill",
            ));
        }
        let release = self.validate(draft)?;
        let id = release.id;
        let existing = self
            .read()
            .schedule(&id)
            .filter(|s| s.state == ScheduleState::Pending)
            .cloned();
        if let Some(existing) = &existing {
            // A retry of the same schedule answers with the original.
            if let Some(sealed) = self.sealed_of(&existing.schedule.commitment).await? {
                if sealed.release.same_content(&release) {
                    let hash = self.hash_at(existing.revision)?;
                    return Ok(Scheduled {
                        committed: Committed {
                            revision: existing.revision,
                            hash,
                            duplicate: true,
                            release: Some(id),
                        },
                        commitment: existing.schedule.commitment.clone(),
                    });
                }
            }
        }
        let replaces = match (replace, existing) {
            (true, Some(e)) => Some(e.schedule.commitment),
            (true, None) => {
                return Err(LedgerError::NotFound(format!(
                    "release {id} is not scheduled; there is nothing to replace"
                )))
            }
            (false, _) => None,
        };
        let sealed = Sealed::new(release);
        let commitment = sealed.commitment();
        let bytes = serde_json::to_vec(&sealed).expect("sealed releases serialize");
        self.inner.store.seal(&commitment, bytes).await?;
        let r = &sealed.release;
        let schedule = Schedule {
            id,
            dataset: r.dataset.clone(),
            title: r.title.clone(),
            status: r.status,
            published_at: r.published_at,
            commitment: commitment.clone(),
            replaces,
        };
        let result = self.submit(Command::ScheduleRelease(schedule), None, actor, gate).await;
        match result {
            Ok(committed) => Ok(Scheduled { committed, commitment }),
            Err(e) => {
                // Refused: nothing refers to the sealed content. (A write whose outcome is
                // unknown keeps it, in case it was recorded.)
                if !matches!(e, LedgerError::Storage { .. }) {
                    let _ = self.inner.store.unseal(&commitment).await;
                }
                Err(e)
            }
        }
    }

    /// Withdraws a pending scheduled release; its figures are never revealed.
    pub async fn withdraw_scheduled(
        &self,
        id: Uuid,
        reason: Option<String>,
        actor: &str,
        gate: Option<&WriteGate>,
    ) -> Result<Committed, LedgerError> {
        self.writable()?;
        if let Some(r) = &reason {
            if r.chars().count() > 1000 {
                return Err(LedgerError::bad_input("reason", "is longer than 1,000 characters"));
            }
        }
        let (dataset, commitment) = self
            .read()
            .schedule(&id)
            .map(|s| (s.schedule.dataset.clone(), s.schedule.commitment.clone()))
            .ok_or_else(|| LedgerError::NotFound(format!("release {id} is not scheduled")))?;
        let withdrawal = Withdrawal {
            id,
            dataset,
            commitment: commitment.clone(),
            reason,
        };
        let committed = self
            .submit(Command::WithdrawSchedule(withdrawal), None, actor, gate)
            .await?;
        let _ = self.inner.store.unseal(&commitment).await;
        Ok(committed)
    }

    /// Reveals every pending release whose time has come. Returns the time of the next
    /// pending one, if any.
    pub async fn reveal_due(&self) -> Option<DateTime<Utc>> {
        self.reveal_due_with(&mut HashSet::new()).await
    }

    async fn reveal_due_with(&self, warned: &mut HashSet<String>) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let (due, next): (Vec<Schedule>, Option<DateTime<Utc>>) = {
            // Never wait for the lock on a runtime thread (a write waiting for readers would
            // hold this thread too): when it is taken, look again at the next poll.
            let Some(p) = self.try_read() else {
                return Some(now);
            };
            let pending = p.schedules().iter().filter(|s| s.state == ScheduleState::Pending);
            let due = pending
                .clone()
                .filter(|s| s.schedule.published_at <= now)
                .map(|s| s.schedule.clone())
                .collect();
            let next = pending.map(|s| s.schedule.published_at).filter(|&t| t > now).min();
            (due, next)
        };
        for s in due {
            let sealed = match self.sealed_of(&s.commitment).await {
                Ok(Some(sealed)) if sealed.commitment() == s.commitment => sealed,
                other => {
                    if warned.insert(s.commitment.clone()) {
                        let why = match other {
                            Err(e) => e.to_string(),
                            Ok(Some(_)) => "the sealed content does not match the commitment".to_owned(),
                            Ok(None) => "its sealed content is not in this store".to_owned(),
                        };
                        tracing::error!(release = %s.id, commitment = %s.commitment, %why,
                            "a scheduled release is due and cannot be revealed here");
                    }
                    continue;
                }
            };
            let command = Command::RevealRelease {
                release: sealed.release,
                salt: sealed.salt,
                commitment: s.commitment.clone(),
            };
            match self.submit(command, None, "scheduler", None).await {
                Ok(c) => {
                    if !c.duplicate {
                        tracing::info!(release = %s.id, revision = c.revision, "revealed a scheduled release");
                    }
                    let _ = self.inner.store.unseal(&s.commitment).await;
                }
                Err(e) => {
                    if warned.insert(s.commitment.clone()) {
                        tracing::warn!(release = %s.id, error = %e, "a scheduled release was not revealed yet");
                    }
                }
            }
        }
        next
    }

    async fn sealed_of(&self, commitment: &str) -> Result<Option<Sealed>, LedgerError> {
        let Some(bytes) = self.inner.store.sealed(commitment).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LedgerError::storage(format!("sealed release {commitment} does not decode: {e}")))
    }

    fn hash_at(&self, revision: u64) -> Result<crate::store::Hash, LedgerError> {
        match self.inner.store.get(revision)? {
            Some(bytes) if bytes.len() >= 32 => Ok(crate::store::Hash(bytes[..32].try_into().expect("32 bytes"))),
            _ => Err(LedgerError::storage(format!(
                "revision {revision} is missing from the log"
            ))),
        }
    }
}

/// The reveal task: reveals each scheduled release at its time, for as long as the ledger
/// lives.
pub(super) async fn reveal_task(inner: Weak<Inner>) {
    let mut warned = HashSet::new();
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let ledger = Ledger { inner };
        let next = if ledger.writable().is_ok() {
            ledger.reveal_due_with(&mut warned).await
        } else {
            None
        };
        drop(ledger);
        let wait = next
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .unwrap_or(REVEAL_POLL)
            .min(REVEAL_POLL);
        tokio::time::sleep(wait).await;
    }
}
