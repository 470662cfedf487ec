//! The training loop: Adam on the hinge loss, validation loss per epoch driving
//! ReduceLROnPlateau and early stopping, the best epoch checkpointed, resumable.
//!
//! Every random choice is seeded: epoch `e` shuffles and samples from a generator seeded
//! with `(seed, e)`, so a resumed run draws what an uninterrupted one would have. Adam's
//! moment estimates are not stored, so they restart from zero on resume.

use std::time::Instant;

use candle_core::Device;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::checkpoint::{
    Checkpoint, CheckpointConfig, CheckpointPaths, EpochRecord, Fingerprint, TrainState,
    write_config, write_weights,
};
use super::loss::batch_loss;
use super::model::{ShallowNet, Table, matrix, random_table};
use super::sampling::{Pairs, negative_users};
use super::{Init, ShallowError, ShallowParams};
use crate::dataset::{Split, Vocab};
use crate::embeddings::Embeddings;
use crate::train::schedule::{EarlyStopping, Plateau, Verdict};

/// What training reads.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    pub embeddings: &'a Embeddings,
    pub split: &'a Split,
    /// The dataset's user ids (`split.train` is indexed by these users).
    pub users: &'a Vocab,
}

/// Progress callbacks (the CLI draws a bar; tests stay quiet).
pub trait FitObserver {
    fn epoch_started(&self, _epoch: usize, _batches: usize) {}
    fn batch_done(&self, _loss: f64) {}
    fn epoch_done(&self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl FitObserver for Quiet {}

/// The end of a run: the config as written and the model in its latest state.
pub struct FitOutcome {
    pub config: CheckpointConfig,
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

/// A seed for epoch `epoch` (and purpose `salt`) derived from the run's seed.
fn derive_seed(seed: u64, epoch: usize, salt: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64) << 20)
        .wrapping_add(salt)
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

/// Rebuilds a net from checkpoint tensors, with the same tables trainable as in training.
pub fn net_from_checkpoint(
    ckpt: &Checkpoint,
    embeddings: &Embeddings,
    device: &Device,
) -> Result<ShallowNet, ShallowError> {
    let params = &ckpt.config.params;
    let get = |name: &str| {
        ckpt.tensor(name)
            .expect("checked at load")
            .to_device(device)
    };
    let items = match ckpt.tensor("items") {
        Some(t) => t.to_device(device)?,
        None => matrix(embeddings.raw(), embeddings.dim, device)?,
    };
    let net = ShallowNet {
        items: Table::new(items, params.items_trainable())?,
        users: Table::new(get("users")?, params.users_trainable())?,
        weight: candle_core::Var::from_tensor(&get("tower.weight")?)?,
        bias: candle_core::Var::from_tensor(&get("tower.bias")?)?,
    };
    Ok(net)
}

/// Mean hinge loss over `pairs` with fixed negatives, in batches, without training.
fn evaluate_loss(
    net: &ShallowNet,
    pairs: &Pairs,
    negatives: &[u32],
    params: &ShallowParams,
) -> Result<f64, ShallowError> {
    let n = params.negatives;
    let mut total = 0.0;
    for start in (0..pairs.len()).step_by(params.batch_size) {
        let end = (start + params.batch_size).min(pairs.len());
        let loss = batch_loss(
            net,
            &pairs.users[start..end],
            &pairs.items[start..end],
            &negatives[start * n..end * n],
            n,
            params.margin,
        )?;
        total += loss.to_scalar::<f32>()? as f64 * (end - start) as f64;
    }
    Ok(total / pairs.len() as f64)
}

/// Trains a Shallow Net on `data`, writing checkpoints to `paths`. With `resume`, it
/// continues the run recorded there (same parameters and data, except `max_epochs`).
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
    let n_users = rows.ids.len() as u32;
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
    let mut val_rng = StdRng::seed_from_u64(derive_seed(params.seed, 0, 3));
    let val_negatives = negative_users(&validation.users, n_users, params.negatives, &mut val_rng);
    let fingerprint = Fingerprint::new(
        &params.backend,
        data.embeddings.dim,
        data.embeddings.len(),
        data.split,
    );

    let (net, mut config) = if resume {
        let ckpt = Checkpoint::load(paths, true, device)?;
        let mut config = ckpt.config.clone();
        let mismatch = |detail: String| ShallowError::Mismatch {
            path: paths.config(),
            detail,
        };
        if config.fingerprint != fingerprint {
            return Err(mismatch(
                "it was trained on other data (fingerprint differs)".into(),
            ));
        }
        let mut same = params.clone();
        same.max_epochs = config.params.max_epochs;
        if same != config.params {
            return Err(mismatch(
                "its parameters differ from these (only max epochs may change)".into(),
            ));
        }
        if config.user_ids != rows.ids {
            return Err(mismatch("its user table rows are other users".into()));
        }
        config.params.max_epochs = params.max_epochs;
        if config.state.epochs_done < params.max_epochs {
            config.state.finished = None;
        }
        (net_from_checkpoint(&ckpt, data.embeddings, device)?, config)
    } else {
        let net = fresh_net(params, &data, &rows, device)?;
        let initial = evaluate_loss(&net, &validation, &val_negatives, params)?;
        let mut early_stopping = EarlyStopping::new(params.early_stopping_patience);
        early_stopping.step(initial);
        let config = CheckpointConfig {
            model: "shallow".into(),
            params: params.clone(),
            d_in: net.d_in(),
            d_out: net.d_out(),
            fingerprint,
            user_ids: rows.ids.clone(),
            item_rows: if params.items_trainable() {
                data.embeddings.len()
            } else {
                0
            },
            device: format!("{device:?}"),
            initial_validation_loss: initial,
            best_epoch: None,
            best_validation_loss: Some(initial),
            curve: Vec::new(),
            state: TrainState {
                epochs_done: 0,
                lr: params.lr,
                plateau: Plateau::new(
                    params.plateau_factor,
                    params.plateau_patience,
                    params.min_lr,
                ),
                early_stopping,
                finished: None,
            },
        };
        // The untrained model is the best until an epoch beats its validation loss.
        write_weights(&paths.weights(), &net.named_tensors())?;
        write_weights(&paths.last(), &net.named_tensors())?;
        write_config(paths, &config)?;
        (net, config)
    };

    let mut opt = AdamW::new(
        net.trainable_vars(),
        ParamsAdamW {
            lr: config.state.lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let n_batches = train.len().div_ceil(params.batch_size);
    let mut order: Vec<u32> = (0..train.len() as u32).collect();
    while config.state.finished.is_none() && config.state.epochs_done < params.max_epochs {
        let epoch = config.state.epochs_done + 1;
        let start = Instant::now();
        observer.epoch_started(epoch, n_batches);
        let mut rng = StdRng::seed_from_u64(derive_seed(params.seed, epoch, 0));
        order.sort_unstable();
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(params.batch_size) {
            let batch = train.gather(chunk);
            let negatives = negative_users(&batch.users, n_users, params.negatives, &mut rng);
            let loss = batch_loss(
                &net,
                &batch.users,
                &batch.items,
                &negatives,
                params.negatives,
                params.margin,
            )?;
            opt.backward_step(&loss)?;
            let value = loss.to_scalar::<f32>()? as f64;
            total += value * chunk.len() as f64;
            observer.batch_done(value);
        }
        let train_loss = total / train.len() as f64;
        let validation_loss = evaluate_loss(&net, &validation, &val_negatives, params)?;
        let state = &mut config.state;
        let verdict = state.early_stopping.step(validation_loss);
        let record = EpochRecord {
            epoch,
            train_loss,
            validation_loss,
            lr: state.lr,
            seconds: start.elapsed().as_secs_f64(),
            improved: verdict == Verdict::Improved,
        };
        state.lr = state.plateau.step(validation_loss, state.lr);
        opt.set_learning_rate(state.lr);
        state.epochs_done = epoch;
        if verdict == Verdict::Improved {
            config.best_epoch = Some(epoch);
            config.best_validation_loss = Some(validation_loss);
            write_weights(&paths.weights(), &net.named_tensors())?;
        }
        if verdict == Verdict::Stop {
            state.finished = Some("early stopping".into());
        } else if epoch >= params.max_epochs {
            state.finished = Some("max epochs".into());
        }
        observer.epoch_done(&record);
        config.curve.push(record);
        write_weights(&paths.last(), &net.named_tensors())?;
        write_config(paths, &config)?;
    }
    Ok(FitOutcome { config, net })
}
