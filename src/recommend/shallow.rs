//! Serving a trained Shallow Net.
//!
//! The item side is a function of content: at load the tower runs once over the content
//! rows of the recommendable tracks (so a track added after training, with its
//! embedding, is recommendable at once) and its L2-normalised outputs go into the
//! nearest-neighbour index. A user of the checkpoint's user table gets their learned
//! row through the tower; any other user (new or anonymous) gets the paper's
//! initialisation, the mean of the history's item rows, through the tower.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::{Query, RecommendError, Recommender, Scored, history_set};
use crate::embeddings::{Embeddings, l2_normalize};
use crate::index::{self, HnswParams, IndexKind, NeighbourIndex};
use crate::train::shallow::ShallowError;
use crate::train::shallow::checkpoint::{Checkpoint, CheckpointConfig, CheckpointPaths};
use crate::train::shallow::model::{matrix, normalize_rows};

/// Rows pushed through the tower at once when indexing items.
const CHUNK_ROWS: usize = 8192;

pub struct ShallowRecommender {
    config: CheckpointConfig,
    embeddings: Arc<Embeddings>,
    /// A learned item table (the `random` variant, or unfrozen items), row-major.
    learned_items: Option<Vec<f32>>,
    weight_t: Tensor,
    bias: Tensor,
    device: Device,
    user_row: HashMap<String, usize>,
    /// Normalised tower outputs of the user table, row-major `[users, d_out]`.
    user_vectors: Vec<f32>,
    index: Box<dyn NeighbourIndex>,
}

impl ShallowRecommender {
    /// Loads the best weights of a checkpoint (a folder holding `shallow-<backend>.*`,
    /// or any of the checkpoint's files) and indexes `items` (the recommendable tracks).
    pub fn load(
        checkpoint: &Path,
        embeddings: Arc<Embeddings>,
        items: &[u32],
        kind: IndexKind,
        hnsw: HnswParams,
        device: &Device,
    ) -> Result<Self, ShallowError> {
        let paths = CheckpointPaths::resolve(checkpoint, &embeddings.backend);
        let ckpt = Checkpoint::load(&paths, false, device)?;
        Self::from_checkpoint(&ckpt, &paths, embeddings, items, kind, hnsw, device)
    }

    /// Builds from a loaded checkpoint; `paths` only names it in errors.
    pub fn from_checkpoint(
        ckpt: &Checkpoint,
        paths: &CheckpointPaths,
        embeddings: Arc<Embeddings>,
        items: &[u32],
        kind: IndexKind,
        hnsw: HnswParams,
        device: &Device,
    ) -> Result<Self, ShallowError> {
        let config = ckpt.config.clone();
        let mismatch = |detail: String| ShallowError::Mismatch {
            path: paths.config(),
            detail,
        };
        if config.d_in != embeddings.dim || config.params.backend != embeddings.backend {
            return Err(mismatch(format!(
                "trained on backend `{}` ({}-d), given `{}` ({}-d)",
                config.params.backend, config.d_in, embeddings.backend, embeddings.dim
            )));
        }
        let tensor = |name: &str| -> Result<Tensor, ShallowError> {
            Ok(ckpt
                .tensor(name)
                .expect("checked at load")
                .to_device(device)?)
        };
        let weight_t = tensor("tower.weight")?.t()?.contiguous()?;
        let bias = tensor("tower.bias")?;
        let learned_items = match ckpt.tensor("items") {
            Some(t) => Some(t.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let users = ckpt.tensor("users").expect("checked at load");
        if users.dim(0)? != config.user_ids.len() {
            return Err(mismatch(
                "user table rows and user ids differ in number".into(),
            ));
        }
        let mut this = Self {
            user_row: (config.user_ids.iter().cloned())
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            config,
            embeddings,
            learned_items,
            weight_t,
            bias,
            device: device.clone(),
            user_vectors: Vec::new(),
            index: Box::new(index::ExactIndex::new(1, Vec::new(), Vec::new())),
        };
        this.user_vectors = this.tower(&users.flatten_all()?.to_vec1::<f32>()?)?;
        let d_in = this.config.d_in;
        let mut kept: Vec<u32> = items
            .iter()
            .copied()
            .filter(|&t| this.item_row(t).is_some())
            .collect();
        kept.sort_unstable();
        kept.dedup();
        let dropped = items
            .iter()
            .filter(|&&t| this.item_row(t).is_none())
            .count();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "tracks outside the learned item table are not recommendable"
            );
        }
        let mut vectors = Vec::with_capacity(kept.len() * this.d_out());
        for chunk in kept.chunks(CHUNK_ROWS) {
            let mut rows = Vec::with_capacity(chunk.len() * d_in);
            chunk
                .iter()
                .for_each(|&t| rows.extend_from_slice(this.item_row(t).expect("kept")));
            vectors.extend(this.tower(&rows)?);
        }
        let d_out = this.d_out();
        this.index = index::build(
            kind,
            d_out,
            &kept,
            |t| {
                let i = kept.binary_search(&t).expect("indexed track");
                &vectors[i * d_out..(i + 1) * d_out]
            },
            hnsw,
        );
        Ok(this)
    }

    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    pub fn d_out(&self) -> usize {
        self.config.d_out
    }

