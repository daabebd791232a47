//! The ledger's events, filtered and paged.

use super::*;

/// Kind of an event.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum EventKind {
    DatasetDefined,
    ReleasePublished,
    DatasetAmended,
    /// A release committed to before its time (its commitment only).
    ReleaseScheduled,
    /// A scheduled release made public: the release and the salt that opens its commitment.
    ReleaseRevealed,
    ScheduledReleaseWithdrawn,
}

/// An event of the audit log, with its place in the hash chain.
#[derive(SimpleObject, Clone)]
#[graphql(complex, name = "Event")]
pub struct LedgerEvent {
    pub revision: u64,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub recorded_at: DateTime<Utc>,
    /// Name of the write token that recorded the event.
    pub actor: String,
    /// Hash of the previous event (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of `canonical`.
    pub hash: String,
    /// The exact bytes (UTF-8 JSON) the hash covers, so anyone can recompute it.
    pub canonical: String,
    pub dataset: ID,
    #[graphql(skip)]
    pub(super) release: Option<Uuid>,
}

impl LedgerEvent {
    /// An event of which only the revision is asked for: nothing else is read, nor shown.
    pub(super) fn revision_only(revision: u64) -> Self {
        LedgerEvent {
            revision,
            event_id: Uuid::nil(),
            kind: EventKind::ReleasePublished,
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            actor: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
            canonical: String::new(),
            dataset: ID(String::new()),
            release: None,
        }
    }
}

#[async_graphql::ComplexObject]
impl LedgerEvent {
    /// The release this event recorded, for `RELEASE_PUBLISHED`.
    async fn release(&self, ctx: &Context<'_>) -> Option<Release> {
        let id = self.release?;
        let ledger = ledger_of(ctx);
        let p = ledger.read();
        p.release(&id).map(|(pos, info)| Release::from_info(pos, info))
    }
}

/// Result of checking the hash chain (and, for the full verification, re-folding the log).
#[derive(SimpleObject)]
pub struct LedgerVerification {
    pub ok: bool,
    /// Events the verified chain covers, from revision 1: every one has passed every check.
    pub checked: u64,
    /// First revision that failed a check, if any.
    pub first_bad_revision: Option<u64>,
    /// What was wrong with it.
    pub reason: Option<String>,
    /// Root of the transparency log's Merkle tree recomputed from the `checked` events'
    /// canonical bytes; equal to `checkpoint(treeSize: checked).rootHash` when `ok`.
    pub root_hash: String,
}

/// A page of the audit log.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct EventConnection {
    /// Information to aid in pagination. With a filter, `endCursor` is the last revision
    /// examined, which may lie beyond the last edge: continue with `after: endCursor`.
    pub page_info: PageInfo,
    /// A list of edges.
    pub edges: Vec<EventEdge>,
    /// Number of events in the log, whatever the filters (counting the matching ones would
    /// read the whole log).
    pub total_count: u64,
    /// The last revision this page examined (equal to `after` when it examined none).
    pub examined_through: u64,
}

#[async_graphql::ComplexObject]
impl EventConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<Tick<LedgerEvent>> {
        self.edges.iter().map(|e| e.node.clone()).collect()
    }
}

/// An edge in a connection.
#[derive(SimpleObject)]
pub struct EventEdge {
    /// The item at the end of the edge
    pub node: Tick<LedgerEvent>,
    /// A cursor for use in pagination
    pub cursor: String,
}

/// Additional connection fields.
#[derive(SimpleObject)]
pub struct Counted {
    /// Number of items matching, over all pages.
    pub total_count: u64,
}

/// The filters of `events`.
pub(super) struct EventFilter {
    pub(super) dataset: Option<String>,
    pub(super) kind: Option<EventKind>,
    pub(super) actor: Option<String>,
    pub(super) recorded_from: Option<DateTime<Utc>>,
    pub(super) recorded_to: Option<DateTime<Utc>>,
}

