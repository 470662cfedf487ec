//! The `hnsw_rs` crate's graph behind [`NeighbourIndex`] (`--index hnsw-rs`), kept beside
//! our own ([`super::hnsw`]) so that `benches/knn.rs` measures both in one run and the
//! default follows the figures rather than history.
//!
//! It gets what every graph here gets: one node per distinct row ([`super::distinct`]),
//! expanded into its tracks at search time, and the history excluded through the crate's
//! own filtered search (a node is skipped only when all of its tracks are excluded). It
//! searches at full width: the reduced space of our graph is ours, not the crate's. Its
//! distance is `1 − cosine` on our SIMD inner product (the crate's `DistDot` asserts
//! `dot <= 1`, which rounding breaks for a query equal to a row).
//!
//! Saved with the crate's own dump (`.hnsw.graph`, `.hnsw.data`) and a checksum of both
//! files written last: the crate's reader asserts rather than failing on a damaged file,
//! so a dump is read only when its checksum matches. Builds are parallel (the crate's
//! insertion), hence not bit-reproducible, unlike our graph's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{AnnT, Hnsw};

use super::distinct::Groups;
use super::hnsw::fingerprint;
use super::{HnswParams, Neighbour, NeighbourIndex};
use crate::io::fnv::Fnv1a;
use crate::simd::dot;

/// `1 − cosine` of unit vectors, never negative (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Most layers of the crate's graph (its own limit is 16).
const MAX_LAYERS: usize = 16;

pub struct HnswRsIndex {
    dim: usize,
    ef_search: AtomicUsize,
    /// Over the distinct rows; the crate's data id of a point is its node.
    graph: Hnsw<'static, f32, CosineDistance>,
    groups: Groups,
}

impl HnswRsIndex {
    /// Builds the crate's graph over the distinct rows of one L2-normalised row of `dim`
    /// values per id (`m` links per node on the upper layers, the crate doubles them on
    /// the bottom one, as ours does).
    pub fn build(dim: usize, ids: &[u32], rows: &[f32], params: HnswParams) -> Self {
        let (groups, firsts) = Groups::of(dim, ids, rows);
        let graph = Hnsw::new(
            params.m,
            groups.nodes().max(1),
            MAX_LAYERS,
            params.ef_construction,
            CosineDistance,
        );
        let points: Vec<(&[f32], usize)> = (firsts.iter())
            .map(|&f| &rows[f * dim..(f + 1) * dim])
            .zip(0..)
            .collect();
        graph.parallel_insert_slice(&points);
        Self::assemble(dim, params, graph, groups)
    }

    fn assemble(
        dim: usize,
        params: HnswParams,
        mut graph: Hnsw<'static, f32, CosineDistance>,
        groups: Groups,
    ) -> Self {
        graph.set_searching_mode(true);
        Self {
            dim,
            ef_search: AtomicUsize::new(params.ef_search),
            graph,
            groups,
        }
    }

    /// Reloads the dump saved for exactly these rows and parameters under `dir`, or builds
    /// and dumps there.
    pub fn cached(dir: &Path, dim: usize, ids: &[u32], rows: &[f32], params: HnswParams) -> Self {
        let name = fingerprint("hnswrs", dim, ids, rows, params);
        match Self::load(dir, &name, dim, ids, rows, params) {
            Ok(Some(index)) => return index,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), %name, error = %e, "could not reload the hnsw_rs dump; rebuilding")
            }
        }
        let index = Self::build(dim, ids, rows, params);
        if let Err(e) = index.save(dir, &name) {
            tracing::warn!(dir = %dir.display(), %name, error = %e, "could not save the hnsw_rs dump");
            let _ = std::fs::remove_file(checksum_file(dir, &name));
        }
        index
    }

    /// Dumps the graph, then writes the checksum of its two files (through a temporary
    /// file): a dump without its checksum is never read.
    pub fn save(&self, dir: &Path, name: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let sum = checksum_file(dir, name);
        let _ = std::fs::remove_file(&sum);
        let dumped = self.graph.file_dump(dir, name)?;
        anyhow::ensure!(
            dumped == name,
            "hnsw_rs dumped under another name: {dumped}"
        );
        let tmp = sum.with_extension("sum.tmp");
        std::fs::write(&tmp, checksum(dir, name)?)?;
        std::fs::rename(&tmp, &sum)?;
        Ok(())
    }

    /// The dump named `name` under `dir` for these rows, `None` when there is none.
    pub fn load(
        dir: &Path,
        name: &str,
        dim: usize,
        ids: &[u32],
        rows: &[f32],
        params: HnswParams,
    ) -> anyhow::Result<Option<Self>> {
        let Ok(expected) = std::fs::read_to_string(checksum_file(dir, name)) else {
            return Ok(None);
        };
        anyhow::ensure!(
            checksum(dir, name)? == expected,
            "the dump's files do not match their checksum"
        );
        // The crate's reloaded graph borrows its reader for the graph's whole life. Its
        // points are copied out of the file (no memory map), so the reader holds only a
        // path and a few counters: leaking it (a few hundred bytes per reload, once per
        // start-up) gives the graph the `'static` life a served index needs.
        let reader: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, name)));
        let graph: Hnsw<'static, f32, CosineDistance> =
            reader.load_hnsw_with_dist(CosineDistance)?;
        let (groups, _) = Groups::of(dim, ids, rows);
        anyhow::ensure!(
            graph.get_nb_point() == groups.nodes(),
            "the dump holds {} points for {} distinct rows",
            graph.get_nb_point(),
            groups.nodes()
        );
        Ok(Some(Self::assemble(dim, params, graph, groups)))
    }

    /// Changes the query-time candidate list size (for recall/speed trade-off studies).
    pub fn set_ef_search(&self, ef: usize) {
        self.ef_search.store(ef, Ordering::Relaxed);
    }
}

