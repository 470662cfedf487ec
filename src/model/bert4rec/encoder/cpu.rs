//! The encoder on the CPU: its forward pass through the fused kernels of
//! [`crate::model::bert4rec::kernels`], and a training step that runs their backward passes
//! itself instead of candle's `backward()`.
//!
//! candle's autograd walks the graph and, for every argument of every node, zeroes a tensor
//! and adds the node's gradient into it, the adds on candle's own spinning thread pool
//! beside rayon's: a fifth of a short batch's step in a profile. Here the forward pass
//! keeps what each kernel's backward pass reads (a [`Tape`]), and [`Encoder::cpu_step`]
//! calls those backward passes in reverse order. Gradients are added only where the
//! network branches: at the two residual connections of each layer. With the one-op
//! embeddings, this took the bench's training pass from 14.1 s to 8.3–9.1 s.
//!
//! Dropout masks are drawn from the training generator in the same order as the forward
//! pass of the autograd path, so a seeded step gives the same numbers either way (up to
//! the order of float sums); a test holds the two together.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use candle_nn::Linear;
use rand::rngs::StdRng;

use super::{Encoder, LN_EPS, Layer, Mode, Norm, last_rows};
use crate::model::bert4rec::Bert4RecError;
use crate::model::bert4rec::batch::Batch;
use crate::model::bert4rec::kernels::{
    self, Attention, Dropout, DropoutMask, Embed, Gelu, HeadLoss, LayerNorm, Residual,
};

const NORM: LayerNorm = LayerNorm { eps: LN_EPS };

/// What one layer's backward pass reads.
struct LayerTape {
    x: Tensor,
    /// The query, key and value weights stacked, `[3 hidden, hidden]`.
    qkv_weight: Tensor,
    qkv: Tensor,
    attention: Attention,
    block: BlockTape,
}

/// What the backward pass of a layer's part after attention reads.
struct BlockTape {
    ctx: Tensor,
    attn_residual: Residual,
    r1: Tensor,
    x1: Tensor,
    up: Tensor,
    act: Tensor,
    ffn_residual: Residual,
    r2: Tensor,
}

/// What the backward pass reads: the embeddings' part and each layer's.
pub(super) struct Tape {
    embed: Embed,
    /// The embeddings before their layer norm.
    emb: Tensor,
    emb_dropout: Option<DropoutMask>,
    layers: Vec<LayerTape>,
}

fn bias(l: &Linear) -> &Tensor {
    l.bias().expect("the encoder's linear layers have biases")
}

impl Norm {
    fn cpu(&self, x: &Tensor) -> Result<Tensor> {
        NORM.apply(x, &self.gamma, &self.beta)
    }

    /// `dx` of the norm at input `x`; the gradients of gamma and beta go to `grads`.
    fn cpu_backward(&self, x: &Tensor, dy: &Tensor, grads: &mut GradStore) -> Result<Tensor> {
        let [dx, d_gamma, d_beta] = NORM.backward(x, &self.gamma, dy)?;
        grads.insert(&self.gamma, d_gamma);
        grads.insert(&self.beta, d_beta);
        Ok(dx)
    }
}

/// `a + b`, one pass: where two gradients of one tensor meet.
fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Residual(None).apply(a, b)
}

/// `dx` of a linear layer at input `x`; the weight's and bias's gradients go to `grads`.
fn linear_backward(l: &Linear, x: &Tensor, dy: &Tensor, grads: &mut GradStore) -> Result<Tensor> {
    let [dx, dw, db] = kernels::Linear::backward(x, l.weight(), dy)?;
    grads.insert(l.weight(), dw);
    grads.insert(bias(l), db);
    Ok(dx)
}

