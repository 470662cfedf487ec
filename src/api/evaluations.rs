//! Evaluation runs: offline evaluators POST test users (stored ids or inline histories,
//! plus held-out tracks) and get HitRate/Recall/Precision/MRR/NDCG with 95% confidence
//! half-widths, stored as a run they can fetch and compare later. Runs are computed by
//! `eval::evaluate` through the same recommenders that serve recommendations.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::users::Page;
use super::{AppState, check_k};
use crate::eval::runs::{self, RunCase, RunComparison};
use crate::eval::{self, Estimate, Metrics};
use crate::store::{NewRun, RunRecord, RunStatus, UserMetricRecord};

/// Users per evaluation request, at most.
pub const MAX_USERS: usize = 100_000;

/// A test user: a stored user, whose listens are the history, or an inline history.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TestUser {
    Stored(StoredTestUser),
    Session(SessionTestUser),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredTestUser {
    /// A stored user: their listens are the history.
    #[schema(example = "listener-42")]
    pub user_id: String,
    /// The tracks the recommender should find (non-empty).
    #[schema(example = json!(["0009fFIM1eYThaPg"]), min_items = 1)]
    pub held_out: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionTestUser {
    /// An inline history of track ids, oldest first.
    #[schema(example = json!(["00BmGzbCUfwNHx0b"]))]
    pub history: Vec<String>,
    /// The tracks the recommender should find (non-empty).
    #[schema(example = json!(["0009fFIM1eYThaPg"]), min_items = 1)]
    pub held_out: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"model": "knn", "backend": "musicnn", "k": 50,
    "users": [{"user_id": "listener-42", "held_out": ["0009fFIM1eYThaPg"]},
              {"history": ["00BmGzbCUfwNHx0b"], "held_out": ["0009fFIM1eYThaPg"]}]}))]
pub struct NewEvaluation {
    /// `knn`, `shallow` or `bert4rec` (default `knn`).
    pub model: Option<String>,
    /// Embedding backend (default: the first served).
    pub backend: Option<String>,
    /// Cut-off of the metrics (1–1000, default 50).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::integer::optional")]
    pub k: Option<usize>,
    /// 1 to 100,000 test users.
    #[schema(min_items = 1, max_items = 100_000)]
    pub users: Vec<TestUser>,
}

#[derive(Serialize, ToSchema)]
pub struct UserMetrics {
    /// The user id, or `session-N` for the N-th inline history (0-based).
    #[schema(example = "listener-42")]
    pub user: String,
    pub metrics: Metrics<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct Run {
    #[schema(example = "3f2b8a1e-3c1d-4e53-9d8c-2a7f0e5b6c11")]
    pub id: String,
    #[schema(example = "knn")]
    pub model: String,
    #[schema(example = "musicnn")]
    pub backend: String,
    #[schema(example = 50)]
    pub k: i64,
    pub status: RunStatus,
    /// Number of test users.
    #[schema(example = 937)]
    pub users: i64,
    /// Everything that produced the run.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Mean and 95% half-width per metric, once the run has succeeded.
    pub metrics: Option<Metrics<Estimate>>,
    pub error: Option<String>,
    /// Unix seconds.
    #[schema(example = 1764100000)]
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// Time spent computing recommendations and metrics.
    pub seconds: Option<f64>,
    /// Each user's metrics, when asked for with `include_users=true`.
    pub per_user: Option<Vec<UserMetrics>>,
}

impl Run {
    fn from_record(
        r: RunRecord,
        per_user: Option<Vec<UserMetricRecord>>,
    ) -> Result<Self, ApiError> {
        fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, ApiError> {
            serde_json::from_str(s).map_err(|e| ApiError::Internal(format!("stored run JSON: {e}")))
        }
        Ok(Run {
            parameters: parse(&r.parameters)?,
            metrics: r.metrics.as_deref().map(parse).transpose()?,
            id: r.id,
            model: r.model,
            backend: r.backend,
            k: r.k,
            status: r.status,
            users: r.users,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
            seconds: r.seconds,
            per_user: per_user.map(|rows| {
                rows.into_iter()
                    .map(|u| UserMetrics {
                        user: u.label,
                        metrics: Metrics::from_fn(|i| u.values[i]),
                    })
                    .collect()
            }),
        })
    }
}

fn resolve(state: &AppState, users: &[TestUser]) -> Result<Vec<RunCase>, ApiError> {
    if users.is_empty() || users.len() > MAX_USERS {
        return Err(ApiError::Invalid(format!(
            "send 1 to {MAX_USERS} users, got {}",
            users.len()
        )));
    }
    let tracks = |ids: &[String], what: String| -> Result<Vec<u32>, ApiError> {
        ids.iter()
            .enumerate()
            .map(|(j, t)| {
                state
                    .track_index(t)
                    .map_err(|_| ApiError::UnknownTrack(format!("{what}[{j}]: no track `{t}`")))
            })
            .collect()
    };
    users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let held_out = match u {
                TestUser::Stored(s) => &s.held_out,
                TestUser::Session(s) => &s.held_out,
            };
            if held_out.is_empty() {
                return Err(ApiError::Invalid(format!("users[{i}].held_out is empty")));
            }
            let held_out = tracks(held_out, format!("users[{i}].held_out"))?;
            Ok(match u {
                TestUser::Stored(s) => RunCase {
                    label: s.user_id.clone(),
                    stored: true,
                    history: Vec::new(),
                    held_out,
                },
                TestUser::Session(s) => RunCase {
                    label: format!("session-{i}"),
                    stored: false,
                    history: tracks(&s.history, format!("users[{i}].history"))?,
                    held_out,
                },
            })
        })
        .collect()
}

