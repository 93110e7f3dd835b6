//! A booking's `Idempotency-Key` is claimed and its answer kept in the booking's own change
//! (`Keyed::run_in_change`), on both stores.

use super::TestApp;
use crate::defects::envelope;
use axum::http::StatusCode;
use chrono::Duration;
use serde_json::{Value, json};

/// A refused booking keeps nothing under its key (the same key books once a spot is free), a
/// booking keeps its answer with it, and a retry gets that answer as it was, even once the
/// booking was cancelled; another request under the key is refused.
pub async fn a_booking_keeps_its_answer_in_its_own_change(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let driver = app.with_driver("kept@example.com").await;
    let other = app.with_driver("kept2@example.com").await;
    let start = app.state.services.now() + Duration::hours(3);
    let window = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"});
    let app = &app;
    let book = |token: &str, key: &str| {
        let (token, key, window) = (token.to_owned(), key.to_owned(), window.clone());
        async move { app.keyed(&token, "/v1/reservations", &key, window).await }
    };
    let cancel = |token: &str, id: &Value| {
        let uri = format!("/v1/reservations/{}/cancel", id.as_str().unwrap());
        let token = token.to_owned();
        async move {
            let r = app.call("POST", &uri, Some(&token), None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    };
    let kept = || async {
        sqlx::query_as::<_, (Option<i64>, Option<String>)>(
            "SELECT status_code, response FROM idempotency_keys WHERE idem_key = 'mine'",
        )
        .fetch_optional(app.state.services.store().pool())
        .await
        .unwrap()
    };
    let theirs = book(&other, "theirs").await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    envelope(
        &book(&driver, "mine").await,
        StatusCode::CONFLICT,
        "no_spot_available",
    );
    assert_eq!(kept().await, None, "a refusal keeps nothing");
    cancel(&other, &theirs.body["id"]).await;
    let booked = book(&driver, "mine").await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let (status, response) = kept().await.expect("the key is kept");
    assert_eq!(status, Some(201));
    let response: Value = serde_json::from_str(&response.unwrap()).unwrap();
    assert_eq!(response, booked.body);
    cancel(&driver, &booked.body["id"]).await;
    let again = book(&driver, "mine").await;
    assert_eq!((again.status, &again.body), (booked.status, &booked.body));
    assert_eq!(again.body["status"], "active", "the answer as it was");
    let later = json!({"lotId": lot, "startAt": start + Duration::hours(2), "endAt": start + Duration::hours(3), "vehicleType": "car"});
    envelope(
        &app.keyed(&driver, "/v1/reservations", "mine", later).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
}

/// While a booking waits inside its change (on PostgreSQL for its spot's turn, on SQLite for
/// the writer), no claim of its key is seen: the key, the booking and the answer commit
/// together. A claim taken before the booking's transaction would show here on PostgreSQL.
pub async fn a_booking_in_flight_shows_no_claim_of_its_key(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let driver = app.with_driver("inflight@example.com").await;
    let start = app.state.services.now() + Duration::hours(3);
    let window = json!({"lotId": lot, "startAt": start, "endAt": start + Duration::hours(1), "vehicleType": "car"});
    let store = app.state.services.store();
    let spot: i64 = sqlx::query_scalar("SELECT id FROM spots WHERE lot_id = $1")
        .bind(lot)
        .fetch_one(store.pool())
        .await
        .unwrap();
    app.warm_pool().await;
    let mut busy = store.begin_change(app.state.services.now()).await.unwrap();
    if store.backend() == parkflow_api::store::Backend::Postgres {
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS turn")
            .bind(spot)
            .execute(&mut *busy)
            .await
            .unwrap();
    }
    let state = app.state.clone();
    let booking = tokio::spawn(async move {
        crate::util::book_keyed(state, &driver, "in-flight", window.to_string()).await
    });
    let claims = || async {
        sqlx::query_as::<_, (Option<i64>,)>(
            "SELECT status_code FROM idempotency_keys WHERE idem_key = 'in-flight'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap()
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(!booking.is_finished(), "the booking waits for what is held");
    assert_eq!(
        claims().await,
        vec![],
        "no claim is seen before the booking commits"
    );
    busy.rollback().await.unwrap();
    let (status, body) = booking.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(claims().await, vec![(Some(201),)], "the key, answered");
}
