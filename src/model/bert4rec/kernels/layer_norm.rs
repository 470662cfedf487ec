//! Layer norm over the last dimension with its backward pass (candle's fused layer norm
//! has none).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::*;
use crate::simd::{add_assign, vectorized};

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

    /// `[dx, dgamma, dbeta]` from the gradient `dy` of the output, computed by one op into
    /// one buffer (each gradient is a view of it).
    pub fn backward(self, x: &Tensor, gamma: &Tensor, dy: &Tensor) -> Result<[Tensor; 3]> {
        let all = x.contiguous()?.apply_op3_no_bwd(
            &dy.contiguous()?,
            &gamma.contiguous()?,
            &LayerNormGrad(self),
        )?;
        split_like(&all, [x.shape(), gamma.shape(), gamma.shape()])
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
        let out = map_rows(
            [x],
            n,
            #[inline(always)]
            |_, [x], y| {
                let (mean, rstd) = moments(x, self.eps);
                for (((y, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                    *y = (v - mean) * rstd * g + b;
                }
            },
        );
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
        let [dx, dgamma, dbeta] = self.backward(x, gamma, grad)?;
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
                vectorized(
                    #[inline(always)]
                    || {
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
                    },
                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::test_support::{close, var, weights};
    use candle_nn::ops;

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
}
