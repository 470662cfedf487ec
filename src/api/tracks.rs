//! Tracks: the catalogue and content-similar tracks (changes to it: `catalogue.rs`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::{AppState, check_k};
use crate::recommend::catalogue::TrackDetails;
use crate::recommend::{Scored, history_set};

#[derive(Serialize, ToSchema)]
pub struct BackendInfo {
    #[schema(example = "musicnn")]
    pub name: String,
    #[schema(example = 200)]
    pub dim: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Track {
    #[schema(example = "0009fFIM1eYThaPg")]
    pub track_id: String,
    /// The track's catalogue index (imported tracks: its row in every backend's matrix).
    #[schema(example = 12)]
    pub index: u32,
    /// Backends that have an embedding for this track.
    pub backends: Vec<BackendInfo>,
    /// For a track added through the API: when, how, and (audio) its MSD tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<TrackDetails>,
}

/// The view of catalogue track `index`.
pub(super) fn track_view(state: &AppState, track_id: String, index: u32) -> Track {
    let registry = &state.registry;
    let backends = (registry.backends.iter())
        .filter(|(_, e)| e.has_row(index))
        .map(|(name, e)| BackendInfo {
            name: name.clone(),
            dim: e.dim,
        })
        .collect();
    Track {
        track_id,
        index,
        backends,
        added: registry.catalog.details(index),
    }
}

/// One catalogue track.
#[utoipa::path(get, path = "/v1/tracks/{track_id}", tag = "tracks",
    params(("track_id" = String, Path, description = "Track id", example = "0009fFIM1eYThaPg")),
    responses((status = 200, description = "The track", body = Track),
              (status = 404, description = "Unknown track", body = super::error::Problem, content_type = "application/problem+json"),
              (status = 410, description = "The track was withdrawn", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(track_id): Path<String>,
) -> Result<Json<Track>, ApiError> {
    let index = state.served_track(&track_id)?;
    Ok(Json(track_view(&state, track_id, index)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarParams {
    /// Backend whose embeddings define similarity; the first served backend by default.
    #[param(example = "musicnn")]
    pub backend: Option<String>,
    /// How many tracks (1–1000, default 10).
    #[param(example = 10, minimum = 1, maximum = 1000)]
    pub k: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ScoredTrack {
    #[schema(example = "0009fFIM1eYThaPg")]
    pub track_id: String,
    /// 1 for the best.
    #[schema(example = 1)]
    pub rank: usize,
    /// Cosine similarity (KNN, Shallow Net) or logit (BERT4Rec); higher is better.
    #[schema(example = 0.873)]
    pub score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarTracks {
    #[schema(example = "0009fFIM1eYThaPg")]
    pub track_id: String,
    #[schema(example = "musicnn")]
    pub backend: String,
    pub items: Vec<ScoredTrack>,
}

/// Tracks whose embeddings are closest (cosine) to this track's, itself excluded.
#[utoipa::path(get, path = "/v1/tracks/{track_id}/similar", tag = "tracks",
    params(("track_id" = String, Path, description = "Track id"), SimilarParams),
    responses((status = 200, description = "Most similar tracks, best first", body = SimilarTracks),
              (status = 404, description = "Unknown track or backend, or the track has no row in that backend", body = super::error::Problem, content_type = "application/problem+json"),
              (status = 410, description = "The track was withdrawn", body = super::error::Problem, content_type = "application/problem+json"),
              (status = 422, description = "k out of range", body = super::error::Problem, content_type = "application/problem+json"),
              (status = 503, description = "The backend's index is still being built (`not-ready`, with `Retry-After`), the database is unavailable, or the request timed out; retry later", body = super::error::Problem, content_type = "application/problem+json",
               headers(("Retry-After" = u64, description = "Seconds until the model is expected ready (when it is building)")))))]
pub async fn similar(
    State(state): State<AppState>,
    Path(track_id): Path<String>,
    Query(params): Query<SimilarParams>,
) -> Result<Json<SimilarTracks>, ApiError> {
    let k = check_k(params.k.unwrap_or(10))?;
    let index = state.served_track(&track_id)?;
    let backend = params.backend.unwrap_or_else(|| state.default_backend());
    let knn = state.knn(&backend)?;
    let embeddings = state.registry.backends[&backend].clone();
    if !embeddings.has_row(index) {
        return Err(ApiError::UnknownTrack(format!(
            "track `{track_id}` has no `{backend}` row (GET /v1/tracks/{track_id} lists its backends)"
        )));
    }
    let asked = k + state.registry.catalog.headroom();
    let found = tokio::task::spawn_blocking(move || {
        let found = knn.index().search(
            &embeddings.normalized_row(index),
            asked,
            &history_set(&[index]),
        );
        found
            .into_iter()
            .map(|n| Scored {
                track: n.id,
                score: n.score,
            })
            .collect()
    })
    .await?;
    let items = state
        .registry
        .catalog
        .visible(found, k)
        .into_iter()
        .enumerate()
        .map(|(i, n)| ScoredTrack {
            track_id: state.track_id(n.track),
            rank: i + 1,
            score: n.score,
        })
        .collect();
    Ok(Json(SimilarTracks {
        track_id,
        backend,
        items,
    }))
}
