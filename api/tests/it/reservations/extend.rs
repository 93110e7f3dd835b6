//! Extending a booking or a stay: the preview's price and spot, the extension over HTTP
//! (keyed), a paid booking's extra time due at the exit, and no overlap under a race.

use super::{request, spot_ids};
use crate::{TestApp, assert_envelope, t};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use warehouse_schema::{LotId, UserId};

impl TestApp {
    async fn extension(&self, token: &str, id: &str, end: DateTime<Utc>) -> crate::Reply {
        let end = end.to_rfc3339().replace('+', "%2B");
        let uri = format!("/v1/reservations/{id}/extension?end-at={end}");
        self.call("GET", &uri, Some(token), None).await
    }

    async fn extend(&self, token: &str, id: &str, key: &str, body: Value) -> crate::Reply {
        self.call_with(
            "POST",
            &format!("/v1/reservations/{id}/extension"),
            Some(token),
            Some(&body.to_string()),
            Some(("idempotency-key", key)),
        )
        .await
    }
}

/// A booking is extended at the rates in force, keeps its spot while it is free, moves to an
/// offered spot when not, pays the extra time with the booking or at the exit, and a stay in
/// progress is extended on its own spot.
pub async fn bookings_and_stays_extend_at_the_rates_in_force(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let spots = spot_ids(&app, lot).await;
    let driver = app.driver("extend@example.com").await;
    let other = app.driver("other.extend@example.com").await;
    // Monday 2026-06-01, 07:00 UTC now. Midday (12:00–17:00 Berlin) costs 300 an hour; the
    // rest the lot's default, 200.
    app.publish_rates(
        lot,
        json!({"rates": [{"band": "midday", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 300}]}),
    )
    .await;
    let book = |token: &str, spot: i64, from: &str, to: &str, key: &str| {
        let body = json!({"lotId": lot, "spotId": spot, "startAt": t(from), "endAt": t(to), "vehicleType": "car"});
        let token = token.to_owned();
        let key = key.to_owned();
        let app = &app;
        async move {
            app.call_with(
                "POST",
                "/v1/reservations",
                Some(&token),
                Some(&body.to_string()),
                Some(("idempotency-key", &key)),
            )
            .await
        }
    };
    // 07:30–08:30 UTC (09:30–10:30 Berlin, morning) on the first spot; someone else has it
    // from 11:00 UTC.
    let mine = book(
        &driver.token,
        spots[0],
        "2026-06-01T07:30:00Z",
        "2026-06-01T08:30:00Z",
        "m",
    )
    .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    let id = mine.body["id"].as_str().unwrap().to_owned();
    assert_eq!(mine.body["quoteCents"], 200);
    let theirs = book(
        &other.token,
        spots[0],
        "2026-06-01T11:00:00Z",
        "2026-06-01T12:00:00Z",
        "t",
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);

    // Until 09:30 UTC: 08:30–09:00 morning at 200, 09:00–09:30 midday at 300 → 250 extra;
    // the spot stays free; not paid yet, so it is paid with the booking.
    let p = app
        .extension(&driver.token, &id, t("2026-06-01T09:30:00Z"))
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["extraCents"], 250, "{}", p.body);
    assert_eq!(p.body["quoteCents"], 450);
    assert_eq!(p.body["spotStaysFree"], true);
    assert_eq!(p.body["alternatives"], json!([]));
    assert_eq!(p.body["settlement"], "with_payment");
    let parts = p.body["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{}", p.body);
    assert_eq!(
        (&parts[0]["centsPerHour"], &parts[0]["minutes"]),
        (&json!(200), &json!(30))
    );
    assert_eq!(
        (&parts[1]["centsPerHour"], &parts[1]["minutes"]),
        (&json!(300), &json!(30))
    );

    // Until 11:30: the spot is someone else's from 11:00, so the other spot is offered, and an
    // extension without it is refused with the reason.
    let p = app
        .extension(&driver.token, &id, t("2026-06-01T11:30:00Z"))
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["spotStaysFree"], false);
    assert_eq!(p.body["alternatives"][0]["spotId"], spots[1], "{}", p.body);
    let refused = app
        .extend(
            &driver.token,
            &id,
            "e0",
            json!({"endAt": t("2026-06-01T11:30:00Z")}),
        )
        .await;
    assert_envelope(&refused, StatusCode::CONFLICT, "spot_taken");

    // Extended to 09:30 on its own spot; the same key again answers the same, with the same
    // key for another end it is refused.
    let body = json!({"endAt": t("2026-06-01T09:30:00Z")});
    let done = app.extend(&driver.token, &id, "e1", body.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["reservation"]["endAt"], "2026-06-01T09:30:00Z");
    assert_eq!(done.body["reservation"]["quoteCents"], 450);
    assert_eq!(done.body["reservation"]["spotId"], spots[0]);
    assert_eq!(done.body["extraCents"], 250);
    // The pass follows the new end.
    assert_eq!(done.body["pass"]["expiresAt"], "2026-06-01T09:30:00Z");
    let again = app.extend(&driver.token, &id, "e1", body).await;
    assert_eq!((again.status, &again.body), (done.status, &done.body));
    let reused = app
        .extend(
            &driver.token,
            &id,
            "e1",
            json!({"endAt": t("2026-06-01T09:45:00Z")}),
        )
        .await;
    assert_envelope(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let pass = driver.get(&format!("/v1/reservations/{id}/pass")).await;
    assert_eq!(pass.body["expiresAt"], "2026-06-01T09:30:00Z");

    // Onward to 11:30 onto the offered spot: the whole window moves there.
    let moved = app
        .extend(
            &driver.token,
            &id,
            "e2",
            json!({"endAt": t("2026-06-01T11:30:00Z"), "spotId": spots[1]}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["reservation"]["spotId"], spots[1]);
    // 09:30–11:30 midday: 600 more.
    assert_eq!(moved.body["reservation"]["quoteCents"], 1050);
    let svc = &app.state.services;
    assert_eq!(
        svc.reservations()
            .overlapping_holds(LotId(lot))
            .await
            .unwrap(),
        0
    );
    assert!(
        app.outbox_types()
            .await
            .iter()
            .filter(|e| *e == "reservation_modified")
            .count()
            >= 2
    );

    // Paid by card, then extended: the extra is due at the exit.
    let paid = app
        .call_with(
            "POST",
            &format!("/v1/reservations/{id}/payments"),
            Some(&driver.token),
            Some(&json!({"method": "card", "token": "tok_ok", "last4": "4242"}).to_string()),
            Some(("idempotency-key", "pay")),
        )
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(paid.body["amountCents"], 1050);
    let p = app
        .extension(&driver.token, &id, t("2026-06-01T12:00:00Z"))
        .await;
    assert_eq!(p.body["settlement"], "at_exit", "{}", p.body);

    // The car enters at 07:30; during the stay it is extended on its own spot (moving is
    // refused), then leaves at 12:00 and owes only the extension.
    let pass = driver.get(&format!("/v1/reservations/{id}/pass")).await;
    assert_eq!(pass.status, StatusCode::OK, "{}", pass.body);
    let pass = pass.body["pass"].as_str().unwrap().to_owned();
    app.clock.set(t("2026-06-01T07:30:00Z"));
    // Access tokens last 15 minutes: sign in again at the new time.
    let token = app.login("extend@example.com").await;
    let entered = app
        .gate(lot)
        .enter(json!({"method": "qr", "pass": pass}))
        .await;
    assert_eq!(entered.status, StatusCode::CREATED, "{}", entered.body);
    let session = entered.body["sessionId"].as_str().unwrap().to_owned();
    let stay_move = app
        .extend(
            &token,
            &id,
            "e3",
            json!({"endAt": t("2026-06-01T12:00:00Z"), "spotId": spots[0]}),
        )
        .await;
    assert_envelope(&stay_move, StatusCode::CONFLICT, "stay_in_progress");
    let p = app.extension(&token, &id, t("2026-06-01T12:00:00Z")).await;
    assert_eq!(p.body["status"], "checked_in");
    assert_eq!(p.body["extraCents"], 150, "{}", p.body);
    assert_eq!(p.body["settlement"], "at_exit");
    let stay = app
        .extend(
            &token,
            &id,
            "e4",
            json!({"endAt": t("2026-06-01T12:00:00Z")}),
        )
        .await;
    assert_eq!(stay.status, StatusCode::OK, "{}", stay.body);
    assert_eq!(stay.body["reservation"]["status"], "checked_in");
    assert!(stay.body.get("pass").is_none(), "{}", stay.body);
    app.clock.set(t("2026-06-01T12:00:00Z"));
    let token = app.login("extend@example.com").await;
    let out = app.gate(lot).leave(&session).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["amountCents"], 1200, "{}", out.body);
    assert_eq!(out.body["dueCents"], 150, "{}", out.body);

    // Bad input: no earlier end, nothing after the stay, nobody else's, nothing too long.
    let done_now = app
        .extend(
            &token,
            &id,
            "e5",
            json!({"endAt": t("2026-06-01T13:00:00Z")}),
        )
        .await;
    assert_envelope(&done_now, StatusCode::CONFLICT, "not_active");
    let next = book(
        &token,
        spots[0],
        "2026-06-02T08:00:00Z",
        "2026-06-02T09:00:00Z",
        "n",
    )
    .await;
    let next = next.body["id"].as_str().unwrap().to_owned();
    let earlier = app
        .extension(&token, &next, t("2026-06-02T08:30:00Z"))
        .await;
    assert_envelope(
        &earlier,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let too_long = app
        .extension(&token, &next, t("2026-06-03T09:00:00Z"))
        .await;
    assert_envelope(
        &too_long,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let foreign = app
        .extension(
            &app.login("other.extend@example.com").await,
            &next,
            t("2026-06-02T10:00:00Z"),
        )
        .await;
    assert_envelope(&foreign, StatusCode::NOT_FOUND, "not_found");
    let no_end = app
        .call(
            "GET",
            &format!("/v1/reservations/{next}/extension"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(no_end.status.as_u16() / 100, 4, "{}", no_end.body);
}

/// An extension and new bookings racing for the extra time of one spot: exactly one wins,
/// and no two holds of the spot ever overlap.
pub async fn extensions_never_overlap_under_a_race(app: TestApp) {
    app.warm_pool().await;
    for round in 0..4i64 {
        let lot = app.with_lot(json!({"car": 1})).await;
        let spot = spot_ids(&app, lot).await[0];
        let start = app.state.services.now() + Duration::hours(2 + 6 * round);
        let owner = UserId::new();
        let svc = &app.state.services;
        let r = svc
            .reservations()
            .reserve(
                owner,
                request(lot, Some(spot), start, start + Duration::hours(1)),
                "own",
            )
            .await
            .unwrap();
        let gate = Arc::new(tokio::sync::Barrier::new(12));
        let mut tasks = Vec::new();
        for i in 0..12i64 {
            let svc = svc.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                gate.wait().await;
                if i % 4 == 0 {
                    // The owner extends by 1–3 hours.
                    let end = start + Duration::hours(2 + i / 4);
                    svc.reservations()
                        .extend(owner, r.id, end, None)
                        .await
                        .map(|e| (true, e.reservation.end_at))
                } else {
                    let from = start + Duration::minutes(60 + 10 * i);
                    svc.reservations()
                        .reserve(
                            UserId::new(),
                            request(lot, Some(spot), from, from + Duration::hours(1)),
                            &format!("b{i}"),
                        )
                        .await
                        .map(|b| (false, b.end_at))
                }
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(w) => won.push(w),
                Err(e) => assert!(
                    // A shorter extension after a longer one is no extension.
                    matches!(e.code(), "spot_taken" | "not_active" | "validation_failed"),
                    "round {round}: {e}"
                ),
            }
        }
        assert!(!won.is_empty(), "round {round}: someone gets the time");
        assert_eq!(
            svc.reservations()
                .overlapping_holds(LotId(lot))
                .await
                .unwrap(),
            0,
            "round {round}: {won:?}"
        );
        // What the store holds agrees with what was answered: the owner's end is the latest
        // extension that succeeded (or the booked one).
        let now = svc
            .reservations()
            .reservation_of(owner, r.id)
            .await
            .unwrap();
        let extended: Vec<_> = won.iter().filter(|w| w.0).map(|w| w.1).collect();
        let expected = extended.iter().max().copied().unwrap_or(r.end_at);
        assert_eq!(now.end_at, expected, "round {round}");
    }
}
