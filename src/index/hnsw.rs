//! Approximate search over normalised vectors with an HNSW graph ([`super::graph`]).
//!
//! Rows wider than [`HnswParams::search_dim`] are searched in a reduced space: the graph
//! holds their projection onto the leading principal directions (normalised), and the
//! beam's candidates are re-ranked by their exact cosine in the full space. At 1024-d a
//! distance costs a 4 KiB read; at 64-d a sixteenth of that, and the exact re-ranking of
//! the beam costs less than one full-width beam step.
//!
//! Over 400 lines on purpose: the index ties the graph, the projection, the distinct-row
//! grouping and the cached file together; about a third of the file is its tests.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::distinct::{Groups, distinct_rows};
use super::graph::{Graph, Scored};
use super::projection::Projection;
use super::{Neighbour, NeighbourIndex};
use crate::embeddings::l2_normalize;
use crate::io::le::{self, LeReader};
use crate::simd::{dot, prefetch};

/// Construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    /// Links per node on the upper layers (twice as many on the bottom one).
    pub m: usize,
    pub ef_construction: usize,
    /// Candidate list size at query time; raised to k when smaller.
    pub ef_search: usize,
    /// Rows wider than this are searched in a reduced space of at most this many
    /// dimensions, as many as their spectrum's knee asks for (see
    /// [`Projection::fit_to_knee`]), and re-ranked exactly (see the module doc); 0
    /// searches at full width.
    #[serde(default)]
    pub search_dim: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 24,
            ef_construction: 250,
            // Recall against the exact scan and queries/s per ef: benches/knn.rs.
            ef_search: 200,
            search_dim: 64,
        }
    }
}

impl HnswParams {
    /// The dimension the graph is built in for rows of `dim` values.
    pub fn graph_dim(&self, dim: usize) -> usize {
        if self.search_dim > 0 && dim > self.search_dim {
            self.search_dim
        } else {
            dim
        }
    }
}

pub struct HnswIndex {
    /// Width of the rows (the graph's may be smaller).
    dim: usize,
    ef_search: AtomicUsize,
    /// Over the distinct rows (see [`super::distinct`]).
    graph: Graph,
    /// The tracks of each graph node.
    groups: Groups,
    /// Present when the graph lives in a reduced space.
    reduced: Option<Reduced>,
}

/// What searching in a reduced space needs besides the graph: the map into it, and the
/// full distinct rows that re-rank the candidates (in node order).
struct Reduced {
    projection: Projection,
    rows: Vec<f32>,
}

impl Reduced {
    /// The unit vector the graph holds for a full row (or a query).
    fn graph_vector(&self, row: &[f32]) -> Vec<f32> {
        let mut p = self.projection.apply(row);
        l2_normalize(&mut p);
        p
    }

    fn row(&self, node: u32) -> &[f32] {
        let dim = self.projection.dim_in();
        &self.rows[node as usize * dim..(node as usize + 1) * dim]
    }

    /// The found nodes with their exact scores, best first. Rows are requested from
    /// memory a few ahead of the one being scored: each is a random read of a matrix
    /// far larger than the cache.
    fn rerank(&self, query: &[f32], found: &[Scored]) -> Vec<(u32, f32)> {
        const AHEAD: usize = 4;
        for s in found.iter().take(AHEAD) {
            prefetch(self.row(s.node));
        }
        let mut scored: Vec<(u32, f32)> = found
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if let Some(ahead) = found.get(i + AHEAD) {
                    prefetch(self.row(ahead.node));
                }
                (s.node, dot(query, self.row(s.node)))
            })
            .collect();
        scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }
}

impl HnswIndex {
    /// Builds the graph from one L2-normalised row of `dim` values per id, over the
    /// distinct rows (kept, without a copy: as the graph's vectors, or for re-ranking).
    pub fn build(dim: usize, ids: &[u32], rows: Vec<f32>, params: HnswParams) -> Self {
        let (groups, distinct) = Groups::new(dim, ids, rows);
        let max_dim = params.graph_dim(dim);
        let projection = (max_dim < dim).then(|| Projection::fit_to_knee(&distinct, dim, max_dim));
        let graph_dim = projection.as_ref().map_or(dim, Projection::dim_out);
        let (reduced, vectors) = Self::graph_rows(dim, distinct, projection);
        let graph = Graph::build(graph_dim, vectors, params.m, params.ef_construction);
        Self::assemble(dim, groups, params, graph, reduced)
    }

