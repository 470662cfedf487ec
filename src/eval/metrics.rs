//! Ranking metrics per user, with the definitions of the `rs_metrics` package that the
//! paper used. For held-out set T and the first k recommendations P:
//!
//! - HitRate@k = 1 if any of P is in T, else 0
//! - Recall@k = |T ∩ P| / |T|
//! - Precision@k = |T ∩ P| / |P|
//! - MRR@k = 1 / rank of the first hit, 0 if none
//! - NDCG@k = Σ_{i: P_i ∈ T} 1/log2(i+2) ÷ Σ_{i < min(|T|, k)} 1/log2(i+2)
//!
//! A user with no recommendations scores 0 everywhere.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// One value per metric. Used for a user's scores (`Metrics<f64>`) and for aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metrics<T> {
    pub hit_rate: T,
    pub recall: T,
    pub precision: T,
    pub mrr: T,
    pub ndcg: T,
}

impl<T> Metrics<T> {
    pub const NAMES: [&'static str; 5] = ["hit_rate", "recall", "precision", "mrr", "ndcg"];

    pub fn values(&self) -> [&T; 5] {
        [
            &self.hit_rate,
            &self.recall,
            &self.precision,
            &self.mrr,
            &self.ndcg,
        ]
    }

    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> Metrics<U> {
        Metrics {
            hit_rate: f(&self.hit_rate),
            recall: f(&self.recall),
            precision: f(&self.precision),
            mrr: f(&self.mrr),
            ndcg: f(&self.ndcg),
        }
    }

    pub fn from_fn(mut f: impl FnMut(usize) -> T) -> Self {
        Metrics {
            hit_rate: f(0),
            recall: f(1),
            precision: f(2),
            mrr: f(3),
            ndcg: f(4),
        }
    }
}

/// Scores one user's recommendations (best first) against their held-out tracks.
pub fn score_user(recommended: &[u32], held_out: &[u32], k: usize) -> Metrics<f64> {
    let relevant: HashSet<u32> = held_out.iter().copied().collect();
    let p = &recommended[..recommended.len().min(k)];
    if p.is_empty() || relevant.is_empty() {
        return Metrics::default();
    }
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let mut hits = 0usize;
    let mut first_hit = None;
    let mut dcg = 0.0;
    for (i, t) in p.iter().enumerate() {
        if relevant.contains(t) {
            hits += 1;
            first_hit.get_or_insert(i);
            dcg += discount(i);
        }
    }
    let idcg: f64 = (0..relevant.len().min(k)).map(discount).sum();
    Metrics {
        hit_rate: if hits > 0 { 1.0 } else { 0.0 },
        recall: hits as f64 / relevant.len() as f64,
        precision: hits as f64 / p.len() as f64,
        mrr: first_hit.map_or(0.0, |i| 1.0 / (i + 1) as f64),
        ndcg: dcg / idcg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn hand_computed_case_with_hits_at_ranks_two_and_four() {
        // T = {7, 9, 11}; P = [1, 7, 3, 9]; hits at positions 1 and 3 (0-based).
        let m = score_user(&[1, 7, 3, 9], &[7, 9, 11], 4);
        close(m.hit_rate, 1.0);
        close(m.recall, 2.0 / 3.0);
        close(m.precision, 0.5);
        close(m.mrr, 0.5);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        close(m.ndcg, dcg / idcg);
    }

    #[test]
    fn more_held_out_than_k_caps_the_ideal_dcg_at_k() {
        // |T| = 5 > k = 2; both recommendations hit: NDCG is 1, recall is 2/5.
        let m = score_user(&[1, 2, 3], &[1, 2, 3, 4, 5], 2);
        close(m.ndcg, 1.0);
        close(m.recall, 0.4);
        close(m.precision, 1.0);
        close(m.mrr, 1.0);
    }

    #[test]
    fn fewer_than_k_recommendations_divide_precision_by_what_was_given() {
        // Only 2 recommendations for k = 50; one hit at rank 2.
        let m = score_user(&[4, 8], &[8], 50);
        close(m.precision, 0.5);
        close(m.recall, 1.0);
        close(m.mrr, 0.5);
        close(m.ndcg, 1.0 / 3f64.log2());
    }

    #[test]
    fn no_recommendations_or_no_hits_score_zero() {
        assert_eq!(score_user(&[], &[1, 2], 50), Metrics::default());
        assert_eq!(score_user(&[3, 4], &[1, 2], 50), Metrics::default());
    }

    #[test]
    fn only_the_first_k_count() {
        let m = score_user(&[1, 2, 3], &[3], 2);
        assert_eq!(m, Metrics::default());
    }
}
