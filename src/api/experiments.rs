//! Experiment grids over the served dataset: a client POSTs what `audiorec experiment`'s
//! TOML file holds (as JSON), the grid runs as a durable job, and the status shows every
//! cell (done with its test HitRate@k, running with its epoch, pending). The id is the
//! hash of the configuration and the data, as on the command line, so the same
//! configuration posted again is the same experiment: answered 200 with it, unless it
//! failed, in which case it is queued again (202) and resumes from its finished cells.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::users::Page;
use crate::eval::report::{ModelKind, Variant};
use crate::eval::stored::Header;
use crate::eval::{Estimate, Metrics};
use crate::experiment::ExperimentConfig;
use crate::experiment::plan::{CellSpec, cells};
use crate::store::ExperimentRecord;

/// Where an experiment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExperimentStatus {
    /// Accepted; its job waits for a worker.
    Queued,
    /// A worker is computing its cells (or was, and another will resume it).
    Running,
    Succeeded,
    /// Stopped on an error (`error` says which); posting it again resumes it.
    Failed,
}

impl ExperimentStatus {
    const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ApiError::Internal(format!("unknown experiment status `{s}`")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    Done,
    Running,
    Pending,
}

/// One cell of the grid: a recommender on a backend (or its block's Random row).
#[derive(Serialize, ToSchema)]
pub struct CellProgress {
    /// `model/variant/backend`.
    #[schema(example = "shallow/content/musicnn")]
    pub cell: String,
    pub model: ModelKind,
    pub variant: Variant,
    /// The backend (a Random row names the one whose dimensions it borrows).
    #[schema(example = "musicnn")]
    pub backend: String,
    pub status: CellStatus,
    /// Test HitRate@k (the experiment's k) with its 95% half-width, once done.
    pub test_hit_rate: Option<Estimate>,
    /// The epoch being trained (1-based), while running, where the serving process
    /// knows it (the replica running the grid).
    #[schema(example = 2)]
    pub epoch: Option<usize>,
    /// Most epochs of the cell's model (training may stop early).
    #[schema(example = 8)]
    pub epochs: Option<usize>,
}

/// An experiment: its configuration, status and progress per cell.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "9f1c2e7d40a3b8e1", "name": "tiny, short training", "status": "running",
    "error": null, "created_at": 1764500000, "finished_at": null,
    "cells_done": 2, "cells_total": 4, "eta_seconds": 12.5,
    "report": "/v1/experiments/9f1c2e7d40a3b8e1/report",
    "config": {"name": "tiny, short training", "backends": ["musicnn", "noise"], "models": ["knn", "shallow"]},
    "cells": [
        {"cell": "knn/content/musicnn", "model": "knn", "variant": "content", "backend": "musicnn",
         "status": "done", "test_hit_rate": {"mean": 0.31, "half_width": 0.06}, "epoch": null, "epochs": null},
        {"cell": "shallow/content/musicnn", "model": "shallow", "variant": "content", "backend": "musicnn",
         "status": "running", "test_hit_rate": null, "epoch": 1, "epochs": 2}
    ]
}))]
pub struct Experiment {
    /// Hash of the configuration and the data (split, catalogue, embedding files).
    #[schema(example = "9f1c2e7d40a3b8e1")]
    pub id: String,
    #[schema(example = "tiny, short training")]
    pub name: String,
    pub status: ExperimentStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Unix seconds.
    #[schema(example = 1764500000)]
    pub created_at: i64,
    pub finished_at: Option<i64>,
    #[schema(example = 2)]
    pub cells_done: usize,
    #[schema(example = 4)]
    pub cells_total: usize,
    /// Estimated seconds left, while the serving process runs the grid.
    #[schema(example = 12.5)]
    pub eta_seconds: Option<f64>,
    /// The report (available from the first finished cell).
    #[schema(example = "/v1/experiments/9f1c2e7d40a3b8e1/report")]
    pub report: String,
    pub config: ExperimentConfig,
    /// Every cell in the report's order.
    pub cells: Vec<CellProgress>,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, ApiError> {
    serde_json::from_str(s).map_err(|e| ApiError::Internal(format!("stored {what}: {e}")))
}

/// The experiment as its record, finished cells and (when this process runs it) its
/// progress say.
pub(super) async fn view(
    state: &AppState,
    record: ExperimentRecord,
) -> Result<Experiment, ApiError> {
    let config: ExperimentConfig = parse("configuration", &record.config)?;
    let header: Header = parse("header", &record.header)?;
    let cold = header.split.cold.tracks > 0;
    let backends: Vec<String> = header.backends.into_iter().map(|b| b.name).collect();
    let status = ExperimentStatus::parse(&record.status)?;
    let done = state.store.experiment_cells(&record.id).await?;
    let running = state.board.get(&record.id);
    let mut next_is_running = status == ExperimentStatus::Running && running.is_none();
    let mut out = Vec::new();
    for spec in cells(&config, &backends, cold) {
        let CellSpec {
            model,
            variant,
            backend,
        } = spec.clone();
        let key = spec.key();
        let mut cell = CellProgress {
            cell: key.clone(),
            model,
            variant,
            backend,
            status: CellStatus::Pending,
            test_hit_rate: None,
            epoch: None,
            epochs: None,
        };
        if let Some(d) = done.iter().find(|d| d.cell == key) {
            cell.status = CellStatus::Done;
            let run = state.store.get_run(&d.test_run).await?;
            if let Some(metrics) = run.and_then(|r| r.metrics) {
                let metrics: Metrics<Estimate> = parse("run metrics", &metrics)?;
                cell.test_hit_rate = Some(metrics.hit_rate);
            }
        } else if let Some(r) = running.as_ref().filter(|r| r.cell == key) {
            cell.status = CellStatus::Running;
            (cell.epoch, cell.epochs) = (r.epoch, r.epochs);
        } else if next_is_running {
            // Another process runs it: the first cell not done is the one it computes.
            cell.status = CellStatus::Running;
            next_is_running = false;
        }
        out.push(cell);
    }
    Ok(Experiment {
        report: format!("/v1/experiments/{}/report", record.id),
        id: record.id,
        name: record.name,
        status,
        error: record.error,
        created_at: record.created_at,
        finished_at: record.finished_at,
        cells_done: out.iter().filter(|c| c.status == CellStatus::Done).count(),
        cells_total: out.len(),
        eta_seconds: running.map(|r| r.eta_seconds),
        config,
        cells: out,
    })
}

/// Starts an experiment grid on the served dataset: the body is what `audiorec
/// experiment --config` reads (every field optional; `{}` is the paper's whole grid, far
/// beyond a service's budget). It is checked first (unknown backends, bounds, and the
/// plan's estimated cost against the service's `--experiment-budget`): a refused
/// experiment writes nothing. Accepted, it runs as a durable job (202; poll the
/// `Location`). The same configuration on the same data is the same experiment: posted
/// again, it is answered 200 with its current state, or, if it failed, queued again (202)
/// to resume from its finished cells.
#[utoipa::path(post, path = "/v1/experiments", tag = "experiments", request_body = ExperimentConfig,
    security(("api_key" = [])),
    responses((status = 202, description = "Accepted (new, or a failed one queued again); poll the Location header",
                headers(("Location" = String, description = "/v1/experiments/{id}")), body = Experiment),
              (status = 200, description = "The same configuration was posted before: that experiment",
                headers(("Location" = String, description = "/v1/experiments/{id}")), body = Experiment),
              (status = 422, description = "Invalid configuration (unknown field or backend, a number out of range) or an estimated cost above the service's budget", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let config: ExperimentConfig = serde_json::from_value(super::integer::integral(body))
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let grids = state.grids.clone();
    let checked = config.clone();
    let plan = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let data = grids
            .data()
            .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
        checked
            .validate(&data.backends)
            .map_err(ApiError::Invalid)?;
        grids
            .plan(&checked)
            .map_err(|e| ApiError::Internal(format!("{e:#}")))
    })
    .await??;
    let estimate: f64 = plan.estimates.iter().sum();
    if estimate > state.experiment_budget as f64 {
        return Err(ApiError::Invalid(format!(
            "this grid of {} cells is estimated at {estimate:.0} s of computing, above this service's budget of {} s per experiment (--experiment-budget): ask for fewer epochs, backends or models, or run `audiorec experiment` on the command line",
            plan.cells.len(),
            state.experiment_budget
        )));
    }
    let config_json =
        serde_json::to_string(&config).map_err(|e| ApiError::Internal(e.to_string()))?;
    let header_json =
        serde_json::to_string(&plan.header).map_err(|e| ApiError::Internal(e.to_string()))?;
    let queued = state
        .store
        .queue_experiment(&plan.id, &config.name, &config_json, &header_json)
        .await?;
    if queued {
        if let Err(e) = crate::jobs::experiment::enqueue(&state.store, &plan.id, &config).await {
            let reason = format!("could not queue its job: {e}");
            state
                .store
                .finish_experiment(&plan.id, Some(&reason))
                .await?;
            return Err(e.into());
        }
        tracing::info!(experiment = %plan.id, cells = plan.cells.len(), estimate, "experiment queued");
    }
    let record = state
        .store
        .get_experiment(&plan.id)
        .await?
        .ok_or_else(|| ApiError::UnknownExperiment(plan.id.clone()))?;
    let status = if queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let location = [(header::LOCATION, format!("/v1/experiments/{}", plan.id))];
    Ok((status, location, Json(view(&state, record).await?)).into_response())
}

/// One experiment: status, error, and progress per cell.
#[utoipa::path(get, path = "/v1/experiments/{experiment_id}", tag = "experiments",
    params(("experiment_id" = String, Path, description = "Experiment id (from the POST's Location)", example = "9f1c2e7d40a3b8e1")),
    responses((status = 200, description = "The experiment", body = Experiment),
              (status = 404, description = "Unknown experiment", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Experiment>, ApiError> {
    let record = state
        .store
        .get_experiment(&id)
        .await?
        .ok_or(ApiError::UnknownExperiment(id))?;
    Ok(Json(view(&state, record).await?))
}

/// Experiments, newest first (those run by `audiorec experiment` on the same database
/// too).
#[utoipa::path(get, path = "/v1/experiments", tag = "experiments", params(Page),
    responses((status = 200, description = "A page of experiments", body = [Experiment])))]
pub async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Experiment>>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let mut out = Vec::new();
    for record in state.store.list_experiments(limit, offset).await? {
        out.push(view(&state, record).await?);
    }
    Ok(Json(out))
}