    /// The rows the graph holds: the full ones, or their normalised projections.
    fn graph_rows(
        dim: usize,
        rows: Vec<f32>,
        projection: Option<Projection>,
    ) -> (Option<Reduced>, Vec<f32>) {
        assert_eq!(rows.len() % dim, 0, "whole rows");
        match projection {
            None => (None, rows),
            Some(projection) => {
                let reduced = Reduced { projection, rows };
                let vectors = reduced
                    .rows
                    .chunks_exact(dim)
                    .flat_map(|r| reduced.graph_vector(r))
                    .collect();
                (Some(reduced), vectors)
            }
        }
    }

    fn assemble(
        dim: usize,
        groups: Groups,
        params: HnswParams,
        graph: Graph,
        reduced: Option<Reduced>,
    ) -> Self {
        assert_eq!(graph.len(), groups.nodes(), "one node per distinct row");
        Self {
            dim,
            ef_search: AtomicUsize::new(params.ef_search),
            graph,
            groups,
            reduced,
        }
    }

    /// Reloads the graph (and projection) saved for exactly these rows and parameters
    /// under `dir`, or builds and saves them there. Building takes tens of seconds for
    /// 56k tracks; reloading a fraction of a second.
    pub fn cached(
        dir: &Path,
        dim: usize,
        ids: &[u32],
        mut rows: Vec<f32>,
        params: HnswParams,
    ) -> Self {
        let file = dir.join(format!(
            "{}.hnsw",
            fingerprint("hnsw", dim, ids, &rows, params)
        ));
        if file.is_file() {
            match Self::load(&file, dim, ids, &mut rows, params) {
                Ok(index) => return index,
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "could not reload the HNSW index; rebuilding")
                }
            }
        }
        let index = Self::build(dim, ids, rows, params);
        if let Err(e) = index.save(&file) {
            tracing::warn!(file = %file.display(), error = %e, "could not save the HNSW index");
            let _ = std::fs::remove_file(&file);
        }
        index
    }

    /// Writes the projection's basis (when there is one) and the graph's links, through a
    /// temporary file so that a crash never leaves a half-written index behind.
    fn save(&self, file: &Path) -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension("hnsw.tmp");
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        self.write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file)
    }

    /// The projection's basis (its length, then its values) and the graph's links.
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        let basis = self
            .reduced
            .as_ref()
            .map_or(&[][..], |r| r.projection.basis());
        le::write(w, &[basis.len() as u64])?;
        le::write(w, basis)?;
        self.graph.write_links(w)
    }

    /// Takes `rows` only when the file is good (they are left for a rebuild otherwise).
    fn load(
        file: &Path,
        dim: usize,
        ids: &[u32],
        rows: &mut Vec<f32>,
        params: HnswParams,
    ) -> std::io::Result<Self> {
        let f = std::fs::File::open(file)?;
        let len = f.metadata()?.len();
        Self::read(
            &mut LeReader::new(BufReader::new(f), len),
            dim,
            ids,
            rows,
            params,
        )
    }

    /// Reads what [`HnswIndex::write`] wrote for these rows and parameters, taking
    /// `rows` only once the whole file has been read and checked.
    fn read(
        r: &mut LeReader<impl Read>,
        dim: usize,
        ids: &[u32],
        rows: &mut Vec<f32>,
        params: HnswParams,
    ) -> std::io::Result<Self> {
        // The projection keeps up to `params.graph_dim(dim)` directions (see
        // `Projection::fit_to_knee`): its length says how many.
        let max_dim = params.graph_dim(dim);
        let stored = usize::try_from(r.one::<u64>()?).unwrap_or(usize::MAX);
        let graph_dim = if max_dim < dim { stored / dim } else { dim };
        let sound = if max_dim < dim {
            stored.is_multiple_of(dim) && (1..=max_dim).contains(&graph_dim)
        } else {
            stored == 0
        };
        if !sound {
            return Err(le::invalid("projection of another shape"));
        }
        let basis = r.vec::<f32>(stored)?;
        let projection = (max_dim < dim)
            .then(|| Projection::from_basis(basis, dim, graph_dim).expect("length checked"));
        let (groups, firsts) = Groups::of(dim, ids, rows);
        let graph = Graph::read_links(r, graph_dim, groups.nodes())?;
        let distinct = distinct_rows(std::mem::take(rows), &firsts, dim);
        let (reduced, vectors) = Self::graph_rows(dim, distinct, projection);
        Ok(Self::assemble(
            dim,
            groups,
            params,
            graph.with_vectors(vectors),
            reduced,
        ))
    }

    /// Changes the query-time candidate list size (for recall/speed trade-off studies).
    pub fn set_ef_search(&self, ef: usize) {
        self.ef_search.store(ef, Ordering::Relaxed);
    }

    /// The dimension the graph is searched in (smaller than [`NeighbourIndex::dim`] when
    /// the rows are projected).
    pub fn graph_dim(&self) -> usize {
        self.graph.dim()
    }
}

