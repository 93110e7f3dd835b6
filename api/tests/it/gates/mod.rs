//! Gate passes, plates and drive-ups at the gate; changing reservations; distances from the
//! workplace; the OpenAPI document. Over HTTP, on both stores.

use super::{Reply, TestApp, assert_envelope};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

mod lots;
pub use lots::{
    ev_spots_take_cars_only_where_the_lot_says_so, lots_and_spots_nearest_to_the_workplace_first,
    openapi_describes_every_route_and_the_docs_page_shows_it,
    times_need_an_offset_and_windows_count_local_days_across_dst,
};

/// 2026-06-01T07:00Z is "now" in every test; reservations start the next morning.
fn tomorrow(h: i64, m: i64) -> DateTime<Utc> {
    "2026-06-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        + Duration::hours(h)
        + Duration::minutes(m)
}

impl TestApp {
    async fn driver_with_car(&self, email: &str, plate: &str) -> (String, String) {
        let token = self.with_driver(email).await;
        let v = self
            .call(
                "POST",
                "/v1/vehicles",
                Some(&token),
                Some(&json!({"plate": plate, "region": "B", "vehicleType": "car"}).to_string()),
            )
            .await;
        assert_eq!(v.status, StatusCode::CREATED, "{}", v.body);
        (token, v.body["id"].as_str().unwrap().to_owned())
    }

    async fn book(&self, token: &str, key: &str, body: Value) -> Reply {
        self.call_with(
            "POST",
            "/v1/reservations",
            Some(token),
            Some(&body.to_string()),
            Some(("idempotency-key", key)),
        )
        .await
    }

