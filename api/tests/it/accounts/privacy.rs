//! A driver's data: the export holds everything, the erasure leaves nothing personal.

use super::*;
use crate::TestApp;
use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;

/// A driver exports everything held about them, then erases their account: the e-mail and
/// plates are gone from every table, upcoming reservations are cancelled, and what remains is
/// keyed only by the random user id.
pub async fn a_driver_exports_then_erases_their_data(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let token = app.with_driver("carol@example.com").await;
    let car = app
        .call(
            "POST",
            "/v1/vehicles",
            Some(&token),
            Some(&json!({"plate": "B-PF 123", "region": "DE", "vehicleType": "car"}).to_string()),
        )
        .await;
    assert_eq!(car.status, StatusCode::CREATED, "{}", car.body);
    let workplace = json!({"latitude": 52.52, "longitude": 13.40}).to_string();
    let w = app
        .call("PUT", "/v1/me/workplace", Some(&token), Some(&workplace))
        .await;
    assert!(w.status.is_success(), "{}", w.body);
    let start = app.state.services.now() + Duration::hours(3);
    let r = app
        .reserve(
            &token,
            Some("r1"),
            &json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleId": car.body["id"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let reservation = r.body["id"].as_str().unwrap().to_owned();
    let paid = app
        .call_with(
            "POST",
            &format!("/v1/reservations/{reservation}/payments"),
            Some(&token),
            Some(&json!({"method": "card", "token": "tok_ok", "last4": "4242"}).to_string()),
            Some(("idempotency-key", "p1")),
        )
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    let timers = parkflow_api::services::reservations::lifecycle::ReservationTimers::default();
    app.state
        .services
        .reservations()
        .sweep_reservations(start - Duration::minutes(50), &timers)
        .await
        .unwrap();

    let export = app.call("GET", "/v1/me/export", Some(&token), None).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let e = &export.body;
    assert_eq!(e["account"]["email"], "carol@example.com");
    assert_eq!(e["account"]["workplace"]["latitude"], 52.52);
    assert_eq!(e["vehicles"][0]["plate"], "BPF123", "{e}");
    assert_eq!(e["reservations"][0]["id"], reservation.as_str());
    assert_eq!(e["notifications"].as_array().unwrap().len(), 2, "{e}");
    assert_eq!(e["payments"][0]["last4"], "4242", "{e}");
    let user_id = e["account"]["id"].as_str().unwrap().to_owned();
    // The whole document, field by field, the same on both stores.
    insta::assert_json_snapshot!("data_export", crate::stable_ids(e));

    // Prepaid balance: two top-ups (card, then wallet) and a goodwill credit of 1.00 that no
    // card or wallet can take back. Erasure is refused until the operator settles the credit.
    for (key, cents, payment) in [
        (
            "t1",
            1_500,
            json!({"method": "card", "token": "tok_ok", "last4": "4242"}),
        ),
        ("t2", 700, json!({"method": "wallet", "token": "wal_ok"})),
    ] {
        let topped = app
            .call_with(
                "POST",
                "/v1/me/balance/top-ups",
                Some(&token),
                Some(&json!({"amountCents": cents, "payment": payment}).to_string()),
                Some(("idempotency-key", key)),
            )
            .await;
        assert_eq!(topped.status, StatusCode::CREATED, "{}", topped.body);
    }
    let pool = app.state.services.store().pool();
    let credit = |cents: i64| {
        sqlx::query("UPDATE balances SET cents = cents + $1 WHERE user_id = (SELECT id FROM users WHERE email = 'carol@example.com')")
            .bind(cents)
            .execute(pool)
    };
    credit(100).await.unwrap();
    let owed = app.call("DELETE", "/v1/me", Some(&token), None).await;
    envelope(&owed, StatusCode::CONFLICT, "balance_remaining");
    let refunded: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT amount_cents, refunded_cents, status FROM payments WHERE purpose = 'top_up' ORDER BY amount_cents",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        refunded,
        [
            (700, 700, "refunded".to_owned()),
            (1_500, 1_500, "refunded".to_owned())
        ],
        "the refundable part was paid back before the refusal"
    );
    let still = app.call("GET", "/v1/me/balance", Some(&token), None).await;
    assert_eq!(still.body["cents"], 100, "{}", still.body);
    // The operator settles the credit; one more top-up is paid out by the erasure itself.
    credit(-100).await.unwrap();
    let topped = app
        .call_with(
            "POST",
            "/v1/me/balance/top-ups",
            Some(&token),
            Some(&json!({"amountCents": 300, "payment": {"method": "card", "token": "tok_ok", "last4": "4242"}}).to_string()),
            Some(("idempotency-key", "t3")),
        )
        .await;
    assert_eq!(topped.status, StatusCode::CREATED, "{}", topped.body);

    let gone = app.call("DELETE", "/v1/me", Some(&token), None).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    assert_eq!(gone.body["erasure"]["cancelledReservations"], 1);
    assert_eq!(gone.body["erasure"]["deletedVehicles"], 1);
    assert_eq!(gone.body["erasure"]["paidOutCents"], 300);

    let creds = json!({"email": "carol@example.com", "password": "correct horse battery"});
    let login = app
        .call("POST", "/v1/sessions", None, Some(&creds.to_string()))
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
    // The erased account's access token, though not expired, opens nothing.
    let again = app.call("GET", "/v1/me/export", Some(&token), None).await;
    envelope(&again, StatusCode::UNAUTHORIZED, "unauthorized");
    for (table, column) in [
        ("users", "email"),
        ("vehicles", "plate"),
        ("reservations", "plate"),
        ("parking_sessions", "plate"),
        ("notification_outbox", "body"),
        ("payments", "last4"),
    ] {
        let sql = format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%carol%' OR {column} LIKE '%BPF123%'"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}.{column}");
    }
    let card_left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE token IS NOT NULL OR last4 IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(card_left, 0, "no token or card digits kept");
    let status: String = sqlx::query_scalar("SELECT status FROM reservations WHERE id = $1")
        .bind(&reservation)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
    let kept: String = sqlx::query_scalar("SELECT user_id FROM reservations WHERE id = $1")
        .bind(&reservation)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kept, user_id, "the pseudonymous key stays");
    // The event log never held the e-mail or the plate.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE payload LIKE '%carol%' OR payload LIKE '%BPF123%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    assert!(
        app.outbox_types()
            .await
            .ends_with(&["reservation_cancelled".to_owned()])
    );
    // The freed spot can be booked by someone else.
    let dave = app.with_driver("dave@example.com").await;
    let both = app
        .reserve(
            &dave,
            Some("d"),
            &json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"}),
        )
        .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
}
