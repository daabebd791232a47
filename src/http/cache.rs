//! Responses to read-only queries, keyed by the ledger revision they were computed at.
//!
//! Every answer of this server is a function of the operation, the variables it declares and
//! the ledger revision: what was published at a revision never changes. So a response
//! computed at the head revision can be served again until the next write moves the head,
//! with no invalidation to get wrong: the revision is part of the key. Dashboards that poll
//! the same queries are served from memory. Mutations, subscriptions and `verifyLedger`
//! (which reads the files again) are never cached, nor are responses with errors; which
//! operation a request runs is read from its parsed document, not guessed from its text.
//!
//! The cache is bounded in bytes as well as entries. A key is a SHA-256 digest of the query
//! text, the operation name and only the variables the operation declares, so its size is
//! fixed: variables an operation does not use (which GraphQL ignores, as graphql-js does)
//! neither reach the key nor make a request look new. When the cache is full the oldest
//! entries go first; entries of an older revision can never be hit again, so a write clears
//! them all at once.

use std::sync::atomic::{AtomicU64, Ordering};

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::Request;
use axum::body::Bytes;
use sha2::{Digest, Sha256};

use crate::bounded::BoundedMap;
use crate::graphql::MAX_QUERY;

/// Largest response body cached.
pub const MAX_BODY: usize = 64 * 1024;
/// What an entry costs beyond its body: the key, the map and queue slots, the allocation.
pub const ENTRY_OVERHEAD: usize = 160;

/// A response's key: the revision and a digest of what the response depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    revision: u64,
    digest: [u8; 32],
}

/// Response bodies by request and revision; see the module docs.
pub struct ResponseCache {
    entries: BoundedMap<CacheKey, Bytes>,
    /// Revision of the entries kept.
    revision: AtomicU64,
    /// Lookups of cacheable requests that found an answer, and that did not (`/metrics`).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ResponseCache {
    /// A cache of at most `max_entries` responses and `max_bytes` bytes (keys and overhead
    /// included); 0 for either turns it off.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        ResponseCache {
            entries: BoundedMap::new(max_entries, max_bytes),
            revision: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// False when the cache is turned off (it keeps nothing).
    pub fn enabled(&self) -> bool {
        !self.entries.keeps_nothing()
    }

    /// The key of `request` at `revision`, or `None` if it must not be cached. `document` is
    /// the request's parsed query, if it parsed and passed the limits.
    pub fn key(&self, revision: u64, request: &Request, document: Option<&ExecutableDocument>) -> Option<CacheKey> {
        if self.entries.keeps_nothing() {
            return None;
        }
        Some(CacheKey {
            revision,
            digest: request_digest(request, document?)?,
        })
    }

    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        let found = self.entries.get(key);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Lookups that were answered from the cache, and lookups that were not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    pub fn put(&self, key: CacheKey, body: Bytes) {
        if body.len() > MAX_BODY {
            return;
        }
        // Entries of an older revision are never asked for again: drop them at the first
        // answer at a newer one, and never keep an answer of an older one.
        let kept = self.revision.fetch_max(key.revision, Ordering::AcqRel);
        if key.revision < kept {
            return;
        }
        if key.revision > kept {
            self.entries.clear();
        }
        let charge = body.len() + ENTRY_OVERHEAD;
        self.entries.insert(key, body, charge);
    }

    /// Bytes held (bodies, keys and overhead).
    pub fn bytes(&self) -> usize {
        self.entries.bytes()
    }
}

/// A digest of what the answer to `request` (parsed as `doc`) depends on besides the
/// ledger: the query text, the operation name and the variables the operation declares;
/// `None` when the answer must not be cached (not a query, `verifyLedger`, a long text).
pub fn request_digest(request: &Request, doc: &ExecutableDocument) -> Option<[u8; 32]> {
    if request.query.len() > MAX_QUERY {
        return None;
    }
    let name = request.operation_name.as_deref();
    let op = doc
        .operations
        .iter()
        .find(|(n, _)| name.is_none_or(|wanted| n.is_some_and(|n| n.as_str() == wanted)))
        .map(|(_, op)| &op.node)?;
    if op.ty != OperationType::Query || verifies(doc, &op.selection_set.node, 0) {
        return None;
    }
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    part(request.query.as_bytes());
    part(name.unwrap_or("").as_bytes());
    for def in &op.variable_definitions {
        let var = &def.node.name.node;
        part(var.as_bytes());
        match request.variables.get(var) {
            Some(value) => part(&serde_json::to_vec(value).ok()?),
            // Absent and null differ: an absent variable takes its default.
            None => part(b"absent"),
        }
    }
    Some(h.finalize().into())
}

/// Fields whose answer is not a function of the revision alone, so they are never cached:
/// the verifications read the store again (and so can see damage done since), and
/// checkpoints and tlog proofs carry the witnesses' cosignatures, which come in after the
/// write that made the revision.
const UNCACHEABLE: [&str; 5] = [
    "verifyLedger",
    "verifyLedgerFull",
    "ledgerVerification",
    "checkpoint",
    "tlogProof",
];

