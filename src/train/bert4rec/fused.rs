//! Fused CPU kernels, each with its own backward pass, for the encoder's element-wise work:
//! linear-layer biases, layer norm, GELU, dropout, softmax over attention scores (with the
//! key-padding mask and attention dropout folded in) and the masked cross-entropy.
//!
//! Written with candle's generic tensor ops, each of these is five to ten passes over
//! memory forward and as many backward, every one allocating a tensor as large as the
//! attention scores (`[batch, heads, len, len]`, 46 MB per layer at 64 × 300). Here each is
//! one pass forward and one backward, rows in parallel, compiled for the widest SIMD the
//! CPU has (see [`crate::simd::vectorized`]). The backward passes recompute what they need
//! (softmax rows, normalisation statistics) from the inputs instead of storing it.
//!
//! Dropout masks are not stored either: whether element `i` is kept is a hash of
//! `(seed, i)`, so the backward pass regenerates the forward mask exactly, and the mask
//! does not depend on how rows are split among threads.
//!
//! CUDA has none of these kernels; the encoder uses candle's ops there.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::simd::{add_assign, dot, vectorized};
use crate::train::cpu_f32 as contiguous;

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
            vectorized(|| {
                for (r, y) in out.chunks_mut(width).enumerate() {
                    let row = c * rows + r;
                    let start = row * width;
                    f(row, inputs.map(|x| &x[start..start + y.len()]), y);
                }
            })
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

/// `e^x` to about 2 ulp, branch-free so loops over it vectorise; exactly 0 below -87.
/// (Cephes' `expf`: range reduction by `ln 2`, degree-5 polynomial, exponent bits.)
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
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

/// Which elements dropout keeps, and the scale `1 / (1 - p)` of those kept: a counter-based
/// generator (SplitMix64's finaliser over `seed` and the element's index).
#[derive(Debug, Clone, Copy)]
pub struct DropoutMask {
    seed: u64,
    threshold: u32,
    scale: f32,
}

impl DropoutMask {
    pub fn new(seed: u64, p: f32) -> Self {
        Self {
            seed,
            threshold: (p as f64 * u32::MAX as f64) as u32,
            scale: 1.0 / (1.0 - p),
        }
    }

    /// The factor of element `i`: `0` (dropped) or `1 / (1 - p)`.
    #[inline(always)]
    fn factor(&self, i: usize) -> f32 {
        let mut z = self
            .seed
            .wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if (z >> 32) as u32 >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

/// Inverted dropout, `x * mask` (also its own backward: the gradient gets the same mask).
#[derive(Debug, Clone, Copy)]
pub struct Dropout(pub DropoutMask);

impl Dropout {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(self)
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let out = map_rows([x], CHUNK, |c, [x], out| {
            for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
                *o = v * self.0.factor(c * CHUNK + j);
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.apply(grad)?))
    }
}

/// Softmax over the last dimension of attention scores `[batch, heads, len, len]`, with
/// padding keys given weight exactly 0 and, in training, attention dropout applied.
#[derive(Debug, Clone)]
pub struct AttentionSoftmax {
    /// Per `(batch, key)`: whether the key is padding; `None` when nothing is padded.
    padding: Option<Arc<Vec<bool>>>,
    /// Rows of scores per batch row (`heads * len`).
    rows_per_batch: usize,
    dropout: Option<DropoutMask>,
}

impl AttentionSoftmax {
    pub fn new(padding: Option<Arc<Vec<bool>>>, heads: usize, len: usize) -> Self {
        Self {
            padding,
            rows_per_batch: heads * len,
            dropout: None,
        }
    }

    pub fn with_dropout(mut self, mask: Option<DropoutMask>) -> Self {
        self.dropout = mask;
        self
    }

    pub fn apply(&self, scores: &Tensor) -> Result<Tensor> {
        scores.contiguous()?.apply_op1(self.clone())
    }

    /// The padding flags of the keys of score row `row`, if any.
    fn padding_of(&self, row: usize, len: usize) -> Option<&[bool]> {
        let b = row / self.rows_per_batch;
        self.padding.as_ref().map(|p| &p[b * len..(b + 1) * len])
    }