    pub fn index(&self) -> &dyn NeighbourIndex {
        self.index.as_ref()
    }

    /// A track's row of the item table: its content, or its learned row.
    fn item_row(&self, track: u32) -> Option<&[f32]> {
        let d = self.config.d_in;
        match &self.learned_items {
            Some(table) => table.get(track as usize * d..(track as usize + 1) * d),
            None => ((track as usize) < self.embeddings.len()).then(|| self.embeddings.row(track)),
        }
    }

    /// The normalised tower outputs of row-major `[n, d_in]` rows.
    fn tower(&self, rows: &[f32]) -> Result<Vec<f32>, ShallowError> {
        let x = matrix(rows, self.config.d_in, &self.device)?;
        let out = x
            .matmul(&self.weight_t)?
            .broadcast_add(&self.bias)?
            .relu()?;
        Ok(normalize_rows(&out)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The vector a track with content `content` would be indexed under.
    pub fn item_vector(&self, content: &[f32]) -> Result<Vec<f32>, ShallowError> {
        self.tower(content)
    }

    /// The normalised user vector for a query: the learned row of a known user, else
    /// the mean of the history's item rows through the tower.
    pub fn user_vector(&self, query: &Query) -> Result<Vec<f32>, RecommendError> {
        if let Some(&row) = query.user.and_then(|u| self.user_row.get(u)) {
            let d = self.d_out();
            return Ok(self.user_vectors[row * d..(row + 1) * d].to_vec());
        }
        if query.history.is_empty() {
            return Err(RecommendError::EmptyHistory);
        }
        let mut mean = vec![0f32; self.config.d_in];
        for &t in query.history {
            let row = self.item_row(t).ok_or(RecommendError::UnknownTrack(t))?;
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        let n = query.history.len() as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        let mut v = self
            .tower(&mean)
            .map_err(|e| RecommendError::Model(e.to_string()))?;
        l2_normalize(&mut v);
        Ok(v)
    }

    /// Whether the checkpoint has a learned row for this user id.
    pub fn knows_user(&self, user: &str) -> bool {
        self.user_row.contains_key(user)
    }
}

impl Recommender for ShallowRecommender {
    fn model(&self) -> &str {
        "shallow"
    }

    fn backend(&self) -> &str {
        &self.embeddings.backend
    }

    fn recommend(&self, query: &Query) -> Result<Vec<Scored>, RecommendError> {
        let user = self.user_vector(query)?;
        let exclude = history_set(query.history);
        Ok(self
            .index
            .search(&user, query.k, &exclude)
            .into_iter()
            .map(|n| Scored {
                track: n.id,
                score: n.score,
            })
            .collect())
    }
}
