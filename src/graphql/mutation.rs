//! The mutation root: every write needs a write token.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::{self, bad_input, coded, ErrorCode};
use super::scalars::Dec;
use super::types::{Dataset, Frequency, Release, ReleaseStatus, RevisionReasonKind};
use super::{caller_of, ledger_of};
use crate::domain::{self, Period};
use crate::ledger::WriteGate;

#[derive(Default)]
pub struct MutationRoot;

/// One entry of a code list.
#[derive(InputObject)]
pub struct CodeInput {
    pub code: String,
    pub label: String,
    /// The code this one is part of; omit only for the total `_T`.
    pub parent: Option<String>,
}

#[derive(InputObject)]
pub struct DimensionInput {
    pub id: String,
    pub label: String,
    /// Must include the total `_T`.
    pub codes: Vec<CodeInput>,
}

/// A dataset definition. Definitions cannot change once recorded.
#[derive(InputObject)]
pub struct DatasetInput {
    pub id: ID,
    pub name: String,
    pub publisher: String,
    pub description: Option<String>,
    pub unit: String,
    /// Power of ten the figures are expressed in: 6 means millions.
    pub unit_multiplier: i32,
    /// In series-key order.
    pub dimensions: Vec<DimensionInput>,
    /// Among `BAL`, `CRE`, `DEB`.
    #[graphql(default_with = "vec![String::from(\"BAL\")]")]
    pub measures: Vec<String>,
    /// How often the figures are observed; every period published must be of it. Without
    /// it, the dataset takes the frequency of its first release.
    pub frequency: Option<Frequency>,
}

/// One figure of a release.
#[derive(InputObject)]
pub struct ObservationInput {
    /// Series key in dot notation, e.g. `IPR._T._T`.
    pub key: String,
    pub period: Period,
    #[graphql(default_with = "String::from(\"BAL\")")]
    pub measure: String,
    /// Exact decimal, as a string.
    pub value: Dec,
}

/// A release to record.
#[derive(InputObject)]
pub struct ReleaseInput {
    /// Optional; set it to make re-sending the same release idempotent. Without it the server
    /// picks one before anything else, and an `OUTCOME_UNKNOWN` error gives it in
    /// `extensions.releaseId` to retry with.
    pub id: Option<Uuid>,
    pub dataset: ID,
    pub status: ReleaseStatus,
    pub title: String,
    /// Official publication time.
    pub published_at: DateTime<Utc>,
    /// Where the figures come from (text or URL).
    pub source: Option<String>,
    pub observations: Vec<ObservationInput>,
    /// Allows a `publishedAt` earlier than the dataset's latest publication: an older
    /// vintage (an agency's archive) recorded now. Its figures take their place in
    /// publication order, and it is marked `backfilled`. Without it such a release is
    /// refused, since it would change what was public at earlier times.
    #[graphql(default)]
    pub backfill: bool,
    /// Why the release revises figures published before; shown with each version it sets
    /// and counted in the revision statistics by reason.
    pub revision_reason: Option<RevisionReasonInput>,
}

/// Why a release revises figures.
#[derive(InputObject)]
pub struct RevisionReasonInput {
    pub kind: RevisionReasonKind,
    /// Free text: what changed and why (at most 1,000 characters).
    pub note: Option<String>,
}

impl From<RevisionReasonInput> for domain::RevisionReason {
    fn from(r: RevisionReasonInput) -> Self {
        domain::RevisionReason {
            kind: r.kind.into(),
            note: r.note,
        }
    }
}

/// What `publishRelease` recorded.
#[derive(SimpleObject)]
pub struct PublishResult {
    pub release: Release,
    /// Revision of the event that recorded the release.
    pub revision: u64,
    /// SHA-256 (hex) of that event.
    pub hash: String,
    /// True when this exact release had been recorded before: nothing new was written and
    /// `revision` is the original one.
    pub duplicate: bool,
}

/// What `scheduleRelease` recorded.
#[derive(SimpleObject)]
pub struct ScheduleResult {
    pub entry: super::calendar::CalendarEntry,
    /// Revision of the event that recorded the commitment.
    pub revision: u64,
    /// SHA-256 (hex) of that event.
    pub hash: String,
    /// `SHA-256(salt || release JSON)` in hex: what the reveal will open.
    pub commitment: String,
    /// True when this exact release had been scheduled before: nothing new was written.
    pub duplicate: bool,
}

