//! One checkpoint format for both nets: `<name>.safetensors` (the best epoch's trained
//! tensors), `<name>.last.safetensors` (the latest epoch's tensors plus the optimiser's
//! moments, which a resumed run continues from) and `<name>.json` (every parameter, the
//! data fingerprint, the validation curve and the resume state).
//!
//! The JSON is a [`Checkpoint<C>`] whose `net` part is the net's own configuration; the
//! rest — curve, best epoch, schedule state, fingerprint — is the same for every net, so
//! training, reports and the experiment grid read any checkpoint alike. Files written
//! before this format (format 1, one shape per net) are converted once when read, with a
//! message, by [`NetConfig::from_legacy`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::schedule::{EarlyStopping, Plateau};
use crate::dataset::{Split, SplitConfig};
use crate::io::fnv::Fnv1a;

/// The format written today.
pub const FORMAT: u32 = 2;

/// What can go wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
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
    #[error("{path}: {source}")]
    Tensors {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("checkpoint {path} does not fit: {detail}")]
    Mismatch { path: PathBuf, detail: String },
}

impl CheckpointError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub fn mismatch(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Mismatch {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// Where a checkpoint's files are: `DIR/<name>.{json,safetensors,last.safetensors}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPaths {
    pub dir: PathBuf,
    pub name: String,
}

impl CheckpointPaths {
    pub fn new(dir: impl Into<PathBuf>, name: &str) -> Self {
        Self {
            dir: dir.into(),
            name: name.into(),
        }
    }

    /// A folder (then `default_name` in it) or any of a checkpoint's files.
    pub fn resolve(path: &Path, default_name: &str) -> Self {
        if path.is_dir() {
            return Self::new(path, default_name);
        }
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        let name = [".last.safetensors", ".safetensors", ".json"]
            .iter()
            .find_map(|ext| file.strip_suffix(ext))
            .unwrap_or(file);
        Self::new(path.parent().unwrap_or(Path::new(".")), name)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.name))
    }

    pub fn weights(&self) -> PathBuf {
        self.dir.join(format!("{}.safetensors", self.name))
    }

    pub fn last(&self) -> PathBuf {
        self.dir.join(format!("{}.last.safetensors", self.name))
    }
}

/// What a net was trained on, so a checkpoint is never served, resumed or reused by the
/// experiment grid against other data by accident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFingerprint {
    pub backend: String,
    /// The backend's dimension.
    pub dim: usize,
    /// Catalogue size (rows of the item table).
    pub tracks: usize,
    pub train_pairs: usize,
    pub split: SplitConfig,
    /// FNV-1a over the train sequences (user by user, track ids in order); `None` in
    /// checkpoints converted from format 1 Shallow Nets, which did not record it.
    pub train_hash: Option<String>,
}

impl DataFingerprint {
    pub fn new(backend: &str, dim: usize, tracks: usize, split: &Split) -> Self {
        let mut h = Fnv1a::default();
        for seq in &split.train {
            h.write(&(seq.len() as u32).to_le_bytes());
            seq.iter().for_each(|t| h.write(&t.to_le_bytes()));
        }
        Self {
            backend: backend.into(),
            dim,
            tracks,
            train_pairs: split.counts.train.interactions,
            split: split.config,
            train_hash: Some(h.hex()),
        }
    }

    /// Whether both describe the same data; a missing hash (converted checkpoints) is
    /// judged on the other fields alone.
    pub fn same_data(&self, other: &Self) -> bool {
        let hashes = match (&self.train_hash, &other.train_hash) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        hashes
            && self.backend == other.backend
            && self.dim == other.dim
            && self.tracks == other.tracks
            && self.train_pairs == other.train_pairs
            && self.split == other.split
    }
}

/// One epoch of the validation curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// The learning rate the epoch trained with.
    pub lr: f64,
    pub train_loss: f64,
    pub validation_loss: f64,
    /// HitRate@50 of the validation users, for nets whose validation pass ranks.
    #[serde(default)]
    pub validation_hit_rate_50: Option<f64>,
    pub seconds: f64,
    /// Whether this epoch was the best so far (its weights were saved).
    #[serde(default)]
    pub improved: bool,
}

/// Where training stands, for resuming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    /// The learning rate of the next epoch.
    pub lr: f64,
    pub plateau: Plateau,
    pub early_stopping: EarlyStopping,
    /// Why training ended (`early stopping`, `max epochs`); `None` while it can go on.
    pub finished: Option<String>,
    /// Updates the optimiser has taken (its bias correction depends on it); its moments
    /// are in `<name>.last.safetensors`.
    #[serde(default)]
    pub optimizer_steps: u64,
}

/// The JSON half of a checkpoint: the net's configuration `net` plus what every trained
/// net records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<C> {
    pub format: u32,
    /// `shallow` or `bert4rec`.
    pub kind: String,
    pub net: C,
    pub data: DataFingerprint,
    /// The device it was trained on.
    pub device: String,
    /// The untrained net's validation loss: the baseline every epoch must beat.
    pub initial_validation_loss: Option<f64>,
    /// The epoch (1-based) whose weights `<name>.safetensors` holds; `None` = untrained.
    pub best_epoch: Option<usize>,
    pub best_validation_loss: Option<f64>,
    pub curve: Vec<EpochRecord>,
    pub state: TrainState,
}

