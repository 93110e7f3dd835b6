//! Accounts, sessions and reservations over HTTP, on both stores.

use super::{GATE, Reply, TestApp};
use axum::http::StatusCode;
use chrono::Duration;
use serde_json::{Value, json};

mod privacy;
pub use privacy::a_driver_exports_then_erases_their_data;

impl TestApp {
    /// Register and log in a driver; returns the access token.
    pub async fn with_driver(&self, email: &str) -> String {
        let creds = json!({"email": email, "password": "correct horse battery"}).to_string();
        let r = self.call("POST", "/v1/accounts", None, Some(&creds)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let s = self.call("POST", "/v1/sessions", None, Some(&creds)).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        s.body["accessToken"].as_str().unwrap().to_owned()
    }

    async fn reserve(&self, token: &str, key: Option<&str>, body: &Value) -> Reply {
        self.call_with(
            "POST",
            "/v1/reservations",
            Some(token),
            Some(&body.to_string()),
            key.map(|k| ("idempotency-key", k)),
        )
        .await
    }
}

fn envelope(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
}

pub async fn accounts_sessions_and_refresh(app: TestApp) {
    let creds = |email: &str, pw: &str| json!({"email": email, "password": pw}).to_string();
    let r = app
        .call(
            "POST",
            "/v1/accounts",
            None,
            Some(&creds("Ann@Example.com", "correct horse battery")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    envelope(
        &app.call(
            "POST",
            "/v1/accounts",
            None,
            Some(&creds("ann@example.com", "another long one")),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    );
    envelope(
        &app.call(
            "POST",
            "/v1/accounts",
            None,
            Some(&creds("not-an-email", "correct horse battery")),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    envelope(
        &app.call(
            "POST",
            "/v1/accounts",
            None,
            Some(&creds("bob@example.com", "short")),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let s = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(&creds("ann@example.com", "correct horse battery")),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.body);
    assert_eq!(s.body["tokenType"], "Bearer");
    assert_eq!(s.body["expiresIn"], 900);
    let access = s.body["accessToken"].as_str().unwrap().to_owned();
    let refresh = s.body["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call("GET", "/v1/vehicles", Some(&access), None)
            .await
            .status,
        StatusCode::OK
    );

    // Refresh tokens rotate: the new one works, the old one is spent.
    let body = json!({"refreshToken": refresh}).to_string();
    let r = app
        .call("POST", "/v1/sessions/refresh", None, Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    envelope(
        &app.call("POST", "/v1/sessions/refresh", None, Some(&body))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Access tokens are short-lived.
    app.clock
        .set(app.state.services.now() + Duration::minutes(16));
    envelope(
        &app.call("GET", "/v1/vehicles", Some(&access), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Wrong passwords, then the account is locked for a while; unknown accounts look the same.
    envelope(
        &app.call(
            "POST",
            "/v1/sessions",
            None,
            Some(&creds("nobody@example.com", "whatever at all")),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    for _ in 0..5 {
        envelope(
            &app.call(
                "POST",
                "/v1/sessions",
                None,
                Some(&creds("ann@example.com", "wrong password!")),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    let locked = app
        .call(
            "POST",
            "/v1/sessions",
            None,
            Some(&creds("ann@example.com", "correct horse battery")),
        )
        .await;
    envelope(&locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    // When to try again, as a number of seconds the message names too.
    let retry_after: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let message = locked.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("retry in {retry_after} s")),
        "{message}"
    );
}

pub async fn drivers_reserve_over_http_and_see_only_their_own(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2, "ev": 1})).await;
    let driver_ann = app.driver("ann@example.com").await;
    let ann = driver_ann.token.clone();
    let bob = app.with_driver("bob@example.com").await;
    let start = app.state.services.now() + Duration::hours(2);
    let end = start + Duration::hours(2);
    let body = json!({"lotId": lot, "startAt": start, "endAt": end, "vehicleType": "ev"});

    envelope(
        &app.reserve(&ann, None, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let first = driver_ann.book(lot, (start, 2), "ev", "k1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(
        first.body["spotLabel"], "E-001",
        "an EV gets the charging spot first"
    );
    assert!(first.body["quoteCents"].as_i64().unwrap() > 0);
    let replay = app.reserve(&ann, Some("k1"), &body).await;
    assert_eq!(
        replay.body["id"], first.body["id"],
        "same key, same reservation"
    );
    let id = first.body["id"].as_str().unwrap().to_owned();

    // Free spots for the window no longer include the reserved one; back to back, they do.
    let q = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!(
            "/v1/parkingspots?lot-id={lot}&start-at={}&end-at={}&vehicle-type=ev",
            from.to_rfc3339().replace('+', "%2B"),
            to.to_rfc3339().replace('+', "%2B")
        )
    };
    let during = app.call("GET", &q(start, end), None, None).await;
    assert_eq!(during.status, StatusCode::OK, "{}", during.body);
    let labels: Vec<&str> = during.body["spots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["C-001", "C-002"]);
    let after = app
        .call("GET", &q(end, end + Duration::hours(1)), None, None)
        .await;
    assert_eq!(after.body["spots"][0]["label"], "E-001");
    envelope(&app.call("GET", &format!("/v1/parkingspots?lot-id={lot}&start-at=2026-06-01T10:00:00&end-at=2026-06-01T11:00:00Z&vehicle-type=ev"), None, None).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // A vehicle of one's own may stand in for the vehicle type; someone else's may not.
    let car = app
        .call(
            "POST",
            "/v1/vehicles",
            Some(&bob),
            Some(&json!({"plate": "b 123", "region": "ca", "vehicleType": "car"}).to_string()),
        )
        .await;
    assert_eq!(car.status, StatusCode::CREATED, "{}", car.body);
    assert_eq!(car.body["plate"], "B123");
    let by_vehicle =
        json!({"lotId": lot, "startAt": start, "endAt": end, "vehicleId": car.body["id"]});
    let r = app.reserve(&bob, Some("b1"), &by_vehicle).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    envelope(
        &app.reserve(&ann, Some("a2"), &by_vehicle).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let both = json!({"lotId": lot, "startAt": start, "endAt": end, "vehicleType": "car", "vehicleId": car.body["id"]});
    envelope(
        &app.reserve(&bob, Some("b2"), &both).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Only the owner sees or cancels a reservation.
    let mine = driver_ann.get("/v1/reservations").await;
    assert_eq!(
        (
            mine.body["total"].as_i64(),
            mine.body["items"].as_array().map(Vec::len)
        ),
        (Some(1), Some(1))
    );
    envelope(
        &app.call("GET", &format!("/v1/reservations/{id}"), Some(&bob), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    envelope(
        &app.call(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&bob),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let cancelled = app
        .call(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert!(cancelled.body["cancellationId"].is_string());
    assert_eq!(
        app.call("GET", &format!("/v1/reservations/{id}"), Some(&ann), None)
            .await
            .body["status"],
        "cancelled"
    );
    envelope(
        &app.call("GET", "/v1/reservations/not-a-uuid", Some(&ann), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    envelope(
        &app.call("GET", "/v1/reservations?perPage=500", Some(&ann), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Roles: no token, a gate token, a driver at the gate.
    envelope(
        &app.reserve("", Some("x"), &body).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    envelope(
        &app.reserve(GATE, Some("x"), &body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let at_gate = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(&ann),
            Some(r#"{"vehicleType":"car","method":"qr"}"#),
        )
        .await;
    envelope(&at_gate, StatusCode::FORBIDDEN, "forbidden");
    let types = app.outbox_types().await;
    assert_eq!(
        types.iter().filter(|t| *t == "reservation_created").count(),
        2
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "reservation_cancelled")
            .count(),
        1
    );
}

/// Reminders before the start, a warning after it, the no-show cancellation at last — each once,
/// in the owner's inbox only; the no-show frees the spot.
pub async fn reminders_warnings_and_no_shows_reach_the_inbox_once(app: TestApp) {
    use parkflow_api::services::reservations::lifecycle::{ReservationTimers, SweepReport};
    let lot = app.with_lot(json!({"car": 1})).await;
    let alice = app.with_driver("alice@example.com").await;
    let bob = app.with_driver("bob@example.com").await;
    // Now is 09:00 local (07:00 UTC); Alice reserves 11:00–14:00 local, Bob 15:00–16:00.
    let start = app.state.services.now() + Duration::hours(2);
    let body = |s: chrono::DateTime<chrono::Utc>, hours: i64| json!({"lotId": lot, "startAt": s, "endAt": s + Duration::hours(hours), "vehicleType": "car"});
    let r = app.reserve(&alice, Some("a"), &body(start, 3)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .reserve(&bob, Some("b"), &body(start + Duration::hours(4), 1))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let timers = &ReservationTimers::default();
    let service = &app.state.services;
    let sweep = |minutes_from_start: i64| {
        let at = start + Duration::minutes(minutes_from_start);
        app.clock.set(at);
        async move {
            service
                .reservations()
                .sweep_reservations(at, timers)
                .await
                .unwrap()
        }
    };
    let quiet = SweepReport::default();
    assert_eq!(sweep(-90).await, quiet, "no reminder 90 minutes ahead");
    assert_eq!(sweep(-55).await.reminders, 1, "Alice's 1-hour reminder");
    assert_eq!(sweep(-50).await, quiet, "sent once");
    assert_eq!(sweep(-14).await.reminders, 1, "the 15-minute one");
    assert_eq!(sweep(-5).await, quiet);
    assert_eq!(
        sweep(16).await.warnings,
        1,
        "nobody entered: Alice is warned"
    );
    assert_eq!(sweep(40).await, quiet);
    assert_eq!(sweep(61).await.no_shows, 1, "Alice's no-show");
    assert_eq!(sweep(62).await, quiet, "cancelled once");

    // Hours have passed: fresh access tokens.
    let app = &app;
    let login = |email: &'static str| async move {
        let creds = json!({"email": email, "password": "correct horse battery"}).to_string();
        let s = app.call("POST", "/v1/sessions", None, Some(&creds)).await;
        s.body["accessToken"].as_str().unwrap().to_owned()
    };
    let (alice, bob) = (
        login("alice@example.com").await,
        login("bob@example.com").await,
    );
    let mine = app
        .call("GET", &format!("/v1/reservations/{id}"), Some(&alice), None)
        .await;
    assert_eq!(mine.body["status"], "no_show", "{}", mine.body);
    // The spot is free again for the rest of the window.
    let later = start + Duration::minutes(70);
    let again = app
        .reserve(
            &bob,
            Some("c"),
            &json!({"lotId": lot, "startAt": later, "endAt": start + Duration::hours(3), "vehicleType": "car"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);

    let inbox = app
        .call("GET", "/v1/notifications", Some(&alice), None)
        .await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.body);
    let kinds = app.inbox_kinds(&alice).await;
    assert_eq!(
        kinds,
        [
            "no_show",
            "no_show_warning",
            "reservation_reminder",
            "reservation_reminder",
            "reservation_confirmed"
        ],
        "newest first: {}",
        inbox.body
    );
    assert!(
        inbox.body["items"][0]["body"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{}",
        inbox.body
    );
    assert!(inbox.body["items"][0].get("dedupKey").is_none());
    let bobs = app.call("GET", "/v1/notifications", Some(&bob), None).await;
    assert_eq!(bobs.status, StatusCode::OK);
    let bob_kinds = app.inbox_kinds(&bob).await;
    assert_eq!(
        bob_kinds,
        ["reservation_confirmed", "reservation_confirmed"],
        "only their own: {}",
        bobs.body
    );
    let anonymous = app.call("GET", "/v1/notifications", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let bad = app
        .call("GET", "/v1/notifications?limit=0", Some(&alice), None)
        .await;
    envelope(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
