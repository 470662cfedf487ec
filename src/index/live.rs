//! A catalogue that changes while it is served: tracks inserted and withdrawn without a
//! rebuild, above any index.
//!
//! The built index (graph or scan) stays immutable and shared; next to it sit the
//! tracks inserted since the build, scanned exactly (a handful to a few thousand: far
//! cheaper than a graph insert under a write lock on every request path), and the
//! tombstones of withdrawn tracks, which the built index is asked past (`k` plus the
//! tombstones) and which are dropped from its answer. A rebuild compacts both: the next
//! build reads the catalogue as it is, and the saved graph's fingerprint (of ids and
//! rows) changes with it, so a stale graph is never reloaded.

use std::collections::HashSet;
use std::sync::RwLock;

use super::{Neighbour, NeighbourIndex};
use crate::simd::dot;

/// Why a change to the live catalogue was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LiveError {
    #[error("a row of {got} values for an index of dimension {want}")]
    Dimension { got: usize, want: usize },
    #[error("the row is not L2-normalised (norm {0})")]
    NotNormalised(f32),
}

/// A built index plus the changes made since it was built.
pub struct LiveIndex {
    built: Box<dyn NeighbourIndex>,
    /// The ids the built index holds.
    built_ids: HashSet<u32>,
    changes: RwLock<Changes>,
}

#[derive(Default)]
struct Changes {
    /// Tracks of the built index that must not be returned (withdrawn or replaced); only
    /// ids it holds, so a search asks it for exactly `k` + this many.
    tombstones: HashSet<u32>,
    /// Tracks inserted since the build, with their rows (row-major).
    ids: Vec<u32>,
    rows: Vec<f32>,
}

impl LiveIndex {
    /// `built` holds exactly the tracks `ids`.
    pub fn new(built: Box<dyn NeighbourIndex>, ids: &[u32]) -> Self {
        assert_eq!(built.len(), ids.len(), "the built index's ids");
        Self {
            built,
            built_ids: ids.iter().copied().collect(),
            changes: RwLock::default(),
        }
    }

    /// Adds `id` with its L2-normalised `row`; a track already present is replaced (its
    /// old row is never returned again). Visible to the next search.
    pub fn insert(&self, id: u32, row: &[f32]) -> Result<(), LiveError> {
        let dim = self.built.dim();
        if row.len() != dim {
            return Err(LiveError::Dimension {
                got: row.len(),
                want: dim,
            });
        }
        let norm = dot(row, row).sqrt();
        if (norm - 1.0).abs() > 1e-3 {
            return Err(LiveError::NotNormalised(norm));
        }
        let mut c = self.changes.write().expect("live index lock");
        c.remove_inserted(id, dim);
        if self.built_ids.contains(&id) {
            c.tombstones.insert(id);
        }
        c.ids.push(id);
        c.rows.extend_from_slice(row);
        Ok(())
    }

    /// Withdraws `id`: no search returns it again until it is inserted anew.
    pub fn withdraw(&self, id: u32) {
        let mut c = self.changes.write().expect("live index lock");
        c.remove_inserted(id, self.built.dim());
        if self.built_ids.contains(&id) {
            c.tombstones.insert(id);
        }
    }

    /// Whether `id` is searchable now.
    pub fn contains(&self, id: u32) -> bool {
        let c = self.changes.read().expect("live index lock");
        (self.built_ids.contains(&id) && !c.tombstones.contains(&id)) || c.ids.contains(&id)
    }

    /// Tracks changed since the build (inserted, withdrawn or replaced): when this grows
    /// large, a rebuild (which compacts them) pays for itself.
    pub fn pending(&self) -> usize {
        let c = self.changes.read().expect("live index lock");
        c.tombstones.len() + c.ids.len()
    }

    /// Merges the built index's answer (asked for `k` + tombstones) with the inserted
    /// tracks' exact scores, best first, ties by id.
    fn merge(
        &self,
        c: &Changes,
        query: &[f32],
        built: Vec<Neighbour>,
        k: usize,
        exclude: &HashSet<u32>,
    ) -> Vec<Neighbour> {
        let mut all: Vec<Neighbour> = built
            .into_iter()
            .filter(|n| !c.tombstones.contains(&n.id))
            .collect();
        let dim = self.built.dim();
        all.extend(
            c.ids
                .iter()
                .zip(c.rows.chunks_exact(dim))
                .filter(|(id, _)| !exclude.contains(id))
                .map(|(&id, row)| Neighbour {
                    id,
                    score: dot(row, query),
                }),
        );
        super::exact::top_k(&mut all, k);
        all
    }
}

impl Changes {
    fn remove_inserted(&mut self, id: u32, dim: usize) {
        if let Some(i) = self.ids.iter().position(|&x| x == id) {
            self.ids.swap_remove(i);
            // The same swap on the rows: the last row moves into slot i.
            let last = self.rows.len() - dim;
            self.rows.copy_within(last.., i * dim);
            self.rows.truncate(last);
        }
    }
}

impl NeighbourIndex for LiveIndex {
    fn dim(&self) -> usize {
        self.built.dim()
    }

    /// Tracks searchable now.
    fn len(&self) -> usize {
        let c = self.changes.read().expect("live index lock");
        self.built.len() - c.tombstones.len() + c.ids.len()
    }

