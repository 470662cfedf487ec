//! Experiments as the store keeps them, and their report from the database alone: the
//! header and every finished cell with the per-user metrics of its two evaluation runs.
//! The grid runner (`crate::experiment`) writes these; the CLI and the API read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dataset::SplitCounts;
use crate::eval::Metrics;
use crate::eval::report::{
    BackendInfo, Cell, EpochLoss, GridReport, ModelKind, UserScores, Variant,
};
use crate::store::{Store, StoreError, UserMetricRecord};

/// What the report needs besides the cells, stored with the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub title: String,
    pub k: usize,
    pub manifest: BTreeMap<String, String>,
    pub backends: Vec<BackendInfo>,
    pub split: SplitCounts,
}

/// What a finished cell stores besides its two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub model: ModelKind,
    pub variant: Variant,
    pub backend: String,
    pub index_recall: Option<f64>,
    pub curve: Vec<EpochLoss>,
    pub train_seconds: Option<f64>,
    pub eval_seconds: f64,
    /// The stored runs of the test users' hot and cold evaluations (a split with cold
    /// tracks; no cold run for the Random variants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_run: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no experiment `{0}`")]
    Unknown(String),
    #[error("experiment `{id}`: stored {what} is not valid: {detail}")]
    Corrupt {
        id: String,
        what: &'static str,
        detail: String,
    },
}

fn scores(rows: Vec<UserMetricRecord>) -> UserScores {
    let (user_ids, scores) = rows
        .into_iter()
        .map(|r| (r.label, Metrics::from_fn(|i| r.values[i])))
        .unzip();
    UserScores { user_ids, scores }
}

/// The report of experiment `id` as stored: every finished cell (a grid still running
/// shows the cells done so far).
pub async fn load_report(store: &Store, id: &str) -> Result<GridReport, LoadError> {
    let record = store
        .get_experiment(id)
        .await?
        .ok_or_else(|| LoadError::Unknown(id.into()))?;
    let corrupt = |what, e: serde_json::Error| LoadError::Corrupt {
        id: id.into(),
        what,
        detail: e.to_string(),
    };
    let header: Header = serde_json::from_str(&record.header).map_err(|e| corrupt("header", e))?;
    let mut cells = Vec::new();
    for c in store.experiment_cells(id).await? {
        let r: CellResult = serde_json::from_str(&c.result).map_err(|e| corrupt("cell", e))?;
        let mut subsets = Vec::new();
        for run in [&r.hot_run, &r.cold_run] {
            subsets.push(match run {
                Some(id) => Some(scores(store.run_user_metrics(id).await?)),
                None => None,
            });
        }
        let [hot, cold]: [Option<UserScores>; 2] = subsets.try_into().expect("two subsets");
        cells.push(Cell {
            model: r.model,
            variant: r.variant,
            backend: (r.variant != Variant::Random).then_some(r.backend),
            validation: scores(store.run_user_metrics(&c.validation_run).await?),
            test: scores(store.run_user_metrics(&c.test_run).await?),
            hot,
            cold,
            index_recall: r.index_recall,
            curve: r.curve,
            train_seconds: r.train_seconds,
            eval_seconds: r.eval_seconds,
        });
    }
    Ok(GridReport {
        title: header.title,
        k: header.k,
        manifest: header.manifest,
        backends: header.backends,
        split: header.split,
        cells,
    })
}
