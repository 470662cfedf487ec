//! Catalogues for the index tests: random unit rows, and a duplicate-heavy catalogue
//! whose tracks share few vectors with skewed popularity (as genre-flag or metadata
//! embeddings and re-released recordings do).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::embeddings::l2_normalize;

/// `n` random L2-normalised rows of `dim` values.
pub fn unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows: Vec<f32> = (0..n * dim).map(|_| rng.sample(StandardNormal)).collect();
    rows.chunks_exact_mut(dim).for_each(l2_normalize);
    rows
}

/// `n` random unit rows of `dim` values lying in a `sub`-dimensional subspace (the
/// first `sub` coordinates), as embeddings lie near a low-dimensional subspace.
pub fn subspace_rows(n: usize, dim: usize, sub: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows = vec![0f32; n * dim];
    for row in rows.chunks_exact_mut(dim) {
        row[..sub]
            .iter_mut()
            .for_each(|v| *v = rng.sample(StandardNormal));
        l2_normalize(row);
    }
    rows
}

/// `n` rows drawn from `distinct` random unit vectors, vector `j` with probability about
/// `1/(j+1)`: a few vectors carry most tracks.
pub fn duplicate_heavy(n: usize, distinct: usize, dim: usize, seed: u64) -> Vec<f32> {
    let bases = unit_rows(distinct, dim, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut rows = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let j = ((distinct as f64).powf(rng.random::<f64>()) as usize - 1).min(distinct - 1);
        rows.extend_from_slice(&bases[j * dim..(j + 1) * dim]);
    }
    rows
}
