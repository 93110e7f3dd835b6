//! Every rate explained: a reason published with a rate comes back from the schedule, the
//! portal, quotes and exit receipts; regulars of the lot and band are told once, ahead; a
//! reason that does not add up is refused.

use super::{TestApp, assert_envelope, t};
use axum::http::StatusCode;
use parkflow_api::accounts::Credentials;
use parkflow_api::services::CheckInRequest;
use serde_json::{Value, json};
use warehouse_schema::{EntryMethod, LotId, SessionId, UserId, VehicleType};

/// The reason pricing gives for raising weekday mornings from 2.00 to 2.25.
fn raise() -> Value {
    json!({
        "policy": "forecast-aware",
        "observedOccupancy": 0.91,
        "observedFrom": "2026-05-04T00:00:00Z",
        "observedTo": "2026-06-01T00:00:00Z",
        "targetLow": 0.6, "targetHigh": 0.8,
        "forecastAtPrevious": 0.9, "forecastAtNew": 0.87, "elasticity": -0.3,
        "previousCents": 200, "stepCents": 25, "floorCents": 50, "capCents": 800
    })
}

impl TestApp {
    /// `user` drives up to `lot` at each of `times` and leaves an hour later.
    async fn stays_of(&self, lot: i64, user: UserId, times: &[&str]) {
        let s = &self.state.services;
        for at in times {
            self.clock.set(t(at));
            let receipt = s
                .gates()
                .check_in(
                    LotId(lot),
                    CheckInRequest {
                        vehicle_type: VehicleType::Car,
                        method: EntryMethod::Qr,
                        plate: None,
                        user_id: Some(user),
                    },
                )
                .await
                .unwrap();
            self.clock.set(t(at) + chrono::Duration::hours(1));
            s.gates()
                .check_out(LotId(lot), receipt.session_id)
                .await
                .unwrap();
        }
    }
}

