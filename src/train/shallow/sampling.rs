//! Positive pairs and negative users.
//!
//! The paper scores, for each positive (user, track) pair, 20 random *users* "who did not
//! interact with this item" against the track ([`NegativeSampling::NonInteracting`], the
//! default). The authors' published code draws uniformly over all users, the positive
//! one included ([`NegativeSampling::Uniform`]), kept behind a flag so either can run. A
//! track every train user played has no non-interacting user: its negatives fall back to
//! the uniform draw, and how many tracks do is logged.

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

pub use crate::model::shallow::NegativeSampling;

/// Draws negative users for positive pairs.
pub struct NegativeSampler {
    mode: NegativeSampling,
    n_users: u32,
    /// For each track, the sorted user rows that played it in train (CSR).
    offsets: Vec<usize>,
    players: Vec<u32>,
}

impl NegativeSampler {
    /// A sampler over `n_users` user rows that knows who played what in `train`.
    pub fn new(train: &Pairs, n_users: u32, n_tracks: usize, mode: NegativeSampling) -> Self {
        let mut offsets = vec![0usize; n_tracks + 1];
        for &t in &train.items {
            offsets[t as usize + 1] += 1;
        }
        for i in 0..n_tracks {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut players = vec![0u32; train.len()];
        for (&u, &t) in train.users.iter().zip(&train.items) {
            players[fill[t as usize]] = u;
            fill[t as usize] += 1;
        }
        for t in 0..n_tracks {
            let s = &mut players[offsets[t]..offsets[t + 1]];
            s.sort_unstable();
        }
        let sampler = Self {
            mode,
            n_users,
            offsets,
            players,
        };
        if mode == NegativeSampling::NonInteracting {
            let everyone = (0..n_tracks)
                .filter(|&t| sampler.played(t as u32).len() >= n_users as usize)
                .count();
            if everyone > 0 {
                tracing::info!(
                    tracks = everyone,
                    "tracks played by every train user: their negative users are drawn uniformly"
                );
            }
        }
        sampler
    }

    fn played(&self, track: u32) -> &[u32] {
        let t = track as usize;
        self.players
            .get(self.offsets[t]..self.offsets[t + 1])
            .unwrap_or(&[])
    }

    /// `per_pair` negative users for each pair of `pairs`, flattened row-major
    /// (`[pairs.len() * per_pair]`).
    pub fn draw(&self, pairs: &Pairs, per_pair: usize, rng: &mut impl Rng) -> Vec<u32> {
        let mut out = Vec::with_capacity(pairs.len() * per_pair);
        for (&pos, &track) in pairs.users.iter().zip(&pairs.items) {
            // Train pairs are aggregated, so each player appears once per track.
            let played = self.played(track);
            let pos_played = played.binary_search(&pos).is_ok();
            let outsiders =
                (self.n_users as usize).saturating_sub(played.len() + usize::from(!pos_played));
            let reject = self.mode == NegativeSampling::NonInteracting && outsiders > 0;
            for _ in 0..per_pair {
                out.push(loop {
                    let u = rng.random_range(0..self.n_users);
                    if !reject || (u != pos && played.binary_search(&u).is_err()) {
                        break u;
                    }
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// 6 users; track 0 played by users 0-2, track 1 by everyone, track 2 by nobody.
    fn train() -> Pairs {
        let mut p = Pairs::default();
        for u in 0..3 {
            p.push(u, 0);
        }
        for u in 0..6 {
            p.push(u, 1);
        }
        p
    }

    #[test]
    fn negatives_never_include_a_user_who_played_the_track_nor_the_positive() {
        let s = NegativeSampler::new(&train(), 6, 3, NegativeSampling::NonInteracting);
        let mut pairs = Pairs::default();
        for _ in 0..2_000 {
            pairs.push(1, 0); // a player of track 0
            pairs.push(4, 2); // nobody played track 2
        }
        let negs = s.draw(&pairs, 20, &mut StdRng::seed_from_u64(7));
        assert_eq!(negs.len(), pairs.len() * 20);
        let mut counts = [[0u32; 6]; 2];
        for (i, chunk) in negs.chunks(20).enumerate() {
            for &u in chunk {
                counts[i % 2][u as usize] += 1;
            }
        }
        // Track 0: only users 3, 4, 5, uniformly (40,000 draws: 13,333 each, sd ~94).
        assert_eq!(
            &counts[0][..3],
            &[0, 0, 0],
            "drew a user who played the track"
        );
        for &c in &counts[0][3..] {
            assert!((c as i64 - 13_333).abs() < 500, "{:?}", counts[0]);
        }
        // Track 2: everyone but the positive (user 4), uniformly: 8,000 each, sd ~80.
        assert_eq!(counts[1][4], 0, "drew the positive user");
        for (u, &c) in counts[1].iter().enumerate().filter(|(u, _)| *u != 4) {
            assert!((c as i64 - 8_000).abs() < 400, "user {u}: {:?}", counts[1]);
        }
    }

    #[test]
    fn a_track_everyone_played_falls_back_to_the_authors_uniform_draw() {
        let s = NegativeSampler::new(&train(), 6, 3, NegativeSampling::NonInteracting);
        let mut pairs = Pairs::default();
        (0..600).for_each(|_| pairs.push(2, 1));
        let negs = s.draw(&pairs, 10, &mut StdRng::seed_from_u64(1));
        let mut seen = [false; 6];
        negs.iter().for_each(|&u| seen[u as usize] = true);
        assert_eq!(
            seen, [true; 6],
            "uniform over all users, the positive included"
        );
    }

    #[test]
    fn the_uniform_mode_draws_over_all_users_the_positive_included() {
        let s = NegativeSampler::new(&train(), 6, 3, NegativeSampling::Uniform);
        let mut pairs = Pairs::default();
        (0..600).for_each(|_| pairs.push(0, 0));
        let negs = s.draw(&pairs, 10, &mut StdRng::seed_from_u64(3));
        let mut counts = [0u32; 6];
        negs.iter().for_each(|&u| counts[u as usize] += 1);
        for &c in &counts {
            assert!((c as i64 - 1_000).abs() < 150, "{counts:?}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_negatives() {
        let s = NegativeSampler::new(&train(), 6, 3, NegativeSampling::NonInteracting);
        let mut pairs = Pairs::default();
        pairs.push(0, 0);
        pairs.push(5, 2);
        let a = s.draw(&pairs, 5, &mut StdRng::seed_from_u64(1));
        let b = s.draw(&pairs, 5, &mut StdRng::seed_from_u64(1));
        assert_eq!(a, b);
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
