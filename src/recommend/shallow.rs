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
use crate::index::exact::top_k;
use crate::index::{self, HnswParams, IndexKind, LiveIndex, Neighbour, NeighbourIndex};
use crate::model::checkpoint::{CheckpointError, CheckpointPaths};
use crate::model::shallow::ShallowError;
use crate::model::shallow::checkpoint::{ShallowCheckpoint, load};
use crate::model::shallow::net::{matrix, normalize_rows};

/// Rows pushed through the tower at once when indexing items.
const CHUNK_ROWS: usize = 8192;

/// Users scored per matrix product in a batched exact scan.
const BATCH_USERS: usize = 512;

pub struct ShallowRecommender {
    checkpoint: ShallowCheckpoint,
    embeddings: Arc<Embeddings>,
    /// A learned item table (the `random` variant, or unfrozen items), row-major.
    learned_items: Option<Vec<f32>>,
    weight_t: Tensor,
    bias: Tensor,
    device: Device,
    user_row: HashMap<String, usize>,
    /// Normalised tower outputs of the user table, row-major `[users, d_out]`.
    user_vectors: Vec<f32>,
    /// The item vectors indexed at load, plus tracks added since.
    index: LiveIndex,
    /// With an exact index: the indexed ids and their vectors `[items, d_out]` on the
    /// device, so a batch of users is scored with one matrix product (the same full scan
    /// as the index, faster).
    exact: Option<(Vec<u32>, Tensor)>,
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
        let paths =
            CheckpointPaths::resolve(checkpoint, &format!("shallow-{}", embeddings.backend));
        let (ckpt, tensors) = load(&paths, false, device)?;
        Self::from_checkpoint(
            &ckpt, &tensors, &paths, embeddings, items, kind, hnsw, device,
        )
    }

    /// Builds from a loaded checkpoint; `paths` only names it in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn from_checkpoint(
        ckpt: &ShallowCheckpoint,
        tensors: &HashMap<String, Tensor>,
        paths: &CheckpointPaths,
        embeddings: Arc<Embeddings>,
        items: &[u32],
        kind: IndexKind,
        hnsw: HnswParams,
        device: &Device,
    ) -> Result<Self, ShallowError> {
        let config = &ckpt.net;
        let mismatch = |detail: String| CheckpointError::mismatch(paths.config(), detail);
        if config.d_in != embeddings.dim || config.params.backend != embeddings.backend {
            return Err(mismatch(format!(
                "trained on backend `{}` ({}-d), given `{}` ({}-d)",
                config.params.backend, config.d_in, embeddings.backend, embeddings.dim
            ))
            .into());
        }
        let tensor = |name: &str| tensors[name].to_device(device);
        let weight_t = tensor("tower.weight")?.t()?.contiguous()?;
        let bias = tensor("tower.bias")?;
        let learned_items = match tensors.get("items") {
            Some(t) => Some(t.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let users = &tensors["users"];
        if users.dim(0)? != config.user_ids.len() {
            return Err(mismatch("user table rows and user ids differ in number".into()).into());
        }
        let mut this = Self {
            user_row: (config.user_ids.iter().cloned())
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            checkpoint: ckpt.clone(),
            embeddings,
            learned_items,
            weight_t,
            bias,
            device: device.clone(),
            user_vectors: Vec::new(),
            index: LiveIndex::new(
                Box::new(index::ExactIndex::new(1, Vec::new(), Vec::new())),
                &[],
            ),
            exact: None,
        };
        this.user_vectors = this.tower(&users.flatten_all()?.to_vec1::<f32>()?)?;
        let d_in = this.checkpoint.net.d_in;
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
        let exact = match kind {
            IndexKind::Exact => Some(Tensor::from_slice(&vectors, (kept.len(), d_out), device)?),
            _ => None,
        };
        let built = index::build(kind, d_out, &kept, vectors, hnsw, None);
        this.index = LiveIndex::new(built, &kept);
        this.exact = exact.map(|t| (kept, t));
        Ok(this)
    }

    pub fn checkpoint(&self) -> &ShallowCheckpoint {
        &self.checkpoint
    }

    pub fn d_out(&self) -> usize {
        self.checkpoint.net.d_out
    }

    pub fn index(&self) -> &dyn NeighbourIndex {
        &self.index
    }

    /// A track's row of the item table: its content, or its learned row.
    fn item_row(&self, track: u32) -> Option<&[f32]> {
        let d = self.checkpoint.net.d_in;
        match &self.learned_items {
            Some(table) => table.get(track as usize * d..(track as usize + 1) * d),
            None => self.embeddings.try_row(track),
        }
    }

    /// The normalised tower outputs of row-major `[n, d_in]` rows.
    fn tower(&self, rows: &[f32]) -> Result<Vec<f32>, ShallowError> {
        let x = matrix(rows, self.checkpoint.net.d_in, &self.device)?;
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
        let n_tracks = self.embeddings.tracks() as u32;
        if let Some(&bad) = query.history.iter().find(|&&t| t >= n_tracks) {
            return Err(RecommendError::UnknownTrack(bad));
        }
        // Tracks without a row here (added with other backends' rows only) are skipped.
        let mut mean = vec![0f32; self.checkpoint.net.d_in];
        let mut n = 0usize;
        for row in query.history.iter().filter_map(|&t| self.item_row(t)) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            n += 1;
        }
        if n == 0 {
            return Err(RecommendError::EmptyHistory);
        }
        let n = n as f32;
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

    /// A track with content (and no learned table) goes through the tower into the index.
    fn admit(&self, track: u32) -> Result<bool, RecommendError> {
        if self.index.contains(track) {
            return Ok(true);
        }
        let Some(row) = self.item_row(track) else {
            return Ok(false);
        };
        let model = |e: String| RecommendError::Model(e);
        let vector = self.tower(row).map_err(|e| model(e.to_string()))?;
        self.index
            .insert(track, &vector)
            .map_err(|e| model(e.to_string()))?;
        Ok(true)
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

    /// With an exact index, scores users `BATCH_USERS` at a time with one matrix product
    /// against all item vectors (measured several times faster than one scan per user);
    /// otherwise one index search per query, in parallel.
    fn recommend_batch(&self, queries: &[Query]) -> Vec<Result<Vec<Scored>, RecommendError>> {
        use rayon::prelude::*;
        // The item matrix holds the tracks indexed at load only.
        let Some((ids, items)) = self.exact.as_ref().filter(|_| self.index.pending() == 0) else {
            return queries.par_iter().map(|q| self.recommend(q)).collect();
        };
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(BATCH_USERS) {
            out.extend(self.exact_chunk(chunk, ids, items).unwrap_or_else(|e| {
                let msg = e.to_string();
                chunk
                    .iter()
                    .map(|_| Err(RecommendError::Model(msg.clone())))
                    .collect()
            }));
        }
        out
    }
}

impl ShallowRecommender {
    fn exact_chunk(
        &self,
        queries: &[Query],
        ids: &[u32],
        items: &Tensor,
    ) -> Result<Vec<Result<Vec<Scored>, RecommendError>>, RecommendError> {
        use rayon::prelude::*;
        let model = |e: candle_core::Error| RecommendError::Model(e.to_string());
        let vectors: Vec<Result<Vec<f32>, RecommendError>> =
            queries.par_iter().map(|q| self.user_vector(q)).collect();
        let ok: Vec<f32> = vectors.iter().flatten().flatten().copied().collect();
        let n_ok = ok.len() / self.d_out();
        let scores = if n_ok == 0 {
            Vec::new()
        } else {
            let users = Tensor::from_vec(ok, (n_ok, self.d_out()), &self.device).map_err(model)?;
            let s = users.matmul(&items.t().map_err(model)?).map_err(model)?;
            s.flatten_all()
                .and_then(|s| s.to_vec1::<f32>())
                .map_err(model)?
        };
        let mut row = 0;
        let mut rows = Vec::with_capacity(queries.len());
        for v in &vectors {
            rows.push(v.as_ref().ok().map(|_| {
                row += 1;
                row - 1
            }));
        }
        Ok(queries
            .par_iter()
            .zip(vectors.into_par_iter().zip(rows))
            .map(|(q, (v, r))| {
                v?;
                let r = r.expect("a row per user vector");
                let exclude = history_set(q.history);
                let mut scored: Vec<Neighbour> = scores[r * ids.len()..(r + 1) * ids.len()]
                    .iter()
                    .zip(ids)
                    .filter(|(_, id)| !exclude.contains(id))
                    .map(|(&score, &id)| Neighbour { id, score })
                    .collect();
                top_k(&mut scored, q.k);
                Ok(scored
                    .into_iter()
                    .map(|n| Scored {
                        track: n.id,
                        score: n.score,
                    })
                    .collect())
            })
            .collect())
    }
}