pub async fn a_rates_reason_reaches_drivers_admins_quotes_and_receipts(app: TestApp) {
    let lot = app.with_lot(json!({"car": 3})).await;
    let register = |email: &str| {
        let accounts = app.state.accounts.clone();
        let email = email.to_owned();
        async move {
            accounts
                .register(Credentials {
                    email,
                    password: "correct horse battery".into(),
                })
                .await
                .unwrap()
        }
    };
    // A regular of weekday mornings (09:00 Berlin, three times), and a driver seen twice.
    let regular = register("regular@example.com").await;
    let seldom = register("seldom@example.com").await;
    let mornings = [
        "2026-06-01T07:00:00Z",
        "2026-06-02T07:00:00Z",
        "2026-06-03T07:00:00Z",
    ];
    app.stays_of(lot, regular, &mornings).await;
    app.stays_of(lot, seldom, &mornings[..2]).await;
    app.clock.set(t("2026-06-03T10:00:00Z"));

    // A reason that does not lead from the previous rate to the new one is refused.
    let bad = app
        .call(
            "PUT",
            &format!("/v1/lots/{lot}/rates"),
            Some(super::PRICING),
            Some(
                &json!({"rates": [{"band": "morning", "dayKind": "weekday", "vehicleType": "car",
                "centsPerHour": 250, "effectiveFrom": "2026-06-10T05:00:00Z", "reason": raise()}]})
                .to_string(),
            ),
        )
        .await;
    assert_envelope(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let mut silly = raise();
    silly["observedOccupancy"] = json!(9.1);
    let silly = app
        .call(
            "PUT",
            &format!("/v1/lots/{lot}/rates"),
            Some(super::PRICING),
            Some(
                &json!({"rates": [{"band": "morning", "dayKind": "weekday", "vehicleType": "car",
                "centsPerHour": 225, "effectiveFrom": "2026-06-10T05:00:00Z", "reason": silly}]})
                .to_string(),
            ),
        )
        .await;
    assert_envelope(
        &silly,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Announced a week ahead, from Wednesday 07:00 Berlin; published twice (a retry).
    let rates = json!({"rates": [{"band": "morning", "dayKind": "weekday", "vehicleType": "car",
        "centsPerHour": 225, "effectiveFrom": "2026-06-10T05:00:00Z", "reason": raise()}]});
    app.publish_rates(lot, rates.clone()).await;
    app.publish_rates(lot, rates).await;

    // The schedule gives the reason as data and as a sentence.
    let schedule = app
        .call("GET", &format!("/v1/lots/{lot}/rates"), None, None)
        .await;
    assert_eq!(schedule.status, StatusCode::OK, "{}", schedule.body);
    let announced = &schedule.body["upcoming"][0];
    assert_eq!(announced["reason"], raise(), "{}", schedule.body);
    let sentence = announced["explanation"].as_str().unwrap().to_owned();
    assert_eq!(
        sentence,
        "Weekday mornings (07–11 h) were 91 % full from 4 May to 1 Jun, above the 60–80 % target: \
         +0.25 EUR an hour from Wed 10 Jun 07:00. Forecast: 90 % full at the old rate, 87 % at \
         the new one."
    );
    // The event the lake gets carries it too.
    let payload: String = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'rate_published' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.state.services.store().pool())
    .await
    .unwrap();
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["reason"]["observed_occupancy"], 0.91, "{event}");

    // The regular is told once, with the reason; the driver seen twice is not.
    let inbox = |user: UserId| {
        let pool = app.state.services.store().pool().clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT kind, body FROM notification_outbox WHERE user_id = $1 AND kind = 'rate_announced'",
            )
            .bind(user.0.to_string())
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let told = inbox(regular).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].1.contains("2.00 → 2.25 EUR an hour"), "{told:?}");
    assert!(told[0].1.contains(&sentence), "{told:?}");
    assert!(inbox(seldom).await.is_empty());

    // The portal shows the announced rate with its reason.
    let session = app.admin_session("rates.ops@example.com").await;
    let page = app
        .page("GET", &format!("/admin/lots/{lot}"), &session, None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let announced_table = page.text.split("id=\"announced\"").nth(1).unwrap_or("");
    assert!(
        announced_table.contains("Weekday mornings (07–11 h) were 91 % full"),
        "{}",
        page.text
    );

    // Once in force: a quote's stretch at that rate, and an exit's receipt, say why.
    app.clock.set(t("2026-06-10T04:00:00Z"));
    let quote = app
        .call(
            "GET",
            &format!(
                "/v1/lots/{lot}/quote?start-at=2026-06-10T05%3A00%3A00Z&end-at=2026-06-10T06%3A00%3A00Z&vehicle-type=car"
            ),
            None,
            None,
        )
        .await;
    assert_eq!(quote.status, StatusCode::OK, "{}", quote.body);
    assert_eq!(quote.body["quoteCents"], 225);
    assert_eq!(quote.body["parts"][0]["explanation"], json!(sentence));
    assert_eq!(quote.body["parts"][0]["reason"]["stepCents"], 25);
    app.clock.set(t("2026-06-10T05:30:00Z"));
    let entered = app.enter(lot, "car").await;
    let session_id: SessionId = serde_json::from_value(entered.body["sessionId"].clone()).unwrap();
    app.clock.set(t("2026-06-10T06:30:00Z"));
    let out = app.gate(lot).leave(&session_id.0.to_string()).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["centsPerHour"], 225);
    assert_eq!(out.body["rateExplanation"], json!(sentence));
    assert_eq!(out.body["rateReason"]["policy"], "forecast-aware");
    // A rate set by hand has no reason, and says nothing.
    app.publish_rates(
        lot,
        json!({"rates": [{"band": "morning", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 300}]}),
    )
    .await;
    let schedule = app
        .call("GET", &format!("/v1/lots/{lot}/rates"), None, None)
        .await;
    let by_hand = &schedule.body["current"][0];
    assert_eq!(by_hand["centsPerHour"], 300, "{}", schedule.body);
    assert!(by_hand.get("reason").is_none() && by_hand.get("explanation").is_none());
}

