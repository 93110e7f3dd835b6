//! The admin portal over HTTP: sign-in and sessions by cookie, the pages' changes going through
//! the service with an audit record each, and errors as pages (or envelopes for JSON clients).
//! The same flows in a real browser are in the workspace's `tests/it/portal.rs`.

use super::TestApp;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use parkflow_api::accounts::Credentials;
use parkflow_api::router;
use serde_json::{Value, json};
use std::collections::HashMap;
use tower::ServiceExt;

mod admin;
mod passes;
pub use admin::{
    admins_manage_lots_spots_and_inquiries_and_each_action_is_audited,
    every_text_a_user_sets_is_escaped_on_every_page,
};
pub use passes::admins_sell_monthly_passes_from_the_lot_page;

const PASSWORD: &str = "correct horse battery";

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub text: String,
}

impl Page {
    /// The `name=value` pairs the response set.
    fn cookies(&self) -> HashMap<String, String> {
        self.set_cookies
            .iter()
            .filter_map(|c| {
                let (k, v) = c.split(';').next()?.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    }
}

impl TestApp {
    /// A form posted from a portal page.
    async fn submit(&self, uri: &str, cookies: &str, form: &[(&str, &str)]) -> Page {
        self.page("POST", uri, cookies, Some(form)).await
    }

    /// A browser-like request: HTML accepted, cookies sent, an optional form body.
    pub(crate) async fn page(
        &self,
        method: &str,
        uri: &str,
        cookies: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("accept", "text/html")
            .header("host", "portal.test");
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        let body = match form {
            Some(fields) => {
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("origin", "http://portal.test");
                serde_urlencoded::to_string(fields).unwrap()
            }
            None => String::new(),
        };
        let resp = router(self.state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            set_cookies,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// An admin account signed in to the portal: its `Cookie` header.
    pub(crate) async fn admin_session(&self, email: &str) -> String {
        self.state
            .accounts
            .register_admin(Credentials {
                email: email.into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
        let r = self
            .submit(
                "/admin/login",
                "",
                &[("email", email), ("password", PASSWORD), ("next", "/admin")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        assert_eq!(r.location.as_deref(), Some("/admin"));
        assert!(
            r.set_cookies
                .iter()
                .all(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict"))
        );
        let c = r.cookies();
        format!(
            "pf_access={}; pf_refresh={}",
            c["pf_access"], c["pf_refresh"]
        )
    }
}

pub async fn the_portal_needs_an_admin_sign_in(app: TestApp) {
    app.with_lot(json!({"car": 2})).await;
    // Not signed in: to the sign-in page, remembering where to go back to.
    let r = app.page("GET", "/admin/reservations?lot=1", "", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location.as_deref(),
        Some("/admin/login?next=%2Fadmin%2Freservations%3Flot%3D1")
    );
    let form = app
        .page("GET", "/admin/login?next=%2Fadmin%2Faudit", "", None)
        .await;
    assert!(
        form.text.contains("value=\"/admin/audit\""),
        "{}",
        form.text
    );

    // A wrong password is a 401 page; a driver account may not use the portal.
    app.state
        .accounts
        .register_admin(Credentials {
            email: "ops@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let wrong = app
        .submit(
            "/admin/login",
            "",
            &[
                ("email", "ops@example.com"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.text.contains("wrong e-mail or password"),
        "{}",
        wrong.text
    );
    assert!(wrong.set_cookies.is_empty());
    app.with_driver("driver@example.com").await;
    let driver = app
        .submit(
            "/admin/login",
            "",
            &[("email", "driver@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(driver.status, StatusCode::FORBIDDEN, "{}", driver.text);
    assert!(driver.set_cookies.is_empty());

    // An open redirect is not possible: `next` stays inside the portal.
    let r = app
        .submit(
            "/admin/login",
            "",
            &[
                ("email", "ops@example.com"),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/admin"));

    let session = app.admin_session("lead@example.com").await;
    let home = app.page("GET", "/admin", &session, None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.text.contains("lead@example.com") && home.text.contains("Lot A"),
        "{}",
        home.text
    );

    // The access token expires after 15 minutes; the refresh cookie renews the session.
    app.clock
        .set(app.state.services.now() + chrono::Duration::minutes(20));
    let renewed = app.page("GET", "/admin", &session, None).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    let fresh = renewed.cookies();
    assert!(fresh.contains_key("pf_access") && fresh.contains_key("pf_refresh"));
    let session = format!(
        "pf_access={}; pf_refresh={}",
        fresh["pf_access"], fresh["pf_refresh"]
    );

    // A post from another site is refused whatever the cookies.
    let mut req = Request::builder()
        .method("POST")
        .uri("/admin/lots/1")
        .header("host", "portal.test")
        .header("origin", "https://evil.example")
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("name=Hijacked"))
        .unwrap();
    req.headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    let resp = router(app.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body["error"]["code"], "forbidden",
        "a JSON client gets the envelope"
    );

    // Signing out revokes the refresh token: the old cookies no longer open the portal.
    let out = app.submit("/admin/logout", &session, &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    app.clock
        .set(app.state.services.now() + chrono::Duration::minutes(20));
    let after = app.page("GET", "/admin", &session, None).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.text);

    // Taking the admin role away closes the portal at once, not when the token expires.
    let demoted = app.admin_session("former@example.com").await;
    sqlx::query("UPDATE users SET role = 'driver' WHERE email = 'former@example.com'")
        .execute(app.state.services.store().writer())
        .await
        .unwrap();
    let refused = app.page("GET", "/admin", &demoted, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
}
