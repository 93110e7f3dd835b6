//! Lots, stays, rates, the error envelope and the server itself, over HTTP.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use http_body_util::BodyExt;
use parkflow_api::router;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub async fn lot_creation_writes_lot_spots_and_event(app: TestApp) {
    let lot = app.with_lot(json!({"car": 3, "ev": 1})).await;
    let r = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["capacity"], 4);
    assert_eq!(r.body["freeSpots"], 4);
    assert_eq!(r.body["currentCentsPerHour"], 200);
    assert_eq!(app.outbox_types().await, ["lot_registered"]);
}

pub async fn check_in_and_out_charge_the_rates_in_force_during_the_stay(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let entry = app.enter(lot, "car").await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let session = entry.body["sessionId"].as_str().unwrap().to_owned();

    // Pricing raises the weekday midday car rate; the car leaves at 12:30 local after 3.5 hours:
    // 09:00–11:00 in the morning band at the default 200, 11:00–12:30 at midday's 300.
    let rates = json!({"rates": [
        {"band": "midday", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 300,
         "effectiveFrom": "2026-06-01T08:00:00Z"}
    ]});
    app.publish_rates(lot, rates).await;
    app.clock.set(t("2026-06-01T10:30:00Z"));
    let exit = app.gate(lot).leave(&session).await;
    assert_eq!(exit.status, StatusCode::OK, "{}", exit.body);
    assert_eq!(exit.body["durationS"], 12_600);
    assert_eq!(exit.body["centsPerHour"], 300);
    assert_eq!(exit.body["band"], "midday");
    assert_eq!(exit.body["amountCents"], 2 * 200 + 450);
    assert_eq!(exit.body["currency"], "EUR");

    // A second exit of the same stay is a conflict, not a second charge.
    let again = app.gate(lot).leave(&session).await;
    assert_envelope(&again, StatusCode::CONFLICT, "session_closed");
    assert_eq!(
        app.outbox_types().await,
        ["lot_registered", "check_in", "rate_published", "exit"]
    );
}

pub async fn full_lot_refuses_entry_and_respects_spot_types(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1, "ev": 1})).await;
    // An EV takes its own spot first; a car may not use the EV spot.
    assert_eq!(app.enter(lot, "ev").await.body["spotLabel"], "E-001");
    assert_eq!(app.enter(lot, "car").await.body["spotLabel"], "C-001");
    assert_envelope(
        &app.enter(lot, "car").await,
        StatusCode::CONFLICT,
        "lot_full",
    );
    assert_envelope(
        &app.enter(lot, "van").await,
        StatusCode::CONFLICT,
        "lot_full",
    );
    let r = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(r.body["freeSpots"], 0);
}

