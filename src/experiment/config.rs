//! What a researcher puts in an experiment's TOML file (as RecBole and Elliot have one):
//! backends, models, epochs, seeds, k. Every field has the paper's default, so an empty
//! file is the paper's grid. Dates of the split are not here: the split is the one
//! `audiorec split` saved for the dataset (recorded in the manifest).
//!
//! ```toml
//! name = "small, short training"
//! backends = ["musicnn", "mert", "mfcc", "noise"]
//! models = ["knn", "shallow", "bert4rec"]
//! include_random = true
//! k = 50
//! [shallow]
//! epochs = 8
//! [bert4rec]
//! epochs = 6
//! max_len = 100
//! ```
//!
//! On a split with cold tracks (`audiorec split --cold-items`), `shuffled_control =
//! "first" | "all" | "none"` says which backends get a shuffled-embedding control row.

use serde::{Deserialize, Serialize};

use crate::eval::report::ModelKind;
use crate::model::shallow::NegativeSampling;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A title for the report.
    pub name: String,
    /// Backends in the order of the report's rows; empty = every backend of the dataset.
    pub backends: Vec<String>,
    pub models: Vec<ModelKind>,
    /// Add the Random row of each neural block (item table learned from random init).
    pub include_random: bool,
    /// Cut-off of every metric.
    pub k: usize,
    pub shallow: ShallowSettings,
    pub bert4rec: Bert4RecSettings,
    /// HNSW search width of the served index whose recall is reported beside KNN.
    pub ef_search: usize,
    /// On a split with cold tracks: which backends get a shuffled-embedding control row
    /// in each block (`first`, `all` or `none`); ignored without cold tracks. Not written
    /// when `first`, so experiment ids from before it stay as they were.
    #[serde(skip_serializing_if = "ShuffledControl::is_first")]
    pub shuffled_control: ShuffledControl,
}

/// Which backends get a shuffled control on a cold-start split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShuffledControl {
    None,
    /// The block's first backend: one chance level per recommender.
    #[default]
    First,
    /// Every backend: each compared with its own control.
    All,
}

impl ShuffledControl {
    fn is_first(&self) -> bool {
        *self == ShuffledControl::First
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            name: "Pretrained audio representations for recommendation".into(),
            backends: Vec::new(),
            models: ModelKind::ALL.to_vec(),
            include_random: true,
            k: 50,
            shallow: ShallowSettings::default(),
            bert4rec: Bert4RecSettings::default(),
            ef_search: crate::index::HnswParams::default().ef_search,
            shuffled_control: ShuffledControl::First,
        }
    }
}

/// The Shallow Net's training (defaults: the paper and the authors' code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShallowSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub negative_sampling: NegativeSampling,
    pub freeze_items: bool,
    pub freeze_users: bool,
    pub seed: u64,
}

impl Default for ShallowSettings {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 10_000,
            negative_sampling: NegativeSampling::NonInteracting,
            freeze_items: true,
            freeze_users: false,
            seed: 0,
        }
    }
}

/// BERT4Rec's training (defaults: the paper and the authors' code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bert4RecSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub max_len: usize,
    /// Hidden size of the Random variant (the content variant uses the backend's).
    pub random_hidden: usize,
    /// Stop each epoch after this many batches (quick profiles); none = all.
    pub max_batches: Option<usize>,
    pub seed: u64,
}

impl Default for Bert4RecSettings {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 128,
            max_len: 300,
            random_hidden: 64,
            max_batches: None,
            seed: 42,
        }
    }
}

impl ExperimentConfig {
    /// Reads a TOML file; unknown keys are errors, so a typo never silently means default.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_paper_and_typos_are_refused() {
        assert_eq!(
            ExperimentConfig::from_toml("").unwrap(),
            ExperimentConfig::default()
        );
        let c = ExperimentConfig::from_toml(
            "backends = [\"mfcc\"]\nmodels = [\"knn\", \"shallow\"]\n[shallow]\nepochs = 3\n",
        )
        .unwrap();
        assert_eq!(c.backends, vec!["mfcc"]);
        assert_eq!(c.models, vec![ModelKind::Knn, ModelKind::Shallow]);
        assert_eq!(c.shallow.epochs, 3);
        assert_eq!(c.shallow.batch_size, 10_000);
        let err = ExperimentConfig::from_toml("[shallow]\nepoch = 3\n").unwrap_err();
        assert!(err.contains("epoch"), "{err}");
    }
}