impl Encoder {
    /// Hidden states `[batch * len, hidden]` of checked `tokens` (`[batch, hidden]` with
    /// `last_only`, as [`Encoder::encode`]), and with `record` the tape of the pass.
    pub(super) fn cpu_forward(
        &self,
        tokens: &[u32],
        (batch, len, last_only): (usize, usize, bool),
        mode: &mut Mode,
        record: bool,
    ) -> Result<(Tensor, Option<Tape>)> {
        let embed = Embed {
            tokens: Arc::new(tokens.to_vec()),
            len,
        };
        let emb = embed.apply(&self.items, &self.special, &self.positions)?;
        let x = self.emb_norm.cpu(&emb)?;
        let emb_dropout = self.dropout_mask(mode);
        let mut x = match emb_dropout {
            Some(mask) => Dropout(mask).apply(&x)?,
            None => x,
        };
        let pad = self.pad_token();
        let padding = (tokens.contains(&pad))
            .then(|| Arc::new(tokens.iter().map(|&t| t == pad).collect::<Vec<_>>()));
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let last = last_only && i + 1 == self.layers.len();
            let (out, tape) = self.cpu_layer(l, x, padding.clone(), (batch, len, last), mode)?;
            if record {
                layers.extend(tape);
            }
            x = out;
        }
        let tape = record.then_some(Tape {
            embed,
            emb,
            emb_dropout,
            layers,
        });
        Ok((x, tape))
    }

    /// One post-norm transformer block on `x` = `[batch * len, hidden]`, and its tape; with
    /// `last_only`, each row's last position alone (`[batch, hidden]`) and no tape.
    fn cpu_layer(
        &self,
        l: &Layer,
        x: Tensor,
        padding: Option<Arc<Vec<bool>>>,
        (batch, len, last_only): (usize, usize, bool),
        mode: &mut Mode,
    ) -> Result<(Tensor, Option<LayerTape>)> {
        let attention = Attention {
            batch,
            len,
            heads: self.config.heads,
            scale: self.attention_scale() as f32,
            padding,
            dropout: self.dropout_mask(mode),
        };
        if last_only {
            // Every position's keys and values, but only the last position's query.
            let kv_weight = Tensor::cat(&[l.k.weight(), l.v.weight()], 0)?;
            let kv_bias = Tensor::cat(&[bias(&l.k), bias(&l.v)], 0)?;
            let kv = kernels::Linear::apply(&x, &kv_weight, &kv_bias)?;
            let last = last_rows(&x, batch, len)?;
            let q = kernels::Linear::apply(&last, l.q.weight(), bias(&l.q))?;
            let ctx = attention.apply_last_query(&q, &kv)?;
            return Ok((self.cpu_block(l, &last, ctx, mode)?.0, None));
        }
        // The three projections as one product: weights and biases stacked.
        let qkv_weight = Tensor::cat(&[l.q.weight(), l.k.weight(), l.v.weight()], 0)?;
        let qkv_bias = Tensor::cat(&[bias(&l.q), bias(&l.k), bias(&l.v)], 0)?;
        let qkv = kernels::Linear::apply(&x, &qkv_weight, &qkv_bias)?;
        let ctx = attention.apply(&qkv)?;
        let (out, block) = self.cpu_block(l, &x, ctx, mode)?;
        let tape = LayerTape {
            x,
            qkv_weight,
            qkv,
            attention,
            block,
        };
        Ok((out, Some(tape)))
    }

    /// A layer after its attention: the output projection of the heads' outputs `ctx`, the
    /// residual connection from `skip` and its norm, then the feed-forward part.
    fn cpu_block(
        &self,
        l: &Layer,
        skip: &Tensor,
        ctx: Tensor,
        mode: &mut Mode,
    ) -> Result<(Tensor, BlockTape)> {
        let attn = kernels::Linear::apply(&ctx, l.o.weight(), bias(&l.o))?;
        let attn_residual = Residual(self.dropout_mask(mode));
        let r1 = attn_residual.apply(skip, &attn)?;
        let x1 = l.attn_norm.cpu(&r1)?;
        let up = kernels::Linear::apply(&x1, l.up.weight(), bias(&l.up))?;
        let act = Gelu::apply(&up)?;
        let ffn = kernels::Linear::apply(&act, l.down.weight(), bias(&l.down))?;
        let ffn_residual = Residual(self.dropout_mask(mode));
        let r2 = ffn_residual.apply(&x1, &ffn)?;
        let out = l.ffn_norm.cpu(&r2)?;
        let tape = BlockTape {
            ctx,
            attn_residual,
            r1,
            x1,
            up,
            act,
            ffn_residual,
            r2,
        };
        Ok((out, tape))
    }

    /// The loss of a checked training batch and the gradient of every trained variable.
    pub(super) fn cpu_step(
        &self,
        batch: &Batch,
        rng: &mut StdRng,
    ) -> std::result::Result<(f32, GradStore), Bert4RecError> {
        let shape = (batch.rows, batch.len, false);
        let (hidden, tape) = self.cpu_forward(&batch.tokens, shape, &mut Mode::Train(rng), true)?;
        let tape = tape.expect("a recorded pass");
        let positions = Tensor::from_slice(&batch.masked, batch.masked.len(), &self.device)?;
        let picked = hidden.index_select(&positions, 0)?;
        let train_items = self.items.is_variable();
        let (loss, d_picked, d_items_head) =
            HeadLoss::loss_and_gradients(&picked, &self.items, &batch.targets, train_items)?;
        let mut dx = hidden.zeros_like()?.index_add(&positions, &d_picked, 0)?;
        let mut grads = GradStore::default();
        for (l, t) in self.layers.iter().zip(&tape.layers).rev() {
            dx = layer_backward(l, t, &dx, &mut grads)?;
        }
        if let Some(mask) = tape.emb_dropout {
            dx = Dropout(mask).apply(&dx)?;
        }
        let d_emb = self.emb_norm.cpu_backward(&tape.emb, &dx, &mut grads)?;
        let (d_items, d_special, d_positions) = (tape.embed).backward(
            &self.items,
            &self.special,
            &self.positions,
            &d_emb,
            train_items,
        )?;
        grads.insert(&self.special, d_special);
        grads.insert(&self.positions, d_positions);
        if let (Some(a), Some(b)) = (d_items, d_items_head) {
            grads.insert(&self.items, add(&a, &b)?);
        }
        Ok((loss, grads))
    }
}

