//! The HTTP surface: routes under `/v1`, bearer-token roles, JSON in and out, and extractors
//! that turn malformed input into our error envelope instead of axum's plain-text rejections.

use crate::accounts::{Accounts, Credentials, NewVehicle, Point};
use crate::config::Secret;
use crate::error::Error;
use crate::gates::{GateEntry, GateExit};
use crate::idempotency::Keyed;
use crate::metrics::{ApiMetrics, HttpLabels};
use crate::reservations::{NewReservation, ReservationChange, VehicleRef};
use crate::service::{NewLot, ParkingService, PublishRates};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, SpotId, UserId, VehicleType};

/// Who is calling: staff and services by static bearer token, drivers (and admin accounts) by
/// access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Gate,
    Pricing,
    Driver,
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
    pub accounts: Accounts,
    pub tokens: Arc<Tokens>,
    pub registry: Arc<Registry>,
    pub metrics: ApiMetrics,
    /// Management's usage report for the admin portal, where this process can read the lake.
    pub reports: Option<Arc<dyn crate::portal::ReportPages>>,
    /// Peers whose `X-Forwarded-For` is believed ([`client_address`]).
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/accounts", post(register))
        .route("/v1/sessions", post(login))
        .route("/v1/sessions/refresh", post(refresh))
        .route("/openapi.json", get(crate::openapi::document))
        .route("/docs", get(crate::openapi::docs_page))
        .route("/v1/vehicles", get(list_vehicles).post(add_vehicle))
        .route("/v1/me/workplace", put(set_workplace).get(get_workplace))
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/me", delete(delete_me))
        .route("/v1/me/balance", get(get_balance))
        .route(
            "/v1/me/notification-preferences",
            get(get_preferences).put(put_preferences),
        )
        .route("/v1/me/balance/top-ups", post(top_up))
        .route(
            "/v1/reservations/{reservation_id}/payments",
            post(pay_reservation),
        )
        .route("/v1/payments/webhook", post(payment_webhook))
        .route("/v1/waitlist", get(list_waitlist).post(join_waitlist))
        .route("/v1/waitlist/{entry_id}", delete(withdraw_waitlist))
        .route("/v1/inquiries", get(list_inquiries).post(open_inquiry))
        .route("/v1/me/export", get(export_me))
        .route("/v1/lots", get(list_lots).post(create_lot))
        .route("/v1/lots/{lot_id}", get(get_lot))
        .route("/v1/lots/{lot_id}/rates", get(get_rates).put(put_rates))
        .route("/v1/parkingspots", get(free_spots))
        .route(
            "/v1/reservations",
            get(list_reservations).post(create_reservation),
        )
        .route(
            "/v1/reservations/{reservation_id}",
            get(get_reservation).patch(modify_reservation),
        )
        .route("/v1/reservations/{reservation_id}/pass", get(get_pass))
        .route(
            "/v1/reservations/{reservation_id}/cancel",
            post(cancel_reservation),
        )
        .route("/v1/gates/{lot_id}/entries", post(entry))
        .route("/v1/gates/{lot_id}/exits", post(exit))
        .merge(crate::portal::router(state.clone()))
        .fallback(|| async { Error::NotFound("route".into()) })
        .layer(middleware::map_response(envelope_framework_rejections))
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

/// The framework's own error responses (405 for a method a route lacks, 413 past the body
/// limit, any plain-text rejection) in our JSON envelope. Our handlers' errors are JSON already
/// and the portal's pages are HTML: both pass as they are.
async fn envelope_framework_rejections(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this path does not take that method (see the Allow header)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "this content type is not accepted here",
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request was refused"),
    };
    let (mut parts, _) = response.into_parts();
    let mut enveloped = Error::rejected(status, code, message).into_response();
    // Keep the framework's headers (Allow on a 405), with our body's type and length.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    for (name, value) in &parts.headers {
        enveloped.headers_mut().insert(name.clone(), value.clone());
    }
    enveloped
}

/// A JSON body whose rejections use our envelope: 400 for text that is not JSON, 413 past the
/// body limit, 415 without a JSON content type, 422 for JSON of the wrong shape (naming the
/// field, never our type names).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Parsed as a JSON value first, so syntax is the only 400 and every type error (a
        // number where a name belongs, an array where an object belongs) is the same 422.
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            Err(e) => return Err(json_rejection(e)),
        };
        from_json_value(value).map(Self)
    }
}

