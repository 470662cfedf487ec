//! Fused CPU kernels, each with its own backward pass, for the whole encoder: the input
//! embeddings, linear layers, multi-head attention (key-padding mask and attention dropout
//! folded in), layer norm, GELU, dropout, and the tied head with its masked cross-entropy.
//!
//! Written with candle's generic tensor ops, each element-wise step is five to ten passes
//! over memory forward and as many backward, and attention allocates tensors as large as
//! its scores (`[batch, heads, len, len]`, 46 MB per layer at 64 × 300). Here each is one
//! pass forward and one backward, rows in parallel, compiled for the widest SIMD the CPU
//! has (see [`crate::simd::vectorized`]), and the matrix products run on faer's kernels
//! ([`gemm`]). The backward passes recompute what they need (softmax rows, normalisation
//! statistics) from the inputs instead of storing it.
//!
//! Dropout masks are not stored either: whether element `i` is kept is a hash of
//! `(seed, i)`, so the backward pass regenerates the forward mask exactly, and the mask
//! does not depend on how rows are split among threads.
//!
//! CUDA has none of these kernels; the encoder uses candle's ops there.
//!
//! One file per op: [`embedding`], [`linear`], [`attention`], [`layer_norm`],
//! [`elementwise`] (GELU), [`dropout`], [`cross_entropy`] (the tied head's loss); [`gemm`]
//! wraps faer; this file holds the row-parallel scaffolding and the scalar functions they
//! share. Each op's `backward` is callable on its own: training on the CPU runs them in
//! order itself rather than through candle's autograd (see the encoder's `cpu` module).

mod attention;
mod cross_entropy;
mod dropout;
mod elementwise;
mod embedding;
mod gemm;
mod layer_norm;
mod linear;

pub use attention::Attention;
pub use cross_entropy::{HeadLoss, log_softmax_rows};
pub use dropout::{Dropout, DropoutMask, Residual};
pub use elementwise::Gelu;
pub use embedding::Embed;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, Product};

use candle_core::{Layout, Result, Shape, Tensor};
use rayon::prelude::*;

pub(crate) use crate::model::device::cpu_f32 as contiguous;
use crate::simd::vectorized;

/// Elements handed to one parallel task: large enough to amortise scheduling.
const CHUNK: usize = 1 << 14;

fn last_dim(l: &Layout, op: &str) -> Result<usize> {
    match l.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{op}: expected a non-empty last dimension"),
    }
}

/// Rows of `width` per parallel task, so a task covers about [`CHUNK`] elements.
fn rows_per_task(width: usize) -> usize {
    (CHUNK / width).max(1)
}

/// A fresh output as long as the (equally long) `inputs`, filled row by row:
/// `f(r, inputs' row r, output row r)` for rows of `width`, rows split among parallel
/// tasks of about [`CHUNK`] elements, each task vectorised. The last row is shorter when
/// `width` does not divide the length (element-wise ops use rows of [`CHUNK`]).
fn map_rows<const K: usize>(
    inputs: [&[f32]; K],
    width: usize,
    f: impl Fn(usize, [&[f32]; K], &mut [f32]) + Sync,
) -> Vec<f32> {
    let rows = rows_per_task(width);
    let mut out = vec![0f32; inputs[0].len()];
    out.par_chunks_mut(rows * width)
        .enumerate()
        .for_each(|(c, out)| {
            vectorized(
                #[inline(always)]
                || {
                    for (r, y) in out.chunks_mut(width).enumerate() {
                        let row = c * rows + r;
                        let start = row * width;
                        f(row, inputs.map(|x| &x[start..start + y.len()]), y);
                    }
                },
            )
        });
    out
}

/// Checks that `inputs` are all as long as the first, so [`map_rows`] may slice them alike.
fn same_len<const K: usize>(inputs: [&[f32]; K], op: &str) -> Result<()> {
    if inputs.iter().any(|x| x.len() != inputs[0].len()) {
        candle_core::bail!("{op}: inputs of different lengths");
    }
    Ok(())
}

/// Consecutive parts of the buffer `all`, each of the matching shape: how a backward pass
/// that computes several gradients in one op (one buffer) hands each back, as views
/// without copies.
fn split_like<const K: usize>(all: &Tensor, shapes: [&Shape; K]) -> Result<[Tensor; K]> {
    let all = all.flatten_all()?;
    let mut start = 0;
    let parts = shapes
        .iter()
        .map(|&shape| {
            let part = all.narrow(0, start, shape.elem_count())?.reshape(shape);
            start += shape.elem_count();
            part
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.try_into().expect("one part per tensor"))
}

/// `e^x` to about 2 ulp, branch-free so loops over it vectorise; exactly 0 below -87.
/// (Cephes' `expf`: range reduction by `ln 2`, degree-5 polynomial, exponent bits.) The
/// integer `n` is read from the bits of `x log2(e) + 1.5 · 2^23` rather than cast from a
/// float: Rust's saturating float-to-int cast keeps LLVM from vectorising the loop.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // The low bits of `shifted` hold n (two's complement), so these are 2^n's exponent bits.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    let scale = f32::from_bits(biased << 23);
    if x < -87.0 { 0.0 } else { y * scale }
}

/// `erf(x)` to 4e-7 in f32 (Abramowitz & Stegun 7.1.26: 1.5e-7 in exact arithmetic),
/// branch-free.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// Eight independent lanes for reductions, which the compiler turns into one vector
/// register (a plain fold over floats cannot be reordered, so it would not vectorise).
const LANES: usize = 8;

/// `Σ f(v)` over `x`.
#[inline(always)]
fn sum_of(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (chunks, tail) = x.as_chunks::<LANES>();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let (chunks, tail) = x.as_chunks::<LANES>();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

#[cfg(test)]
pub(crate) mod test_support {
    use candle_core::{Device, Tensor, Var};

    pub(crate) fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    pub(crate) fn var(shape: &[usize], seed: u64) -> Var {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 7919 + seed * 104_729) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// Weights that make every output element's gradient different.
    pub(crate) fn weights(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_match_the_standard_library() {
        for i in -1740..=1760 {
            let x = i as f32 * 0.05;
            let e = x.exp();
            assert!((exp(x) - e).abs() <= 3e-7 * e, "exp({x})");
            let want = candle_core::cpu::erf::erf_f32(x);
            assert!(
                (erf(x) - want).abs() < 4e-7,
                "erf({x}): {} vs {want}",
                erf(x)
            );
        }
        assert_eq!(exp(-1e9), 0.0);
    }
}
