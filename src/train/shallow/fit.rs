//! Training a Shallow Net: the hinge loss over positive pairs and negative users, as one
//! [`Trainable`] for the shared epoch loop (Adam, plateau schedule, early stopping on the
//! validation hinge loss with fixed negatives, checkpoints, resume).

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::loss::batch_loss;
use super::sampling::{NegativeSampler, Pairs};
use crate::dataset::{Split, Vocab};
use crate::embeddings::Embeddings;
use crate::model::checkpoint::{Checkpoint, CheckpointPaths, DataFingerprint, FORMAT};
use crate::model::shallow::net::{Table, matrix, random_table};
use crate::model::shallow::{
    Init, ShallowCheckpoint, ShallowConfig, ShallowError, ShallowNet, ShallowParams,
};
use crate::train::adam::Adam;
use crate::train::fit::{self, FitObserver, Schedule, Trainable, Validation, derive_seed};

/// What training reads.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    pub embeddings: &'a Embeddings,
    pub split: &'a Split,
    /// The dataset's user ids (`split.train` is indexed by these users).
    pub users: &'a Vocab,
}

/// The end of a run: the checkpoint as written and the net in its latest state.
pub struct FitOutcome {
    pub checkpoint: ShallowCheckpoint,
    pub net: ShallowNet,
}

/// The user table: one row per user with train tracks, and each dataset user's row.
struct UserRows {
    ids: Vec<String>,
    row_of: Vec<Option<u32>>,
    users: Vec<u32>,
}

fn user_rows(data: &TrainData) -> UserRows {
    let mut rows = UserRows {
        ids: Vec::new(),
        row_of: vec![None; data.split.train.len()],
        users: Vec::new(),
    };
    for (u, tracks) in data.split.train.iter().enumerate() {
        if !tracks.is_empty() {
            rows.row_of[u] = Some(rows.ids.len() as u32);
            rows.ids.push(data.users.id(u as u32).to_string());
            rows.users.push(u as u32);
        }
    }
    rows
}

fn fresh_net(
    params: &ShallowParams,
    data: &TrainData,
    rows: &UserRows,
    device: &Device,
) -> Result<ShallowNet, ShallowError> {
    let e = data.embeddings;
    let (items, users) = match params.init {
        Init::Content => {
            let mut users = Vec::with_capacity(rows.users.len() * e.dim);
            for &u in &rows.users {
                users.extend(
                    e.mean(&data.split.train[u as usize])
                        .expect("train users have tracks"),
                );
            }
            (
                matrix(e.raw(), e.dim, device)?,
                matrix(&users, e.dim, device)?,
            )
        }
        Init::Random => (
            random_table(e.len(), e.dim, derive_seed(params.seed, 0, 1), device)?,
            random_table(
                rows.users.len(),
                e.dim,
                derive_seed(params.seed, 0, 2),
                device,
            )?,
        ),
    };
    let items = Table::new(items, params.items_trainable())?;
    let users = Table::new(users, params.users_trainable())?;
    let d_out = params.d_out.unwrap_or(e.dim);
    Ok(ShallowNet::new(items, users, d_out, params.seed, device)?)
}

/// The schedule of a Shallow Net run.
pub fn schedule(p: &ShallowParams) -> Schedule {
    Schedule {
        max_epochs: p.max_epochs,
        lr: p.lr,
        plateau_factor: p.plateau_factor,
        plateau_patience: p.plateau_patience,
        min_lr: p.min_lr,
        early_stopping_patience: p.early_stopping_patience,
        seed: p.seed,
    }
}

/// A net with its training pairs and the fixed validation negatives.
struct ShallowTrainer<'a> {
    net: ShallowNet,
    params: &'a ShallowParams,
    train: Pairs,
    sampler: NegativeSampler,
    validation: Pairs,
    validation_negatives: Vec<u32>,
    order: Vec<u32>,
}

impl ShallowTrainer<'_> {
    /// Mean hinge loss over `pairs` with fixed negatives, in batches, without training.
    fn loss_of(&self, pairs: &Pairs, negatives: &[u32]) -> Result<f64, ShallowError> {
        let (n, b) = (self.params.negatives, self.params.batch_size);
        let mut total = 0.0;
        for start in (0..pairs.len()).step_by(b) {
            let end = (start + b).min(pairs.len());
            let loss = batch_loss(
                &self.net,
                &pairs.users[start..end],
                &pairs.items[start..end],
                &negatives[start * n..end * n],
                n,
                self.params.margin,
            )?;
            total += loss.to_scalar::<f32>()? as f64 * (end - start) as f64;
        }
        Ok(total / pairs.len() as f64)
    }
}

