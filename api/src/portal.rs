//! The admin portal at `/admin`: server-rendered pages for accounts of the admin role.
//!
//! - Sign-in with the account's e-mail and password (the same login as the API). The access and
//!   refresh tokens live in `HttpOnly; SameSite=Strict` cookies scoped to `/admin`; an expired
//!   access token is refreshed on the next request, and signing out revokes the refresh token.
//!   Form posts from another origin are refused.
//! - Pages: lots with live occupancy and the rates in force (refreshed every few seconds from
//!   `/admin/live.json`), a lot's settings and spots (close, reopen), new lots, the reservation
//!   search, drivers' inquiries and their answers, the audit log, and management's usage report
//!   (the same figures as `parkflow report`, when the process has a lake: see [`ReportPages`]).
//! - Every change goes through [`ParkingService`](crate::ParkingService) with the signed-in
//!   admin as the [`Actor`] of its audit record.
//! - Errors are pages with the error's 4xx status; a client that does not accept HTML gets the
//!   API's JSON envelope instead.

use crate::accounts::{Credentials, SessionTokens};
use crate::admin::{Actor, LotChange, ReservationQuery};
use crate::error::Error;
use crate::http::{AppState, ClientIp, LotPath};
use crate::service::NewLot;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;
use warehouse_schema::{LotId, SpotId, UserId, VehicleType};

/// Renders management's usage report for the portal. The API crate does not read the lake; the
/// binary, which does, supplies this (`parkflow serve`).
pub trait ReportPages: Send + Sync + std::fmt::Debug {
    /// The report of the UTC days `[from, to)`, and of one lot if given, as an HTML fragment;
    /// `Err` carries a message for the admin (an unknown lot, an empty warehouse).
    fn render(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        lot: Option<LotId>,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

const ACCESS_COOKIE: &str = "pf_access";
const REFRESH_COOKIE: &str = "pf_refresh";
/// How many rows a list page shows.
const PAGE_ROWS: i64 = 200;

/// The signed-in admin, put into the request by [`session`].
#[derive(Debug, Clone, Copy)]
struct Admin(UserId);

impl Admin {
    fn actor(self) -> Actor {
        Actor::account(self.0)
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/live.json", get(live))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/lots", post(create_lot))
        .route("/admin/lots/new", get(new_lot_page))
        .route("/admin/lots/{lot_id}", get(lot_page).post(update_lot))
        .route(
            "/admin/lots/{lot_id}/spots/{spot_id}/{action}",
            post(close_or_reopen),
        )
        .route("/admin/reservations", get(reservations))
        .route("/admin/inquiries", get(inquiries))
        .route("/admin/inquiries/{inquiry_id}/answer", post(answer))
        .route("/admin/audit", get(audit_log))
        .route("/admin/reports", get(reports))
}

/// The session layer of every portal route: checks the form's origin, finds the admin from the
/// cookies (refreshing an expired access token) or sends the browser to the sign-in page, and
/// turns error pages into JSON envelopes for clients that do not take HTML.
pub async fn session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("text/html") || a.contains("*/*"));
    let response = authorise(&state, &mut req).await;
    let mut response = match response {
        Ok(set_cookies) => {
            let mut r = next.run(req).await;
            for c in set_cookies {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r
        }
        Err(denied) => denied.into_response(),
    };
    if !wants_html && let Some(envelope) = response.extensions_mut().remove::<Envelope>() {
        let status = response.status();
        return (status, axum::Json(envelope.0)).into_response();
    }
    response
}

/// The JSON envelope of an error page, for clients that do not accept HTML.
#[derive(Clone)]
struct Envelope(serde_json::Value);

/// Why a request does not reach its page.
enum Denied {
    /// Not signed in: to the sign-in page, then back to this path.
    SignIn(String),
    Refused(PortalError),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn(to) => Redirect::to(&to).into_response(),
            Self::Refused(e) => e.into_response(),
        }
    }
}