fn checksum_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sum"))
}

/// FNV-1a over the dump's graph file, then its data file.
fn checksum(dir: &Path, name: &str) -> std::io::Result<String> {
    let mut h = Fnv1a::default();
    for part in ["graph", "data"] {
        h.write(&std::fs::read(dir.join(format!("{name}.hnsw.{part}")))?);
    }
    Ok(h.hex())
}

impl NeighbourIndex for HnswRsIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.groups.tracks()
    }

    fn search(&self, query: &[f32], k: usize, exclude: &HashSet<u32>) -> Vec<Neighbour> {
        if k == 0 || self.groups.nodes() == 0 {
            return Vec::new();
        }
        // k allowed nodes hold at least k allowed tracks (see `HnswIndex::search`). One
        // more is asked for: the crate filters its k best after the search, and its entry
        // point can be among them unfiltered.
        let want = k + 1;
        let ef = self.ef_search.load(Ordering::Relaxed).max(want);
        let blocked = self.groups.blocked(exclude);
        let allowed = |node: &usize| blocked.allows(*node as u32);
        let found = self.graph.search_filter(query, want, ef, Some(&allowed));
        let found = found.into_iter().map(|n| (n.d_id as u32, 1.0 - n.distance));
        self.groups.expand(found, k, exclude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use crate::index::testdata::{duplicate_heavy, unit_rows};

    fn ids(n: usize) -> Vec<u32> {
        (0..n as u32).collect()
    }

    /// On distinct rows the crate's graph finds nearly all of the exact top 10, with the
    /// history excluded; on a duplicate-heavy catalogue the k-th score is within 0.01 of
    /// the exact k-th score (ties make track identity ambiguous, scores are not).
    #[test]
    fn finds_the_exact_neighbours_and_copes_with_duplicates() {
        let catalogues = [
            (24, unit_rows(3_000, 24, 1)),
            (8, duplicate_heavy(4_000, 60, 8, 2)),
        ];
        for (dim, rows) in catalogues {
            let ids = ids(rows.len() / dim);
            let exact = ExactIndex::new(dim, ids.clone(), rows.clone());
            let index = HnswRsIndex::build(dim, &ids, &rows, HnswParams::default());
            assert_eq!(index.len(), ids.len());
            let (mut hits, mut worst_gap) = (0, 0f32);
            for q in 0..50 {
                let query = &rows[q * 37 % ids.len() * dim..][..dim];
                let exclude: HashSet<u32> = (0..40)
                    .map(|i| ids[(q * 91 + i * 13) % ids.len()])
                    .collect();
                let want = exact.search(query, 10, &exclude);
                let got = index.search(query, 10, &exclude);
                assert_eq!(got.len(), 10);
                assert!(got.iter().all(|n| !exclude.contains(&n.id)));
                hits += got
                    .iter()
                    .filter(|g| want.iter().any(|w| w.id == g.id))
                    .count();
                worst_gap = worst_gap.max(want[9].score - got[9].score);
            }
            assert!(worst_gap <= 0.01, "k-th score {worst_gap} below exact");
            if dim == 24 {
                assert!(
                    hits as f64 / 500.0 >= 0.95,
                    "recall@10 {}",
                    hits as f64 / 500.0
                );
            }
        }
    }

    /// A dump reloads into the same answers; a damaged one is refused (checksum) and
    /// `cached` rebuilds instead of reading it.
    #[test]
    fn reloads_its_dump_and_refuses_a_damaged_one() {
        let (dim, rows) = (16, unit_rows(800, 16, 3));
        let ids = ids(800);
        let dir = tempfile::tempdir().unwrap();
        let params = HnswParams::default();
        let built = HnswRsIndex::cached(dir.path(), dim, &ids, &rows, params);
        let name = fingerprint("hnswrs", dim, &ids, &rows, params);
        let reloaded = HnswRsIndex::load(dir.path(), &name, dim, &ids, &rows, params)
            .unwrap()
            .expect("a dump");
        let none = HashSet::new();
        for q in 0..20 {
            let query = &rows[q * dim..(q + 1) * dim];
            assert_eq!(
                built.search(query, 10, &none),
                reloaded.search(query, 10, &none)
            );
        }
        let graph = dir.path().join(format!("{name}.hnsw.graph"));
        let mut bytes = std::fs::read(&graph).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&graph, bytes).unwrap();
        let err = HnswRsIndex::load(dir.path(), &name, dim, &ids, &rows, params)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("checksum"), "{err}");
        let rebuilt = HnswRsIndex::cached(dir.path(), dim, &ids, &rows, params);
        assert_eq!(rebuilt.len(), ids.len());
    }
}
