//! The rule behind [`super::IndexKind::Auto`]: the exact scan wherever a graph search of
//! the same recall would not be clearly cheaper.
//!
//! Costs are counted in multiply-adds per query. The scan does `items × dim` of them,
//! streamed through memory at the SIMD rate. A graph search evaluates about
//! `ef × 2m` neighbours (the bottom layer's links of the beam's nodes) in the graph's
//! space, plus `ef` exact re-rankings when that space is reduced; each of those costs
//! about [`GRAPH_OVERHEAD`] streamed ones, since it is a random read plus visited-set and
//! heap work. Calibrated on `benches/knn.rs` (musicnn 200-d searched at 64-d, ef 200: a
//! query took 0.26 ms where its multiply-adds at the scan's rate would take 0.10 ms). The
//! graph's width counted is `--search-dim`, the most it is searched in (see
//! [`super::projection::Projection::fit_to_knee`]), so the estimate errs towards the scan.
//!
//! The beam that holds a given recall widens with the rows' local intrinsic dimension
//! (LID; Aumüller & Ceccarello, "The role of local intrinsic dimensionality in
//! benchmarking nearest neighbor search", 2019): rows with no low-dimensional structure
//! leave a graph little to navigate by. So `ef` is scaled by the measured LID over
//! [`LID_REFERENCE`]. On the `paper` demo data (`benches/knn.rs`) the structured backends
//! (musicnn, mert: LID about 15 and 21) hold about 0.98 recall@50 at the default `ef`,
//! while the Gaussian `noise` rows (LID about 40) need `ef` 400 for 0.99, where the graph
//! is no faster than the scan: they are served exactly. Below the break-even the exact
//! answer is also the fast one, so there is nothing to trade; small or low-dimensional
//! catalogues (where duplicates are also most common) are served exactly.

use super::distinct::{Groups, distinct_rows};
use super::{HnswParams, IndexKind};
use crate::simd::dot;

/// Cost of one graph distance in streamed multiply-adds (see the module doc).
pub const GRAPH_OVERHEAD: usize = 3;
/// How much cheaper than the scan a graph must be estimated to be worth its approximate
/// answer, as a fraction: within a quarter the estimates cannot tell the two apart, and
/// the exact answer wins the tie.
const MARGIN: (usize, usize) = (5, 4);
/// The LID up to which the default `ef` holds the recall it was tuned for.
pub const LID_REFERENCE: f64 = 20.0;
/// Rows sampled (evenly strided) to measure the LID on, and probes among them.
pub const LID_SAMPLE: usize = 16_384;
const LID_PROBES: usize = 100;
/// Neighbours per probe in the maximum-likelihood estimate.
const LID_NEIGHBOURS: usize = 20;

/// The kind to build for `items` rows of `dim` values, and why, in words for the log.
/// `sample` yields [`sample_positions`]' rows (row-major); it is read only when the
/// arithmetic alone favours the graph, to measure the rows' LID.
pub fn choose(
    items: usize,
    dim: usize,
    params: HnswParams,
    sample: impl FnOnce() -> Vec<f32>,
) -> (IndexKind, String) {
    let scan = items.saturating_mul(dim);
    let graph_at = |ef: usize| {
        let graph_dim = params.graph_dim(dim);
        let rerank = if graph_dim < dim { ef * dim } else { 0 };
        GRAPH_OVERHEAD.saturating_mul(ef * 2 * params.m * graph_dim + rerank)
    };
    let at_most = |graph: usize| scan <= graph.saturating_mul(MARGIN.0) / MARGIN.1;
    let ef = params.ef_search.max(1);
    let graph = graph_at(ef);
    if at_most(graph) {
        let why = format!(
            "exact scan: {items} × {dim} = {scan} multiply-adds per query, within a quarter of the graph's estimated {graph}"
        );
        return (IndexKind::Exact, why);
    }
    let lid = local_dimension(&sample(), dim);
    let wide = (ef as f64 * (lid / LID_REFERENCE).max(1.0)).round() as usize;
    let graph = graph_at(wide);
    if at_most(graph) {
        let why = format!(
            "exact scan: the rows' local intrinsic dimension {lid:.1} asks the graph for ef {wide} to hold its recall, an estimated {graph} multiply-adds per query, not a quarter fewer than the scan's {items} × {dim} = {scan}"
        );
        (IndexKind::Exact, why)
    } else {
        let why = format!(
            "HNSW: the exact scan's {items} × {dim} = {scan} multiply-adds per query exceed the graph's estimated {graph} (local intrinsic dimension {lid:.1}, ef {wide})"
        );
        (IndexKind::Hnsw, why)
    }
}

/// Which of `items` rows the LID is measured on: at most [`LID_SAMPLE`], evenly strided.
pub fn sample_positions(items: usize) -> impl Iterator<Item = usize> {
    (0..items).step_by(items.div_ceil(LID_SAMPLE).max(1))
}

/// [`sample_positions`]' rows of a row-major matrix.
pub fn strided_sample(rows: &[f32], dim: usize) -> Vec<f32> {
    sample_positions(rows.len() / dim.max(1))
        .flat_map(|i| &rows[i * dim..(i + 1) * dim])
        .copied()
        .collect()
}