/// What `withdrawScheduledRelease` recorded.
#[derive(SimpleObject)]
pub struct WithdrawResult {
    pub entry: super::calendar::CalendarEntry,
    pub revision: u64,
    pub hash: String,
    pub duplicate: bool,
}

impl ReleaseInput {
    fn into_draft(self) -> domain::ReleaseDraft {
        let input = self;
        domain::ReleaseDraft {
            // Chosen up front, so that a write whose outcome is not known can be named by the
            // id to retry it with.
            id: Some(input.id.unwrap_or_else(Uuid::new_v4)),
            dataset: input.dataset.0,
            status: input.status.into(),
            title: input.title,
            published_at: input.published_at,
            source: input.source,
            observations: input
                .observations
                .into_iter()
                .map(|o| domain::ObservationDraft {
                    key: o.key,
                    period: o.period.into(),
                    measure: Some(o.measure),
                    value: o.value.0.into(),
                })
                .collect(),
            backfill: input.backfill,
            revision_reason: input.revision_reason.map(Into::into),
        }
    }
}

/// The calendar entry of release `id`, just written.
fn entry_of(ledger: &crate::ledger::Ledger, dataset: &str, id: Uuid) -> Result<super::calendar::CalendarEntry> {
    let p = ledger.read();
    super::calendar::calendar(&p, dataset, None, None, usize::MAX)
        .into_iter()
        .find(|e| e.release_id == id)
        .ok_or_else(|| {
            coded(
                ErrorCode::InternalServerError,
                "the schedule vanished after it was recorded",
            )
        })
}

/// The actor name of the caller's write token, or the right error.
fn writer(ctx: &Context<'_>) -> Result<String> {
    let caller = caller_of(ctx);
    match (&caller.actor, caller.can_write) {
        (Some(actor), true) => Ok(actor.clone()),
        (Some(_), false) => Err(coded(ErrorCode::Forbidden, "this token may read but not write")),
        (None, _) => Err(coded(
            ErrorCode::Unauthenticated,
            "writes need an `Authorization: Bearer <token>` header with a write token",
        )),
    }
}

/// The gate through which this request hands writes to the ledger's writer, when it has a
/// deadline (HTTP and WebSocket set one; see [`crate::ledger::WriteGate`]).
fn gate<'a>(ctx: &'a Context<'_>) -> Option<&'a WriteGate> {
    ctx.data_opt::<std::sync::Arc<WriteGate>>().map(|g| g.as_ref())
}

impl DatasetInput {
    fn into_domain(self) -> domain::Dataset {
        let input = self;
        domain::Dataset {
            id: input.id.0,
            name: input.name,
            publisher: input.publisher,
            unit: input.unit,
            unit_multiplier: input.unit_multiplier,
            description: input.description,
            dimensions: input
                .dimensions
                .into_iter()
                .map(|d| domain::Dimension {
                    id: d.id,
                    label: d.label,
                    codes: d
                        .codes
                        .into_iter()
                        .map(|c| domain::Code {
                            code: c.code,
                            label: c.label,
                            parent: c.parent,
                        })
                        .collect(),
                })
                .collect(),
            measures: input.measures,
            frequency: input.frequency.map(Into::into),
        }
    }
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Starts `verifyLedgerFull`'s checks in the background and returns at once; read the
    /// progress and the result with `ledgerVerification`. One runs at a time: while one runs,
    /// this returns it. Needs a write token.
    async fn start_ledger_verification(&self, ctx: &Context<'_>) -> Result<super::verify_job::VerificationJob> {
        if !caller_of(ctx).can_write {
            return Err(coded(
                ErrorCode::Forbidden,
                "startLedgerVerification needs a write token",
            ));
        }
        Ok(super::verify_job::VerificationJob(ledger_of(ctx).start_verification()))
    }

    /// Defines a dataset. Sending the identical definition again is harmless; a different
    /// definition under an existing id is a `CONFLICT`.
    async fn define_dataset(&self, ctx: &Context<'_>, input: DatasetInput) -> Result<Dataset> {
        let actor = writer(ctx)?;
        let dataset = input.into_domain();
        let id = dataset.id.clone();
        let ledger = ledger_of(ctx);
        ledger
            .define_dataset_gated(dataset, &actor, gate(ctx))
            .await
            .map_err(error::ledger)?;
        let p = ledger.read();
        p.dataset(&id)
            .map(Dataset::from_view)
            .ok_or_else(|| coded(ErrorCode::InternalServerError, "dataset vanished after it was recorded"))
    }

