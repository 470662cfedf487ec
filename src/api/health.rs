//! Liveness, readiness and metrics for operators.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::Json;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The service is alive", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `postgres` or `sqlite`.
    #[schema(example = "sqlite")]
    pub database: &'static str,
    pub database_ok: bool,
    /// Number of catalog tracks served.
    #[schema(example = 5000)]
    pub tracks: usize,
    /// `model/backend` pairs loaded.
    #[schema(example = json!(["knn/musicnn", "knn/mert"]))]
    pub models: Vec<String>,
}

/// Readiness: the database answers (a round trip within half a second) and models are
/// loaded. Not ready while the database is down; ready again when it returns.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Ready to serve", body = Readiness),
              (status = 503, description = "The database is unreachable", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database_ok = state.database.check().await;
    let models: Vec<String> = state
        .registry
        .models()
        .map(|(m, b)| format!("{m}/{b}"))
        .collect();
    let ok = database_ok && !models.is_empty();
    let body = Readiness {
        status: if ok { "ready" } else { "unavailable" },
        database: state.store.kind(),
        database_ok,
        tracks: state.registry.catalog.len(),
        models,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics: request counts and latency histograms per route.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.telemetry.render(),
    )
}
