//! Responses to read-only queries, keyed by the ledger revision they were computed at.
//!
//! Every answer of this server is a function of the query, its variables and the ledger
//! revision: what was published at a revision never changes. So a response computed at the
//! head revision can be served again until the next write moves the head, with no
//! invalidation to get wrong: the revision is part of the key. Dashboards that poll the same
//! queries are served from memory. Mutations, subscriptions and `verifyLedger` (which reads
//! the files again) are never cached, nor are responses with errors.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use async_graphql::Request;
use axum::body::Bytes;

/// Longest query text cached, here and by the query limits' document cache.
pub const MAX_QUERY: usize = 16 * 1024;
/// Largest response body cached.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    revision: u64,
    query: String,
    variables: String,
    operation: Option<String>,
}

/// A map of at most `capacity` entries, shared between threads; when full it starts over,
/// which is cheap and lets a steady workload refill it with its few queries at once.
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: Mutex<HashMap<K, V>>,
}

impl<K: Hash + Eq, V: Clone> BoundedMap<K, V> {
    /// A map of at most `capacity` entries; with 0 it keeps nothing.
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

/// Response bodies by request and revision; a capacity of 0 turns caching off.
pub type ResponseCache = BoundedMap<CacheKey, Bytes>;

impl ResponseCache {
    /// The key of a request at `revision`, or `None` if it must not be cached.
    pub fn key(&self, revision: u64, request: &Request) -> Option<CacheKey> {
        let q = &request.query;
        let read_only = !(q.contains("mutation") || q.contains("subscription") || q.contains("verifyLedger"));
        (self.capacity > 0 && read_only && q.len() <= MAX_QUERY).then(|| CacheKey {
            revision,
            query: q.clone(),
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
            operation: request.operation_name.clone(),
        })
    }

    pub fn put(&self, key: CacheKey, body: Bytes) {
        if body.len() <= MAX_BODY {
            self.insert(key, body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_only_read_only_queries_and_include_the_revision() {
        let cache = ResponseCache::new(2);
        let q = Request::new("{ ledger { revision } }");
        assert_ne!(cache.key(1, &q), cache.key(2, &q));
        assert!(cache.key(1, &Request::new("mutation { x }")).is_none());
        assert!(cache.key(1, &Request::new("{ verifyLedger { ok } }")).is_none());
        assert!(ResponseCache::new(0).key(1, &q).is_none());
        let k = cache.key(1, &q).unwrap();
        cache.put(k.clone(), Bytes::from_static(b"{}"));
        assert_eq!(cache.get(&k).as_deref(), Some(&b"{}"[..]));
        assert!(cache.get(&cache.key(2, &q).unwrap()).is_none());
    }

    #[test]
    fn stays_bounded() {
        let cache = ResponseCache::new(2);
        for i in 0..5 {
            cache.put(cache.key(i, &Request::new("{ a }")).unwrap(), Bytes::from_static(b"x"));
        }
        assert!(cache.entries.lock().unwrap().len() <= 2);
        let big = Bytes::from(vec![b' '; MAX_BODY + 1]);
        let k = cache.key(9, &Request::new("{ b }")).unwrap();
        cache.put(k.clone(), big);
        assert!(cache.get(&k).is_none());
    }
}
