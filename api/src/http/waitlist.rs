//! The waitlist: join, list, withdraw.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;

pub(super) async fn join_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::waitlist::JoinWaitlist>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let entry = state.service.join_waitlist(user, body).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

pub(super) async fn list_waitlist(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(WaitlistEntries {
        items: state.service.waitlist_of(user).await?,
    }))
}

pub(super) async fn withdraw_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    state.service.withdraw_from_waitlist(user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
