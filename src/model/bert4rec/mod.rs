//! BERT4Rec (Sun et al., 2019) over frozen audio embeddings, as Tamm & Aljanaki train it:
//! the item table is a backend's matrix plus learned [MASK] and [PAD] rows, the hidden size
//! is the embedding dimension, and the output head is tied to the item table.
//!
//! - [`encoder`]: the transformer and its tied head; on the CPU through [`kernels`], with a
//!   training step's backward pass run by hand, elsewhere (CUDA) through candle's ops;
//! - [`kernels`]: fused CPU kernels with backward passes, one file per op;
//! - [`batch`]: padded token batches (training and prediction);
//! - [`rank`]: top-k over the logits of the recommendable tracks;
//! - [`checkpoint`]: the net's part of a checkpoint and loading one.
//!
//! Training is in `crate::train::bert4rec`, serving in `crate::recommend::bert4rec`.

pub mod batch;
pub mod checkpoint;
pub mod encoder;
pub mod kernels;
pub mod rank;

use serde::{Deserialize, Serialize};

pub use checkpoint::{Bert4RecCheckpoint, Bert4RecConfig};
pub use encoder::{Encoder, Mode};

use super::checkpoint::CheckpointError;

/// Training parameters (recorded in every checkpoint). Defaults are the paper's and the
/// authors' code's.
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

/// How the item table starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ItemInit {
    /// The backend's embedding matrix (the paper's model).
    Content,
    /// N(0, 0.02), the paper's `random` variant: no audio content at all.
    Random,
}

/// The architecture. Everything needed to rebuild the encoder before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub item_init: ItemInit,
    /// Whether the item table is a constant (`true`) or trained.
    pub freeze_items: bool,
    /// Rows of the item table during training (the catalog size).
    pub n_tracks: usize,
    /// Hidden size; equals the embedding dimension for the content variant.
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Longest sequence the model reads (positions learned for each).
    pub max_len: usize,
    /// Dropout probability on embeddings, attention weights and sublayer outputs.
    pub dropout: f32,
}

impl ModelConfig {
    /// The paper's architecture over `n_tracks` items of dimension `hidden`.
    pub fn paper(item_init: ItemInit, n_tracks: usize, hidden: usize) -> Self {
        Self {
            item_init,
            freeze_items: item_init == ItemInit::Content,
            n_tracks,
            hidden,
            layers: 2,
            heads: 2,
            intermediate: 256,
            max_len: 300,
            dropout: 0.1,
        }
    }

    pub fn validate(&self) -> Result<(), Bert4RecError> {
        let bad = |m: String| Err(Bert4RecError::Config(m));
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return bad(format!(
                "hidden size {} is not divisible by {} heads",
                self.hidden, self.heads
            ));
        }
        if self.max_len < 2 {
            return bad(format!(
                "max length {} leaves no room for [MASK]",
                self.max_len
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        if self.item_init == ItemInit::Random && self.freeze_items {
            return bad("a frozen random item table carries no information".into());
        }
        Ok(())
    }
}

/// Errors of training, checkpointing and loading BERT4Rec.
#[derive(Debug, thiserror::Error)]
pub enum Bert4RecError {
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("nothing to train on: no user has a train history")]
    NoTrainingData,
}
