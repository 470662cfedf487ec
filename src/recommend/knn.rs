//! The KNN user-mean baseline (the paper's content-only model): the user vector is the
//! mean of the user's tracks' embeddings; user and items are L2-normalised and ranked by
//! cosine through a nearest-neighbour index.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHasher;

use super::{Query, RecommendError, Recommender, Scored, history_set};
use crate::bounded::BoundedMap;
use crate::embeddings::{Embeddings, l2_normalize};
use crate::index::{self, HnswParams, IndexKind, NeighbourIndex};

pub struct KnnRecommender {
    embeddings: Arc<Embeddings>,
    index: Box<dyn NeighbourIndex>,
    /// Normalised user vectors of stored users, each kept with a hash of the history it
    /// was computed from: a new listen changes the history, so it misses and is
    /// recomputed, never answered stale, and several service instances sharing one
    /// database stay correct. The mean of a 300-track, 1,024-d history is a fifth of a
    /// served recommendation's CPU time; a returning user skips it. `None` (the default)
    /// keeps none: offline evaluation sees each user once.
    memo: Option<Mutex<BoundedMap<Remembered>>>,
}

/// A user's vector and the hash of the history it was computed from.
struct Remembered {
    history: u64,
    vector: Arc<[f32]>,
}

/// A 64-bit hash of a history, the key check of the remembered user vectors.
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
            memo: None,
        }
    }

    /// Keeps the user vectors of up to `capacity` stored users between queries;
    /// memory is `capacity × dim × 4` bytes at most.
    pub fn remember_users(mut self, capacity: usize) -> Self {
        self.memo = (capacity > 0).then(|| Mutex::new(BoundedMap::new(capacity)));
        self
    }

    /// The user vector of stored user `user`, remembered if `history` is what it was
    /// computed from, else computed and remembered.
    fn remembered_vector(
        &self,
        memo: &Mutex<BoundedMap<Remembered>>,
        user: &str,
        history: &[u32],
    ) -> Result<Arc<[f32]>, RecommendError> {
        let hash = history_hash(history);
        let memo = || memo.lock().expect("user vector memo lock");
        if let Some(r) = memo().get(user).filter(|r| r.history == hash) {
            return Ok(r.vector.clone());
        }
        let vector: Arc<[f32]> = self.user_vector(history)?.into();
        let remembered = Remembered {
            history: hash,
            vector: vector.clone(),
        };
        memo().insert(user, remembered);
        Ok(vector)
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
        let remembered;
        let computed;
        let user: &[f32] = match (query.user, &self.memo) {
            (Some(id), Some(memo)) => {
                remembered = self.remembered_vector(memo, id, query.history)?;
                &remembered
            }
            _ => {
                computed = self.user_vector(query.history)?;
                &computed
            }
        };
        let exclude = history_set(query.history);
        Ok(self
            .index
            .search(user, query.k, &exclude)
            .into_iter()
            .map(|n| Scored {
                track: n.id,
                score: n.score,
            })
            .collect())
    }
}