/// Our envelope for axum's own JSON rejections.
fn json_rejection(e: JsonRejection) -> Error {
    let status = e.status();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Error::rejected(
            status,
            "payload_too_large",
            "the request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::rejected(
            status,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        _ => Error::BadRequest(format!("the body is not valid JSON: {}", source_of(&e))),
    }
}

/// The innermost cause of a rejection (serde_json's line and column), without axum's prefix.
fn source_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// `T` from a JSON object; anything else, or a field of the wrong type, is a 422 that names
/// the field.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    if !value.is_object() {
        return Err(Error::Invalid("the body must be a JSON object".into()));
    }
    serde_path_to_error::deserialize(integral_numbers(value)).map_err(|e| {
        let path = field_path(e.path());
        let message = plain_serde_message(&e.inner().to_string());
        Error::Invalid(if path.is_empty() {
            message
        } else {
            format!("`{path}`: {message}")
        })
    })
}

/// JSON does not tell `5` from `5.0`, and neither does JSON Schema's `integer`: a number with
/// no fractional part is read as an integer wherever one is expected.
fn integral_numbers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A field path as a client wrote it: `rates[0].band`, `spots` (a map key's own name is
/// not known to the deserializer, so it is left out).
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// serde's message without our Rust type names: "expected struct Point with 2 elements"
/// becomes "expected an object".
pub(crate) fn plain_serde_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("struct ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "struct ".len()..];
        let name_end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_end == 0 {
            out.push_str("struct ");
            rest = after;
            continue;
        }
        out.push_str("an object");
        rest = &after[name_end..];
        if let Some(tail) = rest.strip_prefix(" with ") {
            let digits = tail
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(tail.len());
            let unit = &tail[digits..];
            if digits > 0 {
                for word in [" elements", " element"] {
                    if let Some(after_unit) = unit.strip_prefix(word) {
                        rest = after_unit;
                        break;
                    }
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// Query parameters whose rejections use our envelope (422).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| Error::Invalid(plain_serde_message(&source_of(&e))))
    }
}

/// One path segment parsed as `T`; anything unparsable is a 404 (no such resource).
pub struct Id<T>(pub T);

impl<S: Send + Sync, T: std::str::FromStr> FromRequestParts<S> for Id<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| Error::BadRequest(e.body_text()))?;
        raw.parse::<T>().map(Self).map_err(|_| Error::NotFound(raw))
    }
}

/// A lot id from the path; anything but a positive integer is a 404 (no such lot).
pub struct LotPath(pub LotId);

impl<S: Send + Sync> FromRequestParts<S> for LotPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Id(id) = Id::<i64>::from_request_parts(parts, state).await?;
        if id > 0 {
            Ok(Self(LotId(id)))
        } else {
            Err(Error::NotFound(format!("lot {id}")))
        }
    }
}

/// The client address, for per-client login limits ("unknown" when served without
/// connection info): the peer, or what a trusted proxy says in `X-Forwarded-For`.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(Self(client_address(
            peer,
            &forwarded,
            &state.trusted_proxies,
        )))
    }
}

/// The client behind `peer`: when the peer is a trusted proxy, the right-most address of
/// `X-Forwarded-For` (all its headers, in order) that is not itself a trusted proxy — the
/// left part of the header is whatever the client wrote and is never believed.
pub fn client_address(
    peer: Option<std::net::IpAddr>,
    forwarded: &[&str],
    trusted: &[std::net::IpAddr],
) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let hops: Vec<&str> = forwarded
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip.to_string(),
            // An unreadable hop: the chain cannot be followed past it.
            Err(_) => return peer.to_string(),
        }
    }
    peer.to_string()
}

/// The caller's role (and account, for drivers), from `Authorization: Bearer <token>`.
pub struct Caller {
    pub role: Role,
    pub user: Option<UserId>,
}

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
            .and_then(bearer_token)
            .ok_or(Error::Unauthorized)?;
        let t = &state.tokens;
        if let Some(role) = [
            (Role::Admin, &t.admin),
            (Role::Gate, &t.gate),
            (Role::Pricing, &t.pricing),
        ]
        .into_iter()
        .find(|(_, secret)| secret.matches(token))
        .map(|(role, _)| role)
        {
            return Ok(Self { role, user: None });
        }
        let p = state.accounts.authenticate(token).await?;
        Ok(Self {
            role: if p.admin { Role::Admin } else { Role::Driver },
            user: Some(p.user),
        })
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme name is case-insensitive
/// (RFC 7235 section 2.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller when an `Authorization` header is present; `None` for anonymous calls. A header
/// that is present but invalid is still refused (401), never silently ignored.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            Ok(Self(Some(Caller::from_request_parts(parts, state).await?)))
        } else {
            Ok(Self(None))
        }
    }
}

