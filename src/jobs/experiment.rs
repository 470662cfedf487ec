//! Experiment grids as durable jobs: the job holds the experiment's id and configuration,
//! and the worker that claims it runs the grid on a blocking thread. A grid interrupted
//! by a crash is claimed again and resumes like the CLI's: finished cells are skipped,
//! a half-trained cell continues from its last finished epoch.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{ClaimedJob, EXPERIMENT, Handler, JobError};
use crate::experiment::ExperimentConfig;
use crate::experiment::progress::Board;
use crate::experiment::source::GridSource;
use crate::store::{NewJob, Store, StoreError};

/// Claims before a grid whose worker keeps dying (a crash it causes) is failed.
const MAX_ATTEMPTS: i64 = 3;

/// What an experiment job needs.
#[derive(Serialize, Deserialize)]
struct Input {
    experiment: String,
    config: ExperimentConfig,
}

/// Stores the job that runs experiment `id`.
pub async fn enqueue(store: &Store, id: &str, config: &ExperimentConfig) -> Result<(), StoreError> {
    let input = Input {
        experiment: id.into(),
        config: config.clone(),
    };
    let input = serde_json::to_string(&input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store
        .enqueue_job(&NewJob {
            id: &uuid::Uuid::new_v4().to_string(),
            kind: EXPERIMENT,
            input: &input,
            max_attempts: MAX_ATTEMPTS,
        })
        .await
}

pub struct ExperimentJobs {
    store: Store,
    source: Arc<GridSource>,
    board: Board,
}

/// Whether a grid stopped because the database did (the job is then tried again).
fn database_down(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_) | StoreError::Down)
        )
    })
}

impl ExperimentJobs {
    async fn run_job(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let input: Input = serde_json::from_str(&job.input)
            .map_err(|e| JobError::Failed(format!("unreadable job input: {e}")))?;
        let (store, source, board) = (self.store.clone(), self.source.clone(), self.board.clone());
        let runtime = tokio::runtime::Handle::current();
        let ran = tokio::task::spawn_blocking(move || {
            let epochs = [input.config.shallow.epochs, input.config.bert4rec.epochs];
            let observer = board.observer(&input.experiment, epochs);
            source.run(
                &input.experiment,
                &input.config,
                &store,
                &runtime,
                &observer,
            )
        })
        .await
        .map_err(|e| JobError::Failed(format!("the grid's thread failed: {e}")))?;
        match ran {
            Ok(computed) => {
                tracing::info!(job = %job.id, computed, "experiment done");
                Ok(())
            }
            Err(e) if database_down(&e) => Err(JobError::Retry(format!("{e:#}"))),
            Err(e) => Err(JobError::Failed(format!("{e:#}"))),
        }
    }
}

impl Handler for ExperimentJobs {
    fn run<'a>(&'a self, job: &'a ClaimedJob) -> BoxFuture<'a, Result<(), JobError>> {
        self.run_job(job).boxed()
    }

    fn fail<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, ()> {
        async move {
            let Ok(input) = serde_json::from_str::<Input>(&job.input) else {
                return;
            };
            if let Err(e) = self
                .store
                .finish_experiment(&input.experiment, Some(reason))
                .await
            {
                tracing::error!(experiment = %input.experiment, error = %e, "could not record the failure");
            }
        }
        .boxed()
    }
}

/// The handler, shared by the worker.
pub fn handler(store: Store, source: Arc<GridSource>, board: Board) -> Arc<dyn Handler> {
    Arc::new(ExperimentJobs {
        store,
        source,
        board,
    })
}
