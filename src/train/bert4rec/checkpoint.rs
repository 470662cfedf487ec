//! A trained BERT4Rec on disk: `<name>.safetensors` (the trained variables; a frozen item
//! table is not among them, it is rebuilt from the backend at load time) plus `<name>.json`
//! (architecture, training parameters, data fingerprint, validation curve).

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::fit::{EpochRecord, FitConfig};
use super::{Bert4RecError, Encoder, ItemInit, ModelConfig};
use crate::dataset::{Split, SplitConfig};

/// Where a checkpoint's two files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPaths {
    pub weights: PathBuf,
    pub config: PathBuf,
}

impl CheckpointPaths {
    /// `DIR/<name>.safetensors` and `DIR/<name>.json`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            weights: dir.join(format!("{name}.safetensors")),
            config: dir.join(format!("{name}.json")),
        }
    }

    /// The conventional name: `bert4rec-<backend>`, or `bert4rec-random` for the variant
    /// without content.
    pub fn default_name(item_init: ItemInit, backend: &str) -> String {
        match item_init {
            ItemInit::Content => format!("bert4rec-{backend}"),
            ItemInit::Random => "bert4rec-random".into(),
        }
    }
}

/// What the data a model was trained on looked like, to notice a model used on other data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFingerprint {
    pub tracks: usize,
    pub users: usize,
    pub train_pairs: usize,
    pub split: SplitConfig,
    /// FNV-1a over the train sequences (user by user, track ids in order).
    pub train_hash: String,
}

impl DataFingerprint {
    pub fn new(split: &Split, n_tracks: usize) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |x: u32| {
            for b in x.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
        };
        for seq in &split.train {
            eat(seq.len() as u32);
            seq.iter().for_each(|&t| eat(t));
        }
        Self {
            tracks: n_tracks,
            users: split.train.len(),
            train_pairs: split.counts.train.interactions,
            split: split.config,
            train_hash: format!("{h:016x}"),
        }
    }
}

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The backend whose embeddings form the item table (or started it).
    pub backend: String,
    pub model: ModelConfig,
    pub fit: FitConfig,
    pub data: DataFingerprint,
    /// One record per finished epoch.
    pub curve: Vec<EpochRecord>,
    /// The epoch (1-based) whose weights are saved.
    pub best_epoch: Option<usize>,
}

impl Checkpoint {
    pub fn save(&self, paths: &CheckpointPaths) -> Result<(), Bert4RecError> {
        let io = |e| Bert4RecError::Io {
            path: paths.config.clone(),
            source: e,
        };
        if let Some(dir) = paths.config.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_vec_pretty(self).expect("a checkpoint serialises");
        std::fs::write(&paths.config, text).map_err(io)
    }

    pub fn read(paths: &CheckpointPaths) -> Result<Self, Bert4RecError> {
        let bytes = std::fs::read(&paths.config).map_err(|e| Bert4RecError::Io {
            path: paths.config.clone(),
            source: e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Bert4RecError::Json {
            path: paths.config.clone(),
            source: e,
        })
    }
}

/// Writes the trained variables.
pub fn save_weights(varmap: &VarMap, paths: &CheckpointPaths) -> Result<(), Bert4RecError> {
    if let Some(dir) = paths.weights.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Bert4RecError::Io {
            path: dir.into(),
            source: e,
        })?;
    }
    Ok(varmap.save(&paths.weights)?)
}

/// Rebuilds the encoder of a checkpoint. `content` is the backend's row-major matrix; for
/// a frozen content table it may have more rows than at training (tracks added since).
pub fn load(
    paths: &CheckpointPaths,
    content: Option<&[f32]>,
    device: &Device,
) -> Result<(Encoder, Checkpoint), Bert4RecError> {
    let checkpoint = Checkpoint::read(paths)?;
    let m = &checkpoint.model;
    let mismatch = |detail: String| Bert4RecError::Mismatch {
        path: paths.config.clone(),
        detail,
    };
    let placeholder;
    let content = if m.item_init == ItemInit::Content && m.freeze_items {
        let raw = content.ok_or_else(|| mismatch("needs the backend's embeddings".into()))?;
        if raw.len() % m.hidden != 0 || raw.len() / m.hidden < m.n_tracks {
            return Err(mismatch(format!(
                "the embeddings have {} values, not {} rows of dimension {}",
                raw.len(),
                m.n_tracks,
                m.hidden
            )));
        }
        Some(raw)
    } else {
        // A trained table comes from the weights file; only its shape matters here.
        placeholder = vec![0f32; m.n_tracks * m.hidden];
        Some(placeholder.as_slice())
    };
    let mut varmap = VarMap::new();
    let encoder = Encoder::new(m, content, &varmap, &mut StdRng::seed_from_u64(0), device)?;
    varmap
        .load(&paths.weights)
        .map_err(|e| mismatch(format!("{}: {e}", paths.weights.display())))?;
    Ok((encoder, checkpoint))
}
