//! The cells of a grid in the report's order, and how long they should take.
//!
//! The estimate is a rule fitted to this project's benchmarks on a 2-core machine
//! (`cargo bench --bench shallow`, `--bench bert4rec`, `--bench knn`): a Shallow Net
//! epoch costs about `pairs · d^1.5 · 2.7e-9` s, a BERT4Rec epoch with its validation
//! `users · d^1.2 · (max_len + 45) · 1.5e-7` s (fitted to whole grid epochs on `small`
//! data: 18.5 and 31 s on 200-d musicnn at lengths 64 and 128, 139 and 212 s on 1,024-d
//! mert), an exact KNN evaluation `users · tracks · d · 1e-9` s; every optimiser step
//! costs at least [`STEP_SECONDS`] besides (an assumed floor, so that tiny batches are not
//! estimated as free). It is a guide for `--dry-run` and the service's budget, not a
//! promise; the progress display replaces it with measured times.

use std::fmt;

use super::ExperimentConfig;
use super::config::ShuffledControl;
use crate::embeddings::shuffled;
use crate::eval::report::{ModelKind, Variant};

/// One cell: a recommender on a backend (the Random rows name the backend whose
/// dimensions they borrow, none of its content; the Shuffled rows the backend whose rows
/// they permute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpec {
    pub model: ModelKind,
    pub variant: Variant,
    pub backend: String,
}

impl CellSpec {
    /// The key stored with the cell: `model/variant/backend`.
    pub fn key(&self) -> String {
        let variant = match self.variant {
            Variant::Content => "content",
            Variant::Random => "random",
            Variant::Shuffled => "shuffled",
        };
        format!("{}/{variant}/{}", model_name(self.model), self.backend)
    }

    /// The backend the cell loads: the backend, or its shuffled control.
    pub fn embeddings_name(&self) -> String {
        match self.variant {
            Variant::Shuffled => shuffled::name(&self.backend, 0),
            Variant::Content | Variant::Random => self.backend.clone(),
        }
    }

    /// The checkpoint name of a trained cell.
    pub fn checkpoint_name(&self) -> String {
        match self.variant {
            Variant::Content | Variant::Shuffled => {
                format!("{}-{}", model_name(self.model), self.embeddings_name())
            }
            Variant::Random => format!("{}-random", model_name(self.model)),
        }
    }
}

impl fmt::Display for CellSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant {
            Variant::Content => write!(f, "{} / {}", self.model.label(), self.backend),
            Variant::Shuffled => write!(f, "{} / {} shuffled", self.model.label(), self.backend),
            Variant::Random => write!(f, "{} / Random", self.model.label()),
        }
    }
}

pub fn model_name(m: ModelKind) -> &'static str {
    match m {
        ModelKind::Knn => "knn",
        ModelKind::Shallow => "shallow",
        ModelKind::Bert4rec => "bert4rec",
    }
}

/// Every cell, blocks in the paper's model order, backends in the given order, then (on a
/// split with `cold` tracks) the shuffled controls the config asks for, each neural
/// block's Random row last.
pub fn cells(config: &ExperimentConfig, backends: &[String], cold: bool) -> Vec<CellSpec> {
    let mut out = Vec::new();
    let controls = match (cold, config.shuffled_control) {
        (false, _) | (_, ShuffledControl::None) => 0,
        (true, ShuffledControl::First) => 1,
        (true, ShuffledControl::All) => backends.len(),
    };
    for model in ModelKind::ALL {
        if !config.models.contains(&model) {
            continue;
        }
        for (variant, backends) in [
            (Variant::Content, backends),
            (Variant::Shuffled, &backends[..controls]),
        ] {
            for b in backends {
                out.push(CellSpec {
                    model,
                    variant,
                    backend: b.clone(),
                });
            }
        }
        if let Some(first) = backends.first()
            && config.include_random
            && model != ModelKind::Knn
        {
            out.push(CellSpec {
                model,
                variant: Variant::Random,
                backend: first.clone(),
            });
        }
    }
    out
}

/// What the estimate reads of the data.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub train_pairs: usize,
    pub train_users: usize,
    pub eval_users: usize,
    pub tracks: usize,
}

/// The least an optimiser step costs, whatever its batch (dispatch, allocation).
pub const STEP_SECONDS: f64 = 2e-3;

