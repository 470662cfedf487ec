//! The tied head and its masked cross-entropy in one op: logits `hidden · itemsᵀ`, the mean
//! cross-entropy over all items, and the gradients, computed together in blocks of rows.
//!
//! The logits (`[masked positions, items]`, 123 MB at 64 × 300 over 8,000 tracks) exist
//! one block at a time: each block's logits become its gradient in place, which is
//! multiplied back at once. A frozen item table gets no gradient; candle's matmul
//! backward would compute it anyway (as much work again as the head's forward product).

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{all_threads, gemm, view, view_mut};
use super::*;
use crate::simd::vectorized;

/// Logits of one block at most this many values (16 MB), so a block stays small while a
/// catalogue of any size still gets whole rows.
const BLOCK_VALUES: usize = 1 << 22;

/// Mean cross-entropy of the logits `hidden · itemsᵀ` (`hidden: [m, h]`,
/// `items: [n, h]`) against `targets` (`m` tracks below `n`), as a scalar.
#[derive(Debug)]
pub struct HeadLoss {
    targets: Vec<u32>,
    /// Whether gradients are wanted, for `hidden` and for `items`.
    train: (bool, bool),
    grads: OnceLock<(Vec<f32>, Option<Vec<f32>>)>,
}

impl HeadLoss {
    pub fn apply(hidden: &Tensor, items: &Tensor, targets: &[u32]) -> Result<Tensor> {
        let op = HeadLoss {
            targets: targets.to_vec(),
            train: (hidden.track_op(), items.track_op()),
            grads: OnceLock::new(),
        };
        hidden.contiguous()?.apply_op2(&items.contiguous()?, op)
    }

    /// The loss and its gradients together, outside candle's autograd: `(loss, d hidden,
    /// d items)`, the last only when `train_items`.
    pub fn loss_and_gradients(
        hidden: &Tensor,
        items: &Tensor,
        targets: &[u32],
        train_items: bool,
    ) -> Result<(f32, Tensor, Option<Tensor>)> {
        let op = HeadLoss {
            targets: targets.to_vec(),
            train: (true, train_items),
            grads: OnceLock::new(),
        };
        let loss = (hidden.contiguous()?)
            .apply_op2_no_bwd(&items.contiguous()?, &op)?
            .to_scalar::<f32>()?;
        let Some((d_hidden, d_items)) = op.grads.into_inner() else {
            candle_core::bail!("fused-head-loss: no gradients after the forward pass");
        };
        let dev = hidden.device();
        let d_items = (d_items.map(|d| Tensor::from_vec(d, items.shape(), dev))).transpose()?;
        Ok((
            loss,
            Tensor::from_vec(d_hidden, hidden.shape(), dev)?,
            d_items,
        ))
    }
}

