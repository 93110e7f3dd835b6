//! Signing in to the portal and out of it.

use super::*;
use crate::accounts::Credentials;
use crate::domain::error::Error;
use crate::http::error::ApiError;
use crate::http::{AppState, ClientIp};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse};
use serde_json::json;

#[derive(Template)]
#[template(path = "portal/login.html")]
pub(super) struct LoginPage<'a> {
    title: &'a str,
    next: &'a str,
    error: Option<String>,
}

pub(super) fn login_form(next: &str, error: Option<&str>) -> Result<Html<String>, PortalError> {
    render(&LoginPage {
        title: "Sign in",
        next,
        error: error.map(str::to_owned),
    })
}

pub(super) async fn login_page(RawQuery(q): RawQuery) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    Ok(login_form(field(&f, "next").unwrap_or("/admin"), None)?.into_response())
}

/// The sign-in form.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    next: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PortalForm(f): PortalForm<LoginForm>,
) -> PageResult {
    // Only a path of this portal: never an open redirect to another site.
    let next = Some(f.next.trim())
        .filter(|n| n.starts_with("/admin") && !n.starts_with("//"))
        .unwrap_or("/admin")
        .to_owned();
    let credentials = Credentials {
        email: f.email.trim().to_owned(),
        password: f.password,
    };
    let tokens = match state.accounts.login(credentials, &ip).await {
        Ok(t) => t,
        Err(e) if e.is_client_error() => {
            let e = ApiError::from(e);
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
        let e = ApiError::from(Error::Forbidden("use the admin portal"));
        return Ok((e.status(), login_form(&next, Some(&e.to_string()))?).into_response());
    }
    let mut r = see_other(&next);
    for c in session_cookies(&tokens) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
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
