//! HTTP caching of GraphQL answers: `Cache-Control`, `ETag`, `Vary` and the surrogate keys
//! (`xkey`, `Surrogate-Key`) that let browsers, Varnish, nginx and CDNs serve the ledger's
//! answers, decided from what an answer depends on.
//!
//! - **Pinned** answers read a point of history that can no longer change: every root field
//!   is one that takes `asOf` (and `changes` both its `from` and `to`), each pinned to a
//!   revision at or before the head, a release the ledger has, or a `knownAt` time the ledger
//!   is past; or `release(id:)` of a recorded release. They are `public, max-age=31536000,
//!   immutable`. `publishedAt` alone is not a pinned point (a back-fill recorded later can
//!   change its answer), nor is a revision beyond the head or a `knownAt` not yet past.
//!   Dataset definitions are read as they are now (labels may be amended), so an answer that
//!   selects a `label` or a release's `dataset` object is not pinned.
//! - **Head** answers are everything else that is a cacheable read: `max-age` is
//!   `--cache-max-age`, with `stale-while-revalidate`, and the `ETag` names the revision read.
//! - Errors, mutations, batches and `verifyLedger` are `no-store`.
//!
//! The `ETag` is computed before anything executes (from the request and, for head answers,
//! the head revision), so a matching `If-None-Match` is answered 304 without running the
//! query. Under `--read-tokens` answers are `private`: only the client's own cache keeps
//! them.

use async_graphql::parser::types::{ExecutableDocument, OperationDefinition, Selection, SelectionSet};
use async_graphql::{Name, Request, Value as ConstValue};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::projection::Projection;

/// `max-age` of pinned answers: a year, the longest RFC 9111 caches are expected to honour.
pub const PINNED_MAX_AGE: u64 = 31_536_000;
/// Default `--cache-max-age`, in seconds; see [`CachingArgs`].
pub const DEFAULT_MAX_AGE: u64 = 2;
/// Default `--cache-stale-while-revalidate`, in seconds.
pub const DEFAULT_STALE_WHILE_REVALIDATE: u64 = 10;
/// A `knownAt` this long before the server's clock counts as past even when no event was
/// recorded since: longer than any write takes from taking its recording time to being
/// applied (writes time out well before).
const KNOWN_AT_MARGIN_SECS: i64 = 600;
/// The surrogate key every answer carries, so that one purge can clear them all.
pub const TAG_ALL: &str = "tl:all";
/// The surrogate key of head answers that read beyond one dataset (the ledger, the
/// datasets list, the audit log): purged at every event.
pub const TAG_LEDGER: &str = "tl:ledger";
/// The surrogate key of pinned answers, which no release changes.
pub const TAG_PINNED: &str = "tl:pinned";
/// The header carrying the surrogate keys for Varnish's xkey vmod.
pub const XKEY: HeaderName = HeaderName::from_static("xkey");
/// The same keys for Fastly and others.
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// The surrogate key of head answers that read dataset `id`.
pub fn dataset_tag(id: &str) -> String {
    format!("tl:ds:{id}")
}

/// The caching flags of `serve`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct CachingArgs {
    /// `max-age`, in seconds, of answers read at the head: how stale a cache that is not
    /// purged at a release (a browser's) may serve them. 0 makes caches revalidate every
    /// time (cheap: a matching ETag is answered 304 without running the query).
    #[arg(long, env = "TRADELEDGER_CACHE_MAX_AGE", default_value_t = DEFAULT_MAX_AGE, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub cache_max_age: u64,
    /// `stale-while-revalidate`, in seconds, of answers read at the head: a cache may answer
    /// with the old one while it fetches the new, so no client waits on the origin.
    #[arg(long, env = "TRADELEDGER_CACHE_STALE_WHILE_REVALIDATE", default_value_t = DEFAULT_STALE_WHILE_REVALIDATE,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub cache_stale_while_revalidate: u64,
    /// Trusted documents: a JSON manifest of persisted queries (Apollo's persisted query
    /// manifest, or the map of id to document that Relay and GraphQL Codegen write).
    #[arg(long, env = "TRADELEDGER_PERSISTED_QUERIES", value_name = "FILE")]
    pub persisted_queries: Option<std::path::PathBuf>,
    /// Run only the documents of `--persisted-queries`: any other is refused (a safelist).
    #[arg(long, env = "TRADELEDGER_ONLY_PERSISTED")]
    pub only_persisted: bool,
    /// Documents kept for automatic persisted queries (registered by any client); 0 turns
    /// automatic persisted queries off.
    #[arg(long, env = "TRADELEDGER_APQ_MAX_ENTRIES", default_value_t = 1000)]
    pub apq_max_entries: usize,
    /// Bytes of query text kept for automatic persisted queries.
    #[arg(long, env = "TRADELEDGER_APQ_MAX_BYTES", default_value_t = 4 << 20)]
    pub apq_max_bytes: usize,
    /// HTTP caches to purge when an event is recorded (repeatable): each is sent `PURGE`
    /// with the surrogate keys to drop in `xkey-purge` and the dataset in
    /// `X-Tradeledger-Dataset`.
    #[arg(
        long = "purge-url",
        env = "TRADELEDGER_PURGE_URLS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub purge_urls: Vec<String>,
}

