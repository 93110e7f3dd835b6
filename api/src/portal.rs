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
use crate::openapi::escape;
use crate::service::NewLot;
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
use std::fmt::Write as _;
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
        let body = format!(
            "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/admin\">Back to the lots</a></p>",
            status.canonical_reason().unwrap_or("Error"),
            escape(&message)
        );
        let envelope = json!({ "error": { "code": self.0.code(), "message": message } });
        let mut r = (status, page("Error", &body)).into_response();
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

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24}\
header{background:#1b3a5c;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}\
header a{color:#fff;text-decoration:none}header form{margin-left:auto}main{padding:1rem 1.2rem;max-width:72rem}\
table{border-collapse:collapse;margin:.6rem 0}th,td{border-bottom:1px solid #d5dbe1;padding:.3rem .6rem;text-align:left}\
th{background:#eef2f6}td.num{text-align:right;font-variant-numeric:tabular-nums}.error{color:#a4161a;font-weight:600}\
form.inline{display:inline}fieldset{border:1px solid #d5dbe1;margin:.6rem 0}label{display:inline-block;margin:.2rem .8rem .2rem 0}\
textarea{width:32rem;height:4rem}";

/// A whole page: the navigation, then `body`.
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · parkflow admin</title>\
         <style>{STYLE}</style></head><body><header><strong>parkflow admin</strong>\
         <a href=\"/admin\">Lots</a><a href=\"/admin/reservations\">Reservations</a>\
         <a href=\"/admin/inquiries\">Inquiries</a><a href=\"/admin/audit\">Audit log</a>\
         <a href=\"/admin/reports\">Reports</a>\
         <form method=\"post\" action=\"/admin/logout\"><button>Sign out</button></form></header>\
         <main>{body}</main></body></html>",
        t = escape(title)
    ))
}

async fn login_page(RawQuery(q): RawQuery) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    Ok(login_form(field(&f, "next").unwrap_or("/admin"), None).into_response())
}

fn login_form(next: &str, error: Option<&str>) -> Html<String> {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · parkflow admin</title>\
         <style>{STYLE}</style></head><body><main><h1>parkflow admin</h1>{error}\
         <form method=\"post\" action=\"/admin/login\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <p><label>E-mail <input type=\"email\" name=\"email\" autocomplete=\"username\" required></label></p>\
         <p><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\">Sign in</button></p></form></main></body></html>",
        next = escape(next)
    ))
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
            let mut r = (e.status(), login_form(&next, Some(&e.to_string()))).into_response();
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
        return Ok((e.status(), login_form(&next, Some(&e.to_string()))).into_response());
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
    let lots = state.service.lots().await?;
    let mut body = format!(
        "<h1>Lots</h1><p>Signed in as <span id=\"admin-email\">{}</span>. Occupancy refreshes every \
         5 s (<span id=\"live-at\">{}</span>).</p><p><a href=\"/admin/lots/new\">New lot</a></p>\
         <table id=\"lots\"><tr><th>Lot</th><th>Name</th><th>Open spots</th><th>Occupied</th>\
         <th>Free</th><th>Car rate now</th></tr>",
        escape(&email),
        state.service.now().format("%H:%M:%S UTC")
    );
    for l in &lots {
        let _ = write!(
            body,
            "<tr data-lot=\"{id}\"><td>{id}</td><td><a href=\"/admin/lots/{id}\">{name}</a></td>\
             <td class=\"num capacity\">{cap}</td><td class=\"num occupied\">{occ}</td>\
             <td class=\"num free\">{free}</td><td class=\"num rate\">{rate}</td></tr>",
            id = l.id,
            name = escape(&l.name),
            cap = l.capacity,
            occ = l.capacity - l.free_spots,
            free = l.free_spots,
            rate = money(l.current_cents_per_hour, &l.currency)
        );
    }
    body.push_str("</table>");
    body.push_str(
        "<script>async function refresh(){try{const r=await fetch('/admin/live.json',{headers:{accept:'application/json'}});\
         if(!r.ok)return;const d=await r.json();for(const l of d.lots){const row=document.querySelector(`tr[data-lot=\"${l.id}\"]`);\
         if(!row)continue;row.querySelector('.capacity').textContent=l.capacity;row.querySelector('.occupied').textContent=l.occupied;\
         row.querySelector('.free').textContent=l.freeSpots;row.querySelector('.rate').textContent=l.rate;}\
         document.getElementById('live-at').textContent=new Date(d.at).toISOString().slice(11,19)+' UTC';}catch(e){}}\
         setInterval(refresh,5000);</script>",
    );
    Ok(page("Lots", &body).into_response())
}