async fn authorise(state: &AppState, req: &mut Request) -> Result<Vec<HeaderValue>, Denied> {
    if req.method() == axum::http::Method::POST && !same_origin(req.headers()) {
        return Err(Denied::Refused(PortalError(Error::Forbidden(
            "post a form from another site",
        ))));
    }
    let path = req.uri().path();
    if path == "/admin/login" {
        return Ok(Vec::new());
    }
    let cookies = cookies(req.headers());
    if let Some(access) = cookies.get(ACCESS_COOKIE)
        && let Ok(p) = state.accounts.authenticate(access).await
    {
        return admit(req, p.user, p.admin).map(|()| Vec::new());
    }
    if let Some(refresh) = cookies.get(REFRESH_COOKIE)
        && let Ok(tokens) = state.accounts.refresh(refresh).await
        && let Ok(p) = state.accounts.authenticate(&tokens.access_token).await
    {
        admit(req, p.user, p.admin)?;
        return Ok(session_cookies(&tokens));
    }
    if req.method() == axum::http::Method::GET {
        let next = req.uri().path_and_query().map_or("/admin", |p| p.as_str());
        let to = format!(
            "/admin/login?next={}",
            serde_urlencoded::to_string([("", next)])
                .unwrap_or_default()
                .trim_start_matches('=')
        );
        return Err(Denied::SignIn(to));
    }
    Err(Denied::Refused(PortalError(Error::Unauthorized)))
}

fn admit(req: &mut Request, user: UserId, admin: bool) -> Result<(), Denied> {
    if !admin {
        return Err(Denied::Refused(PortalError(Error::Forbidden(
            "use the admin portal",
        ))));
    }
    req.extensions_mut().insert(Admin(user));
    Ok(())
}

/// A browser sends `Origin` with every form post; one naming another host is a cross-site post.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split("://").nth(1);
    origin_host.is_some() && origin_host == host
}

fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn cookie(name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_s}"
    ))
    .expect("tokens are URL-safe")
}

fn session_cookies(t: &SessionTokens) -> Vec<HeaderValue> {
    vec![
        cookie(ACCESS_COOKIE, &t.access_token, t.expires_in),
        // The refresh token outlives the access token; the store enforces its own expiry.
        cookie(REFRESH_COOKIE, &t.refresh_token, 30 * 24 * 3600),
    ]
}

/// An error shown as a page with the error's status.
struct PortalError(Error);

#[derive(Template)]
#[template(path = "portal/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    heading: &'a str,
    message: &'a str,
}

impl From<Error> for PortalError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self.0, "portal request failed");
            "internal error".to_owned()
        } else {
            self.0.to_string()
        };
        let page = ErrorPage {
            title: "Error",
            heading: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        let envelope = json!({ "error": { "code": self.0.code(), "message": message } });
        let html = page.render().unwrap_or_else(|_| message.clone());
        let mut r = (status, Html(html)).into_response();
        r.extensions_mut().insert(Envelope(envelope));
        r
    }
}

type PageResult = Result<Response, PortalError>;

/// Form fields or query parameters; a malformed body is a 400.
fn fields(text: &str) -> Result<HashMap<String, String>, PortalError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|e| PortalError(Error::BadRequest(format!("malformed form: {e}"))))
}

fn form(body: &Bytes) -> Result<HashMap<String, String>, PortalError> {
    fields(std::str::from_utf8(body).map_err(|_| Error::BadRequest("form is not UTF-8".into()))?)
}

/// A non-empty field, trimmed.
fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    f.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn required<'a>(f: &'a HashMap<String, String>, name: &str) -> Result<&'a str, PortalError> {
    field(f, name).ok_or_else(|| PortalError(Error::Invalid(format!("`{name}` is required"))))
}

fn number<T: std::str::FromStr>(
    f: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, PortalError> {
    field(f, name)
        .map(|v| {
            v.parse()
                .map_err(|_| PortalError(Error::Invalid(format!("`{name}` must be a number"))))
        })
        .transpose()
}

fn date(f: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, PortalError> {
    field(f, name)
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                PortalError(Error::Invalid(format!(
                    "`{name}` must be a date (YYYY-MM-DD)"
                )))
            })
        })
        .transpose()
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, (cents % 100).abs())
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A page rendered from its template (every value escaped); a template that fails to render is
/// a bug, shown as a 500 without details.
fn render(page: &impl Template) -> Result<Html<String>, PortalError> {
    page.render()
        .map(Html)
        .map_err(|e| PortalError(Error::Config(format!("portal template: {e}"))))
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage<'a> {
    title: &'a str,
    next: &'a str,
    error: Option<String>,
}

fn login_form(next: &str, error: Option<&str>) -> Result<Html<String>, PortalError> {
    render(&LoginPage {
        title: "Sign in",
        next,
        error: error.map(str::to_owned),
    })
}

async fn login_page(RawQuery(q): RawQuery) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    Ok(login_form(field(&f, "next").unwrap_or("/admin"), None)?.into_response())
}

