//! Changing the catalogue while it is served: `POST /v1/tracks` (ready rows as JSON, or
//! audio as a multipart upload embedded here by MusiCNN and MFCC) and
//! `DELETE /v1/tracks/{track_id}`. Each change is stored first, as the next entry of the
//! catalogue's change log, then applied to this instance ([`sync`]); other replicas apply
//! it from the log within their poll interval.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path};
use super::tracks::{Track, track_view};
use super::users::{check_id, path_segment};
use crate::recommend::catalogue::{Tag, TrackDetails};
use crate::recommend::registry::{ApplyError, Registry};
use crate::store::{Store, now};

/// A track with ready embeddings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"track_id": "new-track-1", "rows": {"musicnn": [0.1, 0.0, 0.3]}}))]
pub struct NewTrack {
    /// 1–256 characters, no control characters; unique in the catalogue (withdrawn
    /// tracks keep their ids).
    #[schema(example = "new-track-1")]
    pub track_id: String,
    /// Row per served backend, each of the backend's width, finite float32 values and
    /// not all zero. Backends not named have no row for this track (it is not
    /// recommended there). At least one backend.
    pub rows: BTreeMap<String, Vec<f64>>,
}

/// The parts of an audio upload's `multipart/form-data` body, as the OpenAPI document
/// shows them (the handler reads the parts as they stream in).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "read by the OpenAPI document only")]
pub struct AudioUpload {
    /// The new track's id (rules as for JSON).
    pub track_id: String,
    /// wav, flac, mp3 or ogg/vorbis; the file name's extension is a hint.
    #[schema(value_type = String, format = Binary)]
    pub audio: Vec<u8>,
}

/// Adds a track: its rows join the served backends and it is recommendable in the next
/// answer by every model whose item side is a function of content (KNN, the Shallow Net
/// on content, frozen-table BERT4Rec). Send JSON with ready rows, or `multipart/form-data`
/// with `track_id` and `audio`: the audio is decoded and embedded here by MusiCNN and
/// MFCC (their rows join backends whose manifest names the same extractor, otherwise
/// `musicnn-audio` and `mfcc-audio`). Requires the API key when one is configured.
#[utoipa::path(post, path = "/v1/tracks", tag = "tracks",
    request_body(content(
        (NewTrack = "application/json"),
        (AudioUpload = "multipart/form-data"),
    )),
    security(("api_key" = [])),
    responses((status = 201, description = "Added; `Location` names it", body = Track,
               headers(("Location" = String, description = "The new track's URL"))),
              (status = 400, description = "Not JSON nor a multipart form", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
              (status = 413, description = "The upload is over the body limit", body = Problem, content_type = "application/problem+json"),
              (status = 415, description = "Neither JSON nor multipart/form-data", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Invalid id, unknown backend, a row of the wrong width or not finite, or audio that cannot be decoded; nothing is stored", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "Audio sent but the MusiCNN weights are not installed (the detail says how), or the database is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (track_id, rows, details) = if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::MalformedBody(e.body_text()))?;
        from_audio(&state, form).await?
    } else if content_type.starts_with("application/json") {
        let Json(body) = Json::<NewTrack>::from_request(request, &state).await?;
        let details = TrackDetails {
            added_at: now(),
            source: "rows".into(),
            ..TrackDetails::default()
        };
        (body.track_id, to_f32(body.rows)?, details)
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send application/json (ready rows) or multipart/form-data (audio), not `{content_type}`"
        )));
    };
    check_id("track_id", &track_id)?;
    check_rows(&state.registry, &rows)?;
    state.store.add_track(&track_id, &rows, &details).await?;
    sync(&state.store, &state.registry).await?;
    let index = state.track_index(&track_id)?;
    let location = format!("/v1/tracks/{}", path_segment(&track_id));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(track_view(&state, track_id, index)),
    ))
}

