//! Verification jobs and the transparency log's checkpoint and proofs.

use super::*;

/// How long `verifyLedgerFull` waits for its job: a tenth of the request timeout (at most a
/// second) short of it, so that the request answers, naming the job, before it is cut off.
pub(crate) fn full_verification_wait(request_timeout: std::time::Duration) -> std::time::Duration {
    request_timeout.saturating_sub((request_timeout / 10).min(std::time::Duration::from_secs(1)))
}

/// Verification and the transparency log.
#[derive(Default)]
pub struct VerificationQuery;

#[Object]
impl VerificationQuery {
    /// Checks the hash chain, continuing it from the head verified last: every event
    /// recorded since is hashed again from its stored bytes and linked to the one before
    /// (start-up verified the whole log), so a call at a head already verified costs
    /// nothing. `verifyLedgerFull` walks the whole log again.
    async fn verify_ledger(&self, ctx: &Context<'_>) -> Result<LedgerVerification> {
        let ledger = ledger_of(ctx);
        let v = ledger.verify_new().await.map_err(error::ledger)?;
        // The tree's leaves were checked against their events when they were stored and are
        // checked again in every proof; `verifyLedgerFull` recomputes them all.
        let root = ledger
            .log()
            .tree()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .root(v.checked)
            .map_err(|e| coded(ErrorCode::InternalServerError, e.to_string()))?;
        Ok(verification(v, None, root))
    }

    /// Walks the whole log from revision 1: checks every hash and link of the chain,
    /// re-folds the events and recomputes every leaf of the transparency log. Needs a write
    /// token. Cost grows with the log; meant for audits, not for polling. It runs as the
    /// background job `startLedgerVerification` starts (or joins the one running, which
    /// covers the log as it was when that one started) and answers when the job is done; a
    /// job that is not done shortly before the request timeout (`--request-timeout-ms`) goes
    /// on in the background, and the request gets `LIMIT_EXCEEDED` naming the job
    /// (`extensions.verificationJob`) to read with `ledgerVerification(id:)`.
    async fn verify_ledger_full(&self, ctx: &Context<'_>) -> Result<LedgerVerification> {
        if !crate::graphql::caller_of(ctx).can_write {
            return Err(coded(
                ErrorCode::Forbidden,
                "verifyLedgerFull needs a write token; verifyLedger checks what was recorded since the last verification",
            ));
        }
        let job = ledger_of(ctx).start_verification();
        let budget = full_verification_wait(limits_of(ctx).request_timeout);
        if !job.wait(budget).await {
            let id = job.id;
            return Err(coded(
                ErrorCode::LimitExceeded,
                format!(
                    "the full verification did not finish within {} ms (the request timeout is {} ms); it goes on in \
                     the background as job {id}, {} of at least {} events checked so far: read \
                     ledgerVerification(id: \"{id}\") for its progress and result",
                    budget.as_millis(),
                    limits_of(ctx).request_timeout.as_millis(),
                    job.checked(),
                    job.total
                ),
            )
            .extend_with(|_, e| e.set("verificationJob", id.to_string())));
        }
        match job.result() {
            Some(Ok(r)) => Ok(verification(r.verification.clone(), r.tree_damage.clone(), r.root)),
            Some(Err(e)) => Err(coded(ErrorCode::InternalServerError, e.clone())),
            None => Err(coded(
                ErrorCode::InternalServerError,
                "the verification ended without a result",
            )),
        }
    }

    /// A full verification started with `startLedgerVerification`: its progress and, once
    /// done, its result. Without `id`, the last one started. Needs a write token.
    async fn ledger_verification(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job's id (default: the last one started).")] id: Option<ID>,
    ) -> Result<Option<crate::graphql::verify_job::VerificationJob>> {
        if !crate::graphql::caller_of(ctx).can_write {
            return Err(coded(ErrorCode::Forbidden, "ledgerVerification needs a write token"));
        }
        let job = ledger_of(ctx).verification_job();
        Ok(job
            .filter(|j| id.as_ref().is_none_or(|id| id.as_str() == j.id.to_string()))
            .map(crate::graphql::verify_job::VerificationJob))
    }

    /// The note verifier key of the key checkpoints are signed with:
    /// `<origin>+<hex key hash>+<base64(0x01 || Ed25519 public key)>`.
    async fn verifier_key(&self, ctx: &Context<'_>) -> Result<String> {
        ledger_of(ctx).signer().map(|s| s.verifier_key()).ok_or_else(|| {
            coded(
                ErrorCode::InternalServerError,
                "this server has no checkpoint signing key",
            )
        })
    }

    /// The signed checkpoint (C2SP tlog-checkpoint) of the transparency log at a tree size.
    async fn checkpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Number of events the tree covers (default: the head revision).")] tree_size: Option<i64>,
    ) -> Result<Checkpoint> {
        let ledger = ledger_of(ctx);
        let size = crate::ledger::transparency::tree_size(ledger, "treeSize", tree_size).map_err(error::ledger)?;
        Ok(crate::ledger::transparency::checkpoint(ledger, size)
            .map_err(error::ledger)?
            .into())
    }

    /// Proof that the event at `revision` is in the tree of `treeSize` events.
    async fn inclusion_proof(
        &self,
        ctx: &Context<'_>,
        revision: i64,
        #[graphql(desc = "Tree size to prove against (default: the head revision).")] tree_size: Option<i64>,
    ) -> Result<InclusionProof> {
        let ledger = ledger_of(ctx);
        let size = crate::ledger::transparency::tree_size(ledger, "treeSize", tree_size).map_err(error::ledger)?;
        let revision =
            crate::ledger::transparency::tree_size(ledger, "revision", Some(revision)).map_err(error::ledger)?;
        let proof = crate::ledger::transparency::inclusion(ledger, revision, size).map_err(error::ledger)?;
        crate::graphql::limits::charge_texts(ctx, [proof.canonical.as_str(), proof.entry.as_str()])?;
        Ok(proof.into())
    }

    /// Proof that the tree of `fromSize` events is a prefix of the tree of `toSize`.
    async fn consistency_proof(
        &self,
        ctx: &Context<'_>,
        from_size: i64,
        #[graphql(desc = "The larger tree size (default: the head revision).")] to_size: Option<i64>,
    ) -> Result<ConsistencyProof> {
        let ledger = ledger_of(ctx);
        let to = crate::ledger::transparency::tree_size(ledger, "toSize", to_size).map_err(error::ledger)?;
        let from =
            crate::ledger::transparency::tree_size(ledger, "fromSize", Some(from_size)).map_err(error::ledger)?;
        Ok(crate::ledger::transparency::consistency(ledger, from, to)
            .map_err(error::ledger)?
            .into())
    }
}
