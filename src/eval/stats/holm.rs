//! Holm's step-down correction for a family of tests (Holm 1979): controls the
//! family-wise error rate without assuming independence, and is uniformly more powerful
//! than Bonferroni. Used over the comparisons of one report block and one metric.

/// Holm-adjusted p-values, in the order of `p`: the i-th smallest p-value is multiplied
/// by (m − i + 1), capped at 1, and made monotone by a running maximum, so an adjusted
/// p-value below α means "rejected by Holm's procedure at level α".
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}
