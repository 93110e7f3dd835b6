//! Monthly passes: the products a lot sells (listed to anyone, defined and retired by admins),
//! and a driver's passes (buy with an Idempotency-Key, list, read, cancel at the period's end).

use super::extract::*;
use super::idempotency::Keyed;
use super::wire::*;
use super::{AppState, Role};
use crate::domain::error::Error;
use crate::http::error::ApiError;
use crate::services::monthly::{BuyPass, NewProduct};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;
use warehouse_schema::{LotId, MonthlyPassId};

#[utoipa::path(
    get,
    path = "/v1/lots/{lot_id}/pass-products",
    summary = "The monthly passes a lot sells, with the places left (no login needed)",
    params(("lot_id" = i64, Path, description = "lot id", minimum = 1)),
    responses(
        (status = 200, description = "OK", body = crate::http::wire::PassProducts),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn list_products(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(PassProducts {
        items: state.services.monthly_passes().products(lot, false).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/lots/{lot_id}/pass-products",
    summary = "Put a monthly pass on sale: days and whole hours covered, vehicle types, price, places, whether a spot is kept per holder",
    description = "Static bearer token of: admin.",
    params(("lot_id" = i64, Path, description = "lot id", minimum = 1)),
    request_body = crate::services::monthly::NewProduct,
    responses(
        (status = 201, description = "OK", body = crate::services::monthly::Product),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("staff" = [])),
)]
pub(super) async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin], "sell monthly passes")?;
    let product = state
        .services
        .monthly_passes()
        .create_product(&caller.actor(), lot, body)
        .await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(
    delete,
    path = "/v1/lots/{lot_id}/pass-products/{product_id}",
    summary = "Stop selling a monthly pass (passes held run on and renew)",
    description = "Static bearer token of: admin.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
        ("product_id" = String, Path, description = "product id", format = Uuid),
    ),
    responses(
        (status = 200, description = "OK", body = crate::services::monthly::Product),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("staff" = [])),
)]
pub(super) async fn retire_product(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path((lot, product)): axum::extract::Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin], "retire monthly passes")?;
    let lot = lot
        .parse::<i64>()
        .ok()
        .filter(|l| *l > 0)
        .map(LotId)
        .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
    let product: Uuid = product
        .parse()
        .map_err(|_| Error::NotFound(format!("pass product {product}")))?;
    Ok(Json(
        state
            .services
            .monthly_passes()
            .retire_product(&caller.actor(), lot, product)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/me/monthly-passes",
    summary = "Buy a monthly pass for one of the driver's vehicles (Idempotency-Key required); it renews each month until cancelled",
    params(
        ("Idempotency-Key" = String, Header, description = "the same key with the same request returns the first answer again; with another request it is refused (422)", min_length = 1, max_length = 200, pattern = "^[!-~]+$"),
    ),
    request_body = crate::services::monthly::BuyPass,
    responses(
        (status = 201, description = "OK", body = crate::services::monthly::MonthlyPass),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict, declined payment or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn buy_pass(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Keyed<BuyPass>,
) -> Result<Response, ApiError> {
    let user = caller.driver()?;
    let service = &state.services;
    keyed
        .run(service, user, |body, key| async move {
            let pass = service.monthly_passes().buy(user, body, &key).await?;
            Ok((StatusCode::CREATED, serde_json::json!(pass)))
        })
        .await
}

#[utoipa::path(
    get,
    path = "/v1/me/monthly-passes",
    summary = "The driver's monthly passes, newest first",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::MonthlyPasses),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn list_passes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(MonthlyPasses {
        items: state.services.monthly_passes().passes_of(user).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/me/monthly-passes/{pass_id}",
    summary = "One of the driver's monthly passes, with its gate code while active",
    params(("pass_id" = String, Path, description = "monthly pass id", format = Uuid)),
    responses(
        (status = 200, description = "OK", body = crate::services::monthly::MonthlyPass),
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
            .monthly_passes()
            .pass_of(user, MonthlyPassId(id))
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/me/monthly-passes/{pass_id}",
    summary = "Cancel a monthly pass at the end of its period: it stops renewing and runs until then",
    params(("pass_id" = String, Path, description = "monthly pass id", format = Uuid)),
    responses(
        (status = 200, description = "OK", body = crate::services::monthly::MonthlyPass),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn cancel_pass(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(
        state
            .services
            .monthly_passes()
            .cancel(user, MonthlyPassId(id))
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/me/monthly-passes/{pass_id}/qr",
    summary = "An active monthly pass's gate code as a QR code (SVG); a pass that is not active has none (409)",
    params(("pass_id" = String, Path, description = "monthly pass id", format = Uuid)),
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
        .monthly_passes()
        .pass_of(user, MonthlyPassId(id))
        .await?;
    let code = pass.pass.ok_or_else(|| {
        Error::conflict(
            "pass_unavailable",
            format!(
                "monthly pass {} is {}: it opens no gate",
                pass.id, pass.status
            ),
        )
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "private, no-store"),
        ],
        super::reservations::qr_svg(&code)?,
    ))
}
