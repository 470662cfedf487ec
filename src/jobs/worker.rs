//! The worker loop: claim a job, run its handler while refreshing the heartbeat, record
//! the outcome; between jobs, poll. One job at a time per process: jobs are large and
//! their handlers use every core already.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ClaimedJob, Handler, JobError};
use crate::store::{Store, now};

#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Pause between claims when the queue is empty.
    pub poll: Duration,
    /// A running job whose heartbeat is older than this is taken to have lost its worker
    /// and is claimed again. Heartbeats are sent three times as often.
    pub stale_after: Duration,
    /// On shutdown, how long a running job may take to finish before it is handed back.
    pub shutdown_grace: Duration,
}

pub struct Worker {
    store: Store,
    id: String,
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(store: Store, config: WorkerConfig) -> Self {
        Self {
            store,
            id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            handlers: HashMap::new(),
            config,
        }
    }

    pub fn handle(mut self, kind: &'static str, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind, handler);
        self
    }

    /// Runs until `stop` turns true; then stops claiming and returns within the
    /// configured grace (plus a database round trip to hand a job back).
    pub fn spawn(self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        // On the embedded SQLite this is the only process: a job still `running` was
        // held by an earlier run of it that stopped, so it is reclaimed at once rather
        // than after its heartbeat goes stale.
        let mut reclaim_all = self.store.kind() == "sqlite";
        // A dropped sender (the server stopped on an error) stops the worker too.
        while !*stop.borrow() && stop.has_changed().is_ok() {
            let stale_before = if reclaim_all {
                now() + 1
            } else {
                now() - self.config.stale_after.as_secs() as i64
            };
            match self.store.claim_job(&self.id, stale_before).await {
                Ok(Some(job)) => {
                    tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job claimed");
                    self.work(job, &mut stop).await;
                    continue;
                }
                Ok(None) => reclaim_all = false,
                Err(e) => tracing::warn!(error = %e, "could not claim a job"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }

    async fn work(&self, job: ClaimedJob, stop: &mut watch::Receiver<bool>) {
        let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
            self.finish(
                &job,
                None,
                Some(format!("no handler for jobs of kind `{}`", job.kind)),
            )
            .await;
            return;
        };
        if job.attempts > job.max_attempts {
            let reason = format!(
                "abandoned: its worker stopped during each of {} attempts",
                job.max_attempts
            );
            self.finish(&job, Some(handler.as_ref()), Some(reason))
                .await;
            return;
        }
        let run = handler.run(&job);
        tokio::pin!(run);
        let mut beat = tokio::time::interval(self.config.stale_after / 3);
        beat.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break Some(outcome),
                _ = beat.tick() => match self.store.heartbeat_job(&job.id, &self.id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %job.id, "job lost to another worker: dropping it");
                        break None;
                    }
                    Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
                },
                _ = stop.changed() => {
                    match tokio::time::timeout(self.config.shutdown_grace, &mut run).await {
                        Ok(outcome) => break Some(outcome),
                        Err(_) => {
                            tracing::info!(job = %job.id, "shutting down: handing the job back");
                            if let Err(e) = self.store.release_job(&job.id, &self.id).await {
                                tracing::warn!(job = %job.id, error = %e, "could not hand the job back; it is reclaimed when its heartbeat goes stale");
                            }
                            break None;
                        }
                    }
                }
            }
        };
        match outcome {
            None => {}
            Some(Ok(())) => self.finish(&job, None, None).await,
            Some(Err(JobError::Failed(reason))) => {
                self.finish(&job, Some(handler.as_ref()), Some(reason))
                    .await
            }
            Some(Err(JobError::Retry(reason))) => {
                tracing::warn!(job = %job.id, %reason, "job handed back to be retried");
                let _ = self.store.release_job(&job.id, &self.id).await;
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Records the outcome: success, or failure with its reason (also through the
    /// handler, when it has one).
    async fn finish(&self, job: &ClaimedJob, handler: Option<&dyn Handler>, error: Option<String>) {
        if let (Some(handler), Some(reason)) = (handler, &error) {
            tracing::error!(job = %job.id, %reason, "job failed");
            handler.fail(job, reason).await;
        }
        match self
            .store
            .finish_job(&job.id, &self.id, error.as_deref())
            .await
        {
            Ok(true) => tracing::info!(job = %job.id, failed = error.is_some(), "job done"),
            Ok(false) => tracing::warn!(job = %job.id, "job was taken by another worker meanwhile"),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not record the job's outcome")
            }
        }
    }
}
