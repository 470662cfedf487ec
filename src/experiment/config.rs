//! What a researcher puts in an experiment's TOML file (as RecBole and Elliot have one):
//! backends, models, epochs, seeds, k. Every field has the paper's default, so an empty
//! file is the paper's grid. Dates of the split are not here: the split is the one
//! `audiorec split` saved for the dataset (recorded in the manifest). The same fields,
//! as JSON, are the body of `POST /v1/experiments`; [`ExperimentConfig::validate`] holds
//! both to the bounds the OpenAPI document states.
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
use utoipa::ToSchema;

use crate::eval::report::ModelKind;
use crate::model::shallow::NegativeSampling;

/// Bounds every configuration must keep, whoever sends it (a TOML file or the API): the
/// OpenAPI document states the same numbers. Seeds stay below 2^53 so that every JSON
/// client represents them exactly.
pub mod limits {
    pub const NAME: usize = 200;
    pub const BACKENDS: usize = 32;
    pub const K: usize = 1000;
    pub const EPOCHS: usize = 1000;
    pub const BATCH: usize = 1_000_000;
    pub const MAX_LEN: usize = 2000;
    pub const HIDDEN: usize = 1024;
    pub const BATCHES: usize = 1_000_000;
    pub const EF_SEARCH: usize = 10_000;
    pub const SEED: u64 = (1 << 53) - 1;
}

/// A grid: which backends under which recommenders, and how the neural ones train. Every
/// field may be left out: an empty object is the paper's grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({
    "name": "tiny, short training",
    "backends": ["musicnn", "noise"],
    "models": ["knn", "shallow"],
    "include_random": false,
    "k": 50,
    "shallow": {"epochs": 2, "batch_size": 2000}
}))]
pub struct ExperimentConfig {
    /// A title for the report.
    #[schema(max_length = 200, example = "tiny, short training")]
    pub name: String,
    /// Backends in the order of the report's rows, each once; empty = every backend of
    /// the dataset.
    #[schema(max_items = 32, example = json!(["musicnn", "noise"]))]
    pub backends: Vec<String>,
    /// Recommenders, each once (default: all three).
    #[schema(min_items = 1, max_items = 3, example = json!(["knn", "shallow"]))]
    pub models: Vec<ModelKind>,
    /// Add the Random row of each neural block (item table learned from random init).
    pub include_random: bool,
    /// Cut-off of every metric.
    #[schema(minimum = 1, maximum = 1000, example = 50)]
    pub k: usize,
    pub shallow: ShallowSettings,
    pub bert4rec: Bert4RecSettings,
    /// HNSW search width of the served index whose recall is reported beside KNN.
    #[schema(minimum = 1, maximum = 10000, example = 100)]
    pub ef_search: usize,
    /// On a split with cold tracks: which backends get a shuffled-embedding control row
    /// in each block (`first`, `all` or `none`); ignored without cold tracks. Not written
    /// when `first`, so experiment ids from before it stay as they were.
    #[serde(skip_serializing_if = "ShuffledControl::is_first")]
    pub shuffled_control: ShuffledControl,
}

/// Which backends get a shuffled control on a cold-start split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({"epochs": 2, "batch_size": 2000}))]
pub struct ShallowSettings {
    /// Most epochs (training stops early when validation stops improving).
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    pub epochs: usize,
    #[schema(minimum = 1, maximum = 1000000, example = 2000)]
    pub batch_size: usize,
    pub negative_sampling: NegativeSampling,
    pub freeze_items: bool,
    pub freeze_users: bool,
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64, example = 0)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({"epochs": 1, "batch_size": 128, "max_len": 50, "max_batches": 2}))]
pub struct Bert4RecSettings {
    /// Most epochs (training stops early when validation stops improving).
    #[schema(minimum = 1, maximum = 1000, example = 1)]
    pub epochs: usize,
    #[schema(minimum = 1, maximum = 1000000, example = 128)]
    pub batch_size: usize,
    /// Longest history the model reads.
    #[schema(minimum = 2, maximum = 2000, example = 50)]
    pub max_len: usize,
    /// Hidden size of the Random variant (the content variant uses the backend's); even,
    /// as the two attention heads split it.
    #[schema(minimum = 2, maximum = 1024, multiple_of = 2, example = 64)]
    pub random_hidden: usize,
    /// Stop each epoch after this many batches (quick profiles); none = all.
    #[schema(minimum = 1, maximum = 1000000, example = 2)]
    pub max_batches: Option<usize>,
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64, example = 42)]
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

