//! Recommendations for stored users and for posted histories (anonymous sessions), from
//! any (model, backend) the service has loaded.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::tracks::ScoredTrack;
use super::{AppState, check_k};
use crate::recommend::readiness::State as EntryState;
use crate::recommend::{Query as RecQuery, RecommendError, Recommender};

#[derive(Serialize, ToSchema)]
pub struct ModelInfo {
    #[schema(example = "shallow")]
    pub model: String,
    #[schema(example = "musicnn")]
    pub backend: String,
    #[schema(example = 200)]
    pub dim: usize,
    /// `building` (index or checkpoint loading), `training`, `ready` or `failed`.
    #[schema(example = "training")]
    pub state: &'static str,
    /// Whether requests for it are answered now (a model being retrained keeps serving
    /// its last checkpoint).
    #[schema(example = false)]
    pub serving: bool,
    /// While training: the epoch under way (1-based) and the most it will run (early
    /// stopping may end it sooner).
    #[schema(example = 3)]
    pub epoch: Option<usize>,
    #[schema(example = 10)]
    pub epochs: Option<usize>,
    /// While building or training: seconds until it is expected ready (what a request
    /// for it is told in `Retry-After`).
    #[schema(example = 42)]
    pub ready_in: Option<u64>,
    /// Why it failed.
    #[schema(example = json!(null))]
    pub reason: Option<String>,
}

/// Every (model, backend) this service has or is preparing: what it can recommend with
/// now, and what is still building or training, with when it should be ready.
#[utoipa::path(get, path = "/v1/models", tag = "recommendations",
    responses((status = 200, description = "Loaded models, and those building or training", body = [ModelInfo])))]
pub async fn models(State(state): State<AppState>) -> Json<Vec<ModelInfo>> {
    Json(state.model_infos())
}

impl AppState {
    /// The registry's entries as the API shows them.
    pub(super) fn model_infos(&self) -> Vec<ModelInfo> {
        let now = std::time::Instant::now();
        let r = &self.registry;
        r.entries()
            .into_iter()
            .map(|e| {
                let (epoch, epochs) = match e.state {
                    EntryState::Training { epoch, epochs, .. } => (Some(epoch), Some(epochs)),
                    _ => (None, None),
                };
                ModelInfo {
                    dim: r.backends.get(&e.backend).map_or(0, |b| b.dim),
                    state: e.state.name(),
                    serving: e.serving,
                    epoch,
                    epochs,
                    ready_in: e.state.retry_after(now),
                    reason: match &e.state {
                        EntryState::Failed(reason) => Some(reason.clone()),
                        _ => None,
                    },
                    model: e.model,
                    backend: e.backend,
                }
            })
            .collect()
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendParams {
    /// `knn`, `shallow` or `bert4rec` (default `knn`).
    #[param(example = "knn")]
    pub model: Option<String>,
    /// Embedding backend (default: the first served).
    #[param(example = "musicnn")]
    pub backend: Option<String>,
    /// How many tracks (1–1000, default 50).
    #[param(example = 50, minimum = 1, maximum = 1000)]
    pub k: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Recommendations {
    #[schema(example = "knn")]
    pub model: String,
    #[schema(example = "musicnn")]
    pub backend: String,
    /// The stored user, absent for posted histories.
    #[schema(example = "listener-42")]
    pub user_id: Option<String>,
    /// Best first; never a track of the history.
    pub items: Vec<ScoredTrack>,
}

/// Runs a recommender (off the async runtime unless it is light) and names the tracks.
async fn recommend(
    state: &AppState,
    recommender: Arc<dyn Recommender>,
    user_id: Option<String>,
    history: Arc<[u32]>,
    k: usize,
) -> Result<Recommendations, ApiError> {
    let (model, backend) = (
        recommender.model().to_string(),
        recommender.backend().to_string(),
    );
    let recommender_is_light = recommender.is_light();
    let user = user_id.clone();
    // Asked for as many more as there are withdrawn tracks, which are then dropped.
    let asked = k + state.registry.catalog.headroom();
    let run = move || {
        recommender.recommend(&RecQuery {
            user: user.as_deref(),
            history: &history,
            k: asked,
        })
    };
    let scored = if recommender_is_light {
        run()
    } else {
        tokio::task::spawn_blocking(run).await?
    };
    // A stored user whose tracks this model cannot read (none has a row in the backend)
    // asked for nothing invalid: their listens are just of no use here.
    let scored = scored.map_err(|e| match (&user_id, e) {
        (Some(user), RecommendError::EmptyHistory) => ApiError::NoUsableListens {
            user: user.clone(),
            backend: backend.clone(),
        },
        (_, e) => e.into(),
    })?;
    let scored = state.registry.catalog.visible(scored, k);
    let items = scored
        .into_iter()
        .enumerate()
        .map(|(i, s)| ScoredTrack {
            track_id: state.track_id(s.track),
            rank: i + 1,
            score: s.score,
        })
        .collect();
    Ok(Recommendations {
        model,
        backend,
        user_id,
        items,
    })
}

/// Recommendations for a stored user from their listens so far; a listen appended is
/// reflected in the next answer.
#[utoipa::path(get, path = "/v1/users/{user_id}/recommendations", tag = "recommendations",
    params(("user_id" = String, Path, description = "User id"), RecommendParams),
    responses((status = 200, description = "Recommended tracks, best first", body = Recommendations),
              (status = 404, description = "Unknown user, model or backend", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The user has no listens yet, or none this model can read in this backend (tracks added with other backends' rows only): nothing to recommend from", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "k out of range", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The model or backend asked for is still being built or trained (`not-ready`, with `Retry-After`), the database is unavailable, or the request timed out; retry later", body = Problem, content_type = "application/problem+json",
               headers(("Retry-After" = u64, description = "Seconds until the model is expected ready (when it is building or training)")))))]
pub async fn for_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(params): Query<RecommendParams>,
) -> Result<Json<Recommendations>, ApiError> {
    let k = check_k(params.k.unwrap_or(50))?;
    let backend = params.backend.unwrap_or_else(|| state.default_backend());
    let recommender = state.recommender(params.model.as_deref().unwrap_or("knn"), &backend)?;
    let history = state.store.history(&user_id).await?;
    if history.is_empty() {
        return Err(if state.store.user_exists(&user_id).await? {
            ApiError::NoListens(user_id)
        } else {
            ApiError::UnknownUser(user_id)
        });
    }
    Ok(Json(
        recommend(&state, recommender, Some(user_id), history, k).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"history": ["0009fFIM1eYThaPg", "00BmGzbCUfwNHx0b"], "model": "knn", "backend": "musicnn", "k": 10}))]