/// True if the selection runs a field of [`UNCACHEABLE`] (at any depth, through fragments
/// too).
fn verifies(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    // Fragments nest without bound only in cyclic documents, which validation refuses.
    depth < 32
        && set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => {
                UNCACHEABLE.contains(&f.node.name.node.as_str()) || verifies(doc, &f.node.selection_set.node, depth + 1)
            }
            Selection::InlineFragment(i) => verifies(doc, &i.node.selection_set.node, depth + 1),
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .is_some_and(|f| verifies(doc, &f.node.selection_set.node, depth + 1)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use async_graphql::Variables;
    use serde_json::json;

    fn key(cache: &ResponseCache, revision: u64, request: &Request) -> Option<CacheKey> {
        let doc = parse_query(&request.query).ok();
        cache.key(revision, request, doc.as_ref())
    }

    #[test]
    fn keys_only_read_only_queries_and_include_the_revision() {
        let cache = ResponseCache::new(2, 1 << 20);
        let q = Request::new("{ ledger { revision } }");
        assert_ne!(key(&cache, 1, &q), key(&cache, 2, &q));
        assert!(key(&cache, 1, &Request::new("mutation { x }")).is_none());
        // Read from the parsed operation: a query that mentions "mutation" is still a query.
        assert!(key(&cache, 1, &Request::new("{ mutation: ledger { revision } }")).is_some());
        assert!(key(&cache, 1, &Request::new("subscription { x }")).is_none());
        assert!(key(&cache, 1, &Request::new("{ verifyLedger { ok } }")).is_none());
        assert!(key(
            &cache,
            1,
            &Request::new("{ ...F } fragment F on Query { verifyLedger { ok } }")
        )
        .is_none());
        assert!(key(&cache, 1, &Request::new("{ ... on Query { a: verifyLedger { ok } } }")).is_none());
        assert!(key(&cache, 1, &Request::new("{ checkpoint { note } }")).is_none());
        assert!(key(
            &cache,
            1,
            &Request::new("{ inclusionProof(revision: 1) { p: tlogProof } }")
        )
        .is_none());
        assert!(
            key(&cache, 1, &Request::new("{ ledger")).is_none(),
            "unparsed documents are not cached"
        );
        assert!(key(&ResponseCache::new(0, 1 << 20), 1, &q).is_none());
        let k = key(&cache, 1, &q).unwrap();
        cache.put(k, Bytes::from_static(b"{}"));
        assert_eq!(cache.get(&k).as_deref(), Some(&b"{}"[..]));
        assert!(cache.get(&key(&cache, 2, &q).unwrap()).is_none());
    }

    #[test]
    fn picks_the_named_operation() {
        let cache = ResponseCache::new(2, 1 << 20);
        let doc = "query A { ledger { revision } } mutation B { x }";
        assert!(key(&cache, 1, &Request::new(doc).operation_name("A")).is_some());
        assert!(key(&cache, 1, &Request::new(doc).operation_name("B")).is_none());
        assert!(key(&cache, 1, &Request::new(doc).operation_name("C")).is_none());
    }

    #[test]
    fn keys_only_on_declared_variables() {
        let cache = ResponseCache::new(2, 1 << 20);
        let q = "query($k: String) { observation(key: $k) { value } }";
        let with = |v: serde_json::Value| Request::new(q).variables(Variables::from_json(v));
        let base = key(&cache, 1, &with(json!({"k": "A"})));
        let junk = "x".repeat(100_000);
        assert_eq!(base, key(&cache, 1, &with(json!({"k": "A", "unused": junk}))));
        assert_ne!(base, key(&cache, 1, &with(json!({"k": "B"}))));
        assert_ne!(
            key(&cache, 1, &with(json!({}))),
            key(&cache, 1, &with(json!({"k": null})))
        );
        assert_ne!(base, key(&cache, 1, &Request::new(q).operation_name("X")));
    }

    #[test]
    fn stays_bounded_in_entries_and_bytes() {
        let cache = ResponseCache::new(2, 1 << 20);
        for i in 0..5 {
            let q = Request::new(format!("{{ a{i} }}"));
            cache.put(key(&cache, 1, &q).unwrap(), Bytes::from_static(b"x"));
        }
        assert_eq!(cache.entries.len(), 2);
        let big = Bytes::from(vec![b' '; MAX_BODY + 1]);
        let k = key(&cache, 1, &Request::new("{ b }")).unwrap();
        cache.put(k, big);
        assert!(cache.get(&k).is_none());

        let budget = 10 * (1000 + ENTRY_OVERHEAD);
        let cache = ResponseCache::new(1000, budget);
        let mut keys = Vec::new();
        for i in 0..50 {
            let k = key(&cache, 1, &Request::new(format!("{{ a{i} }}"))).unwrap();
            cache.put(k, Bytes::from(vec![b'x'; 1000]));
            keys.push(k);
            assert!(cache.bytes() <= budget);
        }
        assert_eq!(cache.bytes(), budget);
        // The oldest went first; the newest are kept.
        assert!(cache.get(&keys[0]).is_none());
        assert!(cache.get(&keys[49]).is_some());
    }

    #[test]
    fn a_newer_revision_drops_older_entries() {
        let cache = ResponseCache::new(10, 1 << 20);
        let q = Request::new("{ a }");
        let old = key(&cache, 1, &q).unwrap();
        cache.put(old, Bytes::from_static(b"1"));
        let new = key(&cache, 2, &q).unwrap();
        cache.put(new, Bytes::from_static(b"2"));
        assert!(cache.get(&old).is_none());
        assert_eq!(cache.bytes(), 1 + ENTRY_OVERHEAD);
        // A late answer computed at the older revision is not kept.
        cache.put(old, Bytes::from_static(b"1"));
        assert!(cache.get(&old).is_none());
    }
}
