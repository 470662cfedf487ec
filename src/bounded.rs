//! A map from user ids to what the service remembers of them, holding at most `capacity`
//! entries: when full it makes room by dropping an arbitrary entry (hash order), O(1) and
//! good enough for memories whose misses are only slower, never wrong.

use rustc_hash::FxHashMap;

pub struct BoundedMap<V> {
    /// Entries kept at most (one at least: callers that remember nothing hold no map).
    capacity: usize,
    map: FxHashMap<String, V>,
}

impl<V> BoundedMap<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: FxHashMap::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub fn insert(&mut self, key: &str, value: V) {
        if self.map.len() >= self.capacity
            && !self.map.contains_key(key)
            && let Some(old) = self.map.keys().next().cloned()
        {
            self.map.remove(&old);
        }
        self.map.insert(key.to_string(), value);
    }

    pub fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }
}