/// Reads an upload's `track_id` and `audio` parts and embeds the audio off the runtime.
async fn from_audio(
    state: &AppState,
    mut form: Multipart,
) -> Result<(String, BTreeMap<String, Vec<f32>>, TrackDetails), ApiError> {
    let embedder = state.audio.clone().ok_or_else(|| {
        ApiError::AudioUnavailable(format!(
            "audio uploads need the MusiCNN weights: {} (then restart); rows can still be posted as JSON",
            state.audio_missing
        ))
    })?;
    let (mut track_id, mut audio) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::MalformedBody(e.body_text()))?
    {
        match field.name() {
            Some("track_id") => {
                track_id = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| ApiError::MalformedBody(e.body_text()))?,
                )
            }
            Some("audio") => {
                let hint = field
                    .file_name()
                    .and_then(|n| n.rsplit_once('.'))
                    .map(|(_, ext)| ext.to_ascii_lowercase());
                let bytes = field.bytes().await.map_err(|e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(e.body_text()),
                    _ => ApiError::MalformedBody(e.body_text()),
                })?;
                audio = Some((bytes, hint));
            }
            other => {
                return Err(ApiError::Invalid(format!(
                    "unexpected form part `{}`: send `track_id` and `audio`",
                    other.unwrap_or("")
                )));
            }
        }
    }
    let track_id =
        track_id.ok_or_else(|| ApiError::Invalid("the form has no `track_id` part".into()))?;
    let (bytes, hint) =
        audio.ok_or_else(|| ApiError::Invalid("the form has no `audio` part".into()))?;
    // A taken id is refused before the audio is embedded (the store checks again).
    if state.registry.catalog.get(&track_id).is_some() {
        return Err(ApiError::Conflict(format!(
            "track `{track_id}` already exists"
        )));
    }
    let embedded = tokio::task::spawn_blocking(move || embedder.embed(&bytes, hint.as_deref()))
        .await?
        .map_err(|e| ApiError::Invalid(format!("the audio could not be embedded: {e}")))?;
    let details = TrackDetails {
        added_at: now(),
        source: "audio".into(),
        duration_s: Some(embedded.duration_s),
        tags: (embedded.top_tags.into_iter())
            .map(|(tag, probability)| Tag { tag, probability })
            .collect(),
    };
    Ok((track_id, embedded.rows, details))
}

/// Rows as float32, refusing values beyond its range (JSON numbers are doubles).
fn to_f32(rows: BTreeMap<String, Vec<f64>>) -> Result<BTreeMap<String, Vec<f32>>, ApiError> {
    rows.into_iter()
        .map(|(backend, row)| {
            let narrow = (row.iter().enumerate())
                .map(|(i, &v)| {
                    if v.abs() > f64::from(f32::MAX) {
                        return Err(ApiError::Invalid(format!(
                            "value {i} of the `{backend}` row, {v}, is beyond float32's range"
                        )));
                    }
                    Ok(v as f32)
                })
                .collect::<Result<Vec<f32>, ApiError>>()?;
            Ok((backend, narrow))
        })
        .collect()
}

/// Every row names a served backend and fits it; checked before anything is stored.
fn check_rows(registry: &Registry, rows: &BTreeMap<String, Vec<f32>>) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Err(ApiError::Invalid("`rows` names no backend".into()));
    }
    for (backend, row) in rows {
        let embeddings = registry.backends.get(backend).ok_or_else(|| {
            let names: Vec<&str> = registry.backends.keys().map(String::as_str).collect();
            ApiError::Invalid(format!(
                "no backend `{backend}` (served: {})",
                names.join(", ")
            ))
        })?;
        embeddings
            .check_row(row)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Withdraws a track: no model recommends it again (the next index build leaves it
/// out); histories that name it keep it. Requires the API key when one is configured.
#[utoipa::path(delete, path = "/v1/tracks/{track_id}", tag = "tracks",
    params(("track_id" = String, Path, description = "Track id", example = "new-track-1")),
    security(("api_key" = [])),
    responses((status = 204, description = "Withdrawn (or withdrawn before)"),
              (status = 404, description = "Unknown track", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn withdraw(
    State(state): State<AppState>,
    Path(track_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let index = state.track_index(&track_id)?;
    state.store.withdraw_track(index).await?;
    sync(&state.store, &state.registry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies the stored changes this instance has not applied yet, in order; returns how
/// many. Called after each change made here and on every poll.
pub async fn sync(store: &Store, registry: &Registry) -> Result<usize, ApiError> {
    let _syncing = registry.syncing().lock().await;
    let changes = store.catalogue_changes(registry.catalog.seq()).await?;
    let mut applied = 0;
    for change in &changes {
        let fits = registry.apply(change).map_err(|e: ApplyError| {
            ApiError::Internal(format!(
                "catalogue change {} does not apply: {e}",
                change.seq()
            ))
        })?;
        applied += usize::from(fits);
    }
    Ok(applied)
}

/// Applies other replicas' changes every `every`, for as long as the service runs.
pub async fn poll(store: Store, registry: std::sync::Arc<Registry>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sync(&store, &registry).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                changes = n,
                tracks = registry.catalog.served(),
                "catalogue changes applied"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not apply the catalogue's changes; retrying")
            }
        }
    }
}
