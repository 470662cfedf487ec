//! Experiment grids: the experiment row (configuration, report header, status) and its
//! finished cells. A cell is written once, when both of its evaluation runs are stored,
//! so a grid interrupted at any point resumes by skipping exactly the cells found here.

use sqlx::Row;

use super::{Store, StoreError, now, on_pool};

#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRecord {
    pub id: String,
    pub name: String,
    /// JSON.
    pub config: String,
    /// JSON: what the report needs besides the cells.
    pub header: String,
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellRecord {
    pub cell: String,
    pub position: i64,
    /// JSON.
    pub result: String,
    pub validation_run: String,
    pub test_run: String,
}

const COLUMNS: &str = "id, name, config, header, status, error, created_at, finished_at";

fn experiment_from_row<R: Row>(r: &R) -> Result<ExperimentRecord, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    i64: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ExperimentRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        config: r.try_get("config")?,
        header: r.try_get("header")?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Store {
    /// Inserts an experiment with `status`, or, when it exists, applies `on_conflict` (an
    /// `UPDATE SET …` clause); the number of rows written.
    async fn upsert_experiment(
        &self,
        [id, name, config, header]: [&str; 4],
        status: &str,
        on_conflict: &str,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "INSERT INTO experiments (id, name, config, header, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO {on_conflict}"
        );
        Ok(on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(name)
            .bind(config)
            .bind(header)
            .bind(status)
            .bind(now())
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Records an experiment as running: a new one, or one queued or started before, whose
    /// header is refreshed (the manifest's timings and revision may have changed).
    pub async fn start_experiment(
        &self,
        id: &str,
        name: &str,
        config: &str,
        header: &str,
    ) -> Result<(), StoreError> {
        let update = "UPDATE SET header = excluded.header, status = 'running', \
                      error = NULL, finished_at = NULL";
        self.upsert_experiment([id, name, config, header], "running", update)
            .await
            .map(drop)
    }

    /// Records an experiment accepted by the service as `queued` (its grid runs as a job),
    /// unless it exists and has not failed; a failed one is queued again. `true` when the
    /// caller should enqueue its job: of two identical requests at once, one wins.
    pub async fn queue_experiment(
        &self,
        id: &str,
        name: &str,
        config: &str,
        header: &str,
    ) -> Result<bool, StoreError> {
        let update = "UPDATE SET status = 'queued', error = NULL, finished_at = NULL \
                      WHERE experiments.status = 'failed'";
        let n = self
            .upsert_experiment([id, name, config, header], "queued", update)
            .await?;
        Ok(n == 1)
    }

    /// Marks an experiment finished: `error` is `None` when every cell succeeded.
    pub async fn finish_experiment(&self, id: &str, error: Option<&str>) -> Result<(), StoreError> {
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        on_pool!(self, pool => sqlx::query(
            "UPDATE experiments SET status = $1, error = $2, finished_at = $3 WHERE id = $4",
        )
        .bind(status)
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    pub async fn get_experiment(&self, id: &str) -> Result<Option<ExperimentRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM experiments WHERE id = $1");
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
            .map(|r| experiment_from_row(&r))
            .transpose())
    }

    /// Experiments, newest first.
    pub async fn list_experiments(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ExperimentRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM experiments ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
        );
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all(pool).await?
            .iter()
            .map(experiment_from_row)
            .collect())
    }

    /// Records a finished cell (its two runs must be stored already).
    pub async fn finish_cell(&self, experiment: &str, cell: &CellRecord) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO experiment_cells \
             (experiment_id, cell, position, result, validation_run, test_run, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(experiment)
        .bind(&cell.cell)
        .bind(cell.position)
        .bind(&cell.result)
        .bind(&cell.validation_run)
        .bind(&cell.test_run)
        .bind(now())
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The finished cells of an experiment, in plan order.
    pub async fn experiment_cells(&self, experiment: &str) -> Result<Vec<CellRecord>, StoreError> {
        let sql = "SELECT cell, position, result, validation_run, test_run FROM experiment_cells \
                   WHERE experiment_id = $1 ORDER BY position";
        on_pool!(self, pool => sqlx::query(sql).bind(experiment).fetch_all(pool).await?
            .iter()
            .map(|r| -> Result<CellRecord, StoreError> {
                Ok(CellRecord {
                    cell: r.try_get("cell")?,
                    position: r.try_get("position")?,
                    result: r.try_get("result")?,
                    validation_run: r.try_get("validation_run")?,
                    test_run: r.try_get("test_run")?,
                })
            })
            .collect())
    }
}
