//! The largest sizes in the log, for the byte estimate, and the bytes of a response counted
//! while it is built.

use super::*;

/// The largest sizes in the log, for the byte estimate, JSON-escaped.
///
/// - The largest event's canonical text: kept up to date by a scan of the events not yet
///   seen, started (on a thread of its own, which ends when it reaches the head) by the
///   first check after they were recorded. A check never waits for it, and assumes sizes
///   from the largest release's figures for events it has not reached yet.
/// - The longest release text (title, source) and dataset text (name, publisher,
///   description): from the projection, where they are in memory, the releases not yet
///   seen at each check (datasets are few, and read every time).
#[derive(Debug, Default)]
pub struct LogSizes {
    pub(super) through: AtomicU64,
    pub(super) event: AtomicU64,
    pub(super) scanning: AtomicBool,
    pub(super) releases_seen: AtomicUsize,
    pub(super) release_text: AtomicU64,
    /// Scans started, ever: one at a time, and none while the scan is at the head.
    pub(super) scans: AtomicU64,
}

impl LogSizes {
    /// Starts a scan of the events after the last one scanned, unless one runs.
    pub(super) fn refresh(self: &Arc<Self>, ledger: &Ledger, head: u64) {
        if self.through.load(Ordering::Acquire) >= head || self.scanning.swap(true, Ordering::AcqRel) {
            return;
        }
        self.scans.fetch_add(1, Ordering::Relaxed);
        let sizes = self.clone();
        let ledger = ledger.clone();
        let spawned = std::thread::Builder::new().name("log-sizes".into()).spawn(move || {
            sizes.scan(&ledger);
            sizes.scanning.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the scan of the log's sizes");
            self.scanning.store(false, Ordering::Release);
        }
    }

    pub(super) fn scan(&self, ledger: &Ledger) {
        loop {
            let after = self.through.load(Ordering::Acquire);
            let page = match ledger.audit_events(after, SIZES_PAGE) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, after, "scanning the log's sizes stopped");
                    return;
                }
            };
            let Some(last) = page.last().map(|a| a.event.envelope.revision) else {
                return;
            };
            for a in &page {
                self.event.fetch_max(json_len(&a.canonical), Ordering::AcqRel);
            }
            self.through.store(last, Ordering::Release);
        }
    }

    /// The largest event, as JSON; guessed from `extents` for events not yet scanned.
    pub(super) fn event(&self, extents: &Extents) -> u64 {
        let event = self.event.load(Ordering::Acquire);
        if self.through.load(Ordering::Acquire) >= extents.events {
            return event;
        }
        let guess = extents
            .max_release_observations
            .saturating_mul(UNSCANNED_OBSERVATION_BYTES)
            .saturating_add(UNSCANNED_EVENT_BYTES);
        event.max(guess)
    }

    /// The longest release or dataset text in `p`, as JSON.
    pub(super) fn text(&self, p: &Projection) -> u64 {
        let releases = p.releases();
        let seen = self.releases_seen.load(Ordering::Acquire).min(releases.len());
        if seen < releases.len() {
            let longest = releases[seen..]
                .iter()
                .flat_map(|r| std::iter::once(r.title.as_str()).chain(r.source.as_deref()))
                .map(json_len)
                .max()
                .unwrap_or(0);
            self.release_text.fetch_max(longest, Ordering::AcqRel);
            self.releases_seen.fetch_max(releases.len(), Ordering::AcqRel);
        }
        let datasets = p
            .datasets()
            .iter()
            .flat_map(|d| {
                [d.def.name.as_str(), d.def.publisher.as_str()]
                    .into_iter()
                    .chain(d.def.description.as_deref())
            })
            .map(json_len)
            .max()
            .unwrap_or(0);
        self.release_text.load(Ordering::Acquire).max(datasets)
    }
}

/// The length of `s` as a JSON string, quotes included.
pub(super) fn json_len(s: &str) -> u64 {
    let escaped: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    (s.len() + escaped + 2) as u64
}

/// Charges the JSON size of `texts` to the request's [`ResponseBytes`] (if it has one).
pub(crate) fn charge_texts<'t>(
    ctx: &async_graphql::Context<'_>,
    texts: impl IntoIterator<Item = &'t str>,
) -> async_graphql::Result<()> {
    let Some(counter) = ctx.data_opt::<ResponseBytes>() else {
        return Ok(());
    };
    let bytes: u64 = texts.into_iter().map(json_len).sum();
    counter.charge(bytes as usize)
}

/// Bytes of the response counted while it is built, in the request data: the resolvers of
/// the fields that can be large charge what they add ([`charge_texts`]), and once the total
/// passes `--max-response-bytes` every charge fails, so nothing more is built.
#[derive(Debug)]
pub struct ResponseBytes {
    pub(super) used: AtomicUsize,
    pub(super) limit: usize,
}

impl ResponseBytes {
    pub fn new(limit: usize) -> Self {
        ResponseBytes {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Adds `bytes`; the `LIMIT_EXCEEDED` error once the total is past the limit.
    pub fn charge(&self, bytes: usize) -> async_graphql::Result<()> {
        let used = self.used.fetch_add(bytes, Ordering::AcqRel).saturating_add(bytes);
        if used > self.limit {
            return Err(ResponseTooLarge { limit: self.limit }.error().into());
        }
        Ok(())
    }
}
