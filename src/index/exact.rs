//! The exact reference: score every item, keep the best k.
//!
//! One query is a scan of dot products. Many queries (an evaluation's thousands of
//! users) are scored the way a BLAS-backed flat index (faiss's `IndexFlatIP`) does it:
//! a block of users times all items as one matrix product (candle's CPU matmul, the
//! `gemm` crate, multi-threaded), then a top-k pass per user over the block's scores.
//! Only one block of scores exists at a time, so memory is the item matrix plus
//! [`BLOCK_USERS`] × items floats, whatever the number of users.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};

use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

use super::{Neighbour, NeighbourIndex};
use crate::simd::dot;

/// Users scored per matrix product: 256 × 56k items is 57 MB of scores, and large enough
/// that the product runs at the matmul's full rate (measured in `benches/knn.rs`).
pub const BLOCK_USERS: usize = 256;

/// A full scan over normalised rows.
pub struct ExactIndex {
    dim: usize,
    ids: Vec<u32>,
    /// `[ids.len(), dim]`, row-major, on the CPU: read as a slice by single queries and
    /// multiplied as a matrix by batches.
    rows: Tensor,
}

impl ExactIndex {
    /// `rows` holds one L2-normalised row of `dim` values per id (moved, not copied).
    pub fn new(dim: usize, ids: Vec<u32>, rows: Vec<f32>) -> Self {
        assert_eq!(ids.len() * dim, rows.len(), "one row per id");
        let rows = Tensor::from_vec(rows, (ids.len(), dim), &Device::Cpu).expect("shape checked");
        Self { dim, ids, rows }
    }

    /// Runs `f` on the row-major item matrix.
    fn with_rows<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        with_cpu_slice(&self.rows, f)
    }

    /// Scores one block of queries (row-major, `dim` each) against every item.
    fn block(&self, queries: &[f32], k: usize, excludes: &[&HashSet<u32>]) -> Vec<Vec<Neighbour>> {
        let n = queries.len() / self.dim;
        let q = Tensor::from_slice(queries, (n, self.dim), &Device::Cpu).expect("shape checked");
        let scores = self
            .rows
            .t()
            .and_then(|items| q.matmul(&items))
            .expect("cpu matmul of checked shapes");
        with_cpu_slice(&scores, |scores| {
            scores
                .par_chunks_exact(self.ids.len())
                .zip(excludes)
                .map(|(row, exclude)| top_k_of(row.iter().copied().zip(&self.ids), k, exclude))
                .collect()
        })
    }
}

/// Runs `f` on the contiguous f32 values of a CPU tensor (no copy).
fn with_cpu_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> R {
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) =
        (&*storage, layout.contiguous_offsets())
    else {
        unreachable!("the index's tensors are contiguous f32 on the CPU");
    };
    f(&values[start..end])
}

impl NeighbourIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn search(&self, query: &[f32], k: usize, exclude: &HashSet<u32>) -> Vec<Neighbour> {
        self.with_rows(|rows| {
            let scores = rows.chunks_exact(self.dim).map(|row| dot(row, query));
            top_k_of(scores.zip(&self.ids), k, exclude)
        })
    }

    /// Blocks of [`BLOCK_USERS`] queries, each one matrix product against all items.
    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        excludes: &[&HashSet<u32>],
    ) -> Vec<Vec<Neighbour>> {
        assert_eq!(
            queries.len(),
            excludes.len() * self.dim,
            "one query per exclusion set"
        );
        if self.ids.is_empty() {
            return vec![Vec::new(); excludes.len()];
        }
        queries
            .chunks(BLOCK_USERS * self.dim)
            .zip(excludes.chunks(BLOCK_USERS))
            .flat_map(|(q, ex)| self.block(q, k, ex))
            .collect()
    }
}

/// A scored item, ordered best first: higher score, then lower id (the deterministic tie
/// order every index uses).
#[derive(Clone, Copy, PartialEq)]
struct Best(Neighbour);

impl Eq for Best {}

impl Ord for Best {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .score
            .total_cmp(&other.0.score)
            .then(other.0.id.cmp(&self.0.id))
    }
}

impl PartialOrd for Best {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` best of `(score, id)` pairs whose id is not in `exclude`, best first, in one
/// pass holding only `k` of them. The exclusion is looked up only for an item that would
/// enter the current top k: a history's tracks do (they are near the user's mean), the
/// tens of thousands of others are rejected by one comparison.
fn top_k_of<'a>(
    scored: impl Iterator<Item = (f32, &'a u32)>,
    k: usize,
    exclude: &HashSet<u32>,
) -> Vec<Neighbour> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Best>> = BinaryHeap::with_capacity(k + 1);
    for (score, &id) in scored {
        let candidate = Best(Neighbour { id, score });
        let enters = heap.len() < k || heap.peek().is_some_and(|w| candidate > w.0);
        if enters && !exclude.contains(&id) {
            heap.push(Reverse(candidate));
            if heap.len() > k {
                heap.pop();
            }
        }
    }
    let mut out: Vec<Neighbour> = heap.into_iter().map(|r| r.0.0).collect();
    sort_best_first(&mut out);
    out
}

fn sort_best_first(items: &mut [Neighbour]) {
    items.sort_unstable_by_key(|n| Reverse(Best(*n)));
}

/// Keeps the `k` best by descending score (ties by ascending id, for determinism), sorted.
pub(crate) fn top_k(items: &mut Vec<Neighbour>, k: usize) {
    let order = |a: &Neighbour, b: &Neighbour| Best(*b).cmp(&Best(*a));
    if items.len() > k && k > 0 {
        items.select_nth_unstable_by(k - 1, order);
    }
    items.truncate(k);
    sort_best_first(items);
}
