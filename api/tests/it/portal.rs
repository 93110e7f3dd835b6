//! The admin portal over HTTP: sign-in and sessions by cookie, the pages' changes going through
//! the service with an audit record each, and errors as pages (or envelopes for JSON clients).
//! The same flows in a real browser are in the workspace's `tests/it/portal.rs`.

use super::{ADMIN, GATE, TestApp, assert_envelope};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use parkflow_api::accounts::Credentials;
use parkflow_api::router;
use serde_json::{Value, json};
use std::collections::HashMap;
use tower::ServiceExt;

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
    async fn page(
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
    async fn admin_session(&self, email: &str) -> String {
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
        .set(app.state.service.now() + chrono::Duration::minutes(20));
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
        .set(app.state.service.now() + chrono::Duration::minutes(20));
    let after = app.page("GET", "/admin", &session, None).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.text);

    // Taking the admin role away closes the portal at once, not when the token expires.
    let demoted = app.admin_session("former@example.com").await;
    sqlx::query("UPDATE users SET role = 'driver' WHERE email = 'former@example.com'")
        .execute(app.state.service.store().pool())
        .await
        .unwrap();
    let refused = app.page("GET", "/admin", &demoted, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
}

pub async fn admins_manage_lots_spots_and_inquiries_and_each_action_is_audited(app: TestApp) {
    let session = app.admin_session("ops@example.com").await;

    // A new lot from the form.
    let created = app
        .submit(
            "/admin/lots",
            &session,
            &[
                ("name", "Harbour"),
                ("time_zone", "Europe/Berlin"),
                ("latitude", "53.54"),
                ("longitude", "9.99"),
                ("currency", "eur"),
                ("default_cents_per_hour", "250"),
                ("spots_car", "2"),
                ("spots_ev", "0"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let lot_page = created.location.unwrap();
    let lot: i64 = lot_page.rsplit('/').next().unwrap().parse().unwrap();
    let lot_json = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(lot_json.body["capacity"], 2);
    assert_eq!(lot_json.body["currency"], "EUR");

    // Bad input is a page with a 4xx, never a 500.
    let bad = app
        .submit(
            "/admin/lots",
            &session,
            &[
                ("name", "X"),
                ("time_zone", "Mars/Base"),
                ("default_cents_per_hour", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("unknown time zone"), "{}", bad.text);
    let nan = app
        .submit(
            "/admin/lots",
            &session,
            &[
                ("name", "X"),
                ("time_zone", "UTC"),
                ("default_cents_per_hour", "lots"),
            ],
        )
        .await;
    assert_eq!(nan.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Rename the lot and change its default rate.
    let edit = app
        .submit(
            &lot_page,
            &session,
            &[("name", "Harbour North"), ("default_cents_per_hour", "300")],
        )
        .await;
    assert_eq!(edit.status, StatusCode::SEE_OTHER, "{}", edit.text);
    let page = app.page("GET", &lot_page, &session, None).await;
    assert!(
        page.text.contains("Harbour North") && page.text.contains("3.00 EUR"),
        "{}",
        page.text
    );

    // Close a spot: the lot's capacity drops, and a drive-up finds the lot full after one car.
    let spots = app
        .state
        .service
        .spots(warehouse_schema::LotId(lot))
        .await
        .unwrap();
    let (first, second) = (spots[0].id.0, spots[1].id.0);
    let close = app
        .submit(&format!("{lot_page}/spots/{first}/close"), &session, &[])
        .await;
    assert_eq!(close.status, StatusCode::SEE_OTHER, "{}", close.text);
    let lot_json = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(lot_json.body["capacity"], 1);
    let car = json!({"vehicleType": "car", "method": "qr"}).to_string();
    let entry = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(GATE),
            Some(&car),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    assert_eq!(entry.body["spotId"], second, "the closed spot is not given");
    let full = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(GATE),
            Some(&car),
        )
        .await;
    assert_envelope(&full, StatusCode::CONFLICT, "lot_full");
    assert!(
        app.outbox_types()
            .await
            .contains(&"lot_capacity_changed".to_owned())
    );

    // Reopen it; a driver reserves it; now closing it is refused (the reservation holds it).
    let reopen = app
        .submit(&format!("{lot_page}/spots/{first}/reopen"), &session, &[])
        .await;
    assert_eq!(reopen.status, StatusCode::SEE_OTHER);
    let driver = app.with_driver("driver@example.com").await;
    let start = app.state.service.now() + chrono::Duration::hours(2);
    let booking = json!({"lotId": lot, "spotId": first, "startAt": start, "endAt": start + chrono::Duration::hours(1), "vehicleType": "car"});
    let booked = app
        .call_with(
            "POST",
            "/v1/reservations",
            Some(&driver),
            Some(&booking.to_string()),
            Some(("idempotency-key", "portal-1")),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let refused = app
        .submit(&format!("{lot_page}/spots/{first}/close"), &session, &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.text.contains("held by 1 reservation"),
        "{}",
        refused.text
    );

    // The reservation search finds it by the driver's e-mail, and by lot and status.
    let hits = app
        .page(
            "GET",
            "/admin/reservations?email=DRIVER%40example.com",
            &session,
            None,
        )
        .await;
    assert!(hits.text.contains("1 reservation(s)"), "{}", hits.text);
    assert!(hits.text.contains(booked.body["id"].as_str().unwrap()));
    let none = app
        .page(
            "GET",
            &format!("/admin/reservations?lot={lot}&status=cancelled"),
            &session,
            None,
        )
        .await;
    assert!(none.text.contains("0 reservation(s)"), "{}", none.text);
    let bad_status = app
        .page("GET", "/admin/reservations?status=lost", &session, None)
        .await;
    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A driver asks; the admin answers once; the answer reaches the driver's inbox.
    let ask = json!({"subject": "Receipt", "message": "Can I get a receipt for my booking?", "reservationId": booked.body["id"]});
    let asked = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(&ask.to_string()),
        )
        .await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.body);
    let id = asked.body["id"].as_str().unwrap().to_owned();
    let empty = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(r#"{"subject":" ","message":"x"}"#),
        )
        .await;
    assert_envelope(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let staff = app
        .call("POST", "/v1/inquiries", Some(ADMIN), Some(&ask.to_string()))
        .await;
    assert_envelope(&staff, StatusCode::FORBIDDEN, "forbidden");
    let list = app.page("GET", "/admin/inquiries", &session, None).await;
    assert!(
        list.text.contains("Can I get a receipt") && list.text.contains("driver@example.com"),
        "{}",
        list.text
    );
    let answered = app
        .submit(
            &format!("/admin/inquiries/{id}/answer"),
            &session,
            &[("answer", "It is in your e-mail.")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.text);
    let twice = app
        .submit(
            &format!("/admin/inquiries/{id}/answer"),
            &session,
            &[("answer", "Again")],
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let mine = app.call("GET", "/v1/inquiries", Some(&driver), None).await;
    assert_eq!(mine.body["inquiries"][0]["answer"], "It is in your e-mail.");
    assert!(
        app.inbox_kinds(&driver)
            .await
            .contains(&"inquiry_answered".to_owned())
    );

    // Every change above is in the audit log, newest first, with the admin's e-mail.
    let log = app.state.service.audit_log(50).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "inquiry.answer",
            "spot.reopen",
            "spot.close",
            "lot.update",
            "lot.create"
        ]
    );
    assert!(
        log.iter()
            .all(|e| e.actor_email.as_deref() == Some("ops@example.com"))
    );
    let audit = app.page("GET", "/admin/audit", &session, None).await;
    assert!(
        audit.text.contains("spot.close") && audit.text.contains("ops@example.com"),
        "{}",
        audit.text
    );

    // Without a lake this process has no report to show, and says so.
    let report = app.page("GET", "/admin/reports", &session, None).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(report.text.contains("no warehouse to report from"));
}

/// Every text an admin or a driver can set (lot name, e-mail, region, inquiry subject and
/// message, answer) is shown escaped on every portal page that shows it: markup typed into a
/// form or an API call never runs in an admin's browser.
pub async fn every_text_a_user_sets_is_escaped_on_every_page(app: TestApp) {
    let session = app.admin_session("xss.ops@example.com").await;
    let lot_name = "<script>alert('lot')</script>";
    let body = json!({
        "name": lot_name, "timeZone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.40,
        "currency": "EUR", "defaultCentsPerHour": 200, "spots": {"car": 2}
    });
    let lot = app
        .call("POST", "/v1/lots", Some(ADMIN), Some(&body.to_string()))
        .await;
    assert_eq!(lot.status, StatusCode::CREATED, "{}", lot.body);
    let lot = lot.body["id"].as_i64().unwrap();
    let renamed = app
        .submit(
            &format!("/admin/lots/{lot}"),
            &session,
            &[
                ("name", "<b onmouseover=alert(2)>lot</b>"),
                ("default_cents_per_hour", "250"),
            ],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.text);
    let email = "x<script>y@example.com";
    let driver = app.with_driver(email).await;
    let vehicle = app
        .call(
            "POST",
            "/v1/vehicles",
            Some(&driver),
            Some(
                &json!({"plate": "B XS 1", "region": "<script>", "vehicleType": "car"}).to_string(),
            ),
        )
        .await;
    assert_eq!(vehicle.status, StatusCode::CREATED, "{}", vehicle.body);
    let start = app.state.service.now() + chrono::Duration::hours(2);
    let booked = app
        .call_with(
            "POST",
            "/v1/reservations",
            Some(&driver),
            Some(&json!({"lotId": lot, "startAt": start, "endAt": start + chrono::Duration::hours(1),
                         "vehicleId": vehicle.body["id"]}).to_string()),
            Some(("idempotency-key", "xss")),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let ask = json!({"subject": "<script>alert('subject')</script>",
                     "message": "<img src=x onerror=alert('message')>"});
    let inquiry = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(&ask.to_string()),
        )
        .await;
    assert_eq!(inquiry.status, StatusCode::CREATED, "{}", inquiry.body);
    let id = inquiry.body["id"].as_str().unwrap().to_owned();
    let answered = app
        .submit(
            &format!("/admin/inquiries/{id}/answer"),
            &session,
            &[("answer", "<script>alert('answer')</script>")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.text);

    let pages = [
        "/admin".to_owned(),
        format!("/admin/lots/{lot}"),
        format!("/admin/reservations?lot={lot}"),
        "/admin/reservations?email=x%3Cscript%3Ey%40example.com".to_owned(),
        "/admin/inquiries".to_owned(),
        "/admin/audit".to_owned(),
    ];
    let mut shown = 0;
    for uri in &pages {
        let page = app.page("GET", uri, &session, None).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.text);
        for raw in [
            "<script>alert",
            "<script>y@",
            "<b onmouseover",
            "<img src=x",
            "<SCRIPT>",
        ] {
            assert!(
                !page.text.contains(raw),
                "{uri} shows {raw} unescaped: {}",
                page.text
            );
        }
        shown += page.text.matches("&lt;").count() + page.text.matches("&#60;").count();
    }
    // The texts are there, escaped: the checks above are not passing on empty pages.
    assert!(shown >= 8, "only {shown} escaped texts on the pages");
    let inquiries = app.page("GET", "/admin/inquiries", &session, None).await;
    // Named or numeric character references: either is escaped.
    let decoded = inquiries
        .text
        .replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;");
    for escaped in [
        "&lt;script&gt;alert(",
        "&lt;img src=x onerror=alert(",
        "x&lt;script&gt;y@example.com",
    ] {
        assert!(decoded.contains(escaped), "{escaped}: {}", inquiries.text);
    }
}