async fn login(State(state): State<AppState>, ClientIp(ip): ClientIp, body: Bytes) -> PageResult {
    let f = form(&body)?;
    // Only a path of this portal: never an open redirect to another site.
    let next = field(&f, "next")
        .filter(|n| n.starts_with("/admin") && !n.starts_with("//"))
        .unwrap_or("/admin")
        .to_owned();
    let credentials = Credentials {
        email: field(&f, "email").unwrap_or_default().to_owned(),
        password: f.get("password").cloned().unwrap_or_default(),
    };
    let tokens = match state.accounts.login(credentials, &ip).await {
        Ok(t) => t,
        Err(e) if e.is_client_error() => {
            let mut r = (e.status(), login_form(&next, Some(&e.to_string()))?).into_response();
            let envelope = json!({ "error": { "code": e.code(), "message": e.to_string() } });
            r.extensions_mut().insert(Envelope(envelope));
            return Ok(r);
        }
        Err(e) => return Err(e.into()),
    };
    if !state
        .accounts
        .authenticate(&tokens.access_token)
        .await?
        .admin
    {
        state.accounts.revoke(&tokens.refresh_token).await?;
        let e = Error::Forbidden("use the admin portal");
        return Ok((e.status(), login_form(&next, Some(&e.to_string()))?).into_response());
    }
    let mut r = see_other(&next);
    for c in session_cookies(&tokens) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if let Some(refresh) = cookies(&headers).get(REFRESH_COOKIE) {
        state.accounts.revoke(refresh).await?;
    }
    let mut r = see_other("/admin/login");
    for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
        r.headers_mut()
            .append(header::SET_COOKIE, cookie(name, "", 0));
    }
    Ok(r)
}

/// The lots with their live occupancy and the car rate in force, for the dashboard's refresh.
async fn live(State(state): State<AppState>) -> PageResult {
    let lots = state.service.lots().await?;
    let rows: Vec<_> = lots
        .iter()
        .map(|l| {
            json!({
                "id": l.id, "capacity": l.capacity, "freeSpots": l.free_spots,
                "occupied": l.capacity - l.free_spots,
                "rate": money(l.current_cents_per_hour, &l.currency),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "lots": rows, "at": state.service.now() })).into_response())
}

async fn dashboard(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
) -> PageResult {
    let email = state.accounts.email(admin.0).await?;
    let lots = state
        .service
        .lots()
        .await?
        .into_iter()
        .map(|l| LotRow {
            id: l.id,
            occupied: l.capacity - l.free_spots,
            rate: money(l.current_cents_per_hour, &l.currency),
            name: l.name,
            capacity: l.capacity,
            free: l.free_spots,
        })
        .collect();
    Ok(render(&Dashboard {
        title: "Lots",
        email,
        at: state.service.now().format("%H:%M:%S UTC").to_string(),
        lots,
    })?
    .into_response())
}

struct LotRow {
    id: LotId,
    name: String,
    capacity: i64,
    occupied: i64,
    free: i64,
    rate: String,
}

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct Dashboard {
    title: &'static str,
    email: String,
    at: String,
    lots: Vec<LotRow>,
}

async fn new_lot_page() -> PageResult {
    Ok(render(&NewLotPage {
        title: "New lot",
        vehicle_types: VehicleType::ALL.iter().map(|v| v.as_str()).collect(),
    })?
    .into_response())
}

#[derive(Template)]
#[template(path = "portal/new_lot.html")]
struct NewLotPage {
    title: &'static str,
    vehicle_types: Vec<&'static str>,
}

async fn create_lot(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    body: Bytes,
) -> PageResult {
    let f = form(&body)?;
    let mut spots = BTreeMap::new();
    for vt in VehicleType::ALL {
        if let Some(n) = number::<u32>(&f, &format!("spots_{vt}"))?.filter(|n| *n > 0) {
            spots.insert(vt, n);
        }
    }
    let new = NewLot {
        name: required(&f, "name")?.to_owned(),
        time_zone: required(&f, "time_zone")?.to_owned(),
        latitude: number(&f, "latitude")?.unwrap_or(0.0),
        longitude: number(&f, "longitude")?.unwrap_or(0.0),
        currency: field(&f, "currency").unwrap_or("USD").to_uppercase(),
        default_cents_per_hour: number(&f, "default_cents_per_hour")?.ok_or_else(|| {
            PortalError(Error::Invalid(
                "`default_cents_per_hour` is required".into(),
            ))
        })?,
        spots,
        ev_spots_open_to_cars: field(&f, "ev_spots_open_to_cars").is_some(),
    };
    let lot = state
        .service
        .create_lot_by(Some(&admin.actor()), new)
        .await?;
    Ok(see_other(&format!("/admin/lots/{}", lot.id)))
}

