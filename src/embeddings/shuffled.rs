//! The shuffled-embedding control of a cold-start evaluation: a backend whose rows are
//! permuted among the tracks by a seed. It keeps every statistic of the matrix (the same
//! multiset of rows, the same dimension and spread) and breaks only the link between a
//! track and its content, so what a model scores on cold tracks with it is what the
//! backend's content is worth against chance.
//!
//! It is a real backend variant, named `<backend>-shuffled` (seed 0) or
//! `<backend>-shuffled-<seed>`: every command that takes a backend accepts the name, and
//! trained checkpoints carry it.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::Embeddings;

const SUFFIX: &str = "-shuffled";

/// The base backend and seed of a shuffled name; `None` for any other name.
pub fn parse(name: &str) -> Option<(&str, u64)> {
    if let Some(base) = name.strip_suffix(SUFFIX) {
        return (!base.is_empty()).then_some((base, 0));
    }
    let (base, seed) = name.rsplit_once(&format!("{SUFFIX}-"))?;
    let seed = seed.parse().ok()?;
    (!base.is_empty()).then_some((base, seed))
}

/// The name of `base` shuffled with `seed` (the inverse of [`parse`]).
pub fn name(base: &str, seed: u64) -> String {
    if seed == 0 {
        format!("{base}{SUFFIX}")
    } else {
        format!("{base}{SUFFIX}-{seed}")
    }
}

/// The permutation of `n` rows drawn with `seed`: row `i` of the shuffled matrix is
/// row `permutation[i]` of the original.
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    p.shuffle(&mut StdRng::seed_from_u64(seed));
    p
}

impl Embeddings {
    /// This backend with its rows permuted by `seed`, named [`name`]`(backend, seed)`.
    pub fn shuffled(&self, seed: u64) -> Embeddings {
        let mut raw = Vec::with_capacity(self.raw.len());
        for &from in &permutation(self.len(), seed) {
            raw.extend_from_slice(self.row(from));
        }
        Embeddings::from_parts(&name(&self.backend, seed), self.dim, raw)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn names_round_trip_and_other_names_are_not_shuffled() {
        assert_eq!(parse("musicnn-shuffled"), Some(("musicnn", 0)));
        assert_eq!(parse("mert-v1-shuffled-7"), Some(("mert-v1", 7)));
        assert_eq!(parse(&name("a-b", 12)), Some(("a-b", 12)));
        assert_eq!(parse(&name("a", 0)), Some(("a", 0)));
        for other in [
            "musicnn",
            "shuffled",
            "-shuffled",
            "x-shuffled-",
            "x-shuffled-y",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_control_is_a_seeded_permutation_of_the_rows() {
        let (n, dim) = (40, 3);
        let raw: Vec<f32> = (0..n * dim).map(|i| (i * 7 % 31) as f32 - 9.5).collect();
        let e = Embeddings::new("b", raw, dim, Path::new("b.npy")).unwrap();
        let s = e.shuffled(3);
        assert_eq!(
            (s.backend.as_str(), s.dim, s.len()),
            ("b-shuffled-3", dim, n)
        );
        // The same multiset of rows (compared as sorted bit patterns).
        let rows = |m: &Embeddings| {
            let mut r: Vec<Vec<u32>> = (0..m.len() as u32)
                .map(|t| m.row(t).iter().map(|v| v.to_bits()).collect())
                .collect();
            r.sort();
            r
        };
        assert_eq!(rows(&s), rows(&e));
        // Row i is row p[i] of the original, its normalised copy too.
        let p = permutation(n, 3);
        for i in 0..n as u32 {
            assert_eq!(s.row(i), e.row(p[i as usize]));
            assert_eq!(s.normalized_row(i), e.normalized_row(p[i as usize]));
        }
        // It moves rows, deterministically per seed, differently across seeds.
        assert!((0..n).filter(|&i| p[i] as usize != i).count() > n / 2);
        assert_eq!(e.shuffled(3).raw(), s.raw());
        assert_ne!(e.shuffled(4).raw(), s.raw());
    }
}
