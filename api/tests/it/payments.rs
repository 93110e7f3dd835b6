//! Payments on both stores: idempotent requests, declines and reversals that cancel and tell
//! the driver, webhooks handled once, balances, refunds, and no card data ever stored.

use super::{Reply, TestApp};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use parkflow_api::services::CheckInRequest;
use parkflow_api::services::payments::{GatewayWebhook, PaymentsConfig, SandboxGateway};
use serde_json::{Value, json};
use std::sync::Arc;
use warehouse_schema::{EntryMethod, UserId, VehicleType};

impl TestApp {
    async fn pay(&self, token: &str, reservation: &str, key: &str, body: Value) -> Reply {
        self.call_with(
            "POST",
            &format!("/v1/reservations/{reservation}/payments"),
            Some(token),
            Some(&body.to_string()),
            Some(("idempotency-key", key)),
        )
        .await
    }

    async fn booked(&self, token: &str, lot: i64, start: DateTime<Utc>, key: &str) -> String {
        let body = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"});
        let r = self
            .call_with(
                "POST",
                "/v1/reservations",
                Some(token),
                Some(&body.to_string()),
                Some(("idempotency-key", key)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    async fn stored_status(&self, reservation: &str) -> String {
        sqlx::query_scalar("SELECT status FROM reservations WHERE id = $1")
            .bind(reservation)
            .fetch_one(self.state.services.store().pool())
            .await
            .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.state.services.store().pool())
            .await
            .unwrap()
    }

    pub(crate) async fn inbox_kinds(&self, token: &str) -> Vec<String> {
        let r = self
            .call("GET", "/v1/notifications", Some(token), None)
            .await;
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn card(token: &str) -> Value {
    json!({"method": "card", "token": token, "last4": "4242"})
}

pub async fn payments_are_idempotent_and_a_decline_cancels_and_tells(app: TestApp) {
    let lot = app.with_lot(json!({"car": 3})).await;
    let driver = app.with_driver("pay@example.com").await;
    let start = app.state.services.now() + Duration::hours(3);
    let first = app.booked(&driver, lot, start, "r1").await;

    let paid = app.pay(&driver, &first, "k1", card("tok_ok")).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    assert_eq!(
        (
            &paid.body["status"],
            &paid.body["method"],
            &paid.body["last4"]
        ),
        (&json!("captured"), &json!("card"), &json!("4242"))
    );
    let again = app.pay(&driver, &first, "k1", card("tok_ok")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.body["id"], paid.body["id"],
        "the same key, the same payment"
    );
    let twice = app.pay(&driver, &first, "k2", card("tok_ok")).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    assert_eq!(twice.body["error"]["code"], "already_paid");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE event_type = 'payment_captured'")
            .await,
        1,
        "charged once"
    );

    // The gateway times out once; the retry with the same key is captured, once.
    let second = app.booked(&driver, lot, start, "r2").await;
    let retried = app.pay(&driver, &second, "k3", card("tok_retry")).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);

    // A decline cancels the reservation and tells the driver; asking again answers the same.
    let third = app.booked(&driver, lot, start, "r3").await;
    let declined = app.pay(&driver, &third, "k4", card("tok_decline")).await;
    assert_eq!(
        declined.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        declined.body
    );
    assert_eq!(declined.body["error"]["code"], "payment_declined");
    assert!(
        declined.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("card_declined")
    );
    assert_eq!(app.stored_status(&third).await, "cancelled");
    let replay = app.pay(&driver, &third, "k4", card("tok_decline")).await;
    assert_eq!(replay.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        app.inbox_kinds(&driver).await,
        [
            "payment_problem",
            "reservation_confirmed",
            "reservation_confirmed",
            "reservation_confirmed"
        ]
    );

    // Card details never get in: refused by shape, not echoed, not stored.
    let pan = "4111111111111111";
    let leaky = app
        .pay(
            &driver,
            &second,
            "k5",
            json!({"method": "card", "cardNumber": pan, "cvv": "737", "expiry": "12/29"}),
        )
        .await;
    assert_eq!(
        leaky.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        leaky.body
    );
    assert!(!leaky.body.to_string().contains(pan));
    let as_token = app
        .pay(
            &driver,
            &second,
            "k6",
            json!({"method": "card", "token": pan, "last4": "1111"}),
        )
        .await;
    assert_eq!(as_token.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!as_token.body.to_string().contains(pan));
    for sql in [
        format!("SELECT COUNT(*) FROM payments WHERE token LIKE '%{pan}%' OR last4 LIKE '%{pan}%'"),
        format!("SELECT COUNT(*) FROM outbox WHERE payload LIKE '%{pan}%'"),
    ] {
        assert_eq!(app.count(&sql).await, 0, "{sql}");
    }
    let missing_key = app
        .call(
            "POST",
            &format!("/v1/reservations/{second}/payments"),
            Some(&driver),
            Some(&card("tok_ok").to_string()),
        )
        .await;
    assert_eq!(missing_key.status, StatusCode::UNPROCESSABLE_ENTITY);
}

pub async fn reversals_balances_and_refunds(app: TestApp) {
    let lot = app.with_lot(json!({"car": 3})).await;
    let driver = app.with_driver("wallet@example.com").await;
    let start = app.state.services.now() + Duration::hours(3);

    // Reversed later by the gateway: the reservation is cancelled and the driver told, once.
    let reversed = app.booked(&driver, lot, start, "r1").await;
    let paid = app.pay(&driver, &reversed, "k1", card("tok_reverse")).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.body);
    let reference: String =
        sqlx::query_scalar("SELECT gateway_ref FROM payments WHERE reservation_id = $1")
            .bind(&reversed)
            .fetch_one(app.state.services.store().pool())
            .await
            .unwrap();
    // The sandbox, playing the bank, claws that charge back: the webhook it signs is the one
    // the API accepts.
    let sandbox = app.state.services.gateway().sandbox().unwrap();
    assert_eq!(sandbox.take_reversals(), std::slice::from_ref(&reference));
    assert!(sandbox.take_reversals().is_empty(), "taken once");
    let GatewayWebhook { body, signature } = sandbox.reversal_webhook(&reference);
    let hook = |sig: String| {
        let body = body.clone();
        let app = &app;
        async move {
            app.call_with(
                "POST",
                "/v1/payments/webhook",
                None,
                Some(&body),
                Some(("x-gateway-signature", &sig)),
            )
            .await
        }
    };
    let forged = hook("not-the-signature".into()).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.body);
    assert_eq!(app.stored_status(&reversed).await, "active");
    let handled = hook(signature.clone()).await;
    assert_eq!(handled.status, StatusCode::OK, "{}", handled.body);
    assert_eq!(handled.body["handled"], true);
    assert_eq!(app.stored_status(&reversed).await, "cancelled");
    let redelivered = hook(signature).await;
    assert_eq!(
        redelivered.body["handled"], false,
        "handled once per event id"
    );
    assert_eq!(
        app.inbox_kinds(&driver).await,
        ["payment_problem", "reservation_confirmed"]
    );

