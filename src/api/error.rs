//! One error type for every handler, answered as `application/problem+json` (RFC 9457)
//! with a stable `type`, a human `detail` and the right status. Causes of 500s go to the
//! log, never to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::eval::runs::RunError;
use crate::recommend::RecommendError;
use crate::store::StoreError;

/// A problem report. `type` is stable and can be matched on; `detail` is for people.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"type": "/problems/unknown-user", "title": "Unknown user", "status": 404, "detail": "no user `u42`"}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// Marks a response as caused by an unavailable database, so the availability layer
/// (`availability.rs`) learns of an outage from any handler's answer.
#[derive(Clone, Copy)]
pub struct DatabaseUnavailable;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no user `{0}`")]
    UnknownUser(String),
    #[error("{0}")]
    UnknownTrack(String),
    /// A track withdrawn from the catalogue (answered 410 Gone).
    #[error("track `{0}` was withdrawn from the catalogue")]
    WithdrawnTrack(String),
    #[error("{0}")]
    UnknownModel(String),
    #[error("{0}")]
    UnknownBackend(String),
    #[error("no evaluation run `{0}`")]
    UnknownRun(String),
    #[error("no experiment `{0}`")]
    UnknownExperiment(String),
    /// No representation the client accepts (the message names those served).
    #[error("{0}")]
    NotAcceptable(String),
    /// The body is not JSON, or not the JSON this endpoint takes.
    #[error("{0}")]
    MalformedBody(String),
    /// A query or path parameter the service cannot take at all (an offset past the
    /// end of the integer range, a path segment that is not UTF-8).
    #[error("{0}")]
    BadRequest(String),
    /// No route matches the path.
    #[error("no endpoint `{0}`; see /docs")]
    NoSuchEndpoint(String),
    /// Well-formed but invalid: a value out of range, an empty history, …
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Audio was sent but the in-process audio backends are not installed.
    #[error("{0}")]
    AudioUnavailable(String),
    #[error("a valid `Authorization: Bearer <key>` header is required for this endpoint")]
    Unauthorized,
    #[error("{0}")]
    Conflict(String),
    /// A stored user without listens: valid, but there is nothing to recommend from yet.
    #[error("user `{0}` has no listens yet: append some first")]
    NoListens(String),
    /// A stored user whose listened tracks all lack a row in the backend asked for.
    #[error(
        "none of user `{user}`'s listened tracks can be read in backend `{backend}`: try another backend"
    )]
    NoUsableListens { user: String, backend: String },
    #[error("the database is unavailable, try again shortly")]
    Unavailable(#[source] StoreError),
    /// The model asked for is still being built or trained: answered 503 with a
    /// `Retry-After` of the seconds until it is expected ready.
    #[error("{detail}")]
    NotReady { detail: String, retry_after: u64 },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown-user", "Unknown user"),
            ApiError::UnknownTrack(_) => (StatusCode::NOT_FOUND, "unknown-track", "Unknown track"),
            ApiError::WithdrawnTrack(_) => (StatusCode::GONE, "withdrawn-track", "Withdrawn track"),
            ApiError::UnknownModel(_) => (StatusCode::NOT_FOUND, "unknown-model", "Unknown model"),
            ApiError::UnknownBackend(_) => {
                (StatusCode::NOT_FOUND, "unknown-backend", "Unknown backend")
            }
            ApiError::UnknownRun(_) => (
                StatusCode::NOT_FOUND,
                "unknown-run",
                "Unknown evaluation run",
            ),
            ApiError::UnknownExperiment(_) => (
                StatusCode::NOT_FOUND,
                "unknown-experiment",
                "Unknown experiment",
            ),
            ApiError::NotAcceptable(_) => (
                StatusCode::NOT_ACCEPTABLE,
                "not-acceptable",
                "Not acceptable",
            ),
            ApiError::MalformedBody(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
            ),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::NoSuchEndpoint(_) => (
                StatusCode::NOT_FOUND,
                "no-such-endpoint",
                "No such endpoint",
            ),
            ApiError::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-request",
                "Invalid request",
            ),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::AudioUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "audio-unavailable",
                "Audio backends not installed",
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::NoListens(_) => (StatusCode::CONFLICT, "no-listens", "User has no listens"),
            ApiError::NoUsableListens { .. } => (
                StatusCode::CONFLICT,
                "no-usable-listens",
                "No listens usable in this backend",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::NotReady { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready yet",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let problem = Problem {
            kind: format!("/problems/{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::Unavailable(_)) {
            response.extensions_mut().insert(DatabaseUnavailable);
        }
        if let ApiError::NotReady { retry_after, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Down => ApiError::Unavailable(e),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Database(_) | StoreError::Migration(_) | StoreError::Corrupt(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<RecommendError> for ApiError {
    fn from(e: RecommendError) -> Self {
        match e {
            RecommendError::EmptyHistory => ApiError::Invalid(e.to_string()),
            RecommendError::UnknownTrack(_) => ApiError::UnknownTrack(e.to_string()),
            RecommendError::Model(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Store(e) => e.into(),
            RunError::Recommend(e) => e.into(),
            RunError::UnknownRun(id) => ApiError::UnknownRun(id),
            RunError::NotSucceeded(_) | RunError::NoSharedUsers => ApiError::Invalid(e.to_string()),
            RunError::Worker(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("worker task failed: {e}"))
    }
}
