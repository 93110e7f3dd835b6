//! Gate scanners: entries and exits.

use super::extract::*;
use super::{AppState, Role};
use crate::http::error::ApiError;
use crate::services::gates::{GateEntry, GateExit};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

#[utoipa::path(
    post,
    path = "/v1/gates/{lot_id}/entries",
    summary = "A vehicle enters by pass, by plate, or as a drive-up; 409 lot_full, or entry_contended when every free spot went to vehicles entering at the same moment",
    description = "Static bearer token of: gate or admin.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
    ),
    request_body = crate::services::gates::GateEntry,
    responses(
        (status = 201, description = "OK", body = crate::services::CheckInReceipt),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("staff" = [])),
)]
pub(super) async fn entry(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<GateEntry>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok((
        StatusCode::CREATED,
        Json(state.services.gates().enter(lot, body).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/gates/{lot_id}/exits",
    summary = "A vehicle leaves (by session id, pass or plate) and is charged",
    description = "Static bearer token of: gate or admin.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
    ),
    request_body = crate::services::gates::GateExit,
    responses(
        (status = 200, description = "OK", body = crate::services::ExitReceipt),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
    security(("staff" = [])),
)]
pub(super) async fn exit(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<GateExit>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok(Json(state.services.gates().leave(lot, body).await?))
}
