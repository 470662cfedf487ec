//! The demo's neural models, trained in the background of a running service, so that a
//! fresh `serve` on demo data offers all three recommenders: on demo data with no
//! finished checkpoint of theirs, a short Shallow Net and BERT4Rec on one backend, each
//! trained as an experiment cell is ([`train_cell`]) into the service's models folder and
//! served the moment it is saved; the next start loads the checkpoints instead. An
//! interrupted run continues from its last finished epoch at the next start.
//!
//! Progress goes to the log (the epoch lines of [`Logged`]) and to the registry: each
//! entry is `training`, epoch i of at most n, with when it should be done (`/ready`,
//! `/v1/models`, and the `Retry-After` of a request that asks for it too early).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cell::{CellContext, train_cell};
use super::config::{Bert4RecSettings, ExperimentConfig, ShallowSettings};
use super::plan::{CellSpec, Sizes, estimate, model_name};
use crate::eval::report::{ModelKind, Variant};
use crate::model::checkpoint::{CheckpointPaths, EpochRecord};
use crate::recommend::loader::Loader;
use crate::recommend::readiness::State;
use crate::recommend::registry::Registry;
use crate::train::fit::{FitObserver, Logged};

/// The backend the demo trains on: the demo's most informative one, 200-d, whose two
/// short trainings take about a minute on 2 cores on `small` data.
pub const BACKEND: &str = "musicnn";

/// Most epochs of each net unless a setting says otherwise.
pub const SHALLOW_EPOCHS: usize = 8;
pub const BERT4REC_EPOCHS: usize = 4;

/// The demo's training profile: short runs (BERT4Rec on the last 128 items, batch 64).
pub fn config(epochs: Option<usize>) -> ExperimentConfig {
    ExperimentConfig {
        name: "demo models".into(),
        backends: vec![BACKEND.into()],
        models: vec![ModelKind::Shallow, ModelKind::Bert4rec],
        include_random: false,
        shallow: ShallowSettings {
            epochs: epochs.unwrap_or(SHALLOW_EPOCHS),
            ..ShallowSettings::default()
        },
        bert4rec: Bert4RecSettings {
            epochs: epochs.unwrap_or(BERT4REC_EPOCHS),
            batch_size: 64,
            max_len: 128,
            ..Bert4RecSettings::default()
        },
        ..ExperimentConfig::default()
    }
}

/// The cells to train on `backend`: each net whose checkpoint in `models` is missing or
/// unfinished (an interrupted run continues). A finished checkpoint, the demo's or one
/// trained by hand, is left alone: the service loads it.
pub fn cells(models: &Path, backend: &str) -> Vec<CellSpec> {
    [ModelKind::Shallow, ModelKind::Bert4rec]
        .into_iter()
        .map(|model| CellSpec {
            model,
            variant: Variant::Content,
            backend: backend.into(),
        })
        .filter(|cell| !finished(&CheckpointPaths::new(models, &cell.checkpoint_name())))
        .collect()
}

/// Whether a checkpoint exists and its training has ended.
fn finished(paths: &CheckpointPaths) -> bool {
    let Ok(text) = std::fs::read_to_string(paths.config()) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .map(|json| !json["state"]["finished"].is_null())
        .unwrap_or(true)
}

fn epochs(cell: &CellSpec, config: &ExperimentConfig) -> usize {
    match cell.model {
        ModelKind::Bert4rec => config.bert4rec.epochs,
        _ => config.shallow.epochs,
    }
}

/// Marks every cell's entry as training and waiting its turn (its time unknown until the
/// data is read), so a request for it is answered 503 with `Retry-After`, not 404.
pub fn announce(registry: &Registry, cells: &[CellSpec], config: &ExperimentConfig) {
    for cell in cells {
        registry.set_state(
            model_name(cell.model),
            &cell.backend,
            State::Training {
                epoch: 0,
                epochs: epochs(cell, config),
                eta: None,
            },
        );
    }
}

/// Trains the cells one after another and serves each through `loader` once saved; a
/// cell that fails is marked failed (and logged) and the next one goes on.
pub fn train(cells: &[CellSpec], cx: &CellContext, loader: &Loader) {
    let registry = loader.registry();
    let sizes = Sizes {
        train_pairs: cx.split.counts.train.interactions,
        train_users: cx.split.counts.train.users,
        eval_users: 0,
        tracks: cx.split.train_items.len(),
    };
    let estimates: Vec<Duration> = cells
        .iter()
        .map(|c| Duration::from_secs_f64(estimate(c, cx.embeddings.dim, cx.config, sizes)))
        .collect();
    for (i, cell) in cells.iter().enumerate() {
        let (model, backend) = (model_name(cell.model), cell.backend.as_str());
        let progress = Progress {
            registry,
            cells: &cells[i..],
            estimates: &estimates[i..],
            epochs: epochs(cell, cx.config),
            log: Logged(format!("{model}-{backend}")),
            clock: Mutex::new(Clock::new(estimates[i])),
            config: cx.config,
        };
        progress.publish();
        tracing::info!(
            model,
            backend,
            max_epochs = progress.epochs,
            "demo training started"
        );
        let outcome = train_cell(cell, cx, &progress)
            .map_err(|e| format!("{e:#}"))
            .and_then(|_| loader.load_checkpoint(model, backend));
        match outcome {
            Ok(()) => tracing::info!(model, backend, "demo model trained and served"),
            Err(reason) => {
                tracing::error!(model, backend, error = %reason, "demo training failed");
                registry.fail(model, backend, reason);
            }
        }
    }
}