    fn search(&self, query: &[f32], k: usize, exclude: &HashSet<u32>) -> Vec<Neighbour> {
        let c = self.changes.read().expect("live index lock");
        if c.tombstones.is_empty() && c.ids.is_empty() {
            return self.built.search(query, k, exclude);
        }
        let built = self.built.search(query, k + c.tombstones.len(), exclude);
        self.merge(&c, query, built, k, exclude)
    }

    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        excludes: &[&HashSet<u32>],
    ) -> Vec<Vec<Neighbour>> {
        let c = self.changes.read().expect("live index lock");
        if c.tombstones.is_empty() && c.ids.is_empty() {
            return self.built.search_batch(queries, k, excludes);
        }
        let built = self
            .built
            .search_batch(queries, k + c.tombstones.len(), excludes);
        built
            .into_iter()
            .zip(queries.chunks_exact(self.dim()).zip(excludes))
            .map(|(b, (q, ex))| self.merge(&c, q, b, k, ex))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embeddings::l2_normalize;
    use crate::index::{ExactIndex, HnswIndex, HnswParams};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    fn unit(rng: &mut StdRng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.sample(StandardNormal)).collect();
        l2_normalize(&mut v);
        v
    }

    /// Over a graph and over the scan: an inserted track is found at once (first, for a
    /// query equal to its row), a replaced one answers with its new row only, a withdrawn
    /// one never comes back, single and batched searches agree with an exact scan of the
    /// catalogue as it now is, and bad rows are refused with nothing changed.
    #[test]
    fn inserts_and_withdrawals_show_in_the_next_search() {
        let (n, dim, k) = (2_000, 16, 20);
        let mut rng = StdRng::seed_from_u64(5);
        let ids: Vec<u32> = (0..n as u32).map(|i| i * 2).collect();
        let mut rows: Vec<f32> = Vec::new();
        (0..n).for_each(|_| rows.extend(unit(&mut rng, dim)));
        let params = HnswParams {
            m: 12,
            ef_construction: 100,
            ef_search: 200,
            search_dim: 0,
        };
        let built: [Box<dyn NeighbourIndex>; 2] = [
            Box::new(ExactIndex::new(dim, ids.clone(), rows.clone())),
            Box::new(HnswIndex::build(dim, &ids, rows.clone(), params)),
        ];
        for built in built {
            let live = LiveIndex::new(built, &ids);
            let fresh = unit(&mut rng, dim);
            live.insert(1, &fresh).unwrap();
            let got = live.search(&fresh, k, &HashSet::new());
            assert_eq!(got[0].id, 1);
            assert!((got[0].score - 1.0).abs() < 1e-5);
            // Replace track 0 (built) with the fresh row too, withdraw track 2.
            live.insert(0, &fresh).unwrap();
            live.withdraw(2);
            let row2 = rows[dim..2 * dim].to_vec();
            assert!(
                live.search(&row2, k, &HashSet::new())
                    .iter()
                    .all(|n| n.id != 2)
            );
            let row0 = rows[..dim].to_vec();
            let got = live.search(&row0, n, &HashSet::new());
            let zero = got
                .iter()
                .find(|n| n.id == 0)
                .expect("track 0 still served");
            assert!(
                (zero.score - dot(&fresh, &row0)).abs() < 1e-5,
                "with its new row"
            );
            assert_eq!(live.len(), n);
            // Against an exact scan of the catalogue as it is now.
            let mut now_ids = vec![0, 1];
            let mut now_rows = [fresh.clone(), fresh.clone()].concat();
            for (i, &id) in ids.iter().enumerate().skip(1) {
                if id != 2 {
                    now_ids.push(id);
                    now_rows.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
                }
            }
            let truth = ExactIndex::new(dim, now_ids, now_rows);
            let queries: Vec<Vec<f32>> = (0..8).map(|_| unit(&mut rng, dim)).collect();
            let exclude: HashSet<u32> = [0, 4, 6].into();
            let flat = queries.concat();
            let batch = live.search_batch(&flat, k, &vec![&exclude; queries.len()]);
            for (q, b) in queries.iter().zip(&batch) {
                let want = truth.search(q, k, &exclude);
                let got = live.search(q, k, &exclude);
                assert_eq!(got.len(), k);
                assert!((got[k - 1].score - want[k - 1].score).abs() < 1e-5);
                for (g, b) in got.iter().zip(b) {
                    assert!((g.score - b.score).abs() < 1e-5, "batched as single");
                }
            }
            // Withdrawing an inserted track removes it; bad rows change nothing.
            live.withdraw(1);
            assert!(
                live.search(&fresh, k, &HashSet::new())
                    .iter()
                    .all(|n| n.id != 1)
            );
            let before = live.pending();
            assert_eq!(
                live.insert(9, &fresh[1..]),
                Err(LiveError::Dimension {
                    got: dim - 1,
                    want: dim
                })
            );
            let doubled: Vec<f32> = fresh.iter().map(|v| v * 2.0).collect();
            assert!(matches!(
                live.insert(9, &doubled),
                Err(LiveError::NotNormalised(_))
            ));
            assert_eq!(live.pending(), before);
        }
    }
}
