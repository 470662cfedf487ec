//! The KNN user-mean baseline (the paper's content-only model): the user vector is the
//! mean of the user's tracks' embeddings; user and items are L2-normalised and ranked by
//! cosine through a nearest-neighbour index.

use std::sync::Arc;

use super::{Query, RecommendError, Recommender, Scored, history_set};
use crate::embeddings::{Embeddings, l2_normalize};
use crate::index::{self, HnswParams, IndexKind, NeighbourIndex};

pub struct KnnRecommender {
    embeddings: Arc<Embeddings>,
    index: Box<dyn NeighbourIndex>,
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
        Self { embeddings, index }
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
        let user = self.user_vector(query.history)?;
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
