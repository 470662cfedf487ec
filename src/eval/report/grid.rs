//! A finished experiment grid as plain data: what the experiment runner stores and the
//! report renderers read. Every cell keeps its per-user scores (not just means), keyed by
//! user id, so that any two cells can be compared with paired tests over the same users.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dataset::SplitCounts;
use crate::eval::Metrics;

/// The recommenders of the paper, in its order (the blocks of Table 3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Knn,
    Shallow,
    Bert4rec,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::Knn, ModelKind::Shallow, ModelKind::Bert4rec];

    /// The name a reader knows it by.
    pub fn label(self) -> &'static str {
        match self {
            ModelKind::Knn => "KNN",
            ModelKind::Shallow => "Shallow Net",
            ModelKind::Bert4rec => "BERT4Rec",
        }
    }
}

/// Whether the item table comes from a backend's embeddings, from that backend with its
/// rows permuted among the tracks (the shuffled-embedding control of a cold-start split),
/// or from random initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Content,
    Random,
    Shuffled,
}

/// A finished grid: provenance, Tables 1 and 2, and every cell's per-user results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridReport {
    pub title: String,
    /// Cut-off of every metric (50 in the paper).
    pub k: usize,
    /// Free-form provenance: embedding file hashes, split dates and seed, model flags,
    /// crate version and git revision, machine. Rendered in key order.
    pub manifest: BTreeMap<String, String>,
    /// Table 1, in the order rows appear in Table 3 (the paper's order).
    pub backends: Vec<BackendInfo>,
    /// Table 2.
    pub split: SplitCounts,
    pub cells: Vec<Cell>,
}

impl GridReport {
    /// Whether the split held tracks out of training: the report then shows hot and cold
    /// results beside Table 3.
    pub fn has_cold(&self) -> bool {
        self.split.cold.tracks > 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackendInfo {
    #[schema(example = "musicnn")]
    pub name: String,
    /// Width of the backend's embeddings.
    #[schema(example = 200)]
    pub dim: usize,
}

/// One recommender trained (if it trains) and evaluated on one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub model: ModelKind,
    pub variant: Variant,
    /// The backend whose embeddings (shuffled for the control) fill the item table;
    /// `None` for the random variant.
    pub backend: Option<String>,
    pub validation: UserScores,
    pub test: UserScores,
    /// Test users' scores on their held-out hot tracks, hot tracks ranked alone (a split
    /// with cold tracks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot: Option<UserScores>,
    /// Test users' scores on their held-out cold tracks, cold tracks ranked alone; `None`
    /// without cold tracks and for the Random variants, which cannot know a cold track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold: Option<UserScores>,
    /// Recall of the served approximate index against the exact scan (KNN only).
    pub index_recall: Option<f64>,
    /// Losses per finished epoch; empty for KNN, which does not train.
    pub curve: Vec<EpochLoss>,
    /// `None` when the cell did not train (KNN).
    pub train_seconds: Option<f64>,
    /// Seconds to evaluate validation and test users.
    pub eval_seconds: f64,
}

impl Cell {
    /// The row label in the tables: the backend, "<backend> shuffled", or "Random".
    pub fn label(&self) -> String {
        match (self.variant, &self.backend) {
            (Variant::Content, Some(b)) => b.clone(),
            (Variant::Shuffled, Some(b)) => format!("{b} shuffled"),
            (Variant::Content | Variant::Shuffled, None) => "?".into(),
            (Variant::Random, _) => "Random".into(),
        }
    }
}

/// Per-user scores of one part, aligned: `scores[i]` belongs to `user_ids[i]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserScores {
    pub user_ids: Vec<String>,
    pub scores: Vec<Metrics<f64>>,
}

impl UserScores {
    /// One metric (index into `Metrics::NAMES`) over all users, in order.
    pub fn metric(&self, metric: usize) -> Vec<f64> {
        self.scores.iter().map(|m| *m.values()[metric]).collect()
    }

    /// Index pairs `(i in self, j in other)` of the users both have, in `self`'s order;
    /// cells evaluated on the same users in the same order pair without a lookup.
    pub fn pairs(&self, other: &UserScores) -> Vec<(usize, usize)> {
        if self.user_ids == other.user_ids {
            return (0..self.user_ids.len()).map(|i| (i, i)).collect();
        }
        let index: HashMap<&str, usize> = other
            .user_ids
            .iter()
            .enumerate()
            .map(|(j, u)| (u.as_str(), j))
            .collect();
        self.user_ids
            .iter()
            .enumerate()
            .filter_map(|(i, u)| index.get(u.as_str()).map(|&j| (i, j)))
            .collect()
    }
}

/// Training and validation loss after one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EpochLoss {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
}
