//! A linear map onto the top principal directions of a set of rows, so that a graph over
//! high-dimensional embeddings (MERT's 1024-d) can be searched in a few dozen dimensions.
//!
//! The directions are the top eigenvectors of the *uncentred* second-moment matrix
//! `XᵀX / n`: they keep the most of every row's squared norm, which is what inner products
//! (the index's similarity) are made of. Found by orthogonal (subspace) iteration from a
//! seeded start, so the same rows always give the same map.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::simd::dot;

/// At most this many rows (evenly strided) estimate the second-moment matrix: the
/// directions of 56k tracks are found as well from 16k, at a third of the cost.
const SAMPLE_ROWS: usize = 16_384;
const MAX_ITERATIONS: usize = 200;
/// Stop when the captured energy changes by less than this (relative).
const TOLERANCE: f64 = 1e-7;
/// [`Projection::fit_to_knee`] keeps directions in steps of this many.
const STEP: usize = 16;
/// A step of directions that adds less than this share of the rows' energy lies past the
/// spectrum's knee, on its flat floor: spread over many directions, that energy moves
/// every inner product alike and does not reorder neighbours, while each direction kept
/// makes every distance of the graph walk dearer.
const KNEE_GAIN: f64 = 0.02;

#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    dim_in: usize,
    dim_out: usize,
    /// `dim_out` orthonormal rows of `dim_in` values.
    basis: Vec<f32>,
}

impl Projection {
    /// The leading directions of `rows` (row-major, `dim_in` values each) up to the
    /// spectrum's knee: from the `max_out` leading ones, as many steps of [`STEP`] as each
    /// add at least [`KNEE_GAIN`] of the rows' energy. On the `paper` demo data
    /// (`benches/knn.rs`) musicnn and mert keep 32 of 64 and are searched 1.3–1.7× faster
    /// at the same recall; mfcc and structureless rows keep all 64.
    pub fn fit_to_knee(rows: &[f32], dim_in: usize, max_out: usize) -> Self {
        let (mut full, energies, total) = Self::fit_with_energies(rows, dim_in, max_out);
        let mut keep = STEP.min(max_out);
        while keep < max_out {
            let gain: f64 = energies[keep..(keep + STEP).min(max_out)].iter().sum();
            if gain < KNEE_GAIN * total {
                break;
            }
            keep += STEP;
        }
        let keep = keep.min(max_out);
        full.basis.truncate(keep * dim_in);
        full.dim_out = keep;
        full
    }

    /// The `dim_out` leading directions of `rows` (row-major, `dim_in` values each).
    pub fn fit(rows: &[f32], dim_in: usize, dim_out: usize) -> Self {
        Self::fit_with_energies(rows, dim_in, dim_out).0
    }

    /// [`Projection::fit`], the energy (second moment) along each direction, both ordered
    /// by it, largest first, and the rows' whole energy.
    fn fit_with_energies(rows: &[f32], dim_in: usize, dim_out: usize) -> (Self, Vec<f64>, f64) {
        assert!(dim_out > 0 && dim_out <= dim_in, "0 < dim_out <= dim_in");
        let n = rows.len() / dim_in;
        let step = n.div_ceil(SAMPLE_ROWS).max(1);
        let sample: Vec<f32> = rows
            .chunks_exact(dim_in)
            .step_by(step)
            .flatten()
            .copied()
            .collect();
        let m = sample.len() / dim_in;
        // The second moment's trace: the energy of every direction together.
        let total = sample.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / m.max(1) as f64;
        let x = Tensor::from_vec(sample, (m, dim_in), &Device::Cpu).expect("shape checked");
        let gram = x
            .t()
            .and_then(|xt| xt.matmul(&x))
            .and_then(|g| g / m.max(1) as f64)
            .expect("cpu matmul");

        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut basis: Vec<f32> = (0..dim_out * dim_in)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        orthonormalize(&mut basis, dim_in);
        let mut energy = 0f64;
        let mut energies = vec![0f64; dim_out];
        for _ in 0..MAX_ITERATIONS {
            // basis ← orth(basis · C): C is symmetric, so each row becomes C v.
            let v = Tensor::from_slice(&basis, (dim_out, dim_in), &Device::Cpu).expect("shape");
            let cv = v.matmul(&gram).expect("cpu matmul");
            let next: Vec<f32> = cv.flatten_all().and_then(|t| t.to_vec1()).expect("f32");
            // Rayleigh quotients of the current basis: the energy it captures.
            energies = basis
                .chunks_exact(dim_in)
                .zip(next.chunks_exact(dim_in))
                .map(|(b, c)| dot(b, c) as f64)
                .collect();
            let captured: f64 = energies.iter().sum();
            basis = next;
            orthonormalize(&mut basis, dim_in);
            let converged = (captured - energy).abs() <= TOLERANCE * captured.abs().max(1e-12);
            energy = captured;
            if converged {
                break;
            }
        }
        // Largest first (the iteration converges to that order; this makes it exact).
        let mut order: Vec<usize> = (0..dim_out).collect();
        order.sort_by(|&a, &b| energies[b].total_cmp(&energies[a]).then(a.cmp(&b)));
        let basis = order
            .iter()
            .flat_map(|&i| &basis[i * dim_in..(i + 1) * dim_in])
            .copied()
            .collect();
        let energies = order.iter().map(|&i| energies[i]).collect();
        let fitted = Self {
            dim_in,
            dim_out,
            basis,
        };
        (fitted, energies, total)
    }

