//! BERT4Rec's part of a checkpoint ([`Bert4RecConfig`]) and rebuilding the encoder from
//! one. The weights file holds the trained variables; a frozen item table is not among
//! them, it is rebuilt from the backend at load time.

use candle_core::Device;
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{Bert4RecError, Encoder, FitConfig, ItemInit, ModelConfig};
use crate::dataset::SplitConfig;
use crate::model::checkpoint::{
    self, Checkpoint, CheckpointError, CheckpointPaths, DataFingerprint, EpochRecord, FORMAT,
    NetConfig, TrainState,
};
use crate::model::schedule::{EarlyStopping, Plateau};

/// The architecture and the training parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bert4RecConfig {
    pub model: ModelConfig,
    pub fit: FitConfig,
}

pub type Bert4RecCheckpoint = Checkpoint<Bert4RecConfig>;

/// The conventional checkpoint name: `bert4rec-<backend>`, or `bert4rec-random` for the
/// variant without content.
pub fn default_name(item_init: ItemInit, backend: &str) -> String {
    match item_init {
        ItemInit::Content => format!("bert4rec-{backend}"),
        ItemInit::Random => "bert4rec-random".into(),
    }
}

impl NetConfig for Bert4RecConfig {
    const KIND: &'static str = "bert4rec";

    fn from_legacy(json: serde_json::Value) -> Option<Checkpoint<Self>> {
        #[derive(Deserialize)]
        struct LegacyData {
            tracks: usize,
            train_pairs: usize,
            split: SplitConfig,
            train_hash: String,
        }
        #[derive(Deserialize)]
        struct Legacy {
            backend: String,
            model: ModelConfig,
            fit: FitConfig,
            data: LegacyData,
            curve: Vec<EpochRecord>,
            best_epoch: Option<usize>,
        }
        let old: Legacy = serde_json::from_value(json).ok()?;
        let best_validation_loss = old
            .best_epoch
            .and_then(|e| old.curve.get(e - 1))
            .map(|r| r.validation_loss);
        let lr = old.curve.last().map_or(old.fit.lr, |r| r.lr);
        let fit = &old.fit;
        Some(Checkpoint {
            format: FORMAT,
            kind: Self::KIND.into(),
            data: DataFingerprint {
                backend: old.backend,
                dim: old.model.hidden,
                tracks: old.data.tracks,
                train_pairs: old.data.train_pairs,
                split: old.data.split,
                train_hash: Some(old.data.train_hash),
            },
            device: "unknown (format 1)".into(),
            initial_validation_loss: None,
            best_epoch: old.best_epoch,
            best_validation_loss,
            // Format 1 kept no schedule state: such a run cannot be resumed.
            state: TrainState {
                epochs_done: old.curve.len(),
                lr,
                plateau: Plateau::new(fit.plateau_factor, fit.plateau_patience, fit.min_lr),
                early_stopping: EarlyStopping::new(fit.early_stopping_patience),
                finished: Some("trained before format 2 (not resumable)".into()),
                optimizer_steps: 0,
            },
            curve: old.curve,
            net: Bert4RecConfig {
                model: old.model,
                fit: old.fit,
            },
        })
    }

    fn max_epochs(&self) -> usize {
        self.fit.max_epochs
    }

    fn with_max_epochs(&self, max_epochs: usize) -> Self {
        let mut c = self.clone();
        c.fit.max_epochs = max_epochs;
        c
    }
}

/// Rebuilds the encoder of a checkpoint from its best weights. `content` is the backend's
/// row-major matrix; for a frozen content table it may have more rows than at training
/// (tracks added since).
pub fn load(
    paths: &CheckpointPaths,
    content: Option<&[f32]>,
    device: &Device,
) -> Result<(Encoder, VarMap, Bert4RecCheckpoint), Bert4RecError> {
    let checkpoint = checkpoint::read::<Bert4RecConfig>(paths)?;
    let (encoder, varmap) = encoder_from(&checkpoint.net.model, content, &paths.weights(), device)?;
    Ok((encoder, varmap, checkpoint))
}

/// An encoder of architecture `m` whose variables are read from `weights`.
pub fn encoder_from(
    m: &ModelConfig,
    content: Option<&[f32]>,
    weights: &std::path::Path,
    device: &Device,
) -> Result<(Encoder, VarMap), Bert4RecError> {
    let mismatch = |detail: String| CheckpointError::mismatch(weights, detail);
    let placeholder;
    let content = if m.item_init == ItemInit::Content && m.freeze_items {
        let raw = content.ok_or_else(|| mismatch("needs the backend's embeddings".into()))?;
        if raw.len() % m.hidden != 0 || raw.len() / m.hidden < m.n_tracks {
            return Err(mismatch(format!(
                "the embeddings have {} values, not {} rows of dimension {}",
                raw.len(),
                m.n_tracks,
                m.hidden
            ))
            .into());
        }
        Some(raw)
    } else {
        // A trained table comes from the weights file; only its shape matters here.
        placeholder = vec![0f32; m.n_tracks * m.hidden];
        Some(placeholder.as_slice())
    };
    let mut varmap = VarMap::new();
    let encoder = Encoder::new(m, content, &varmap, &mut StdRng::seed_from_u64(0), device)?;
    varmap.load(weights).map_err(|e| mismatch(e.to_string()))?;
    Ok((encoder, varmap))
}
