//! The BERT encoder of BERT4Rec, written out so that it trains under candle: attention
//! with a key-padding mask, post-norm layers, exact GELU, and dropout drawn from a seeded
//! generator that is active only in training.
//!
//! On the CPU every step (the linear layers, attention with its mask and dropout, layer
//! norm, GELU, dropout, the tied head's cross-entropy) runs in the fused kernels of
//! [`super::kernels`], which carry their own backward passes. On CUDA, training uses
//! candle's generic ops (its fused kernels have no backward pass) and inference its fused
//! kernels.
//!
//! Token ids: `0..n` are tracks (rows of the item table), `n` is [MASK], `n + 1` is [PAD],
//! where `n` is the number of rows of the item table *now*: a frozen content table can grow
//! after training and the new tracks are at once readable and recommendable.
//!
//! Positions are right-aligned: the last token of a row always has position `max_len - 1`.
//! With left padding, a sequence therefore reads the same positions whether or not it is
//! padded, and padding (masked out of attention) cannot change its outputs.
//!
//! Over 400 lines on purpose: one network (embeddings, attention, feed-forward, tied head,
//! masked loss) whose CPU and CUDA paths must be read side by side; its per-op kernels
//! already live in `kernels/`.

use std::sync::Arc;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarMap, ops};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::kernels::{self, DropoutMask};
use super::{Bert4RecError, ModelConfig};

/// BERT's initialisation scale, also the authors' for the [MASK]/[PAD] rows.
pub const INIT_STD: f32 = 0.02;
const LN_EPS: f32 = 1e-12;
/// Added to attention scores of padding keys; exp() of it is exactly 0 in f32.
const MASKED_SCORE: f32 = -1e9;

/// Whether dropout is active, and the generator it draws from when it is.
pub enum Mode<'a> {
    Eval,
    Train(&'a mut StdRng),
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
}

impl Norm {
    fn forward(&self, x: &Tensor, kernels: Kernels) -> candle_core::Result<Tensor> {
        match kernels {
            Kernels::Fused => kernels::LayerNorm { eps: LN_EPS }.apply(x, &self.gamma, &self.beta),
            Kernels::CandleInference => {
                ops::layer_norm(&x.contiguous()?, &self.gamma, &self.beta, LN_EPS)
            }
            Kernels::CandleTraining => ops::layer_norm_slow(x, &self.gamma, &self.beta, LN_EPS),
        }
    }
}

/// Which implementation of the element-wise ops a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// The CPU kernels of [`fused`], training and inference alike.
    Fused,
    /// candle's fused kernels (no backward pass): inference on other devices.
    CandleInference,
    /// candle's generic ops, which have backward passes: training on other devices.
    CandleTraining,
}

impl Mode<'_> {
    fn kernels(&self, device: &Device) -> Kernels {
        match (device.is_cpu(), self) {
            (true, _) => Kernels::Fused,
            (false, Mode::Eval) => Kernels::CandleInference,
            (false, Mode::Train(_)) => Kernels::CandleTraining,
        }
    }
}

/// Which keys are padding, in the form the attention softmax of the kernels in use reads.
enum Padding {
    /// Per `(batch, key)`, for the fused softmax.
    Flags(Arc<Vec<bool>>),
    /// `[batch, 1, 1, len]`: [`MASKED_SCORE`] at padding keys, else 0, added to candle's
    /// scores.
    Bias(Tensor),
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    ffn_norm: Norm,
}

/// The encoder plus its tied output head.
pub struct Encoder {
    config: ModelConfig,
    /// `[n, hidden]`: a constant for a frozen table, else a trained variable.
    items: Tensor,
    /// `[2, hidden]`: the [MASK] and [PAD] rows.
    special: Tensor,
    /// `[max_len, hidden]`.
    positions: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    device: Device,
}

/// Creates the named variables of the model in `varmap`, drawn from `rng`.
struct Params<'a> {
    varmap: &'a VarMap,
    rng: &'a mut StdRng,
    device: &'a Device,
}

