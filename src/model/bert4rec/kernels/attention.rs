//! The attention softmax with the key-padding mask and attention dropout folded in, and
//! its backward pass.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::*;
use crate::simd::{dot, vectorized};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::test_support::{close, var, weights};
    use candle_core::{D, Device};
    use candle_nn::ops;

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
}