/// One layer's backward pass: `dx` of its input from `dy` of its output; the gradients of
/// its variables go to `grads`.
fn layer_backward(l: &Layer, t: &LayerTape, dy: &Tensor, grads: &mut GradStore) -> Result<Tensor> {
    let b = &t.block;
    let d_r2 = l.ffn_norm.cpu_backward(&b.r2, dy, grads)?;
    let d_ffn = b.ffn_residual.branch_backward(&d_r2)?;
    let d_act = linear_backward(&l.down, &b.act, &d_ffn, grads)?;
    let d_up = Gelu::backward(&b.up, &d_act)?;
    let d_x1 = add(&linear_backward(&l.up, &b.x1, &d_up, grads)?, &d_r2)?;
    let d_r1 = l.attn_norm.cpu_backward(&b.r1, &d_x1, grads)?;
    let d_attn = b.attn_residual.branch_backward(&d_r1)?;
    let d_ctx = linear_backward(&l.o, &b.ctx, &d_attn, grads)?;
    let d_qkv = t.attention.backward(&t.qkv, &d_ctx)?;
    let [dx, dw, db] = kernels::Linear::backward(&t.x, &t.qkv_weight, &d_qkv)?;
    let h = dx.dim(1)?;
    for (i, p) in [&l.q, &l.k, &l.v].into_iter().enumerate() {
        grads.insert(p.weight(), dw.narrow(0, i * h, h)?);
        grads.insert(bias(p), db.narrow(0, i * h, h)?);
    }
    add(&dx, &d_r1)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarMap;
    use rand::SeedableRng;

    use super::*;
    use crate::model::bert4rec::batch::{Specials, training_batch};
    use crate::model::bert4rec::kernels::test_support::close;
    use crate::model::bert4rec::{ItemInit, ModelConfig};

    /// The hand-run backward pass against candle's `backward()` over the same forward pass:
    /// the same loss and the same gradient for every variable, with dropout on, padding,
    /// a track repeated within a row and two identical rows; frozen and trained tables.
    #[test]
    fn hand_run_backward_matches_candle_autograd() {
        let (n, h) = (24, 8);
        for init in [ItemInit::Content, ItemInit::Random] {
            let cfg = ModelConfig {
                intermediate: 16,
                max_len: 12,
                ..ModelConfig::paper(init, n, h)
            };
            let content: Vec<f32> = (0..n * h).map(|i| (i as f32 * 0.7).sin()).collect();
            let varmap = VarMap::new();
            let mut rng = StdRng::seed_from_u64(1);
            let e = Encoder::new(&cfg, Some(&content), &varmap, &mut rng, &Device::Cpu).unwrap();
            let seqs: [&[u32]; 4] = [
                &[3, 5, 3, 7, 3],
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                &[0, 23],
                &[0, 23],
            ];
            let s = Specials {
                mask: e.mask_token(),
                pad: e.pad_token(),
            };
            let b = training_batch(&seqs, 12, 0.4, s, &mut StdRng::seed_from_u64(2));
            assert!(b.tokens.contains(&s.pad));

            let (loss, grads) = e
                .loss_and_gradients(&b, &mut StdRng::seed_from_u64(3))
                .unwrap();
            let mut dropout = StdRng::seed_from_u64(3);
            let hidden = e
                .forward(&b.tokens, b.rows, b.len, &mut Mode::Train(&mut dropout))
                .unwrap();
            let reference = e.masked_loss(&hidden, &b.masked, &b.targets).unwrap();
            let want = reference.to_scalar::<f32>().unwrap();
            assert!(
                (loss - want).abs() <= 1e-6 * want.abs(),
                "{init:?}: {loss} vs {want}"
            );
            let want = reference.backward().unwrap();
            let vars = varmap.data().lock().unwrap();
            assert_eq!(
                grads.get_ids().count(),
                vars.len(),
                "{init:?}: one gradient per variable"
            );
            for (name, var) in vars.iter() {
                let ours = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: none"));
                assert_eq!(ours.dims(), var.dims(), "{init:?}: {name}");
                close(ours, want.get(var.as_tensor()).unwrap(), 1e-5);
            }
        }
    }
}