/// The median over evenly spread probes of Levina & Bickel's maximum-likelihood LID:
/// `1 / mean_j ln(T_k / T_j)` over a probe's `k` nearest other rows at Euclidean
/// distances `T_1 ≤ … ≤ T_k`. Repeated rows are counted once (grouped as the graph
/// groups them, one node per distinct row), so a duplicate-heavy catalogue measures its
/// distinct vectors. `NaN` when no probe has two distinct neighbours.
pub fn local_dimension(rows: &[f32], dim: usize) -> f64 {
    let ids: Vec<u32> = (0..(rows.len() / dim.max(1)) as u32).collect();
    let (_, firsts) = Groups::of(dim, &ids, rows);
    let rows = distinct_rows(rows.to_vec(), &firsts, dim);
    let n = firsts.len();
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let norms: Vec<f32> = (0..n).map(|i| dot(row(i), row(i))).collect();
    let mut estimates: Vec<f64> = Vec::with_capacity(LID_PROBES);
    let mut distances: Vec<f32> = Vec::with_capacity(n);
    for p in (0..n).step_by(n.div_ceil(LID_PROBES).max(1)) {
        distances.clear();
        distances.extend((0..n).filter_map(|i| {
            let d2 = norms[p] + norms[i] - 2.0 * dot(row(p), row(i));
            (i != p).then(|| d2.max(0.0).sqrt())
        }));
        let k = LID_NEIGHBOURS.min(distances.len());
        if k < 2 {
            continue;
        }
        distances.select_nth_unstable_by(k - 1, f32::total_cmp);
        let nearest = &distances[..k];
        let far = nearest.iter().copied().fold(0f32, f32::max) as f64;
        let sum: f64 = nearest.iter().map(|&t| (far / t as f64).ln()).sum();
        if sum > 0.0 {
            estimates.push((k - 1) as f64 / sum);
        }
    }
    if estimates.is_empty() {
        return f64::NAN;
    }
    estimates.sort_unstable_by(f64::total_cmp);
    estimates[estimates.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::testdata::{duplicate_heavy, subspace_rows, unit_rows};

    /// The break-even falls where the formula puts it: at the default parameters a
    /// 200-d catalogue switches at 1.25 × 3 × (200·48·64 + 200·200) / 200 = 12,270 items, the
    /// paper's 56k tracks of structured rows take the graph at both widths, the demo's
    /// small catalogues and a low-dimensional duplicate-heavy one the exact scan.
    #[test]
    fn exact_below_the_break_even_graph_above() {
        let p = HnswParams::default();
        let graph = GRAPH_OVERHEAD * (p.ef_search * 2 * p.m * 64 + p.ef_search * 200);
        let break_even = graph * 5 / 4 / 200;
        assert_eq!(break_even, 12_270);
        let structured = |dim| move || subspace_rows(4_000, dim, 6, 1);
        assert_eq!(
            choose(break_even, 200, p, structured(200)).0,
            IndexKind::Exact
        );
        assert_eq!(
            choose(break_even + 1, 200, p, structured(200)).0,
            IndexKind::Hnsw
        );
        assert_eq!(choose(56_000, 200, p, structured(200)).0, IndexKind::Hnsw);
        assert_eq!(choose(56_000, 1024, p, structured(1024)).0, IndexKind::Hnsw);
        assert_eq!(choose(2_000, 200, p, structured(200)).0, IndexKind::Exact);
        let unread = || unreachable!("the arithmetic decides");
        assert_eq!(choose(20_000, 16, p, unread).0, IndexKind::Exact);
        let (_, why) = choose(56_000, 200, p, structured(200));
        assert!(
            why.starts_with("HNSW") && why.contains("56000 × 200"),
            "{why}"
        );
    }

    /// The estimate against what it must be: rows on the unit sphere of a 6-d subspace
    /// have intrinsic dimension 5; Gaussian rows in 64-d have no low-dimensional
    /// structure (the MLE reads below the true 63 at this sample size, as it does on the
    /// demo's `noise`, about 41); repeated rows measure their distinct vectors.
    #[test]
    fn local_dimension_measures_structure() {
        let sub = local_dimension(&subspace_rows(8_000, 48, 6, 2), 48);
        assert!((4.0..=6.5).contains(&sub), "6-d subspace: LID {sub}");
        let noise = local_dimension(&unit_rows(8_000, 64, 3), 64);
        assert!(noise > 30.0, "64-d Gaussian: LID {noise}");
        let dup = local_dimension(&duplicate_heavy(8_000, 400, 6, 4), 6);
        assert!((3.5..=6.5).contains(&dup), "6-d duplicate-heavy: LID {dup}");
        assert!(local_dimension(&[0.5; 10 * 4], 4).is_nan());
    }

    /// The paper's catalogue size at 64-d: structured rows take the graph, structureless
    /// ones (whose LID asks for a beam as costly as the scan) the exact scan, and the log
    /// line says why.
    #[test]
    fn structureless_rows_are_served_exactly() {
        let p = HnswParams::default();
        let (kind, _) = choose(56_000, 64, p, || subspace_rows(LID_SAMPLE, 64, 8, 5));
        assert_eq!(kind, IndexKind::Hnsw);
        let (kind, why) = choose(56_000, 64, p, || unit_rows(LID_SAMPLE, 64, 6));
        assert_eq!(kind, IndexKind::Exact, "{why}");
        assert!(why.contains("local intrinsic dimension"), "{why}");
        assert_eq!(sample_positions(56_000).count(), 14_000);
        assert_eq!(strided_sample(&[1.0, 2.0, 3.0], 1), vec![1.0, 2.0, 3.0]);
    }
}
