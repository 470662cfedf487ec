//! Evaluation runs as the service stores them: posted test users (stored users or inline
//! histories, each with held-out tracks) evaluated through a served recommender and
//! written to the store with every user's metrics; and two stored runs compared over the
//! users they share. The HTTP layer only translates requests into [`RunCase`]s.

use std::collections::HashMap;
use std::sync::Arc;

use super::{EvalCase, Metrics, PairedTest, evaluate, paired_test};
use crate::recommend::{RecommendError, Recommender};
use crate::store::{RunStatus, Store, StoreError, UserMetricRecord};

/// Why a run could not be computed or compared.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Recommend(#[from] RecommendError),
    #[error("no run `{0}`")]
    UnknownRun(String),
    #[error("run `{0}` has not succeeded")]
    NotSucceeded(String),
    #[error("the runs share no users")]
    NoSharedUsers,
    #[error("the evaluation worker failed: {0}")]
    Worker(String),
}

/// One test user; a stored user's history is loaded when the run executes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunCase {
    /// The user id, or `session-N` for the N-th inline history.
    pub label: String,
    pub stored: bool,
    pub history: Vec<u32>,
    pub held_out: Vec<u32>,
}

/// Loads stored users' histories, evaluates `cases` at cut-off `k` and records the
/// outcome as run `run_id` (created before, still pending).
pub async fn execute(
    store: &Store,
    run_id: &str,
    recommender: Arc<dyn Recommender>,
    mut cases: Vec<RunCase>,
    k: usize,
) -> Result<(), RunError> {
    for case in cases.iter_mut().filter(|c| c.stored) {
        case.history = store.history(&case.label).await?.to_vec();
    }
    let (evaluation, cases) = tokio::task::spawn_blocking(move || {
        let eval_cases: Vec<EvalCase> = cases
            .iter()
            .map(|c| EvalCase {
                user: c.stored.then_some(c.label.as_str()),
                history: &c.history,
                held_out: &c.held_out,
            })
            .collect();
        evaluate(recommender.as_ref(), &eval_cases, k).map(|(e, _)| (e, cases))
    })
    .await
    .map_err(|e| RunError::Worker(e.to_string()))??;
    let per_user: Vec<UserMetricRecord> = cases
        .into_iter()
        .zip(&evaluation.per_user)
        .map(|(c, m)| UserMetricRecord {
            label: c.label,
            values: m.values().map(|v| *v),
        })
        .collect();
    let metrics = serde_json::to_string(&evaluation.aggregate).expect("metrics serialise");
    store
        .finish_run(run_id, &metrics, evaluation.seconds, &per_user)
        .await?;
    Ok(())
}

/// Two succeeded runs compared over the users they share, paired by user label.
#[derive(Debug, Clone, PartialEq)]
pub struct RunComparison {
    pub users: usize,
    pub metrics: Metrics<PairedTest>,
}

pub async fn compare(store: &Store, run: &str, other: &str) -> Result<RunComparison, RunError> {
    let mut scores = Vec::new();
    for id in [run, other] {
        let record = store
            .get_run(id)
            .await?
            .ok_or_else(|| RunError::UnknownRun(id.into()))?;
        if record.status != RunStatus::Succeeded {
            return Err(RunError::NotSucceeded(id.into()));
        }
        scores.push(store.run_user_metrics(id).await?);
    }
    pair(&scores[0], &scores[1])
}

/// Paired tests over the users both lists hold (by label; order does not matter).
pub fn pair(a: &[UserMetricRecord], b: &[UserMetricRecord]) -> Result<RunComparison, RunError> {
    let other: HashMap<&str, &[f64; 5]> = b.iter().map(|u| (u.label.as_str(), &u.values)).collect();
    let pairs: Vec<(&[f64; 5], &[f64; 5])> = a
        .iter()
        .filter_map(|u| other.get(u.label.as_str()).map(|o| (&u.values, *o)))
        .collect();
    if pairs.is_empty() {
        return Err(RunError::NoSharedUsers);
    }
    let metrics = Metrics::from_fn(|i| {
        let x: Vec<f64> = pairs.iter().map(|p| p.0[i]).collect();
        let y: Vec<f64> = pairs.iter().map(|p| p.1[i]).collect();
        paired_test(&x, &y)
    });
    Ok(RunComparison {
        users: pairs.len(),
        metrics,
    })
}
