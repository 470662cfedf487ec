//! The durable job queue: a job is a row holding its kind, its input (JSON) and its
//! state, so work accepted by one process survives that process and can be done by any
//! process on the database.
//!
//! A claim takes the oldest job that is `queued`, or `running` with a heartbeat older than
//! the caller's staleness limit (its worker died), marks it `running` for the caller and
//! counts the attempt. On Postgres the candidate row is locked `FOR UPDATE SKIP LOCKED`,
//! so concurrent claimers in any number of replicas never get the same job; on SQLite the
//! single writer makes the one statement atomic. Every later write names the worker, so a
//! worker that lost its job (declared dead, claimed by another) cannot overwrite it.

use sqlx::Row;

use super::{Pool, Store, StoreError, now, on_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "succeeded" => Ok(JobStatus::Succeeded),
            "failed" => Ok(JobStatus::Failed),
            other => Err(StoreError::Corrupt(format!("unknown job status `{other}`"))),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: &'a str,
    /// Which handler runs it (`evaluation`, …).
    pub kind: &'a str,
    /// The handler's input, JSON.
    pub input: &'a str,
    /// Claims allowed before a job whose worker keeps dying is failed.
    pub max_attempts: i64,
}

/// A job as a worker holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: String,
    pub input: String,
    /// This claim included.
    pub attempts: i64,
    pub max_attempts: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub status: JobStatus,
    pub attempts: i64,
    pub worker: Option<String>,
    pub error: Option<String>,
}

impl Store {
    pub async fn enqueue_job(&self, job: &NewJob<'_>) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO jobs (id, kind, input, status, attempts, max_attempts, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6)",
        )
        .bind(job.id)
        .bind(job.kind)
        .bind(job.input)
        .bind(JobStatus::Queued.as_str())
        .bind(job.max_attempts)
        .bind(now())
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Claims the oldest claimable job for `worker`: queued, or running with a heartbeat
    /// before `stale_before` (Unix seconds; its worker stopped). `None` when there is none.
    pub async fn claim_job(
        &self,
        worker: &str,
        stale_before: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let lock = match self.pool {
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Pool::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $1, heartbeat_at = $2 \
             WHERE id = (SELECT id FROM jobs \
                         WHERE status = 'queued' OR (status = 'running' AND heartbeat_at < $3) \
                         ORDER BY created_at, id LIMIT 1{lock}) \
             RETURNING id, kind, input, attempts, max_attempts"
        );
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now())
            .bind(stale_before)
            .fetch_optional(pool)
            .await?
            .map(|r| -> Result<ClaimedJob, StoreError> {
                Ok(ClaimedJob {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    input: r.try_get("input")?,
                    attempts: r.try_get("attempts")?,
                    max_attempts: r.try_get("max_attempts")?,
                })
            })
            .transpose())
    }

    /// Refreshes the heartbeat of a job `worker` holds; `false` if it no longer does.
    pub async fn heartbeat_job(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET heartbeat_at = $1 WHERE id = $2 AND worker = $3 AND status = 'running'",
        )
        .bind(now())
        .bind(id)
        .bind(worker)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Ends a job `worker` holds: succeeded, or failed with `error`. `false` if the worker
    /// no longer held it.
    pub async fn finish_job(
        &self,
        id: &str,
        worker: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let status = match error {
            None => JobStatus::Succeeded,
            Some(_) => JobStatus::Failed,
        };
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = $1, error = $2, finished_at = $3 \
             WHERE id = $4 AND worker = $5 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now())
        .bind(id)
        .bind(worker)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Hands a job back to the queue (a graceful shutdown): any process may claim it at
    /// once, and this attempt does not count.
    pub async fn release_job(&self, id: &str, worker: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, worker = NULL, heartbeat_at = NULL \
             WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let sql = "SELECT id, kind, status, attempts, worker, error FROM jobs WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await?
            .map(|r| -> Result<JobRecord, StoreError> {
                Ok(JobRecord {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    status: JobStatus::parse(&r.try_get::<String, _>("status")?)?,
                    attempts: r.try_get("attempts")?,
                    worker: r.try_get("worker")?,
                    error: r.try_get("error")?,
                })
            })
            .transpose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        (Store::connect(&url).await.unwrap(), dir)
    }

    fn job<'a>(id: &'a str) -> NewJob<'a> {
        NewJob {
            id,
            kind: "evaluation",
            input: "{}",
            max_attempts: 2,
        }
    }

    #[tokio::test]
    async fn a_job_is_claimed_once_then_again_only_when_its_worker_is_gone() {
        let (store, _dir) = store().await;
        store.enqueue_job(&job("a")).await.unwrap();
        let claimed = store.claim_job("w1", 0).await.unwrap().unwrap();
        assert_eq!((claimed.id.as_str(), claimed.attempts), ("a", 1));
        // Its heartbeat is fresh: nobody else gets it.
        assert_eq!(store.claim_job("w2", now() - 30).await.unwrap(), None);
        // w1 stops beating; a claimer treating everything before now + 1 as stale takes it.
        let again = store.claim_job("w2", now() + 1).await.unwrap().unwrap();
        assert_eq!(again.attempts, 2);
        // w1 lost it: its writes change nothing.
        assert!(!store.heartbeat_job("a", "w1").await.unwrap());
        assert!(!store.finish_job("a", "w1", None).await.unwrap());
        assert!(store.finish_job("a", "w2", Some("boom")).await.unwrap());
        let record = store.get_job("a").await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Failed);
        assert_eq!(record.error.as_deref(), Some("boom"));
        assert_eq!(store.claim_job("w3", now() + 1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_released_job_is_queued_again_without_counting_the_attempt() {
        let (store, _dir) = store().await;
        store.enqueue_job(&job("b")).await.unwrap();
        store.claim_job("w1", 0).await.unwrap().unwrap();
        store.release_job("b", "w1").await.unwrap();
        let record = store.get_job("b").await.unwrap().unwrap();
        assert_eq!((record.status, record.attempts), (JobStatus::Queued, 0));
        assert_eq!(store.claim_job("w2", 0).await.unwrap().unwrap().attempts, 1);
    }
}