impl CustomOp2 for HeadLoss {
    fn name(&self) -> &'static str {
        "fused-head-loss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let hidden = contiguous(s1, l1, self.name())?;
        let items = contiguous(s2, l2, self.name())?;
        let (m, h) = l1.shape().dims2()?;
        let (n, items_h) = l2.shape().dims2()?;
        if items_h != h || m == 0 || self.targets.len() != m {
            candle_core::bail!(
                "{}: need [m, h] states, [n, h] items, m targets",
                self.name()
            );
        }
        if self.targets.iter().any(|&t| t as usize >= n) {
            candle_core::bail!("{}: a target is not below {n}", self.name());
        }
        let (train_hidden, train_items) = self.train;
        let mut d_hidden = vec![0f32; if train_hidden { m * h } else { 0 }];
        let mut d_items = train_items.then(|| vec![0f32; n * h]);
        let items_m = view(items, n, h, h);
        let block = (BLOCK_VALUES / n).clamp(1, m);
        let mut logits = vec![0f32; block * n];
        let mut total = 0f64;
        let scale = 1.0 / m as f32;
        for (b, targets) in self.targets.chunks(block).enumerate() {
            let rows = targets.len();
            let start = b * block;
            let x = view(&hidden[start * h..], rows, h, h);
            let logits = &mut logits[..rows * n];
            gemm(
                view_mut(logits, rows, n, n),
                false,
                x,
                items_m.transpose(),
                1.0,
                all_threads(),
            );
            // Each row's loss, and its logits turned into d loss / d logits.
            total += logits
                .par_chunks_mut(n)
                .zip(targets)
                .map(|(row, &t)| {
                    vectorized(
                        #[inline(always)]
                        || {
                            // loss = log Σ exp(row) - row[t]; d/drow = softmax(row) - onehot(t).
                            let (m, target) = (max(row), row[t as usize]);
                            row.iter_mut().for_each(|v| *v = exp(*v - m));
                            let sum = sum_of(row, |v| v);
                            let loss = (m + sum.ln() - target) as f64;
                            let norm = scale / sum;
                            row.iter_mut().for_each(|v| *v *= norm);
                            row[t as usize] -= scale;
                            loss
                        },
                    )
                })
                .sum::<f64>();
            let d_logits = view(logits, rows, n, n);
            if train_hidden {
                let d = view_mut(&mut d_hidden[start * h..], rows, h, h);
                gemm(d, false, d_logits, items_m, 1.0, all_threads());
            }
            if let Some(d_items) = d_items.as_mut() {
                let d = view_mut(d_items, n, h, h);
                gemm(d, true, d_logits.transpose(), x, 1.0, all_threads());
            }
        }
        // A second forward pass of the same op (not done by the encoder) keeps the first.
        let _ = self.grads.set((d_hidden, d_items));
        Ok((
            CpuStorage::F32(vec![(total / m as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        items: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some((d_hidden, d_items)) = self.grads.get() else {
            candle_core::bail!("{}: backward before forward", self.name());
        };
        let g = grad.to_scalar::<f32>()? as f64;
        let scaled = |d: &[f32], like: &Tensor| -> Result<Tensor> {
            let t = Tensor::from_slice(d, like.shape(), like.device())?;
            if g == 1.0 { Ok(t) } else { t.affine(g, 0.0) }
        };
        let d_hidden = match self.train.0 {
            true => Some(scaled(d_hidden, hidden)?),
            false => None,
        };
        let d_items = d_items.as_deref().map(|d| scaled(d, items)).transpose()?;
        Ok((d_hidden, d_items))
    }
}

/// The log-softmax of each row of `width` in place: next-item log-probabilities from the
/// head's logits. Rows in parallel, one pass for the maximum, one for the sum, one to write.
pub fn log_softmax_rows(x: &mut [f32], width: usize) {
    x.par_chunks_mut(width.max(1)).for_each(|row| {
        vectorized(
            #[inline(always)]
            || {
                let m = max(row);
                let log_sum = m + sum_of(row, |v| exp(v - m)).ln();
                row.iter_mut().for_each(|v| *v -= log_sum);
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::test_support::{close, var};
    use candle_core::{Device, Var};

    #[test]
    fn head_loss_matches_a_hand_computed_case() {
        // Items [1, 0] and [0, 1]. State [0, ln 3] against item 1: -ln(3 / 4); state
        // [0, 0] against item 0: ln 2.
        let dev = Device::Cpu;
        let items = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &dev).unwrap();
        let hidden = Var::new(&[[0f32, 3f32.ln()], [0.0, 0.0]], &dev).unwrap();
        let loss = HeadLoss::apply(&hidden, &items, &[1, 0]).unwrap();
        let want = (-(0.75f32).ln() + 2f32.ln()) / 2.0;
        assert!((loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        // d/dlogits = (softmax - onehot) / 2, and the items are the identity.
        let g = loss.backward().unwrap();
        let want = [[0.125f32, -0.125], [-0.25, 0.25]];
        let got = g.get(&hidden).unwrap().to_vec2::<f32>().unwrap();
        for (r, w) in got.iter().zip(want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{got:?}");
            }
        }
        // A constant table gets no gradient.
        assert!(g.get(&items).is_none());
    }

    #[test]
    fn head_loss_matches_candle_over_several_blocks_with_a_trained_table() {
        // 1,500 rows of logits over 7,000 items: blocks of 599 rows, the last one short.
        let (m, n, h) = (1_500, 7_000, 5);
        let hidden = var(&[m, h], 6);
        let items = var(&[n, h], 7);
        let targets: Vec<u32> = (0..m as u32).map(|i| (i * 7_919) % n as u32).collect();
        let ours = HeadLoss::apply(&hidden, &items, &targets).unwrap();
        let t = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
        let logits = hidden.matmul(&items.t().unwrap()).unwrap();
        let reference = candle_nn::loss::cross_entropy(&logits, &t).unwrap();
        close(&ours, &reference, 1e-5);
        let g1 = (&ours * 3.0).unwrap().backward().unwrap();
        let g2 = (&reference * 3.0).unwrap().backward().unwrap();
        for v in [&hidden, &items] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-4);
        }
    }

    #[test]
    fn log_softmax_rows_match_candle() {
        let x = var(&[6, 5_001], 4);
        let mut ours = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        log_softmax_rows(&mut ours, 5_001);
        let want = candle_nn::ops::log_softmax(x.as_tensor(), candle_core::D::Minus1).unwrap();
        let ours = Tensor::from_vec(ours, (6, 5_001), &Device::Cpu).unwrap();
        close(&ours, &want, 1e-6);
    }
}