    // Top-ups are idempotent; a reservation paid from the balance; too little is a 402.
    let top_up = |key: &'static str, cents: i64| {
        let app = &app;
        let driver = driver.clone();
        async move {
            app.call_with(
                "POST",
                "/v1/me/balance/top-ups",
                Some(&driver),
                Some(
                    &json!({"amountCents": cents, "payment": card("tok_ok"), "currency": "EUR"})
                        .to_string(),
                ),
                Some(("idempotency-key", key)),
            )
            .await
        }
    };
    assert_eq!(top_up("t1", 2_000).await.status, StatusCode::CREATED);
    assert_eq!(top_up("t1", 2_000).await.status, StatusCode::CREATED);
    let balance = || async {
        app.call("GET", "/v1/me/balance", Some(&driver), None)
            .await
            .body["cents"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        balance().await,
        2_000,
        "the replayed top-up credited nothing"
    );
    let far = app.state.services.now() + Duration::days(2);
    let prepaid = app.booked(&driver, lot, far, "r2").await;
    let by_balance = app
        .pay(&driver, &prepaid, "k2", json!({"method": "balance"}))
        .await;
    assert_eq!(
        by_balance.status,
        StatusCode::CREATED,
        "{}",
        by_balance.body
    );
    let quote = by_balance.body["amountCents"].as_i64().unwrap();
    assert!(quote > 0);
    assert_eq!(balance().await, 2_000 - quote);

    // Cancelled two days ahead: all of it back to the balance. Cancelled three hours ahead:
    // half back to the card.
    let cancel = |id: String| {
        let app = &app;
        let driver = driver.clone();
        async move {
            app.call(
                "POST",
                &format!("/v1/reservations/{id}/cancel"),
                Some(&driver),
                None,
            )
            .await
        }
    };
    assert_eq!(cancel(prepaid.clone()).await.status, StatusCode::OK);
    assert_eq!(balance().await, 2_000, "a full refund to the balance");
    let by_card = app.booked(&driver, lot, start, "r3").await;
    let p = app.pay(&driver, &by_card, "k3", card("tok_ok")).await;
    assert_eq!(p.status, StatusCode::CREATED);
    assert_eq!(cancel(by_card.clone()).await.status, StatusCode::OK);
    let (status, refunded): (String, i64) =
        sqlx::query_as("SELECT status, refunded_cents FROM payments WHERE reservation_id = $1")
            .bind(&by_card)
            .fetch_one(app.state.services.store().pool())
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), refunded),
        ("refunded", p.body["amountCents"].as_i64().unwrap() / 2)
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE event_type = 'payment_refunded'")
            .await,
        2
    );

    // Not enough for the next one.
    sqlx::query("UPDATE balances SET cents = 10")
        .execute(app.state.services.store().writer())
        .await
        .unwrap();
    let short = app
        .booked(&driver, lot, far + Duration::hours(2), "r5")
        .await;
    let declined = app
        .pay(&driver, &short, "k5", json!({"method": "balance"}))
        .await;
    assert_eq!(
        declined.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        declined.body
    );
    assert!(
        declined.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("insufficient_balance")
    );
    assert_eq!(app.stored_status(&short).await, "cancelled");
    assert_eq!(balance().await, 10, "nothing taken");
}

