//! Durable background jobs, worked inside `serve`: the queue is the `jobs` table
//! (`store::jobs`), so a job accepted by one process is done by whichever process claims
//! it, and survives a crash. Each kind of job (an evaluation run, an experiment grid)
//! has a [`Handler`]; the [`Worker`] claims, heartbeats, and records the
//! outcome, and on shutdown stops claiming and hands back what it cannot finish in time.

pub mod experiment;
mod worker;

use futures::future::BoxFuture;

pub use crate::store::ClaimedJob;
pub use worker::{Worker, WorkerConfig};

/// The kind of a large evaluation run's job.
pub const EVALUATION: &str = "evaluation";
/// The kind of an experiment grid's job.
pub const EXPERIMENT: &str = "experiment";

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job cannot succeed (bad input, a model no longer served, …): it is failed.
    #[error("{0}")]
    Failed(String),
    /// Something outside the job failed (the database is unavailable): it is handed back
    /// to the queue and tried again.
    #[error("{0}")]
    Retry(String),
}

/// Does the jobs of one kind. Implementations must be idempotent: a job whose worker
/// died after the work was stored but before the job was marked done is run again.
pub trait Handler: Send + Sync + 'static {
    /// Does the job from its stored input.
    fn run<'a>(&'a self, job: &'a ClaimedJob) -> BoxFuture<'a, Result<(), JobError>>;

    /// Records a failure where the kind keeps its outcome (an evaluation run's status),
    /// so its users see the reason; the job row records it too.
    fn fail<'a>(&'a self, job: &'a ClaimedJob, reason: &'a str) -> BoxFuture<'a, ()>;
}
