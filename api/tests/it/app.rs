//! What the drivers' app and the gate page stand on: their files served with a strict policy,
//! signing out, and the pass as a QR code. (The app itself is driven in headless Chromium by
//! the workspace's `tests/it/app.rs`.)

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use parkflow_api::router;
use serde_json::json;
use tower::ServiceExt;

async fn fetch(app: &TestApp, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = router(app.state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub async fn the_app_is_served_and_drivers_sign_out_and_show_passes(app: TestApp) {
    // The app's files and the gate page, each with its type and a policy that allows no
    // script but the app's own file.
    for (uri, kind, has) in [
        ("/", "text/html", "<script src=\"/app.js\""),
        ("/app.js", "text/javascript", "/v1/sessions/revoke"),
        ("/app.css", "text/css", ".free"),
        ("/sw.js", "text/javascript", "caches.open"),
        ("/icon.svg", "image/svg+xml", "<svg"),
        (
            "/manifest.webmanifest",
            "application/manifest+json",
            "\"start_url\"",
        ),
        ("/gate", "text/html", "Scan a pass"),
    ] {
        let (status, headers, body) = fetch(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{uri}"
        );
        assert!(body.contains(has), "{uri}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{uri}: {policy}");
        if uri != "/gate" {
            assert!(policy.contains("script-src 'self'"), "{uri}: {policy}");
            assert!(!policy.contains("unsafe-inline"), "{uri}: {policy}");
        }
    }

    // Signing out spends the refresh token: it cannot be used again.
    let creds = json!({"email": "leaving@example.com", "password": "correct horse battery"});
    app.call("POST", "/v1/accounts", None, Some(&creds.to_string()))
        .await;
    let tokens = app
        .call("POST", "/v1/sessions", None, Some(&creds.to_string()))
        .await;
    let refresh = tokens.body["refreshToken"].as_str().unwrap().to_owned();
    let body = json!({ "refreshToken": refresh }).to_string();
    let out = app
        .call("POST", "/v1/sessions/revoke", None, Some(&body))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let again = app
        .call("POST", "/v1/sessions/refresh", None, Some(&body))
        .await;
    assert_envelope(&again, StatusCode::UNAUTHORIZED, "unauthorized");
    // Signing out twice, or with a token never issued, tells nothing apart.
    for token in [refresh.as_str(), "never-issued"] {
        let body = json!({ "refreshToken": token }).to_string();
        let r = app
            .call("POST", "/v1/sessions/revoke", None, Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    for bad in [
        json!({}),
        json!({"refreshToken": ""}),
        json!({"refreshToken": 5}),
    ] {
        let r = app
            .call("POST", "/v1/sessions/revoke", None, Some(&bad.to_string()))
            .await;
        assert!(r.status.is_client_error(), "{bad}: {}", r.status);
        assert!(r.body["error"]["code"].is_string(), "{bad}");
    }

    // The pass as a QR code, for its driver only.
    let lot = app.with_lot(json!({ "car": 2 })).await;
    let driver = app.driver("qr.driver@example.com").await;
    let start = app.state.services.now() + chrono::Duration::hours(2);
    let booked = driver.book(lot, (start, 1), "car", "qr-1").await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let id = booked.body["id"].as_str().unwrap();
    let resp = router(app.state.clone())
        .oneshot(
            Request::get(format!("/v1/reservations/{id}/pass/qr"))
                .header("authorization", format!("Bearer {}", driver.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    let svg = resp.into_body().collect().await.unwrap().to_bytes();
    let svg = String::from_utf8_lossy(&svg);
    assert!(svg.contains("<svg") && svg.contains("#000000"), "{svg}");
    let other = app.driver("someone.else@example.com").await;
    let r = other.get(&format!("/v1/reservations/{id}/pass/qr")).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    let r = app
        .call("GET", &format!("/v1/reservations/{id}/pass/qr"), None, None)
        .await;
    assert_envelope(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // Paid, then cancelled two hours ahead: the default policy gives half back, and the
    // cancellation says so. A cancelled booking has no pass to draw.
    let quote = booked.body["quoteCents"].as_i64().unwrap();
    let pay = json!({"method": "card", "token": "tok_ok", "last4": "4242"}).to_string();
    let paid = app
        .call_with(
            "POST",
            &format!("/v1/reservations/{id}/payments"),
            Some(&driver.token),
            Some(&pay),
            Some(("idempotency-key", "qr-pay-1")),
        )
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    // Before deciding, the driver sees what cancelling would give back.
    let preview = driver.get(&format!("/v1/reservations/{id}/refund")).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["paidCents"], quote);
    assert_eq!(preview.body["refundCents"], quote / 2);
    assert_eq!(preview.body["percent"], 50);
    let r = other.get(&format!("/v1/reservations/{id}/refund")).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    let cancel = app
        .call(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&driver.token),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.body);
    assert_eq!(
        cancel.body["refundedCents"], preview.body["refundCents"],
        "{}",
        cancel.body
    );
    assert_eq!(cancel.body["currency"], "EUR");
    let r = driver.get(&format!("/v1/reservations/{id}/pass/qr")).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body["error"]["code"].is_string());
}

pub async fn a_quote_before_booking_is_the_bookings_price_and_says_why(app: TestApp) {
    let lot = app.with_lot(json!({ "car": 2 })).await;
    // Weekday mornings 3.00, middays 4.00 an hour (the lot's default is 2.00).
    let from = app.state.services.now() - chrono::Duration::hours(1);
    let rates = json!({ "rates": [
        { "band": "morning", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 300, "effectiveFrom": from },
        { "band": "midday", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 400, "effectiveFrom": from },
    ]});
    app.publish_rates(lot, rates).await;

    // Monday 10:30–12:30 in Berlin: half an hour of morning, an hour and a half of midday.
    let (start, end) = ("2026-06-01T08:30:00Z", "2026-06-01T10:30:00Z");
    let uri = format!("/v1/lots/{lot}/quote?start-at={start}&end-at={end}&vehicle-type=car");
    let q = app.call("GET", &uri, None, None).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.body);
    assert_eq!(q.body["quoteCents"], 150 + 600, "{}", q.body);
    assert_eq!(q.body["currency"], "EUR");
    let parts: Vec<(String, i64, i64)> = q.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["band"].as_str().unwrap().to_owned(),
                p["centsPerHour"].as_i64().unwrap(),
                p["minutes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            ("morning".to_owned(), 300, 30),
            ("midday".to_owned(), 400, 90)
        ]
    );

    // Booking that window now costs what the quote said.
    let driver = app.driver("quoted@example.com").await;
    let booked = driver.book(lot, (t(start), 2), "car", "quoted-1").await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    assert_eq!(booked.body["quoteCents"], q.body["quoteCents"]);

    // The booking rules apply to a quote too.
    for (start, end, code) in [
        (
            "2026-06-01T06:00:00Z",
            "2026-06-01T07:30:00Z",
            "validation_failed",
        ),
        (
            "2026-06-01T08:30:00Z",
            "2026-06-01T08:40:00Z",
            "validation_failed",
        ),
        (
            "2026-07-01T08:30:00Z",
            "2026-07-01T09:30:00Z",
            "validation_failed",
        ),
    ] {
        let uri = format!("/v1/lots/{lot}/quote?start-at={start}&end-at={end}&vehicle-type=car");
        let r = app.call("GET", &uri, None, None).await;
        assert_envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let r = app
        .call(
            "GET",
            &format!("/v1/lots/999/quote?start-at={start}&end-at={end}&vehicle-type=car"),
            None,
            None,
        )
        .await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    let r = app
        .call(
            "GET",
            &format!("/v1/lots/{lot}/quote?start-at={start}&end-at={end}&vehicle-type=boat"),
            None,
            None,
        )
        .await;
    assert!(
        r.status.is_client_error() && r.body["error"]["code"].is_string(),
        "{}",
        r.body
    );
}