impl Default for CachingArgs {
    fn default() -> Self {
        CachingArgs {
            cache_max_age: DEFAULT_MAX_AGE,
            cache_stale_while_revalidate: DEFAULT_STALE_WHILE_REVALIDATE,
            persisted_queries: None,
            only_persisted: false,
            apq_max_entries: 1000,
            apq_max_bytes: 4 << 20,
            purge_urls: Vec::new(),
        }
    }
}

/// How long an answer may be kept, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// The answer can never change.
    Pinned,
    /// Read at the head, at this revision.
    Head(u64),
}

/// The caching headers of one cacheable request, decided before it runs.
#[derive(Debug, Clone)]
pub struct Policy {
    pub freshness: Freshness,
    /// The strong entity tag, quoted.
    pub etag: String,
    /// Surrogate keys, space-separated.
    pub tags: String,
}

impl Policy {
    /// The policy of `request` (its parsed `doc`), answered as `media`, given the projection
    /// now; `None` when the answer must not be stored (not a cacheable query).
    pub fn of(
        request: &Request,
        doc: &ExecutableDocument,
        media: &str,
        p: &Projection,
        now: DateTime<Utc>,
    ) -> Option<Policy> {
        let op = chosen_operation(doc, request.operation_name.as_deref())?;
        let digest = crate::http::cache::request_digest(request, doc)?;
        let head = p.head().revision;
        let roots = root_fields(doc, &op.selection_set.node);
        let pinned = !roots.is_empty()
            && roots.iter().all(|f| pinned_field(f, op, request, p, now))
            && !reads_definitions(doc, &op.selection_set.node, 0);
        let mut tags = vec![TAG_ALL.to_owned()];
        let freshness = if pinned {
            tags.push(TAG_PINNED.to_owned());
            Freshness::Pinned
        } else {
            for f in &roots {
                let tag = match dataset_of(f, op, request, p) {
                    Some(id) => dataset_tag(&id),
                    None => TAG_LEDGER.to_owned(),
                };
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            if roots.is_empty() {
                tags.push(TAG_LEDGER.to_owned());
            }
            Freshness::Head(head)
        };
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update([0]);
        h.update(media.as_bytes());
        h.update([0]);
        h.update(digest);
        let etag = match freshness {
            Freshness::Pinned => format!("\"p-{}\"", &hex::encode(h.finalize())[..32]),
            Freshness::Head(r) => format!("\"r{r}-{}\"", &hex::encode(h.finalize())[..32]),
        };
        Some(Policy {
            freshness,
            etag,
            tags: tags.join(" "),
        })
    }

    /// True when `If-None-Match` in `headers` names this answer (or is `*`).
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
            v.to_str().is_ok_and(|list| {
                list.split(',').map(str::trim).any(|tag| {
                    // Weak comparison, as RFC 9110 asks for If-None-Match.
                    tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag
                })
            })
        })
    }

    /// Sets the caching headers of an answer under this policy.
    pub fn apply(&self, headers: &mut HeaderMap, config: &HttpCaching, private: bool) {
        let scope = if private { "private" } else { "public" };
        let control = match self.freshness {
            Freshness::Pinned => format!("{scope}, max-age={PINNED_MAX_AGE}, immutable"),
            Freshness::Head(_) => format!(
                "{scope}, max-age={}, stale-while-revalidate={}",
                config.max_age, config.stale_while_revalidate
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&control) {
            headers.insert(header::CACHE_CONTROL, v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, v);
        }
        vary(headers);
        if !private {
            if let Ok(v) = HeaderValue::from_str(&self.tags) {
                headers.insert(XKEY, v.clone());
                headers.insert(SURROGATE_KEY, v);
            }
        }
    }
}

