//! Multi-head self-attention in one op, forward and backward, one sequence per parallel
//! task: scores, the softmax with the key-padding mask and attention dropout, and the
//! weighted sum of the values, never leaving the task's `len × len` scratch.
//!
//! Written with tensor ops, attention splits the heads out of the projections (copies),
//! materialises scores and probabilities for the whole batch (`[batch, heads, len, len]`,
//! 46 MB per layer at 64 × 300), and backward reads and writes several more tensors that
//! size. Here one sequence's head reads its columns of the `[tokens, 3 × hidden]`
//! projections in place and keeps its `len × len` block in cache; backward recomputes that
//! block from Q and K rather than storing it (as FlashAttention does, a row block at a
//! time).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use faer::{MatRef, Par};
use rayon::prelude::*;

mod backward;

use backward::AttentionGrad;

use super::gemm::{gemm, view, view_mut};
use super::*;
use crate::simd::vectorized;

/// Self-attention over `qkv: [batch * len, 3 * hidden]` (the query, key and value
/// projections side by side, head `i` in columns `i * hidden / heads ..` of each), giving
/// the heads' outputs side by side, `[batch * len, hidden]`.
#[derive(Debug, Clone)]
pub struct Attention {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    /// Multiplies the scores: `1 / √(head size)`.
    pub scale: f32,
    /// Per `(batch, key)`: whether the key is padding; `None` when nothing is padded.
    pub padding: Option<Arc<Vec<bool>>>,
    /// Attention dropout in training. Element `j` of score row `r` (rows counted over
    /// `[batch, heads, len]`) is element `r * len + j` of the mask.
    pub dropout: Option<DropoutMask>,
}

/// One sequence's share of the work: where its queries, keys and values are read.
struct Sequence<'a> {
    index: usize,
    /// The position of the first query, and how many follow it.
    first: usize,
    queries: usize,
    /// The first query's row; the next starts `q_stride` values later.
    q: &'a [f32],
    q_stride: usize,
    /// The first key's row, its value `hidden` columns later; the next starts `kv_stride`
    /// values later.
    kv: &'a [f32],
    kv_stride: usize,
}

impl Sequence<'_> {
    /// Head `head`'s queries, keys and values (`hd` columns each).
    #[inline(always)]
    fn views(&self, head: usize, hd: usize, hidden: usize, len: usize) -> [MatRef<'_, f32>; 3] {
        let col = head * hd;
        [
            view(&self.q[col..], self.queries, hd, self.q_stride),
            view(&self.kv[col..], len, hd, self.kv_stride),
            view(&self.kv[hidden + col..], len, hd, self.kv_stride),
        ]
    }
}

impl Attention {
    pub fn apply(&self, qkv: &Tensor) -> Result<Tensor> {
        qkv.contiguous()?.apply_op1(self.clone())
    }

    /// Each sequence's last position alone as a query, giving `[batch, hidden]`: all that a
    /// prediction's last layer needs. `q: [batch, hidden]` holds those queries and
    /// `kv: [batch * len, 2 * hidden]` every position's keys and values, so the other
    /// queries are never projected. Forward only.
    pub fn apply_last_query(&self, q: &Tensor, kv: &Tensor) -> Result<Tensor> {
        q.contiguous()?
            .apply_op2_no_bwd(&kv.contiguous()?, &LastQuery(self.clone()))
    }

    /// The gradient with respect to `qkv`, from `d_out`, that of the output.
    pub fn backward(&self, qkv: &Tensor, d_out: &Tensor) -> Result<Tensor> {
        qkv.contiguous()?
            .apply_op2_no_bwd(&d_out.contiguous()?, &AttentionGrad(self.clone()))
    }

    fn hidden(&self, l: &Layout, op: &str) -> Result<usize> {
        let width = last_dim(l, op)?;
        let tokens = l.shape().elem_count() / width;
        if width % 3 != 0 || (width / 3) % self.heads != 0 || tokens != self.batch * self.len {
            candle_core::bail!(
                "{op}: [{tokens}, {width}] is not [batch {} * len {}, 3 * hidden] with {} heads",
                self.batch,
                self.len,
                self.heads
            );
        }
        Ok(width / 3)
    }