/// A known driver entering without a reservation needs the minimum balance, and the stay is
/// paid from it at exit.
pub async fn drive_ups_need_the_minimum_balance_and_pay_from_it(app: TestApp) {
    let lot = warehouse_schema::LotId(app.with_lot(json!({"car": 2})).await);
    let service = app.state.services.clone().with_payments(
        PaymentsConfig {
            min_balance_cents: 500,
            ..PaymentsConfig::default()
        },
        Arc::new(SandboxGateway::default()),
    );
    let user = UserId::new();
    let enter = || CheckInRequest {
        vehicle_type: VehicleType::Car,
        method: EntryMethod::Nfc,
        plate: None,
        user_id: Some(user),
    };
    let refused = service.gates().check_in(lot, enter()).await.unwrap_err();
    assert_eq!(refused.code(), "balance_too_low");
    assert_eq!(
        parkflow_api::http::ApiError::from(refused).status(),
        StatusCode::PAYMENT_REQUIRED
    );
    service
        .payments()
        .top_up(
            user,
            1_000,
            Some("EUR".into()),
            parkflow_api::services::payments::PaymentMethod::Wallet {
                token: "wal_ok".into(),
            },
            "w1",
        )
        .await
        .unwrap();
    let stay = service.gates().check_in(lot, enter()).await.unwrap();
    app.clock.set(service.now() + Duration::hours(1));
    let exit = service
        .gates()
        .check_out(lot, stay.session_id)
        .await
        .unwrap();
    assert!(exit.amount_cents > 0);
    assert_eq!(
        service.payments().balance(user).await.unwrap(),
        1_000 - exit.amount_cents
    );
    // Anonymous drive-ups pay at the gate as before.
    let anonymous = CheckInRequest {
        user_id: None,
        ..enter()
    };
    service.gates().check_in(lot, anonymous).await.unwrap();
}