async fn new_lot_page() -> PageResult {
    let mut spots = String::new();
    for vt in VehicleType::ALL {
        let _ = write!(
            spots,
            "<label>{vt} spots <input type=\"number\" name=\"spots_{vt}\" min=\"0\" value=\"0\"></label>"
        );
    }
    let body = format!(
        "<h1>New lot</h1><form method=\"post\" action=\"/admin/lots\">\
         <p><label>Name <input name=\"name\" required></label>\
         <label>Time zone <input name=\"time_zone\" value=\"UTC\" required></label></p>\
         <p><label>Latitude <input name=\"latitude\" value=\"0\" required></label>\
         <label>Longitude <input name=\"longitude\" value=\"0\" required></label></p>\
         <p><label>Currency <input name=\"currency\" value=\"USD\" size=\"4\"></label>\
         <label>Default rate (cents per hour) <input type=\"number\" name=\"default_cents_per_hour\" value=\"200\" min=\"0\" required></label></p>\
         <fieldset><legend>Spots</legend>{spots}</fieldset>\
         <p><label><input type=\"checkbox\" name=\"ev_spots_open_to_cars\" value=\"on\"> Cars may use EV spots</label></p>\
         <p><button type=\"submit\">Create lot</button></p></form>"
    );
    Ok(page("New lot", &body).into_response())
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
    let mut body = format!(
        "<h1 id=\"lot-name\">{name}</h1><p>Lot {id} · {tz} · <span id=\"lot-capacity\">{cap}</span> open spots, \
         <span id=\"lot-free\">{free}</span> free now</p>\
         <form method=\"post\" action=\"/admin/lots/{id}\"><fieldset><legend>Settings</legend>\
         <label>Name <input name=\"name\" value=\"{name}\" required></label>\
         <label>Default rate (cents per hour) <input type=\"number\" name=\"default_cents_per_hour\" value=\"{rate}\" min=\"0\"></label>\
         <button type=\"submit\">Save</button></fieldset></form>",
        name = escape(&l.name),
        id = l.id,
        tz = escape(&l.time_zone),
        cap = l.capacity,
        free = l.free_spots,
        rate = schedule.default_cents_per_hour,
    );
    body.push_str("<h2>Rates in force</h2>");
    if schedule.current.is_empty() {
        let _ = write!(
            body,
            "<p>None published: every stay pays the default rate, {}.</p>",
            money(schedule.default_cents_per_hour, &schedule.currency)
        );
    } else {
        body.push_str(
            "<table id=\"rates\"><tr><th>Band</th><th>Days</th><th>Vehicle</th><th>Per hour</th><th>Since</th></tr>",
        );
        for r in &schedule.current {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                r.band.as_str(),
                r.day_kind.as_str(),
                r.vehicle_type,
                money(r.cents_per_hour, &schedule.currency),
                r.effective_from.map_or(String::new(), |t| t
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string())
            );
        }
        body.push_str("</table>");
    }
    body.push_str(
        "<h2>Spots</h2><table id=\"spots\"><tr><th>Spot</th><th>Type</th><th>State</th><th>Parked</th>\
         <th>Upcoming reservations</th><th></th></tr>",
    );
    for s in &spots {
        let (state_text, action) = if s.closed {
            ("closed", "reopen")
        } else {
            ("open", "close")
        };
        let _ = write!(
            body,
            "<tr data-spot=\"{label}\"><td>{label}</td><td>{vt}</td><td class=\"state\">{state_text}</td>\
             <td>{parked}</td><td class=\"num\">{upcoming}</td><td><form class=\"inline\" method=\"post\" \
             action=\"/admin/lots/{lot}/spots/{id}/{action}\"><button type=\"submit\">{label_action}</button></form></td></tr>",
            label = escape(&s.label),
            vt = escape(&s.vehicle_type),
            parked = if s.occupied { "yes" } else { "" },
            upcoming = s.upcoming_reservations,
            id = s.id,
            label_action = if s.closed { "Reopen" } else { "Close" },
        );
    }
    body.push_str("</table>");
    Ok(page(&l.name, &body).into_response())
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
    let rows = state.service.search_reservations(&query, PAGE_ROWS).await?;
    let value = |name: &str| escape(field(&f, name).unwrap_or_default());
    let mut statuses = String::from("<option value=\"\">any</option>");
    for s in ["active", "checked_in", "completed", "cancelled", "no_show"] {
        let selected = if field(&f, "status") == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(statuses, "<option{selected}>{s}</option>");
    }
    let mut body = format!(
        "<h1>Reservations</h1><form method=\"get\" action=\"/admin/reservations\" id=\"search\">\
         <label>Lot <input name=\"lot\" size=\"5\" value=\"{}\"></label>\
         <label>Status <select name=\"status\">{statuses}</select></label>\
         <label>Driver e-mail <input name=\"email\" value=\"{}\"></label>\
         <label>From <input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>To <input type=\"date\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Search</button></form>\
         <p id=\"hits\">{} reservation(s){}</p>",
        value("lot"),
        value("email"),
        value("from"),
        value("to"),
        rows.len(),
        if rows.len() as i64 == PAGE_ROWS {
            ", the first shown"
        } else {
            ""
        }
    );
    body.push_str(
        "<table id=\"results\"><tr><th>Reservation</th><th>Lot</th><th>Spot</th><th>Driver</th><th>Vehicle</th>\
         <th>From</th><th>To</th><th>Status</th><th>Quote</th></tr>",
    );
    for r in &rows {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"status\">{}</td><td class=\"num\">{}</td></tr>",
            r.id.0,
            r.lot_id,
            escape(&r.lot_name),
            escape(&r.spot_label),
            escape(r.email.as_deref().unwrap_or("(erased)")),
            escape(&r.vehicle_type),
            r.start_at.format("%Y-%m-%d %H:%M"),
            r.end_at.format("%Y-%m-%d %H:%M"),
            escape(&r.status),
            money(r.quote_cents, &r.currency)
        );
    }
    body.push_str("</table>");
    Ok(page("Reservations", &body).into_response())
}