    /// Writes the softmax (padding masked, dropout not applied) of head `head`'s scores
    /// into `p` (`queries × len`). Inlined so that it is compiled for the caller's SIMD
    /// level.
    #[inline(always)]
    fn probabilities(&self, s: &Sequence, head: usize, hidden: usize, p: &mut [f32]) {
        let len = self.len;
        let [q, k, _] = s.views(head, hidden / self.heads, hidden, len);
        gemm(
            view_mut(p, s.queries, len, len),
            false,
            q,
            k.transpose(),
            self.scale,
            Par::Seq,
        );
        let padding = self
            .padding
            .as_ref()
            .map(|p| &p[s.index * len..(s.index + 1) * len]);
        for row in p.chunks_mut(len) {
            if let Some(pad) = padding {
                for (v, &pad) in row.iter_mut().zip(pad) {
                    if pad {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            let m = max(row);
            row.iter_mut().for_each(|v| *v = exp(*v - m));
            let inv = 1.0 / sum_of(row, |v| v);
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }

    /// Multiplies `p` (head `head` of sequence `s`) by its dropout mask, if any.
    #[inline(always)]
    fn drop(&self, s: &Sequence, head: usize, p: &mut [f32]) {
        let Some(mask) = &self.dropout else {
            return;
        };
        let first = ((s.index * self.heads + head) * self.len + s.first) * self.len;
        for (j, v) in p.iter_mut().enumerate() {
            *v *= mask.factor(first + j);
        }
    }

    /// The sequences of the stacked projections `qkv` (`[batch * len, 3 * hidden]`).
    fn sequences<'a>(
        &self,
        qkv: &'a [f32],
        hidden: usize,
    ) -> impl IndexedParallelIterator<Item = Sequence<'a>> {
        let stride = 3 * hidden;
        qkv.par_chunks(self.len * stride)
            .enumerate()
            .map(move |(index, qkv)| Sequence {
                index,
                first: 0,
                queries: self.len,
                q: qkv,
                q_stride: stride,
                kv: &qkv[hidden..],
                kv_stride: stride,
            })
    }

    /// The heads' outputs side by side, `[batch * queries, hidden]`, of `sequences`, each
    /// with `queries` queries.
    fn forward<'a>(
        &self,
        sequences: impl IndexedParallelIterator<Item = Sequence<'a>>,
        queries: usize,
        h: usize,
    ) -> Vec<f32> {
        let (len, hd) = (self.len, h / self.heads);
        let mut out = vec![0f32; self.batch * queries * h];
        out.par_chunks_mut(queries * h)
            .zip(sequences)
            .for_each(|(out, seq)| {
                let mut p = vec![0f32; queries * len];
                vectorized(
                    #[inline(always)]
                    || {
                        for head in 0..self.heads {
                            self.probabilities(&seq, head, h, &mut p);
                            self.drop(&seq, head, &mut p);
                            let [_, _, v] = seq.views(head, hd, h, len);
                            let ctx = view_mut(&mut out[head * hd..], queries, hd, h);
                            gemm(ctx, false, view(&p, queries, len, len), v, 1.0, Par::Seq);
                        }
                    },
                )
            });
        out
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous(s, l, self.name())?;
        let h = self.hidden(l, self.name())?;
        let out = self.forward(self.sequences(qkv, h), self.len, h);
        Ok((
            CpuStorage::F32(out),
            Shape::from((self.batch * self.len, h)),
        ))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.backward(qkv, grad)?))
    }
}

/// [`Attention::apply_last_query`]: `q: [batch, hidden]`, `kv: [batch * len, 2 * hidden]`.
struct LastQuery(Attention);

