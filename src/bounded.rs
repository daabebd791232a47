//! A map bounded in entries and bytes, shared between threads: the response cache's store
//! and the query limits' document cache.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

struct Entries<K, V> {
    map: HashMap<K, (V, usize)>,
    /// Keys in insertion order, oldest first; each key of `map` once.
    order: VecDeque<K>,
    bytes: usize,
}

/// A map of at most `max_entries` entries and `max_bytes` bytes (as charged by the caller),
/// shared between threads; when full, the oldest entries make room.
pub struct BoundedMap<K, V> {
    max_entries: usize,
    max_bytes: usize,
    entries: Mutex<Entries<K, V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> BoundedMap<K, V> {
    /// A map of at most `max_entries` entries and `max_bytes` bytes; with 0 it keeps nothing.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        BoundedMap {
            max_entries,
            max_bytes,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lock().map.get(key).map(|(v, _)| v.clone())
    }

    /// Keeps `value`, which costs `charge` bytes, evicting the oldest entries to make room;
    /// a value larger than the whole budget is not kept.
    pub fn insert(&self, key: K, value: V, charge: usize) {
        if self.max_entries == 0 || charge > self.max_bytes {
            return;
        }
        let mut e = self.lock();
        match e.map.insert(key.clone(), (value, charge)) {
            Some((_, old)) => e.bytes -= old,
            None => e.order.push_back(key),
        }
        e.bytes += charge;
        while e.map.len() > self.max_entries || e.bytes > self.max_bytes {
            let Some(oldest) = e.order.pop_front() else { break };
            if let Some((_, c)) = e.map.remove(&oldest) {
                e.bytes -= c;
            }
        }
    }

    /// True when the map can hold nothing (a limit of 0).
    pub fn keeps_nothing(&self) -> bool {
        self.max_entries == 0 || self.max_bytes == 0
    }

    pub fn clear(&self) {
        let mut e = self.lock();
        e.map.clear();
        e.order.clear();
        e.bytes = 0;
    }

    /// Bytes charged by the entries kept.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }
}