    /// Rebuilds a projection from its basis (as saved with [`Projection::basis`]).
    pub fn from_basis(basis: Vec<f32>, dim_in: usize, dim_out: usize) -> Option<Self> {
        (dim_out > 0 && basis.len() == dim_in * dim_out).then_some(Self {
            dim_in,
            dim_out,
            basis,
        })
    }

    pub fn dim_in(&self) -> usize {
        self.dim_in
    }

    pub fn dim_out(&self) -> usize {
        self.dim_out
    }

    /// Row-major `[dim_out, dim_in]`.
    pub fn basis(&self) -> &[f32] {
        &self.basis
    }

    /// The coordinates of `row` in the reduced space.
    pub fn apply(&self, row: &[f32]) -> Vec<f32> {
        self.basis
            .chunks_exact(self.dim_in)
            .map(|b| dot(b, row))
            .collect()
    }
}

/// Modified Gram–Schmidt over the rows of `basis`; a row that collapses (numerically
/// dependent on earlier ones) is left at zero, which a seeded Gaussian start never does.
fn orthonormalize(basis: &mut [f32], dim: usize) {
    let rows = basis.len() / dim;
    for i in 0..rows {
        let (done, rest) = basis.split_at_mut(i * dim);
        let row = &mut rest[..dim];
        for prev in done.chunks_exact(dim) {
            let p = dot(prev, row);
            row.iter_mut().zip(prev).for_each(|(r, q)| *r -= p * q);
        }
        crate::embeddings::l2_normalize(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean fraction of each row's squared norm that the reduced space keeps.
    fn retained_energy(p: &Projection, rows: &[f32]) -> f64 {
        let (mut kept, mut total) = (0f64, 0f64);
        for row in rows.chunks_exact(p.dim_in) {
            kept += p.apply(row).iter().map(|v| (v * v) as f64).sum::<f64>();
            total += row.iter().map(|v| (v * v) as f64).sum::<f64>();
        }
        kept / total
    }

    /// Rows spanning a known 3-d subspace of R^8 plus tiny noise: a 3-d projection keeps
    /// all of their energy and is orthonormal; the inner products of the projected rows
    /// equal the originals'.
    #[test]
    fn finds_the_subspace_the_rows_live_in() {
        let mut rng = StdRng::seed_from_u64(1);
        let axes: [[f32; 8]; 3] = [
            [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0],
        ];
        let rows: Vec<f32> = (0..500)
            .flat_map(|_| {
                let c: [f32; 3] = std::array::from_fn(|_| rng.sample(StandardNormal));
                (0..8)
                    .map(|j| (0..3).map(|a| c[a] * axes[a][j]).sum::<f32>())
                    .collect::<Vec<_>>()
            })
            .collect();
        let p = Projection::fit(&rows, 8, 3);
        assert!(
            retained_energy(&p, &rows) > 0.9999,
            "{}",
            retained_energy(&p, &rows)
        );
        for i in 0..3 {
            for j in 0..3 {
                let d = dot(&p.basis()[i * 8..][..8], &p.basis()[j * 8..][..8]);
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-5, "basis {i}·{j} = {d}");
            }
        }
        let (a, b) = (&rows[0..8], &rows[8..16]);
        let full = dot(a, b);
        let reduced = dot(&p.apply(a), &p.apply(b));
        assert!((full - reduced).abs() < 1e-4, "{full} vs {reduced}");
        // A 1-d projection keeps the largest direction (axis 2, norm 2): 4/(2+2+4) of the energy.
        let one = Projection::fit(&rows, 8, 1);
        let kept = retained_energy(&one, &rows);
        assert!((kept - 0.5).abs() < 0.05, "{kept}");
    }

    /// The knee: rows with 20 strong directions in R^96 over a faint floor keep two steps
    /// of 16 (the second adds the last four strong ones, the third only floor); Gaussian
    /// rows, whose every step adds a sixth of the energy, keep the maximum.
    #[test]
    fn keeps_directions_up_to_the_spectrums_knee() {
        let mut rng = StdRng::seed_from_u64(2);
        let structured: Vec<f32> = (0..4_000)
            .flat_map(|_| {
                (0..96)
                    .map(|j| {
                        let scale = if j < 20 { 1.0 } else { 0.02 };
                        scale * rng.sample::<f32, _>(StandardNormal)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let p = Projection::fit_to_knee(&structured, 96, 64);
        assert_eq!(p.dim_out(), 32);
        assert_eq!(p.basis().len(), 32 * 96);
        assert!(retained_energy(&p, &structured) > 0.99);
        let gaussian: Vec<f32> = (0..4_000 * 96)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        assert_eq!(Projection::fit_to_knee(&gaussian, 96, 64).dim_out(), 64);
        assert_eq!(Projection::fit_to_knee(&structured, 96, 8).dim_out(), 8);
    }
}
