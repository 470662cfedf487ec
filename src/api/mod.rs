//! The HTTP API: axum router, handlers (one file per resource), problem+json errors,
//! auth, telemetry and the OpenAPI document. Handlers translate between JSON and the
//! core; the work itself is done by `recommend`, `eval` and `store`.

mod auth;
mod availability;
mod catalogue;
pub mod error;
mod eval_jobs;
mod evaluations;
mod experiment_report;
mod experiments;
mod extract;
mod health;
mod integer;
pub mod openapi;
mod recommendations;
pub mod startup;
mod telemetry;
mod tracks;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::dataset::Layout;
use crate::experiment::progress::Board;
use crate::experiment::source::GridSource;
use crate::model::content::AudioEmbedder;
use crate::recommend::Recommender;
use crate::recommend::knn::KnnRecommender;
use crate::recommend::readiness::State;
use crate::recommend::registry::{Lookup, Registry};
use crate::store::Store;
use error::ApiError;

/// The largest `k` a client may ask for.
pub const MAX_K: usize = 1000;

/// Shared, read-mostly state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub telemetry: Arc<telemetry::Telemetry>,
    /// Whether the database is up: routes that need it answer 503 at once while not.
    database: Arc<availability::Availability>,
    api_key: Option<Arc<str>>,
    sync_eval_users: usize,
    /// Experiment grids on the served dataset, where they are, and the most estimated
    /// seconds one may cost.
    pub grids: Arc<GridSource>,
    pub board: Board,
    experiment_budget: u64,
    /// MusiCNN and MFCC for audio uploads, when the MusiCNN weights are installed.
    audio: Option<Arc<AudioEmbedder>>,
    /// Why there is no `audio`, for the 503 an upload then gets.
    audio_missing: Arc<str>,
    /// Whether the dataset is still being imported into the database: routes that need
    /// it answer 503 `not-ready` until it is.
    importing: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Must be called within a Tokio runtime: it starts the database probe. `audio`
    /// embeds uploads, or says why uploads cannot be embedded.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        settings: &Settings,
        audio: Result<AudioEmbedder, String>,
        importing: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let (audio, audio_missing) = match audio {
            Ok(a) => (Some(Arc::new(a)), Arc::from("")),
            Err(why) => (None, Arc::from(why)),
        };
        Self {
            database: availability::Availability::start(store.clone()),
            store: store.remember_histories(settings.remembered_users),
            registry,
            telemetry: Arc::default(),
            api_key: settings.api_key.as_ref().map(|k| Arc::from(k.0.as_str())),
            sync_eval_users: settings.sync_eval_users,
            grids: Arc::new(GridSource::new(
                Layout::new(&settings.data),
                &settings.device,
            )),
            board: Board::default(),
            experiment_budget: settings.experiment_budget,
            audio,
            audio_missing,
            importing,
        }
    }

    /// Whether the dataset's import into the database is still going on.
    fn importing(&self) -> bool {
        self.importing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The recommender for (model, backend); the 503 with `Retry-After` of one still
    /// being built or trained; or the 404 that names what is available.
    fn recommender(&self, model: &str, backend: &str) -> Result<Arc<dyn Recommender>, ApiError> {
        let r = &self.registry;
        if !r.backends.contains_key(backend) {
            let names: Vec<&str> = r.backends.keys().map(String::as_str).collect();
            return Err(ApiError::UnknownBackend(format!(
                "no backend `{backend}` (available: {})",
                names.join(", ")
            )));
        }
        let available = || {
            let pairs: Vec<String> = r.models().iter().map(|(m, b)| format!("{m}/{b}")).collect();
            pairs.join(", ")
        };
        match r.lookup(model, backend) {
            Lookup::Ready(recommender) => Ok(recommender),
            Lookup::Pending(state) => Err(ApiError::NotReady {
                detail: format!(
                    "`{model}` for backend `{backend}` is {} (see /ready); serving now: {}",
                    pending_detail(&state),
                    available()
                ),
                retry_after: state.retry_after(std::time::Instant::now()).unwrap_or(1),
            }),
            Lookup::Failed(reason) => Err(ApiError::UnknownModel(format!(
                "`{model}` for backend `{backend}` failed to load: {reason} (available: {})",
                available()
            ))),
            Lookup::Missing if r.has_model(model) => Err(ApiError::UnknownModel(format!(
                "model `{model}` is not trained for backend `{backend}` (available: {})",
                available()
            ))),
            Lookup::Missing => Err(ApiError::UnknownModel(format!(
                "no model `{model}` (available: {})",
                available()
            ))),
        }
    }

    /// The KNN recommender of a backend, whose index answers "similar tracks".
    fn knn(&self, backend: &str) -> Result<Arc<KnnRecommender>, ApiError> {
        self.recommender("knn", backend)?;
        self.registry
            .knn(backend)
            .ok_or_else(|| ApiError::UnknownBackend(format!("no backend `{backend}`")))
    }

    /// The backend used when a request names none: the first one served.
    fn default_backend(&self) -> String {
        self.registry
            .backends
            .keys()
            .next()
            .cloned()
            .unwrap_or_default()
    }

    fn track_index(&self, track_id: &str) -> Result<u32, ApiError> {
        self.registry
            .catalog
            .get(track_id)
            .ok_or_else(|| ApiError::UnknownTrack(format!("no track `{track_id}`")))
    }

    /// The index of a track still in the catalogue: 410 for a withdrawn one.
    fn served_track(&self, track_id: &str) -> Result<u32, ApiError> {
        let index = self.track_index(track_id)?;
        if self.registry.catalog.is_withdrawn(index) {
            return Err(ApiError::WithdrawnTrack(track_id.into()));
        }
        Ok(index)
    }

    fn track_id(&self, index: u32) -> String {
        self.registry.catalog.id(index)
    }
}

