//! The OpenAPI document, generated from the handlers' annotations. `openapi/openapi.json`
//! in the repository is this document; a test fails when the two drift apart.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{evaluations, health, recommendations, tracks, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "audiorec",
        description = "Music recommendations from frozen pretrained audio embeddings plus listening histories \
                       (Tamm & Aljanaki, RecSys '24): KNN over an HNSW index, Shallow Net and BERT4Rec, with \
                       offline evaluation runs. Errors are application/problem+json. Write endpoints need \
                       `Authorization: Bearer <key>` when the service has an API key."
    ),
    paths(
        health::health, health::ready, health::metrics,
        tracks::get, tracks::similar,
        users::create, users::get, users::append_listens, users::list_listens,
        recommendations::models, recommendations::for_user, recommendations::for_history,
        evaluations::create, evaluations::get, evaluations::list, evaluations::compare,
    ),
    modifiers(&ApiKey),
    tags(
        (name = "recommendations", description = "Ranked tracks for users and sessions"),
        (name = "users", description = "Users and their listens"),
        (name = "tracks", description = "The catalog and similar tracks"),
        (name = "evaluations", description = "Offline evaluation runs with confidence intervals"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
