//! Payments of reservations and top-ups (both keyed), the balance, the gateway's webhook.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::domain::error::Error;
use crate::http::error::ApiError;
use crate::http::idempotency::Keyed;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warehouse_schema::ReservationId;

/// A payment that did not go through is a 402 with its reason; the same key gives the same
/// answer again.
pub(super) fn paid(
    p: crate::services::payments::PaymentRecord,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    if p.status == crate::services::payments::PaymentStatus::Captured {
        return Ok((StatusCode::CREATED, json!(p)));
    }
    Err(Error::PaymentRequired {
        code: "payment_declined",
        message: format!(
            "payment {} {}: {}",
            p.id,
            p.status,
            p.reason.as_deref().unwrap_or("no reason given")
        ),
    }
    .into())
}

#[utoipa::path(
    post,
    path = "/v1/reservations/{reservation_id}/payments",
    summary = "Pay a reservation by card token, wallet token or balance (Idempotency-Key required; 402 when declined)",
    params(
        ("reservation_id" = String, Path, description = "reservation id", format = Uuid),
        ("Idempotency-Key" = String, Header, description = "the same key with the same request returns the first answer again; with another request it is refused (422)", min_length = 1, max_length = 200, pattern = "^[!-~]+$"),
    ),
    request_body = crate::services::payments::PaymentMethod,
    responses(
        (status = 201, description = "OK", body = crate::services::payments::PaymentRecord),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn pay_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
    keyed: Keyed<crate::services::payments::PaymentMethod>,
) -> Result<Response, ApiError> {
    let user = caller.driver()?;
    let service = &state.services;
    keyed
        .run(service, user, |method, key| async move {
            paid(
                service
                    .payments()
                    .pay_reservation(user, ReservationId(id), method, &key)
                    .await?,
            )
        })
        .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = TopUp)]
pub(super) struct TopUpBody {
    #[schema(schema_with = crate::domain::schema::top_up_cents)]
    amount_cents: i64,
    #[schema(schema_with = crate::domain::schema::top_up_payment)]
    payment: crate::services::payments::PaymentMethod,
    /// The balance's currency: the first top-up fixes it (default USD), later ones must match.
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_currency)]
    currency: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/me/balance/top-ups",
    summary = "Top up the prepaid balance by card or wallet token (Idempotency-Key required)",
    params(
        ("Idempotency-Key" = String, Header, description = "the same key with the same request returns the first answer again; with another request it is refused (422)", min_length = 1, max_length = 200, pattern = "^[!-~]+$"),
    ),
    request_body = crate::http::payments::TopUpBody,
    responses(
        (status = 201, description = "OK", body = crate::services::payments::PaymentRecord),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn top_up(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Keyed<TopUpBody>,
) -> Result<Response, ApiError> {
    let user = caller.driver()?;
    let service = &state.services;
    keyed
        .run(service, user, |body, key| async move {
            paid(
                service
                    .payments()
                    .top_up(user, body.amount_cents, body.currency, body.payment, &key)
                    .await?,
            )
        })
        .await
}

#[utoipa::path(
    get,
    path = "/v1/me/balance",
    summary = "The driver's prepaid balance",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Balance),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(Balance {
        cents: state.services.payments().balance(user).await?,
    }))
}

/// The gateway's signed events (`X-Gateway-Signature`: HMAC-SHA256 of the body, base64url).
#[utoipa::path(
    post,
    path = "/v1/payments/webhook",
    summary = "The payment gateway's signed events (X-Gateway-Signature); each event id is handled once",
    request_body = crate::services::payments::WebhookEvent,
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Handled),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let signature = headers
        .get("x-gateway-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthorized)?;
    let handled = state
        .services
        .payments()
        .gateway_webhook(&body, signature)
        .await?;
    Ok(Json(Handled { handled }))
}