    async fn status_of(&self, token: &str, id: &str) -> String {
        let r = self
            .call("GET", &format!("/v1/reservations/{id}"), Some(token), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["status"].as_str().unwrap().to_owned()
    }

    fn set_now(&self, at: DateTime<Utc>) {
        self.clock.set(at);
    }

    /// A fresh access token (the old one expires 15 minutes after a jump of the clock).
    pub(crate) async fn login(&self, email: &str) -> String {
        let creds = json!({"email": email, "password": "correct horse battery"}).to_string();
        let s = self.call("POST", "/v1/sessions", None, Some(&creds)).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        s.body["accessToken"].as_str().unwrap().to_owned()
    }
}

pub async fn a_pass_opens_the_gate_once_within_its_window(app: TestApp) {
    let lot = app.with_lot(json!({"car": 3})).await;
    let other_lot = app.with_lot(json!({"car": 1})).await;
    let (token, vehicle) = app.driver_with_car("p@example.com", "b pf 101").await;
    let r = app
        .book(
            &token,
            "k1",
            json!({"lotId": lot, "startAt": tomorrow(8, 0), "endAt": tomorrow(10, 0), "vehicleId": vehicle}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["reservationId"].as_str().unwrap().to_owned();
    let spot = r.body["spotId"].as_i64().unwrap();
    let quote = r.body["quoteCents"].as_i64().unwrap();
    assert_eq!(r.body["plate"], "BPF101");
    let pass = r.body["pass"]["pass"].as_str().unwrap().to_owned();
    assert!(pass.starts_with("pf1.") && pass.len() > 80, "{pass}");
    assert_eq!(r.body["pass"]["entryFrom"], json!(tomorrow(7, 45)));
    assert_eq!(r.body["pass"]["entryUntil"], json!(tomorrow(8, 15)));
    // The same pass is served again on request.
    let again = app
        .call(
            "GET",
            &format!("/v1/reservations/{id}/pass"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(again.body["pass"], json!(pass));

    let qr = |pass: &str| json!({"method": "qr", "pass": pass});
    // Too early, a forged pass, another lot's gate.
    app.set_now(tomorrow(7, 40));
    assert_envelope(
        &app.gate(lot).enter(qr(&pass)).await,
        StatusCode::CONFLICT,
        "outside_entry_window",
    );
    app.set_now(tomorrow(7, 50));
    let mut forged = pass.clone();
    forged.replace_range(8..9, if &pass[8..9] == "A" { "B" } else { "A" });
    assert_envelope(
        &app.gate(lot).enter(qr(&forged)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_pass",
    );
    assert_envelope(
        &app.gate(lot).enter(qr("not a pass")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_pass",
    );
    assert_envelope(
        &app.gate(other_lot).enter(qr(&pass)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_lot",
    );

    // In the window: the reserved spot, once.
    let entry = app.gate(lot).enter(qr(&pass)).await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    assert_eq!(entry.body["spotId"], spot);
    assert_eq!(entry.body["reservationId"], json!(id));
    assert_envelope(
        &app.gate(lot).enter(qr(&pass)).await,
        StatusCode::CONFLICT,
        "already_entered",
    );
    let token = app.login("p@example.com").await;
    assert_eq!(app.status_of(&token, &id).await, "checked_in");
    assert_envelope(
        &app.call(
            "POST",
            &format!("/v1/reservations/{id}/cancel"),
            Some(&token),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "not_active",
    );

    // Leaving half an hour late: the quote plus 30 minutes at the rate in force (200/h).
    app.set_now(tomorrow(10, 30));
    let exit = app.gate(lot).exit(json!({"pass": pass})).await;
    assert_eq!(exit.status, StatusCode::OK, "{}", exit.body);
    assert_eq!(exit.body["amountCents"], quote + 100);
    let token = app.login("p@example.com").await;
    assert_eq!(app.status_of(&token, &id).await, "completed");
    assert_envelope(
        &app.gate(lot).exit(json!({"pass": pass})).await,
        StatusCode::CONFLICT,
        "session_closed",
    );

    let events = app.outbox_types().await;
    assert_eq!(events.iter().filter(|e| *e == "check_in").count(), 1);
    assert_eq!(events.iter().filter(|e| *e == "exit").count(), 1);
    let check_in: String =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = 'check_in'")
            .fetch_one(app.state.services.store().pool())
            .await
            .unwrap();
    let check_in: Value = serde_json::from_str(&check_in).unwrap();
    assert_eq!(check_in["reservation_id"], json!(id));
    assert_eq!(check_in["method"], "qr");
}

pub async fn a_cancelled_or_late_reservation_opens_nothing(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let token = app.with_driver("c@example.com").await;
    let book = |key: &'static str, h: i64| {
        let app = &app;
        let token = token.clone();
        async move {
            let r = app
                .book(&token, key, json!({"lotId": lot, "startAt": tomorrow(h, 0), "endAt": tomorrow(h + 1, 0), "vehicleType": "car"}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            (
                r.body["reservationId"].as_str().unwrap().to_owned(),
                r.body["pass"]["pass"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (cancelled, cancelled_pass) = book("a", 8).await;
    let (_, late_pass) = book("b", 9).await;
    let c = app
        .call(
            "POST",
            &format!("/v1/reservations/{cancelled}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    app.set_now(tomorrow(8, 0));
    assert_envelope(
        &app.gate(lot)
            .enter(json!({"method": "nfc", "pass": cancelled_pass}))
            .await,
        StatusCode::CONFLICT,
        "not_active",
    );
    app.set_now(tomorrow(9, 16));
    assert_envelope(
        &app.gate(lot)
            .enter(json!({"method": "nfc", "pass": late_pass}))
            .await,
        StatusCode::CONFLICT,
        "outside_entry_window",
    );
    // After the reservation's end the pass itself has expired.
    app.set_now(tomorrow(10, 0));
    assert_envelope(
        &app.gate(lot)
            .enter(json!({"method": "nfc", "pass": late_pass}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "pass_expired",
    );
}

pub async fn plates_and_drive_ups_at_the_gate(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let (token, vehicle) = app.driver_with_car("plate@example.com", "B-XY-9").await;
    let r = app
        .book(&token, "k", json!({"lotId": lot, "startAt": tomorrow(8, 0), "endAt": tomorrow(9, 0), "vehicleId": vehicle}))
        .await;
    let reserved_spot = r.body["spotId"].as_i64().unwrap();
    let id = r.body["reservationId"].as_str().unwrap().to_owned();

    // Hours before the reservation its plate enters as that driver's drive-up, and is kept off
    // the spot reserved within the drive-up horizon (4 h): the other spot.
    app.set_now(tomorrow(5, 0));
    let early = app
        .gate(lot)
        .enter(json!({"method": "plate", "plate": "b-xy-9"}))
        .await;
    assert_eq!(early.status, StatusCode::CREATED, "{}", early.body);
    assert_ne!(early.body["spotId"], reserved_spot);
    assert!(early.body.get("reservationId").is_none(), "{}", early.body);
    // A second drive-up finds the lot full: the last spot is held for the reservation.
    assert_envelope(
        &app.gate(lot)
            .enter(json!({"method": "staff", "vehicleType": "car"}))
            .await,
        StatusCode::CONFLICT,
        "lot_full",
    );
    let out = app.gate(lot).exit(json!({"plate": "BXY9"})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.get("reservationId").is_none());

    // In the entry window the camera's plate read enters the reservation.
    app.set_now(tomorrow(8, 10));
    let on_time = app
        .gate(lot)
        .enter(json!({"method": "plate", "plate": "BXY9"}))
        .await;
    assert_eq!(on_time.status, StatusCode::CREATED, "{}", on_time.body);
    assert_eq!(on_time.body["spotId"], reserved_spot);
    assert_eq!(on_time.body["reservationId"], json!(id));

    // Unknown plates need a vehicle type; a gate body must name something.
    assert_envelope(
        &app.gate(lot)
            .enter(json!({"method": "plate", "plate": "NOPE1"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.gate(lot).enter(json!({"method": "qr"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.gate(lot)
            .exit(json!({"plate": "BXY9", "sessionId": uuid::Uuid::now_v7()}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.gate(lot).exit(json!({"plate": "NOPE1"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Drivers cannot open gates.
    let token = app.login("plate@example.com").await;
    assert_envelope(
        &app.call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(&token),
            Some(r#"{"method":"qr","vehicleType":"car"}"#),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

/// Two gates reading the same pass at the same moment open it once.
pub async fn one_pass_read_twice_at_once_enters_once(app: TestApp) {
    let lot = app.with_lot(json!({"car": 5})).await;
    let token = app.with_driver("race@example.com").await;
    let r = app
        .book(&token, "k", json!({"lotId": lot, "startAt": tomorrow(8, 0), "endAt": tomorrow(9, 0), "vehicleType": "car"}))
        .await;
    let pass = r.body["pass"]["pass"].as_str().unwrap().to_owned();
    app.set_now(tomorrow(8, 0));
    app.warm_pool().await;
    let app = Arc::new(app);
    let start = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (app, start, pass) = (app.clone(), start.clone(), pass.clone());
            tokio::spawn(async move {
                start.wait().await;
                app.gate(lot)
                    .enter(json!({"method": "qr", "pass": pass}))
                    .await
            })
        })
        .collect();
    let refused = (StatusCode::CONFLICT, "already_entered");
    assert_eq!(
        super::successes(tasks, StatusCode::CREATED, refused).await,
        1
    );
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM parking_sessions")
        .fetch_one(app.state.services.store().pool())
        .await
        .unwrap();
    assert_eq!(sessions, 1);
}

pub async fn reservations_change_before_they_start(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let me = app.with_driver("me@example.com").await;
    let other = app.with_driver("other@example.com").await;
    let mine = app
        .book(&me, "a", json!({"lotId": lot, "startAt": tomorrow(8, 0), "endAt": tomorrow(9, 0), "vehicleType": "car"}))
        .await;
    let id = mine.body["reservationId"].as_str().unwrap().to_owned();
    let spot = mine.body["spotId"].as_i64().unwrap();
    let theirs = app
        .book(&other, "b", json!({"lotId": lot, "spotId": spot, "startAt": tomorrow(10, 0), "endAt": tomorrow(11, 0), "vehicleType": "car"}))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    let patch = |body: Value, token: &str| {
        let (app, id, token) = (&app, id.clone(), token.to_owned());
        async move {
            app.call(
                "PATCH",
                &format!("/v1/reservations/{id}"),
                Some(&token),
                Some(&body.to_string()),
            )
            .await
        }
    };
    // Longer, back to back with theirs: same spot, twice the quote.
    let longer = patch(json!({"endAt": tomorrow(10, 0)}), &me).await;
    assert_eq!(longer.status, StatusCode::OK, "{}", longer.body);
    assert_eq!(longer.body["spotId"], spot);
    assert_eq!(longer.body["quoteCents"], 400);
    // Overlapping theirs: moved to the other spot; on their spot by name: refused.
    let moved = patch(json!({"endAt": tomorrow(10, 30)}), &me).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_ne!(moved.body["spotId"], spot);
    assert_envelope(
        &patch(json!({"spotId": spot}), &me).await,
        StatusCode::CONFLICT,
        "spot_taken",
    );
    // The old window is free again on the first spot, the new one is held on the second.
    let free = app
        .call(
            "GET",
            &format!("/v1/parkingspots?lot-id={lot}&start-at=2026-06-02T08:00:00Z&end-at=2026-06-02T09:00:00Z&vehicle-type=car"),
            None,
            None,
        )
        .await;
    assert_eq!(
        free.body["spots"].as_array().unwrap().len(),
        1,
        "{}",
        free.body
    );
    assert_eq!(free.body["spots"][0]["spotId"], spot);
    // Someone else's is not found; nothing to change and rule breaks are 422; started is 409.
    assert_envelope(
        &patch(json!({"endAt": tomorrow(9, 30)}), &other).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_envelope(
        &patch(json!({}), &me).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &patch(json!({"endAt": tomorrow(7, 0)}), &me).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &patch(json!({"startAt": "tomorrow"}), &me).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    app.set_now(tomorrow(8, 1));
    let me = app.login("me@example.com").await;
    assert_envelope(
        &patch(json!({"endAt": tomorrow(9, 0)}), &me).await,
        StatusCode::CONFLICT,
        "already_started",
    );
    let modified = app
        .outbox_types()
        .await
        .iter()
        .filter(|t| *t == "reservation_modified")
        .count();
    assert_eq!(modified, 2);
    // The driver was told of each change (the refused ones change nothing, so say nothing).
    let inbox = app.call("GET", "/v1/notifications", Some(&me), None).await;
    let kinds = app.inbox_kinds(&me).await;
    assert_eq!(
        kinds,
        [
            "reservation_modified",
            "reservation_modified",
            "reservation_confirmed"
        ],
        "{}",
        inbox.body
    );
    assert!(
        inbox.body["items"][0]["body"]
            .as_str()
            .unwrap()
            .starts_with("Reservation changed: spot "),
        "{}",
        inbox.body
    );
}
