//! The KNN user-mean baseline (the paper's content-only model): the user vector is the
//! mean of the user's tracks' embeddings; user and items are L2-normalised and ranked by
//! cosine through a nearest-neighbour index.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use rustc_hash::{FxHashMap, FxHasher};

use super::{Query, RecommendError, Recommender, Scored, history_set};
use crate::embeddings::{Embeddings, l2_normalize};
use crate::index::{self, HnswParams, IndexKind, NeighbourIndex};

pub struct KnnRecommender {
    embeddings: Arc<Embeddings>,
    index: Box<dyn NeighbourIndex>,
    memo: UserVectors,
}

/// Normalised user vectors of stored users, each kept with a hash of the history it was
/// computed from: a new listen changes the history, so it misses and is recomputed,
/// never answered stale, and several service instances sharing one database stay
/// correct. The mean of a 300-track, 1,024-d history is a fifth of a served
/// recommendation's CPU time; a returning user skips it.
struct UserVectors {
    /// Users kept at most; 0 turns the memo off (offline evaluation sees each user once).
    capacity: usize,
    map: Mutex<FxHashMap<String, Remembered>>,
}

/// A user's vector and the hash of the history it was computed from.
struct Remembered {
    history: u64,
    vector: Arc<[f32]>,
}

impl UserVectors {
    fn get(&self, user: &str, history: u64) -> Option<Arc<[f32]>> {
        let map = self.map.lock().expect("user vector memo lock");
        map.get(user)
            .filter(|r| r.history == history)
            .map(|r| r.vector.clone())
    }

    fn put(&self, user: &str, history: u64, vector: Arc<[f32]>) {
        let mut map = self.map.lock().expect("user vector memo lock");
        if map.len() >= self.capacity && !map.contains_key(user) {
            // Full: make room by dropping an arbitrary user (hash order), O(1) and
            // unbiased enough for a memo whose misses are only slower, never wrong.
            if let Some(old) = map.keys().next().cloned() {
                map.remove(&old);
            }
        }
        map.insert(user.to_string(), Remembered { history, vector });
    }
}

/// A 64-bit hash of a history, the key check of [`UserVectors`].
fn history_hash(history: &[u32]) -> u64 {
    let mut h = FxHasher::default();
    history.hash(&mut h);
    h.finish()
}

impl KnnRecommender {
    /// Indexes `items` (the recommendable tracks) of `embeddings`; `cache` is where HNSW
    /// graphs are saved and reloaded (see [`index::build`]).
    pub fn new(
        embeddings: Arc<Embeddings>,
        items: &[u32],
        kind: IndexKind,
        params: HnswParams,
        cache: Option<&std::path::Path>,
    ) -> Self {
        let index = index::build(
            kind,
            embeddings.dim,
            items,
            |t| embeddings.normalized_row(t),
            params,
            cache,
        );
        Self {
            embeddings,
            index,
            memo: UserVectors {
                capacity: 0,
                map: Mutex::default(),
            },
        }
    }

    /// Keeps the user vectors of up to `capacity` stored users between queries (see
    /// [`UserVectors`]); memory is `capacity × dim × 4` bytes at most.
    pub fn remember_users(mut self, capacity: usize) -> Self {
        self.memo.capacity = capacity;
        self
    }

    pub fn index(&self) -> &dyn NeighbourIndex {
        self.index.as_ref()
    }

    /// The normalised mean of the history's embeddings.
    pub fn user_vector(&self, history: &[u32]) -> Result<Vec<f32>, RecommendError> {
        let n = self.embeddings.len() as u32;
        if let Some(&bad) = history.iter().find(|&&t| t >= n) {
            return Err(RecommendError::UnknownTrack(bad));
        }
        let mut v = self
            .embeddings
            .mean(history)
            .ok_or(RecommendError::EmptyHistory)?;
        l2_normalize(&mut v);
        Ok(v)
    }
}

impl Recommender for KnnRecommender {
    fn model(&self) -> &str {
        "knn"
    }

    fn backend(&self) -> &str {
        &self.embeddings.backend
    }

    fn is_light(&self) -> bool {
        true
    }

    fn recommend(&self, query: &Query) -> Result<Vec<Scored>, RecommendError> {
        let user: Arc<[f32]> = match query.user {
            Some(id) if self.memo.capacity > 0 => {
                let hash = history_hash(query.history);
                match self.memo.get(id, hash) {
                    Some(v) => v,
                    None => {
                        let v: Arc<[f32]> = self.user_vector(query.history)?.into();
                        self.memo.put(id, hash, v.clone());
                        v
                    }
                }
            }
            _ => self.user_vector(query.history)?.into(),
        };
        let exclude = history_set(query.history);
        Ok(self
            .index
            .search(&user, query.k, &exclude)
            .into_iter()
            .map(|n| Scored {
                track: n.id,
                score: n.score,
            })
            .collect())
    }
}
