//! The exact reference: score every item, keep the best k.

use std::collections::HashSet;

use super::{Neighbour, NeighbourIndex};
use crate::simd::dot;

/// A full scan over normalised rows.
pub struct ExactIndex {
    dim: usize,
    ids: Vec<u32>,
    rows: Vec<f32>,
}

impl ExactIndex {
    /// `rows` holds one L2-normalised row of `dim` values per id.
    pub fn new(dim: usize, ids: Vec<u32>, rows: Vec<f32>) -> Self {
        assert_eq!(ids.len() * dim, rows.len(), "one row per id");
        Self { dim, ids, rows }
    }
}

impl NeighbourIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn search(&self, query: &[f32], k: usize, exclude: &HashSet<u32>) -> Vec<Neighbour> {
        let mut scored: Vec<Neighbour> = self
            .rows
            .chunks_exact(self.dim)
            .zip(&self.ids)
            .map(|(row, &id)| Neighbour {
                id,
                score: dot(row, query),
            })
            .collect();
        // At most |exclude| of the best k + |exclude| are excluded, so filtering after the
        // selection gives the same answer with k + |exclude| set lookups instead of one per
        // item (which cost as much as the dot products at 200-d).
        top_k(&mut scored, k.saturating_add(exclude.len()));
        scored.retain(|n| !exclude.contains(&n.id));
        scored.truncate(k);
        scored
    }
}

/// Keeps the `k` best by descending score (ties by ascending id, for determinism), sorted.
pub(crate) fn top_k(items: &mut Vec<Neighbour>, k: usize) {
    let order = |a: &Neighbour, b: &Neighbour| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id));
    if items.len() > k && k > 0 {
        items.select_nth_unstable_by(k - 1, order);
    }
    items.truncate(k);
    items.sort_unstable_by(order);
}
