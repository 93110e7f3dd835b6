//! Drivers' inquiries to the operator.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::http::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

#[utoipa::path(
    post,
    path = "/v1/inquiries",
    summary = "Ask the operator something (optionally about one of the driver's reservations); admins answer in the portal and the answer arrives as a message",
    request_body = crate::services::admin::NewInquiry,
    responses(
        (status = 201, description = "OK", body = crate::services::admin::Inquiry),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn open_inquiry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::services::admin::NewInquiry>,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    let inquiry = state.services.admin().open_inquiry(user, body).await?;
    Ok((StatusCode::CREATED, Json(inquiry)))
}

#[utoipa::path(
    get,
    path = "/v1/inquiries",
    summary = "The driver's inquiries with their answers, newest first",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Inquiries),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn list_inquiries(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = caller.driver()?;
    Ok(Json(Inquiries {
        inquiries: state.services.admin().inquiries_of(user).await?,
    }))
}