impl EventFilter {
    pub(super) fn is_empty(&self) -> bool {
        self.dataset.is_none()
            && self.kind.is_none()
            && self.actor.is_none()
            && self.recorded_from.is_none()
            && self.recorded_to.is_none()
    }

    pub(super) fn matches(&self, kind: EventKind, dataset: &str, actor: &str, recorded_at: DateTime<Utc>) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.dataset.as_deref().is_none_or(|d| d == dataset)
            && self.actor.as_deref().is_none_or(|a| a == actor)
            && self.recorded_from.is_none_or(|f| recorded_at >= f)
            && self.recorded_to.is_none_or(|t| recorded_at < t)
    }
}

/// Up to `limit` events after `after` matching `filter`, examining at most `max_examined`
/// events, and the last revision examined. Releases are matched in memory (the projection
/// keeps their dataset, actor and recording time); only the candidates, and the rare other
/// events (dataset definitions and amendments), are read from the log.
pub(super) fn filtered_events(
    ledger: &crate::ledger::Ledger,
    filter: &EventFilter,
    after: u64,
    limit: usize,
    max_examined: usize,
) -> Result<(Vec<crate::ledger::AuditEvent>, u64)> {
    let mut candidates = Vec::new();
    let mut examined = after;
    {
        let p = ledger.read();
        let head = p.head().revision;
        let releases = &p.releases()[p.releases_after(after)..];
        let mut next_release = releases.iter().peekable();
        let maybe_other = filter.kind.is_none_or(|k| k != EventKind::ReleasePublished);
        while examined < head && examined - after < max_examined as u64 && candidates.len() <= limit {
            let r = examined + 1;
            let candidate = match next_release.next_if(|rel| rel.revision == r) {
                Some(rel) => filter.matches(EventKind::ReleasePublished, &rel.dataset, &rel.actor, rel.recorded_at),
                None => maybe_other,
            };
            if candidate {
                candidates.push(r);
            }
            examined = r;
        }
    }
    let mut out = Vec::new();
    for r in candidates {
        let Some(a) = ledger.audit_events(r - 1, 1).map_err(error::ledger)?.pop() else {
            break;
        };
        let env = &a.event.envelope;
        let (kind, dataset) = event_kind(&env.event);
        if filter.matches(kind, dataset, &env.actor, env.recorded_at) {
            if out.len() == limit {
                // A further match: this page ends at the last one it holds.
                examined = out
                    .last()
                    .map_or(after, |e: &crate::ledger::AuditEvent| e.event.revision());
                break;
            }
            out.push(a);
        }
    }
    Ok((out, examined))
}

/// The fields selected on the events of an `events` page, under `nodes` and `edges.node`
/// (fragments included).
pub(super) fn event_fields(ctx: &Context<'_>) -> std::collections::HashSet<String> {
    let mut fields = std::collections::HashSet::new();
    for child in ctx.field().selection_set() {
        let nodes: Vec<_> = match child.name() {
            "nodes" => vec![child],
            "edges" => child.selection_set().filter(|c| c.name() == "node").collect(),
            _ => continue,
        };
        for node in nodes {
            fields.extend(node.selection_set().map(|f| f.name().to_owned()));
        }
    }
    fields
}

pub(super) fn event_kind(event: &Event) -> (EventKind, &str) {
    let kind = match event {
        Event::DatasetDefined { .. } => EventKind::DatasetDefined,
        Event::DatasetAmended { .. } => EventKind::DatasetAmended,
        Event::ReleasePublished { .. } => EventKind::ReleasePublished,
        Event::ReleaseScheduled { .. } => EventKind::ReleaseScheduled,
        Event::ReleaseRevealed { .. } => EventKind::ReleaseRevealed,
        Event::ScheduledReleaseWithdrawn { .. } => EventKind::ScheduledReleaseWithdrawn,
    };
    (kind, event.dataset())
}

