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