impl Trainable for ShallowTrainer<'_> {
    type Config = ShallowConfig;
    type Error = ShallowError;

    fn named_vars(&self) -> Vec<(String, Var)> {
        self.net.named_vars()
    }

    fn tensors(&self) -> HashMap<String, Tensor> {
        self.net.named_tensors()
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), ShallowError> {
        for (name, var) in self.net.named_vars() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| ShallowError::Data(format!("the latest weights lack `{name}`")))?;
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }

    fn batches(&self) -> usize {
        self.train.len().div_ceil(self.params.batch_size)
    }

    fn train_epoch(
        &mut self,
        opt: &mut Adam,
        rng: &mut StdRng,
        observer: &dyn FitObserver,
    ) -> Result<f64, ShallowError> {
        let p = self.params;
        self.order.sort_unstable();
        self.order.shuffle(rng);
        let mut total = 0.0;
        for chunk in self.order.chunks(p.batch_size) {
            let batch = self.train.gather(chunk);
            let negatives = self.sampler.draw(&batch, p.negatives, rng);
            let loss = batch_loss(
                &self.net,
                &batch.users,
                &batch.items,
                &negatives,
                p.negatives,
                p.margin,
            )?;
            opt.backward_step(&loss)?;
            let value = loss.to_scalar::<f32>()? as f64;
            total += value * chunk.len() as f64;
            observer.batch_done(value);
        }
        Ok(total / self.train.len() as f64)
    }

    fn validate(&self) -> Result<Validation, ShallowError> {
        Ok(Validation {
            loss: self.loss_of(&self.validation, &self.validation_negatives)?,
            hit_rate_50: None,
        })
    }

    fn untrained_is_a_candidate(&self) -> bool {
        true
    }
}

/// Trains a Shallow Net on `data`, writing checkpoints to `paths`. With `resume`, it
/// continues the run recorded there (same parameters and data, except `max_epochs`),
/// optimiser state included.
pub fn fit(
    params: &ShallowParams,
    data: TrainData,
    paths: &CheckpointPaths,
    resume: bool,
    device: &Device,
    observer: &dyn FitObserver,
) -> Result<FitOutcome, ShallowError> {
    if params.batch_size == 0 || params.negatives == 0 {
        return Err(ShallowError::Data(
            "batch size and negatives must be positive".into(),
        ));
    }
    let rows = user_rows(&data);
    if rows.ids.len() < 2 {
        return Err(ShallowError::Data(
            "negative sampling needs at least two train users".into(),
        ));
    }
    let mut train = Pairs::default();
    for (r, &u) in rows.users.iter().enumerate() {
        for &t in &data.split.train[u as usize] {
            train.push(r as u32, t);
        }
    }
    let mut validation = Pairs::default();
    for h in &data.split.validation {
        let r = rows.row_of[h.user as usize].expect("validation users have train tracks");
        h.tracks.iter().for_each(|&t| validation.push(r, t));
    }
    if validation.is_empty() {
        return Err(ShallowError::Data(
            "the split has no validation pairs for early stopping".into(),
        ));
    }
    let sampler = NegativeSampler::new(
        &train,
        rows.ids.len() as u32,
        data.embeddings.len(),
        params.negative_sampling,
    );
    let mut val_rng = StdRng::seed_from_u64(derive_seed(params.seed, 0, 3));
    let validation_negatives = sampler.draw(&validation, params.negatives, &mut val_rng);
    let net = fresh_net(params, &data, &rows, device)?;
    let fresh = Checkpoint {
        format: FORMAT,
        kind: "shallow".into(),
        net: ShallowConfig {
            params: params.clone(),
            d_in: net.d_in(),
            d_out: net.d_out(),
            user_ids: rows.ids,
            item_rows: if params.items_trainable() {
                data.embeddings.len()
            } else {
                0
            },
        },
        data: DataFingerprint::new(
            &params.backend,
            data.embeddings.dim,
            data.embeddings.len(),
            data.split,
        ),
        device: format!("{device:?}"),
        initial_validation_loss: None,
        best_epoch: None,
        best_validation_loss: None,
        curve: Vec::new(),
        state: fit::initial_state(&schedule(params)),
    };
    let order = (0..train.len() as u32).collect();
    let mut trainer = ShallowTrainer {
        net,
        params,
        train,
        sampler,
        validation,
        validation_negatives,
        order,
    };
    let checkpoint = fit::fit(
        &mut trainer,
        fresh,
        &schedule(params),
        paths,
        resume,
        observer,
    )?;
    Ok(FitOutcome {
        checkpoint,
        net: trainer.net,
    })
}