impl MaybeCaller {
    /// The point to measure distances from: the one given, else the driver's workplace.
    async fn near(&self, state: &AppState, given: Option<Point>) -> Result<Option<Point>, Error> {
        if given.is_some() {
            return Ok(given);
        }
        match self.0.as_ref().and_then(|c| c.user) {
            Some(user) => state.accounts.workplace(user).await,
            None => Ok(None),
        }
    }
}

impl Caller {
    fn require(&self, allowed: &[Role], action: &'static str) -> Result<(), Error> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::Forbidden(action))
        }
    }

    /// Who the audit log names for this caller's admin actions.
    fn actor(&self) -> crate::admin::Actor {
        match self.user {
            Some(user) => crate::admin::Actor::account(user),
            None => crate::admin::Actor::admin_token(),
        }
    }

    /// The driver's own account (reservations and vehicles belong to one).
    fn driver(&self) -> Result<UserId, Error> {
        match (self.role, self.user) {
            (Role::Driver | Role::Admin, Some(user)) => Ok(user),
            _ => Err(Error::Forbidden("act for a driver")),
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

async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, Error> {
    let user = state.accounts.register(body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "userId": user }))))
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(state.accounts.login(body, &ip).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, Error> {
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?))
}

async fn add_vehicle(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewVehicle>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok((
        StatusCode::CREATED,
        Json(state.accounts.add_vehicle(user, body).await?),
    ))
}

async fn list_vehicles(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        json!({ "vehicles": state.accounts.vehicles(user).await? }),
    ))
}

async fn set_workplace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(at): ApiJson<Point>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    state.accounts.set_workplace(user, at).await?;
    Ok(Json(json!({ "workplace": at })))
}

