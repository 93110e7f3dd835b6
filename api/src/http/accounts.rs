//! Accounts and the driver's own data: registration, sessions, vehicles, workplace, message
//! preferences and inbox, the data export and erasure.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::accounts::{Credentials, NewVehicle, Point};
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

pub(super) async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, Error> {
    let user = state.accounts.register(body).await?;
    Ok((StatusCode::CREATED, Json(UserCreated { user_id: user })))
}

pub(super) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(state.accounts.login(body, &ip).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Refresh)]
pub(super) struct RefreshBody {
    #[schema(schema_with = crate::schema::non_empty)]
    refresh_token: String,
}

pub(super) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?))
}

pub(super) async fn add_vehicle(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewVehicle>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok((
        StatusCode::CREATED,
        Json(state.accounts.add_vehicle(user, body).await?),
    ))
}

pub(super) async fn list_vehicles(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(Vehicles {
        vehicles: state.accounts.vehicles(user).await?,
    }))
}

pub(super) async fn set_workplace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(at): ApiJson<Point>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    state.accounts.set_workplace(user, at).await?;
    Ok(Json(Workplace {
        workplace: Some(at),
    }))
}

pub(super) async fn get_workplace(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(Workplace {
        workplace: state.accounts.workplace(user).await?,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Inbox {
    #[serde(default = "inbox_size")]
    limit: i64,
}

pub(super) fn inbox_size() -> i64 {
    50
}

pub(super) async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        crate::notifications::preferences(state.service.store(), user).await?,
    ))
}

pub(super) async fn put_preferences(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<crate::notifications::Preferences>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    crate::notifications::set_preferences(state.service.store(), user, p).await?;
    Ok(Json(p))
}

/// Everything stored about the calling driver.
pub(super) async fn export_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(state.service.export_user_data(user).await?))
}

/// Erase the calling driver's account.
pub(super) async fn delete_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let erasure = state.service.erase_user(user, state.service.now()).await?;
    Ok(Json(Erased {
        deleted: true,
        erasure,
    }))
}

/// The driver's in-app inbox: their messages, newest first.
pub(super) async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<Inbox>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    if !(1..=100).contains(&q.limit) {
        return Err(Error::Invalid("limit is 1 to 100".into()));
    }
    let items = crate::notifications::of_user(state.service.store(), user, q.limit).await?;
    Ok(Json(Notifications { items }))
}