pub struct HistoryRequest {
    /// Track ids listened to, oldest first (at least one).
    #[schema(min_items = 1)]
    pub history: Vec<String>,
    /// `knn`, `shallow` or `bert4rec` (default `knn`).
    pub model: Option<String>,
    /// Embedding backend (default: the first served).
    pub backend: Option<String>,
    /// How many tracks (1–1000, default 50).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "super::integer::optional")]
    pub k: Option<usize>,
}

/// Recommendations for a posted history: an anonymous session, nothing stored.
#[utoipa::path(post, path = "/v1/recommendations", tag = "recommendations", request_body = HistoryRequest,
    responses((status = 200, description = "Recommended tracks, best first", body = Recommendations),
              (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "Unknown track, model or backend", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Empty history or k out of range", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The model or backend asked for is still being built or trained (`not-ready`, with `Retry-After`), the database is unavailable, or the request timed out; retry later", body = Problem, content_type = "application/problem+json",
               headers(("Retry-After" = u64, description = "Seconds until the model is expected ready (when it is building or training)")))))]
pub async fn for_history(
    State(state): State<AppState>,
    Json(body): Json<HistoryRequest>,
) -> Result<Json<Recommendations>, ApiError> {
    let k = check_k(body.k.unwrap_or(50))?;
    if body.history.is_empty() {
        return Err(ApiError::Invalid(
            "history is empty: send at least one track id".into(),
        ));
    }
    let backend = body.backend.unwrap_or_else(|| state.default_backend());
    let recommender = state.recommender(body.model.as_deref().unwrap_or("knn"), &backend)?;
    let history = body
        .history
        .iter()
        .map(|t| state.track_index(t))
        .collect::<Result<Arc<[u32]>, _>>()?;
    Ok(Json(
        recommend(&state, recommender, None, history, k).await?,
    ))
}