async fn get_workplace(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        json!({ "workplace": state.accounts.workplace(user).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NearQuery {
    #[serde(default)]
    near: Option<String>,
}

fn parse_near(raw: Option<&str>) -> Result<Option<Point>, Error> {
    raw.map(str::parse).transpose()
}

/// Every lot with free spots and the rate now; with `near=lat,lng` (or a driver's saved
/// workplace) each with its distance, nearest first.
async fn list_lots(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<NearQuery>,
) -> Result<impl IntoResponse, Error> {
    let near = caller.near(&state, parse_near(q.near.as_deref())?).await?;
    let lots = match near {
        Some(p) => state.service.lots_near(p.pair()).await?,
        None => state.service.lots().await?,
    };
    Ok(Json(json!({ "lots": lots })))
}

async fn create_lot(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewLot>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Admin], "create lots")?;
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .service
                .create_lot_by(Some(&caller.actor()), body)
                .await?,
        ),
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

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SpotQuery {
    lot_id: LotId,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    vehicle_type: VehicleType,
    #[serde(default)]
    near: Option<String>,
}

/// Spots free for the whole window (no login needed); nearest to `near` or to the calling
/// driver's workplace first, within the best fit.
async fn free_spots(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<SpotQuery>,
) -> Result<impl IntoResponse, Error> {
    let window = state
        .service
        .bookable_window(q.lot_id, q.start_at, q.end_at)
        .await?;
    let near = caller.near(&state, parse_near(q.near.as_deref())?).await?;
    let spots = state
        .service
        .free_spots(q.lot_id, window, q.vehicle_type, near.map(Point::pair))
        .await?;
    Ok(Json(
        json!({ "lotId": q.lot_id, "startAt": q.start_at, "endAt": q.end_at, "spots": spots }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReservationBody {
    lot_id: LotId,
    #[serde(default)]
    spot_id: Option<SpotId>,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    #[serde(default)]
    vehicle_type: Option<VehicleType>,
    #[serde(default)]
    vehicle_id: Option<Uuid>,
    /// Without a spot: prefer the one nearest to this point (default: the workplace).
    #[serde(default)]
    near: Option<Point>,
}

/// The driver's vehicle `id` as a reservation names it.
async fn own_vehicle(
    state: &AppState,
    user: UserId,
    id: Uuid,
) -> Result<(VehicleRef, VehicleType), Error> {
    let v = state.accounts.vehicle(user, id).await?;
    Ok((
        VehicleRef {
            id: v.id,
            plate: v.plate,
        },
        v.vehicle_type,
    ))
}

async fn create_reservation(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Keyed<ReservationBody>,
) -> Result<Response, Error> {
    let user = caller.driver()?;
    let state = &state;
    keyed
        .run(&state.service, user, |body, key| async move {
            let (vehicle_type, vehicle) = match (body.vehicle_type, body.vehicle_id) {
                (Some(vt), None) => (vt, None),
                (None, Some(id)) => {
                    let (v, vt) = own_vehicle(state, user, id).await?;
                    (vt, Some(v))
                }
                _ => {
                    return Err(Error::Invalid(
                        "give exactly one of vehicleType and vehicleId".into(),
                    ));
                }
            };
            let near = MaybeCaller(Some(caller)).near(state, body.near).await?;
            let req = NewReservation {
                lot_id: body.lot_id,
                spot_id: body.spot_id,
                start_at: body.start_at,
                end_at: body.end_at,
                vehicle_type,
                vehicle,
                near: near.map(Point::pair),
            };
            let (reservation, pass) = state.service.reserve_with_pass(user, req, &key).await?;
            let mut out = json!(reservation);
            out["reservationId"] = json!(reservation.id);
            if let Some(pass) = pass {
                out["pass"] = json!(pass);
            }
            Ok((StatusCode::CREATED, out))
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    start_at: Option<DateTime<Utc>>,
    #[serde(default)]
    end_at: Option<DateTime<Utc>>,
    #[serde(default)]
    vehicle_type: Option<VehicleType>,
    #[serde(default)]
    vehicle_id: Option<Uuid>,
    #[serde(default)]
    spot_id: Option<SpotId>,
    #[serde(default)]
    near: Option<Point>,
}

async fn modify_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
    ApiJson(body): ApiJson<ChangeBody>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    if body.vehicle_type.is_some() && body.vehicle_id.is_some() {
        return Err(Error::Invalid(
            "give at most one of vehicleType and vehicleId".into(),
        ));
    }
    let vehicle = match body.vehicle_id {
        Some(v) => Some(own_vehicle(&state, user, v).await?),
        None => None,
    };
    let near = MaybeCaller(Some(caller)).near(&state, body.near).await?;
    let change = ReservationChange {
        start_at: body.start_at,
        end_at: body.end_at,
        vehicle_type: body.vehicle_type,
        vehicle,
        spot_id: body.spot_id,
        near: near.map(Point::pair),
    };
    Ok(Json(
        state
            .service
            .modify_reservation(user, ReservationId(id), change)
            .await?,
    ))
}

async fn get_pass(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        state.service.gate_pass(user, ReservationId(id)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Inbox {
    #[serde(default = "inbox_size")]
    limit: i64,
}

fn inbox_size() -> i64 {
    50
}

/// A payment that did not go through is a 402 with its reason; the same key gives the same
/// answer again.
fn paid(p: crate::payments::PaymentRecord) -> Result<(StatusCode, serde_json::Value), Error> {
    if p.status == "captured" {
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
    })
}

async fn pay_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
    keyed: Keyed<crate::payments::PaymentMethod>,
) -> Result<Response, Error> {
    let user = caller.driver()?;
    let service = &state.service;
    keyed
        .run(service, user, |method, key| async move {
            paid(
                service
                    .pay_reservation(user, ReservationId(id), method, &key)
                    .await?,
            )
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopUpBody {
    amount_cents: i64,
    payment: crate::payments::PaymentMethod,
    /// The balance's currency (its first top-up fixes it; later ones must match).
    #[serde(default)]
    currency: Option<String>,
}

async fn top_up(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Keyed<TopUpBody>,
) -> Result<Response, Error> {
    let user = caller.driver()?;
    let service = &state.service;
    keyed
        .run(service, user, |body, key| async move {
            paid(
                service
                    .top_up(user, body.amount_cents, body.currency, body.payment, &key)
                    .await?,
            )
        })
        .await
}

async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        crate::delivery::preferences(state.service.store(), user).await?,
    ))
}

async fn put_preferences(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<crate::delivery::Preferences>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    crate::delivery::set_preferences(state.service.store(), user, p).await?;
    Ok(Json(p))
}

async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(json!({ "cents": state.service.balance(user).await? })))
}

/// The gateway's signed events (`X-Gateway-Signature`: HMAC-SHA256 of the body, base64url).
async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, Error> {
    let signature = headers
        .get("x-gateway-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthorized)?;
    let handled = state.service.gateway_webhook(&body, signature).await?;
    Ok(Json(json!({ "handled": handled })))
}

/// Everything stored about the calling driver.
async fn export_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(state.service.export_user_data(user).await?))
}

/// Erase the calling driver's account.
async fn delete_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let erasure = state.service.erase_user(user, state.service.now()).await?;
    Ok(Json(json!({ "deleted": true, "erasure": erasure })))
}

/// The driver's in-app inbox: their messages, newest first.
async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<Inbox>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    if !(1..=100).contains(&q.limit) {
        return Err(Error::Invalid("limit is 1 to 100".into()));
    }
    let items = crate::notifications::of_user(state.service.store(), user, q.limit).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Page {
    #[serde(default = "first_page")]
    page: u32,
    #[serde(default = "page_size")]
    per_page: u32,
}

fn first_page() -> u32 {
    1
}

fn page_size() -> u32 {
    20
}

async fn list_reservations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    if p.page == 0 || !(1..=100).contains(&p.per_page) {
        return Err(Error::Invalid(
            "page starts at 1; perPage is 1 to 100".into(),
        ));
    }
    let (items, total) = state
        .service
        .reservations_of(user, p.page, p.per_page)
        .await?;
    Ok(Json(
        json!({ "items": items, "page": p.page, "perPage": p.per_page, "total": total }),
    ))
}

async fn join_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::waitlist::JoinWaitlist>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let entry = state.service.join_waitlist(user, body).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn open_inquiry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<crate::admin::NewInquiry>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let inquiry = state.service.open_inquiry(user, body).await?;
    Ok((StatusCode::CREATED, Json(inquiry)))
}

