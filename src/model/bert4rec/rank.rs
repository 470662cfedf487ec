//! Turning a row of next-item logits into a top-k list: only items of the universe, never
//! a history track. Shared by validation during training and by serving, so both rank the
//! same way.

use std::cmp::Ordering;

/// The `k` best `(track, score)` of `scores` (indexed by track) among tracks where
/// `universe[track]` holds, skipping `history`; sorted by descending score, ties by id.
pub fn top_k(scores: &[f32], universe: &[bool], history: &[u32], k: usize) -> Vec<(u32, f32)> {
    let mut excluded = vec![false; scores.len()];
    for &t in history {
        if let Some(e) = excluded.get_mut(t as usize) {
            *e = true;
        }
    }
    let mut cands: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|&(t, s)| universe.get(t).copied().unwrap_or(false) && !excluded[t] && !s.is_nan())
        .map(|(t, &s)| (t as u32, s))
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| -> Ordering {
        b.1.partial_cmp(&a.1)
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    if k < cands.len() {
        if k == 0 {
            return Vec::new();
        }
        cands.select_nth_unstable_by(k - 1, order);
        cands.truncate(k);
    }
    cands.sort_unstable_by(order);
    cands
}

/// A membership table for `items` over `0..n`.
pub fn universe(items: &[u32], n: usize) -> Vec<bool> {
    let mut u = vec![false; n];
    for &t in items {
        if let Some(x) = u.get_mut(t as usize) {
            *x = true;
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_only_the_universe_without_history() {
        let scores = [0.9, 0.1, 0.8, 0.95, 0.5, 0.8];
        let u = universe(&[0, 1, 2, 4, 5], 6); // track 3 (best score) not recommendable
        assert_eq!(
            top_k(&scores, &u, &[0], 3),
            vec![(2, 0.8), (5, 0.8), (4, 0.5)]
        );
        assert_eq!(top_k(&scores, &u, &[], 10).len(), 5);
        assert!(top_k(&scores, &u, &[], 0).is_empty());
    }
}
