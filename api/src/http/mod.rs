//! The HTTP surface: routes under `/v1`, bearer-token roles, JSON in and out. One file per
//! resource (`accounts`, `lots`, `reservations`, `payments`, `waitlist`, `inquiries`, `gates`),
//! the extractors that turn malformed input into our error envelope in `extract`, and here the
//! router, the shared state and the layers every request passes (metrics, the envelope of the
//! framework's own rejections).

mod accounts;
pub mod error;
pub mod extract;
mod gates;
pub mod idempotency;
mod inquiries;
mod live;
mod lots;
mod monthly;
pub mod openapi;
mod pages;
mod payments;
pub mod portal;
mod reservations;
mod waitlist;
pub mod wire;

pub use error::ApiError;
pub use extract::{
    ApiJson, ApiQuery, Caller, ClientIp, Id, LotPath, MaybeCaller, client_address, from_json_value,
};

use crate::accounts::Accounts;
use crate::config::Secret;
use crate::domain::error::Error;
use crate::metrics::{ApiMetrics, HttpLabels};
use crate::services::Services;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use std::sync::Arc;

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

/// What every handler and layer reaches. One `Arc`: axum clones the state for each extractor
/// and layer that asks for it, several times a request, and a clone of the parts themselves
/// counted up (and later down) some thirty shared references, each a cache line the two cores
/// handed back and forth (3–4 % of a booking's CPU in `bench api`'s profile).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The parts to change before serving (a copy of them if the state is shared already).
    pub fn edit(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug, Clone)]
pub struct Shared {
    pub services: Services,
    pub accounts: Accounts,
    pub tokens: Arc<Tokens>,
    pub registry: Arc<Registry>,
    pub metrics: ApiMetrics,
    /// Management's usage report for the admin portal, where this process can read the lake.
    pub reports: Option<Arc<dyn portal::ReportPages>>,
    /// Peers whose `X-Forwarded-For` is believed ([`client_address`]).
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/accounts", post(accounts::register))
        .route("/v1/sessions", post(accounts::login))
        .route("/v1/sessions/refresh", post(accounts::refresh))
        .route("/v1/sessions/revoke", post(accounts::revoke))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs_page))
        .route(
            "/v1/vehicles",
            get(accounts::list_vehicles).post(accounts::add_vehicle),
        )
        .route(
            "/v1/me/workplace",
            put(accounts::set_workplace).get(accounts::get_workplace),
        )
        .route("/v1/notifications", get(accounts::list_notifications))
        .route("/v1/notifications/live", get(live::inbox_live))
        .route("/v1/me", delete(accounts::delete_me))
        .route("/v1/me/balance", get(payments::get_balance))
        .route(
            "/v1/me/notification-preferences",
            get(accounts::get_preferences).put(accounts::put_preferences),
        )
        .route("/v1/me/balance/top-ups", post(payments::top_up))
        .route(
            "/v1/reservations/{reservation_id}/payments",
            post(payments::pay_reservation),
        )
        .route("/v1/payments/webhook", post(payments::payment_webhook))
        .route(
            "/v1/waitlist",
            get(waitlist::list_waitlist).post(waitlist::join_waitlist),
        )
        .route(
            "/v1/waitlist/{entry_id}",
            delete(waitlist::withdraw_waitlist),
        )
        .route(
            "/v1/inquiries",
            get(inquiries::list_inquiries).post(inquiries::open_inquiry),
        )
        .route("/v1/me/export", get(accounts::export_me))
        .route("/v1/lots", get(lots::list_lots).post(lots::create_lot))
        .route("/v1/lots/{lot_id}", get(lots::get_lot))
        .route("/v1/lots/{lot_id}/live", get(live::lot_live))
        .route("/v1/lots/{lot_id}/quote", get(lots::quote))
        .route("/v1/lots/{lot_id}/arrival", get(lots::arrival))
        .route("/v1/live", get(live::lots_live))
        .route(
            "/v1/lots/{lot_id}/rates",
            get(lots::get_rates).put(lots::put_rates),
        )
        .route("/v1/parkingspots", get(lots::free_spots))
        .route(
            "/v1/reservations",
            get(reservations::list_reservations).post(reservations::create_reservation),
        )
        .route(
            "/v1/reservations/{reservation_id}",
            get(reservations::get_reservation).patch(reservations::modify_reservation),
        )
        .route(
            "/v1/reservations/{reservation_id}/pass",
            get(reservations::get_pass),
        )
        .route(
            "/v1/reservations/{reservation_id}/pass/qr",
            get(reservations::get_pass_qr),
        )
        .route(
            "/v1/reservations/{reservation_id}/extension",
            get(reservations::extension_preview).post(reservations::extend_reservation),
        )
        .route(
            "/v1/reservations/{reservation_id}/refund",
            get(reservations::refund_if_cancelled),
        )
        .route(
            "/v1/reservations/{reservation_id}/cancel",
            post(reservations::cancel_reservation),
        )
        .route(
            "/v1/lots/{lot_id}/pass-products",
            get(monthly::list_products).post(monthly::create_product),
        )
        .route(
            "/v1/lots/{lot_id}/pass-products/{product_id}",
            delete(monthly::retire_product),
        )
        .route(
            "/v1/me/monthly-passes",
            get(monthly::list_passes).post(monthly::buy_pass),
        )
        .route(
            "/v1/me/monthly-passes/{pass_id}",
            get(monthly::get_pass).delete(monthly::cancel_pass),
        )
        .route(
            "/v1/me/monthly-passes/{pass_id}/qr",
            get(monthly::get_pass_qr),
        )
        .route("/v1/gates/{lot_id}/entries", post(gates::entry))
        .route("/v1/gates/{lot_id}/exits", post(gates::exit))
        .merge(portal::router(state.clone()))
        .merge(pages::routes())
        .fallback(|| async { ApiError::from(Error::NotFound("route".into())) })
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
    let mut enveloped = ApiError::rejected(status, code, message).into_response();
    // Keep the framework's headers (Allow on a 405), with our body's type and length.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    for (name, value) in &parts.headers {
        enveloped.headers_mut().insert(name.clone(), value.clone());
    }
    enveloped
}

