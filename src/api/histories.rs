//! Listening histories of stored users kept in memory, when this process is the only
//! writer of the database (the embedded SQLite file). A served recommendation otherwise
//! starts with a query whose hand-off to and from SQLite's worker thread cost more CPU
//! than the nearest-neighbour search itself. With Postgres every read goes to the
//! database, since other instances may write to it.
//!
//! Correctness: a write (new listens) forgets the user's entry after it commits, and a
//! read only stores what it loaded if no write happened meanwhile (a generation counter
//! checked under the same lock), so a history read before a write can never be stored
//! after it.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use crate::store::{Store, StoreError};

pub struct Histories {
    /// Users kept at most; 0 keeps none.
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every write: a read that started before it must not store its result.
    generation: u64,
    map: FxHashMap<String, Arc<[u32]>>,
}

impl Histories {
    /// Keeps up to `capacity` users when `store` is SQLite, none otherwise.
    pub fn for_store(store: &Store, capacity: usize) -> Self {
        let capacity = if store.kind() == "sqlite" {
            capacity
        } else {
            0
        };
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("history cache lock")
    }

    /// The user's tracks in first-listen order (empty for unknown users and users
    /// without listens, which are not kept).
    pub async fn get(&self, store: &Store, user: &str) -> Result<Arc<[u32]>, StoreError> {
        if self.capacity == 0 {
            return Ok(store.history(user).await?.into());
        }
        let generation = {
            let inner = self.lock();
            if let Some(h) = inner.map.get(user) {
                return Ok(h.clone());
            }
            inner.generation
        };
        let history: Arc<[u32]> = store.history(user).await?.into();
        let mut inner = self.lock();
        if inner.generation == generation && !history.is_empty() {
            if inner.map.len() >= self.capacity
                && let Some(old) = inner.map.keys().next().cloned()
            {
                // Full: drop an arbitrary user (hash order); a miss is only slower.
                inner.map.remove(&old);
            }
            inner.map.insert(user.to_string(), history.clone());
        }
        Ok(history)
    }

    /// Forgets `user`'s history; call after a write to it has committed.
    pub fn invalidate(&self, user: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.map.remove(user);
    }
}
