//! Liveness, readiness and metrics for operators.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::Json;
use super::recommendations::ModelInfo;

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
    /// `ready`; `starting` while an index or checkpoint found at start-up is still
    /// being built or loaded; `unavailable` while the database is down.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `postgres` or `sqlite`.
    #[schema(example = "sqlite")]
    pub database: &'static str,
    pub database_ok: bool,
    /// Whether the dataset is being imported into an empty database (routes that need
    /// the database answer 503 until it is).
    pub importing: bool,
    /// Number of catalog tracks served.
    #[schema(example = 5000)]
    pub tracks: usize,
    /// `model/backend` pairs that serve now.
    #[schema(example = json!(["knn/musicnn", "knn/mert"]))]
    pub models: Vec<String>,
    /// Each backend's KNN index (which also answers similar tracks): `building`,
    /// `ready` or `failed`.
    #[schema(example = json!({"mert": "building", "musicnn": "ready"}))]
    pub backends: BTreeMap<String, &'static str>,
    /// Every (model, backend) with its state: what is building, training, ready or failed.
    pub entries: Vec<ModelInfo>,
}

/// Readiness, for load balancers: 200 once the database answers (a round trip within
/// half a second; two failed round trips in a row, this one's or the background probe's,
/// count as an outage) and everything found at start-up is loaded (every backend's KNN index
/// and every checkpoint in the models folder is ready, or failed and logged). Models the
/// service trains in the background (the demo's) are listed but not waited for. 503 while
/// starting or while the database is down; ready again when it returns.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Ready to serve", body = Readiness),
              (status = 503, description = "Still starting (indexes building, checkpoints loading) or the database is unreachable", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database_ok = state.database.check().await;
    let registry = &state.registry;
    let starting = registry.starting();
    let entries = state.model_infos();
    let backends = entries
        .iter()
        .filter(|e| e.model == "knn")
        .map(|e| (e.backend.clone(), e.state))
        .collect();
    let ok = database_ok && !starting;
    let body = Readiness {
        status: match (database_ok, starting) {
            (false, _) => "unavailable",
            (true, true) => "starting",
            (true, false) => "ready",
        },
        database: state.store.kind(),
        database_ok,
        importing: state.importing(),
        tracks: registry.catalog.served(),
        models: registry
            .models()
            .iter()
            .map(|(m, b)| format!("{m}/{b}"))
            .collect(),
        backends,
        entries,
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