impl<C> Checkpoint<C> {
    /// The record of the best epoch.
    pub fn best(&self) -> Option<&EpochRecord> {
        self.best_epoch.and_then(|e| self.curve.get(e - 1))
    }

    /// Total training time so far.
    pub fn train_seconds(&self) -> f64 {
        self.curve.iter().map(|r| r.seconds).sum()
    }
}

/// A net's own part of a checkpoint.
pub trait NetConfig: Serialize + DeserializeOwned + Clone {
    /// The `kind` of its checkpoints.
    const KIND: &'static str;

    /// A checkpoint of format 1 (no `format` field) converted to today's, if `json` is one.
    fn from_legacy(json: serde_json::Value) -> Option<Checkpoint<Self>>;

    /// The most epochs training may run: the one parameter a resumed run may change.
    fn max_epochs(&self) -> usize;

    /// The same configuration with another epoch limit.
    fn with_max_epochs(&self, max_epochs: usize) -> Self;
}

/// Reads a checkpoint's JSON; a format 1 file is converted and rewritten once (the old
/// file kept beside it as `<name>.v1.json`).
pub fn read<C: NetConfig>(paths: &CheckpointPaths) -> Result<Checkpoint<C>, CheckpointError> {
    let path = paths.config();
    let bytes = std::fs::read(&path).map_err(CheckpointError::io(&path))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Json {
            path: path.clone(),
            source,
        })?;
    if json.get("format").is_none() {
        let Some(converted) = C::from_legacy(json) else {
            return Err(CheckpointError::mismatch(
                &path,
                format!("neither a {} checkpoint of format 1 nor {FORMAT}", C::KIND),
            ));
        };
        let backup = paths.dir.join(format!("{}.v1.json", paths.name));
        std::fs::copy(&path, &backup).map_err(CheckpointError::io(&backup))?;
        write(paths, &converted)?;
        tracing::warn!(checkpoint = %path.display(), backup = %backup.display(), "converted a format 1 checkpoint to format {FORMAT}");
        return Ok(converted);
    }
    let checkpoint: Checkpoint<C> =
        serde_json::from_value(json).map_err(|source| CheckpointError::Json {
            path: path.clone(),
            source,
        })?;
    if checkpoint.kind != C::KIND {
        return Err(CheckpointError::mismatch(
            &path,
            format!("a {} checkpoint, not {}", checkpoint.kind, C::KIND),
        ));
    }
    Ok(checkpoint)
}

/// Writes the JSON atomically (a temporary file renamed into place).
pub fn write<C: Serialize>(
    paths: &CheckpointPaths,
    checkpoint: &Checkpoint<C>,
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(&paths.dir).map_err(CheckpointError::io(&paths.dir))?;
    let path = paths.config();
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint serialises");
    std::fs::write(&tmp, bytes).map_err(CheckpointError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(CheckpointError::io(&path))
}

/// Writes named tensors as safetensors (atomically), copying them to the CPU first.
pub fn write_tensors(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), CheckpointError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(CheckpointError::io(dir))?;
    }
    let tensors_err = |source| CheckpointError::Tensors {
        path: path.into(),
        source,
    };
    let cpu = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<candle_core::Result<HashMap<_, _>>>()
        .map_err(tensors_err)?;
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&cpu, &tmp).map_err(tensors_err)?;
    std::fs::rename(&tmp, path).map_err(CheckpointError::io(path))
}

/// Reads a safetensors file onto `device`.
pub fn read_tensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    if !path.is_file() {
        return Err(CheckpointError::io(path)(
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    candle_core::safetensors::load(path, device).map_err(|source| CheckpointError::Tensors {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_from_a_folder_or_any_file() {
        let dir = std::env::temp_dir();
        let p = CheckpointPaths::resolve(&dir, "shallow-mert");
        assert_eq!(p.config(), dir.join("shallow-mert.json"));
        for f in ["m/x.json", "m/x.safetensors", "m/x.last.safetensors"] {
            let p = CheckpointPaths::resolve(Path::new(f), "unused");
            assert_eq!(p, CheckpointPaths::new("m", "x"), "{f}");
        }
        let p = CheckpointPaths::new("m", "x");
        assert_eq!(p.last(), Path::new("m/x.last.safetensors"));
        assert_eq!(p.weights(), Path::new("m/x.safetensors"));
    }

    #[test]
    fn fingerprints_without_a_hash_compare_on_the_rest() {
        let a = DataFingerprint {
            backend: "mert".into(),
            dim: 4,
            tracks: 10,
            train_pairs: 30,
            split: SplitConfig::default(),
            train_hash: Some("00ff".into()),
        };
        let mut b = a.clone();
        b.train_hash = None;
        assert!(a.same_data(&b) && b.same_data(&a));
        b.train_hash = Some("0100".into());
        assert!(!a.same_data(&b));
        let mut c = a.clone();
        c.tracks = 11;
        assert!(!a.same_data(&c));
    }
}
