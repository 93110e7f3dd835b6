//! The waitlist: join, list, withdraw.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::http::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;

#[utoipa::path(
    post,
    path = "/v1/waitlist",
    summary = "Wait for a full lot's window (409 when spots are free); `autoBook` books the first spot that frees up",
    request_body = crate::services::waitlist::JoinWaitlist,
    responses(
        (status = 201, description = "OK", body = crate::services::waitlist::WaitlistEntry),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn join_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::services::waitlist::JoinWaitlist>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    let entry = state.services.waitlist().join_waitlist(user, body).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

#[utoipa::path(
    get,
    path = "/v1/waitlist",
    summary = "The driver's waitlist entries, newest first",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::WaitlistEntries),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn list_waitlist(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(WaitlistEntries {
        items: state.services.waitlist().waitlist_of(user).await?,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/waitlist/{entry_id}",
    summary = "Leave the waitlist",
    params(
        ("entry_id" = String, Path, description = "waitlist entry id", format = Uuid),
    ),
    responses(
        (status = 204, description = "Done; no body"),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn withdraw_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    state
        .services
        .waitlist()
        .withdraw_from_waitlist(user, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
