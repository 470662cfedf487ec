//! The epoch loop both nets share: Adam, ReduceLROnPlateau and early stopping on the
//! validation loss, the best epoch's weights saved, and after every epoch the latest
//! weights with the optimiser's moments, so an interrupted run resumes where it stopped
//! and ends where an uninterrupted one would have.
//!
//! Every random choice of epoch `e` draws from a generator seeded with `(seed, e)`, so
//! a resumed run draws what an uninterrupted one would have. Each net says what one epoch
//! and one validation pass are ([`Trainable`]); the loop is the same.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::adam::Adam;
use crate::model::checkpoint::{
    self, Checkpoint, CheckpointError, CheckpointPaths, EpochRecord, NetConfig, TrainState,
};
use crate::model::schedule::{EarlyStopping, Plateau, Verdict};

/// The optimisation schedule, from a net's training parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub max_epochs: usize,
    pub lr: f64,
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub min_lr: f64,
    pub early_stopping_patience: usize,
    pub seed: u64,
}

/// Progress callbacks: the CLI draws a bar, the service logs, tests stay quiet.
pub trait FitObserver: Sync {
    fn epoch_started(&self, _epoch: usize, _batches: usize) {}
    fn batch_done(&self, _loss: f64) {}
    fn epoch_done(&self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl FitObserver for Quiet {}

/// An observer that logs each finished epoch through `tracing` (the service, and the CLI
/// when standard error is not a terminal).
pub struct Logged(pub String);
impl FitObserver for Logged {
    fn epoch_done(&self, r: &EpochRecord) {
        tracing::info!(
            model = %self.0,
            epoch = r.epoch,
            train_loss = r.train_loss,
            validation_loss = r.validation_loss,
            hit_rate_50 = r.validation_hit_rate_50,
            lr = r.lr,
            seconds = r.seconds,
            best = r.improved,
            "epoch done"
        );
    }
}

/// A validation pass's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    pub loss: f64,
    pub hit_rate_50: Option<f64>,
}

/// What the loop needs of a net.
pub trait Trainable {
    type Config: NetConfig + PartialEq;
    type Error: From<CheckpointError> + From<candle_core::Error>;

    /// The variables Adam updates, named (names key the saved optimiser state).
    fn named_vars(&self) -> Vec<(String, Var)>;
    /// The tensors a checkpoint stores.
    fn tensors(&self) -> HashMap<String, Tensor>;
    /// Puts a checkpoint's tensors back (resuming).
    fn restore(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), Self::Error>;
    /// Batches per epoch, for progress.
    fn batches(&self) -> usize;
    /// One pass over the training data, every batch's loss through `opt`; the mean loss.
    fn train_epoch(
        &mut self,
        opt: &mut Adam,
        rng: &mut StdRng,
        observer: &dyn FitObserver,
    ) -> Result<f64, Self::Error>;
    /// The validation loss (and HitRate@50 where the pass ranks).
    fn validate(&self) -> Result<Validation, Self::Error>;
    /// Whether the untrained net's validation loss is the bar every epoch must beat (the
    /// Shallow Net, whose initial table is already a good model) or only recorded.
    fn untrained_is_a_candidate(&self) -> bool;
}

/// A seed for epoch `epoch` (and purpose `salt`) derived from the run's seed.
pub fn derive_seed(seed: u64, epoch: usize, salt: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64) << 20)
        .wrapping_add(salt)
}

/// A fresh training state for `schedule`.
pub fn initial_state(s: &Schedule) -> TrainState {
    TrainState {
        epochs_done: 0,
        lr: s.lr,
        plateau: Plateau::new(s.plateau_factor, s.plateau_patience, s.min_lr),
        early_stopping: EarlyStopping::new(s.early_stopping_patience),
        finished: None,
        optimizer_steps: 0,
    }
}

