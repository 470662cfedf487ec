//! Large evaluation runs (the 202 path) as durable jobs: the resolved test users are
//! stored with the job, so the run completes even if the process that accepted it stops,
//! on the next start or on another replica.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::eval::runs::{self, RunCase, RunError};
use crate::jobs::{self, ClaimedJob, Handler, JobError};
use crate::store::{NewJob, RunStatus, StoreError};

/// Claims before a run whose worker keeps dying (a crash it causes) is failed.
const MAX_ATTEMPTS: i64 = 3;

/// What an evaluation job needs: the run it completes and its resolved test users.
#[derive(Serialize, Deserialize)]
struct Input {
    run_id: String,
    model: String,
    backend: String,
    k: usize,
    cases: Vec<RunCase>,
}

/// Stores the job of run `run_id`; the run is then worked by whichever worker claims it.
pub(super) async fn enqueue(
    state: &AppState,
    run_id: &str,
    (model, backend): (&str, &str),
    k: usize,
    cases: Vec<RunCase>,
) -> Result<(), ApiError> {
    let input = Input {
        run_id: run_id.into(),
        model: model.into(),
        backend: backend.into(),
        k,
        cases,
    };
    let input = serde_json::to_string(&input).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .enqueue_job(&NewJob {
            id: run_id,
            kind: jobs::EVALUATION,
            input: &input,
            max_attempts: MAX_ATTEMPTS,
        })
        .await?;
    Ok(())
}

pub struct EvaluationJobs(pub AppState);

impl EvaluationJobs {
    async fn run_job(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let state = &self.0;
        let input: Input = serde_json::from_str(&job.input)
            .map_err(|e| JobError::Failed(format!("unreadable job input: {e}")))?;
        // Done already: its worker died after storing the run, before closing the job.
        match state.store.get_run(&input.run_id).await.map_err(retry)? {
            Some(run) if run.status != RunStatus::Pending => return Ok(()),
            Some(_) => {}
            None => return Err(JobError::Failed(format!("no run `{}`", input.run_id))),
        }
        // A model still being built or trained is waited for: the job goes back to the
        // queue and is claimed again.
        let recommender = state
            .recommender(&input.model, &input.backend)
            .map_err(|e| match e {
                ApiError::NotReady { .. } => JobError::Retry(e.to_string()),
                e => JobError::Failed(e.to_string()),
            })?;
        runs::execute(
            &state.store,
            &input.run_id,
            recommender,
            input.cases,
            input.k,
        )
        .await
        .map_err(|e| match e {
            RunError::Store(e @ StoreError::Unavailable(_)) => retry(e),
            e => JobError::Failed(e.to_string()),
        })
    }
}

fn retry(e: StoreError) -> JobError {
    JobError::Retry(e.to_string())
}

impl Handler for EvaluationJobs {
    fn run<'a>(&'a self, job: &'a ClaimedJob) -> BoxFuture<'a, Result<(), JobError>> {
        self.run_job(job).boxed()
    }

    fn fail<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, ()> {
        async move {
            if let Err(e) = self.0.store.fail_run(&job.id, reason).await {
                tracing::error!(run = %job.id, error = %e, "could not record the failure");
            }
        }
        .boxed()
    }
}

/// The handler, shared by the worker.
pub fn handler(state: AppState) -> Arc<dyn Handler> {
    Arc::new(EvaluationJobs(state))
}
