//! The admin portal at `/admin`: server-rendered pages for accounts of the admin role.
//!
//! - Sign-in with the account's e-mail and password (the same login as the API). The access and
//!   refresh tokens live in `HttpOnly; SameSite=Strict` cookies scoped to `/admin`; an expired
//!   access token is refreshed on the next request, and signing out revokes the refresh token.
//!   Form posts from another origin are refused.
//! - Pages: lots with live occupancy and the rates in force (pushed by the live stream
//!   `/v1/live`, see `services::live`), a lot's settings and spots (close, reopen), new lots, the reservation
//!   search, drivers' inquiries and their answers, the audit log, and management's usage report
//!   (the same figures as `parkflow report`, when the process has a lake: see [`ReportPages`]).
//! - Every change goes through [`Services`](crate::Services) with the signed-in
//!   admin as the [`Actor`] of its audit record.
//! - Errors are pages with the error's 4xx status; a client that does not accept HTML gets the
//!   API's JSON envelope instead.

mod desk;
mod lots;
mod passes;
mod signin;

use crate::http::error::ApiError;
use desk::*;
use lots::*;
use passes::*;
use signin::*;

use crate::accounts::SessionTokens;
use crate::domain::error::Error;
use crate::http::AppState;
use crate::services::admin::Actor;
use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use warehouse_schema::{LotId, UserId};

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
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/lots", post(create_lot))
        .route("/admin/lots/new", get(new_lot_page))
        .route("/admin/lots/{lot_id}", get(lot_page).post(update_lot))
        .route(
            "/admin/lots/{lot_id}/spots/{spot_id}/{action}",
            post(close_or_reopen),
        )
        .route("/admin/lots/{lot_id}/pass-products", post(create_product))
        .route(
            "/admin/lots/{lot_id}/pass-products/{product_id}/retire",
            post(retire_product),
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
        return Err(Denied::Refused(PortalError::from(Error::Forbidden(
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
    Err(Denied::Refused(PortalError::from(Error::Unauthorized)))
}

fn admit(req: &mut Request, user: UserId, admin: bool) -> Result<(), Denied> {
    if !admin {
        return Err(Denied::Refused(PortalError::from(Error::Forbidden(
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
pub(super) struct PortalError(ApiError);

#[derive(Template)]
#[template(path = "portal/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    heading: &'a str,
    message: &'a str,
}

impl From<Error> for PortalError {
    fn from(e: Error) -> Self {
        Self(e.into())
    }
}

impl From<ApiError> for PortalError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let envelope = self.0.envelope();
        let message = envelope["error"]["message"].as_str().unwrap_or_default();
        let page = ErrorPage {
            title: "Error",
            heading: status.canonical_reason().unwrap_or("Error"),
            message,
        };
        let html = page.render().unwrap_or_else(|_| message.to_owned());
        let mut r = (status, Html(html)).into_response();
        r.extensions_mut().insert(Envelope(envelope));
        self.0.finish(r)
    }
}

type PageResult = Result<Response, PortalError>;

/// Form fields or query parameters; a malformed body is a 400.
fn fields(text: &str) -> Result<HashMap<String, String>, PortalError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|e| PortalError::from(Error::BadRequest(format!("malformed form: {e}"))))
}

/// A form post read into `T` by `axum::Form`. A body that is not a form is the portal's 415
/// page, one that does not parse its 400, a field of the wrong kind its 422 naming the field.
pub(super) struct PortalForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PortalForm<T> {
    type Rejection = PortalError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, PortalError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(FormRejection::FailedToDeserializeForm(e)) => {
                Err(PortalError::from(Error::BadRequest(format!(
                    "malformed form: {}",
                    crate::http::extract::source_of(&e)
                ))))
            }
            Err(FormRejection::FailedToDeserializeFormBody(e)) => Err(PortalError::from(
                Error::Invalid(crate::http::extract::source_of(&e)),
            )),
            Err(FormRejection::InvalidFormContentType(_)) => {
                Err(PortalError::from(ApiError::rejected(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the form as `application/x-www-form-urlencoded`",
                )))
            }
            Err(e) => Err(PortalError::from(Error::BadRequest(e.body_text()))),
        }
    }
}

/// A form field as HTML sends it: every field is there, an empty one as "". Blank is `None`;
/// anything else, trimmed, must parse as `T`.
fn blank_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
{
    let raw = Option::<String>::deserialize(d)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{v}` is not a {}", short_type::<T>()))),
    }
}

fn short_type<T>() -> &'static str {
    match std::any::type_name::<T>() {
        "f64" | "f32" => "number",
        "i64" | "u32" | "i32" | "u64" => "whole number",
        _ => "valid value",
    }
}

/// A non-empty field, trimmed.
fn field<'a>(f: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    f.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(
    f: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, PortalError> {
    field(f, name)
        .map(|v| {
            v.parse().map_err(|_| {
                PortalError::from(Error::Invalid(format!("`{name}` must be a number")))
            })
        })
        .transpose()
}

fn date(f: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, PortalError> {
    field(f, name)
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                PortalError::from(Error::Invalid(format!(
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
    format!("{} {currency}", crate::domain::Money::from_cents(cents))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A page rendered from its template (every value escaped); a template that fails to render is
/// a bug, shown as a 500 without details.
fn render(page: &impl Template) -> Result<Html<String>, PortalError> {
    page.render()
        .map(Html)
        .map_err(|e| PortalError::from(Error::Config(format!("portal template: {e}"))))
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
