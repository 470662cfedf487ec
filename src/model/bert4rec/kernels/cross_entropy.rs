//! The masked cross-entropy over all items, keeping each row's log-sum-exp for backward.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::*;
use crate::simd::vectorized;

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
    use crate::model::bert4rec::kernels::test_support::{close, var};
    use candle_core::{Device, Var};

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
