//! Checkpoints: `<name>.safetensors` (the best epoch's weights), `<name>.json` (every
//! parameter, the data fingerprint, user ids of the user table's rows, the validation
//! curve and the resume state) and `<name>.last.safetensors` (the latest epoch, which a
//! resumed run continues from).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{ShallowError, ShallowParams};
use crate::dataset::{Split, SplitConfig, SplitCounts};
use crate::train::schedule::{EarlyStopping, Plateau};

/// Where a checkpoint's files are.
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

    /// A folder (then `shallow-<backend>` in it) or any of a checkpoint's files.
    pub fn resolve(path: &Path, backend: &str) -> Self {
        if path.is_dir() {
            return Self::new(path, &format!("shallow-{backend}"));
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

/// What the model was trained on, so a checkpoint is never served or resumed against
/// other data by accident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub backend: String,
    pub dim: usize,
    pub tracks: usize,
    pub split: SplitConfig,
    pub counts: SplitCounts,
}

impl Fingerprint {
    pub fn new(backend: &str, dim: usize, tracks: usize, split: &Split) -> Self {
        Self {
            backend: backend.into(),
            dim,
            tracks,
            split: split.config,
            counts: split.counts,
        }
    }
}

/// One epoch of the validation curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    /// The learning rate the epoch trained with.
    pub lr: f64,
    pub seconds: f64,
    pub improved: bool,
}

/// Where training stands, for `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    /// The learning rate of the next epoch.
    pub lr: f64,
    pub plateau: Plateau,
    pub early_stopping: EarlyStopping,
    /// Why training ended (`early stopping`, `max epochs`); `None` while it can go on.
    pub finished: Option<String>,
}

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    pub model: String,
    pub params: ShallowParams,
    pub d_in: usize,
    pub d_out: usize,
    pub fingerprint: Fingerprint,
    /// The user id of each user-table row, in row order.
    pub user_ids: Vec<String>,
    /// Rows of a learned item table (0 when the items are the frozen backend matrix).
    pub item_rows: usize,
    pub device: String,
    /// The untrained model's validation loss (the baseline every epoch must beat).
    pub initial_validation_loss: f64,
    pub best_epoch: Option<usize>,
    pub best_validation_loss: Option<f64>,
    pub curve: Vec<EpochRecord>,
    pub state: TrainState,
}

/// A loaded checkpoint: its config and the tensors of one weights file.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub config: CheckpointConfig,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn read_config(paths: &CheckpointPaths) -> Result<CheckpointConfig, ShallowError> {
        let path = paths.config();
        let bytes = std::fs::read(&path).map_err(ShallowError::io(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| ShallowError::Config { path, source })
    }

    /// The best epoch's weights (`last = false`) or the latest epoch's.
    pub fn load(
        paths: &CheckpointPaths,
        last: bool,
        device: &Device,
    ) -> Result<Self, ShallowError> {
        let config = Self::read_config(paths)?;
        let file = if last { paths.last() } else { paths.weights() };
        if !file.is_file() {
            return Err(ShallowError::io(&file)(std::io::ErrorKind::NotFound.into()));
        }
        let tensors = candle_core::safetensors::load(&file, device)?;
        for name in ["tower.weight", "tower.bias", "users"] {
            if !tensors.contains_key(name) {
                return Err(ShallowError::Mismatch {
                    path: file,
                    detail: format!("no tensor `{name}`"),
                });
            }
        }
        Ok(Self { config, tensors })
    }

    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }
}

/// Writes the config (atomically: a temporary file renamed into place).
pub fn write_config(
    paths: &CheckpointPaths,
    config: &CheckpointConfig,
) -> Result<(), ShallowError> {
    std::fs::create_dir_all(&paths.dir).map_err(ShallowError::io(&paths.dir))?;
    let path = paths.config();
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(config).expect("the config serialises");
    std::fs::write(&tmp, bytes).map_err(ShallowError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(ShallowError::io(&path))
}

/// Writes named tensors as safetensors (atomically), copying them to the CPU first.
pub fn write_weights(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), ShallowError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(ShallowError::io(dir))?;
    }
    let cpu = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<candle_core::Result<HashMap<_, _>>>()?;
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&cpu, &tmp)?;
    std::fs::rename(&tmp, path).map_err(ShallowError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_from_a_folder_or_any_file() {
        let dir = std::env::temp_dir();
        let p = CheckpointPaths::resolve(&dir, "mert");
        assert_eq!(p.config(), dir.join("shallow-mert.json"));
        for f in ["m/x.json", "m/x.safetensors", "m/x.last.safetensors"] {
            let p = CheckpointPaths::resolve(Path::new(f), "mert");
            assert_eq!(p, CheckpointPaths::new("m", "x"), "{f}");
        }
        let p = CheckpointPaths::new("m", "x");
        assert_eq!(p.last(), Path::new("m/x.last.safetensors"));
        assert_eq!(p.weights(), Path::new("m/x.safetensors"));
    }
}