impl CustomOp2 for LastQuery {
    fn name(&self) -> &'static str {
        "fused-attention-last-query"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = &self.0;
        let q = contiguous(s1, l1, self.name())?;
        let kv = contiguous(s2, l2, self.name())?;
        let h = last_dim(l1, self.name())?;
        if q.len() != a.batch * h || kv.len() != a.batch * a.len * 2 * h || h % a.heads != 0 {
            candle_core::bail!(
                "{}: need [batch, hidden] queries and [batch * len, 2 * hidden] keys and values",
                self.name()
            );
        }
        let sequences = (q.par_chunks(h))
            .zip(kv.par_chunks(a.len * 2 * h))
            .enumerate()
            .map(|(index, (q, kv))| Sequence {
                index,
                first: a.len - 1,
                queries: 1,
                q,
                q_stride: h,
                kv,
                kv_stride: 2 * h,
            });
        let out = a.forward(sequences, 1, h);
        Ok((CpuStorage::F32(out), Shape::from((a.batch, h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::Dropout;
    use crate::model::bert4rec::kernels::test_support::{close, var, weights};
    use candle_core::{D, Device};
    use candle_nn::ops;

    /// The same attention from candle's tensor ops and its matmul: heads split out of the
    /// projections, padding as a -1e9 bias, dropout applied to the probabilities.
    fn reference(qkv: &Tensor, a: &Attention) -> Tensor {
        let h = qkv.dim(1).unwrap() / 3;
        let hd = h / a.heads;
        let split = |i: usize| {
            qkv.narrow(1, i * h, h)
                .unwrap()
                .reshape((a.batch, a.len, a.heads, hd))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * a.scale as f64).unwrap();
        let bias: Vec<f32> = match &a.padding {
            Some(p) => p.iter().map(|&p| if p { -1e9 } else { 0.0 }).collect(),
            None => vec![0.0; a.batch * a.len],
        };
        let bias = Tensor::from_vec(bias, (a.batch, 1, 1, a.len), &Device::Cpu).unwrap();
        let mut probs = ops::softmax(&scores.broadcast_add(&bias).unwrap(), D::Minus1).unwrap();
        if let Some(mask) = a.dropout {
            probs = Dropout(mask).apply(&probs).unwrap();
        }
        probs
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((a.batch * a.len, h))
            .unwrap()
    }

    #[test]
    fn attention_matches_candle_ops_forward_and_backward() {
        let (batch, len, heads, h) = (3, 7, 2, 6);
        // Row 1 pads its first two keys, row 2 its first six (one real key left).
        let padding: Vec<bool> = (0..batch * len)
            .map(|i| (len..len + 2).contains(&i) || (2 * len..2 * len + 6).contains(&i))
            .collect();
        for dropout in [None, Some(DropoutMask::new(11, 0.3))] {
            let a = Attention {
                batch,
                len,
                heads,
                scale: 1.0 / ((h / heads) as f32).sqrt(),
                padding: Some(Arc::new(padding.clone())),
                dropout,
            };
            let qkv = var(&[batch * len, 3 * h], 5);
            let w = weights(&[batch * len, h]);
            let ours = a.apply(&qkv).unwrap();
            let want = reference(&qkv, &a);
            close(&ours, &want, 1e-5);
            let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&want * &w).unwrap().sum_all().unwrap().backward().unwrap();
            close(g1.get(&qkv).unwrap(), g2.get(&qkv).unwrap(), 1e-4);
        }
        // The last query alone, from a separate query matrix and the keys and values,
        // gives the last row of each sequence (no dropout: it serves predictions).
        let a = Attention {
            batch,
            len,
            heads,
            scale: 0.5,
            padding: Some(Arc::new(padding)),
            dropout: None,
        };
        let qkv = var(&[batch * len, 3 * h], 6);
        let all = a.apply(&qkv).unwrap().reshape((batch, len, h)).unwrap();
        let want = all
            .narrow(1, len - 1, 1)
            .unwrap()
            .reshape((batch, h))
            .unwrap();
        let rows = qkv.reshape((batch, len, 3 * h)).unwrap();
        let q = rows.narrow(1, len - 1, 1).unwrap().narrow(2, 0, h).unwrap();
        let q = q.reshape((batch, h)).unwrap();
        let kv = qkv.narrow(1, h, 2 * h).unwrap();
        close(&a.apply_last_query(&q, &kv).unwrap(), &want, 1e-6);
    }

    #[test]
    fn padding_keys_get_no_weight_and_no_gradient() {
        let (batch, len, heads, h) = (1, 5, 1, 4);
        let a = Attention {
            batch,
            len,
            heads,
            scale: 0.5,
            padding: Some(Arc::new(vec![true, true, false, false, false])),
            dropout: None,
        };
        let qkv = var(&[len, 3 * h], 2);
        let out = a.apply(&qkv).unwrap();
        let grads = out.sum_all().unwrap().backward().unwrap();
        let g = grads.get(&qkv).unwrap().to_vec2::<f32>().unwrap();
        // Keys and values of the two padding positions get exactly zero gradient.
        for row in &g[..2] {
            assert!(row[h..].iter().all(|&v| v == 0.0), "{row:?}");
        }
        assert!(g[2][h..].iter().any(|&v| v != 0.0));
    }
}