/// The answer differs by `Accept` (content negotiation) and, when reads need a token, by
/// `Authorization`; naming both always keeps a cache from mixing them up.
pub fn vary(headers: &mut HeaderMap) {
    headers.insert(header::VARY, HeaderValue::from_static("Accept, Authorization"));
}

/// Marks a response that no cache may keep, unless it says otherwise already.
pub fn no_store_unless_set(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The caching settings the handlers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCaching {
    pub max_age: u64,
    pub stale_while_revalidate: u64,
}

impl Default for HttpCaching {
    fn default() -> Self {
        HttpCaching {
            max_age: DEFAULT_MAX_AGE,
            stale_while_revalidate: DEFAULT_STALE_WHILE_REVALIDATE,
        }
    }
}

/// The operation `name` picks (the only one without a name).
pub fn chosen_operation<'d>(doc: &'d ExecutableDocument, name: Option<&str>) -> Option<&'d OperationDefinition> {
    let mut ops = doc.operations.iter();
    match name {
        Some(wanted) => ops
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == wanted))
            .map(|(_, op)| &op.node),
        None => {
            let first = ops.next()?;
            ops.next().is_none().then_some(&first.1.node)
        }
    }
}

/// The root fields of a selection (through inline fragments and fragment spreads), without
/// `__typename`.
fn root_fields<'d>(doc: &'d ExecutableDocument, set: &'d SelectionSet) -> Vec<&'d async_graphql::parser::types::Field> {
    fn walk<'d>(
        doc: &'d ExecutableDocument,
        set: &'d SelectionSet,
        depth: usize,
        out: &mut Vec<&'d async_graphql::parser::types::Field>,
    ) -> bool {
        if depth > 16 {
            return false;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) if f.node.name.node == "__typename" => {}
                Selection::Field(f) => out.push(&f.node),
                Selection::InlineFragment(i) => {
                    if !walk(doc, &i.node.selection_set.node, depth + 1, out) {
                        return false;
                    }
                }
                Selection::FragmentSpread(s) => match doc.fragments.get(&s.node.fragment_name.node) {
                    Some(f) => {
                        if !walk(doc, &f.node.selection_set.node, depth + 1, out) {
                            return false;
                        }
                    }
                    None => return false,
                },
            }
        }
        true
    }
    let mut out = Vec::new();
    if !walk(doc, set, 0, &mut out) {
        // A document too deep or broken to read is not pinned: a field no caller runs
        // makes every check below fail.
        out.clear();
    }
    out
}

/// True when the selection reads a dataset's definition as it is now: a `label`, or a
/// release's `dataset` object (its name, codes and labels may be amended).
fn reads_definitions(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    if depth > 64 {
        return true;
    }
    set.items.iter().any(|item| match &item.node {
        Selection::Field(f) => {
            let name = f.node.name.node.as_str();
            let sub = &f.node.selection_set.node;
            name == "label" || (name == "dataset" && !sub.items.is_empty()) || reads_definitions(doc, sub, depth + 1)
        }
        Selection::InlineFragment(i) => reads_definitions(doc, &i.node.selection_set.node, depth + 1),
        Selection::FragmentSpread(s) => doc
            .fragments
            .get(&s.node.fragment_name.node)
            .is_none_or(|f| reads_definitions(doc, &f.node.selection_set.node, depth + 1)),
    })
}

/// The value of argument `name` of `field`, with variables (and their defaults) substituted;
/// `None` when absent or null.
fn argument(
    field: &async_graphql::parser::types::Field,
    name: &str,
    op: &OperationDefinition,
    request: &Request,
) -> Option<ConstValue> {
    let value = field.get_argument(name)?;
    let resolved = value
        .node
        .clone()
        .into_const_with(|var: Name| {
            if let Some(v) = request.variables.get(&var) {
                return Ok::<_, ()>(v.clone());
            }
            Ok(op
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == var)
                .and_then(|d| d.node.default_value().cloned())
                .unwrap_or(ConstValue::Null))
        })
        .ok()?;
    (resolved != ConstValue::Null).then_some(resolved)
}

/// Root fields that read a point of history given by `asOf`.
const AS_OF_FIELDS: [&str; 5] = ["observation", "observations", "history", "breakdown", "revisionSummary"];

