//! Reservations: booking (keyed), changes, passes, cancellation, the driver's list.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::accounts::Point;
use crate::domain::error::Error;
use crate::http::error::ApiError;
use crate::http::idempotency::Keyed;
use crate::services::reservations::{
    BookingRequest, ChangeRequest, GatePass, KeepAnswer, Near, Reservation, VehicleChoice,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, SpotId, VehicleType};

/// A booking: exactly one of `vehicleType` and `vehicleId` (one of the driver's vehicles).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = NewReservation)]
pub(super) struct ReservationBody {
    #[schema(schema_with = crate::domain::schema::id)]
    lot_id: LotId,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_id)]
    spot_id: Option<SpotId>,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_vehicle_type)]
    vehicle_type: Option<VehicleType>,
    #[serde(default)]
    vehicle_id: Option<Uuid>,
    /// Without a spot: prefer the one nearest to this point (default: the workplace).
    #[serde(default)]
    near: Option<Point>,
}

/// The vehicle a request names: a type or a registered vehicle, not both.
fn vehicle_choice(
    vehicle_type: Option<VehicleType>,
    vehicle_id: Option<Uuid>,
) -> Result<Option<VehicleChoice>, ApiError> {
    match (vehicle_type, vehicle_id) {
        (Some(_), Some(_)) => {
            Err(Error::Invalid("give at most one of vehicleType and vehicleId".into()).into())
        }
        (Some(vt), None) => Ok(Some(VehicleChoice::Type(vt))),
        (None, Some(id)) => Ok(Some(VehicleChoice::Registered(id))),
        (None, None) => Ok(None),
    }
}

#[utoipa::path(
    post,
    path = "/v1/reservations",
    summary = "Reserve a spot (named, or the best free one) for a window; answers with the price quote and the gate pass",
    params(
        ("Idempotency-Key" = String, Header, description = "the same key with the same request returns the first answer again; with another request it is refused (422)", min_length = 1, max_length = 200, pattern = "^[!-~]+$"),
    ),
    request_body = crate::http::reservations::ReservationBody,
    responses(
        (status = 201, description = "OK", body = crate::http::wire::ReservationWithPass),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn create_reservation(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Keyed<ReservationBody>,
) -> Result<Response, ApiError> {
    let user = caller.driver()?;
    let (caller, state) = (&caller, &state);
    // The answer to a booking made: kept under the key in the booking's change, and sent.
    let answer = |reservation: &Reservation, pass: Option<&GatePass>| {
        json!(ReservationWithPass {
            reservation_id: reservation.id,
            reservation: reservation.clone(),
            pass: pass.cloned(),
        })
    };
    let answer = &answer;
    keyed
        .run_in_change(&state.services, user, |body, key, fingerprint| async move {
            let exactly_one =
                || Error::Invalid("give exactly one of vehicleType and vehicleId".into());
            if body.vehicle_type.is_some() && body.vehicle_id.is_some() {
                return Err(exactly_one().into());
            }
            let vehicle =
                vehicle_choice(body.vehicle_type, body.vehicle_id)?.ok_or_else(exactly_one)?;
            let req = BookingRequest {
                lot_id: body.lot_id,
                spot_id: body.spot_id,
                start_at: body.start_at,
                end_at: body.end_at,
                vehicle,
                near: Near::Known(caller.near(body.near.map(Point::pair))),
            };
            let kept = |r: &Reservation, pass: &GatePass| {
                (
                    StatusCode::CREATED.as_u16(),
                    answer(r, Some(pass)).to_string(),
                )
            };
            let keep = fingerprint.as_deref().map(|fingerprint| KeepAnswer {
                fingerprint,
                render: &kept,
            });
            let (reservation, pass) = state
                .services
                .reservations()
                .book_keeping(user, req, &key, keep.as_ref())
                .await?;
            Ok((StatusCode::CREATED, answer(&reservation, pass.as_ref())))
        })
        .await
}

/// A change before the start: at least one field, at most one of `vehicleType` and
/// `vehicleId`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ReservationChange)]
pub(super) struct ChangeBody {
    #[serde(default)]
    start_at: Option<DateTime<Utc>>,
    #[serde(default)]
    end_at: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_vehicle_type)]
    vehicle_type: Option<VehicleType>,
    #[serde(default)]
    vehicle_id: Option<Uuid>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_id)]
    spot_id: Option<SpotId>,
    #[serde(default)]
    near: Option<Point>,
}

#[utoipa::path(
    patch,
    path = "/v1/reservations/{reservation_id}",
    summary = "Change window, vehicle or spot before the start, with the same no-overlap guarantee",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
    ),
    request_body = crate::http::reservations::ChangeBody,
    responses(
        (status = 200, description = "OK", body = crate::services::reservations::Reservation),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn modify_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
    ApiJson(body): ApiJson<ChangeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    let change = ChangeRequest {
        start_at: body.start_at,
        end_at: body.end_at,
        vehicle: vehicle_choice(body.vehicle_type, body.vehicle_id)?,
        spot_id: body.spot_id,
        near: Near::Known(caller.near(body.near.map(Point::pair))),
    };
    Ok(Json(
        state
            .services
            .reservations()
            .change(user, ReservationId(id), change)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct ExtensionQuery {
    end_at: DateTime<Utc>,
}

#[utoipa::path(
    get,
    path = "/v1/reservations/{reservation_id}/extension",
    summary = "What extending a booking or a stay in progress to a later end would cost, and whether its spot stays free",
    description = "The extra time is priced at the rates in force; the booked time keeps its price. When the spot is reserved by someone else within the extra time, a booking whose car is not in yet is offered spots free for the whole longer window.",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
        ("end-at" = chrono::DateTime<chrono::Utc>, Query, description = "the new end, RFC 3339 with offset"),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::reservations::ExtensionPreview),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn extension_preview(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
    ApiQuery(q): ApiQuery<ExtensionQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(
        state
            .services
            .reservations()
            .extension_preview(user, ReservationId(id), q.end_at)
            .await?,
    ))
}

/// An extension: the new end, and (before the car is in) another spot for the whole window.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Extension)]
pub(super) struct ExtensionBody {
    end_at: DateTime<Utc>,
    /// One of the preview's alternatives, when the reservation's own spot is taken.
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_id)]
    spot_id: Option<SpotId>,
}

