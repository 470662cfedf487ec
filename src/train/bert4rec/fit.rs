//! The masked-item training loop: seeded batches of the most recent `max_len` train items
//! per user, cross-entropy over all tracks at the masked positions, Adam, a plateau
//! schedule and early stopping on the validation loss, and the best epoch checkpointed.
//!
//! Validation loss (our choice, close to the authors' next-item evaluation): each
//! validation user's last `max_len - 1` train items plus [MASK], and the mean over their
//! held-out tracks of `-log p(track)` at the [MASK] position. It is deterministic (no
//! sampled masks, no dropout) and it is exactly the serving path; HitRate@50 of the same
//! forward pass is recorded alongside.

use std::time::Instant;

use candle_core::D;
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Checkpoint, CheckpointPaths};
use super::masking::{Specials, prediction_batch, training_batch};
use super::rank::{top_k, universe};
use super::{Bert4RecError, Encoder, Mode};
use crate::train::schedule::{EarlyStopping, Plateau, Verdict};

/// Training parameters. Defaults are the paper's and the authors' code's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub max_epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub mask_prob: f64,
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub min_lr: f64,
    pub early_stopping_patience: usize,
    pub seed: u64,
    /// Stop each epoch after this many batches (benchmarks); `None` = all.
    pub max_batches: Option<usize>,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            max_epochs: 200,
            batch_size: 128,
            lr: 1e-3,
            mask_prob: 0.2,
            plateau_factor: 0.1,
            plateau_patience: 5,
            min_lr: 1e-6,
            early_stopping_patience: 16,
            seed: 42,
            max_batches: None,
        }
    }
}

/// One epoch of the validation curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub validation_hit_rate_50: f64,
    pub seconds: f64,
}

/// What the loop sees of the data.
pub struct TrainData<'a> {
    /// Train sequences (first-listen order), one per user with a history.
    pub sequences: Vec<&'a [u32]>,
    /// Validation users: (train history, held-out tracks).
    pub validation: Vec<(&'a [u32], &'a [u32])>,
    /// The recommendable tracks (the split's train items).
    pub items: &'a [u32],
}

impl<'a> TrainData<'a> {
    pub fn from_split(split: &'a crate::dataset::Split) -> Self {
        Self {
            sequences: split
                .train
                .iter()
                .filter(|s| !s.is_empty())
                .map(Vec::as_slice)
                .collect(),
            validation: split
                .validation
                .iter()
                .map(|h| (split.train[h.user as usize].as_slice(), h.tracks.as_slice()))
                .collect(),
            items: &split.train_items,
        }
    }
}

pub struct FitReport {
    pub checkpoint: Checkpoint,
    pub stopped_early: bool,
}

/// Trains `encoder` (whose variables are in `varmap`), saving the best epoch to `paths`.
/// `checkpoint` carries the metadata to save; its curve is filled in here.
pub fn fit(
    encoder: &Encoder,
    varmap: &VarMap,
    data: &TrainData,
    config: &FitConfig,
    mut checkpoint: Checkpoint,
    paths: &CheckpointPaths,
) -> Result<FitReport, Bert4RecError> {
    if data.sequences.is_empty() {
        return Err(Bert4RecError::NoTrainingData);
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut opt = adam(varmap, config.lr)?;
    let mut plateau = Plateau::new(
        config.plateau_factor,
        config.plateau_patience,
        config.min_lr,
    );
    let mut stopping = EarlyStopping::new(config.early_stopping_patience);
    let mut stopped_early = false;
    checkpoint.curve.clear();
    for epoch in 1..=config.max_epochs {
        let start = Instant::now();
        let lr = opt.learning_rate();
        let bar = progress_bar(data.sequences.len(), config, epoch);
        let train_loss = run_epoch(encoder, &mut opt, &data.sequences, config, &mut rng, &bar)?;
        bar.finish_and_clear();
        let (val_loss, hit_rate) = if data.validation.is_empty() {
            (train_loss, f64::NAN)
        } else {
            validate(encoder, &data.validation, data.items, 50, config.batch_size)?
        };
        let record = EpochRecord {
            epoch,
            lr,
            train_loss,
            validation_loss: val_loss,
            validation_hit_rate_50: hit_rate,
            seconds: start.elapsed().as_secs_f64(),
        };
        tracing::info!(
            epoch,
            lr,
            train_loss = format!("{train_loss:.4}"),
            validation_loss = format!("{val_loss:.4}"),
            hit_rate_50 = format!("{hit_rate:.4}"),
            seconds = format!("{:.1}", record.seconds),
            "bert4rec epoch"
        );
        checkpoint.curve.push(record);
        let verdict = stopping.step(val_loss);
        if verdict == Verdict::Improved {
            checkpoint.best_epoch = Some(epoch);
            checkpoint::save_weights(varmap, paths)?;
        }
        checkpoint.save(paths)?;
        if verdict == Verdict::Stop {
            stopped_early = true;
            break;
        }
        opt.set_learning_rate(plateau.step(val_loss, lr));
    }
    Ok(FitReport {
        checkpoint,
        stopped_early,
    })
}

/// Adam: candle's AdamW without weight decay.
pub fn adam(varmap: &VarMap, lr: f64) -> Result<AdamW, Bert4RecError> {
    Ok(AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?)
}

/// One pass over the sequences in seeded batches; returns the mean batch loss. Batches
/// are formed from shuffled users, sorted by length within windows of 16 batches so that
/// rows of a batch have similar lengths (less padding), then visited in shuffled order.
pub fn run_epoch(
    encoder: &Encoder,
    opt: &mut AdamW,
    sequences: &[&[u32]],
    config: &FitConfig,
    rng: &mut StdRng,
    bar: &ProgressBar,
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
        let hidden =
            encoder.forward(&batch.tokens, batch.rows, batch.len, &mut Mode::Train(rng))?;
        let loss = encoder.masked_loss(&hidden, &batch.masked, &batch.targets)?;
        opt.backward_step(&loss)?;
        sum += loss.to_scalar::<f32>()? as f64;
        count += 1;
        bar.inc(rows.len() as u64);
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
    for chunk in cases.chunks(batch_size.max(1)) {
        let chunk: Vec<_> = chunk.iter().filter(|(h, _)| !h.is_empty()).collect();
        if chunk.is_empty() {
            continue;
        }
        let histories: Vec<&[u32]> = chunk.iter().map(|(h, _)| *h).collect();
        let b = prediction_batch(&histories, encoder.config().max_len, specials);
        let logits = encoder.next_item_logits(&b.tokens, b.rows, b.len)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
        for ((history, held), row) in chunk.iter().zip(&logp) {
            let held_loss: f64 = held.iter().map(|&t| -row[t as usize] as f64).sum();
            loss += held_loss / held.len().max(1) as f64;
            let top = top_k(row, &allowed, history, k);
            if top.iter().any(|(t, _)| held.contains(t)) {
                hits += 1.0;
            }
            users += 1;
        }
    }
    let n = users.max(1) as f64;
    Ok((loss / n, hits / n))
}

fn progress_bar(users: usize, config: &FitConfig, epoch: usize) -> ProgressBar {
    let bar = ProgressBar::new(users as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} users {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("{epoch}/{}", config.max_epochs));
    bar
}
