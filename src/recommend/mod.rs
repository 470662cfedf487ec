//! The one recommendation interface: history in, ranked tracks out.
//!
//! The HTTP API and the offline evaluator both call [`Recommender`], so what is evaluated
//! is exactly what is served. KNN, the Shallow Net and BERT4Rec implement it.

pub mod bert4rec;
pub mod catalogue;
pub mod knn;
pub mod loader;
pub mod readiness;
pub mod registry;
pub mod shallow;

use std::collections::HashSet;

/// A track with its score under some model; higher is better.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scored {
    pub track: u32,
    pub score: f32,
}

/// What a recommendation is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The id of the user this history belongs to, when the model may know them (a
    /// trained Shallow Net has a learned vector per train user); `None` for anonymous
    /// sessions and users the caller does not want looked up.
    pub user: Option<&'a str>,
    /// Listened tracks, oldest first. Sequence models read the order; others the set.
    pub history: &'a [u32],
    /// How many tracks to return at most.
    pub k: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("the history is empty: this model needs at least one listened track")]
    EmptyHistory,
    #[error("track index {0} is outside the catalog")]
    UnknownTrack(u32),
    #[error("model failure: {0}")]
    Model(String),
}

/// A model that ranks tracks for a listening history.
///
/// Contract: the result is sorted by descending score, holds at most `query.k` distinct
/// tracks, never a track of `query.history`, and only tracks of the recommender's item
/// universe (for evaluation, the tracks seen in train). Implementations are immutable
/// once built and shared across threads.
pub trait Recommender: Send + Sync {
    /// The model's name as used on the command line and in the API (`knn`, `shallow`, …).
    fn model(&self) -> &str;

    /// The backend whose embeddings the model uses.
    fn backend(&self) -> &str;

    fn recommend(&self, query: &Query) -> Result<Vec<Scored>, RecommendError>;

    /// Whether one query costs well under a millisecond of CPU, so that a server may run
    /// it on its async worker rather than pay a hand-off to a blocking thread (which, for
    /// KNN, cost more than the search). Neural models say no.
    fn is_light(&self) -> bool {
        false
    }

    /// Takes `track`, just added to the catalogue with its rows, into later answers, if
    /// this model can know a track by its content alone (KNN, the Shallow Net's content
    /// tower, BERT4Rec's frozen content table; not a learned item table). Idempotent:
    /// a track already served is left as it is. Returns whether the track is served.
    fn admit(&self, track: u32) -> Result<bool, RecommendError> {
        let _ = track;
        Ok(false)
    }

    /// Many queries at once. The default runs them in parallel; models with a cheaper
    /// batched path (one matrix product for many users) override it.
    fn recommend_batch(&self, queries: &[Query]) -> Vec<Result<Vec<Scored>, RecommendError>> {
        use rayon::prelude::*;
        queries.par_iter().map(|q| self.recommend(q)).collect()
    }
}

/// The tracks of a history as a set, for exclusion.
pub fn history_set(history: &[u32]) -> HashSet<u32> {
    history.iter().copied().collect()
}