fn within<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    low: T,
    high: T,
) -> Result<(), String> {
    if value < low || value > high {
        return Err(format!("{what} must be {low} to {high}, got {value}"));
    }
    Ok(())
}

impl ExperimentConfig {
    /// Reads a TOML file; unknown keys are errors, so a typo never silently means default.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks the bounds of [`limits`] and that every backend is one of `available`, each
    /// named once, and every model once: the message names the first field at fault.
    pub fn validate(&self, available: &[String]) -> Result<(), String> {
        use limits::*;
        let name_len = self.name.chars().count();
        within("name's length", name_len, 0, NAME)?;
        within("the number of backends", self.backends.len(), 0, BACKENDS)?;
        for (i, b) in self.backends.iter().enumerate() {
            if !available.contains(b) {
                return Err(format!(
                    "backends[{i}]: no backend `{b}` (available: {})",
                    available.join(", ")
                ));
            }
            if self.backends[..i].contains(b) {
                return Err(format!("backends[{i}]: `{b}` is named twice"));
            }
        }
        within("the number of models", self.models.len(), 1, 3)?;
        for (i, m) in self.models.iter().enumerate() {
            if self.models[..i].contains(m) {
                return Err(format!("models[{i}]: `{}` is named twice", m.label()));
            }
        }
        within("k", self.k, 1, K)?;
        within("ef_search", self.ef_search, 1, EF_SEARCH)?;
        let s = &self.shallow;
        within("shallow.epochs", s.epochs, 1, EPOCHS)?;
        within("shallow.batch_size", s.batch_size, 1, BATCH)?;
        within("shallow.seed", s.seed, 0, SEED)?;
        let b = &self.bert4rec;
        within("bert4rec.epochs", b.epochs, 1, EPOCHS)?;
        within("bert4rec.batch_size", b.batch_size, 1, BATCH)?;
        within("bert4rec.max_len", b.max_len, 2, MAX_LEN)?;
        within("bert4rec.random_hidden", b.random_hidden, 2, HIDDEN)?;
        if !b.random_hidden.is_multiple_of(2) {
            return Err(format!(
                "bert4rec.random_hidden must be even (two attention heads), got {}",
                b.random_hidden
            ));
        }
        if let Some(n) = b.max_batches {
            within("bert4rec.max_batches", n, 1, BATCHES)?;
        }
        within("bert4rec.seed", b.seed, 0, SEED)?;
        Ok(())
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

    #[test]
    fn validation_names_the_field_at_fault() {
        let available = ["musicnn".to_string(), "noise".to_string()];
        assert_eq!(ExperimentConfig::default().validate(&available), Ok(()));
        let check = |toml: &str| {
            ExperimentConfig::from_toml(toml)
                .unwrap()
                .validate(&available)
                .unwrap_err()
        };
        assert!(check("backends = [\"vggish\"]").contains("no backend `vggish`"));
        assert!(check("backends = [\"noise\", \"noise\"]").contains("backends[1]"));
        assert!(check("models = []").contains("number of models"));
        assert!(check("models = [\"knn\", \"knn\"]").contains("models[1]"));
        assert!(check("k = 0").contains("k must be 1 to 1000, got 0"));
        assert!(check("[shallow]\nepochs = 1001").contains("shallow.epochs"));
        assert!(check("[bert4rec]\nrandom_hidden = 63").contains("even"));
        assert!(check("[bert4rec]\nmax_batches = 0").contains("max_batches"));
        assert!(check("[bert4rec]\nseed = 9007199254740992").contains("bert4rec.seed"));
    }
}