#[utoipa::path(
    post,
    path = "/v1/reservations/{reservation_id}/extension",
    summary = "Extend a booking or a stay in progress to a later end, never overlapping another booking",
    description = "The extra time is priced as the preview says and added to the quote: an unpaid booking pays the new total, a paid one or a stay in progress pays it at the exit (`dueCents`). The pass follows the new end.",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
        ("Idempotency-Key" = String, Header, description = "the same key with the same request returns the first answer again; with another request it is refused (422)", min_length = 1, max_length = 200, pattern = "^[!-~]+$"),
    ),
    request_body = crate::http::reservations::ExtensionBody,
    responses(
        (status = 200, description = "OK", body = crate::http::wire::ExtensionDone),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn extend_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
    keyed: Keyed<ExtensionBody>,
) -> Result<Response, ApiError> {
    let user = caller.driver()?;
    let state = &state;
    keyed
        .run(&state.services, user, |body, _key| async move {
            let done = state
                .services
                .reservations()
                .extend(user, ReservationId(id), body.end_at, body.spot_id)
                .await?;
            let out = ExtensionDone {
                reservation: done.reservation,
                pass: done.pass,
                extra_cents: done.extra_cents,
                settlement: done.settlement,
            };
            Ok((StatusCode::OK, json!(out)))
        })
        .await
}

#[utoipa::path(
    get,
    path = "/v1/reservations/{reservation_id}/pass/qr",
    summary = "The gate pass as a QR code (SVG, black on white, with its quiet zone)",
    description = "The same pass as `/pass`, drawn for a phone's screen: a gate's camera or scanner reads it. A reservation that can no longer open a gate has no pass (409).",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
    ),
    responses(
        (status = 200, description = "OK", content_type = "image/svg+xml", body = String),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn get_pass_qr(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    let pass = state
        .services
        .reservations()
        .gate_pass(user, ReservationId(id))
        .await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "private, no-store"),
        ],
        qr_svg(&pass.pass)?,
    ))
}

/// `text` as a QR code in SVG: error correction M, a quiet zone, black modules on white. A
/// pass is a few hundred ASCII characters, and a code holds 2,331 at level M.
pub(super) fn qr_svg(text: &str) -> Result<String, Error> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|_| {
            Error::conflict("pass_unavailable", "this pass cannot be drawn as a QR code")
        })?;
    Ok(code
        .render::<svg::Color>()
        .min_dimensions(320, 320)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[utoipa::path(
    get,
    path = "/v1/reservations/{reservation_id}/pass",
    summary = "The signed gate pass (QR/NFC) and its entry window",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::reservations::GatePass),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn get_pass(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(
        state
            .services
            .reservations()
            .gate_pass(user, ReservationId(id))
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Page {
    #[serde(default = "first_page")]
    page: u32,
    #[serde(default = "page_size")]
    per_page: u32,
}

pub(super) fn first_page() -> u32 {
    1
}

pub(super) fn page_size() -> u32 {
    20
}

#[utoipa::path(
    get,
    path = "/v1/reservations",
    summary = "The driver's reservations, latest start first",
    params(
        ("page" = Option<i64>, Query, description = "from 1", minimum = 1, maximum = 4294967295.0),
        ("perPage" = Option<i64>, Query, description = "1 to 100", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "OK", body = crate::http::wire::ReservationPage),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn list_reservations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    if p.page == 0 || !(1..=100).contains(&p.per_page) {
        return Err(Error::Invalid("page starts at 1; perPage is 1 to 100".into()).into());
    }
    let (items, total) = state
        .services
        .reservations()
        .reservations_of(user, p.page, p.per_page)
        .await?;
    Ok(Json(ReservationPage {
        items,
        page: p.page,
        per_page: p.per_page,
        total,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/reservations/{reservation_id}",
    summary = "One of the driver's reservations (others' are 404)",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::reservations::Reservation),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn get_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(
        state
            .services
            .reservations()
            .reservation_of(user, ReservationId(id))
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/reservations/{reservation_id}/refund",
    summary = "What cancelling the reservation now would refund, by the cancellation policy",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::reservations::RefundQuote),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn refund_if_cancelled(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(
        state
            .services
            .reservations()
            .refund_if_cancelled(user, ReservationId(id))
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/reservations/{reservation_id}/cancel",
    summary = "Cancel: answers with a cancellation id",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
    ),
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Cancellation),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn cancel_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    let cancelled = state
        .services
        .reservations()
        .cancel_reservation(user, ReservationId(id))
        .await?;
    let r = cancelled.reservation;
    Ok(Json(Cancellation {
        reservation_id: r.id,
        cancellation_id: r.cancellation_id,
        status: r.status,
        refunded_cents: cancelled.refunded_cents,
        currency: r.currency,
    }))
}
