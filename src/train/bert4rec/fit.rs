//! Training BERT4Rec: seeded masked-item batches of the most recent `max_len` train items
//! per user, cross-entropy over all tracks at the masked positions, as one [`Trainable`]
//! for the shared epoch loop (Adam, plateau schedule, early stopping, checkpoints, resume).
//!
//! Validation loss (our choice, close to the authors' next-item evaluation): each
//! validation user's last `max_len - 1` train items plus [MASK], and the mean over their
//! held-out tracks of `-log p(track)` at the [MASK] position. It is deterministic (no
//! sampled masks, no dropout) and it is exactly the serving path; HitRate@50 of the same
//! forward pass is recorded alongside.

use std::cell::Cell;
use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::dataset::Split;
use crate::embeddings::Embeddings;
use crate::model::bert4rec::batch::{Specials, prediction_batch, training_batch};
use crate::model::bert4rec::kernels::log_softmax_rows;
use crate::model::bert4rec::rank::{top_k, universe};
use crate::model::bert4rec::{
    Bert4RecCheckpoint, Bert4RecConfig, Bert4RecError, Encoder, FitConfig,
};
use crate::model::checkpoint::{Checkpoint, CheckpointPaths, DataFingerprint, FORMAT};
use crate::train::adam::Adam;
use crate::train::fit::{self, FitObserver, Schedule, Trainable, Validation};

/// What training reads.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// The backend: the item table of the content variant, and the fingerprint's source.
    pub embeddings: &'a Embeddings,
    pub split: &'a Split,
}

/// The sequences the loop reads, borrowed from a split.
struct Sequences<'a> {
    /// Train sequences (first-listen order), one per user with a history.
    train: Vec<&'a [u32]>,
    /// Validation users: (train history, held-out tracks).
    validation: Vec<(&'a [u32], &'a [u32])>,
    /// The recommendable tracks (the split's train items).
    items: &'a [u32],
}

/// The train sequences of a split, one per user with a history.
pub fn train_sequences(split: &Split) -> Vec<&[u32]> {
    split
        .train
        .iter()
        .filter(|s| !s.is_empty())
        .map(Vec::as_slice)
        .collect()
}

impl<'a> Sequences<'a> {
    fn new(split: &'a Split) -> Self {
        Self {
            train: train_sequences(split),
            validation: split
                .validation
                .iter()
                .map(|h| (split.train[h.user as usize].as_slice(), h.tracks.as_slice()))
                .collect(),
            items: &split.train_items,
        }
    }
}

/// The end of a run: the checkpoint as written and the encoder in its latest state.
pub struct FitOutcome {
    pub checkpoint: Bert4RecCheckpoint,
    pub encoder: Encoder,
    pub varmap: VarMap,
}

/// The schedule of a BERT4Rec run.
pub fn schedule(f: &FitConfig) -> Schedule {
    Schedule {
        max_epochs: f.max_epochs,
        lr: f.lr,
        plateau_factor: f.plateau_factor,
        plateau_patience: f.plateau_patience,
        min_lr: f.min_lr,
        early_stopping_patience: f.early_stopping_patience,
        seed: f.seed,
    }
}

struct Bert4RecTrainer<'a> {
    encoder: Encoder,
    varmap: VarMap,
    config: &'a FitConfig,
    data: Sequences<'a>,
    /// The last epoch's train loss: the validation loss when there are no validation
    /// users (a tiny dataset), so early stopping still has a signal.
    last_train_loss: Cell<f64>,
}

impl Trainable for Bert4RecTrainer<'_> {
    type Config = Bert4RecConfig;
    type Error = Bert4RecError;

    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut vars: Vec<(String, Var)> = self
            .varmap
            .data()
            .lock()
            .expect("the var map lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    fn tensors(&self) -> HashMap<String, Tensor> {
        self.named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect()
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), Bert4RecError> {
        for (name, var) in self.named_vars() {
            let t = tensors.get(&name).ok_or_else(|| {
                Bert4RecError::Config(format!("the latest weights lack `{name}`"))
            })?;
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }

    fn batches(&self) -> usize {
        let n = self
            .data
            .train
            .len()
            .div_ceil(self.config.batch_size.max(1));
        n.min(self.config.max_batches.unwrap_or(usize::MAX))
    }

    fn train_epoch(
        &mut self,
        opt: &mut Adam,
        rng: &mut StdRng,
        observer: &dyn FitObserver,
    ) -> Result<f64, Bert4RecError> {
        let loss = run_epoch(
            &self.encoder,
            opt,
            &self.data.train,
            self.config,
            rng,
            observer,
        )?;
        self.last_train_loss.set(loss);
        Ok(loss)
    }

    fn validate(&self) -> Result<Validation, Bert4RecError> {
        if self.data.validation.is_empty() {
            return Ok(Validation {
                loss: self.last_train_loss.get(),
                hit_rate_50: None,
            });
        }
        let (loss, hit_rate) = validate(
            &self.encoder,
            &self.data.validation,
            self.data.items,
            50,
            self.config.batch_size,
        )?;
        Ok(Validation {
            loss,
            hit_rate_50: Some(hit_rate),
        })
    }

    fn untrained_is_a_candidate(&self) -> bool {
        false
    }
}

/// The checkpoint of a run not yet trained.
pub fn fresh_checkpoint(
    config: &Bert4RecConfig,
    data: TrainData,
    device: &Device,
) -> Bert4RecCheckpoint {
    let e = data.embeddings;
    Checkpoint {
        format: FORMAT,
        kind: "bert4rec".into(),
        net: config.clone(),
        data: DataFingerprint::new(&e.backend, e.dim, e.len(), data.split),
        device: format!("{device:?}"),
        initial_validation_loss: None,
        best_epoch: None,
        best_validation_loss: None,
        curve: Vec::new(),
        state: fit::initial_state(&schedule(&config.fit)),
    }
}