    /// Amends a recorded dataset with its whole new definition: the name, the description and
    /// labels may change, and codes may be appended at the end of a code list. A removed or
    /// moved code, or any other change, is `BAD_USER_INPUT` naming it; the current definition
    /// again is harmless.
    async fn amend_dataset(&self, ctx: &Context<'_>, input: DatasetInput) -> Result<Dataset> {
        let actor = writer(ctx)?;
        let dataset = input.into_domain();
        let id = dataset.id.clone();
        let ledger = ledger_of(ctx);
        ledger
            .amend_dataset_gated(dataset, &actor, gate(ctx))
            .await
            .map_err(error::ledger)?;
        let p = ledger.read();
        p.dataset(&id)
            .map(Dataset::from_view)
            .ok_or_else(|| coded(ErrorCode::InternalServerError, "dataset vanished after it was amended"))
    }

    /// Records a release. Returns once the release is durable and visible to reads.
    async fn publish_release(
        &self,
        ctx: &Context<'_>,
        input: ReleaseInput,
        #[graphql(desc = "Refuse with `CONFLICT` unless the ledger head is at this revision.")]
        expected_revision: Option<i64>,
    ) -> Result<PublishResult> {
        let actor = writer(ctx)?;
        let expected = match expected_revision {
            Some(r) if r < 0 => return Err(bad_input(format!("expectedRevision must not be negative (got {r})"))),
            r => r.map(|r| r as u64),
        };
        let draft = input.into_draft();
        let ledger = ledger_of(ctx);
        let published = ledger
            .publish_gated(draft, expected, &actor, gate(ctx))
            .await
            .map_err(error::ledger)?;
        let committed = published.committed;
        // The writer answers with the release as recorded: no second read of the projection.
        let (pos, info) = published
            .release
            .ok_or_else(|| coded(ErrorCode::InternalServerError, "release vanished after it was recorded"))?;
        Ok(PublishResult {
            release: Release::from_info(pos, &info),
            revision: committed.revision,
            hash: committed.hash.to_hex(),
            duplicate: committed.duplicate,
        })
    }

    /// Commits to a release to be published at its `publishedAt`, which must be in the
    /// future: the log records a commitment (`SHA-256(salt || release)`) and the public
    /// details (dataset, title, status, time); the figures stay sealed, readable by nobody,
    /// until the server reveals them at that time. With `replace: true`, replaces the pending
    /// schedule of the same release id (both are events). Sending the same release again is
    /// harmless.
    async fn schedule_release(
        &self,
        ctx: &Context<'_>,
        input: ReleaseInput,
        #[graphql(desc = "Replace the pending schedule of the same release id (default false).")] replace: Option<bool>,
    ) -> Result<ScheduleResult> {
        let replace = replace.unwrap_or(false);
        let actor = writer(ctx)?;
        let draft = input.into_draft();
        let (dataset, id) = (draft.dataset.clone(), draft.id.expect("set above"));
        let ledger = ledger_of(ctx);
        let scheduled = ledger
            .schedule_gated(draft, replace, &actor, gate(ctx))
            .await
            .map_err(error::ledger)?;
        Ok(ScheduleResult {
            entry: entry_of(ledger, &dataset, id)?,
            revision: scheduled.committed.revision,
            hash: scheduled.committed.hash.to_hex(),
            commitment: scheduled.commitment,
            duplicate: scheduled.committed.duplicate,
        })
    }

    /// Withdraws a scheduled release before its time; its figures are never revealed. The
    /// withdrawal is an event, and the calendar shows it.
    async fn withdraw_scheduled_release(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        #[graphql(desc = "Why (at most 1,000 characters).")] reason: Option<String>,
    ) -> Result<WithdrawResult> {
        let actor = writer(ctx)?;
        let ledger = ledger_of(ctx);
        let committed = ledger
            .withdraw_scheduled(id, reason, &actor, gate(ctx))
            .await
            .map_err(error::ledger)?;
        let dataset = ledger
            .read()
            .schedule(&id)
            .map(|s| s.schedule.dataset.clone())
            .unwrap_or_default();
        Ok(WithdrawResult {
            entry: entry_of(ledger, &dataset, id)?,
            revision: committed.revision,
            hash: committed.hash.to_hex(),
            duplicate: committed.duplicate,
        })
    }
}
