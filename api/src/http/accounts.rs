//! Accounts and the driver's own data: registration, sessions, vehicles, workplace, message
//! preferences and inbox, the data export and erasure.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::accounts::{Credentials, NewVehicle, Point};
use crate::domain::error::Error;
use crate::http::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

#[utoipa::path(
    post,
    path = "/v1/accounts",
    summary = "Register a driver",
    request_body = crate::accounts::Credentials,
    responses(
        (status = 201, description = "OK", body = crate::http::wire::UserCreated),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state.accounts.register(body).await?;
    Ok((StatusCode::CREATED, Json(UserCreated { user_id: user })))
}

#[utoipa::path(
    post,
    path = "/v1/sessions",
    summary = "Log in: a short-lived access token and a refresh token; failed attempts are limited per account and per IP (429)",
    request_body = crate::accounts::Credentials,
    responses(
        (status = 200, description = "OK", body = crate::accounts::SessionTokens),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.accounts.login(body, &ip).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Refresh)]
pub(super) struct RefreshBody {
    #[schema(schema_with = crate::domain::schema::non_empty)]
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/v1/sessions/refresh",
    summary = "Spend a refresh token for new tokens",
    request_body = crate::http::accounts::RefreshBody,
    responses(
        (status = 200, description = "OK", body = crate::accounts::SessionTokens),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?))
}

#[utoipa::path(
    post,
    path = "/v1/sessions/revoke",
    summary = "Sign out: the refresh token stops working (a token already spent or unknown is no error)",
    request_body = crate::http::accounts::RefreshBody,
    responses(
        (status = 204, description = "Signed out"),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    if body.refresh_token.is_empty() {
        return Err(Error::Invalid("refreshToken must not be empty".into()).into());
    }
    state.accounts.revoke(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/vehicles",
    summary = "Register a vehicle (plate, region, vehicle type)",
    request_body = crate::accounts::NewVehicle,
    responses(
        (status = 201, description = "OK", body = crate::accounts::Vehicle),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn add_vehicle(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewVehicle>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok((
        StatusCode::CREATED,
        Json(state.accounts.add_vehicle(user, body).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/vehicles",
    summary = "The driver's vehicles",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Vehicles),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn list_vehicles(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(Vehicles {
        vehicles: state.accounts.vehicles(user).await?,
    }))
}

#[utoipa::path(
    put,
    path = "/v1/me/workplace",
    summary = "Save the driver's workplace: lots and spots nearest to it come first",
    request_body = crate::accounts::Point,
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Workplace),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn set_workplace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(at): ApiJson<Point>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    state.accounts.set_workplace(user, at).await?;
    Ok(Json(Workplace {
        workplace: Some(at),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/me/workplace",
    summary = "The driver's saved workplace",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Workplace),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn get_workplace(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
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

#[utoipa::path(
    get,
    path = "/v1/me/notification-preferences",
    summary = "The driver's channels: e-mail and push (in-app is always on)",
    responses(
        (status = 200, description = "OK", body = crate::notifications::Preferences),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(
        crate::notifications::preferences(state.services.store(), user).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/v1/me/notification-preferences",
    summary = "Choose the channels: `{\"email\": true, \"push\": false}`",
    request_body = crate::notifications::Preferences,
    responses(
        (status = 200, description = "OK", body = crate::notifications::Preferences),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn put_preferences(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<crate::notifications::Preferences>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    crate::notifications::set_preferences(state.services.store(), user, p).await?;
    Ok(Json(p))
}

/// Everything stored about the calling driver.
#[utoipa::path(
    get,
    path = "/v1/me/export",
    summary = "Everything stored about the driver: account, vehicles, reservations, stays, messages",
    responses(
        (status = 200, description = "OK", body = Object),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn export_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(state.services.privacy().export_user_data(user).await?))
}

/// Erase the calling driver's account.
#[utoipa::path(
    delete,
    path = "/v1/me",
    summary = "Erase the driver's account: upcoming reservations cancelled, plates removed, the rest keyed only by the random user id",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Erased),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn delete_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    let erasure = state
        .services
        .privacy()
        .erase_user(user, state.services.now())
        .await?;
    Ok(Json(Erased {
        deleted: true,
        erasure,
    }))
}

/// The driver's in-app inbox: their messages, newest first.
#[utoipa::path(
    get,
    path = "/v1/notifications",
    summary = "The driver's messages, newest first",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 50", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Notifications),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<Inbox>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    if !(1..=100).contains(&q.limit) {
        return Err(Error::Invalid("limit is 1 to 100".into()).into());
    }
    let items = crate::notifications::of_user(state.services.store(), user, q.limit).await?;
    Ok(Json(Notifications { items }))
}