pub(super) fn ledger_event(a: crate::ledger::AuditEvent) -> LedgerEvent {
    let env = &a.event.envelope;
    let (kind, dataset) = event_kind(&env.event);
    let release = env.event.release_id();
    LedgerEvent {
        revision: env.revision,
        event_id: env.event_id,
        kind,
        recorded_at: env.recorded_at,
        actor: env.actor.clone(),
        prev_hash: env.prev_hash.clone(),
        hash: a.event.hash.to_hex(),
        dataset: ID(dataset.to_owned()),
        release,
        canonical: a.canonical,
    }
}

/// The ledger's events.
#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// The audit log: events in revision order with their hashes, optionally filtered.
    ///
    /// With a filter, one page examines at most `--max-events-scanned` events: a filter that
    /// matches rarely returns a short (even empty) page with `hasNextPage` true, and
    /// `pageInfo.endCursor` (also `examinedThrough`) says where to continue.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Start after this revision (default 0: from the first event).")] after: Option<i64>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "Only events of this dataset.")] dataset: Option<ID>,
        #[graphql(desc = "Only events of this kind.")] kind: Option<EventKind>,
        #[graphql(desc = "Only events recorded with the write token of this name.")] actor: Option<String>,
        #[graphql(desc = "Only events recorded at or after this time (RFC 3339).")] recorded_from: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Only events recorded before this time (RFC 3339).")] recorded_to: Option<DateTime<Utc>>,
    ) -> Result<EventConnection> {
        checkpoint().await;
        let limit = page_size(ctx, first)?;
        let after = match after {
            Some(a) if a < 0 => return Err(bad_argument("after", format!("after must not be negative (got {a})"))),
            a => a.unwrap_or(0) as u64,
        };
        if let (Some(f), Some(t)) = (recorded_from, recorded_to) {
            if f > t {
                return Err(bad_input(format!(
                    "recordedFrom ({}) is after recordedTo ({})",
                    f.to_rfc3339(),
                    t.to_rfc3339()
                )));
            }
        }
        let filter = EventFilter {
            dataset: dataset.map(|d| d.0),
            kind,
            actor,
            recorded_from,
            recorded_to,
        };
        let ledger = ledger_of(ctx);
        let head = ledger.read().head().revision;
        let fields = event_fields(ctx);
        if filter.is_empty() && fields.iter().all(|f| f == "revision" || f == "__typename") {
            // Nothing to read from the log for the revisions alone.
            let last = head.min(after.saturating_add(limit as u64));
            let edges: Vec<EventEdge> = (after + 1..=last)
                .map(|revision| EventEdge {
                    cursor: revision.to_string(),
                    node: Tick(LedgerEvent::revision_only(revision)),
                })
                .collect();
            let examined = last.max(after);
            return Ok(EventConnection {
                page_info: PageInfo {
                    has_previous_page: after > 0,
                    has_next_page: examined < head,
                    start_cursor: edges.first().map(|e| e.cursor.clone()),
                    end_cursor: (examined > after).then(|| examined.to_string()),
                },
                edges,
                total_count: head,
                examined_through: examined,
            });
        }
        let (events, examined) = if filter.is_empty() {
            let events = ledger.audit_events(after, limit).map_err(error::ledger)?;
            let last = events.last().map_or(after, |e| e.event.revision());
            (events, last)
        } else {
            if let Some(d) = &filter.dataset {
                dataset_view(&ledger.read(), d)?;
            }
            filtered_events(ledger, &filter, after, limit, limits_of(ctx).max_events_scanned)?
        };
        if fields.contains("canonical") {
            crate::graphql::limits::charge_texts(ctx, events.iter().map(|a| a.canonical.as_str()))?;
        }
        let edges: Vec<EventEdge> = events
            .into_iter()
            .map(|a| {
                let node = ledger_event(a);
                EventEdge {
                    cursor: node.revision.to_string(),
                    node: Tick(node),
                }
            })
            .collect();
        Ok(EventConnection {
            page_info: PageInfo {
                has_previous_page: after > 0,
                has_next_page: examined < head,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: (examined > after).then(|| examined.to_string()),
            },
            edges,
            total_count: head,
            examined_through: examined,
        })
    }
}
