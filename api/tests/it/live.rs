//! Live availability: the JSON state and the Server-Sent Events stream of `/v1/lots/{id}/live`
//! and `/v1/live` — each change pushed, resume by `Last-Event-ID`, several processes on one
//! database, heartbeats, closed clients freeing what they held, and bad input refused.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use parkflow_api::{ApiConfig, AppState, LiveConfig, router};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// One event of a stream (comments are kept apart: they are the heartbeats).
#[derive(Debug)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: Option<String>,
    pub data: Value,
}

/// Reads a stream's events as a browser's `EventSource` would.
pub struct SseReader {
    body: Body,
    buf: String,
    pub comments: Vec<String>,
}

impl SseReader {
    /// The next event within `within`, or None (nothing came, or the stream ended).
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        self.comments.push(c.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(SseEvent { id, event, data });
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await;
            match frame {
                Ok(Some(Ok(f))) => {
                    if let Ok(bytes) = f.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Open a stream of `uri` on `state`'s router (with `Last-Event-ID: last` when given).
pub async fn open_stream(state: &AppState, uri: &str, last: Option<i64>) -> SseReader {
    open_stream_as(state, uri, last, None).await
}

/// [`open_stream`] with a bearer `token`.
pub async fn open_stream_as(
    state: &AppState,
    uri: &str,
    last: Option<i64>,
    token: Option<&str>,
) -> SseReader {
    let mut req = Request::get(uri).header("accept", "text/event-stream");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(last) = last {
        req = req.header("last-event-id", last.to_string());
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    SseReader {
        body: resp.into_body(),
        buf: String::new(),
        comments: Vec::new(),
    }
}

/// A stream's response as sent, for refusals.
async fn stream_reply(state: &AppState, uri: &str, last: Option<&str>) -> Reply {
    let mut req = Request::get(uri).header("accept", "text/event-stream");
    if let Some(last) = last {
        req = req.header("last-event-id", last);
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

const SOON: Duration = Duration::from_secs(3);

pub async fn live_streams_push_each_change_and_resume(app: TestApp) {
    let lot = app.with_lot(json!({ "car": 3, "ev": 1 })).await;

    // Without asking for a stream: the state now, and the response ends.
    let now = app
        .call("GET", &format!("/v1/lots/{lot}/live"), None, None)
        .await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.body);
    assert_eq!(now.body["capacity"], 4);
    assert_eq!(now.body["freeSpots"], 4);
    assert_eq!(now.body["occupied"], 0);
    assert_eq!(
        now.body["freeFor"]["car"], 3,
        "EV spots are not open to cars"
    );
    assert_eq!(now.body["freeFor"]["ev"], 4, "an EV may use a car spot too");
    assert_eq!(now.body["currentCentsPerHour"], 200);
    assert_eq!(now.body["currency"], "EUR");

    let uri = format!("/v1/lots/{lot}/live");
    let mut watcher = open_stream(&app.state, &uri, None).await;
    let first = watcher.next(SOON).await.expect("the state now comes first");
    assert_eq!(first.event.as_deref(), Some("lot"));
    assert_eq!(first.data["freeSpots"], 4);
    let first_id = first.id.expect("each event has an id");

    // A car enters: pushed to the watcher.
    let entry = app.enter(lot, "car").await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let after_entry = watcher.next(SOON).await.expect("the entry is pushed");
    assert_eq!(after_entry.data["freeSpots"], 3);
    assert_eq!(after_entry.data["occupied"], 1);
    assert_eq!(after_entry.data["freeFor"]["car"], 2);
    let entry_id = after_entry.id.unwrap();
    assert!(entry_id > first_id, "{entry_id} after {first_id}");
    assert_eq!(after_entry.data["position"], entry_id);

    // A client that reconnects having seen the entry gets nothing until the next change.
    let mut resumed = open_stream(&app.state, &uri, Some(entry_id)).await;
    assert!(resumed.next(Duration::from_millis(600)).await.is_none());
    // One that saw only the first state gets the lot as it is now, at once.
    let mut behind = open_stream(&app.state, &uri, Some(first_id)).await;
    let caught_up = behind.next(SOON).await.expect("a stale client catches up");
    assert_eq!(caught_up.data["freeSpots"], 3);

    // The car leaves: every stream hears it.
    let session = entry.body["sessionId"].as_str().unwrap();
    let exit = app.gate(lot).leave(session).await;
    assert_eq!(exit.status, StatusCode::OK, "{}", exit.body);
    for stream in [&mut watcher, &mut resumed, &mut behind] {
        let e = stream.next(SOON).await.expect("the exit is pushed");
        assert_eq!(e.data["freeSpots"], 4);
        assert!(e.id.unwrap() > entry_id);
    }

    // A rate announced for later shows as the next change, and the rate now is unchanged.
    let from = app.state.services.now() + chrono::Duration::days(2);
    let rates = json!({ "rates": [
        { "band": "morning", "dayKind": "weekday", "vehicleType": "car", "centsPerHour": 350,
          "effectiveFrom": from },
    ]});
    app.publish_rates(lot, rates).await;
    let announced = watcher.next(SOON).await.expect("the publication is pushed");
    assert_eq!(announced.data["nextRateChange"]["centsPerHour"], 350);
    assert_eq!(announced.data["nextRateChange"]["band"], "morning");
    assert_eq!(announced.data["currentCentsPerHour"], 200);

    // A change a driver would not see (a booking days ahead leaves the lot free now) is not
    // pushed.
    let driver = app.driver("live.driver@example.com").await;
    let start = app.state.services.now() + chrono::Duration::days(3);
    let booked = driver.book(lot, (start, 2), "car", "live-1").await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    assert!(watcher.next(Duration::from_millis(800)).await.is_none());

    // Clients that go away free what they held.
    let live = app.state.services.live();
    assert_eq!(live.open_watches(), 3);
    drop((watcher, resumed, behind));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(live.open_watches(), 0);
    let metrics = app.call("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("parkflow_api_live_streams 0"), "{text}");
    // The follower forgets the lot the next time it reads the outbox.
    app.enter(lot, "car").await;
    live.catch_up().await.unwrap();
    assert_eq!(live.watched_lots(), 0);
}

pub async fn several_processes_agree_on_live_state(app: TestApp) {
    let lot = app.with_lot(json!({ "car": 2 })).await;
    let other = app.second_process().await;
    let mut watcher = open_stream(&app.state, &format!("/v1/live?lots={lot}"), None).await;
    assert_eq!(watcher.next(SOON).await.unwrap().data["freeSpots"], 2);

    // A car enters through the other process: this one reads it from the outbox.
    let entry = Request::post(format!("/v1/gates/{lot}/entries"))
        .header("authorization", format!("Bearer {GATE}"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "vehicleType": "car", "method": "qr" }).to_string(),
        ))
        .unwrap();
    let resp = router(other.clone()).oneshot(entry).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let pushed = watcher
        .next(SOON)
        .await
        .expect("another process's entry reaches this one's watchers");
    assert_eq!(pushed.data["freeSpots"], 1);
    assert_eq!(pushed.data["lotId"], lot);

    // Both processes say the same now.
    let here = app
        .call("GET", &format!("/v1/lots/{lot}/live"), None, None)
        .await;
    let resp = router(other)
        .oneshot(
            Request::get(format!("/v1/lots/{lot}/live"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let there: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(here.body["freeSpots"], there["freeSpots"]);
    assert_eq!(here.body["occupied"], there["occupied"]);
}

pub async fn live_input_is_checked_and_streams_are_bounded(app: TestApp) {
    let a = app.with_lot(json!({ "car": 2 })).await;
    let b = app.with_lot(json!({ "motorcycle": 1 })).await;

    // Several lots on one stream: each lot's state, each naming its lot.
    let mut both = open_stream(&app.state, &format!("/v1/live?lots={a},{b}"), None).await;
    let mut seen = vec![
        both.next(SOON).await.unwrap().data["lotId"]
            .as_i64()
            .unwrap(),
        both.next(SOON).await.unwrap().data["lotId"]
            .as_i64()
            .unwrap(),
    ];
    seen.sort();
    assert_eq!(seen, vec![a, b]);
    let json = app
        .call("GET", &format!("/v1/live?lots={b},{a}"), None, None)
        .await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    assert_eq!(json.body["lots"][0]["lotId"], b);
    assert_eq!(json.body["lots"][1]["lotId"], a);

    // Bad input, as JSON or as a stream: the envelope with a 4xx, never a stream.
    let r = app.call("GET", "/v1/lots/999/live", None, None).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    let r = stream_reply(&app.state, "/v1/lots/999/live", None).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    let r = stream_reply(&app.state, &format!("/v1/live?lots={a},999"), None).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    for bad in ["abc", "", "0", "1,,2", "01", "1%2C%202"] {
        let r = app
            .call("GET", &format!("/v1/live?lots={bad}"), None, None)
            .await;
        assert_envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let r = app.call("GET", "/v1/live", None, None).await;
    assert!(r.status.is_client_error(), "{}", r.body);
    let too_many: Vec<String> = (1..=1001).map(|i| i.to_string()).collect();
    let r = app
        .call(
            "GET",
            &format!("/v1/live?lots={}", too_many.join(",")),
            None,
            None,
        )
        .await;
    assert_envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for bad in ["abc", "-1", "1.5", "", "null", "1000000000000000000"] {
        let r = stream_reply(&app.state, &format!("/v1/lots/{a}/live"), Some(bad)).await;
        assert_envelope(&r, StatusCode::BAD_REQUEST, "bad_request");
        let r = app
            .call_with(
                "GET",
                &format!("/v1/lots/{a}/live"),
                None,
                None,
                Some(("last-event-id", bad)),
            )
            .await;
        assert_envelope(&r, StatusCode::BAD_REQUEST, "bad_request");
    }

    // A process with room for three watched lots and a heartbeat every second.
    let config = ApiConfig {
        live: LiveConfig {
            max_watches: 3,
            heartbeat_s: 1,
            ..LiveConfig::default()
        },
        ..app.config.clone()
    };
    let small = AppState::open(&config, Arc::new(app.clock.clone()), Registry::default())
        .await
        .unwrap();
    let mut two = open_stream(&small, &format!("/v1/live?lots={a},{b}"), None).await;
    let one = open_stream(&small, &format!("/v1/lots/{a}/live"), None).await;
    let r = stream_reply(&small, &format!("/v1/lots/{b}/live"), None).await;
    assert_envelope(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_eq!(r.headers["retry-after"], "5");
    // A plain read needs no stream slot.
    let resp = router(small.clone())
        .oneshot(
            Request::get(format!("/v1/lots/{b}/live"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Closing a stream frees its slots for the next client.
    drop(one);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _again = open_stream(&small, &format!("/v1/lots/{b}/live"), None).await;

    // An idle stream carries heartbeats.
    two.next(SOON).await.unwrap();
    two.next(SOON).await.unwrap();
    assert!(two.next(Duration::from_millis(2500)).await.is_none());
    assert!(
        two.comments.iter().any(|c| c == "heartbeat"),
        "{:?}",
        two.comments
    );
}

pub async fn a_drivers_new_messages_are_pushed_from_any_process(app: TestApp) {
    let lot = app.with_lot(json!({ "car": 3 })).await;
    let driver = app.driver("inbox.live@example.com").await;
    let other = app.driver("someone.else.live@example.com").await;
    let mut inbox = open_stream_as(
        &app.state,
        "/v1/notifications/live",
        None,
        Some(&driver.token),
    )
    .await;
    // Nothing old is replayed without a resume point.
    assert!(inbox.next(Duration::from_millis(400)).await.is_none());

    // A booking's confirmation arrives as it is written; another driver's does not.
    let start = app.state.services.now() + chrono::Duration::hours(3);
    let theirs = other.book(lot, (start, 1), "car", "live-inbox-0").await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    let booked = driver.book(lot, (start, 1), "car", "live-inbox-1").await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let first = inbox.next(SOON).await.expect("the confirmation is pushed");
    assert_eq!(first.event.as_deref(), Some("message"));
    assert_eq!(
        first.data["kind"], "reservation_confirmed",
        "{:?}",
        first.data
    );
    assert_eq!(first.data["userId"], driver_id(&driver).await);
    let first_id = first.id.unwrap();
    assert_eq!(first.data["id"], first_id);

    // One written by another API process on the database comes too.
    let second = app.second_process().await;
    let id = booked.body["id"].as_str().unwrap();
    let cancel = Request::post(format!("/v1/reservations/{id}/cancel"))
        .header("authorization", format!("Bearer {}", driver.token))
        .body(Body::empty())
        .unwrap();
    let resp = router(second).oneshot(cancel).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cancelled = inbox
        .next(SOON)
        .await
        .expect("the other process's message is pushed");
    assert_eq!(
        cancelled.data["kind"], "reservation_cancelled",
        "{:?}",
        cancelled.data
    );
    let cancelled_id = cancelled.id.unwrap();

    // Resuming: up to date gets nothing until something new; behind gets what it missed.
    let mut resumed = open_stream_as(
        &app.state,
        "/v1/notifications/live",
        Some(cancelled_id),
        Some(&driver.token),
    )
    .await;
    assert!(resumed.next(Duration::from_millis(400)).await.is_none());
    let mut behind = open_stream_as(
        &app.state,
        "/v1/notifications/live",
        Some(first_id),
        Some(&driver.token),
    )
    .await;
    assert_eq!(behind.next(SOON).await.unwrap().id, Some(cancelled_id));

    // As JSON: the messages after the one given, oldest first.
    let r = app
        .call_with(
            "GET",
            "/v1/notifications/live",
            Some(&driver.token),
            None,
            Some(("last-event-id", &first_id.to_string())),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ids: Vec<i64> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![cancelled_id]);

    // A driver's stream needs the driver.
    let r = app.call("GET", "/v1/notifications/live", None, None).await;
    assert_envelope(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = app
        .call("GET", "/v1/notifications/live", Some(ADMIN), None)
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);

    // A burst larger than one read (150 messages at once, written outside any change, so
    // the follower finds them by polling) arrives whole, without waiting for another message.
    {
        use parkflow_api::notifications::{NewNotification, NotificationKind, enqueue};
        let user =
            warehouse_schema::UserId(driver_id(&driver).await.as_str().unwrap().parse().unwrap());
        let now = app.state.services.now();
        for i in 0..150 {
            let n = NewNotification {
                user_id: user,
                kind: NotificationKind::ArrivalForecast,
                dedup_key: format!("burst-{i}"),
                lot_id: Some(warehouse_schema::LotId(lot)),
                title: format!("Burst {i}"),
                body: "Lot A has spaces left".into(),
            };
            assert!(enqueue(app.state.services.store(), &n, now).await.unwrap());
        }
        let mut got = Vec::new();
        while got.len() < 150 {
            let Some(e) = inbox.next(SOON).await else {
                panic!("only {} of the 150 messages came", got.len());
            };
            got.push(e.data["title"].as_str().unwrap().to_owned());
        }
        assert_eq!(got.first().map(String::as_str), Some("Burst 0"));
        assert_eq!(got.last().map(String::as_str), Some("Burst 149"));
    }

    // Closing the streams frees their slots.
    let live = app.state.services.live();
    assert_eq!(live.open_watches(), 3);
    drop((inbox, resumed, behind));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(live.open_watches(), 0);
}

/// The user id the API gave `driver` (from their data export).
async fn driver_id(driver: &Driver<'_>) -> Value {
    let export = driver.get("/v1/me/export").await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    export.body["account"]["id"].clone()
}
