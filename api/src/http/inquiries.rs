//! Drivers' inquiries to the operator.

use super::AppState;
use super::extract::*;
use super::wire::*;
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

pub(super) async fn open_inquiry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::admin::NewInquiry>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let inquiry = state.service.open_inquiry(user, body).await?;
    Ok((StatusCode::CREATED, Json(inquiry)))
}

pub(super) async fn list_inquiries(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(Inquiries {
        inquiries: state.service.inquiries_of(user).await?,
    }))
}
