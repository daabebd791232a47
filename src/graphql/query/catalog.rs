//! The ledger, its datasets, releases and release calendar.

use super::*;

/// The ledger, its datasets, releases and calendar.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The newest event: revision and hash of the ledger's head.
    async fn ledger(&self, ctx: &Context<'_>) -> LedgerHead {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        LedgerHead {
            revision: p.head().revision,
            hash: p.head().hash.to_hex(),
            event_count: p.head().revision,
            release_count: p.releases().len() as u64,
            observation_version_count: p.version_count(),
            read_only_reason: ledger.is_read_only().map(str::to_owned),
        }
    }

    /// All datasets.
    async fn datasets(&self, ctx: &Context<'_>) -> Vec<Dataset> {
        ledger_of(ctx)
            .read()
            .datasets()
            .iter()
            .map(Dataset::from_view)
            .collect()
    }

    /// One dataset by id, or null.
    async fn dataset(&self, ctx: &Context<'_>, id: ID) -> Option<Dataset> {
        ledger_of(ctx).read().dataset(&id).map(Dataset::from_view)
    }

    /// The release calendar of a dataset, by publication time: releases scheduled (committed
    /// to and revealed at their time), and those published, revealed or withdrawn.
    async fn release_calendar(
        &self,
        ctx: &Context<'_>,
        dataset: ID,
        #[graphql(desc = "Only releases published (or due) at or after this time.")] from: Option<DateTime<Utc>>,
        #[graphql(desc = "Only releases published (or due) at or before this time.")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "At most this many entries, the earliest first (default 100).")] first: Option<i32>,
    ) -> Result<Vec<crate::graphql::calendar::CalendarEntry>> {
        let limit = page_size(ctx, first)?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        dataset_view(&p, &dataset)?;
        Ok(crate::graphql::calendar::calendar(&p, &dataset, from, to, limit))
    }

    /// Releases in the order they were recorded (oldest first).
    async fn releases(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only releases of this dataset.")] dataset: Option<ID>,
        #[graphql(desc = "Only releases with this status.")] status: Option<ReleaseStatus>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
    ) -> Result<Connection<String, Tick<Release>, Counted, EmptyFields>> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let after_rev = revision_cursor(after.as_deref())?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        if let Some(d) = &dataset {
            dataset_view(&p, d)?;
        }
        let status = status.map(crate::domain::ReleaseStatus::from);
        let matches = |r: &&crate::projection::ReleaseInfo| {
            dataset.as_ref().is_none_or(|d| r.dataset == d.as_str()) && status.is_none_or(|s| r.status == s)
        };
        let total = p.releases().iter().filter(matches).count() as u64;
        let start = p.releases_after(after_rev);
        let mut page = p.releases()[start..]
            .iter()
            .enumerate()
            .filter(|(_, r)| matches(r))
            .take(limit + 1);
        let mut conn = Connection::with_additional_fields(after.is_some(), false, Counted { total_count: total });
        for (i, r) in page.by_ref().take(limit) {
            conn.edges.push(Edge::new(
                r.revision.to_string(),
                Tick(Release::from_info((start + i) as u32, r)),
            ));
        }
        conn.has_next_page = page.next().is_some();
        Ok(conn)
    }

    /// One release by id, or null.
    async fn release(&self, ctx: &Context<'_>, id: Uuid) -> Option<Release> {
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        p.release(&id).map(|(pos, r)| Release::from_info(pos, r))
    }
}