async fn lot_page(State(state): State<AppState>, LotPath(lot): LotPath) -> PageResult {
    let l = state.service.lot(lot).await?;
    let schedule = state.service.rate_schedule(lot).await?;
    let spots = state.service.spots(lot).await?;
    let rates = schedule
        .current
        .iter()
        .map(|r| RateRow {
            band: r.band.as_str(),
            days: r.day_kind.as_str(),
            vehicle: r.vehicle_type.as_str(),
            per_hour: money(r.cents_per_hour, &schedule.currency),
            since: r.effective_from.map_or(String::new(), |t| {
                t.format("%Y-%m-%d %H:%M UTC").to_string()
            }),
        })
        .collect();
    Ok(render(&LotPage {
        title: l.name.clone(),
        id: l.id,
        name: l.name,
        time_zone: l.time_zone,
        capacity: l.capacity,
        free: l.free_spots,
        default_cents: schedule.default_cents_per_hour,
        default_rate: money(schedule.default_cents_per_hour, &schedule.currency),
        rates,
        spots,
    })?
    .into_response())
}

struct RateRow {
    band: &'static str,
    days: &'static str,
    vehicle: &'static str,
    per_hour: String,
    since: String,
}

#[derive(Template)]
#[template(path = "portal/lot.html")]
struct LotPage {
    title: String,
    id: LotId,
    name: String,
    time_zone: String,
    capacity: i64,
    free: i64,
    default_cents: i64,
    default_rate: String,
    rates: Vec<RateRow>,
    spots: Vec<crate::admin::SpotStatus>,
}

async fn update_lot(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    LotPath(lot): LotPath,
    body: Bytes,
) -> PageResult {
    let f = form(&body)?;
    let change = LotChange {
        name: field(&f, "name").map(str::to_owned),
        default_cents_per_hour: number(&f, "default_cents_per_hour")?,
        ev_spots_open_to_cars: None,
    };
    state
        .service
        .update_lot(&admin.actor(), lot, change)
        .await?;
    Ok(see_other(&format!("/admin/lots/{lot}")))
}

async fn close_or_reopen(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path((lot, spot, action)): Path<(String, String, String)>,
) -> PageResult {
    let not_found = || PortalError(Error::NotFound(format!("spot {spot} in lot {lot}")));
    let lot = LotId(lot.parse().map_err(|_| not_found())?);
    let spot_id = SpotId(spot.parse().map_err(|_| not_found())?);
    let closed = match action.as_str() {
        "close" => true,
        "reopen" => false,
        _ => return Err(PortalError(Error::NotFound("route".into()))),
    };
    state
        .service
        .set_spot_closed(&admin.actor(), lot, spot_id, closed)
        .await?;
    Ok(see_other(&format!("/admin/lots/{lot}")))
}

async fn reservations(State(state): State<AppState>, RawQuery(q): RawQuery) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    let query = ReservationQuery {
        lot: number(&f, "lot")?,
        status: field(&f, "status").map(str::to_owned),
        email: field(&f, "email").map(str::to_owned),
        from: date(&f, "from")?.map(midnight),
        to: date(&f, "to")?.map(|d| midnight(d + chrono::Duration::days(1))),
    };
    let found = state.service.search_reservations(&query, PAGE_ROWS).await?;
    let value = |name: &str| field(&f, name).unwrap_or_default().to_owned();
    let statuses = ["active", "checked_in", "completed", "cancelled", "no_show"]
        .into_iter()
        .map(|name| StatusOption {
            name,
            selected: field(&f, "status") == Some(name),
        })
        .collect();
    let rows: Vec<FoundRow> = found
        .iter()
        .map(|r| FoundRow {
            id: r.id.0.to_string(),
            lot_id: r.lot_id,
            lot_name: r.lot_name.clone(),
            spot: r.spot_label.clone(),
            driver: r.email.clone().unwrap_or_else(|| "(erased)".into()),
            vehicle: r.vehicle_type.clone(),
            from: r.start_at.format("%Y-%m-%d %H:%M").to_string(),
            to: r.end_at.format("%Y-%m-%d %H:%M").to_string(),
            status: r.status.clone(),
            quote: money(r.quote_cents, &r.currency),
        })
        .collect();
    Ok(render(&ReservationsPage {
        title: "Reservations",
        lot: value("lot"),
        email: value("email"),
        from: value("from"),
        to: value("to"),
        statuses,
        truncated: rows.len() as i64 == PAGE_ROWS,
        rows,
    })?
    .into_response())
}

