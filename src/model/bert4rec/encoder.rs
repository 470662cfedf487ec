//! The BERT encoder of BERT4Rec, written out so that it trains under candle: attention
//! with a key-padding mask, post-norm layers, exact GELU, and dropout drawn from a seeded
//! generator that is active only in training.
//!
//! This file holds the model (its variables, their initialisation) and what callers use:
//! hidden states, logits, the masked loss and a training step's gradients. Two children
//! compute them: [`cpu`] runs the fused kernels of [`super::kernels`] and a training step's
//! backward pass by hand; [`candle`] runs candle's ops on other devices (CUDA), its fused
//! kernels in inference and its generic ops, which have backward passes, in training.
//!
//! Token ids: `0..n` are tracks (rows of the item table), `n` is [MASK], `n + 1` is [PAD],
//! where `n` is the number of rows of the item table *now*: a frozen content table can grow
//! after training and the new tracks are at once readable and recommendable.
//!
//! Positions are right-aligned: the last token of a row always has position `max_len - 1`.
//! With left padding, a sequence therefore reads the same positions whether or not it is
//! padded, and padding (masked out of attention) cannot change its outputs.

mod candle;
mod cpu;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, VarMap};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::batch::Batch;
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
        self.check_tokens(tokens, batch, len)?;
        let shape = (batch, len, last_only);
        if self.device.is_cpu() {
            return Ok(self.cpu_forward(tokens, shape, mode, false)?.0);
        }
        Ok(self.candle_forward(tokens, shape, mode)?)
    }

    /// Checks that `tokens` form `batch` rows of `len` valid ids.
    fn check_tokens(&self, tokens: &[u32], batch: usize, len: usize) -> Result<(), Bert4RecError> {
        if len == 0 || len > self.config.max_len || tokens.len() != batch * len {
            return Err(Bert4RecError::Config(format!(
                "{} tokens do not form {batch} rows of length {len} (max {})",
                tokens.len(),
                self.config.max_len
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t > self.pad_token()) {
            return Err(Bert4RecError::Config(format!(
                "token {bad} is out of range"
            )));
        }
        Ok(())
    }

    /// `1 / √(head size)`, the scores' scale.
    fn attention_scale(&self) -> f64 {
        let hd = self.config.hidden / self.config.heads;
        1.0 / (hd as f64).sqrt()
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

    /// Scores of every item for hidden states `[m, hidden]`: `[m, n]` (the tied head).
    /// CUDA's matmul needs a contiguous left side (a narrowed last position is not).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, Bert4RecError> {
        if self.device.is_cpu() {
            return Ok(kernels::Product::apply(hidden, &self.items)?);
        }
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

    /// The mean masked loss of a training batch and the gradient of every trained
    /// variable, dropout drawn from `rng`: what [`Self::forward`] in training mode,
    /// [`Self::masked_loss`] and candle's `backward()` give, and on the CPU the same
    /// numbers (up to summation order) without candle's autograd (see [`cpu`]).
    pub fn loss_and_gradients(
        &self,
        batch: &Batch,
        rng: &mut StdRng,
    ) -> Result<(f32, GradStore), Bert4RecError> {
        self.check_tokens(&batch.tokens, batch.rows, batch.len)?;
        if self.device.is_cpu() {
            return self.cpu_step(batch, rng);
        }
        let hidden = self.forward(&batch.tokens, batch.rows, batch.len, &mut Mode::Train(rng))?;
        let loss = self.masked_loss(&hidden, &batch.masked, &batch.targets)?;
        Ok((loss.to_scalar::<f32>()?, loss.backward()?))
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