/// The chance of a free spot on arrival comes from the forecast the training job published,
/// is 0 where every spot the vehicle may use is reserved, and says whether a reservation is
/// still possible.
pub async fn arrival_chances_come_from_the_published_forecast(app: TestApp) {
    use parkflow_api::services::lots::ForecastHour;
    let lot = app.with_lot(json!({"car": 2})).await;
    let s = &app.state.services;
    let hour = |at: &str, occupancy, free_chance| ForecastHour {
        hour_start: t(at),
        occupancy,
        free_chance,
    };
    let trained = t("2026-06-01T06:55:00Z");
    let refused = s
        .lots()
        .publish_arrival_forecast(
            LotId(lot),
            trained,
            &[hour("2026-06-01T07:00:00Z", 1.0, 1.5)],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "validation_failed");
    let published = s
        .lots()
        .publish_arrival_forecast(
            LotId(lot),
            trained,
            &[
                hour("2026-06-01T07:00:00Z", 1.2, 0.8),
                hour("2026-06-01T08:00:00Z", 2.0, 0.1),
            ],
        )
        .await
        .unwrap();
    assert_eq!(published, 2);
    let app = &app;
    let ask = |at: &str, vehicle: &str| {
        let uri = format!(
            "/v1/lots/{lot}/arrival?at={}&vehicle-type={vehicle}",
            at.replace(':', "%3A")
        );
        async move { app.call("GET", &uri, None, None).await }
    };
    let soon = ask("2026-06-01T07:30:00Z", "car").await;
    assert_eq!(soon.status, StatusCode::OK, "{}", soon.body);
    assert_eq!(soon.body["freeChance"], 0.8);
    assert_eq!(soon.body["forecastOccupancy"], 1.2);
    assert_eq!(soon.body["capacity"], 2);
    assert_eq!(soon.body["hourStart"], "2026-06-01T07:00:00Z");
    assert_eq!(soon.body["trainedAt"], "2026-06-01T06:55:00Z");
    assert_eq!(soon.body["reservableSpots"], 2);
    assert!(soon.body.get("notReservable").is_none());
    // No spot a van may use (vans park on van spots only): no chance, whatever the forecast.
    let van = ask("2026-06-01T07:30:00Z", "van").await;
    assert_eq!(van.body["freeChance"], 0.0, "{}", van.body);
    assert_eq!(van.body["reservableSpots"], 0);

    // Both spots reserved from 08:00: nothing free on arrival then, nothing to reserve.
    for key in ["a", "b"] {
        let r = s
            .reservations()
            .reserve(
                UserId::new(),
                parkflow_api::services::reservations::NewReservation::new(
                    LotId(lot),
                    t("2026-06-01T08:00:00Z"),
                    t("2026-06-01T09:00:00Z"),
                    VehicleType::Car,
                ),
                key,
            )
            .await;
        assert!(r.is_ok(), "{r:?}");
    }
    let full = ask("2026-06-01T08:15:00Z", "car").await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.body);
    assert_eq!(full.body["freeChance"], 0.0);
    assert_eq!(full.body["forecastOccupancy"], 2.0);
    assert_eq!(full.body["reservableSpots"], 0);
    assert!(
        full.body["notReservable"]
            .as_str()
            .unwrap()
            .contains("no car spot")
    );

    // Past, beyond the forecast, or an unknown lot: told so.
    assert_envelope(
        &ask("2026-06-01T05:00:00Z", "car").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let beyond = ask("2026-06-02T12:00:00Z", "car").await;
    assert_envelope(&beyond, StatusCode::CONFLICT, "no_forecast");
    assert!(
        beyond.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the forecast covers 2026-06-01 07:00:00 UTC to 2026-06-01 09:00:00 UTC"),
        "{}",
        beyond.body
    );
    let nowhere = app
        .call(
            "GET",
            "/v1/lots/999999/arrival?at=2026-06-01T07%3A30%3A00Z&vehicle-type=car",
            None,
            None,
        )
        .await;
    assert_envelope(&nowhere, StatusCode::NOT_FOUND, "not_found");
    // A new training replaces the hours it covers.
    s.lots()
        .publish_arrival_forecast(
            LotId(lot),
            t("2026-06-01T07:55:00Z"),
            &[hour("2026-06-01T08:00:00Z", 1.0, 0.6)],
        )
        .await
        .unwrap();
    let again = ask("2026-06-01T08:15:00Z", "car").await;
    assert_eq!(again.body["forecastOccupancy"], 1.0, "{}", again.body);
    assert_eq!(again.body["trainedAt"], "2026-06-01T07:55:00Z");
}
