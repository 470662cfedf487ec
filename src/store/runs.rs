//! Evaluation runs: their parameters, status, aggregate metrics and per-user metrics.

use sqlx::Row;

use super::users::push_rows;
use super::{Store, StoreError, now, on_pool};

/// Lifecycle of a run. Large runs are stored `pending`, computed in the background, then
/// marked `succeeded` or `failed`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(RunStatus::Pending),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(StoreError::Corrupt(format!("unknown run status `{other}`"))),
        }
    }
}

/// What is known about a run when it is created.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub model: String,
    pub backend: String,
    pub k: i64,
    pub parameters: String,
    pub users: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub model: String,
    pub backend: String,
    pub k: i64,
    pub parameters: String,
    pub status: RunStatus,
    pub users: i64,
    pub metrics: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub seconds: Option<f64>,
}

/// One user's metrics within a run; `label` is the user id or `session-N` for inline
/// histories.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMetricRecord {
    pub label: String,
    pub values: [f64; 5],
}

const RUN_COLUMNS: &str = "id, model, backend, k, parameters, status, users, metrics, error, created_at, finished_at, seconds";

fn run_from_row<R: Row>(r: &R) -> Result<RunRecord, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    i64: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    f64: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RunRecord {
        id: r.try_get("id")?,
        model: r.try_get("model")?,
        backend: r.try_get("backend")?,
        k: r.try_get("k")?,
        parameters: r.try_get("parameters")?,
        status: RunStatus::parse(&r.try_get::<String, _>("status")?)?,
        users: r.try_get("users")?,
        metrics: r.try_get("metrics")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        seconds: r.try_get("seconds")?,
    })
}

impl Store {
    pub async fn create_run(&self, run: &NewRun) -> Result<RunRecord, StoreError> {
        let created_at = now();
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO eval_runs (id, model, backend, k, parameters, status, users, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.id)
        .bind(&run.model)
        .bind(&run.backend)
        .bind(run.k)
        .bind(&run.parameters)
        .bind(RunStatus::Pending.as_str())
        .bind(run.users)
        .bind(created_at)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(RunRecord {
            id: run.id.clone(),
            model: run.model.clone(),
            backend: run.backend.clone(),
            k: run.k,
            parameters: run.parameters.clone(),
            status: RunStatus::Pending,
            users: run.users,
            metrics: None,
            error: None,
            created_at,
            finished_at: None,
            seconds: None,
        })
    }

    /// Stores a finished run's aggregate and per-user metrics in one transaction.
    pub async fn finish_run(
        &self,
        id: &str,
        metrics: &str,
        seconds: f64,
        per_user: &[UserMetricRecord],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (n, chunk) in per_user.chunks(4_000).enumerate() {
                let mut sql = String::from(
                    "INSERT INTO eval_user_metrics (run_id, position, user_label, hit_rate, recall, prec, mrr, ndcg) VALUES ",
                );
                push_rows(&mut sql, chunk.len(), 8);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (i, m) in chunk.iter().enumerate() {
                    q = q.bind(id).bind((n * 4_000 + i) as i64).bind(&m.label);
                    for v in m.values {
                        q = q.bind(v);
                    }
                }
                q.execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE eval_runs SET status = $1, metrics = $2, seconds = $3, finished_at = $4 WHERE id = $5")
                .bind(RunStatus::Succeeded.as_str())
                .bind(metrics)
                .bind(seconds)
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn fail_run(&self, id: &str, error: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE eval_runs SET status = $1, error = $2, finished_at = $3 WHERE id = $4")
            .bind(RunStatus::Failed.as_str())
            .bind(error)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    pub async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM eval_runs WHERE id = $1");
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
            .map(|r| run_from_row(&r))
            .transpose())
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, limit: i64, offset: i64) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM eval_runs ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
        );
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all(pool).await?
            .iter()
            .map(run_from_row)
            .collect())
    }

    pub async fn run_user_metrics(&self, id: &str) -> Result<Vec<UserMetricRecord>, StoreError> {
        let sql = "SELECT user_label, hit_rate, recall, prec, mrr, ndcg FROM eval_user_metrics \
                   WHERE run_id = $1 ORDER BY position";
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_all(pool).await?
            .iter()
            .map(|r| -> Result<UserMetricRecord, StoreError> {
                Ok(UserMetricRecord {
                    label: r.try_get("user_label")?,
                    values: [r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?],
                })
            })
            .collect())
    }
}
