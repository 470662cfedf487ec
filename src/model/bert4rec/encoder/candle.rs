//! The encoder in candle's ops, for devices other than the CPU (CUDA): candle's fused
//! kernels in inference, which have no backward pass, and its generic ops in training.

use candle_core::{D, Result, Tensor};
use candle_nn::{Module, ops};
use rand::Rng;

use super::{Encoder, LN_EPS, Layer, MASKED_SCORE, Mode, Norm, last_rows};

impl Norm {
    fn candle(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        match mode {
            Mode::Eval => ops::layer_norm(&x.contiguous()?, &self.gamma, &self.beta, LN_EPS),
            Mode::Train(_) => ops::layer_norm_slow(x, &self.gamma, &self.beta, LN_EPS),
        }
    }
}

impl Encoder {
    /// Hidden states of checked `tokens`, as [`Encoder::encode`].
    pub(super) fn candle_forward(
        &self,
        tokens: &[u32],
        (batch, len, last_only): (usize, usize, bool),
        mode: &mut Mode,
    ) -> Result<Tensor> {
        let (n, h) = (self.n_items() as u32, self.config.hidden);
        let dev = &self.device;
        let track_ids: Vec<u32> = tokens.iter().map(|&t| if t < n { t } else { 0 }).collect();
        let special_ids: Vec<u32> = tokens.iter().map(|&t| t.saturating_sub(n)).collect();
        let is_special: Vec<f32> = tokens.iter().map(|&t| (t >= n) as u8 as f32).collect();
        let is_special = Tensor::from_vec(is_special, (batch * len, 1), dev)?;
        let tracks = self
            .items
            .index_select(&Tensor::from_vec(track_ids, batch * len, dev)?, 0)?;
        let special = self
            .special
            .index_select(&Tensor::from_vec(special_ids, batch * len, dev)?, 0)?;
        let emb = (tracks.broadcast_mul(&(1.0 - &is_special)?)?
            + special.broadcast_mul(&is_special)?)?
        .reshape((batch, len, h))?;
        let pos = self.positions.narrow(0, self.config.max_len - len, len)?;
        let x = self.emb_norm.candle(&emb.broadcast_add(&pos)?, mode)?;
        let mut x = self.dropout(&x, mode)?.reshape((batch * len, h))?;

        let pad = n + 1;
        // No padding, no mask: skip a pass over the `[batch, heads, len, len]` scores.
        // Otherwise `[batch, 1, 1, len]`: [`MASKED_SCORE`] at padding keys, else 0.
        let padding = match tokens.contains(&pad) {
            false => None,
            true => {
                let bias: Vec<f32> = tokens
                    .iter()
                    .map(|&t| if t == pad { MASKED_SCORE } else { 0.0 })
                    .collect();
                Some(Tensor::from_vec(bias, (batch, 1, 1, len), dev)?)
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let last = last_only && i + 1 == self.layers.len();
            x = self.layer(layer, &x, padding.as_ref(), (batch, len, last), mode)?;
        }
        Ok(x)
    }

    /// One post-norm transformer block on `x` = `[batch * len, hidden]` in candle's ops;
    /// with `last_only` in `shape`, only each row's last position comes out
    /// (`[batch, hidden]`).
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        padding: Option<&Tensor>,
        shape: (usize, usize, bool),
        mode: &mut Mode,
    ) -> Result<Tensor> {
        let (batch, len, last_only) = shape;
        let ctx = self.attention(l, x, padding, shape, mode)?;
        let x = match last_only {
            true => last_rows(x, batch, len)?,
            false => x.clone(),
        };
        let attn = l.o.forward(&ctx)?;
        let x = l
            .attn_norm
            .candle(&(&x + self.dropout(&attn, mode)?)?, mode)?;
        let up = l.up.forward(&x)?.gelu_erf()?;
        let ffn = l.down.forward(&up)?;
        l.ffn_norm.candle(&(&x + self.dropout(&ffn, mode)?)?, mode)
    }

    /// The heads' outputs side by side, `[batch * len, hidden]` (`[batch, hidden]` for the
    /// last positions only), before the output projection; `padding` is the scores' bias.
    fn attention(
        &self,
        l: &Layer,
        x: &Tensor,
        padding: Option<&Tensor>,
        (batch, len, last_only): (usize, usize, bool),
        mode: &mut Mode,
    ) -> candle_core::Result<Tensor> {
        let (h, heads) = (self.config.hidden, self.config.heads);
        let hd = h / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, len, heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((l.q.forward(x)? * self.attention_scale())?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = padding {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = match mode {
            Mode::Eval => ops::softmax_last_dim(&scores)?,
            Mode::Train(_) => self.dropout(&ops::softmax(&scores, D::Minus1)?, mode)?,
        };
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch * len, h))?;
        match last_only {
            true => last_rows(&ctx, batch, len),
            false => Ok(ctx),
        }
    }

    /// Inverted dropout with a mask drawn on the device, in candle's ops; identity in eval.
    fn dropout(&self, x: &Tensor, mode: &mut Mode) -> candle_core::Result<Tensor> {
        let p = self.config.dropout;
        let seed: u64 = match mode {
            Mode::Train(rng) if p > 0.0 => rng.random(),
            _ => return Ok(x.clone()),
        };
        // Drawn on the device (a host-drawn mask is tens of millions of numbers per step to
        // generate and upload), from a generator seeded by the training one per call, so
        // a run stays reproducible.
        self.device.set_seed(seed)?;
        let keep = Tensor::rand(0f32, 1f32, x.shape(), x.device())?
            .ge(p)?
            .to_dtype(x.dtype())?
            .affine(1.0 / (1.0 - p as f64), 0.0)?;
        x * keep
    }
}