fn pinned_field(
    field: &async_graphql::parser::types::Field,
    op: &OperationDefinition,
    request: &Request,
    p: &Projection,
    now: DateTime<Utc>,
) -> bool {
    let name = field.name.node.as_str();
    let point = |arg: &str| argument(field, arg, op, request).is_some_and(|v| pinned_point(&v, p, now));
    match name {
        _ if AS_OF_FIELDS.contains(&name) => point("asOf"),
        "changes" => point("from") && point("to"),
        "release" => match argument(field, "id", op, request) {
            Some(ConstValue::String(id)) => Uuid::parse_str(&id).is_ok_and(|id| p.release(&id).is_some()),
            _ => false,
        },
        _ => false,
    }
}

/// True when an `AsOf` value names a point whose answer can no longer change.
fn pinned_point(value: &ConstValue, p: &Projection, now: DateTime<Utc>) -> bool {
    let ConstValue::Object(fields) = value else {
        return false;
    };
    let set: Vec<(&str, &ConstValue)> = fields
        .iter()
        .filter(|(_, v)| **v != ConstValue::Null)
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let time = |v: &ConstValue| match v {
        ConstValue::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        _ => None,
    };
    match set.as_slice() {
        [("revision", ConstValue::Number(n))] => n.as_u64().is_some_and(|r| r <= p.head().revision),
        [("release", ConstValue::String(id))] => Uuid::parse_str(id).is_ok_and(|id| p.release(&id).is_some()),
        [("knownAt", k)] | [("knownAt", k), ("publishedAt", _)] | [("publishedAt", _), ("knownAt", k)] => time(k)
            .is_some_and(|k| {
                p.last_recorded_at().is_some_and(|last| k < last)
                    || k + chrono::Duration::seconds(KNOWN_AT_MARGIN_SECS) < now
            }),
        _ => false,
    }
}

/// The dataset a root field reads, if it reads one that exists (a release's for
/// `release(id:)`).
fn dataset_of(
    field: &async_graphql::parser::types::Field,
    op: &OperationDefinition,
    request: &Request,
    p: &Projection,
) -> Option<String> {
    let id = match field.name.node.as_str() {
        "release" => match argument(field, "id", op, request)? {
            ConstValue::String(id) => {
                let (_, r) = p.release(&Uuid::parse_str(&id).ok()?)?;
                r.dataset.to_string()
            }
            _ => return None,
        },
        "dataset" => match argument(field, "id", op, request)? {
            ConstValue::String(id) => id,
            _ => return None,
        },
        _ => match argument(field, "dataset", op, request)? {
            ConstValue::String(id) => id,
            _ => return None,
        },
    };
    // Only a dataset the ledger has: its id is a checked identifier, safe in a header.
    p.dataset(&id).map(|d| d.def.id.to_string())
}

/// Sets the caching headers of an SDMX answer from the facts the SDMX layer left in its
/// extensions, under the same policy as GraphQL answers: pinned answers are immutable,
/// the others are read at the head.
pub async fn sdmx(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<super::AppState>>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    let Some(facts) = response.extensions_mut().remove::<crate::sdmx::CacheFacts>() else {
        return response;
    };
    let mut tags = vec![TAG_ALL.to_owned()];
    tags.push(match (facts.pinned, &facts.dataset) {
        (true, _) => TAG_PINNED.to_owned(),
        (false, Some(id)) => dataset_tag(id),
        (false, None) => TAG_LEDGER.to_owned(),
    });
    let policy = Policy {
        freshness: if facts.pinned {
            Freshness::Pinned
        } else {
            Freshness::Head(facts.head)
        },
        etag: facts.etag,
        tags: tags.join(" "),
    };
    let private = state.config.tokens.reads_protected();
    policy.apply(response.headers_mut(), &state.config.http_caching, private);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag_policy(etag: &str) -> Policy {
        Policy {
            freshness: Freshness::Head(1),
            etag: etag.to_owned(),
            tags: TAG_ALL.to_owned(),
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let p = etag_policy("\"r1-abc\"");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            p.matches(&h)
        };
        assert!(with("\"r1-abc\""));
        assert!(with("W/\"r1-abc\""));
        assert!(with("\"x\", \"r1-abc\""));
        assert!(with("*"));
        assert!(!with("\"r2-abc\""));
        assert!(!with("r1-abc"));
        assert!(!p.matches(&HeaderMap::new()));
    }
}
