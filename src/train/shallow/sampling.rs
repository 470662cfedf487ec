//! Positive pairs and negative users.
//!
//! The paper scores, for each positive (user, track) pair, 20 random *users* against the
//! track. We draw them uniformly over the other train users — never the positive user
//! (the authors' code allows it; a "negative" equal to the positive only adds noise).

use rand::Rng;

/// Positive pairs as two parallel columns: user table row and catalog track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs {
    pub users: Vec<u32>,
    pub items: Vec<u32>,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn push(&mut self, user: u32, item: u32) {
        self.users.push(user);
        self.items.push(item);
    }

    /// The pairs at the positions listed in `order`, in that order.
    pub fn gather(&self, order: &[u32]) -> Pairs {
        Pairs {
            users: order.iter().map(|&i| self.users[i as usize]).collect(),
            items: order.iter().map(|&i| self.items[i as usize]).collect(),
        }
    }
}

/// `per_pair` negative users for each positive user, flattened row-major
/// (`[positives.len() * per_pair]`), uniform over `0..n_users` minus the positive.
///
/// Panics if `n_users < 2` (there is no other user to draw); callers check this first.
pub fn negative_users(
    positives: &[u32],
    n_users: u32,
    per_pair: usize,
    rng: &mut impl Rng,
) -> Vec<u32> {
    assert!(n_users >= 2, "negative sampling needs at least two users");
    let mut out = Vec::with_capacity(positives.len() * per_pair);
    for &pos in positives {
        for _ in 0..per_pair {
            // Uniform over the n-1 others: draw from 0..n-1 and skip over the positive.
            let draw = rng.random_range(0..n_users - 1);
            out.push(if draw >= pos { draw + 1 } else { draw });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn negatives_are_uniform_over_the_other_users_and_never_the_positive() {
        let n_users = 5u32;
        let positives: Vec<u32> = (0..n_users).cycle().take(10_000).collect();
        let per_pair = 20;
        let negs = negative_users(&positives, n_users, per_pair, &mut StdRng::seed_from_u64(7));
        assert_eq!(negs.len(), positives.len() * per_pair);
        // For each positive user, count how often each other user was drawn.
        let mut counts = vec![vec![0u32; n_users as usize]; n_users as usize];
        for (i, &pos) in positives.iter().enumerate() {
            for &neg in &negs[i * per_pair..(i + 1) * per_pair] {
                assert_ne!(neg, pos, "drew the positive user");
                assert!(neg < n_users);
                counts[pos as usize][neg as usize] += 1;
            }
        }
        // Each positive user has 2,000 pairs x 20 draws = 40,000 draws over 4 others:
        // expected 10,000 each, binomial sd ~87; allow 5 sd.
        for (pos, row) in counts.iter().enumerate() {
            for (neg, &c) in row.iter().enumerate() {
                if pos == neg {
                    assert_eq!(c, 0);
                } else {
                    assert!((c as i64 - 10_000).abs() < 435, "user {pos} -> {neg}: {c}");
                }
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_negatives() {
        let pos = [0, 3, 1];
        let a = negative_users(&pos, 4, 3, &mut StdRng::seed_from_u64(1));
        let b = negative_users(&pos, 4, 3, &mut StdRng::seed_from_u64(1));
        assert_eq!(a, b);
        let two = negative_users(&[0, 1], 2, 4, &mut StdRng::seed_from_u64(1));
        assert_eq!(
            two,
            vec![1, 1, 1, 1, 0, 0, 0, 0],
            "two users: the other one"
        );
    }

    #[test]
    fn gather_reorders_both_columns() {
        let mut p = Pairs::default();
        p.push(1, 10);
        p.push(2, 20);
        p.push(3, 30);
        let g = p.gather(&[2, 0]);
        assert_eq!(g.users, vec![3, 1]);
        assert_eq!(g.items, vec![30, 10]);
    }
}
