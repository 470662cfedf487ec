//! A map from user ids to what the service remembers of them, under a ceiling on both
//! entries and bytes: when either is exceeded it drops the least recently used entries
//! (a read counts as a use). Misses are only slower, never wrong, so the ceiling is what
//! keeps a long-running service's memory flat however many distinct users it sees.
//!
//! Each entry's byte weight is given by the caller (what the value holds on the heap plus
//! its key); the map's own bookkeeping adds about 100 bytes per entry on top.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

pub struct BoundedMap<V> {
    /// Entries kept at most (one at least: callers that remember nothing hold no map).
    capacity: usize,
    /// Sum of entry weights kept at most.
    max_bytes: usize,
    bytes: usize,
    /// Use counter: a larger tick is a more recent use.
    clock: u64,
    map: FxHashMap<String, Entry<V>>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, String>,
}

struct Entry<V> {
    value: V,
    bytes: usize,
    tick: u64,
}

impl<V> BoundedMap<V> {
    /// At most `capacity` entries, with no byte ceiling beyond what they weigh.
    pub fn new(capacity: usize) -> Self {
        Self::with_ceiling(capacity, usize::MAX)
    }

    /// At most `capacity` entries weighing at most `max_bytes` together.
    pub fn with_ceiling(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            clock: 0,
            map: FxHashMap::default(),
            order: BTreeMap::new(),
        }
    }

    /// The entry for `key`, marked as the most recently used.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        self.clock += 1;
        let entry = self.map.get_mut(key)?;
        let old = std::mem::replace(&mut entry.tick, self.clock);
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(self.clock, k);
        }
        Some(&entry.value)
    }

    /// Inserts (or replaces) `key` with a value weighing `bytes`, then evicts the least
    /// recently used entries until both ceilings hold. A value heavier than the whole
    /// byte ceiling is not kept at all.
    pub fn insert_weighted(&mut self, key: &str, value: V, bytes: usize) {
        self.remove(key);
        if bytes > self.max_bytes {
            return;
        }
        self.clock += 1;
        self.bytes += bytes;
        self.order.insert(self.clock, key.to_string());
        self.map.insert(
            key.to_string(),
            Entry {
                value,
                bytes,
                tick: self.clock,
            },
        );
        while self.map.len() > self.capacity || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&oldest) {
                self.bytes -= e.bytes;
            }
        }
    }

    /// Inserts with the key's length as the weight (for maps bounded by entries only).
    pub fn insert(&mut self, key: &str, value: V) {
        self.insert_weighted(key, value, key.len());
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= e.bytes;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of the weights of the entries kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::BoundedMap;

    #[test]
    fn evicts_the_least_recently_used_entry() {
        let mut m = BoundedMap::new(3);
        for k in ["a", "b", "c"] {
            m.insert(k, k.to_uppercase());
        }
        // A read makes `a` the most recent: `b` is now the oldest.
        assert_eq!(m.get("a").map(String::as_str), Some("A"));
        m.insert("d", "D".into());
        assert!(m.get("b").is_none(), "b was least recently used");
        assert_eq!(m.len(), 3);
        // Replacing `c` refreshes it; `a` is then the oldest and goes next.
        m.insert("c", "C2".into());
        m.insert("e", "E".into());
        assert!(m.get("a").is_none());
        for (k, v) in [("c", "C2"), ("d", "D"), ("e", "E")] {
            assert_eq!(m.get(k).map(String::as_str), Some(v));
        }
    }

    #[test]
    fn the_byte_ceiling_evicts_as_many_old_entries_as_needed() {
        let mut m = BoundedMap::with_ceiling(100, 100);
        for (k, w) in [("a", 40), ("b", 30), ("c", 20)] {
            m.insert_weighted(k, (), w);
        }
        assert_eq!(m.bytes(), 90);
        m.insert_weighted("d", (), 70);
        // 160 > 100: a (40) and b (30) go, oldest first; 90 remain.
        assert!(m.get("a").is_none() && m.get("b").is_none());
        assert!(m.get("c").is_some() && m.get("d").is_some());
        assert_eq!(m.bytes(), 90);
        // Too heavy for the ceiling on its own: not kept, nothing else evicted.
        m.insert_weighted("huge", (), 101);
        assert!(m.get("huge").is_none());
        assert_eq!((m.len(), m.bytes()), (2, 90));
        m.remove("c");
        assert_eq!((m.len(), m.bytes()), (1, 70));
    }

    #[test]
    fn a_skewed_stream_keeps_its_hot_keys() {
        // One hot user read between every cold one survives a stream far larger than
        // the capacity; the cold ones cycle through.
        let mut m = BoundedMap::new(8);
        m.insert("hot", 0usize);
        for i in 0..10_000 {
            assert_eq!(m.get("hot"), Some(&0), "hot evicted at {i}");
            m.insert(&format!("cold-{i}"), i);
            assert!(m.len() <= 8);
        }
        assert!(m.get("cold-9999").is_some() && m.get("cold-9992").is_none());
    }
}