async fn inquiries(State(state): State<AppState>) -> PageResult {
    let all = state.service.inquiries(true, PAGE_ROWS).await?;
    let mut body = String::from("<h1>Driver inquiries</h1>");
    if all.is_empty() {
        body.push_str("<p>No inquiries yet.</p>");
    }
    for i in &all {
        let _ = write!(
            body,
            "<article class=\"inquiry\" data-inquiry=\"{id}\"><h2>{subject}</h2><p>From {from}, {at}{about}</p>\
             <blockquote>{message}</blockquote>",
            id = i.id,
            subject = escape(&i.subject),
            from = escape(i.email.as_deref().unwrap_or("(erased)")),
            at = i.created_at.format("%Y-%m-%d %H:%M UTC"),
            about = i
                .reservation_id
                .as_deref()
                .map_or(String::new(), |r| format!(
                    ", about reservation <code>{}</code>",
                    escape(r)
                )),
            message = escape(&i.message),
        );
        match (&i.answer, i.answered_at) {
            (Some(answer), Some(at)) => {
                let _ = write!(
                    body,
                    "<p class=\"answer\"><strong>Answered {}:</strong> {}</p>",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    escape(answer)
                );
            }
            _ => {
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"/admin/inquiries/{}/answer\"><p><label>Answer<br>\
                     <textarea name=\"answer\" required></textarea></label></p>\
                     <p><button type=\"submit\">Send answer</button></p></form>",
                    i.id
                );
            }
        }
        body.push_str("</article>");
    }
    Ok(page("Inquiries", &body).into_response())
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
    let entries = state.service.audit_log(PAGE_ROWS).await?;
    let mut body = String::from(
        "<h1>Audit log</h1><table id=\"audit\"><tr><th>When</th><th>Who</th><th>Action</th><th>On</th><th>Detail</th></tr>",
    );
    for e in &entries {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"action\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
            escape(e.actor_email.as_deref().unwrap_or(&e.actor)),
            escape(&e.action),
            escape(&e.target),
            escape(&e.detail)
        );
    }
    body.push_str("</table>");
    Ok(page("Audit log", &body).into_response())
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
    let mut body = format!(
        "<h1>Usage report</h1><form method=\"get\" action=\"/admin/reports\">\
         <label>From <input type=\"date\" name=\"from\" value=\"{from}\"></label>\
         <label>To (exclusive) <input type=\"date\" name=\"to\" value=\"{to}\"></label>\
         <label>Lot <input name=\"lot\" size=\"5\" value=\"{}\"></label>\
         <button type=\"submit\">Show</button></form>",
        lot.map_or(String::new(), |l| l.to_string())
    );
    match &state.reports {
        None => body.push_str(
            "<p class=\"error\">This process has no warehouse to report from (run `parkflow serve`).</p>",
        ),
        Some(reports) => match reports.render(from, to, lot).await {
            Ok(html) => body.push_str(&html),
            Err(message) => {
                return Err(PortalError(Error::unprocessable("report_unavailable", message)));
            }
        },
    }
    Ok(page("Usage report", &body).into_response())
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
