//! The rule behind [`super::IndexKind::Auto`]: the exact scan wherever it costs no more
//! than a graph search would.
//!
//! Costs are counted in multiply-adds per query. The scan does `items × dim` of them,
//! streamed through memory at the SIMD rate. A graph search evaluates about
//! `ef × 2m` neighbours (the bottom layer's links of the beam's nodes) in the graph's
//! space, plus `ef` exact re-rankings when that space is reduced; each of those costs
//! about [`GRAPH_OVERHEAD`] streamed ones, since it is a random read plus visited-set and
//! heap work. Calibrated on `benches/knn.rs` (musicnn 200-d searched at 64-d, ef 200: a
//! query took 0.26 ms where its multiply-adds at the scan's rate would take 0.10 ms).
//! Below the break-even the exact answer is also the fast one, so there is nothing to
//! trade; small or low-dimensional catalogues (where duplicates are also most common)
//! are served exactly.

use super::{HnswParams, IndexKind};

/// Cost of one graph distance in streamed multiply-adds (see the module doc).
pub const GRAPH_OVERHEAD: usize = 3;

/// The kind to build for `items` rows of `dim` values, and why, in words for the log.
pub fn choose(items: usize, dim: usize, params: HnswParams) -> (IndexKind, String) {
    let scan = items.saturating_mul(dim);
    let graph_dim = params.graph_dim(dim);
    let ef = params.ef_search.max(1);
    let rerank = if graph_dim < dim { ef * dim } else { 0 };
    let graph = GRAPH_OVERHEAD.saturating_mul(ef * 2 * params.m * graph_dim + rerank);
    if scan <= graph {
        let why = format!(
            "exact scan: {items} × {dim} = {scan} multiply-adds per query, no more than the graph's estimated {graph}"
        );
        (IndexKind::Exact, why)
    } else {
        let why = format!(
            "HNSW: the exact scan's {items} × {dim} = {scan} multiply-adds per query exceed the graph's estimated {graph}"
        );
        (IndexKind::Hnsw, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The break-even falls where the formula puts it: at the default parameters a
    /// 200-d catalogue switches at 3 × (200·48·64 + 200·200) / 200 = 9,816 items, the
    /// paper's 56k tracks take the graph at both widths, the demo's small catalogues and
    /// a low-dimensional duplicate-heavy one the exact scan.
    #[test]
    fn exact_below_the_break_even_graph_above() {
        let p = HnswParams::default();
        let graph = GRAPH_OVERHEAD * (p.ef_search * 2 * p.m * 64 + p.ef_search * 200);
        let break_even = graph / 200;
        assert_eq!(break_even, 9_816);
        assert_eq!(choose(break_even, 200, p).0, IndexKind::Exact);
        assert_eq!(choose(break_even + 1, 200, p).0, IndexKind::Hnsw);
        assert_eq!(choose(56_000, 200, p).0, IndexKind::Hnsw);
        assert_eq!(choose(56_000, 1024, p).0, IndexKind::Hnsw);
        assert_eq!(choose(2_000, 200, p).0, IndexKind::Exact);
        assert_eq!(choose(20_000, 16, p).0, IndexKind::Exact);
        let (_, why) = choose(56_000, 200, p);
        assert!(
            why.starts_with("HNSW") && why.contains("56000 × 200"),
            "{why}"
        );
    }
}