/// What the training of one cell has measured so far.
struct Clock {
    epoch: usize,
    batches: usize,
    batches_done: usize,
    epoch_started: Instant,
    /// Seconds of each finished epoch, validation included.
    epoch_seconds: Vec<f64>,
    /// The rule's estimate of the whole cell, until measurements replace it.
    estimate: Duration,
}

impl Clock {
    fn new(estimate: Duration) -> Self {
        Self {
            epoch: 0,
            batches: 0,
            batches_done: 0,
            epoch_started: Instant::now(),
            epoch_seconds: Vec::new(),
            estimate,
        }
    }

    /// Seconds left, of at most `epochs`: the current epoch's rest at its batches' pace
    /// and the epochs after it at the finished ones' (the rule's, before any is).
    fn left(&self, epochs: usize, now: Instant) -> f64 {
        let elapsed = now.duration_since(self.epoch_started).as_secs_f64();
        let per_epoch = if self.epoch_seconds.is_empty() {
            match self.batches_done {
                0 => self.estimate.as_secs_f64() / epochs.max(1) as f64,
                done => elapsed / done as f64 * self.batches.max(done) as f64,
            }
        } else {
            self.epoch_seconds.iter().sum::<f64>() / self.epoch_seconds.len() as f64
        };
        let current = (per_epoch - elapsed).max(0.0);
        current + epochs.saturating_sub(self.epoch.max(1)) as f64 * per_epoch
    }
}

/// The observer of one cell's training: the log's epoch lines, and the registry's state
/// of this cell and of the cells waiting behind it.
struct Progress<'a> {
    registry: &'a Registry,
    /// This cell first, then those after it.
    cells: &'a [CellSpec],
    estimates: &'a [Duration],
    epochs: usize,
    log: Logged,
    clock: Mutex<Clock>,
    config: &'a ExperimentConfig,
}

impl Progress<'_> {
    fn publish(&self) {
        let now = Instant::now();
        let clock = self.clock.lock().expect("progress lock");
        let mut eta = now + Duration::from_secs_f64(clock.left(self.epochs, now));
        for (i, (cell, estimate)) in self.cells.iter().zip(self.estimates).enumerate() {
            let state = if i == 0 {
                State::Training {
                    epoch: clock.epoch,
                    epochs: self.epochs,
                    eta: Some(eta),
                }
            } else {
                eta += *estimate;
                State::Training {
                    epoch: 0,
                    epochs: epochs(cell, self.config),
                    eta: Some(eta),
                }
            };
            self.registry
                .set_state(model_name(cell.model), &cell.backend, state);
        }
    }
}

impl FitObserver for Progress<'_> {
    fn epoch_started(&self, epoch: usize, batches: usize) {
        {
            let mut clock = self.clock.lock().expect("progress lock");
            clock.epoch = epoch;
            clock.batches = batches;
            clock.batches_done = 0;
            clock.epoch_started = Instant::now();
        }
        self.publish();
    }

    fn batch_done(&self, _loss: f64) {
        self.clock.lock().expect("progress lock").batches_done += 1;
        self.publish();
    }

    fn epoch_done(&self, record: &EpochRecord) {
        self.log.epoch_done(record);
        self.clock
            .lock()
            .expect("progress lock")
            .epoch_seconds
            .push(record.seconds);
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_measures_batches_then_epochs() {
        let start = Instant::now();
        let mut clock = Clock::new(Duration::from_secs(40));
        clock.epoch = 1;
        clock.epoch_started = start;
        // Nothing measured: the rule's 40 s over 4 epochs.
        assert!((clock.left(4, start) - 40.0).abs() < 1e-9);
        // 2 of 10 batches in 2 s: 10 s an epoch, 8 s left of this one, 3 more epochs.
        clock.batches = 10;
        clock.batches_done = 2;
        let now = start + Duration::from_secs(2);
        assert!((clock.left(4, now) - 38.0).abs() < 1e-9);
        // Epoch 1 took 12 s; epoch 2 just began: 12 s for it and 2 more.
        clock.epoch_seconds.push(12.0);
        clock.epoch = 2;
        clock.batches_done = 0;
        clock.epoch_started = now;
        assert!((clock.left(4, now) - 36.0).abs() < 1e-9);
    }

    #[test]
    fn finished_checkpoints_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cells(dir.path(), "musicnn").len(), 2);
        let write = |name: &str, finished: &str| {
            let json = format!("{{\"state\": {{\"finished\": {finished}}}}}");
            std::fs::write(dir.path().join(format!("{name}.json")), json).unwrap();
        };
        write("shallow-musicnn", "\"max epochs\"");
        write("bert4rec-musicnn", "null");
        let left = cells(dir.path(), "musicnn");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].model, ModelKind::Bert4rec);
    }
}