impl Params<'_> {
    fn put(&mut self, name: &str, t: Tensor) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .expect("varmap lock")
            .insert(name.to_string(), var);
        Ok(out)
    }

    fn normal(&mut self, name: &str, rows: usize, cols: usize) -> candle_core::Result<Tensor> {
        let dist = Normal::new(0.0, INIT_STD).expect("valid normal");
        let data: Vec<f32> = (0..rows * cols).map(|_| dist.sample(self.rng)).collect();
        let t = Tensor::from_vec(data, (rows, cols), self.device)?;
        self.put(name, t)
    }

    fn filled(&mut self, name: &str, n: usize, value: f32) -> candle_core::Result<Tensor> {
        let t = Tensor::full(value, n, self.device)?;
        self.put(name, t)
    }

    fn linear(&mut self, name: &str, input: usize, output: usize) -> candle_core::Result<Linear> {
        let w = self.normal(&format!("{name}.weight"), output, input)?;
        let b = self.filled(&format!("{name}.bias"), output, 0.0)?;
        Ok(Linear::new(w, Some(b)))
    }

    fn norm(&mut self, name: &str, n: usize) -> candle_core::Result<Norm> {
        Ok(Norm {
            gamma: self.filled(&format!("{name}.gamma"), n, 1.0)?,
            beta: self.filled(&format!("{name}.beta"), n, 0.0)?,
        })
    }
}

