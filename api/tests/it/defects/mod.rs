//! Regression tests for the defects found by trying the API from outside (issue 14), one test
//! per defect, on both stores. Each failed before its fix.

use super::{ADMIN, Reply, TestApp};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use parkflow_api::router;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

mod accounts;
pub use accounts::{
    a_balance_holds_one_currency, messages_schemes_and_text_hold_up,
    wrong_passwords_throttle_the_guesser_not_the_owner,
};

pub(crate) fn envelope(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
}

fn message(r: &Reply) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl TestApp {
    pub(crate) async fn keyed(&self, token: &str, uri: &str, key: &str, body: Value) -> Reply {
        self.call_with(
            "POST",
            uri,
            Some(token),
            Some(&body.to_string()),
            Some(("idempotency-key", key)),
        )
        .await
    }

    async fn user_id(&self, token: &str) -> String {
        let export = self.call("GET", "/v1/me/export", Some(token), None).await;
        export.body["account"]["id"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/sessions` as if from `peer`, with an optional `X-Forwarded-For`.
    async fn login_from(
        &self,
        peer: &str,
        forwarded: Option<&str>,
        email: &str,
        password: &str,
    ) -> StatusCode {
        let mut req = Request::builder()
            .method("POST")
            .uri("/v1/sessions")
            .header("content-type", "application/json");
        if let Some(f) = forwarded {
            req = req.header("x-forwarded-for", f);
        }
        let mut req = req
            .body(Body::from(
                json!({"email": email, "password": password}).to_string(),
            ))
            .unwrap();
        let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap()
            .status()
    }
}

const PASSWORD: &str = "correct horse battery";

/// 1. Spot counts are checked each and summed without overflow (a wrapped sum once passed the
///    check and inserted ~4.3 billion rows in one write transaction).
pub async fn overflowing_spot_counts_are_refused(app: TestApp) {
    for spots in [
        json!({"car": 4294967295u64, "van": 2}),
        json!({"car": 4294967295u64}),
        json!({"car": 3000, "van": 2001}),
        json!({"car": 0}),
        json!({"car": -1}),
        json!({}),
    ] {
        let body = json!({
            "name": "Lot X", "timeZone": "Europe/Berlin", "latitude": 52.5, "longitude": 13.4,
            "defaultCentsPerHour": 200, "spots": spots
        });
        let r = app.admin().post("/v1/lots", body.clone()).await;
        envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    assert!(app.outbox_types().await.is_empty(), "no lot was created");
    let spots: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spots")
        .fetch_one(app.state.services.store().pool())
        .await
        .unwrap();
    assert_eq!(spots, 0);
}

/// 2. One idempotency scheme for every keyed request: a key used to pay reservation A does not
///    "pay" reservation B, nor top up, and vice versa.
pub async fn a_key_reused_for_another_request_is_refused(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let driver = app.with_driver("reuse@example.com").await;
    let start = app.state.services.now() + Duration::hours(3);
    let window = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"});
    let a = app
        .keyed(&driver, "/v1/reservations", "book-a", window.clone())
        .await;
    let b = app
        .keyed(&driver, "/v1/reservations", "book-b", window)
        .await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    let (a, b) = (
        a.body["id"].as_str().unwrap().to_owned(),
        b.body["id"].as_str().unwrap().to_owned(),
    );
    let card = json!({"method": "card", "token": "tok_ok", "last4": "4242"});
    let pay = |id: &str| format!("/v1/reservations/{id}/payments");
    let paid = app.keyed(&driver, &pay(&a), "pay-1", card.clone()).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["reservationId"], a);
    // The same request again: the same answer, byte for byte.
    let again = app.keyed(&driver, &pay(&a), "pay-1", card.clone()).await;
    assert_eq!((again.status, &again.body), (paid.status, &paid.body));
    // The same key for reservation B: refused, and B stays unpaid.
    let other = app.keyed(&driver, &pay(&b), "pay-1", card.clone()).await;
    envelope(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let b_paid: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE reservation_id = $1 AND status = 'captured'",
    )
    .bind(&b)
    .fetch_one(app.state.services.store().pool())
    .await
    .unwrap();
    assert_eq!(b_paid, 0, "B was not paid");
    // Across endpoints too: the payment's key for a top-up, a booking's key for a payment.
    let top_up = json!({"amountCents": 1000, "payment": card});
    envelope(
        &app.keyed(&driver, "/v1/me/balance/top-ups", "pay-1", top_up.clone())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    envelope(
        &app.keyed(&driver, &pay(&b), "book-a", card.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let first = app
        .keyed(&driver, "/v1/me/balance/top-ups", "top-1", top_up.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let more = json!({"amountCents": 2000, "payment": {"method": "card", "token": "tok_ok", "last4": "4242"}});
    envelope(
        &app.keyed(&driver, "/v1/me/balance/top-ups", "top-1", more)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let balance = app.call("GET", "/v1/me/balance", Some(&driver), None).await;
    assert_eq!(balance.body["cents"], 1000, "one top-up");
    // Another driver's keys are their own.
    let other_driver = app.with_driver("reuse2@example.com").await;
    let theirs = app
        .keyed(&other_driver, "/v1/me/balance/top-ups", "top-1", top_up)
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    // A keyed request without its key is a 422, not a 400 on some and 422 on others.
    let no_key = app
        .call("POST", &pay(&b), Some(&driver), Some(&card.to_string()))
        .await;
    envelope(
        &no_key,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

/// 3. Concurrent retries of one booking all get the booking, never `no_spot_available`.
pub async fn concurrent_retries_of_one_booking_all_get_it(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let driver = app.with_driver("retry@example.com").await;
    let start = app.state.services.now() + Duration::hours(3);
    let body = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"}).to_string();
    app.warm_pool().await;
    let go = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (state, go, body, driver) =
                (app.state.clone(), go.clone(), body.clone(), driver.clone());
            tokio::spawn(async move {
                go.wait().await;
                crate::util::book_keyed(state, &driver, "the-one-booking", body).await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one booking: {ids:?}");
    let created = app
        .outbox_types()
        .await
        .iter()
        .filter(|t| *t == "reservation_created")
        .count();
    assert_eq!(created, 1);
}

/// 4. The waitlist takes exactly the windows a reservation may have; 11. so does availability.
pub async fn waitlist_and_availability_apply_the_booking_rules(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let driver = app.with_driver("rules@example.com").await;
    let now = app.state.services.now();
    let bad = [
        (now - Duration::hours(2), now - Duration::hours(1)),
        (now + Duration::hours(1), now + Duration::hours(26)),
        (
            now + Duration::days(8),
            now + Duration::days(8) + Duration::hours(1),
        ),
        (
            now + Duration::days(60),
            now + Duration::days(60) + Duration::hours(1),
        ),
        (
            now + Duration::days(400),
            now + Duration::days(400) + Duration::hours(1),
        ),
        (
            now + Duration::hours(1),
            now + Duration::hours(1) + Duration::minutes(10),
        ),
    ];
    for (start, end) in bad {
        let join = json!({"lotId": lot, "startAt": start, "endAt": end, "vehicleType": "car", "autoBook": true});
        let w = app
            .call(
                "POST",
                "/v1/waitlist",
                Some(&driver),
                Some(&join.to_string()),
            )
            .await;
        envelope(&w, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let q = format!(
            "/v1/parkingspots?lot-id={lot}&start-at={}&end-at={}&vehicle-type=car",
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let a = app.call("GET", &q, None, None).await;
        envelope(&a, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = app
            .keyed(
                &driver,
                "/v1/reservations",
                &format!("k{}", start.timestamp()),
                json!({"lotId": lot, "startAt": start, "endAt": end, "vehicleType": "car"}),
            )
            .await;
        assert_eq!(
            (message(&w), message(&a)),
            (message(&r), message(&r)),
            "one rule, one message"
        );
    }
    let start = now + Duration::hours(2);
    let q = format!(
        "/v1/parkingspots?lot-id={lot}&start-at={}&end-at={}&vehicle-type=car",
        start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (start + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let ok = app.call("GET", &q, None, None).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["spots"].as_array().unwrap().len(), 1);
    // And a bookable window with a free spot is "reserve one instead", in good English.
    let join = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"});
    let free = app
        .call(
            "POST",
            "/v1/waitlist",
            Some(&driver),
            Some(&join.to_string()),
        )
        .await;
    envelope(&free, StatusCode::CONFLICT, "spots_available");
    assert!(
        message(&free).starts_with("1 spot is free"),
        "{}",
        free.body
    );
}

/// 5. A waiter who cannot be served is ended with a reason and told; the queue goes on.
pub async fn one_unservable_waiter_does_not_stop_the_queue(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let alice = app.with_driver("alice.q@example.com").await;
    let bob = app.with_driver("bob.q@example.com").await;
    let carol = app.with_driver("carol.q@example.com").await;
    let now = app.state.services.now();
    let start = now + Duration::hours(5);
    let held = app
        .keyed(
            &alice,
            "/v1/reservations",
            "a",
            json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"}),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    let bob_waits = app
        .call(
            "POST",
            "/v1/waitlist",
            Some(&bob),
            Some(&json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car", "autoBook": true}).to_string()),
        )
        .await;
    assert_eq!(bob_waits.status, StatusCode::CREATED, "{}", bob_waits.body);
    // Carol joined earlier, under rules that allowed 25 hours (stored as it was then).
    let carol_id = app.user_id(&carol).await;
    sqlx::query(
        "INSERT INTO waitlist (id, user_id, lot_id, start_at, end_at, vehicle_type, auto_book, status, created_at)
         VALUES ($1, $2, $3, $4, $5, 'car', 1, 'waiting', $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&carol_id)
    .bind(lot)
    .bind(start.timestamp_millis())
    .bind((start + Duration::minutes(1500)).timestamp_millis())
    .bind((now - Duration::hours(1)).timestamp_millis())
    .execute(app.state.services.store().writer())
    .await
    .unwrap();

    let id = held.body["id"].as_str().unwrap();
    let cancelled = app
        .call(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let carols = app.call("GET", "/v1/waitlist", Some(&carol), None).await;
    assert_eq!(
        carols.body["items"][0]["status"], "failed",
        "{}",
        carols.body
    );
    assert!(
        carols.body["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("1500"),
        "{}",
        carols.body
    );
    assert_eq!(app.inbox_kinds(&carol).await, ["waitlist_ended"]);
    let bobs = app.call("GET", "/v1/waitlist", Some(&bob), None).await;
    assert_eq!(bobs.body["items"][0]["status"], "booked", "{}", bobs.body);
    // The periodic sweep has nothing left to trip on.
    app.state
        .services
        .waitlist()
        .serve_waitlist(warehouse_schema::LotId(lot))
        .await
        .unwrap();
}

/// 6. Erasure ends the driver's waitlist entries (nothing is booked for a deleted account);
///    7. the export holds them.
pub async fn erasure_ends_waitlist_entries_and_the_export_holds_them(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let alice = app.with_driver("alice.e@example.com").await;
    let bob = app.with_driver("bob.e@example.com").await;
    let start = app.state.services.now() + Duration::hours(5);
    let window = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"});
    let held = app.keyed(&alice, "/v1/reservations", "a", window).await;
    let join = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car", "autoBook": true});
    let entry = app
        .call("POST", "/v1/waitlist", Some(&bob), Some(&join.to_string()))
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let export = app.call("GET", "/v1/me/export", Some(&bob), None).await;
    assert_eq!(
        export.body["waitlist"][0]["id"], entry.body["id"],
        "{}",
        export.body
    );
    assert_eq!(export.body["waitlist"][0]["status"], "waiting");
    let bob_id = export.body["account"]["id"].as_str().unwrap().to_owned();

    let erased = app.call("DELETE", "/v1/me", Some(&bob), None).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(erased.body["erasure"]["deletedWaitlistEntries"], 1);
    let id = held.body["id"].as_str().unwrap();
    let cancelled = app
        .call(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let pool = app.state.services.store().pool();
    for table in ["reservations", "waitlist", "idempotency_keys"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE user_id = $1"
        )))
        .bind(&bob_id)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} holds nothing of the erased driver");
    }
}

/// 8. Every status the server sends carries the JSON envelope, the framework's own too.
pub async fn framework_rejections_carry_the_envelope(app: TestApp) {
    for (method, path) in [
        ("DELETE", "/v1/lots"),
        ("PUT", "/v1/reservations"),
        ("GET", "/v1/accounts"),
        ("GET", "/v1/gates/1/entries"),
    ] {
        let r = app.call(method, path, Some(ADMIN), None).await;
        envelope(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    for path in ["/v1/lots", "/v1/payments/webhook", "/v1/accounts"] {
        let r = app.call("POST", path, Some(ADMIN), Some(&big)).await;
        envelope(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    let r = app.call("GET", "/v1/no/such/path", None, None).await;
    envelope(&r, StatusCode::NOT_FOUND, "not_found");
    // A body sent without a JSON content type.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/accounts")
        .body(Body::from("{}"))
        .unwrap();
    let resp = router(app.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
}
