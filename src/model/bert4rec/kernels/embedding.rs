//! The input embeddings in one op: each token's row (a track's row of the item table, or
//! the [MASK] or [PAD] row) plus its position's row, forward and backward.
//!
//! With tensor ops this is two gathers, two masked multiplies and two adds, each a pass over
//! `[tokens, hidden]`, and as many again backward, where candle also scatters the rows'
//! gradients into a zeroed copy of the whole item table even when the table is frozen.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::*;
use crate::simd::add_assign;

/// `row(token) + positions[max_len - len + t]` for the token at position `t` of each
/// sequence (right-aligned positions), over `items: [n, hidden]`, `special: [2, hidden]`
/// (tokens `n` and `n + 1`) and `positions: [max_len, hidden]`.
#[derive(Debug, Clone)]
pub struct Embed {
    /// `batch * len` ids below `n + 2`, checked by the caller.
    pub tokens: Arc<Vec<u32>>,
    pub len: usize,
}

/// The three tables' data and the hidden size, checked against each other.
struct Tables<'a> {
    items: &'a [f32],
    special: &'a [f32],
    positions: &'a [f32],
    h: usize,
}

impl Tables<'_> {
    fn n(&self) -> usize {
        self.items.len() / self.h
    }

    /// The row of token `t`.
    #[inline(always)]
    fn row(&self, t: u32) -> &[f32] {
        let (t, h, n) = (t as usize, self.h, self.n());
        match t < n {
            true => &self.items[t * h..(t + 1) * h],
            false => &self.special[(t - n) * h..(t - n + 1) * h],
        }
    }
}

impl Embed {
    pub fn apply(&self, items: &Tensor, special: &Tensor, positions: &Tensor) -> Result<Tensor> {
        (items.contiguous()?).apply_op3(
            &special.contiguous()?,
            &positions.contiguous()?,
            self.clone(),
        )
    }

    /// `(d items, d special, d positions)` from the gradient `dy` of the output, computed by
    /// one op into one buffer (each gradient is a view of it); `d items` only when
    /// `train_items` (a frozen table needs none).
    pub fn backward(
        &self,
        items: &Tensor,
        special: &Tensor,
        positions: &Tensor,
        dy: &Tensor,
        train_items: bool,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        let grad = EmbedGrad {
            embed: self.clone(),
            n: items.dim(0)?,
            max_len: positions.dim(0)?,
            train_items,
        };
        let all = dy.contiguous()?.apply_op1_no_bwd(&grad)?;
        if train_items {
            let [d_items, d_special, d_positions] =
                split_like(&all, [items.shape(), special.shape(), positions.shape()])?;
            return Ok((Some(d_items), d_special, d_positions));
        }
        let [d_special, d_positions] = split_like(&all, [special.shape(), positions.shape()])?;
        Ok((None, d_special, d_positions))
    }
}

/// The gradients of [`Embed`]'s tables, flattened one after the other: the item table's
/// (`n` rows, when trained), the special rows' and the positions' (`max_len` rows).
struct EmbedGrad {
    embed: Embed,
    n: usize,
    max_len: usize,
    train_items: bool,
}

impl CustomOp1 for EmbedGrad {
    fn name(&self) -> &'static str {
        "fused-embedding-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous(s, l, self.name())?;
        let h = last_dim(l, self.name())?;
        let (tokens, len, n, max_len) = (&self.embed.tokens, self.embed.len, self.n, self.max_len);
        if g.len() != tokens.len() * h || len > max_len {
            candle_core::bail!("{}: the gradient must be [tokens, {h}]", self.name());
        }
        let item_values = if self.train_items { n * h } else { 0 };
        let mut out = vec![0f32; item_values + (2 + max_len) * h];
        let (d_items, rest) = out.split_at_mut(item_values);
        let (d_special, d_positions) = rest.split_at_mut(2 * h);
        let rows = || tokens.iter().map(|&t| t as usize).zip(g.chunks(h));
        for (t, g) in rows() {
            match t < n {
                true if self.train_items => add_assign(&mut d_items[t * h..(t + 1) * h], g),
                true => {}
                false => add_assign(&mut d_special[(t - n) * h..(t - n + 1) * h], g),
            }
        }
        // Position `t`'s gradient sums row `t` of every sequence: one task per position.
        d_positions[(max_len - len) * h..]
            .par_chunks_mut(h)
            .enumerate()
            .for_each(|(t, d)| {
                for row in g[t * h..].chunks(h).step_by(len) {
                    add_assign(d, row);
                }
            });
        let values = out.len();
        Ok((CpuStorage::F32(out), Shape::from(values)))
    }
}

