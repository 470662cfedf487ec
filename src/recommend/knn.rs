//! The KNN user-mean baseline (the paper's content-only model): the user vector is the
//! mean of the user's tracks' embeddings; user and items are L2-normalised and ranked by
//! cosine through a nearest-neighbour index.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHasher;

use super::{Query, RecommendError, Recommender, Scored, history_set};
use crate::bounded::BoundedMap;
use crate::embeddings::{Embeddings, l2_normalize};
use crate::index::{self, HnswParams, IndexKind, LiveIndex, Neighbour, NeighbourIndex};

pub struct KnnRecommender {
    embeddings: Arc<Embeddings>,
    /// The index built at load plus the tracks added since.
    index: LiveIndex,
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
    /// Indexes those `items` (the recommendable tracks) that have a row in
    /// `embeddings`; `cache` is where HNSW graphs are saved and reloaded (see
    /// [`index::build`]).
    pub fn new(
        embeddings: Arc<Embeddings>,
        items: &[u32],
        kind: IndexKind,
        params: HnswParams,
        cache: Option<&std::path::Path>,
    ) -> Self {
        let items: Vec<u32> = items
            .iter()
            .copied()
            .filter(|&t| embeddings.has_row(t))
            .collect();
        let rows = embeddings.normalized_rows(&items);
        let built = index::build(kind, embeddings.dim, &items, rows, params, cache);
        let index = LiveIndex::new(built, &items);
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
        &self.index
    }

    /// The normalised mean of the history's embeddings (of its tracks that have one in
    /// this backend).
    pub fn user_vector(&self, history: &[u32]) -> Result<Vec<f32>, RecommendError> {
        let n = self.embeddings.tracks() as u32;
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

    fn admit(&self, track: u32) -> Result<bool, RecommendError> {
        let Some(row) = self.embeddings.try_normalized_row(track) else {
            return Ok(false);
        };
        if !self.index.contains(track) {
            self.index
                .insert(track, &row)
                .map_err(|e| RecommendError::Model(e.to_string()))?;
        }
        Ok(true)
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
        Ok(scored(self.index.search(user, query.k, &exclude)))
    }

    /// The user vectors in parallel, then one [`NeighbourIndex::search_batch`] per
    /// [`BATCH_QUERIES`] (blocked matrix products on the exact scan), so an evaluation's
    /// thousands of users cost what a BLAS-backed flat index costs, in bounded memory.
    fn recommend_batch(&self, queries: &[Query]) -> Vec<Result<Vec<Scored>, RecommendError>> {
        use rayon::prelude::*;
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(BATCH_QUERIES) {
            let vectors: Vec<Result<Vec<f32>, RecommendError>> = chunk
                .par_iter()
                .map(|q| self.user_vector(q.history))
                .collect();
            let ok: Vec<&Query> = chunk
                .iter()
                .zip(&vectors)
                .filter(|(_, v)| v.is_ok())
                .map(|(q, _)| q)
                .collect();
            let flat: Vec<f32> = vectors.iter().flatten().flatten().copied().collect();
            let sets: Vec<_> = ok.par_iter().map(|q| history_set(q.history)).collect();
            let excludes: Vec<_> = sets.iter().collect();
            // One k for the batch (the largest asked), each list cut to its own k.
            let k = ok.iter().map(|q| q.k).max().unwrap_or(0);
            let mut found = self.index.search_batch(&flat, k, &excludes).into_iter();
            for (q, v) in chunk.iter().zip(vectors) {
                out.push(v.map(|_| {
                    let mut list = found.next().expect("one answer per query");
                    list.truncate(q.k);
                    scored(list)
                }));
            }
        }
        out
    }
}

/// Queries per batched index search: 4,096 user vectors of 1,024-d are 16 MB.
const BATCH_QUERIES: usize = 4096;

fn scored(neighbours: Vec<Neighbour>) -> Vec<Scored> {
    neighbours
        .into_iter()
        .map(|n| Scored {
            track: n.id,
            score: n.score,
        })
        .collect()
}
