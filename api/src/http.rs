//! The HTTP surface: routes under `/v1`, bearer-token roles, JSON in and out, and extractors
//! that turn malformed input into our error envelope instead of axum's plain-text rejections.

use crate::config::Secret;
use crate::error::Error;
use crate::metrics::{ApiMetrics, HttpLabels};
use crate::service::{CheckInRequest, ExitRequest, NewLot, ParkingService, PublishRates};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;
use warehouse_schema::LotId;

/// Who is calling, by bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Gate,
    Pricing,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub admin: Secret,
    pub gate: Secret,
    pub pricing: Secret,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub service: ParkingService,
    pub tokens: Arc<Tokens>,
    pub registry: Arc<Registry>,
    pub metrics: ApiMetrics,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/lots", get(list_lots).post(create_lot))
        .route("/v1/lots/{lot_id}", get(get_lot))
        .route("/v1/lots/{lot_id}/rates", get(get_rates).put(put_rates))
        .route("/v1/gates/{lot_id}/entries", post(entry))
        .route("/v1/gates/{lot_id}/exits", post(exit))
        .fallback(|| async { Error::NotFound("route".into()) })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// A JSON body whose rejections use our envelope (400 for syntax, 422 for shape).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(Error::Invalid(e.body_text())),
            Err(e) => Err(Error::BadRequest(e.body_text())),
        }
    }
}

/// A lot id from the path; anything but a positive integer is a 404 (no such lot).
pub struct LotPath(pub LotId);

impl<S: Send + Sync> FromRequestParts<S> for LotPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| Error::BadRequest(e.body_text()))?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(|id| Self(LotId(id)))
            .ok_or_else(|| Error::NotFound(format!("lot {raw}")))
    }
}

/// The caller's role, from `Authorization: Bearer <token>`.
pub struct Caller(pub Role);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Error::Unauthorized)?;
        let t = &state.tokens;
        [
            (Role::Admin, &t.admin),
            (Role::Gate, &t.gate),
            (Role::Pricing, &t.pricing),
        ]
        .into_iter()
        .find(|(_, secret)| secret.matches(token))
        .map(|(role, _)| Self(role))
        .ok_or(Error::Unauthorized)
    }
}

impl Caller {
    fn require(&self, allowed: &[Role], action: &'static str) -> Result<(), Error> {
        if allowed.contains(&self.0) {
            Ok(())
        } else {
            Err(Error::Forbidden(action))
        }
    }
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Error> {
    state.service.store().outbox_head().await?;
    Ok(Json(json!({ "status": "ok" })))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics encoding failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn list_lots(State(state): State<AppState>) -> Result<impl IntoResponse, Error> {
    Ok(Json(json!({ "lots": state.service.lots().await? })))
}

async fn create_lot(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewLot>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Admin], "create lots")?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_lot(body).await?),
    ))
}

async fn get_lot(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(state.service.lot(lot).await?))
}

async fn get_rates(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(state.service.rate_schedule(lot).await?))
}

async fn put_rates(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<PublishRates>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Pricing, Role::Admin], "publish rates")?;
    let published = state.service.publish_rates(lot, body.rates).await?;
    Ok(Json(json!({ "published": published })))
}

async fn entry(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<CheckInRequest>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.check_in(lot, body).await?),
    ))
}

async fn exit(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<ExitRequest>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok(Json(state.service.check_out(lot, body.session_id).await?))
}