impl CustomOp3 for Embed {
    fn name(&self) -> &'static str {
        "fused-embedding"
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
        let h = last_dim(l1, self.name())?;
        let tables = Tables {
            items: contiguous(s1, l1, self.name())?,
            special: contiguous(s2, l2, self.name())?,
            positions: contiguous(s3, l3, self.name())?,
            h,
        };
        let max_len = tables.positions.len() / h;
        if tables.special.len() != 2 * h || self.len == 0 || self.len > max_len {
            candle_core::bail!("{}: tables and length do not fit", self.name());
        }
        if let Some(t) = (self.tokens.iter()).find(|&&t| t as usize >= tables.n() + 2) {
            candle_core::bail!("{}: token {t} is out of range", self.name());
        }
        let first = max_len - self.len;
        let mut out = vec![0f32; self.tokens.len() * h];
        out.par_chunks_mut(rows_per_task(h) * h)
            .enumerate()
            .for_each(|(c, out)| {
                for (r, y) in out.chunks_mut(h).enumerate() {
                    let i = c * rows_per_task(h) + r;
                    let p = first + i % self.len;
                    y.copy_from_slice(tables.row(self.tokens[i]));
                    add_assign(y, &tables.positions[p * h..(p + 1) * h]);
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((self.tokens.len(), h))))
    }

    fn bwd(
        &self,
        items: &Tensor,
        special: &Tensor,
        positions: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (d_items, d_special, d_positions) =
            self.backward(items, special, positions, grad, items.track_op())?;
        Ok((d_items, Some(d_special), Some(d_positions)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bert4rec::kernels::test_support::{close, var, weights};
    use candle_core::Device;

    /// The same sum from candle's gathers: what the encoder computed before this op.
    fn reference(e: &Embed, items: &Tensor, special: &Tensor, positions: &Tensor) -> Tensor {
        let dev = Device::Cpu;
        let n = items.dim(0).unwrap() as u32;
        let ids = |f: &dyn Fn(u32) -> u32| {
            let v: Vec<u32> = e.tokens.iter().map(|&t| f(t)).collect();
            Tensor::from_vec(v, e.tokens.len(), &dev).unwrap()
        };
        let flag: Vec<f32> = e.tokens.iter().map(|&t| (t >= n) as u8 as f32).collect();
        let flag = Tensor::from_vec(flag, (e.tokens.len(), 1), &dev).unwrap();
        let tracks = items
            .index_select(&ids(&|t| if t < n { t } else { 0 }), 0)
            .unwrap();
        let specials = special
            .index_select(&ids(&|t| t.saturating_sub(n)), 0)
            .unwrap();
        let rows = (tracks.broadcast_mul(&(1.0 - &flag).unwrap()).unwrap()
            + specials.broadcast_mul(&flag).unwrap())
        .unwrap();
        let (max_len, h) = positions.dims2().unwrap();
        let batch = e.tokens.len() / e.len;
        let pos = positions.narrow(0, max_len - e.len, e.len).unwrap();
        rows.reshape((batch, e.len, h))
            .unwrap()
            .broadcast_add(&pos)
            .unwrap()
            .reshape((batch * e.len, h))
            .unwrap()
    }

    #[test]
    fn embedding_matches_candle_gathers_forward_and_backward() {
        // 3 sequences of 5 over 7 tracks (7 is [MASK], 8 [PAD]); track 2 repeats, and a
        // position table longer than the sequences.
        let tokens = vec![8, 8, 2, 2, 7, 0, 6, 2, 7, 5, 1, 3, 4, 7, 8];
        let e = Embed {
            tokens: Arc::new(tokens),
            len: 5,
        };
        let (items, special, positions) = (var(&[7, 6], 1), var(&[2, 6], 2), var(&[8, 6], 3));
        let w = weights(&[15, 6]);
        let ours = e.apply(&items, &special, &positions).unwrap();
        let want = reference(&e, &items, &special, &positions);
        close(&ours, &want, 0.0);
        let g1 = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&want * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&items, &special, &positions] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-6);
        }
        // A constant table gets no gradient.
        let frozen = items.as_tensor().detach();
        let out = e.apply(&frozen, &special, &positions).unwrap();
        let g = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&frozen).is_none());
        close(
            g.get(&positions).unwrap(),
            g2.get(&positions).unwrap(),
            1e-6,
        );
    }
}