    /// Writes the (undropped) softmax of `x` into `y`.
    #[inline(always)]
    fn softmax_row(x: &[f32], padding: Option<&[bool]>, y: &mut [f32]) {
        match padding {
            Some(pad) => {
                for ((y, &v), &p) in y.iter_mut().zip(x).zip(pad) {
                    *y = if p { f32::NEG_INFINITY } else { v };
                }
            }
            None => y.copy_from_slice(x),
        }
        let m = max(y);
        y.iter_mut().for_each(|v| *v = exp(*v - m));
        let inv = 1.0 / sum_of(y, |v| v);
        y.iter_mut().for_each(|v| *v *= inv);
    }
}

impl CustomOp1 for AttentionSoftmax {
    fn name(&self) -> &'static str {
        "attention-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let n = last_dim(l, self.name())?;
        let out = map_rows([x], n, |row, [x], y| {
            Self::softmax_row(x, self.padding_of(row, n), y);
            if let Some(mask) = &self.dropout {
                for (j, v) in y.iter_mut().enumerate() {
                    *v *= mask.factor(row * n + j);
                }
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(
            x.apply_op2(&grad, AttentionSoftmaxGrad(self.clone()))?,
        ))
    }
}

/// `dx = y * (dy - Σ dy·y)` with `y` the softmax recomputed from the scores and `dy` the
/// incoming gradient through the dropout mask.
struct AttentionSoftmaxGrad(AttentionSoftmax);

impl CustomOp2 for AttentionSoftmaxGrad {
    fn name(&self) -> &'static str {
        "attention-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        same_len([x, g], self.name())?;
        let n = last_dim(l1, self.name())?;
        let rows = rows_per_task(n);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(rows * n)
            .zip(x.par_chunks(rows * n).zip(g.par_chunks(rows * n)))
            .enumerate()
            .for_each(|(c, (out, (x, g)))| {
                let mut y = vec![0f32; n];
                vectorized(|| {
                    for (r, (dx, (x, g))) in out
                        .chunks_mut(n)
                        .zip(x.chunks(n).zip(g.chunks(n)))
                        .enumerate()
                    {
                        let row = c * rows + r;
                        AttentionSoftmax::softmax_row(x, self.0.padding_of(row, n), &mut y);
                        // dx holds dy (the gradient through the dropout mask) first.
                        match &self.0.dropout {
                            Some(mask) => {
                                for (j, (d, &g)) in dx.iter_mut().zip(g).enumerate() {
                                    *d = g * mask.factor(row * n + j);
                                }
                            }
                            None => dx.copy_from_slice(g),
                        }
                        let dot = dot(dx, &y);
                        for (d, &y) in dx.iter_mut().zip(&y) {
                            *d = y * (*d - dot);
                        }
                    }
                })
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Layer norm over the last dimension, `(x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNorm {
    pub eps: f32,
}

/// Mean and `1 / sqrt(var + eps)` of a row.
#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum_of(x, |v| v) / n;
    let var = sum_of(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl LayerNorm {
    pub fn apply(self, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op3(gamma, beta, self)
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let gamma = contiguous(s2, l2, self.name())?;
        let beta = contiguous(s3, l3, self.name())?;
        let n = last_dim(l1, self.name())?;
        if gamma.len() != n || beta.len() != n {
            candle_core::bail!("{}: gamma and beta need {n} values", self.name());
        }
        let out = map_rows([x], n, |_, [x], y| {
            let (mean, rstd) = moments(x, self.eps);
            for (((y, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                *y = (v - mean) * rstd * g + b;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = gamma.dim(0)?;
        let rows = x.elem_count() / n;
        // One buffer: `rows` rows of dx, then d gamma, then d beta.
        let all = x.apply_op3(&grad.contiguous()?, gamma, LayerNormGrad(*self))?;
        let dx = all.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dgamma = all.get(rows)?;
        let dbeta = all.get(rows + 1)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// `dx = rstd * (dy·γ - mean(dy·γ) - x̂ * mean(dy·γ·x̂))`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
struct LayerNormGrad(LayerNorm);

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "fused-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        let gamma = contiguous(s3, l3, self.name())?;
        let n = gamma.len();
        if x.len() % n != 0 || g.len() != x.len() {
            candle_core::bail!("{}: shapes do not match", self.name());
        }
        let total = x.len() / n;
        let rows = rows_per_task(n);
        let mut out = vec![0f32; x.len() + 2 * n];
        let (dx_all, params) = out.split_at_mut(x.len());
        let (dgamma, dbeta) = dx_all
            .par_chunks_mut(rows * n)
            .zip(x.par_chunks(rows * n).zip(g.par_chunks(rows * n)))
            .map(|(dx, (x, g))| {
                let mut dgamma = vec![0f32; n];
                let mut dbeta = vec![0f32; n];
                let mut xhat = vec![0f32; n];
                vectorized(|| {
                    for (dx, (x, g)) in dx.chunks_mut(n).zip(x.chunks(n).zip(g.chunks(n))) {
                        let (mean, rstd) = moments(x, self.0.eps);
                        let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
                        for j in 0..n {
                            xhat[j] = (x[j] - mean) * rstd;
                            let gg = g[j] * gamma[j];
                            dx[j] = gg;
                            a[j % LANES] += gg;
                            b[j % LANES] += gg * xhat[j];
                            dgamma[j] += g[j] * xhat[j];
                            dbeta[j] += g[j];
                        }
                        let a = a.iter().sum::<f32>() / n as f32;
                        let b = b.iter().sum::<f32>() / n as f32;
                        for (d, &xh) in dx.iter_mut().zip(&xhat) {
                            *d = rstd * (*d - a - xh * b);
                        }
                    }
                });
                (dgamma, dbeta)
            })
            .reduce(
                || (vec![0f32; n], vec![0f32; n]),
                |(mut ga, mut ba), (gb, bb)| {
                    add_assign(&mut ga, &gb);
                    add_assign(&mut ba, &bb);
                    (ga, ba)
                },
            );
        params[..n].copy_from_slice(&dgamma);
        params[n..].copy_from_slice(&dbeta);
        Ok((CpuStorage::F32(out), Shape::from((total + 2, n))))
    }
}

/// GELU with the exact (erf) form, as BERT's `hidden_act = "gelu"`.
#[derive(Debug, Clone, Copy)]
pub struct Gelu;

impl Gelu {
    pub fn apply(x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(Gelu)
    }
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let out = map_rows([x], CHUNK, |_, [x], out| {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2(&grad.contiguous()?, GeluGrad)?))
    }
}

/// `dx = dy * (Φ(x) + x φ(x))`.
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let x = contiguous(s1, l1, self.name())?;
        let g = contiguous(s2, l2, self.name())?;
        same_len([x, g], self.name())?;
        let out = map_rows([x, g], CHUNK, |_, [x, g], out| {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
                let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
                *o = g * (cdf + v * pdf);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `x + b` for `x: [rows, n]` and a bias `b: [n]`: the bias of a linear layer. candle's
/// broadcast add is fine forward, but its backward pass sums the gradient over rows with a
/// strided reduction that cost more than the layer's matrix product.
#[derive(Debug, Clone, Copy)]
pub struct BiasAdd;

impl BiasAdd {
    pub fn apply(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(bias, BiasAdd)
    }
}

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "fused-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let b = contiguous(s2, l2, self.name())?;
        let n = last_dim(l1, self.name())?;
        if b.len() != n {
            candle_core::bail!("{}: the bias needs {n} values", self.name());
        }
        let out = map_rows([x], n, |_, [x], y| {
            for ((y, &v), &b) in y.iter_mut().zip(x).zip(b) {
                *y = v + b;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let db = grad.apply_op1(ColumnSum)?;
        Ok((Some(grad), Some(db)))
    }
}

/// `Σ_rows x` of `x: [rows, n]`: per-task partial sums, then their sum.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let n = last_dim(l, self.name())?;
        let sums = x
            .par_chunks(rows_per_task(n) * n)
            .map(|x| {
                let mut acc = vec![0f32; n];
                x.chunks(n).for_each(|row| add_assign(&mut acc, row));
                acc
            })
            .reduce(
                || vec![0f32; n],
                |mut a, b| {
                    add_assign(&mut a, &b);
                    a
                },
            );
        Ok((CpuStorage::F32(sums), Shape::from(n)))
    }
}

/// Mean cross-entropy of `logits: [m, n]` against `targets: [m]` (u32), as a scalar.
/// Keeps each row's `log Σ exp` for its backward pass.
#[derive(Debug, Default)]
pub struct CrossEntropy {
    log_sum_exp: OnceLock<Vec<f32>>,
}

impl CrossEntropy {
    pub fn apply(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        logits
            .contiguous()?
            .apply_op2(&targets.contiguous()?, CrossEntropy::default())
    }
}

fn targets<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    rows: usize,
    n: usize,
    op: &str,
) -> Result<&'a [u32]> {
    let CpuStorage::U32(v) = s else {
        candle_core::bail!("{op}: targets must be u32");
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: targets must be contiguous");
    };
    let t = &v[start..end];
    if t.len() != rows || t.iter().any(|&t| t as usize >= n) {
        candle_core::bail!("{op}: need {rows} targets below {n}");
    }
    Ok(t)
}

/// `log Σ exp(x)` of a row.
#[inline(always)]
fn log_sum_exp(x: &[f32]) -> f32 {
    let m = max(x);
    m + sum_of(x, |v| exp(v - m)).ln()
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let n = last_dim(l1, self.name())?;
        let m = x.len() / n;
        let t = targets(s2, l2, m, n, self.name())?;
        let lse: Vec<f32> = x
            .par_chunks(n)
            .map(|row| vectorized(|| log_sum_exp(row)))
            .collect();
        let total: f64 = lse
            .iter()
            .zip(x.chunks(n).zip(t))
            .map(|(&lse, (row, &t))| (lse - row[t as usize]) as f64)
            .sum();
        // A second forward pass of the same op (not done by the encoder) keeps the first.
        let _ = self.log_sum_exp.set(lse);
        Ok((
            CpuStorage::F32(vec![(total / m as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(lse) = self.log_sum_exp.get() else {
            candle_core::bail!("{}: backward before forward", self.name());
        };
        let m = logits.dim(0)?;
        let grad = CrossEntropyGrad {
            scale: grad.to_scalar::<f32>()? / m as f32,
            log_sum_exp: lse.clone(),
        };
        Ok((Some(logits.apply_op2(targets, grad)?), None))
    }
}

/// `dx = scale * (softmax(x) - onehot(target))`.
struct CrossEntropyGrad {
    scale: f32,
    log_sum_exp: Vec<f32>,
}

impl CustomOp2 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let n = last_dim(l1, self.name())?;
        let t = targets(s2, l2, x.len() / n, n, self.name())?;
        if self.log_sum_exp.len() != t.len() {
            candle_core::bail!("{}: one log-sum-exp per row needed", self.name());
        }
        let out = map_rows([x], n, |row, [x], dx| {
            let lse = self.log_sum_exp[row];
            for (d, &v) in dx.iter_mut().zip(x) {
                *d = self.scale * exp(v - lse);
            }
            dx[t[row] as usize] -= self.scale;
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Var};
    use candle_nn::ops;

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    fn var(shape: &[usize], seed: u64) -> Var {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 7919 + seed * 104_729) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// Weights that make every output element's gradient different.
    fn weights(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

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

    #[test]
    fn layer_norm_matches_candle_forward_and_backward() {
        let x = var(&[37, 24], 1);
        let gamma = var(&[24], 2);
        let beta = var(&[24], 3);
        let w = weights(&[37, 24]);
        let ours = LayerNorm { eps: 1e-12 }.apply(&x, &gamma, &beta).unwrap();
        let reference = ops::layer_norm_slow(&x, &gamma, &beta, 1e-12).unwrap();
        close(&ours, &reference, 1e-5);
        let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &gamma, &beta] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-4);
        }
    }

    #[test]
    fn gelu_matches_candle_forward_and_backward() {
        let x = var(&[5, 300], 4);
        let w = weights(&[5, 300]);
        let ours = Gelu::apply(&x).unwrap();
        let reference = x.gelu_erf().unwrap();
        close(&ours, &reference, 1e-6);
        let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), 1e-5);
    }

    #[test]
    fn attention_softmax_masks_padding_and_matches_candle() {
        let (batch, heads, len) = (2, 3, 5);
        let x = var(&[batch, heads, len, len], 5);
        let w = weights(&[batch, heads, len, len]);
        // Row 1 pads its first two keys.
        let padding: Vec<bool> = (0..batch * len).map(|i| i == len || i == len + 1).collect();
        let bias: Vec<f32> = padding
            .iter()
            .map(|&p| if p { -1e9 } else { 0.0 })
            .collect();
        let bias = Tensor::from_vec(bias, (batch, 1, 1, len), &Device::Cpu).unwrap();
        let ours = AttentionSoftmax::new(Some(Arc::new(padding)), heads, len)
            .apply(&x)
            .unwrap();
        let reference = ops::softmax(&x.broadcast_add(&bias).unwrap(), D::Minus1).unwrap();
        close(&ours, &reference, 1e-6);
        let padded = ours.get(1).unwrap().narrow(D::Minus1, 0, 2).unwrap();
        assert_eq!(padded.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), 1e-5);
    }

    #[test]
    fn dropout_masks_agree_forward_and_backward_and_keep_the_expected_share() {
        let n = 100_000;
        let x = Var::from_tensor(&Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let mask = DropoutMask::new(7, 0.2);
        let y = Dropout(mask).apply(&x).unwrap();
        let kept = y.to_vec1::<f32>().unwrap();
        let share = kept.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
        assert!((share - 0.8).abs() < 0.01, "kept {share}");
        assert!(kept.iter().all(|&v| v == 0.0 || v == 1.25));
        // d(sum y)/dx is the mask itself.
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec1::<f32>().unwrap(), kept);
        // The attention softmax drops the same elements for the same seed: with equal
        // scores over 4 keys every kept weight is 0.25 / 0.8.
        let scores = Tensor::zeros((1, 1, 250, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let probs = AttentionSoftmax::new(None, 1, 250)
            .with_dropout(Some(mask))
            .apply(&scores)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (p, k) in probs.iter().zip(&kept) {
            assert_eq!(*p, k * 0.25);
        }
    }

    #[test]
    fn bias_add_matches_candle_forward_and_backward() {
        let x = var(&[70, 33], 8);
        let b = var(&[33], 9);
        let w = weights(&[70, 33]);
        let ours = BiasAdd::apply(&x, &b).unwrap();
        let reference = x.broadcast_add(&b).unwrap();
        close(&ours, &reference, 0.0);
        let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &b] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-5);
        }
    }

    #[test]
    fn cross_entropy_matches_a_hand_computed_case_and_candle() {
        // Row [0, ln 3] against target 1: -ln(3 / 4); row [0, 0] against 0: ln 2.
        let logits = Var::new(&[[0f32, 3f32.ln()], [0.0, 0.0]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
        let loss = CrossEntropy::apply(&logits, &t).unwrap();
        let want = (-(0.75f32).ln() + 2f32.ln()) / 2.0;
        assert!((loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        let g = loss.backward().unwrap();
        // d/dx = (softmax - onehot) / 2
        let want = [[0.125f32, -0.125], [-0.25, 0.25]];
        let got = g.get(&logits).unwrap().to_vec2::<f32>().unwrap();
        for (r, w) in got.iter().zip(want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{got:?}");
            }
        }
        let x = var(&[9, 70], 6);
        let t = Tensor::new(&[3u32, 69, 0, 5, 5, 12, 40, 41, 8], &Device::Cpu).unwrap();
        let ours = CrossEntropy::apply(&x, &t).unwrap();
        let reference = candle_nn::loss::cross_entropy(&x, &t).unwrap();
        close(&ours, &reference, 1e-6);
        let g1 = ours.backward().unwrap();
        let g2 = reference.backward().unwrap();
        close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), 1e-5);
    }
}