#[utoipa::path(
    get,
    path = "/healthz",
    summary = "Liveness and database check",
    responses(
        (status = 200, description = "OK", body = crate::http::wire::Health),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
async fn healthz(State(state): State<AppState>) -> Result<Json<wire::Health>, ApiError> {
    state.services.store().outbox_head().await?;
    Ok(Json(wire::Health { status: "ok" }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    summary = "Prometheus metrics (OpenMetrics text)",
    responses(
        (status = 200, description = "OK", body = String, content_type = "application/openmetrics-text"),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
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

/// The OpenAPI document, derived from the code: each operation from its handler's
/// `#[utoipa::path]` (next to the handler, so route and description are written together),
/// each schema from the Rust type of the body (utoipa's `ToSchema`), the limits the server
/// enforces from `domain::schema`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "parkflow operational API",
        description = "Lots, availability, reservations that never double-book, gate passes, entries and exits. Times are RFC 3339 with an offset. Every error is {\"error\": {\"code\", \"message\"}} with a 4xx for bad input."
    ),
    paths(
        openapi::docs::docs_page,
        healthz,
        metrics,
        openapi::document,
        accounts::register,
        gates::entry,
        gates::exit,
        inquiries::list_inquiries,
        inquiries::open_inquiry,
        lots::list_lots,
        lots::create_lot,
        lots::get_lot,
        live::lot_live,
        lots::quote,
        live::lots_live,
        live::inbox_live,
        lots::get_rates,
        lots::put_rates,
        accounts::delete_me,
        payments::get_balance,
        payments::top_up,
        accounts::export_me,
        accounts::get_preferences,
        accounts::put_preferences,
        accounts::get_workplace,
        accounts::set_workplace,
        accounts::list_notifications,
        lots::free_spots,
        payments::payment_webhook,
        reservations::list_reservations,
        reservations::create_reservation,
        reservations::get_reservation,
        reservations::modify_reservation,
        reservations::cancel_reservation,
        reservations::get_pass,
        reservations::get_pass_qr,
        reservations::refund_if_cancelled,
        reservations::extension_preview,
        lots::arrival,
        reservations::extend_reservation,
        payments::pay_reservation,
        accounts::login,
        accounts::refresh,
        accounts::revoke,
        accounts::list_vehicles,
        accounts::add_vehicle,
        waitlist::list_waitlist,
        waitlist::join_waitlist,
        waitlist::withdraw_waitlist,
        monthly::list_products,
        monthly::create_product,
        monthly::retire_product,
        monthly::buy_pass,
        monthly::list_passes,
        monthly::get_pass,
        monthly::cancel_pass,
        monthly::get_pass_qr,
    ),
    modifiers(&SecuritySchemes),
    components(schemas(
    wire::ErrorBody,
    crate::accounts::Credentials,
    accounts::RefreshBody,
    wire::UserCreated,
    crate::accounts::SessionTokens,
    crate::accounts::Point,
    wire::Workplace,
    crate::accounts::NewVehicle,
    wire::Vehicles,
    crate::services::NewLot,
    wire::Lots,
    crate::services::PublishRates,
    wire::Published,
    crate::services::RateSchedule,
    crate::notifications::Preferences,
    wire::Notifications,
    wire::Balance,
    crate::services::waitlist::JoinWaitlist,
    wire::WaitlistEntries,
    crate::services::admin::NewInquiry,
    wire::Inquiries,
    crate::services::payments::PaymentMethod,
    payments::TopUpBody,
    crate::services::payments::PaymentRecord,
    crate::services::payments::WebhookEvent,
    wire::Handled,
    reservations::ReservationBody,
    reservations::ChangeBody,
    wire::ReservationWithPass,
    wire::ExtensionDone,
    reservations::ExtensionBody,
    crate::services::reservations::ExtensionPreview,
    crate::services::reservations::SpotChoice,
    crate::services::reservations::Settlement,
    wire::ReservationPage,
    wire::Cancellation,
    crate::services::gates::GateEntry,
    crate::services::gates::GateExit,
    crate::services::CheckInReceipt,
    crate::services::ExitReceipt,
    wire::FreeSpots,
    wire::Erased,
    wire::Health,
    crate::services::monthly::NewProduct,
    crate::services::monthly::Product,
    crate::services::monthly::BuyPass,
    crate::services::monthly::MonthlyPass,
    wire::PassProducts,
    wire::MonthlyPasses,
))
)]
pub(crate) struct ApiDoc;

/// Who may call what: a driver's access token, or a static staff token.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "driver",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("access token from POST /v1/sessions"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "staff",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("static admin, gate or pricing token"))
                    .build(),
            ),
        );
    }
}
