//! The Shallow Net of Tamm & Aljanaki (RecSys '24): collaborative signal learned on top
//! of frozen audio content.
//!
//! - [`net`]: tables, the shared `Linear + ReLU` tower, cosine scores;
//! - [`pairdot`]: the fused (user, item) score op the training loss runs on;
//! - [`checkpoint`]: the net's part of a checkpoint and loading one.
//!
//! Training is in `crate::train::shallow`, serving in `crate::recommend::shallow`.

pub mod checkpoint;
pub mod net;
pub mod pairdot;

use serde::{Deserialize, Serialize};

pub use checkpoint::{ShallowCheckpoint, ShallowConfig};
pub use net::ShallowNet;

use super::checkpoint::CheckpointError;

/// How the tables start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// The paper's model: items = the backend matrix, users = mean of their train tracks.
    Content,
    /// The paper's `random` baseline: both tables from N(0, 1), both learned.
    Random,
}

/// Which users are drawn as negatives for a positive (user, track) pair.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NegativeSampling {
    /// The paper's text: users who did not play the track (never the positive user).
    #[default]
    NonInteracting,
    /// The authors' published code: uniform over all users, the positive one included.
    Uniform,
}

/// Every parameter of a Shallow Net run. Defaults are the paper's (and, where it is
/// silent, the authors' published code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShallowParams {
    pub backend: String,
    pub init: Init,
    /// Output size of the tower; `None` = the input size.
    pub d_out: Option<usize>,
    /// Keep the item table fixed (the paper's text: yes). Ignored by `Init::Random`,
    /// which learns both tables.
    pub freeze_items: bool,
    /// Keep the user table fixed (the paper's text: no).
    pub freeze_users: bool,
    pub margin: f64,
    /// Negative users per positive pair.
    pub negatives: usize,
    /// How they are drawn (format 1 checkpoints predate the choice and read as the default).
    #[serde(default)]
    pub negative_sampling: NegativeSampling,
    pub lr: f64,
    /// Positive pairs per batch.
    pub batch_size: usize,
    pub max_epochs: usize,
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub min_lr: f64,
    pub early_stopping_patience: usize,
    pub seed: u64,
}

impl ShallowParams {
    pub fn new(backend: &str) -> Self {
        Self {
            backend: backend.into(),
            init: Init::Content,
            d_out: None,
            freeze_items: true,
            freeze_users: false,
            margin: 0.2,
            negatives: 20,
            negative_sampling: NegativeSampling::NonInteracting,
            lr: 1e-3,
            batch_size: 10_000,
            max_epochs: 100,
            plateau_factor: 0.1,
            plateau_patience: 5,
            min_lr: 0.0,
            early_stopping_patience: 16,
            seed: 0,
        }
    }

    /// Whether the item table is learned: always for `Random`, else unless frozen.
    pub fn items_trainable(&self) -> bool {
        self.init == Init::Random || !self.freeze_items
    }

    pub fn users_trainable(&self) -> bool {
        self.init == Init::Random || !self.freeze_users
    }

    /// The default checkpoint name: `shallow-<backend>` (`shallow-random-<backend>`).
    pub fn default_name(&self) -> String {
        match self.init {
            Init::Content => format!("shallow-{}", self.backend),
            Init::Random => format!("shallow-random-{}", self.backend),
        }
    }
}

/// What can go wrong training, saving, loading or serving a Shallow Net.
#[derive(Debug, thiserror::Error)]
pub enum ShallowError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot train: {0}")]
    Data(String),
}
