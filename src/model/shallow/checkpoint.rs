//! The Shallow Net's part of a checkpoint ([`ShallowConfig`]) and rebuilding a net from
//! one. The weights file holds `tower.weight`, `tower.bias`, `users` and, when the item
//! table was learned, `items`; a frozen item table is the backend matrix, read at load.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::net::{Table, matrix};
use super::{ShallowError, ShallowNet, ShallowParams};
use crate::dataset::{SplitConfig, SplitCounts};
use crate::model::checkpoint::{
    self, Checkpoint, CheckpointError, CheckpointPaths, DataFingerprint, EpochRecord, FORMAT,
    NetConfig, TrainState,
};

/// Everything needed to rebuild the net besides its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShallowConfig {
    pub params: ShallowParams,
    pub d_in: usize,
    pub d_out: usize,
    /// The user id of each user-table row, in row order.
    pub user_ids: Vec<String>,
    /// Rows of a learned item table (0 when the items are the frozen backend matrix).
    pub item_rows: usize,
}

pub type ShallowCheckpoint = Checkpoint<ShallowConfig>;

/// The tensors every Shallow Net checkpoint has.
const REQUIRED: [&str; 3] = ["tower.weight", "tower.bias", "users"];

impl NetConfig for ShallowConfig {
    const KIND: &'static str = "shallow";

    fn from_legacy(json: serde_json::Value) -> Option<Checkpoint<Self>> {
        #[derive(Deserialize)]
        struct LegacyFingerprint {
            backend: String,
            dim: usize,
            tracks: usize,
            split: SplitConfig,
            counts: SplitCounts,
        }
        #[derive(Deserialize)]
        struct Legacy {
            model: String,
            params: ShallowParams,
            d_in: usize,
            d_out: usize,
            fingerprint: LegacyFingerprint,
            user_ids: Vec<String>,
            item_rows: usize,
            device: String,
            initial_validation_loss: f64,
            best_epoch: Option<usize>,
            best_validation_loss: Option<f64>,
            curve: Vec<EpochRecord>,
            state: TrainState,
        }
        let old: Legacy = serde_json::from_value(json).ok()?;
        if old.model != Self::KIND {
            return None;
        }
        let f = old.fingerprint;
        Some(Checkpoint {
            format: FORMAT,
            kind: Self::KIND.into(),
            net: ShallowConfig {
                params: old.params,
                d_in: old.d_in,
                d_out: old.d_out,
                user_ids: old.user_ids,
                item_rows: old.item_rows,
            },
            data: DataFingerprint {
                backend: f.backend,
                dim: f.dim,
                tracks: f.tracks,
                train_pairs: f.counts.train.interactions,
                split: f.split,
                train_hash: None,
            },
            device: old.device,
            initial_validation_loss: Some(old.initial_validation_loss),
            best_epoch: old.best_epoch,
            best_validation_loss: old.best_validation_loss,
            curve: old.curve,
            state: old.state,
        })
    }

    fn max_epochs(&self) -> usize {
        self.params.max_epochs
    }

    fn with_max_epochs(&self, max_epochs: usize) -> Self {
        let mut c = self.clone();
        c.params.max_epochs = max_epochs;
        c
    }
}

/// Reads a checkpoint's config and the tensors of its best (`last = false`) or latest
/// epoch, checking that the net's tensors are there.
pub fn load(
    paths: &CheckpointPaths,
    last: bool,
    device: &Device,
) -> Result<(ShallowCheckpoint, HashMap<String, Tensor>), ShallowError> {
    let config = checkpoint::read::<ShallowConfig>(paths)?;
    let file = if last { paths.last() } else { paths.weights() };
    let tensors = checkpoint::read_tensors(&file, device)?;
    if let Some(name) = REQUIRED.iter().find(|n| !tensors.contains_key(**n)) {
        return Err(CheckpointError::mismatch(file, format!("no tensor `{name}`")).into());
    }
    Ok((config, tensors))
}

/// Rebuilds a net from checkpoint tensors, with the same tables trainable as in training.
/// `content` is the backend's row-major matrix (the frozen item table).
pub fn net_from_tensors(
    config: &ShallowConfig,
    tensors: &HashMap<String, Tensor>,
    content: &[f32],
    device: &Device,
) -> Result<ShallowNet, ShallowError> {
    let params = &config.params;
    let get = |name: &str| tensors[name].to_device(device);
    let items = match tensors.get("items") {
        Some(t) => t.to_device(device)?,
        None => matrix(content, config.d_in, device)?,
    };
    Ok(ShallowNet {
        items: Table::new(items, params.items_trainable())?,
        users: Table::new(get("users")?, params.users_trainable())?,
        weight: Var::from_tensor(&get("tower.weight")?)?,
        bias: Var::from_tensor(&get("tower.bias")?)?,
    })
}
