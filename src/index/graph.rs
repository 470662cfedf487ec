//! A hierarchical navigable small-world graph (Malkov & Yashunin, 2018) over unit vectors,
//! ranked by inner product.
//!
//! Written for this service's query: the mean of a listening history, with that history
//! (hundreds of tracks, the query's nearest neighbours) excluded. The search filters as it
//! goes, the way hnswlib does: excluded nodes are walked through but never enter the result
//! set, and the walk stops only once `ef` allowed results are held, so one pass answers
//! however many neighbours are excluded. Storage is flat (one vector matrix, fixed-stride
//! link arrays, a reusable visited list per thread), and the build is sequential and
//! seeded, so the same rows always give the same graph.
//!
//! Over 400 lines on purpose: build, search and the file format share the graph's flat
//! layout (link slot offsets, node ids); split apart, each piece would re-derive it.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::io::le::{self, LeReader};
use crate::simd::{dot, dots_into, prefetch};

/// A node and its similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub sim: f32,
    pub node: u32,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim
            .total_cmp(&other.sim)
            .then(other.node.cmp(&self.node))
    }
}

/// Layers above a node's own are never linked; this bounds the random level.
const MAX_LEVEL: usize = 16;
/// Far above any useful link count; bounds a header's value before it sizes anything.
const MAX_M: usize = 4096;

pub struct Graph {
    dim: usize,
    /// Links per node on the upper layers; layer 0 has twice as many.
    m: usize,
    /// `n` unit rows of `dim` values.
    vectors: Vec<f32>,
    /// Top layer of each node.
    levels: Vec<u8>,
    /// Layer 0: per node a count followed by `2m` slots.
    base: Vec<u32>,
    /// Layers 1..=level of each node: per layer a count followed by `m` slots.
    upper: Vec<Vec<u32>>,
    entry: u32,
}

