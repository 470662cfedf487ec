//! BERT4Rec (Sun et al., 2019) over frozen audio embeddings, as Tamm & Aljanaki train it:
//! the item table is a backend's matrix plus learned [MASK] and [PAD] rows, the hidden size
//! is the embedding dimension, and the output head is tied to the item table.
//!
//! - [`encoder`]: the transformer (hand-written attention and layer norm, so every
//!   trainable tensor gets a gradient; candle's fused layer norm has no backward pass);
//! - [`masking`]: seeded masked-item batches (never masking padding) and prediction batches;
//! - [`fit`]: the training loop (Adam, plateau schedule, early stopping, best checkpoint);
//! - [`checkpoint`]: safetensors weights plus a JSON config with the validation curve.

pub mod checkpoint;
pub mod encoder;
pub mod fit;
mod fused;
pub mod masking;
pub mod rank;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use checkpoint::{Checkpoint, CheckpointPaths};
pub use encoder::{Encoder, Mode};
pub use fit::{FitConfig, FitReport, fit};

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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid checkpoint config: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {detail}")]
    Mismatch { path: PathBuf, detail: String },
    #[error("nothing to train on: no user has a train history")]
    NoTrainingData,
}

#[cfg(test)]
mod tests;