/// A pending state in words, for a problem's detail.
fn pending_detail(state: &State) -> String {
    match state {
        State::Training { epoch: 0, .. } => "waiting to be trained".into(),
        State::Training { epoch, epochs, .. } => {
            format!("still training (epoch {epoch} of at most {epochs})")
        }
        _ => "still being built".into(),
    }
}

/// Checks `k` against the service's bounds.
fn check_k(k: usize) -> Result<usize, ApiError> {
    if (1..=MAX_K).contains(&k) {
        Ok(k)
    } else {
        Err(ApiError::Invalid(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )))
    }
}

/// The router with every route and layer, without binding a socket (for in-process tests).
pub fn router(state: AppState, settings: &Settings) -> Router {
    let writes = Router::new()
        .route("/v1/users", post(users::create))
        .route("/v1/users/{user_id}/listens", post(users::append_listens))
        .route("/v1/evaluations", post(evaluations::create))
        .route("/v1/experiments", post(experiments::create))
        .route("/v1/tracks", post(catalogue::create))
        .route("/v1/tracks/{track_id}", delete(catalogue::withdraw))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            availability::require_database,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    // Served from memory: they keep answering while the database is down.
    let memory = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/v1/models", get(recommendations::models))
        .route("/v1/tracks/{track_id}", get(tracks::get))
        .route("/v1/tracks/{track_id}/similar", get(tracks::similar))
        .route("/v1/recommendations", post(recommendations::for_history));
    let reads = Router::new()
        .route("/v1/users/{user_id}", get(users::get))
        .route("/v1/users/{user_id}/listens", get(users::list_listens))
        .route(
            "/v1/users/{user_id}/recommendations",
            get(recommendations::for_user),
        )
        .route("/v1/evaluations", get(evaluations::list))
        .route("/v1/evaluations/{run_id}", get(evaluations::get))
        .route(
            "/v1/evaluations/{run_id}/compare/{other_id}",
            get(evaluations::compare),
        )
        .route("/v1/experiments", get(experiments::list))
        .route("/v1/experiments/{experiment_id}", get(experiments::get))
        .route(
            "/v1/experiments/{experiment_id}/report",
            get(experiment_report::report),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            availability::require_database,
        ));
    let x_request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(writes)
        .merge(memory)
        .merge(reads)
        .merge(SwaggerUi::new("/docs").url(
            "/openapi.json",
            openapi::document_for(settings.api_key.is_some()),
        ))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NoSuchEndpoint(uri.path().to_string())
        })
        .layer(middleware::from_fn_with_state(state.clone(), telemetry::track))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(settings.request_timeout),
        ))
        .layer(cors(&settings.cors_origins))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
        ]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}
