//! Monthly passes over HTTP, on both stores: products, buying (keyed, paid, refused), the kept
//! spot that availability, drive-ups and bookings leave alone, holders at the gate (free inside
//! their rights, the tariff outside), renewal with its reminder, cancellation at the period's
//! end, a lapsed renewal, and the last place sold once under a race.

use super::{ADMIN, Reply, TestApp, assert_envelope, successes, t};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

impl TestApp {
    /// A product of `lot`: weekdays 08–18 h (Berlin), cars, 99.00 a month, `spots` places.
    async fn pass_product(&self, lot: i64, spots: i64, keeps_spot: bool) -> String {
        let body = json!({
            "name": "Weekday commuter", "days": ["mon", "tue", "wed", "thu", "fri"],
            "fromHour": 8, "untilHour": 18, "vehicleTypes": ["car"], "priceCents": 9900,
            "spots": spots, "keepsSpot": keeps_spot,
        });
        let r = self.post_product(lot, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["rights"], "mon–fri 08–18 h");
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// The admin puts `body` on sale at `lot`: the answer as sent.
    async fn post_product(&self, lot: i64, body: &Value) -> Reply {
        let uri = format!("/v1/lots/{lot}/pass-products");
        self.call("POST", &uri, Some(ADMIN), Some(&body.to_string()))
            .await
    }

    /// A driver with one registered vehicle: their token and the vehicle's id.
    async fn holder_with(&self, email: &str, plate: &str, vehicle_type: &str) -> (String, String) {
        let token = self.with_driver(email).await;
        let v = self
            .call(
                "POST",
                "/v1/vehicles",
                Some(&token),
                Some(
                    &json!({"plate": plate, "region": "B", "vehicleType": vehicle_type})
                        .to_string(),
                ),
            )
            .await;
        assert_eq!(v.status, StatusCode::CREATED, "{}", v.body);
        (token, v.body["id"].as_str().unwrap().to_owned())
    }

    async fn buy_pass(
        &self,
        token: &str,
        key: &str,
        product: &str,
        vehicle: &str,
        payment: Value,
    ) -> Reply {
        let body = json!({"productId": product, "vehicleId": vehicle, "payment": payment});
        self.call_with(
            "POST",
            "/v1/me/monthly-passes",
            Some(token),
            Some(&body.to_string()),
            Some(("idempotency-key", key)),
        )
        .await
    }

    /// A fresh access token of `email` (a month later the first one has long expired).
    async fn sign_in(&self, email: &str) -> String {
        let creds = json!({"email": email, "password": "correct horse battery"}).to_string();
        let s = self.call("POST", "/v1/sessions", None, Some(&creds)).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        s.body["accessToken"].as_str().unwrap().to_owned()
    }

    async fn available(&self, lot: i64) -> i64 {
        let r = self
            .call("GET", &format!("/v1/lots/{lot}/pass-products"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"][0]["available"].as_i64().unwrap()
    }

    async fn free_spot_labels(&self, lot: i64) -> Vec<String> {
        // An hour tomorrow.
        let start = self.state.services.now() + chrono::Duration::days(1);
        let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let uri = format!(
            "/v1/parkingspots?lot-id={lot}&start-at={}&end-at={}&vehicle-type=car",
            at(start),
            at(start + chrono::Duration::hours(1))
        );
        let r = self.call("GET", &uri, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["spots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["label"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn sweep_passes(&self, at: &str) -> parkflow_api::services::monthly::PassSweep {
        self.clock.set(t(at));
        self.state
            .services
            .monthly_passes()
            .sweep_passes(t(at))
            .await
            .unwrap()
    }
}

fn card() -> Value {
    json!({"method": "card", "token": "tok_ok", "last4": "4242"})
}

/// A holder parks free inside the rights and pays the tariff outside them; the kept spot is
/// theirs alone; a retry buys nothing twice; a refused payment or a full product sells nothing.
pub async fn pass_holders_enter_free_inside_their_rights_and_pay_outside(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2, "motorcycle": 1})).await;
    let product = app.pass_product(lot, 1, true).await;
    assert_eq!(app.available(lot).await, 1);
    let (token, car) = app.holder_with("holder@example.com", "B PF 1", "car").await;

    // Bought by card: active for a month from now (Monday 2026-06-01 07:00 UTC), a spot kept.
    let bought = app.buy_pass(&token, "buy-1", &product, &car, card()).await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    let pass = &bought.body;
    assert_eq!(pass["status"], "active", "{pass}");
    assert_eq!(pass["period"], 1);
    assert_eq!(pass["periodEnd"], "2026-07-01T07:00:00Z");
    assert_eq!(pass["renews"], true);
    let kept = pass["spotLabel"].as_str().unwrap().to_owned();
    let code = pass["pass"].as_str().unwrap().to_owned();
    assert!(code.starts_with("pm1."), "{code}");
    // A retry with the key is the same pass, charged once.
    let again = app.buy_pass(&token, "buy-1", &product, &car, card()).await;
    assert_eq!(again.body["id"], pass["id"], "{}", again.body);
    let captured = app.state.services.gateway().sandbox().unwrap().captured();
    assert_eq!(captured, 1);
    assert_eq!(app.available(lot).await, 0);

    // The kept spot is nobody else's: not offered for booking, not given to a drive-up.
    assert_eq!(app.free_spot_labels(lot).await.len(), 1);
    assert!(!app.free_spot_labels(lot).await.contains(&kept));
    let drive_up = app.gate(lot).drive_up("car").await;
    assert_eq!(drive_up.status, StatusCode::CREATED, "{}", drive_up.body);
    assert_ne!(drive_up.body["spotLabel"], kept.as_str());
    let full = app.gate(lot).drive_up("car").await;
    assert_envelope(&full, StatusCode::CONFLICT, "lot_full");

    // 09:00 Berlin: the plate opens the gate onto the kept spot; out at 17:00, all inside.
    let gate = app.gate(lot);
    let entry = gate
        .enter(json!({"method": "plate", "plate": "b-pf 1"}))
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    assert_eq!(entry.body["spotLabel"], kept.as_str());
    assert_eq!(entry.body["monthlyPassId"], pass["id"]);
    let twice = gate
        .enter(json!({"method": "plate", "plate": "B PF 1"}))
        .await;
    assert_envelope(&twice, StatusCode::CONFLICT, "already_entered");
    app.clock.set(t("2026-06-01T15:00:00Z"));
    let out = gate.exit(json!({"plate": "B PF 1"})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["amountCents"], 0, "{}", out.body);
    assert_eq!(out.body["monthlyPassId"], pass["id"]);

    // By the pass's code at 17:30 Berlin, out at 19:30: 30 min inside, 90 min outside at the
    // lot's 200 an hour.
    app.clock.set(t("2026-06-01T15:30:00Z"));
    let entry = gate.enter(json!({"method": "qr", "pass": code})).await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    app.clock.set(t("2026-06-01T17:30:00Z"));
    let out = gate.exit(json!({"pass": code})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["amountCents"], 300, "{}", out.body);
    assert_eq!(out.body["dueCents"], 300);
    // On Saturday, not covered at all: two hours at the tariff.
    app.clock.set(t("2026-06-06T08:00:00Z"));
    let entry = gate
        .enter(json!({"method": "plate", "plate": "B PF 1"}))
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    app.clock.set(t("2026-06-06T10:00:00Z"));
    let out = gate.exit(json!({"plate": "B PF 1"})).await;
    assert_eq!(out.body["amountCents"], 400, "{}", out.body);

    // The product is sold out; a motorcycle is not covered; a declined card buys nothing and
    // keeps nothing; a code of another lot or a forged one opens nothing.
    let (other, other_car) = app.holder_with("second@example.com", "B PF 2", "car").await;
    let sold_out = app
        .buy_pass(&other, "b", &product, &other_car, card())
        .await;
    assert_envelope(&sold_out, StatusCode::CONFLICT, "sold_out");
    let roomy = app.pass_product(lot, 3, true).await;
    let (rider, bike) = app
        .holder_with("rider@example.com", "B PF 3", "motorcycle")
        .await;
    let bike_pass = app.buy_pass(&rider, "m", &roomy, &bike, card()).await;
    assert_envelope(
        &bike_pass,
        StatusCode::UNPROCESSABLE_ENTITY,
        "vehicle_not_covered",
    );
    let declined = app
        .buy_pass(
            &other,
            "d",
            &roomy,
            &other_car,
            json!({"method": "card", "token": "tok_decline", "last4": "0002"}),
        )
        .await;
    assert_envelope(&declined, StatusCode::PAYMENT_REQUIRED, "payment_declined");
    let products = app
        .call("GET", &format!("/v1/lots/{lot}/pass-products"), None, None)
        .await;
    assert_eq!(
        products.body["items"][1]["available"], 3,
        "{}",
        products.body
    );
    let forged = gate
        .enter(json!({"method": "qr", "pass": format!("{code}x")}))
        .await;
    assert_envelope(&forged, StatusCode::UNPROCESSABLE_ENTITY, "invalid_pass");
    let second_lot = app.with_lot(json!({"car": 1})).await;
    let elsewhere = app
        .gate(second_lot)
        .enter(json!({"method": "qr", "pass": code}))
        .await;
    assert_envelope(&elsewhere, StatusCode::UNPROCESSABLE_ENTITY, "wrong_lot");

    // Only admins define products; bad terms get the envelope.
    let as_driver = app
        .call(
            "POST",
            &format!("/v1/lots/{lot}/pass-products"),
            Some(&token),
            Some("{}"),
        )
        .await;
    assert!(as_driver.status.is_client_error(), "{}", as_driver.body);
    let inverted = json!({
        "name": "Nights", "days": ["mon"], "fromHour": 18, "untilHour": 8,
        "vehicleTypes": ["car"], "priceCents": 9900, "spots": 1, "keepsSpot": false,
    });
    let r = app.post_product(lot, &inverted).await;
    assert_envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Lists longer than the document allows are refused as it says (repeats or not).
    let long = json!({
        "name": "Long", "days": ["mon"], "fromHour": 8, "untilHour": 9,
        "vehicleTypes": vec!["ev"; 9], "priceCents": 100, "spots": 1, "keepsSpot": false,
    });
    let r = app.post_product(lot, &long).await;
    assert_envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // The holder's export holds the pass; erasing the account ends it, and its place and kept
    // spot are free again.
    let token = app.sign_in("holder@example.com").await;
    let export = app.call("GET", "/v1/me/export", Some(&token), None).await;
    assert_eq!(
        export.body["monthlyPasses"][0]["id"], pass["id"],
        "{}",
        export.body
    );
    let erased = app.call("DELETE", "/v1/me", Some(&token), None).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(app.available(lot).await, 1);
    assert!(app.free_spot_labels(lot).await.contains(&kept));
    let after = gate.enter(json!({"method": "qr", "pass": code})).await;
    assert_envelope(&after, StatusCode::UNPROCESSABLE_ENTITY, "pass_expired");

    // Purchases and holders' entries are events for the lake.
    assert_eq!(app.outbox_count("monthly_pass_purchased").await, 1);
    let with_pass: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE event_type = 'check_in' AND payload LIKE '%monthly_pass_id%'",
    )
    .fetch_one(app.state.services.store().pool())
    .await
    .unwrap();
    assert_eq!(with_pass, 3);
}

/// A renewing pass is reminded once before its period ends and renewed at the end on the same
/// spot; a cancelled one ends at its period's end and gives its place and spot back; a renewal
/// the balance cannot pay lapses.
pub async fn passes_renew_with_a_reminder_and_end_when_cancelled(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let product = app.pass_product(lot, 2, true).await;
    let (token, car) = app.holder_with("renew@example.com", "B RN 1", "car").await;
    let bought = app.buy_pass(&token, "k", &product, &car, card()).await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    let id = bought.body["id"].as_str().unwrap().to_owned();
    let kept = bought.body["spotLabel"].clone();

    // Four days before the end: nothing; three days before: one reminder, once.
    assert_eq!(app.sweep_passes("2026-06-27T07:00:00Z").await.reminders, 0);
    assert_eq!(app.sweep_passes("2026-06-28T08:00:00Z").await.reminders, 1);
    assert_eq!(app.sweep_passes("2026-06-28T09:00:00Z").await.reminders, 0);
    let token = app.sign_in("renew@example.com").await;
    let inbox = app
        .call("GET", "/v1/notifications", Some(&token), None)
        .await;
    let renews_on = inbox.body.to_string();
    assert!(
        renews_on.contains("renews on 1 Jul 2026 for 99.00 EUR"),
        "{renews_on}"
    );

    // At the end: renewed for July on the same spot, charged again, once.
    let swept = app.sweep_passes("2026-07-01T07:00:00Z").await;
    assert_eq!(swept.renewed, 1, "{swept:?}");
    assert_eq!(app.sweep_passes("2026-07-01T07:05:00Z").await.renewed, 0);
    let token = app.sign_in("renew@example.com").await;
    let pass = app
        .call(
            "GET",
            &format!("/v1/me/monthly-passes/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(pass.body["period"], 2, "{}", pass.body);
    assert_eq!(pass.body["periodEnd"], "2026-08-01T07:00:00Z");
    assert_eq!(pass.body["spotLabel"], kept);
    assert_eq!(
        app.state.services.gateway().sandbox().unwrap().captured(),
        2
    );
    assert_eq!(app.outbox_count("monthly_pass_renewed").await, 1);

    // Cancelled: it runs to the end of July, then ends, and its place and spot are free.
    let cancelled = app
        .call(
            "DELETE",
            &format!("/v1/me/monthly-passes/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["renews"], false);
    assert_eq!(cancelled.body["status"], "active");
    assert_eq!(app.sweep_passes("2026-07-29T07:00:00Z").await.reminders, 0);
    let swept = app.sweep_passes("2026-08-01T07:00:00Z").await;
    assert_eq!(swept.ended, 1, "{swept:?}");
    let token = app.sign_in("renew@example.com").await;
    let pass = app
        .call(
            "GET",
            &format!("/v1/me/monthly-passes/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(pass.body["status"], "ended");
    assert!(pass.body.get("pass").is_none(), "{}", pass.body);
    assert_eq!(app.available(lot).await, 2);
    let again = app
        .call(
            "DELETE",
            &format!("/v1/me/monthly-passes/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_envelope(&again, StatusCode::CONFLICT, "not_active");
    let gone = app
        .gate(lot)
        .enter(json!({"method": "plate", "plate": "B RN 1", "vehicleType": "car"}))
        .await;
    assert_eq!(gone.status, StatusCode::CREATED, "{}", gone.body);
    assert!(gone.body.get("monthlyPassId").is_none(), "{}", gone.body);

    // Paid from a balance that holds exactly one month: the renewal is refused, the pass lapses.
    let (saver, saver_car) = app.holder_with("saver@example.com", "B RN 2", "car").await;
    let top_up = app
        .call_with(
            "POST",
            "/v1/me/balance/top-ups",
            Some(&saver),
            Some(&json!({"amountCents": 9900, "currency": "EUR", "payment": card()}).to_string()),
            Some(("idempotency-key", "t")),
        )
        .await;
    assert_eq!(top_up.status, StatusCode::CREATED, "{}", top_up.body);
    let bought = app
        .buy_pass(
            &saver,
            "s",
            &product,
            &saver_car,
            json!({"method": "balance"}),
        )
        .await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    let swept = app.sweep_passes("2026-09-01T08:00:00Z").await;
    assert_eq!(swept.lapsed, 1, "{swept:?}");
    let saver = app.sign_in("saver@example.com").await;
    let mine = app
        .call("GET", "/v1/me/monthly-passes", Some(&saver), None)
        .await;
    assert_eq!(mine.body["items"][0]["status"], "lapsed", "{}", mine.body);
    // Each end is an event: the cancelled pass, the lapsed one.
    assert_eq!(app.outbox_count("monthly_pass_ended").await, 2);
}

/// Many drivers buy the last place at once: exactly one gets it, and kept spots never overlap.
pub async fn the_last_place_of_a_pass_is_sold_once_under_a_race(app: TestApp) {
    let lot = app.with_lot(json!({"car": 3})).await;
    let product = app.pass_product(lot, 1, true).await;
    let mut buyers = Vec::new();
    for i in 0..8 {
        buyers.push(
            app.holder_with(&format!("race{i}@example.com"), &format!("B RC {i}"), "car")
                .await,
        );
    }
    let app = Arc::new(app);
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|(token, car)| {
            let (app, product) = (app.clone(), product.clone());
            tokio::spawn(async move { app.buy_pass(&token, "race", &product, &car, card()).await })
        })
        .collect();
    let sold = successes(
        tasks,
        StatusCode::CREATED,
        (StatusCode::CONFLICT, "sold_out"),
    )
    .await;
    assert_eq!(sold, 1);
    assert_eq!(app.available(lot).await, 0);
    let overlapping = parkflow_api::store::reservations::overlapping_holds(
        app.state.services.store().pool(),
        warehouse_schema::LotId(lot),
    )
    .await
    .unwrap();
    assert_eq!(overlapping, 0);
}

/// One stay at a time on a pass and one live pass per plate, with gates and buyers racing; a
/// payment the bank reverses ends its pass, gives its place back and tells the holder.
pub async fn a_pass_enters_once_holds_one_plate_and_ends_when_its_payment_is_reversed(
    app: TestApp,
) {
    let lot = app.with_lot(json!({"car": 4})).await;
    let product = app.pass_product(lot, 4, false).await;
    let (token, car) = app.holder_with("racer@example.com", "B RV 1", "car").await;
    let app = Arc::new(app);

    // Four purchases for one car under four keys at once: one pass.
    let buys: Vec<_> = (0..4)
        .map(|i| {
            let (app, token, product, car) =
                (app.clone(), token.clone(), product.clone(), car.clone());
            tokio::spawn(async move {
                app.buy_pass(&token, &format!("k{i}"), &product, &car, card())
                    .await
            })
        })
        .collect();
    let refused = (StatusCode::CONFLICT, "already_held");
    assert_eq!(successes(buys, StatusCode::CREATED, refused).await, 1);
    assert_eq!(app.available(lot).await, 3);

    // Four gates read the plate at once: one stay.
    let entries: Vec<_> = (0..4)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.gate(lot)
                    .enter(json!({"method": "plate", "plate": "B RV 1"}))
                    .await
            })
        })
        .collect();
    let refused = (StatusCode::CONFLICT, "already_entered");
    assert_eq!(successes(entries, StatusCode::CREATED, refused).await, 1);

    // Another driver's pass paid with a charge the bank later reverses.
    let (other, other_car) = app
        .holder_with("reversed@example.com", "B RV 2", "car")
        .await;
    let card_to_reverse = json!({"method": "card", "token": "tok_reverse", "last4": "0005"});
    let r = app
        .buy_pass(&other, "r", &product, &other_car, card_to_reverse)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(app.available(lot).await, 2);
    let sandbox = app.state.services.gateway().sandbox().unwrap();
    let references = sandbox.take_reversals();
    assert_eq!(references.len(), 1);
    let hook = sandbox.reversal_webhook(&references[0]);
    let handled = app
        .call_with(
            "POST",
            "/v1/payments/webhook",
            None,
            Some(&hook.body),
            Some(("x-gateway-signature", &hook.signature)),
        )
        .await;
    assert_eq!(handled.status, StatusCode::OK, "{}", handled.body);
    let pass = app
        .call("GET", "/v1/me/monthly-passes", Some(&other), None)
        .await;
    assert_eq!(
        pass.body["items"][0]["status"], "payment_failed",
        "{}",
        pass.body
    );
    assert_eq!(app.available(lot).await, 3);
    let inbox = app
        .call("GET", "/v1/notifications", Some(&other), None)
        .await;
    assert!(
        inbox
            .body
            .to_string()
            .contains("the monthly pass for BRV2 has ended"),
        "{}",
        inbox.body
    );
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = 'monthly_pass_ended'")
            .fetch_all(app.state.services.store().pool())
            .await
            .unwrap();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("payment_reversed"), "{reasons:?}");
    let at_gate = app
        .gate(lot)
        .enter(json!({"method": "plate", "plate": "B RV 2", "vehicleType": "car"}))
        .await;
    assert!(
        at_gate.body.get("monthlyPassId").is_none(),
        "{}",
        at_gate.body
    );
}
