//! Regression tests of issue 14, continued: balances and currencies, the login throttle, and
//! the smaller defects seen from outside (messages, schemes, control characters).

use super::*;
use crate::{ADMIN, GATE, TestApp};
use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;
use std::sync::Arc;

/// 9. A balance holds one currency; paying a lot of another from it is refused, not converted.
pub async fn a_balance_holds_one_currency(app: TestApp) {
    let euro_lot = app.with_lot(json!({"car": 2})).await;
    let body = json!({
        "name": "Lot D", "timeZone": "America/New_York", "latitude": 40.7, "longitude": -74.0,
        "defaultCentsPerHour": 300, "spots": {"car": 2}
    });
    let dollar_lot = app.admin().post("/v1/lots", body.clone()).await.body["id"]
        .as_i64()
        .unwrap();
    let driver = app.with_driver("cur@example.com").await;
    let card = json!({"method": "card", "token": "tok_ok", "last4": "4242"});
    let topped = app
        .keyed(
            &driver,
            "/v1/me/balance/top-ups",
            "t1",
            json!({"amountCents": 5000, "payment": card, "currency": "EUR"}),
        )
        .await;
    assert_eq!(topped.status, StatusCode::CREATED, "{}", topped.body);
    assert_eq!(topped.body["currency"], "EUR");
    // A later top-up without a currency is in the balance's own; another currency is refused.
    let second = app
        .keyed(
            &driver,
            "/v1/me/balance/top-ups",
            "t2",
            json!({"amountCents": 1000, "payment": card}),
        )
        .await;
    assert_eq!(second.body["currency"], "EUR", "{}", second.body);
    envelope(
        &app.keyed(
            &driver,
            "/v1/me/balance/top-ups",
            "t3",
            json!({"amountCents": 1000, "payment": card, "currency": "USD"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "currency_mismatch",
    );
    let start = app.state.services.now() + Duration::hours(3);
    let book = |lot: i64, key: &'static str| {
        let app = &app;
        let driver = driver.clone();
        async move {
            let r = app
                .keyed(
                    &driver,
                    "/v1/reservations",
                    key,
                    json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let in_dollars = book(dollar_lot, "b1").await;
    let refused = app
        .keyed(
            &driver,
            &format!("/v1/reservations/{in_dollars}/payments"),
            "p1",
            json!({"method": "balance"}),
        )
        .await;
    envelope(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "currency_mismatch",
    );
    let balance = app.call("GET", "/v1/me/balance", Some(&driver), None).await;
    assert_eq!(balance.body["cents"], 6000, "nothing debited");
    let in_euros = book(euro_lot, "b2").await;
    let paid = app
        .keyed(
            &driver,
            &format!("/v1/reservations/{in_euros}/payments"),
            "p2",
            json!({"method": "balance"}),
        )
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["currency"], "EUR");
    // A first top-up without a currency is in the operator's default.
    let newcomer = app.with_driver("cur2@example.com").await;
    let first = app
        .keyed(
            &newcomer,
            "/v1/me/balance/top-ups",
            "t1",
            json!({"amountCents": 1000, "payment": card}),
        )
        .await;
    assert_eq!(first.body["currency"], "USD", "{}", first.body);
    envelope(
        &app.keyed(
            &newcomer,
            "/v1/me/balance/top-ups",
            "t2",
            json!({"amountCents": 1000, "payment": card, "currency": "usd"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

/// 10. Guessing a password throttles the guessing client, not the account's owner; a proxy's
///     forwarded address counts only when the proxy is trusted.
pub async fn wrong_passwords_throttle_the_guesser_not_the_owner(mut app: TestApp) {
    app.with_driver("owner@example.com").await;
    // The owner has used their usual client before.
    assert_eq!(
        app.login_from("198.51.100.1", None, "owner@example.com", PASSWORD)
            .await,
        StatusCode::OK
    );
    let mut throttled = false;
    for _ in 0..8 {
        let s = app
            .login_from(
                "203.0.113.66",
                None,
                "owner@example.com",
                "not the password",
            )
            .await;
        assert!(
            matches!(s, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS),
            "{s}"
        );
        throttled |= s == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(throttled, "the guessing client is slowed down");
    assert_eq!(
        app.login_from("198.51.100.1", None, "owner@example.com", PASSWORD)
            .await,
        StatusCode::OK,
        "the owner's usual client still gets in"
    );
    assert_eq!(
        app.login_from("198.51.100.2", None, "owner@example.com", PASSWORD)
            .await,
        StatusCode::OK,
        "and so does a new client of the owner's, while no wide attack is under way"
    );
    // Behind one NAT: 25 people mistype their passwords; a 26th still logs in.
    for i in 0..25 {
        let s = app
            .login_from(
                "192.0.2.10",
                None,
                &format!("nat{i}@example.com"),
                "typo typo typo",
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    app.with_driver("natted@example.com").await;
    assert_eq!(
        app.login_from("192.0.2.10", None, "natted@example.com", PASSWORD)
            .await,
        StatusCode::OK
    );
    // X-Forwarded-For is believed only from a configured proxy.
    app.state.edit().trusted_proxies = Arc::from(vec!["127.0.0.1".parse().unwrap()]);
    app.with_driver("proxied@example.com").await;
    for _ in 0..8 {
        app.login_from(
            "127.0.0.1",
            Some("203.0.113.77"),
            "proxied@example.com",
            "wrong wrong",
        )
        .await;
    }
    assert_eq!(
        app.login_from(
            "127.0.0.1",
            Some("203.0.113.77"),
            "proxied@example.com",
            "wrong wrong"
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.login_from(
            "127.0.0.1",
            Some("198.51.100.9"),
            "proxied@example.com",
            PASSWORD
        )
        .await,
        StatusCode::OK,
        "another client behind the same proxy is not throttled"
    );
    // From an untrusted peer the header is ignored: rotating it does not escape the limit.
    for i in 0..8 {
        app.login_from(
            "203.0.113.88",
            Some(&format!("10.1.1.{i}")),
            "proxied@example.com",
            "wrong wrong",
        )
        .await;
    }
    assert_eq!(
        app.login_from(
            "203.0.113.88",
            Some("10.1.1.200"),
            "proxied@example.com",
            "wrong wrong"
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// 12. Smaller ones: no serde internals in messages, one status for type errors, English,
///     a case-insensitive `Bearer`, and no control characters stored.
pub async fn messages_schemes_and_text_hold_up(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1, "ev": 1})).await;
    let driver = app.with_driver("small@example.com").await;
    let not_an_object = app
        .keyed(
            &driver,
            "/v1/reservations",
            "s1",
            json!([1, 2, 3, 4, 5, 6, 7]),
        )
        .await;
    envelope(
        &not_an_object,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let bad_spots = json!({"name": "X", "timeZone": "Europe/Berlin", "latitude": 0.0, "longitude": 0.0,
                           "defaultCentsPerHour": 100, "spots": {"car": "many"}});
    let spots = app
        .call(
            "POST",
            "/v1/lots",
            Some(ADMIN),
            Some(&bad_spots.to_string()),
        )
        .await;
    envelope(
        &spots,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let start = app.state.services.now() + Duration::hours(3);
    let near = app
        .keyed(
            &driver,
            "/v1/reservations",
            "s2",
            json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car", "near": [1]}),
        )
        .await;
    envelope(&near, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for r in [&not_an_object, &spots, &near] {
        let m = message(r);
        assert!(
            !m.contains("struct")
                && !m.contains("Body")
                && !m.contains(".?")
                && !m.contains("elements"),
            "{m}"
        );
    }
    assert!(message(&spots).contains("`spots`"), "{}", spots.body);
    assert!(message(&near).contains("`near`"), "{}", near.body);
    // A number where a vehicle type belongs is the same 422 as any other type error.
    let numeric = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(GATE),
            Some(r#"{"vehicleType": 1, "method": "qr"}"#),
        )
        .await;
    envelope(
        &numeric,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // "an ev spot".
    let ev: i64 =
        sqlx::query_scalar("SELECT id FROM spots WHERE lot_id = $1 AND vehicle_type = 'ev'")
            .bind(lot)
            .fetch_one(app.state.services.store().pool())
            .await
            .unwrap();
    let wrong_spot = app
        .keyed(
            &driver,
            "/v1/reservations",
            "s3",
            json!({"lotId": lot, "spotId": ev, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"}),
        )
        .await;
    assert_eq!(
        message(&wrong_spot),
        "a car may not use an ev spot",
        "{}",
        wrong_spot.body
    );
    // The auth scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = app
            .call_with(
                "GET",
                "/v1/vehicles",
                None,
                None,
                Some(("authorization", &format!("{scheme} {driver}"))),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.body);
    }
    // Control characters never reach the store (PostgreSQL cannot even hold NUL).
    for inquiry in [
        json!({"subject": "nul\u{0}here", "message": "hello"}),
        json!({"subject": "fine", "message": "nul\u{0}here"}),
        json!({"subject": "two\nlines", "message": "hello"}),
    ] {
        let r = app
            .call(
                "POST",
                "/v1/inquiries",
                Some(&driver),
                Some(&inquiry.to_string()),
            )
            .await;
        envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let multi_line = json!({"subject": "fine", "message": "line one\nline two"});
    let ok = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(&multi_line.to_string()),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    for region in ["B\rX", "B\u{b}X", "B\u{0}"] {
        let v = json!({"plate": "B PF 1", "region": region, "vehicleType": "car"});
        let r = app
            .call("POST", "/v1/vehicles", Some(&driver), Some(&v.to_string()))
            .await;
        envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let name = json!({"name": "Lot\u{0}", "timeZone": "Europe/Berlin", "latitude": 0.0, "longitude": 0.0,
                      "defaultCentsPerHour": 100, "spots": {"car": 1}});
    let r = app.admin().post("/v1/lots", name.clone()).await;
    envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
