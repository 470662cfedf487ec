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

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::StoreError;
use crate::bounded::BoundedMap;

/// The byte ceiling per remembered user: 300 tracks of 4 bytes on average, so a few long
/// histories cannot hold more memory than `capacity` typical ones.
pub const HISTORY_BYTES_PER_USER: usize = 1_200;

/// `None` with Postgres or a capacity of 0: every read goes to the database.
pub(super) struct Histories(Option<Mutex<Inner>>);

struct Inner {
    /// Bumped by every write: a read that started before it must not store its result.
    generation: u64,
    map: BoundedMap<Arc<[u32]>>,
}

impl Histories {
    /// Keeps nothing: every read goes to the database.
    pub fn none() -> Self {
        Self(None)
    }

    /// Keeps up to `capacity` users.
    pub fn new(capacity: usize) -> Self {
        Self((capacity > 0).then(|| {
            Mutex::new(Inner {
                generation: 0,
                map: BoundedMap::with_ceiling(capacity, capacity * HISTORY_BYTES_PER_USER),
            })
        }))
    }

    /// The user's tracks in first-listen order, from memory or from `load` (empty for
    /// unknown users and users without listens, which are not kept).
    pub async fn get<F>(&self, user: &str, load: F) -> Result<Arc<[u32]>, StoreError>
    where
        F: Future<Output = Result<Vec<u32>, StoreError>>,
    {
        let Some(inner) = &self.0 else {
            return Ok(load.await?.into());
        };
        let lock = || inner.lock().expect("history cache lock");
        let generation = {
            let mut inner = lock();
            if let Some(h) = inner.map.get(user) {
                return Ok(h.clone());
            }
            inner.generation
        };
        let history: Arc<[u32]> = load.await?.into();
        let mut inner = lock();
        if inner.generation == generation && !history.is_empty() {
            let bytes = history.len() * 4 + user.len();
            inner.map.insert_weighted(user, history.clone(), bytes);
        }
        Ok(history)
    }

    /// Forgets `user`'s history; the store calls it after a write to it has committed.
    pub fn invalidate(&self, user: &str) {
        if let Some(inner) = &self.0 {
            let mut inner = inner.lock().expect("history cache lock");
            inner.generation += 1;
            inner.map.remove(user);
        }
    }
}