/// Evaluates a recommender on posted test users and stores the run. Up to the service's
/// synchronous limit (200 users by default) the answer is the finished run (201); larger
/// requests are accepted (202) and computed in the background: poll the `Location`.
#[utoipa::path(post, path = "/v1/evaluations", tag = "evaluations", request_body = NewEvaluation,
    security(("api_key" = [])),
    responses((status = 201, description = "The finished run", body = Run),
              (status = 202, description = "Accepted; poll the Location header", body = Run),
              (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "Unknown user, track, model or backend", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Invalid users or k", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The model or backend asked for is still being built or trained (`not-ready`, with `Retry-After`), the database is unavailable, or the request timed out; retry later", body = Problem, content_type = "application/problem+json",
               headers(("Retry-After" = u64, description = "Seconds until the model is expected ready (when it is building or training)")))))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewEvaluation>,
) -> Result<Response, ApiError> {
    let k = check_k(body.k.unwrap_or(50))?;
    let backend = body.backend.unwrap_or_else(|| state.default_backend());
    let model = body.model.unwrap_or_else(|| "knn".into());
    let recommender = state.recommender(&model, &backend)?;
    let cases = resolve(&state, &body.users)?;
    for case in cases.iter().filter(|c| c.stored) {
        if !state.store.user_exists(&case.label).await? {
            return Err(ApiError::UnknownUser(case.label.clone()));
        }
    }
    let run = NewRun {
        id: uuid::Uuid::new_v4().to_string(),
        model,
        backend,
        k: k as i64,
        parameters: serde_json::json!({
            "model": recommender.model(),
            "backend": recommender.backend(),
            "k": k,
            "stored_users": cases.iter().filter(|c| c.stored).count(),
            "inline_histories": cases.iter().filter(|c| !c.stored).count(),
        })
        .to_string(),
        users: cases.len() as i64,
    };
    let record = state.store.create_run(&run).await?;
    let location = [(header::LOCATION, format!("/v1/evaluations/{}", run.id))];
    if cases.len() <= state.sync_eval_users {
        if let Err(e) = runs::execute(&state.store, &run.id, recommender, cases, k).await {
            state.store.fail_run(&run.id, &e.to_string()).await?;
            return Err(e.into());
        }
        let done = state
            .store
            .get_run(&run.id)
            .await?
            .ok_or_else(|| ApiError::UnknownRun(run.id.clone()))?;
        return Ok((
            StatusCode::CREATED,
            location,
            Json(Run::from_record(done, None)?),
        )
            .into_response());
    }
    let names = (run.model.as_str(), run.backend.as_str());
    if let Err(e) = super::eval_jobs::enqueue(&state, &run.id, names, k, cases).await {
        state.store.fail_run(&run.id, &e.to_string()).await?;
        return Err(e);
    }
    Ok((
        StatusCode::ACCEPTED,
        location,
        Json(Run::from_record(record, None)?),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Include every user's metrics.
    #[param(example = false)]
    pub include_users: Option<bool>,
}

/// One run: status, parameters, aggregate metrics and optionally each user's.
#[utoipa::path(get, path = "/v1/evaluations/{run_id}", tag = "evaluations",
    params(("run_id" = String, Path, description = "Run id"), RunParams),
    responses((status = 200, description = "The run", body = Run),
              (status = 404, description = "Unknown run", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    Query(params): Query<RunParams>,
) -> Result<Json<Run>, ApiError> {
    let record = state
        .store
        .get_run(&run_id)
        .await?
        .ok_or_else(|| ApiError::UnknownRun(run_id.clone()))?;
    let per_user = match params.include_users {
        Some(true) => Some(state.store.run_user_metrics(&run_id).await?),
        _ => None,
    };
    Ok(Json(Run::from_record(record, per_user)?))
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/evaluations", tag = "evaluations", params(Page),
    responses((status = 200, description = "A page of runs", body = [Run])))]
pub async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Run>>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let runs = state.store.list_runs(limit, offset).await?;
    Ok(Json(
        runs.into_iter()
            .map(|r| Run::from_record(r, None))
            .collect::<Result<_, _>>()?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct Comparison {
    /// The first run (differences are this run minus the other).
    pub run: String,
    pub other: String,
    /// Users present in both runs, paired by user id (or session label).
    #[schema(example = 937)]
    pub users: usize,
    /// Mean difference and two-sided p-values (paired t-test, Wilcoxon signed-rank).
    pub metrics: Metrics<eval::PairedTest>,
}

/// Paired significance tests between two succeeded runs over the users they share: is
/// one embedding or model better than the other on the same users (the paper's p < 0.05)?
#[utoipa::path(get, path = "/v1/evaluations/{run_id}/compare/{other_id}", tag = "evaluations",
    params(("run_id" = String, Path, description = "First run"), ("other_id" = String, Path, description = "Second run")),
    responses((status = 200, description = "Paired tests per metric", body = Comparison),
              (status = 404, description = "Unknown run", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "A run has not succeeded, or the runs share no users", body = Problem, content_type = "application/problem+json")))]
pub async fn compare(
    State(state): State<AppState>,
    Path((run_id, other_id)): Path<(String, String)>,
) -> Result<Json<Comparison>, ApiError> {
    let RunComparison { users, metrics } = runs::compare(&state.store, &run_id, &other_id).await?;
    Ok(Json(Comparison {
        run: run_id,
        other: other_id,
        users,
        metrics,
    }))
}