/// Trains `net` into `paths`. `fresh` is the checkpoint of a new run (its curve empty);
/// with `resume` and a checkpoint at `paths` for the same data and parameters (only
/// `max_epochs` may differ), the run recorded there continues instead.
pub fn fit<N: Trainable>(
    net: &mut N,
    fresh: Checkpoint<N::Config>,
    schedule: &Schedule,
    paths: &CheckpointPaths,
    resume: bool,
    observer: &dyn FitObserver,
) -> Result<Checkpoint<N::Config>, N::Error> {
    let mut opt = Adam::new(net.named_vars(), schedule.lr)?;
    let mut ckpt = if resume && paths.config().is_file() {
        let old = checkpoint::read::<N::Config>(paths)?;
        let mismatch = |d: &str| CheckpointError::mismatch(paths.config(), d);
        if !old.data.same_data(&fresh.data) {
            return Err(mismatch("it was trained on other data (fingerprint differs)").into());
        }
        if old.net != fresh.net.with_max_epochs(old.net.max_epochs()) {
            return Err(
                mismatch("its parameters differ from these (only max epochs may change)").into(),
            );
        }
        let last = checkpoint::read_tensors(&paths.last(), &candle_core::Device::Cpu)?;
        net.restore(&last)?;
        opt.restore(&last, old.state.optimizer_steps)?;
        let mut old = old;
        old.net = fresh.net;
        if old.state.epochs_done < schedule.max_epochs
            && old.state.finished.as_deref() == Some("max epochs")
        {
            old.state.finished = None;
        }
        opt.set_learning_rate(old.state.lr);
        old
    } else {
        let mut ckpt = fresh;
        ckpt.state = initial_state(schedule);
        let v = net.validate()?;
        ckpt.initial_validation_loss = Some(v.loss);
        if net.untrained_is_a_candidate() {
            ckpt.state.early_stopping.step(v.loss);
            ckpt.best_validation_loss = Some(v.loss);
            checkpoint::write_tensors(&paths.weights(), &net.tensors())?;
        }
        save_last(net, &opt, paths)?;
        checkpoint::write(paths, &ckpt)?;
        ckpt
    };
    while ckpt.state.finished.is_none() && ckpt.state.epochs_done < schedule.max_epochs {
        let epoch = ckpt.state.epochs_done + 1;
        let start = Instant::now();
        observer.epoch_started(epoch, net.batches());
        let mut rng = StdRng::seed_from_u64(derive_seed(schedule.seed, epoch, 0));
        let train_loss = net.train_epoch(&mut opt, &mut rng, observer)?;
        let v = net.validate()?;
        let state = &mut ckpt.state;
        let verdict = state.early_stopping.step(v.loss);
        let record = EpochRecord {
            epoch,
            lr: state.lr,
            train_loss,
            validation_loss: v.loss,
            validation_hit_rate_50: v.hit_rate_50,
            seconds: start.elapsed().as_secs_f64(),
            improved: verdict == Verdict::Improved,
        };
        state.lr = state.plateau.step(v.loss, state.lr);
        opt.set_learning_rate(state.lr);
        state.epochs_done = epoch;
        state.optimizer_steps = opt.steps();
        if verdict == Verdict::Improved {
            ckpt.best_epoch = Some(epoch);
            ckpt.best_validation_loss = Some(v.loss);
            checkpoint::write_tensors(&paths.weights(), &net.tensors())?;
        }
        if verdict == Verdict::Stop {
            state.finished = Some("early stopping".into());
        } else if epoch >= schedule.max_epochs {
            state.finished = Some("max epochs".into());
        }
        observer.epoch_done(&record);
        ckpt.curve.push(record);
        save_last(net, &opt, paths)?;
        checkpoint::write(paths, &ckpt)?;
    }
    Ok(ckpt)
}

/// The latest weights and the optimiser's moments, for resuming.
fn save_last<N: Trainable>(net: &N, opt: &Adam, paths: &CheckpointPaths) -> Result<(), N::Error> {
    let mut tensors = net.tensors();
    tensors.extend(opt.state());
    Ok(checkpoint::write_tensors(&paths.last(), &tensors)?)
}

/// A curve without its wall-clock times, which differ between any two runs: what a
/// resumed run must reproduce exactly.
#[cfg(test)]
pub(crate) fn timeless(curve: &[EpochRecord]) -> Vec<EpochRecord> {
    curve
        .iter()
        .map(|r| EpochRecord {
            seconds: 0.0,
            ..r.clone()
        })
        .collect()
}