/// Trains a BERT4Rec of `config` on `data`, writing checkpoints to `paths`. With
/// `resume`, it continues the run recorded there (same parameters and data, except
/// `max_epochs`), optimiser state included.
pub fn fit(
    config: &Bert4RecConfig,
    data: TrainData,
    paths: &CheckpointPaths,
    resume: bool,
    device: &Device,
    observer: &dyn FitObserver,
) -> Result<FitOutcome, Bert4RecError> {
    config.model.validate()?;
    let sequences = Sequences::new(data.split);
    if sequences.train.is_empty() {
        return Err(Bert4RecError::NoTrainingData);
    }
    let varmap = VarMap::new();
    let encoder = Encoder::new(
        &config.model,
        Some(data.embeddings.raw()),
        &varmap,
        &mut StdRng::seed_from_u64(config.fit.seed),
        device,
    )?;
    let fresh = fresh_checkpoint(config, data, device);
    let mut trainer = Bert4RecTrainer {
        encoder,
        varmap,
        config: &config.fit,
        data: sequences,
        last_train_loss: Cell::new(f64::NAN),
    };
    let checkpoint = fit::fit(
        &mut trainer,
        fresh,
        &schedule(&config.fit),
        paths,
        resume,
        observer,
    )?;
    Ok(FitOutcome {
        checkpoint,
        encoder: trainer.encoder,
        varmap: trainer.varmap,
    })
}

/// One pass over the sequences in seeded batches; returns the mean batch loss. Batches
/// are formed from shuffled users, sorted by length within windows of 16 batches so that
/// rows of a batch have similar lengths (less padding), then visited in shuffled order.
pub fn run_epoch(
    encoder: &Encoder,
    opt: &mut Adam,
    sequences: &[&[u32]],
    config: &FitConfig,
    rng: &mut StdRng,
    observer: &dyn FitObserver,
) -> Result<f64, Bert4RecError> {
    let max_len = encoder.config().max_len;
    let specials = Specials {
        mask: encoder.mask_token(),
        pad: encoder.pad_token(),
    };
    let batches = epoch_batches(sequences, config.batch_size, max_len, rng);
    let limit = config.max_batches.unwrap_or(usize::MAX);
    let (mut sum, mut count) = (0.0, 0);
    for rows in batches.iter().take(limit) {
        let seqs: Vec<&[u32]> = rows.iter().map(|&i| sequences[i]).collect();
        let batch = training_batch(&seqs, max_len, config.mask_prob, specials, rng);
        let (loss, grads) = encoder.loss_and_gradients(&batch, rng)?;
        opt.step(&grads)?;
        let value = loss as f64;
        sum += value;
        count += 1;
        observer.batch_done(value);
    }
    Ok(sum / count.max(1) as f64)
}

/// The batches (indices into `sequences`) of one epoch.
pub fn epoch_batches(
    sequences: &[&[u32]],
    batch_size: usize,
    max_len: usize,
    rng: &mut StdRng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.shuffle(rng);
    let batch_size = batch_size.max(1);
    let mut batches = Vec::new();
    for window in order.chunks_mut(batch_size * 16) {
        window.sort_by_key(|&i| sequences[i].len().min(max_len));
        batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// Mean next-item loss and HitRate@k of the validation users (see the module docs).
pub fn validate(
    encoder: &Encoder,
    cases: &[(&[u32], &[u32])],
    items: &[u32],
    k: usize,
    batch_size: usize,
) -> Result<(f64, f64), Bert4RecError> {
    let specials = Specials {
        mask: encoder.mask_token(),
        pad: encoder.pad_token(),
    };
    let allowed = universe(items, encoder.n_items());
    let (mut loss, mut hits, mut users) = (0.0, 0.0, 0usize);
    let order = validation_order(cases, encoder.config().max_len);
    for chunk in order.chunks(batch_size.max(1)) {
        let chunk: Vec<_> = (chunk.iter().map(|&i| &cases[i]))
            .filter(|(h, _)| !h.is_empty())
            .collect();
        if chunk.is_empty() {
            continue;
        }
        let histories: Vec<&[u32]> = chunk.iter().map(|(h, _)| *h).collect();
        let b = prediction_batch(&histories, encoder.config().max_len, specials);
        let logits = encoder.next_item_logits(&b.tokens, b.rows, b.len)?;
        let mut logp = logits.flatten_all()?.to_vec1::<f32>()?;
        log_softmax_rows(&mut logp, encoder.n_items());
        // Users in parallel (ranking is a tenth of the pass), summed in order.
        let scored: Vec<(f64, bool)> = (chunk.par_iter())
            .zip(logp.par_chunks(encoder.n_items()))
            .map(|((history, held), row)| {
                let held_loss: f64 = held.iter().map(|&t| -row[t as usize] as f64).sum();
                let top = top_k(row, &allowed, history, k);
                let hit = top.iter().any(|(t, _)| held.contains(t));
                (held_loss / held.len().max(1) as f64, hit)
            })
            .collect();
        for (user_loss, hit) in scored {
            loss += user_loss;
            hits += f64::from(u8::from(hit));
            users += 1;
        }
    }
    let n = users.max(1) as f64;
    Ok((loss / n, hits / n))
}

/// The order in which [`validate`] reads its users: by the length of what the model reads
/// of each history (its last `max_len - 1` tracks), so that a batch is padded to about its
/// own users' length rather than to the longest of any `batch_size` users. The pass's
/// results are means over users, which the order does not change.
pub fn validation_order(cases: &[(&[u32], &[u32])], max_len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| cases[i].0.len().min(max_len.saturating_sub(1)));
    order
}
