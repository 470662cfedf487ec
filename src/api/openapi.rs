//! The OpenAPI document, generated from the handlers' annotations. `openapi/openapi.json`
//! in the repository is this document; a test fails when the two drift apart.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    catalogue, evaluations, experiment_report, experiments, health, recommendations, tracks, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "audiorec",
        description = "Music recommendations from frozen pretrained audio embeddings plus listening histories \
                       (Tamm & Aljanaki, RecSys '24): KNN over an HNSW index, Shallow Net and BERT4Rec, with \
                       offline evaluation runs. Errors are application/problem+json. Write endpoints need \
                       `Authorization: Bearer <key>` when the service has an API key; this document \
                       declares them secured, and a service without a key serves its /openapi.json \
                       without that requirement."
    ),
    paths(
        health::health, health::ready, health::metrics,
        tracks::get, tracks::similar, catalogue::create, catalogue::withdraw,
        users::create, users::get, users::append_listens, users::list_listens,
        recommendations::models, recommendations::for_user, recommendations::for_history,
        evaluations::create, evaluations::get, evaluations::list, evaluations::compare,
        experiments::create, experiments::list, experiments::get, experiment_report::report,
    ),
    modifiers(&ApiKey, &CommonResponses),
    tags(
        (name = "recommendations", description = "Ranked tracks for users and sessions"),
        (name = "users", description = "Users and their listens"),
        (name = "tracks", description = "The catalogue, similar tracks, and tracks added (ready rows or audio) and withdrawn while it is served"),
        (name = "evaluations", description = "Offline evaluation runs with confidence intervals"),
        (name = "experiments", description = "The paper's comparison as a grid job: every backend under every recommender, its report with significance"),
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

/// Unique operation ids, and the answers every route may give besides its own: a 400 where a request carries a body or
/// parameters (a body that is not JSON, a path segment that is not UTF-8, an offset past
/// the integer range), a 413 for an oversized body, and a 503 where the database is
/// needed or the request timed out. Declared once here rather than on each handler.
struct CommonResponses;

/// Operations that never touch the database nor run long enough to time out.
const NO_DATABASE: [&str; 2] = ["/health", "/metrics"];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in operations(item) {
                // Handlers share names across resources (`get`, `create`): prefix the tag,
                // so operation ids are unique, as links and client generators need.
                if let (Some(id), Some(tag)) = (&op.operation_id, op.tags.iter().flatten().next()) {
                    op.operation_id = Some(format!("{tag}_{id}"));
                }
                let with_input = op.request_body.is_some()
                    || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                if with_input {
                    add_problem(
                        op,
                        "400",
                        "Malformed request: body not JSON, a path segment not UTF-8, or a parameter beyond its range",
                    );
                }
                if op.request_body.is_some() {
                    add_problem(op, "413", "Request body larger than the service accepts");
                }
                let query =
                    op.parameters.iter().flatten().any(|p| {
                        matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)
                    });
                if query {
                    add_problem(
                        op,
                        "422",
                        "A query parameter of the wrong type or out of range",
                    );
                }
                if !NO_DATABASE.contains(&path.as_str()) {
                    add_problem(
                        op,
                        "503",
                        "The database is unavailable or the request timed out; retry later",
                    );
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.post, &mut item.delete]
        .into_iter()
        .flatten()
}

fn add_problem(op: &mut Operation, status: &str, description: &str) {
    let problem = ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert(problem.into());
}

/// The document for a service with an API key: write endpoints declare `api_key`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document a service serves at `/openapi.json`: without an API key its write
/// endpoints are open, so they declare no security and no 401.
pub fn document_for(api_key: bool) -> utoipa::openapi::OpenApi {
    let mut doc = document();
    if !api_key {
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.security = None;
                op.responses.responses.remove("401");
            }
        }
        if let Some(d) = doc.info.description.as_mut() {
            d.push_str(" This instance has no API key: its write endpoints are open.");
        }
    }
    doc
}