async fn list_inquiries(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        json!({ "inquiries": state.service.inquiries_of(user).await? }),
    ))
}

async fn list_waitlist(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        json!({ "items": state.service.waitlist_of(user).await? }),
    ))
}

async fn withdraw_waitlist(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    state.service.withdraw_from_waitlist(user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    Ok(Json(
        state
            .service
            .reservation_of(user, ReservationId(id))
            .await?,
    ))
}

async fn cancel_reservation(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id<Uuid>,
) -> Result<impl IntoResponse, Error> {
    let user = caller.driver()?;
    let r = state
        .service
        .cancel_reservation(user, ReservationId(id))
        .await?;
    Ok(Json(
        json!({ "reservationId": r.id, "cancellationId": r.cancellation_id, "status": r.status }),
    ))
}

async fn entry(
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

async fn exit(
    State(state): State<AppState>,
    caller: Caller,
    LotPath(lot): LotPath,
    ApiJson(body): ApiJson<GateExit>,
) -> Result<impl IntoResponse, Error> {
    caller.require(&[Role::Gate, Role::Admin], "open gates")?;
    Ok(Json(state.service.leave(lot, body).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // Straight from a client: its own header is ignored.
        assert_eq!(
            client_address(Some(ip("203.0.113.9")), &["1.2.3.4"], &proxies),
            "203.0.113.9"
        );
        // Through two proxies: the right-most untrusted hop; a spoofed left part is ignored.
        assert_eq!(
            client_address(
                Some(ip("10.0.0.1")),
                &["6.6.6.6, 198.51.100.7", "10.0.0.2"],
                &proxies
            ),
            "198.51.100.7"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &[], &proxies),
            "10.0.0.1"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &["junk"], &proxies),
            "10.0.0.1"
        );
        assert_eq!(client_address(None, &["1.2.3.4"], &proxies), "unknown");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn serde_messages_name_no_rust_types() {
        assert_eq!(
            plain_serde_message("invalid length 1, expected struct Point with 2 elements"),
            "invalid length 1, expected an object"
        );
        assert_eq!(
            plain_serde_message("invalid type: sequence, expected struct ReservationBody"),
            "invalid type: sequence, expected an object"
        );
        assert_eq!(
            plain_serde_message("missing field `lotId`"),
            "missing field `lotId`"
        );
    }
}