impl NeighbourIndex for HnswIndex {
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
        // Nodes, not tracks: each found node holds at least one allowed track, so `ef >= k`
        // nodes always expand to k tracks when the catalogue has them.
        let ef = self.ef_search.load(Ordering::Relaxed).max(k);
        let blocked = self.groups.blocked(exclude);
        let allowed = |node: u32| blocked.allows(node);
        match &self.reduced {
            None => {
                let found = self.graph.search(query, ef, allowed);
                let found = found.into_iter().map(|s| (s.node, s.sim));
                self.groups.expand(found, k, exclude)
            }
            // Every candidate of the beam is re-ranked: the reduced space's order is only
            // approximately the full one's.
            Some(r) => {
                let found = self.graph.search(&r.graph_vector(query), ef, allowed);
                self.groups.expand(r.rerank(query, &found), k, exclude)
            }
        }
    }
}

/// A name for a graph of `kind` (the file's prefix) that changes whenever its rows, ids or
/// build parameters do.
pub(super) fn fingerprint(
    kind: &str,
    dim: usize,
    ids: &[u32],
    rows: &[f32],
    params: HnswParams,
) -> String {
    // The graph's format and build are part of what it is: bump when either changes.
    const VERSION: u32 = 4;
    let mut h = rustc_hash::FxHasher::default();
    (VERSION, dim, ids, params.m, params.ef_construction).hash(&mut h);
    params.graph_dim(dim).hash(&mut h);
    for v in rows {
        v.to_bits().hash(&mut h);
    }
    format!("{kind}-{dim}d-{}-{:016x}", ids.len(), h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use crate::index::testdata::duplicate_heavy;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    /// Rows near a 6-d subspace of R^48 (as audio embeddings are near a low-dimensional
    /// one), searched in 8 dimensions: the re-ranked answers match the exact scan's, carry
    /// exact scores, and the cached index (projection and graph) reloads to the same
    /// answers; a damaged file is rebuilt, not trusted.
    #[test]
    fn reduced_search_reranks_exactly_and_reloads_from_its_cache() {
        let (n, dim, signal) = (3_000, 48, 6);
        let mut rng = StdRng::seed_from_u64(9);
        let mix: Vec<f32> = (0..signal * dim)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        let mut rows = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let z: Vec<f32> = (0..signal).map(|_| rng.sample(StandardNormal)).collect();
            let mut row: Vec<f32> = (0..dim)
                .map(|j| {
                    let s: f32 = (0..signal).map(|f| z[f] * mix[f * dim + j]).sum();
                    s + 0.05 * rng.sample::<f32, _>(StandardNormal)
                })
                .collect();
            l2_normalize(&mut row);
            rows.extend(row);
        }
        let ids: Vec<u32> = (0..n as u32).map(|i| i * 3 + 1).collect();
        let params = HnswParams {
            m: 12,
            ef_construction: 100,
            ef_search: 100,
            search_dim: 8,
        };
        let dir = tempfile::tempdir().unwrap();
        let index = HnswIndex::cached(dir.path(), dim, &ids, rows.clone(), params);
        assert_eq!(index.graph_dim(), 8);
        let exact = ExactIndex::new(dim, ids.clone(), rows.clone());
        let exclude: HashSet<u32> = ids.iter().copied().step_by(5).collect();
        let queries: Vec<&[f32]> = rows.chunks_exact(dim).step_by(97).collect();
        let mut hits = 0;
        for q in &queries {
            let got = index.search(q, 10, &exclude);
            let want = exact.search(q, 10, &exclude);
            assert_eq!(got.len(), 10);
            for g in &got {
                assert!(!exclude.contains(&g.id));
                let row = ids.iter().position(|&id| id == g.id).unwrap();
                assert!((g.score - dot(q, &rows[row * dim..(row + 1) * dim])).abs() < 1e-6);
            }
            hits += got
                .iter()
                .filter(|g| want.iter().any(|w| w.id == g.id))
                .count();
        }
        assert!(hits * 100 >= queries.len() * 10 * 95, "recall {hits}");

        let reloaded = HnswIndex::cached(dir.path(), dim, &ids, rows.clone(), params);
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        for q in &queries {
            assert_eq!(
                index.search(q, 10, &exclude),
                reloaded.search(q, 10, &exclude)
            );
        }
        std::fs::write(&file, b"not a graph").unwrap();
        let rebuilt = HnswIndex::cached(dir.path(), dim, &ids, rows.clone(), params);
        for q in &queries {
            assert_eq!(
                index.search(q, 10, &exclude),
                rebuilt.search(q, 10, &exclude)
            );
        }
        assert!(
            std::fs::metadata(&file).unwrap().len() > 100,
            "the rebuilt index is saved again"
        );
    }

    /// Building twice from the same rows writes byte-identical files (same name, same
    /// bytes); the file cut short anywhere is refused with `InvalidData` or an early end
    /// (never a panic or an allocation the file cannot back).
    #[test]
    fn builds_are_byte_identical_and_truncation_is_refused() {
        let (n, dim) = (1_500, 24);
        let mut rng = StdRng::seed_from_u64(21);
        let mut rows: Vec<f32> = (0..n * dim).map(|_| rng.sample(StandardNormal)).collect();
        rows.chunks_exact_mut(dim).for_each(l2_normalize);
        // Every fifth row repeats the one before: duplicates are part of what is saved.
        for i in (5..n).step_by(5) {
            rows.copy_within((i - 1) * dim..i * dim, i * dim);
        }
        let ids: Vec<u32> = (0..n as u32).rev().collect();
        let params = HnswParams {
            m: 8,
            ef_construction: 64,
            ef_search: 64,
            search_dim: 8,
        };
        let files: Vec<(String, Vec<u8>)> = (0..2)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                HnswIndex::cached(dir.path(), dim, &ids, rows.clone(), params);
                let file = std::fs::read_dir(dir.path())
                    .unwrap()
                    .next()
                    .unwrap()
                    .unwrap();
                let bytes = std::fs::read(file.path()).unwrap();
                (file.file_name().into_string().unwrap(), bytes)
            })
            .collect();
        assert_eq!(files[0].0, files[1].0);
        assert!(files[0].1 == files[1].1, "byte-identical graph files");
        let bytes = &files[0].1;
        for cut in [
            0,
            4,
            8,
            100,
            bytes.len() / 3,
            bytes.len() - 4,
            bytes.len() - 1,
        ] {
            let mut r = LeReader::new(&bytes[..cut], cut as u64);
            let err = HnswIndex::read(&mut r, dim, &ids, &mut rows.clone(), params).err();
            let err = err.unwrap_or_else(|| panic!("cut at {cut} accepted"));
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidData,
                "cut at {cut}: {err}"
            );
        }
        let mut r = LeReader::new(bytes.as_slice(), bytes.len() as u64);
        assert!(HnswIndex::read(&mut r, dim, &ids, &mut rows.clone(), params).is_ok());
    }

    /// Why the graph is built over distinct vectors: on 20,000 tracks sharing 400 8-d
    /// vectors (skewed, as metadata or genre-flag embeddings are), a graph over every row
    /// returns a k-th score far below the exact one, while the same graph over the
    /// distinct vectors matches it. The failure this guards against, reproduced.
    #[test]
    fn a_graph_over_repeated_rows_fails_where_the_grouped_one_does_not() {
        let (n, distinct, dim, k) = (20_000, 400, 8, 50);
        let mut rng = StdRng::seed_from_u64(13);
        let rows = duplicate_heavy(n, distinct, dim, 13);
        let ids: Vec<u32> = (0..n as u32).collect();
        let params = HnswParams {
            m: 12,
            ef_construction: 100,
            ef_search: 100,
            search_dim: 0,
        };
        let grouped = HnswIndex::build(dim, &ids, rows.clone(), params);
        let raw = Graph::build(dim, rows.clone(), params.m, params.ef_construction);
        let exact = ExactIndex::new(dim, ids.clone(), rows.clone());
        let (mut raw_gap, mut grouped_gap) = (0f32, 0f32);
        let queries = 100;
        for _ in 0..queries {
            let mut q = vec![0f32; dim];
            let mut exclude = HashSet::new();
            for _ in 0..40 {
                let i = rng.random_range(0..n);
                q.iter_mut()
                    .zip(&rows[i * dim..(i + 1) * dim])
                    .for_each(|(a, b)| *a += b);
                exclude.insert(i as u32);
            }
            l2_normalize(&mut q);
            let want = exact.search(&q, k, &exclude)[k - 1].score;
            let found = raw.search(&q, params.ef_search, |node| !exclude.contains(&node));
            raw_gap += want - found.get(k - 1).map_or(-1.0, |s| s.sim);
            grouped_gap += want - grouped.search(&q, k, &exclude)[k - 1].score;
        }
        let (raw_gap, grouped_gap) = (raw_gap / queries as f32, grouped_gap / queries as f32);
        assert!(
            grouped_gap < 1e-3,
            "grouped graph: mean k-th gap {grouped_gap}"
        );
        assert!(
            raw_gap > 0.01,
            "graph over repeated rows: mean k-th gap {raw_gap}"
        );
    }
}