pub async fn bad_input_gets_the_envelope_never_a_500(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let entries = format!("/v1/gates/{lot}/entries");
    assert_envelope(
        &app.gate(lot).send("entries", "{not json").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_envelope(
        &app.gate(lot)
            .send("entries", r#"{"vehicleType":"tank","method":"qr"}"#)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.gate(lot)
            .send(
                "entries",
                r#"{"vehicleType":"car","method":"qr","extra":1}"#,
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.call("POST", &entries, None, Some("{}")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_envelope(
        &app.call("POST", &entries, Some("wrong"), Some("{}")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let body = r#"{"vehicleType":"car","method":"qr"}"#;
    assert_envelope(
        &app.call("POST", &entries, Some(PRICING), Some(body)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_envelope(
        &app.call("POST", "/v1/gates/999/entries", Some(GATE), Some(body))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_envelope(
        &app.call("POST", "/v1/gates/abc/entries", Some(GATE), Some(body))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_envelope(
        &app.call(
            "POST",
            &format!("/v1/gates/{lot}/exits"),
            Some(GATE),
            Some(&json!({"sessionId": uuid_str()}).to_string()),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let bad_rate = json!({"rates": [{"band": "midday", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": -5}]});
    assert_envelope(
        &app.call(
            "PUT",
            &format!("/v1/lots/{lot}/rates"),
            Some(PRICING),
            Some(&bad_rate.to_string()),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let bad_lot = json!({"name": "X", "timeZone": "Mars/Base", "latitude": 0.0, "longitude": 0.0, "defaultCentsPerHour": 100, "spots": {"car": 1}});
    assert_envelope(
        &app.admin().post("/v1/lots", bad_lot.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.call("GET", "/v1/nowhere", None, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // None of that wrote an event beyond the lot registration.
    assert_eq!(app.outbox_types().await, ["lot_registered"]);
}

pub fn uuid_str() -> String {
    "0190a5d2-0000-7000-8000-000000000000".into()
}

pub async fn rate_schedule_separates_current_and_upcoming(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let now = app.state.services.now();
    let rates = json!({"rates": [
        {"band": "morning", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 250, "effectiveFrom": now - Duration::hours(1)},
        {"band": "morning", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 275, "effectiveFrom": now + Duration::days(1)},
    ]});
    let r = app
        .call(
            "PUT",
            &format!("/v1/lots/{lot}/rates"),
            Some(PRICING),
            Some(&rates.to_string()),
        )
        .await;
    assert_eq!(r.body["published"], 2);
    let s = app
        .call("GET", &format!("/v1/lots/{lot}/rates"), None, None)
        .await;
    assert_eq!(s.body["current"].as_array().unwrap().len(), 1, "{}", s.body);
    assert_eq!(s.body["current"][0]["centsPerHour"], 250);
    assert_eq!(s.body["upcoming"][0]["centsPerHour"], 275);
    // 09:00 local on a Monday is the weekday morning band: the lot shows that rate now.
    let l = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(l.body["currentCentsPerHour"], 250);
}

pub async fn full_server_on_port_zero_serves_health_and_metrics(app: TestApp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, router(app.state.clone())).into_future());
    let get = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    };
    let health = get("/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = get("/metrics").await;
    assert!(
        metrics.contains("parkflow_api_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/healthz\""), "{metrics}");
    server.abort();
}

pub async fn a_proposed_notification_is_stored_once_per_key(app: TestApp) {
    use parkflow_api::notifications::{NewNotification, NotificationKind, enqueue, unsent};
    let store = app.state.services.store();
    let lot = app.with_lot(json!({"car": 10})).await;
    let user = warehouse_schema::UserId::new();
    let n = NewNotification {
        user_id: user,
        kind: NotificationKind::ArrivalForecast,
        dedup_key: format!("arrival:{}:{lot}:2026-06-01T08", user.0),
        lot_id: Some(warehouse_schema::LotId(lot)),
        title: "Lot 1".into(),
        body: "Lot 1: 9 spaces left".into(),
    };
    let now = app.state.services.now();
    assert!(enqueue(store, &n, now).await.unwrap());
    let again = NewNotification {
        body: "Lot 1: 8 spaces left".into(),
        ..n.clone()
    };
    assert!(!enqueue(store, &again, now).await.unwrap(), "same key");
    let other = NewNotification {
        dedup_key: format!("arrival:{}:{lot}:2026-06-01T09", user.0),
        ..n.clone()
    };
    assert!(enqueue(store, &other, now).await.unwrap());
    let stored = unsent(store, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].body, "Lot 1: 9 spaces left",
        "the first proposal stands"
    );
    assert_eq!(stored[0].kind, "arrival_forecast");
    assert_eq!(stored[0].user_id, user.0.to_string());
    assert_eq!(
        stored[0].created_at.timestamp_millis(),
        now.timestamp_millis()
    );
    assert!(stored.iter().all(|n| n.sent_at.is_none()));
}

pub async fn concurrent_entries_never_share_a_spot(app: TestApp) {
    let lot = app.with_lot(json!({"car": 10})).await;
    // Open the pool's connections first, then release all entries at once, so that they really
    // race for the same free spots.
    app.warm_pool().await;
    let start = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let state = app.state.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let body = json!({ "vehicleType": "car", "method": "nfc" }).to_string();
                let req = Request::builder()
                    .method("POST")
                    .uri(format!("/v1/gates/{lot}/entries"))
                    .header("authorization", format!("Bearer {GATE}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap();
                let resp = router(state).oneshot(req).await.unwrap();
                let status = resp.status();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap())
            })
        })
        .collect();
    let mut spots = std::collections::HashSet::new();
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => {
                ok += 1;
                assert!(
                    spots.insert(body["spotId"].as_i64().unwrap()),
                    "spot given twice: {body}"
                );
            }
            StatusCode::CONFLICT => {
                full += 1;
                assert_eq!(body["error"]["code"], "lot_full");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, full), (10, 30));
    let checkins = app
        .outbox_types()
        .await
        .iter()
        .filter(|t| *t == "check_in")
        .count();
    assert_eq!(checkins, 10, "one event per successful entry");
}

/// A change, its event, its audit row and its message commit together or not at all.
pub async fn a_change_writes_its_event_audit_and_message_together_or_not_at_all(app: TestApp) {
    use parkflow_api::domain::Actor;
    use parkflow_api::notifications::{NewNotification, NotificationKind, of_user};
    use warehouse_schema::event::LotCapacityChanged;
    use warehouse_schema::{Event, EventPayload, LotId, UserId};
    let services = &app.state.services;
    let store = services.store();
    let user = UserId::new();
    let now = services.now();
    let change = |key: &str| {
        let key = key.to_owned();
        async move {
            let mut change = store.begin_change(now).await.unwrap();
            change
                .event(Event::new(
                    now,
                    LotId(1),
                    EventPayload::LotCapacityChanged(LotCapacityChanged { capacity: 9 }),
                ))
                .audit(&Actor::admin_token(), "lot.update", "lot 1", json!({}))
                .notify(NewNotification {
                    user_id: user,
                    kind: NotificationKind::InquiryAnswered,
                    dedup_key: key,
                    lot_id: None,
                    title: "t".into(),
                    body: "b".into(),
                });
            change
        }
    };
    let before = (
        store.outbox_len().await.unwrap(),
        services.admin().audit_log(100).await.unwrap().len(),
    );
    // Given up (explicitly, or dropped on an early return): nothing of it is written.
    change("k1").await.rollback().await.unwrap();
    drop(change("k2").await);
    assert_eq!(store.outbox_len().await.unwrap(), before.0);
    assert_eq!(
        services.admin().audit_log(100).await.unwrap().len(),
        before.1
    );
    assert!(of_user(store, user, 10).await.unwrap().is_empty());
    // Committed: all three.
    change("k3").await.commit().await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), before.0 + 1);
    let audit = services.admin().audit_log(100).await.unwrap();
    assert_eq!(audit.len(), before.1 + 1);
    let inbox = of_user(store, user, 10).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].kind, "inquiry_answered");
}

/// A change's many rows at its commit: 250 events kept in the order added, messages sharing a
/// deduplication key stored once, two audit rows, the key's answer kept; a later change under
/// the same key is refused and writes none of its rows.
pub async fn a_changes_rows_are_written_in_order_and_a_taken_key_writes_none(app: TestApp) {
    use parkflow_api::domain::Actor;
    use parkflow_api::domain::error::KEY_IN_PROGRESS;
    use parkflow_api::notifications::{NewNotification, NotificationKind, of_user};
    use parkflow_api::store::idempotency as keys;
    use warehouse_schema::event::LotCapacityChanged;
    use warehouse_schema::{Event, EventPayload, LotId, UserId};
    let services = &app.state.services;
    let store = services.store();
    let user = UserId::new();
    let now = services.now();
    let message = |key: &str| NewNotification {
        user_id: user,
        kind: NotificationKind::InquiryAnswered,
        dedup_key: key.to_owned(),
        lot_id: None,
        title: "t".into(),
        body: key.to_owned(),
    };
    let change = |events: std::ops::RangeInclusive<i64>, answer: &str| {
        let answer = answer.to_owned();
        async move {
            let mut change = store.begin_change(now).await.unwrap();
            change.keep_answer((user, "many", "fp"), 201, answer);
            for lot in events {
                change.event(Event::new(
                    now,
                    LotId(lot),
                    EventPayload::LotCapacityChanged(LotCapacityChanged { capacity: 9 }),
                ));
            }
            change
                .audit(
                    &Actor::admin_token(),
                    "lot.update",
                    "lot 1",
                    json!({"n": 1}),
                )
                .audit(
                    &Actor::admin_token(),
                    "lot.update",
                    "lot 2",
                    json!({"n": 2}),
                );
            change
        }
    };
    let head = store.outbox_head().await.unwrap();
    let audits = services.admin().audit_log(1000).await.unwrap().len();
    let lots_after = |head: i64| async move {
        sqlx::query_scalar::<_, i64>("SELECT lot_id FROM outbox WHERE id > $1 ORDER BY id")
            .bind(head)
            .fetch_all(store.pool())
            .await
            .unwrap()
    };

    let mut first = change(1..=250, r#"{"first":true}"#).await;
    first
        .notify(message("a"))
        .notify(message("b"))
        .notify(message("a"));
    first.commit().await.unwrap();
    assert_eq!(lots_after(head).await, (1..=250).collect::<Vec<_>>());
    assert_eq!(
        services.admin().audit_log(1000).await.unwrap().len(),
        audits + 2
    );
    let mut inbox: Vec<String> = of_user(store, user, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.dedup_key)
        .collect();
    inbox.sort();
    assert_eq!(inbox, ["a", "b"], "one message per key");
    let kept = keys::find(store.pool(), user, "many")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.response.as_deref(), Some(r#"{"first":true}"#));

    let head = store.outbox_head().await.unwrap();
    let mut again = change(300..=420, r#"{"first":false}"#).await;
    again.notify(message("c"));
    let refused = again.commit().await.unwrap_err();
    assert_eq!(refused.code(), KEY_IN_PROGRESS);
    assert!(
        lots_after(head).await.is_empty(),
        "no event of the refused change"
    );
    assert_eq!(
        services.admin().audit_log(1000).await.unwrap().len(),
        audits + 2
    );
    assert_eq!(of_user(store, user, 10).await.unwrap().len(), 2);
    let kept = keys::find(store.pool(), user, "many")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.response.as_deref(), Some(r#"{"first":true}"#));
}

/// The relay's read of what Kafka has not acknowledged, on each store: every appended event once,
/// in order, exactly as recorded (text that looks like the read's own separators included), and
/// nothing once marked.
pub async fn the_relay_reads_each_unpublished_event_once_in_order(app: TestApp) {
    use warehouse_schema::event::LotRegistered;
    use warehouse_schema::{Event, EventPayload, LotId};
    let services = &app.state.services;
    let store = services.store();
    let outbox = store.outbox();
    let before = outbox.unpublished_outside(1, 0, 1000).await.unwrap();
    let events: Vec<Event> = (1..=5)
        .map(|i| {
            Event::new(
                services.now(),
                LotId(1000 + i),
                EventPayload::LotRegistered(LotRegistered {
                    name: format!("Lot {i}, \"Süd\"\n{}", "x".repeat(i as usize * 100)),
                    time_zone: "Europe/Berlin".into(),
                    latitude: 52.5,
                    longitude: 13.4,
                    capacity: 10,
                }),
            )
        })
        .collect();
    for event in &events {
        let mut change = store.begin_change(services.now()).await.unwrap();
        change.event(event.clone());
        change.commit().await.unwrap();
    }
    let read = outbox
        .unpublished_outside(1, 0, before.len() as i64 + 3)
        .await
        .unwrap();
    let ours: Vec<_> = read.iter().skip(before.len()).collect();
    assert_eq!(ours.len(), 3, "the limit counts rows");
    for (row, event) in ours.iter().zip(&events) {
        assert_eq!(row.lot_id, event.lot_id.0.to_string());
        assert_eq!(row.event_id, event.event_id.0.to_string());
        assert_eq!(row.payload, event.to_json());
    }
    let positions: Vec<i64> = outbox
        .unpublished_outside(1, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.position)
        .collect();
    assert!(positions.is_sorted() && positions.len() == before.len() + 5);
    // The round in flight is left out; marking removes rows for good.
    let (first, last) = (positions[0], positions[positions.len() - 2]);
    let rest = outbox.unpublished_outside(first, last, 1000).await.unwrap();
    assert_eq!(
        rest.iter().map(|r| r.position).collect::<Vec<_>>(),
        [positions[positions.len() - 1]]
    );
    outbox.mark_published(&positions).await.unwrap();
    assert!(
        outbox
            .unpublished_outside(1, 0, 1000)
            .await
            .unwrap()
            .is_empty()
    );
}