impl Graph {
    /// Inserts every row in order, each linked to the best of an `ef_construction` beam
    /// by the paper's neighbour-selection heuristic.
    pub fn build(dim: usize, vectors: Vec<f32>, m: usize, ef_construction: usize) -> Self {
        let n = vectors.len() / dim;
        let m = m.max(2);
        let mut rng = StdRng::seed_from_u64(0x4e5e);
        let scale = 1.0 / (m as f64).ln();
        let levels: Vec<u8> = (0..n)
            .map(|_| {
                let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                ((-u.ln() * scale) as usize).min(MAX_LEVEL) as u8
            })
            .collect();
        let mut graph = Self {
            dim,
            m,
            vectors,
            base: vec![0; n * (2 * m + 1)],
            upper: levels
                .iter()
                .map(|&l| vec![0; l as usize * (m + 1)])
                .collect(),
            levels,
            entry: 0,
        };
        for node in 1..n as u32 {
            graph.insert(node, ef_construction.max(m));
        }
        graph
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    fn vector(&self, node: u32) -> &[f32] {
        &self.vectors[node as usize * self.dim..(node as usize + 1) * self.dim]
    }

    fn sim(&self, query: &[f32], node: u32) -> f32 {
        dot(query, self.vector(node))
    }

    /// A node's link list on a layer: its length, then `capacity(layer)` slots.
    fn slot(&self, node: u32, layer: usize) -> &[u32] {
        let (node, stride) = (node as usize, self.capacity(layer) + 1);
        if layer == 0 {
            &self.base[node * stride..(node + 1) * stride]
        } else {
            &self.upper[node][(layer - 1) * stride..layer * stride]
        }
    }

    fn slot_mut(&mut self, node: u32, layer: usize) -> &mut [u32] {
        let (node, stride) = (node as usize, self.capacity(layer) + 1);
        if layer == 0 {
            &mut self.base[node * stride..(node + 1) * stride]
        } else {
            &mut self.upper[node][(layer - 1) * stride..layer * stride]
        }
    }

    fn links(&self, node: u32, layer: usize) -> &[u32] {
        let slot = self.slot(node, layer);
        &slot[1..1 + slot[0] as usize]
    }

    fn set_links(&mut self, node: u32, layer: usize, links: &[u32]) {
        let slot = self.slot_mut(node, layer);
        slot[0] = links.len() as u32;
        slot[1..1 + links.len()].copy_from_slice(links);
    }

    fn capacity(&self, layer: usize) -> usize {
        if layer == 0 { 2 * self.m } else { self.m }
    }

    fn top_level(&self) -> usize {
        self.levels[self.entry as usize] as usize
    }

    /// Greedy walk on the layers above `down_to` towards the query.
    fn descend(&self, query: &[f32], down_to: usize) -> Scored {
        let mut best = Scored {
            sim: self.sim(query, self.entry),
            node: self.entry,
        };
        for layer in (down_to + 1..=self.top_level()).rev() {
            let mut improved = true;
            while improved {
                improved = false;
                for &nb in self.links(best.node, layer) {
                    let sim = self.sim(query, nb);
                    if sim > best.sim {
                        best = Scored { sim, node: nb };
                        improved = true;
                    }
                }
            }
        }
        best
    }

    /// The beam search of one layer: up to `ef` nodes for which `allowed` holds, best
    /// first. Disallowed nodes are expanded like any other, so they lead the walk past
    /// themselves.
    fn search_layer(
        &self,
        query: &[f32],
        entry: &[Scored],
        ef: usize,
        layer: usize,
        allowed: impl Fn(u32) -> bool,
        visited: &mut Visited,
    ) -> Vec<Scored> {
        visited.reset(self.len());
        let mut candidates: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(ef + 1);
        for &e in entry {
            visited.insert(e.node);
            candidates.push(e);
            if allowed(e.node) {
                results.push(Reverse(e));
            }
        }
        let (mut fresh, mut sims) = std::mem::take(&mut visited.scratch);
        while let Some(c) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.sim < w.0.sim) {
                break;
            }
            // The search waits on memory, not arithmetic: the graph is read at random. The
            // next candidate's links and all unseen neighbours' vectors are requested
            // before any of them is needed, so their reads overlap (as hnswlib does).
            if let Some(next) = candidates.peek() {
                prefetch(self.slot(next.node, layer));
            }
            fresh.clear();
            fresh.extend(
                (self.links(c.node, layer).iter().copied()).filter(|&nb| visited.insert(nb)),
            );
            for &nb in &fresh {
                prefetch(self.vector(nb));
            }
            // The unseen neighbours, scored in one SIMD dispatch.
            dots_into(query, fresh.iter().map(|&nb| self.vector(nb)), &mut sims);
            for (&nb, &sim) in fresh.iter().zip(&sims) {
                let full = results.len() >= ef;
                if !full || results.peek().is_some_and(|w| sim > w.0.sim) {
                    let s = Scored { sim, node: nb };
                    candidates.push(s);
                    if allowed(nb) {
                        results.push(Reverse(s));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        visited.scratch = (fresh, sims);
        let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// The `ef` best allowed nodes for a unit query, best first (fewer only when fewer
    /// allowed nodes are reachable).
    pub fn search(&self, query: &[f32], ef: usize, allowed: impl Fn(u32) -> bool) -> Vec<Scored> {
        if self.len() == 0 {
            return Vec::new();
        }
        let start = self.descend(query, 0);
        VISITED.with_borrow_mut(|v| self.search_layer(query, &[start], ef, 0, allowed, v))
    }

    fn insert(&mut self, node: u32, ef: usize) {
        let level = self.levels[node as usize] as usize;
        let query = self.vector(node).to_vec();
        let top = self.top_level();
        let mut entry = vec![self.descend(&query, level.min(top))];
        let mut visited = Visited::default();
        for layer in (0..=level.min(top)).rev() {
            let found = self.search_layer(&query, &entry, ef, layer, |_| true, &mut visited);
            let chosen = self.select(&found, self.capacity(layer));
            let ids: Vec<u32> = chosen.iter().map(|s| s.node).collect();
            self.set_links(node, layer, &ids);
            for s in chosen {
                self.link_back(s.node, node, s.sim, layer);
            }
            entry = found;
        }
        if level > top {
            self.entry = node;
        }
    }

    /// Adds `node` to `to`'s links, pruning them by the heuristic when full.
    fn link_back(&mut self, to: u32, node: u32, sim: f32, layer: usize) {
        let capacity = self.capacity(layer);
        let current = self.links(to, layer);
        if current.len() < capacity {
            let mut links = current.to_vec();
            links.push(node);
            self.set_links(to, layer, &links);
            return;
        }
        let base = self.vector(to).to_vec();
        let mut pool: Vec<Scored> = current
            .iter()
            .map(|&nb| Scored {
                sim: self.sim(&base, nb),
                node: nb,
            })
            .chain(std::iter::once(Scored { sim, node }))
            .collect();
        pool.sort_unstable_by(|a, b| b.cmp(a));
        let kept: Vec<u32> = self
            .select(&pool, capacity)
            .iter()
            .map(|s| s.node)
            .collect();
        self.set_links(to, layer, &kept);
    }

    /// The neighbour-selection heuristic (the paper's algorithm 4): walking candidates
    /// best first, keep one only if it is closer to the base than to every one kept, so
    /// that links spread over directions instead of bunching in one cluster.
    fn select(&self, sorted: &[Scored], capacity: usize) -> Vec<Scored> {
        let mut kept: Vec<Scored> = Vec::with_capacity(capacity);
        for &c in sorted {
            if kept.len() == capacity {
                break;
            }
            let v = self.vector(c.node);
            if kept.iter().all(|k| dot(v, self.vector(k.node)) < c.sim) {
                kept.push(c);
            }
        }
        kept
    }

    /// Writes the links (not the vectors, which the caller derives from its rows).
    pub fn write_links(&self, w: &mut impl Write) -> io::Result<()> {
        let header = [self.len(), self.dim, self.m, self.entry as usize];
        le::write(w, &header.map(|v| v as u64))?;
        w.write_all(&self.levels)?;
        le::write(w, &self.base)?;
        for links in &self.upper {
            le::write(w, links)?;
        }
        Ok(())
    }

    /// Reads links written by [`Graph::write_links`] for `nodes` vectors of `dim` values,
    /// to be given by [`Graph::with_vectors`] (so that a caller parts with its rows only
    /// once the file is known good); `InvalidData` when they were written for another
    /// shape or are damaged. Every size comes from the header and is checked against the
    /// bytes the file has left before anything of that size is allocated.
    pub fn read_links(r: &mut LeReader<impl Read>, dim: usize, nodes: usize) -> io::Result<Self> {
        let header = r.vec::<u64>(4)?;
        let [n, stored_dim, m, entry] =
            [0, 1, 2, 3].map(|i| usize::try_from(header[i]).unwrap_or(usize::MAX));
        if stored_dim != dim || n != nodes || (n > 0 && entry >= n) {
            return Err(le::invalid("graph saved for other rows"));
        }
        if !(2..=MAX_M).contains(&m) {
            return Err(le::invalid(format!("graph header: {m} links per node")));
        }
        let levels = r.bytes(Some(n))?;
        if levels.iter().any(|&l| l as usize > MAX_LEVEL) {
            return Err(le::invalid("bad level"));
        }
        let base = r.vec::<u32>(n * (2 * m + 1))?;
        let upper = levels
            .iter()
            .map(|&l| r.vec::<u32>(l as usize * (m + 1)))
            .collect::<io::Result<Vec<_>>>()?;
        if r.left() != 0 {
            return Err(le::invalid("bytes after the graph"));
        }
        let graph = Self {
            dim,
            m,
            vectors: Vec::new(),
            levels,
            base,
            upper,
            entry: entry as u32,
        };
        let sound = (0..n as u32).all(|node| {
            (0..=graph.levels[node as usize] as usize).all(|layer| {
                let slot = graph.slot(node, layer);
                slot[0] as usize <= graph.capacity(layer)
                    && graph
                        .links(node, layer)
                        .iter()
                        .all(|&nb| (nb as usize) < n && graph.levels[nb as usize] as usize >= layer)
            })
        });
        if !sound {
            return Err(le::invalid("links out of range"));
        }
        Ok(graph)
    }

    /// The vectors of a graph read by [`Graph::read_links`], one per node in node order.
    pub fn with_vectors(mut self, vectors: Vec<f32>) -> Self {
        assert_eq!(vectors.len(), self.len() * self.dim, "one vector per node");
        self.vectors = vectors;
        self
    }
}

/// Which nodes a search has seen: a stamp per node, so that starting a new search costs
/// nothing instead of clearing a set.
#[derive(Default)]
struct Visited {
    stamps: Vec<u32>,
    current: u32,
    /// A candidate's links not seen before and their similarities, reused between
    /// expansions.
    scratch: (Vec<u32>, Vec<f32>),
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.stamps.len() < n {
            self.stamps.resize(n, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamps.fill(0);
            self.current = 1;
        }
    }

    /// Marks `node`; false when it was already marked in this search.
    fn insert(&mut self, node: u32) -> bool {
        let seen = &mut self.stamps[node as usize];
        let fresh = *seen != self.current;
        *seen = self.current;
        fresh
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::testdata::unit_rows;

    fn brute_force(rows: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<u32> {
        let mut all: Vec<Scored> = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, r)| Scored {
                sim: dot(q, r),
                node: i as u32,
            })
            .collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        all.iter().take(k).map(|s| s.node).collect()
    }

    /// On random unit vectors the graph finds nearly all true neighbours, every node is
    /// reachable, and a save/load round trip answers identically.
    #[test]
    fn finds_the_true_neighbours_and_round_trips() {
        let (n, dim) = (2_000, 16);
        let rows = unit_rows(n, dim, 3);
        let graph = Graph::build(dim, rows.clone(), 12, 100);
        let queries = unit_rows(50, dim, 4);
        let mut hits = 0;
        for q in queries.chunks_exact(dim) {
            let truth = brute_force(&rows, dim, q, 10);
            let got: Vec<u32> = graph.search(q, 64, |_| true)[..10]
                .iter()
                .map(|s| s.node)
                .collect();
            hits += got.iter().filter(|g| truth.contains(g)).count();
        }
        assert!(hits >= 490, "recall@10 {} / 500", hits);
        // Allowing only every 97th node: the search still returns exactly those nearest.
        let allowed = |node: u32| node.is_multiple_of(97);
        let got = graph.search(&queries[..dim], 64, allowed);
        let want = (0..n as u32).filter(|&i| allowed(i)).count();
        assert_eq!(got.len(), want, "every allowed node is reachable");
        assert!(got.iter().all(|s| allowed(s.node)));

        let mut bytes = Vec::new();
        graph.write_links(&mut bytes).unwrap();
        let read = |b: &[u8], rows: Vec<f32>| {
            let nodes = rows.len() / dim;
            Graph::read_links(&mut LeReader::new(b, b.len() as u64), dim, nodes)
                .map(|g| g.with_vectors(rows))
        };
        let back = read(&bytes, rows.clone()).unwrap();
        for q in queries.chunks_exact(dim) {
            assert_eq!(graph.search(q, 32, |_| true), back.search(q, 32, |_| true));
        }
        // Links saved for other rows or damaged are refused.
        assert!(read(&bytes, rows[..dim * 10].to_vec()).is_err());
        let mut damaged = bytes.clone();
        let first_count = 32 + n; // after the header and the levels
        damaged[first_count..first_count + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&damaged, rows.clone()).is_err());
        // Truncated anywhere, or with a trailing byte: refused, never a panic.
        for cut in [0, 7, 32, 32 + n, bytes.len() / 2, bytes.len() - 1] {
            assert!(read(&bytes[..cut], rows.clone()).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(&longer, rows.clone()).is_err());
        // A header claiming a huge link count is refused before it sizes an allocation.
        let mut huge = bytes.clone();
        huge[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(read(&huge, rows.clone()).is_err());
    }
}
