//! One graph node per distinct vector, carrying every track that has it.
//!
//! Real catalogues repeat vectors: the same recording on an album and a compilation,
//! metadata or genre-flag embeddings shared by many items. A proximity graph over
//! repeated points breaks: the neighbour-selection heuristic keeps one copy and prunes
//! the rest (each copy is "closer to a kept neighbour than to the base"), so copies link
//! only among themselves and whole regions become unreachable. Measured on such a
//! catalogue, the k-th returned score fell 0.35 below the exact one. Grouping identical
//! rows *before* any graph sees them removes the problem for every graph kind: the graph
//! holds distinct points; a search expands each found node into its tracks, and a node
//! is excluded only when all of its tracks are.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};

use super::Neighbour;

/// Tracks grouped by bit-identical rows; node `i` is the `i`-th distinct row in order of
/// first appearance, so the same rows always give the same nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    /// Node `i` carries `tracks[starts[i]..starts[i + 1]]`, ascending.
    starts: Vec<u32>,
    tracks: Vec<u32>,
}

impl Groups {
    /// Groups `ids` (one row of `dim` values each in `rows`) and returns the distinct rows
    /// in node order alongside: `rows` itself, compacted in place where rows repeat, so
    /// grouping never holds a second copy of a catalogue (229 MB at 1024-d and 56k rows).
    pub fn new(dim: usize, ids: &[u32], rows: Vec<f32>) -> (Self, Vec<f32>) {
        let (groups, firsts) = Self::of(dim, ids, &rows);
        (groups, distinct_rows(rows, &firsts, dim))
    }

    /// Groups `ids` (one row of `dim` values each in `rows`) and returns, per node, the
    /// position of the first row that has its vector (increasing).
    pub fn of(dim: usize, ids: &[u32], rows: &[f32]) -> (Self, Vec<usize>) {
        assert_eq!(ids.len() * dim, rows.len(), "one row per id");
        // Keyed by a hash of the row's bits; equal hashes are compared in full against
        // the node's first row.
        let mut by_hash: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        let mut members: Vec<Vec<u32>> = Vec::new();
        let mut firsts: Vec<usize> = Vec::new();
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        let row_at = |i: usize| &rows[i * dim..(i + 1) * dim];
        for (i, &id) in ids.iter().enumerate() {
            let row = row_at(i);
            let mut h = FxHasher::default();
            row.iter().for_each(|v| v.to_bits().hash(&mut h));
            let nodes = by_hash.entry(h.finish()).or_default();
            let found = nodes
                .iter()
                .copied()
                .find(|&n| same(row, row_at(firsts[n as usize])));
            let node = found.unwrap_or_else(|| {
                let n = members.len() as u32;
                nodes.push(n);
                members.push(Vec::new());
                firsts.push(i);
                n
            });
            members[node as usize].push(id);
        }
        let mut starts = Vec::with_capacity(members.len() + 1);
        let mut tracks = Vec::with_capacity(ids.len());
        starts.push(0);
        for mut m in members {
            m.sort_unstable();
            tracks.extend(m);
            starts.push(tracks.len() as u32);
        }
        (Self { starts, tracks }, firsts)
    }

    /// Number of nodes (distinct rows).
    pub fn nodes(&self) -> usize {
        self.starts.len() - 1
    }

    /// Number of tracks.
    pub fn tracks(&self) -> usize {
        self.tracks.len()
    }

    pub fn tracks_of(&self, node: u32) -> &[u32] {
        let n = node as usize;
        &self.tracks[self.starts[n] as usize..self.starts[n + 1] as usize]
    }

    /// Whether a search may return `node`: some track of it is not excluded.
    pub fn allowed(&self, node: u32, exclude: &HashSet<u32>) -> bool {
        exclude.is_empty() || self.tracks_of(node).iter().any(|t| !exclude.contains(t))
    }

    /// The first `k` tracks of `found` (nodes with their scores, best first), each node
    /// expanded into its tracks not in `exclude`, ascending by id within a node (the exact
    /// scan's tie order).
    pub fn expand(
        &self,
        found: impl IntoIterator<Item = (u32, f32)>,
        k: usize,
        exclude: &HashSet<u32>,
    ) -> Vec<Neighbour> {
        let mut out = Vec::with_capacity(k);
        for (node, score) in found {
            for &id in self.tracks_of(node) {
                if out.len() == k {
                    return out;
                }
                if !exclude.contains(&id) {
                    out.push(Neighbour { id, score });
                }
            }
        }
        out
    }
}

/// Each node's row (the row at its position in `firsts`, increasing), moved forward in
/// place: `rows` becomes the distinct rows in node order without a second allocation.
pub fn distinct_rows(mut rows: Vec<f32>, firsts: &[usize], dim: usize) -> Vec<f32> {
    for (node, &first) in firsts.iter().enumerate() {
        if first != node {
            rows.copy_within(first * dim..(first + 1) * dim, node * dim);
        }
    }
    rows.truncate(firsts.len() * dim);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows that are bit-identical share a node (tracks ascending within it); -0.0 and 0.0
    /// differ in bits and stay apart; expansion skips excluded tracks and a node is
    /// allowed while any of its tracks is.
    #[test]
    fn groups_identical_rows_and_expands_them_per_track() {
        let rows = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, -0.0, 1.0, 1.0, 0.0];
        let ids = [40, 7, 3, 9, 1];
        let (groups, distinct) = Groups::new(2, &ids, rows.to_vec());
        assert_eq!(groups.nodes(), 3);
        assert_eq!(groups.tracks(), 5);
        assert_eq!(distinct, [1.0, 0.0, 0.0, 1.0, -0.0, 1.0]);
        assert_eq!(groups.tracks_of(0), [1, 3, 40]);
        assert_eq!(groups.tracks_of(1), [7]);
        assert_eq!(groups.tracks_of(2), [9]);
        let exclude: HashSet<u32> = [3, 7].into();
        assert!(groups.allowed(0, &exclude));
        assert!(!groups.allowed(1, &exclude));
        let got = groups.expand([(0, 0.9), (2, 0.5)], 3, &exclude);
        let ids: Vec<u32> = got.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 40, 9]);
        assert_eq!(got[2].score, 0.5);
        assert_eq!(groups.expand([(0, 0.9)], 1, &HashSet::new())[0].id, 1);
    }
}
