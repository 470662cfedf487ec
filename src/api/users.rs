//! Users and their listens.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use crate::dataset::time::format_timestamp;
use crate::store::UserRecord;

/// Listens per append request, at most.
pub const MAX_LISTENS: usize = 100_000;

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "listener-42"}))]
pub struct NewUser {
    /// Any id of 1 to 256 characters without control characters, chosen by the client.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]+$"
    )]
    pub user_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    #[schema(example = "listener-42")]
    pub user_id: String,
    /// Unix seconds.
    #[schema(example = 1764100000)]
    pub created_at: i64,
    /// Distinct tracks listened to.
    #[schema(example = 120)]
    pub tracks: i64,
    /// Total plays.
    #[schema(example = 310)]
    pub plays: i64,
}

impl From<UserRecord> for User {
    fn from(r: UserRecord) -> Self {
        Self {
            user_id: r.user_id,
            created_at: r.created_at,
            tracks: r.tracks,
            plays: r.plays,
        }
    }
}

/// User ids: 1 to 256 characters (not bytes), none of them a control character, so an
/// id is printable in logs and always fits a `Location` header once percent-encoded.
fn check_user_id(id: &str) -> Result<(), ApiError> {
    check_id("user_id", id)
}

/// The rule of [`check_user_id`] for any id field (track ids too).
pub(super) fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let chars = id.chars().count();
    if !(1..=256).contains(&chars) || id.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!(
            "{field} must be 1 to 256 characters, none of them a control character"
        )));
    }
    Ok(())
}

/// `id` as one URL path segment: everything but unreserved ASCII percent-encoded as UTF-8.
pub(super) fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates a user. Requires the API key when one is configured.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = NewUser,
    security(("api_key" = [])),
    responses((status = 201, description = "Created", body = User),
              (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Invalid id", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    check_user_id(&body.user_id)?;
    let user = state.store.create_user(&body.user_id).await?;
    let location = format!("/v1/users/{}", path_segment(&user.user_id));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(User::from(user)),
    ))
}

/// One user with their listening totals.
#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "User id", example = "listener-42")),
    responses((status = 200, description = "The user", body = User),
              (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let user = state
        .store
        .get_user(&user_id)
        .await?
        .ok_or(ApiError::UnknownUser(user_id))?;
    Ok(Json(user.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct Listen {
    #[schema(example = "0009fFIM1eYThaPg")]
    pub track_id: String,
    /// When it was played, Unix seconds. With the user and track it identifies the
    /// listen: sending the same listen again does not count it twice.
    #[schema(example = 1764100000)]
    #[serde(deserialize_with = "super::integer::required")]
    pub timestamp: i64,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"listens": [{"track_id": "0009fFIM1eYThaPg", "timestamp": 1764100000}]}))]
pub struct NewListens {
    /// 1 to 100,000 listens.
    #[schema(min_items = 1, max_items = 100_000)]
    pub listens: Vec<Listen>,
}

#[derive(Serialize, ToSchema)]
pub struct ListensAccepted {
    /// Listens stored now.
    #[schema(example = 1)]
    pub accepted: usize,
    /// Listens already stored before (a retried request), ignored.
    #[schema(example = 0)]
    pub duplicates: usize,
}

/// Appends a batch of listens. Idempotent: a listen is identified by (user, track,
/// timestamp), so a retried request does not double-count. All or nothing: one unknown
/// track rejects the whole batch.
#[utoipa::path(post, path = "/v1/users/{user_id}/listens", tag = "users", request_body = NewListens,
    params(("user_id" = String, Path, description = "User id")),
    security(("api_key" = [])),
    responses((status = 200, description = "Stored", body = ListensAccepted),
              (status = 404, description = "Unknown user or track", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Empty or oversized batch", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or wrong API key", body = Problem, content_type = "application/problem+json")))]
pub async fn append_listens(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Json(body): Json<NewListens>,
) -> Result<Json<ListensAccepted>, ApiError> {
    if body.listens.is_empty() || body.listens.len() > MAX_LISTENS {
        return Err(ApiError::Invalid(format!(
            "send 1 to {MAX_LISTENS} listens, got {}",
            body.listens.len()
        )));
    }
    let listens = body
        .listens
        .iter()
        .enumerate()
        .map(|(i, l)| {
            state
                .track_index(&l.track_id)
                .map(|t| (t, l.timestamp))
                .map_err(|_| {
                    ApiError::UnknownTrack(format!("listens[{i}]: no track `{}`", l.track_id))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !state.store.user_exists(&user_id).await? {
        return Err(ApiError::UnknownUser(user_id));
    }
    let outcome = state.store.append_listens(&user_id, &listens).await?;
    Ok(Json(ListensAccepted {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
    }))
}

/// Entries per page, at most.
pub const MAX_LIMIT: i64 = 1000;
/// The largest offset: the end of a page (offset + limit) still fits a 64-bit integer.
pub const MAX_OFFSET: i64 = i64::MAX - MAX_LIMIT;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Entries per page (1–1000, default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Entries to skip (0 to 2^63 − 1001; larger offsets are answered 400).
    #[param(example = 0, minimum = 0, maximum = 9_223_372_036_854_774_807_i64)]
    pub offset: Option<i64>,
}

impl Page {
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(100);
        let offset = self.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(ApiError::BadRequest(format!(
                "offset must be at most {MAX_OFFSET}, got {offset}"
            )));
        }
        if !(1..=MAX_LIMIT).contains(&limit) || offset < 0 {
            return Err(ApiError::Invalid(
                "limit must be 1 to 1000 and offset non-negative".into(),
            ));
        }
        Ok((limit, offset))
    }
}

#[derive(Serialize, ToSchema)]
pub struct TrackListens {
    #[schema(example = "0009fFIM1eYThaPg")]
    pub track_id: String,
    /// First listen, Unix seconds.
    #[schema(example = 1764100000)]
    pub first_listen: i64,
    /// First listen, `YYYY-MM-DD HH:MM:SS` UTC.
    #[schema(example = "2025-11-25 19:46:40")]
    pub first_listen_utc: String,
    #[schema(example = 3)]
    pub plays: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ListensPage {
    pub items: Vec<TrackListens>,
    #[schema(example = 100)]
    pub limit: i64,
    #[schema(example = 0)]
    pub offset: i64,
    /// Offset of the next page, absent on the last page.
    #[schema(example = 100)]
    pub next_offset: Option<i64>,
}

/// The user's listens aggregated per track (first listen, play count), oldest first.
#[utoipa::path(get, path = "/v1/users/{user_id}/listens", tag = "users",
    params(("user_id" = String, Path, description = "User id"), Page),
    responses((status = 200, description = "A page of listens", body = ListensPage),
              (status = 404, description = "Unknown user", body = Problem, content_type = "application/problem+json")))]
pub async fn list_listens(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<ListensPage>, ApiError> {
    let (limit, offset) = page.resolve()?;
    if !state.store.user_exists(&user_id).await? {
        return Err(ApiError::UnknownUser(user_id));
    }
    let rows = state.store.list_plays(&user_id, limit + 1, offset).await?;
    let more = rows.len() as i64 > limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(|p| TrackListens {
            track_id: state.track_id(p.track),
            first_listen: p.first_ts,
            first_listen_utc: format_timestamp(p.first_ts),
            plays: p.count,
        })
        .collect();
    Ok(Json(ListensPage {
        items,
        limit,
        offset,
        next_offset: more.then_some(offset + limit),
    }))
}
