//! Gate scanners: entries and exits.

use super::extract::*;
use super::{AppState, Role};
use crate::error::Error;
use crate::gates::{GateEntry, GateExit};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

pub(super) async fn entry(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<GateEntry>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.enter(lot, body).await?),
    ))
}

pub(super) async fn exit(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<GateExit>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok(Json(state.service.leave(lot, body).await?))
}