impl Encoder {
    /// Builds the model with fresh seeded weights registered in `varmap` (load a checkpoint
    /// into `varmap` afterwards to restore trained ones). `content` is the row-major
    /// `[n, hidden]` backend matrix: the item table when frozen, its start when trained;
    /// ignored by the random variant, whose table is drawn from N(0, 0.02).
    pub fn new(
        config: &ModelConfig,
        content: Option<&[f32]>,
        varmap: &VarMap,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Self, Bert4RecError> {
        config.validate()?;
        let h = config.hidden;
        let mut p = Params {
            varmap,
            rng,
            device,
        };
        let items = match (config.item_init, content) {
            (super::ItemInit::Random, _) => p.normal("items", config.n_tracks, h)?,
            (super::ItemInit::Content, Some(raw)) => {
                if raw.len() % h != 0 || raw.is_empty() {
                    return Err(Bert4RecError::Config(format!(
                        "{} content values do not form rows of the hidden size {h}",
                        raw.len()
                    )));
                }
                let t = Tensor::from_slice(raw, (raw.len() / h, h), device)?;
                if config.freeze_items {
                    t
                } else {
                    p.put("items", t)?
                }
            }
            (super::ItemInit::Content, None) => {
                return Err(Bert4RecError::Config(
                    "the content variant needs the backend's embeddings".into(),
                ));
            }
        };
        let special = p.normal("special", 2, h)?;
        let positions = p.normal("positions", config.max_len, h)?;
        let emb_norm = p.norm("embeddings.norm", h)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let n = |s: &str| format!("layer{i}.{s}");
            layers.push(Layer {
                q: p.linear(&n("query"), h, h)?,
                k: p.linear(&n("key"), h, h)?,
                v: p.linear(&n("value"), h, h)?,
                o: p.linear(&n("output"), h, h)?,
                attn_norm: p.norm(&n("attention.norm"), h)?,
                up: p.linear(&n("intermediate"), h, config.intermediate)?,
                down: p.linear(&n("ffn.output"), config.intermediate, h)?,
                ffn_norm: p.norm(&n("ffn.norm"), h)?,
            });
        }
        Ok(Self {
            config: config.clone(),
            items,
            special,
            positions,
            emb_norm,
            layers,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Rows of the item table: tracks `0..n_items()` can be read and recommended.
    pub fn n_items(&self) -> usize {
        self.items.dim(0).expect("rank-2 item table")
    }

    pub fn mask_token(&self) -> u32 {
        self.n_items() as u32
    }

    pub fn pad_token(&self) -> u32 {
        self.n_items() as u32 + 1
    }

    /// The item table (`[n, hidden]`), also the output head.
    pub fn items(&self) -> &Tensor {
        &self.items
    }

    /// Hidden states `[batch, len, hidden]` of left-padded `tokens` (`batch * len` ids,
    /// row-major). `len` may be at most `max_len`.
    pub fn forward(
        &self,
        tokens: &[u32],
        batch: usize,
        len: usize,
        mode: &mut Mode,
    ) -> Result<Tensor, Bert4RecError> {
        let h = self.config.hidden;
        Ok(self
            .encode(tokens, batch, len, mode, false)?
            .reshape((batch, len, h))?)
    }

    /// Hidden states `[batch * len, hidden]`, or `[batch, hidden]` at each row's last
    /// position when `last_only`: then the last layer computes that position alone (its
    /// keys and values still come from every position), which is all a prediction reads.
    fn encode(
        &self,
        tokens: &[u32],
        batch: usize,
        len: usize,
        mode: &mut Mode,
        last_only: bool,
    ) -> Result<Tensor, Bert4RecError> {
        let (n, h) = (self.n_items() as u32, self.config.hidden);
        if len == 0 || len > self.config.max_len || tokens.len() != batch * len {
            return Err(Bert4RecError::Config(format!(
                "{} tokens do not form {batch} rows of length {len} (max {})",
                tokens.len(),
                self.config.max_len
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t > n + 1) {
            return Err(Bert4RecError::Config(format!(
                "token {bad} is out of range"
            )));
        }
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
        let kernels = mode.kernels(dev);
        let x = self.emb_norm.forward(&emb.broadcast_add(&pos)?, kernels)?;
        let mut x = self.dropout(&x, mode)?.reshape((batch * len, h))?;

        let pad = n + 1;
        // No padding, no mask: skip a pass over the `[batch, heads, len, len]` scores.
        let padding = match (tokens.contains(&pad), kernels) {
            (false, _) => None,
            (true, Kernels::Fused) => Some(Padding::Flags(Arc::new(
                tokens.iter().map(|&t| t == pad).collect(),
            ))),
            (true, _) => {
                let bias: Vec<f32> = tokens
                    .iter()
                    .map(|&t| if t == pad { MASKED_SCORE } else { 0.0 })
                    .collect();
                Some(Padding::Bias(Tensor::from_vec(
                    bias,
                    (batch, 1, 1, len),
                    dev,
                )?))
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let last = last_only && i + 1 == self.layers.len();
            x = self.layer(layer, &x, padding.as_ref(), (batch, len, last), mode)?;
        }
        Ok(x)
    }

    /// One post-norm transformer block on `x` = `[batch * len, hidden]`; with `last_only`
    /// in `shape`, only each row's last position comes out (`[batch, hidden]`).
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        padding: Option<&Padding>,
        shape: (usize, usize, bool),
        mode: &mut Mode,
    ) -> Result<Tensor, Bert4RecError> {
        let (batch, len, last_only) = shape;
        let kernels = mode.kernels(&self.device);
        let linear = |layer: &Linear, x: &Tensor| -> candle_core::Result<Tensor> {
            match (kernels, layer.bias()) {
                (Kernels::Fused, Some(b)) => kernels::Linear::apply(x, layer.weight(), b),
                _ => layer.forward(x),
            }
        };
        let ctx = self.attention(l, x, padding, shape, mode)?;
        let x = match last_only {
            true => last_rows(x, batch, len)?,
            false => x.clone(),
        };
        let attn = linear(&l.o, &ctx)?;
        let x = l
            .attn_norm
            .forward(&self.residual(&x, &attn, mode)?, kernels)?;
        let up = linear(&l.up, &x)?;
        let up = match kernels {
            Kernels::Fused => kernels::Gelu::apply(&up)?,
            _ => up.gelu_erf()?,
        };
        let ffn = linear(&l.down, &up)?;
        Ok(l.ffn_norm
            .forward(&self.residual(&x, &ffn, mode)?, kernels)?)
    }

    /// The heads' outputs side by side, `[batch * len, hidden]` (`[batch, hidden]` for the
    /// last positions only), before the output projection.
    fn attention(
        &self,
        l: &Layer,
        x: &Tensor,
        padding: Option<&Padding>,
        (batch, len, last_only): (usize, usize, bool),
        mode: &mut Mode,
    ) -> candle_core::Result<Tensor> {
        let (h, heads) = (self.config.hidden, self.config.heads);
        let hd = h / heads;
        let scale = 1.0 / (hd as f64).sqrt();
        let kernels = mode.kernels(&self.device);
        if kernels == Kernels::Fused {
            // The three projections as one product: weights and biases stacked.
            let weights = [l.q.weight(), l.k.weight(), l.v.weight()];
            let biases: Vec<&Tensor> = [&l.q, &l.k, &l.v].iter().filter_map(|p| p.bias()).collect();
            let qkv =
                kernels::Linear::apply(x, &Tensor::cat(&weights, 0)?, &Tensor::cat(&biases, 0)?)?;
            let padding = match padding {
                Some(Padding::Flags(flags)) => Some(flags.clone()),
                _ => None,
            };
            return kernels::Attention {
                batch,
                len,
                heads,
                scale: scale as f32,
                padding,
                dropout: self.dropout_mask(mode),
                last_query_only: last_only,
            }
            .apply(&qkv);
        }
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, len, heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((l.q.forward(x)? * scale)?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(Padding::Bias(bias)) = padding {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = match kernels {
            Kernels::CandleInference => ops::softmax_last_dim(&scores)?,
            _ => self.dropout(&ops::softmax(&scores, D::Minus1)?, mode)?,
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

    /// A fresh dropout mask from the training generator; `None` in eval.
    fn dropout_mask(&self, mode: &mut Mode) -> Option<DropoutMask> {
        match mode {
            Mode::Train(rng) if self.config.dropout > 0.0 => {
                Some(DropoutMask::new(rng.random(), self.config.dropout))
            }
            _ => None,
        }
    }

    /// `x + dropout(y)`: a residual connection around a branch (one fused op on the CPU).
    fn residual(&self, x: &Tensor, y: &Tensor, mode: &mut Mode) -> candle_core::Result<Tensor> {
        if self.device.is_cpu() {
            return kernels::Residual(self.dropout_mask(mode)).apply(x, y);
        }
        x + self.dropout(y, mode)?
    }

    /// Inverted dropout with a mask drawn from the training generator; identity in eval.
    fn dropout(&self, x: &Tensor, mode: &mut Mode) -> candle_core::Result<Tensor> {
        if self.device.is_cpu() {
            return match self.dropout_mask(mode) {
                Some(mask) => kernels::Dropout(mask).apply(x),
                None => Ok(x.clone()),
            };
        }
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

    /// Scores of every item for hidden states `[m, hidden]`: `[m, n]` (the tied head).
    /// CUDA's matmul needs a contiguous left side (a narrowed last position is not).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, Bert4RecError> {
        Ok(hidden.contiguous()?.matmul(&self.items.t()?)?)
    }

    /// Mean cross-entropy over all tracks at the masked positions only: `positions` are
    /// flat indices into `[batch * len]`, `targets` the true tracks there.
    pub fn masked_loss(
        &self,
        hidden: &Tensor,
        positions: &[u32],
        targets: &[u32],
    ) -> Result<Tensor, Bert4RecError> {
        let h = self.config.hidden;
        let dev = &self.device;
        let flat = hidden.reshape(((), h))?;
        let picked = flat.index_select(&Tensor::from_slice(positions, positions.len(), dev)?, 0)?;
        if dev.is_cpu() {
            return Ok(kernels::HeadLoss::apply(&picked, &self.items, targets)?);
        }
        let logits = self.logits(&picked)?;
        let targets = Tensor::from_slice(targets, targets.len(), dev)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    /// Logits `[batch, n]` at the last position of each row: the appended [MASK] of a
    /// prediction batch.
    pub fn next_item_logits(
        &self,
        tokens: &[u32],
        batch: usize,
        len: usize,
    ) -> Result<Tensor, Bert4RecError> {
        let last = self.next_item_hidden(tokens, batch, len)?;
        Ok(self.logits(&last)?.to_dtype(DType::F32)?)
    }

    /// Hidden states `[batch, hidden]` at the last position of each row: what the tied
    /// head multiplies by an item's row, so a track outside the table (added with its
    /// content after training) is scored by its content row alone.
    pub fn next_item_hidden(
        &self,
        tokens: &[u32],
        batch: usize,
        len: usize,
    ) -> Result<Tensor, Bert4RecError> {
        self.encode(tokens, batch, len, &mut Mode::Eval, true)
    }
}

/// Rows `len - 1, 2 len - 1, ..` of `x: [batch * len, hidden]`: each sequence's last
/// position, `[batch, hidden]`.
fn last_rows(x: &Tensor, batch: usize, len: usize) -> candle_core::Result<Tensor> {
    let h = x.dim(1)?;
    x.reshape((batch, len, h))?
        .narrow(1, len - 1, 1)?
        .reshape((batch, h))
}