/// Estimated seconds of a cell whose backend has dimension `dim`.
pub fn estimate(cell: &CellSpec, dim: usize, config: &ExperimentConfig, s: Sizes) -> f64 {
    let d = match (cell.model, cell.variant) {
        (ModelKind::Bert4rec, Variant::Random) => config.bert4rec.random_hidden,
        _ => dim,
    } as f64;
    let eval = s.eval_users as f64 * s.tracks as f64 * d * 1e-9;
    let train = match cell.model {
        ModelKind::Knn => 0.0,
        ModelKind::Shallow => {
            let steps = s.train_pairs.div_ceil(config.shallow.batch_size.max(1));
            config.shallow.epochs as f64
                * (s.train_pairs as f64 * d.powf(1.5) * 2.7e-9 + steps as f64 * STEP_SECONDS)
        }
        ModelKind::Bert4rec => {
            let b = &config.bert4rec;
            let users = match b.max_batches {
                Some(n) => n.saturating_mul(b.batch_size).min(s.train_users),
                None => s.train_users,
            };
            let steps = users.div_ceil(b.batch_size.max(1));
            b.epochs as f64
                * (users as f64 * d.powf(1.2) * (b.max_len as f64 + 45.0) * 1.5e-7
                    + steps as f64 * STEP_SECONDS)
        }
    };
    train + eval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_the_papers_order_with_one_random_row_per_neural_block() {
        let backends = vec!["musicnn".to_string(), "noise".to_string()];
        let keys: Vec<String> = cells(&ExperimentConfig::default(), &backends, false)
            .iter()
            .map(CellSpec::key)
            .collect();
        assert_eq!(
            keys,
            [
                "knn/content/musicnn",
                "knn/content/noise",
                "shallow/content/musicnn",
                "shallow/content/noise",
                "shallow/random/musicnn",
                "bert4rec/content/musicnn",
                "bert4rec/content/noise",
                "bert4rec/random/musicnn",
            ]
        );
        let only_knn = ExperimentConfig {
            models: vec![ModelKind::Knn],
            ..ExperimentConfig::default()
        };
        assert_eq!(cells(&only_knn, &backends, false).len(), 2);
    }

    #[test]
    fn a_cold_split_adds_the_shuffled_controls_the_config_asks_for() {
        let backends = vec!["musicnn".to_string(), "noise".to_string()];
        let config = ExperimentConfig {
            models: vec![ModelKind::Knn, ModelKind::Shallow],
            ..ExperimentConfig::default()
        };
        let keys = |config: &ExperimentConfig| -> Vec<String> {
            cells(config, &backends, true)
                .iter()
                .map(CellSpec::key)
                .collect()
        };
        assert_eq!(
            keys(&config),
            [
                "knn/content/musicnn",
                "knn/content/noise",
                "knn/shuffled/musicnn",
                "shallow/content/musicnn",
                "shallow/content/noise",
                "shallow/shuffled/musicnn",
                "shallow/random/musicnn",
            ]
        );
        let all = ExperimentConfig {
            shuffled_control: ShuffledControl::All,
            ..config.clone()
        };
        assert_eq!(keys(&all).len(), 9);
        let shuffled = &cells(&all, &backends, true)[3];
        assert_eq!(shuffled.embeddings_name(), "noise-shuffled");
        assert_eq!(shuffled.checkpoint_name(), "knn-noise-shuffled");
        let none = ExperimentConfig {
            shuffled_control: ShuffledControl::None,
            ..config
        };
        assert_eq!(keys(&none).len(), 5);
    }

    #[test]
    fn small_batches_cost_their_steps() {
        let sizes = Sizes {
            train_pairs: 10_000,
            train_users: 100,
            eval_users: 0,
            tracks: 0,
        };
        let cell = CellSpec {
            model: ModelKind::Shallow,
            variant: Variant::Content,
            backend: "b".into(),
        };
        let mut config = ExperimentConfig::default();
        config.shallow.epochs = 1;
        let big = estimate(&cell, 100, &config, sizes);
        config.shallow.batch_size = 1;
        let small = estimate(&cell, 100, &config, sizes);
        assert!(
            (small - big - 9_999.0 * STEP_SECONDS).abs() < 1e-9,
            "{small} {big}"
        );
    }
}