/// The waitlist: the first waiter is booked when a spot frees up (or told, if they only asked
/// to be told); one waiter per freed spot; a window with free spots cannot be waited for.
pub async fn the_first_waiter_gets_the_freed_spot(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let alice = app.with_driver("alice.w@example.com").await;
    let bob = app.with_driver("bob.w@example.com").await;
    let carol = app.with_driver("carol.w@example.com").await;
    let start = app.state.services.now() + Duration::hours(5);
    let window = |auto: bool| {
        json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1),
               "vehicleType": "car", "autoBook": auto})
        .to_string()
    };
    let early = app
        .call("POST", "/v1/waitlist", Some(&bob), Some(&window(true)))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.body["error"]["code"], "spots_available");

    let taken = app.booked(&alice, lot, start, "a").await;
    let bob_waits = app
        .call("POST", "/v1/waitlist", Some(&bob), Some(&window(true)))
        .await;
    assert_eq!(bob_waits.status, StatusCode::CREATED, "{}", bob_waits.body);
    let carol_waits = app
        .call("POST", "/v1/waitlist", Some(&carol), Some(&window(false)))
        .await;
    assert_eq!(carol_waits.status, StatusCode::CREATED);

    // Alice cancels: Bob, first in line, is booked; Carol is not told (no spot left).
    let cancel = |token: String, id: String| {
        let app = &app;
        async move {
            app.call(
                "POST",
                &format!("/v1/reservations/{id}/cancel"),
                Some(&token),
                None,
            )
            .await
        }
    };
    assert_eq!(cancel(alice.clone(), taken).await.status, StatusCode::OK);
    let bobs = app.call("GET", "/v1/waitlist", Some(&bob), None).await;
    assert_eq!(bobs.body["items"][0]["status"], "booked", "{}", bobs.body);
    let booked = bobs.body["items"][0]["reservationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.stored_status(&booked).await, "active");
    assert_eq!(
        app.inbox_kinds(&bob).await,
        ["waitlist_booked", "reservation_confirmed"]
    );
    assert!(app.inbox_kinds(&carol).await.is_empty());

    // Bob cancels in turn: Carol is told, once.
    assert_eq!(cancel(bob.clone(), booked).await.status, StatusCode::OK);
    assert_eq!(app.inbox_kinds(&carol).await, ["waitlist_spot_free"]);
    assert_eq!(
        app.inbox_kinds(&bob).await,
        [
            "reservation_cancelled",
            "waitlist_booked",
            "reservation_confirmed"
        ],
        "confirmation and cancellation commit with the booking"
    );
    let carols = app.call("GET", "/v1/waitlist", Some(&carol), None).await;
    assert_eq!(carols.body["items"][0]["status"], "notified");
    app.state
        .services
        .waitlist()
        .serve_waitlist(warehouse_schema::LotId(lot))
        .await
        .unwrap();
    assert_eq!(app.inbox_kinds(&carol).await.len(), 1);

    // Withdrawing: only one's own waiting entry.
    let dave = app.with_driver("dave.w@example.com").await;
    app.booked(&alice, lot, start, "a2").await;
    let d = app
        .call("POST", "/v1/waitlist", Some(&dave), Some(&window(true)))
        .await;
    let id = d.body["id"].as_str().unwrap().to_owned();
    let not_yours = app
        .call("DELETE", &format!("/v1/waitlist/{id}"), Some(&bob), None)
        .await;
    assert_eq!(not_yours.status, StatusCode::NOT_FOUND);
    let gone = app
        .call("DELETE", &format!("/v1/waitlist/{id}"), Some(&dave), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
}
