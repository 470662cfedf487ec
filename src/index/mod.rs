//! Nearest-neighbour search over L2-normalised vectors by inner product (= cosine).
//!
//! Implementations of one interface: [`hnsw::HnswIndex`] (approximate, fast),
//! [`hnswrs::HnswRsIndex`] (the `hnsw_rs` crate's graph, its peer) and
//! [`exact::ExactIndex`] (a full scan, the reference both are measured against).
//! [`IndexKind::Auto`] picks between them by [`choose`].

mod choose;
pub mod distinct;
pub mod exact;
mod graph;
pub mod hnsw;
pub mod hnswrs;
pub mod live;
pub mod projection;
#[cfg(test)]
mod testdata;

use std::collections::HashSet;

pub use choose::{choose, sample_positions, strided_sample};
pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams};
pub use hnswrs::HnswRsIndex;
pub use live::{LiveError, LiveIndex};

/// A neighbour: the item's external id (a track index) and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub id: u32,
    pub score: f32,
}

/// Which implementation to use.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Approximate: a navigable small-world graph.
    #[default]
    Hnsw,
    /// A full scan: the true answer.
    Exact,
    /// Approximate: the `hnsw_rs` crate's graph at full width (a peer of ours, see
    /// `benches/knn.rs`).
    #[value(name = "hnsw-rs")]
    #[serde(rename = "hnsw-rs")]
    HnswRs,
    /// The exact scan where a graph of the same recall would not be clearly cheaper,
    /// HNSW otherwise (the rule: [`choose`]).
    Auto,
}

/// Top-k search by cosine similarity over a fixed set of items.
///
/// Contract: `query` is L2-normalised by the caller and has the index's dimension; the
/// result is sorted by descending score and holds at most `k` items, none of them in
/// `exclude`. An exact index returns the true top-k; an approximate one may miss some.
pub trait NeighbourIndex: Send + Sync {
    fn dim(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn search(&self, query: &[f32], k: usize, exclude: &HashSet<u32>) -> Vec<Neighbour>;

    /// [`NeighbourIndex::search`] for many queries: `queries` holds one query of
    /// [`NeighbourIndex::dim`] values per entry of `excludes`, row-major. The default
    /// searches them in parallel; the exact scan scores them as blocked matrix products.
    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        excludes: &[&HashSet<u32>],
    ) -> Vec<Vec<Neighbour>> {
        use rayon::prelude::*;
        assert_eq!(
            queries.len(),
            excludes.len() * self.dim(),
            "one query per exclusion set"
        );
        queries
            .par_chunks_exact(self.dim().max(1))
            .zip(excludes)
            .map(|(q, ex)| self.search(q, k, ex))
            .collect()
    }
}

/// The kind an index of `kind` over `items` rows of `dim` values is built as: `Auto`
/// resolved by [`choose`] (reading `sample`, [`sample_positions`]' normalised rows, only
/// if it must) and the choice logged with its reason; other kinds as they are.
pub fn resolve(
    kind: IndexKind,
    items: usize,
    dim: usize,
    params: HnswParams,
    sample: impl FnOnce() -> Vec<f32>,
) -> IndexKind {
    if kind != IndexKind::Auto {
        return kind;
    }
    let (kind, why) = choose(items, dim, params, sample);
    tracing::info!(index = ?kind, items, dim, reason = %why, "index kind chosen");
    kind
}

/// Builds an index of `kind` over the given items from their normalised `rows`
/// (row-major, in `ids` order; moved into the index, not copied). With a `cache` folder
/// an HNSW graph is reloaded from there when it was built for the same rows and
/// parameters, and saved there otherwise. `Auto` is resolved by [`choose`] and the
/// choice logged.
pub fn build(
    kind: IndexKind,
    dim: usize,
    ids: &[u32],
    rows: Vec<f32>,
    params: HnswParams,
    cache: Option<&std::path::Path>,
) -> Box<dyn NeighbourIndex> {
    assert_eq!(rows.len(), ids.len() * dim, "one row per id");
    let kind = match kind {
        // A backend with no rows yet (one filled by uploads) has nothing to link.
        _ if ids.is_empty() => IndexKind::Exact,
        kind => resolve(kind, ids.len(), dim, params, || strided_sample(&rows, dim)),
    };
    match (kind, cache) {
        (IndexKind::Exact | IndexKind::Auto, _) => {
            Box::new(ExactIndex::new(dim, ids.to_vec(), rows))
        }
        (IndexKind::Hnsw, None) => Box::new(HnswIndex::build(dim, ids, rows, params)),
        (IndexKind::Hnsw, Some(dir)) => Box::new(HnswIndex::cached(dir, dim, ids, rows, params)),
        (IndexKind::HnswRs, None) => Box::new(HnswRsIndex::build(dim, ids, &rows, params)),
        (IndexKind::HnswRs, Some(dir)) => {
            Box::new(HnswRsIndex::cached(dir, dim, ids, &rows, params))
        }
    }
}