struct StatusOption {
    name: &'static str,
    selected: bool,
}

struct FoundRow {
    id: String,
    lot_id: LotId,
    lot_name: String,
    spot: String,
    driver: String,
    vehicle: String,
    from: String,
    to: String,
    status: String,
    quote: String,
}

#[derive(Template)]
#[template(path = "portal/reservations.html")]
struct ReservationsPage {
    title: &'static str,
    lot: String,
    email: String,
    from: String,
    to: String,
    statuses: Vec<StatusOption>,
    rows: Vec<FoundRow>,
    truncated: bool,
}

async fn inquiries(State(state): State<AppState>) -> PageResult {
    let inquiries = state
        .service
        .inquiries(true, PAGE_ROWS)
        .await?
        .into_iter()
        .map(|i| InquiryView {
            id: i.id.to_string(),
            subject: i.subject,
            from: i.email.unwrap_or_else(|| "(erased)".into()),
            at: i.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            reservation: i.reservation_id,
            message: i.message,
            answer: match (i.answer, i.answered_at) {
                (Some(text), Some(at)) => Some(AnswerView {
                    text,
                    at: at.format("%Y-%m-%d %H:%M UTC").to_string(),
                }),
                _ => None,
            },
        })
        .collect();
    Ok(render(&InquiriesPage {
        title: "Inquiries",
        inquiries,
    })?
    .into_response())
}

struct AnswerView {
    text: String,
    at: String,
}

struct InquiryView {
    id: String,
    subject: String,
    from: String,
    at: String,
    reservation: Option<String>,
    message: String,
    answer: Option<AnswerView>,
}

#[derive(Template)]
#[template(path = "portal/inquiries.html")]
struct InquiriesPage {
    title: &'static str,
    inquiries: Vec<InquiryView>,
}

async fn answer(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    let id: Uuid = id
        .parse()
        .map_err(|_| PortalError(Error::NotFound(format!("inquiry {id}"))))?;
    let f = form(&body)?;
    state
        .service
        .answer_inquiry(&admin.actor(), id, required(&f, "answer")?)
        .await?;
    Ok(see_other("/admin/inquiries"))
}

async fn audit_log(State(state): State<AppState>) -> PageResult {
    let entries = state
        .service
        .audit_log(PAGE_ROWS)
        .await?
        .into_iter()
        .map(|e| AuditRow {
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            who: e.actor_email.unwrap_or(e.actor),
            action: e.action,
            target: e.target,
            detail: e.detail,
        })
        .collect();
    Ok(render(&AuditPage {
        title: "Audit log",
        entries,
    })?
    .into_response())
}

struct AuditRow {
    at: String,
    who: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "portal/audit.html")]
struct AuditPage {
    title: &'static str,
    entries: Vec<AuditRow>,
}

async fn reports(State(state): State<AppState>, RawQuery(q): RawQuery) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    let today = state.service.now().date_naive();
    let from = date(&f, "from")?.unwrap_or(today - chrono::Duration::days(30));
    let to = date(&f, "to")?.unwrap_or(today + chrono::Duration::days(1));
    if from >= to {
        return Err(PortalError(Error::Invalid(
            "`from` must be before `to`".into(),
        )));
    }
    let lot = number::<i64>(&f, "lot")?.map(LotId);
    // The report's own HTML (from `ReportPages`), inserted as it is.
    let report =
        match &state.reports {
            None => None,
            Some(reports) => Some(reports.render(from, to, lot).await.map_err(|message| {
                PortalError(Error::unprocessable("report_unavailable", message))
            })?),
        };
    Ok(render(&ReportsPage {
        title: "Usage report",
        from: from.to_string(),
        to: to.to_string(),
        lot: lot.map_or(String::new(), |l| l.to_string()),
        report,
    })?
    .into_response())
}

#[derive(Template)]
#[template(path = "portal/reports.html")]
struct ReportsPage {
    title: &'static str,
    from: String,
    to: String,
    lot: String,
    report: Option<String>,
}

/// The portal's routes with their session layer, for [`crate::router`].
pub fn router(state: AppState) -> Router<AppState> {
    routes().layer(middleware::from_fn_with_state(state, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_post_from_another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("lots.example:8080"));
        assert!(same_origin(&h), "no Origin: not a cross-site browser post");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://lots.example:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; pf_access=tok"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("pf_refresh=r"));
        let c = cookies(&h);
        assert_eq!(c.get("pf_access").map(String::as_str), Some("tok"));
        assert_eq!(c.get("pf_refresh").map(String::as_str), Some("r"));
    }
}
