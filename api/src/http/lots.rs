//! Lots, their rates, and the spots free for a window.

use super::extract::*;
use super::wire::*;
use super::{AppState, Role};
use crate::accounts::Point;
use crate::http::error::ApiError;
use crate::services::{NewLot, PublishRates};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use warehouse_schema::{LotId, VehicleType};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NearQuery {
    #[serde(default)]
    near: Option<String>,
}

pub(super) fn parse_near(raw: Option<&str>) -> Result<Option<Point>, ApiError> {
    Ok(raw.map(str::parse).transpose()?)
}

/// Every lot with free spots and the rate now; with `near=lat,lng` (or a driver's saved
/// workplace) each with its distance, nearest first.
#[utoipa::path(
    get,
    path = "/v1/lots",
    summary = "Lots with capacity, free spots and the rate now; nearest first when a point or workplace is known",
    params(
        ("near" = Option<String>, Query, description = "latitude,longitude to measure distances from (default: the driver's workplace)", pattern = "^-?(90(\\.0{1,8})?|[1-8]?[0-9](\\.[0-9]{1,8})?),-?(180(\\.0{1,8})?|(1[0-7][0-9]|[1-9]?[0-9])(\\.[0-9]{1,8})?)$"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Lots),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn list_lots(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<NearQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let near = caller.near(parse_near(q.near.as_deref())?.map(Point::pair));
    let lots = match near {
        Some(p) => state.services.lots().lots_near(p).await?,
        None => state.services.lots().list().await?,
    };
    Ok(Json(Lots { lots }))
}

#[utoipa::path(
    post,
    path = "/v1/lots",
    summary = "Create a lot with spots per vehicle type",
    description = "Static bearer token of: admin.",
    request_body = crate::services::NewLot,
    responses(
        (status = 201, description = "OK", body = crate::services::Lot),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("staff" = [])),
)]
pub(super) async fn create_lot(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewLot>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin], "create lots")?;
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .services
                .lots()
                .create_lot_by(Some(&caller.actor()), body)
                .await?,
        ),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/lots/{lot_id}",
    summary = "One lot",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::Lot),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn get_lot(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.services.lots().lot(lot).await?))
}

#[utoipa::path(
    get,
    path = "/v1/lots/{lot_id}/rates",
    summary = "Rates in force and announced",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::RateSchedule),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn get_rates(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.services.lots().rate_schedule(lot).await?))
}

#[utoipa::path(
    put,
    path = "/v1/lots/{lot_id}/rates",
    summary = "Publish rates (per band, day kind, vehicle type, effective from)",
    description = "Static bearer token of: pricing or admin.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
    ),
    request_body = crate::services::PublishRates,
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Published),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("staff" = [])),
)]
pub(super) async fn put_rates(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<PublishRates>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Pricing, Role::Admin], "publish rates")?;
    let published = state.services.lots().publish_rates(lot, body.rates).await?;
    Ok(Json(Published { published }))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct SpotQuery {
    lot_id: LotId,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    vehicle_type: VehicleType,
    #[serde(default)]
    near: Option<String>,
}

/// Spots free for the whole window (no login needed); nearest to `near` or to the calling
/// driver's workplace first, within the best fit.
#[utoipa::path(
    get,
    path = "/v1/parkingspots",
    summary = "Spots free for the whole window, best fit then nearest first; answered from the in-memory availability index",
    params(
        ("lot-id" = i64, Query, description = "lot id", minimum = 1),
        ("start-at" = chrono::DateTime<chrono::Utc>, Query, description = "RFC 3339 with offset"),
        ("end-at" = chrono::DateTime<chrono::Utc>, Query, description = "RFC 3339 with offset"),
        ("vehicle-type" = String, Query, description = "car, ev, motorcycle or van", pattern = "^(car|ev|motorcycle|van)$"),
        ("near" = Option<String>, Query, description = "latitude,longitude to measure distances from (default: the driver's workplace)", pattern = "^-?(90(\\.0{1,8})?|[1-8]?[0-9](\\.[0-9]{1,8})?),-?(180(\\.0{1,8})?|(1[0-7][0-9]|[1-9]?[0-9])(\\.[0-9]{1,8})?)$"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::http::wire::FreeSpots),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn free_spots(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<SpotQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let window = state
        .services
        .reservations()
        .bookable_window(q.lot_id, q.start_at, q.end_at)
        .await?;
    let near = caller.near(parse_near(q.near.as_deref())?.map(Point::pair));
    let spots = state
        .services
        .lots()
        .free_spots(q.lot_id, window, q.vehicle_type, near)
        .await?;
    Ok(Json(FreeSpots {
        lot_id: q.lot_id,
        start_at: q.start_at,
        end_at: q.end_at,
        spots,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct QuoteQuery {
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    vehicle_type: VehicleType,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct ArrivalQuery {
    at: DateTime<Utc>,
    vehicle_type: VehicleType,
}

/// The chance of a free spot on arrival (no login needed).
#[utoipa::path(
    get,
    path = "/v1/lots/{lot_id}/arrival",
    summary = "The chance of finding a free spot when arriving at a time, and whether a reservation is still possible",
    description = "From the occupancy forecast the forecast-training job publishes (the next day of hours), each hour's chance from the forecast with its own error distribution, blended with the lot's history at that hour; 0 when every spot the vehicle may use is reserved then. 409 `no_forecast` when no forecast covers the time.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
        ("at" = chrono::DateTime<chrono::Utc>, Query, description = "the arrival, RFC 3339 with offset"),
        ("vehicle-type" = String, Query, description = "car, ev, motorcycle or van", pattern = "^(car|ev|motorcycle|van)$"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::lots::ArrivalChance),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn arrival(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
    ApiQuery(q): ApiQuery<ArrivalQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .services
            .lots()
            .arrival_chance(lot, q.at, q.vehicle_type)
            .await?,
    ))
}

/// What booking a window would cost, and what the price is made of (no login needed).
#[utoipa::path(
    get,
    path = "/v1/lots/{lot_id}/quote",
    summary = "The price of booking a window now, and its stretches at each hourly rate",
    description = "The window is checked by the booking rules (in the future, within the booking horizon, 30 to 1440 minutes) and priced by the same tariff as a booking: a reservation made now for it has this `quoteCents`.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
        ("start-at" = chrono::DateTime<chrono::Utc>, Query, description = "RFC 3339 with offset"),
        ("end-at" = chrono::DateTime<chrono::Utc>, Query, description = "RFC 3339 with offset"),
        ("vehicle-type" = String, Query, description = "car, ev, motorcycle or van", pattern = "^(car|ev|motorcycle|van)$"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::reservations::Quote),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn quote(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
    ApiQuery(q): ApiQuery<QuoteQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .services
            .reservations()
            .quote_window(lot, (q.start_at, q.end_at), q.vehicle_type)
            .await?,
    ))
}
