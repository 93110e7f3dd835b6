//! API tests: the real router with `oneshot`, each test on its own fresh database — once on
//! SQLite and once on PostgreSQL (`PARKFLOW_TEST_POSTGRES_URL`, required in CI) — and one test
//! against a real server on port 0.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use parkflow_api::{ApiConfig, AppState, ManualClock, router};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub struct TestApp {
    state: AppState,
    clock: ManualClock,
    config: ApiConfig,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    status: StatusCode,
    body: Value,
}

const ADMIN: &str = "dev-admin-token";
pub const GATE: &str = "dev-gate-token";
const PRICING: &str = "dev-pricing-token";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// Drops a test's PostgreSQL database once the test has passed (a failed test leaves its
/// database behind, to look at).
pub struct Cleanup(Option<(String, String)>);

impl Cleanup {
    pub async fn run(self) {
        let Some((admin, name)) = self.0 else {
            return;
        };
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        // FORCE: the test's own pool may still be closing its connections.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
}

/// A fresh PostgreSQL database on the test server, or None (with a note) outside CI.
async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("PARKFLOW_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PARKFLOW_TEST_POSTGRES_URL must be set in CI"
        );
        eprintln!("SKIPPED: PARKFLOW_TEST_POSTGRES_URL is not set (run ./scripts/test)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("pf_api_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

impl TestApp {
    async fn new(db: Db) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("api.db").display()),
            Db::Postgres => postgres_database().await?,
        };
        let config = ApiConfig {
            database_url,
            ..ApiConfig::default()
        };
        // A Monday morning in Berlin: 09:00 local.
        let clock = ManualClock::new(t("2026-06-01T07:00:00Z"));
        let state = AppState::open(&config, Arc::new(clock.clone()), Registry::default())
            .await
            .unwrap();
        Some(Self {
            state,
            clock,
            config,
            _dir: dir,
        })
    }

    /// What to drop after the test: its PostgreSQL database (nothing on SQLite, whose file
    /// goes with the temporary directory).
    fn cleanup(&self) -> Cleanup {
        let url = &self.config.database_url;
        let name = url
            .starts_with("postgres")
            .then(|| url.rsplit_once('/').map(|(_, name)| name.to_owned()))
            .flatten();
        Cleanup(name.and_then(|n| Some((std::env::var("PARKFLOW_TEST_POSTGRES_URL").ok()?, n))))
    }

    /// Another API process on the same database and clock, with its own availability index.
    async fn second_process(&self) -> AppState {
        AppState::open(
            &self.config,
            Arc::new(self.clock.clone()),
            Registry::default(),
        )
        .await
        .unwrap()
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.call_with(method, uri, token, body, None).await
    }

    async fn call_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
        header: Option<(&str, &str)>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(tok) = token {
            req = req.header("authorization", format!("Bearer {tok}"));
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply { status, body }
    }

    async fn with_lot(&self, spots: Value) -> i64 {
        let body = json!({
            "name": "Lot A", "timeZone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.40,
            "currency": "EUR", "defaultCentsPerHour": 200, "spots": spots
        });
        let r = self
            .call("POST", "/v1/lots", Some(ADMIN), Some(&body.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    }

    async fn enter(&self, lot: i64, vehicle: &str) -> Reply {
        let body = json!({ "vehicleType": vehicle, "method": "qr" }).to_string();
        self.call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(GATE),
            Some(&body),
        )
        .await
    }

    /// Open every pooled connection now: requests released together then truly run together
    /// instead of queueing behind connection set-up.
    async fn warm_pool(&self) {
        let pool = self.state.service.store().pool().clone();
        let holders: Vec<_> = (0..pool.options().get_max_connections())
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut conn = pool.acquire().await.unwrap();
                    sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                })
            })
            .collect();
        for h in holders {
            h.await.unwrap();
        }
    }

    async fn outbox_types(&self) -> Vec<String> {
        // Any driver: the same query on both stores.
        sqlx::query_scalar("SELECT event_type FROM outbox ORDER BY id")
            .fetch_all(self.state.service.store().pool())
            .await
            .unwrap()
    }
}

fn assert_envelope(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

async fn lot_creation_writes_lot_spots_and_event(app: TestApp) {
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

async fn check_in_and_out_charge_the_rates_in_force_during_the_stay(app: TestApp) {
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
    let r = app
        .call(
            "PUT",
            &format!("/v1/lots/{lot}/rates"),
            Some(PRICING),
            Some(&rates.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.clock.set(t("2026-06-01T10:30:00Z"));
    let exit = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/exits"),
            Some(GATE),
            Some(&json!({"sessionId": session}).to_string()),
        )
        .await;
    assert_eq!(exit.status, StatusCode::OK, "{}", exit.body);
    assert_eq!(exit.body["durationS"], 12_600);
    assert_eq!(exit.body["centsPerHour"], 300);
    assert_eq!(exit.body["band"], "midday");
    assert_eq!(exit.body["amountCents"], 2 * 200 + 450);
    assert_eq!(exit.body["currency"], "EUR");

    // A second exit of the same stay is a conflict, not a second charge.
    let again = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/exits"),
            Some(GATE),
            Some(&json!({"sessionId": session}).to_string()),
        )
        .await;
    assert_envelope(&again, StatusCode::CONFLICT, "session_closed");
    assert_eq!(
        app.outbox_types().await,
        ["lot_registered", "check_in", "rate_published", "exit"]
    );
}

async fn full_lot_refuses_entry_and_respects_spot_types(app: TestApp) {
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

async fn bad_input_gets_the_envelope_never_a_500(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let entries = format!("/v1/gates/{lot}/entries");
    assert_envelope(
        &app.call("POST", &entries, Some(GATE), Some("{not json"))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_envelope(
        &app.call(
            "POST",
            &entries,
            Some(GATE),
            Some(r#"{"vehicleType":"tank","method":"qr"}"#),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.call(
            "POST",
            &entries,
            Some(GATE),
            Some(r#"{"vehicleType":"car","method":"qr","extra":1}"#),
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
        &app.call("POST", "/v1/lots", Some(ADMIN), Some(&bad_lot.to_string()))
            .await,
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

fn uuid_str() -> String {
    "0190a5d2-0000-7000-8000-000000000000".into()
}

async fn rate_schedule_separates_current_and_upcoming(app: TestApp) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let now = app.state.service.now();
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

async fn full_server_on_port_zero_serves_health_and_metrics(app: TestApp) {
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

/// One test per store for each scenario.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::TestApp::new(super::Db::Sqlite).await.unwrap()).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = super::TestApp::new(super::Db::Postgres).await {
                    let cleanup = app.cleanup();
                    super::$name(app).await;
                    cleanup.run().await;
                }
            })*
        }
    };
}

mod accounts;
mod defects;
mod delivery;
mod gates;
mod payments;
mod portal;
mod reservations;
use accounts::{
    a_driver_exports_then_erases_their_data, accounts_sessions_and_refresh,
    drivers_reserve_over_http_and_see_only_their_own,
    reminders_warnings_and_no_shows_reach_the_inbox_once,
};
use defects::{
    a_balance_holds_one_currency, a_key_reused_for_another_request_is_refused,
    concurrent_retries_of_one_booking_all_get_it,
    erasure_ends_waitlist_entries_and_the_export_holds_them,
    framework_rejections_carry_the_envelope, messages_schemes_and_text_hold_up,
    one_unservable_waiter_does_not_stop_the_queue, overflowing_spot_counts_are_refused,
    waitlist_and_availability_apply_the_booking_rules,
    wrong_passwords_throttle_the_guesser_not_the_owner,
};
use delivery::{
    e_mail_and_push_go_out_over_verified_tls, messages_reach_email_and_push_once_with_retries,
};
use gates::{
    a_cancelled_or_late_reservation_opens_nothing, a_pass_opens_the_gate_once_within_its_window,
    ev_spots_take_cars_only_where_the_lot_says_so, lots_and_spots_nearest_to_the_workplace_first,
    one_pass_read_twice_at_once_enters_once,
    openapi_describes_every_route_and_the_docs_page_shows_it, plates_and_drive_ups_at_the_gate,
    reservations_change_before_they_start,
    times_need_an_offset_and_windows_count_local_days_across_dst,
};
use payments::{
    drive_ups_need_the_minimum_balance_and_pay_from_it,
    payments_are_idempotent_and_a_decline_cancels_and_tells, reversals_balances_and_refunds,
    the_first_waiter_gets_the_freed_spot,
};
use portal::{
    admins_manage_lots_spots_and_inquiries_and_each_action_is_audited,
    every_text_a_user_sets_is_escaped_on_every_page, the_portal_needs_an_admin_sign_in,
};
use reservations::{
    a_process_with_a_stale_index_still_books_right, a_quote_prices_each_band_of_the_window,
    back_to_back_windows_are_allowed_overlaps_are_not, booking_rules_are_enforced,
    idempotency_key_returns_the_first_answer, store_agrees_with_a_brute_force_oracle,
    two_hundred_concurrent_requests_for_one_spot_book_it_once,
};

on_both_stores!(
    overflowing_spot_counts_are_refused,
    a_key_reused_for_another_request_is_refused,
    concurrent_retries_of_one_booking_all_get_it,
    waitlist_and_availability_apply_the_booking_rules,
    one_unservable_waiter_does_not_stop_the_queue,
    erasure_ends_waitlist_entries_and_the_export_holds_them,
    framework_rejections_carry_the_envelope,
    a_balance_holds_one_currency,
    wrong_passwords_throttle_the_guesser_not_the_owner,
    messages_schemes_and_text_hold_up,
    a_process_with_a_stale_index_still_books_right,
    a_pass_opens_the_gate_once_within_its_window,
    a_cancelled_or_late_reservation_opens_nothing,
    plates_and_drive_ups_at_the_gate,
    one_pass_read_twice_at_once_enters_once,
    reservations_change_before_they_start,
    lots_and_spots_nearest_to_the_workplace_first,
    openapi_describes_every_route_and_the_docs_page_shows_it,
    times_need_an_offset_and_windows_count_local_days_across_dst,
    ev_spots_take_cars_only_where_the_lot_says_so,
    accounts_sessions_and_refresh,
    drivers_reserve_over_http_and_see_only_their_own,
    back_to_back_windows_are_allowed_overlaps_are_not,
    booking_rules_are_enforced,
    idempotency_key_returns_the_first_answer,
    two_hundred_concurrent_requests_for_one_spot_book_it_once,
    store_agrees_with_a_brute_force_oracle,
    lot_creation_writes_lot_spots_and_event,
    check_in_and_out_charge_the_rates_in_force_during_the_stay,
    full_lot_refuses_entry_and_respects_spot_types,
    bad_input_gets_the_envelope_never_a_500,
    rate_schedule_separates_current_and_upcoming,
    concurrent_entries_never_share_a_spot,
    full_server_on_port_zero_serves_health_and_metrics,
    a_proposed_notification_is_stored_once_per_key,
    reminders_warnings_and_no_shows_reach_the_inbox_once,
    a_driver_exports_then_erases_their_data,
    payments_are_idempotent_and_a_decline_cancels_and_tells,
    reversals_balances_and_refunds,
    drive_ups_need_the_minimum_balance_and_pay_from_it,
    the_first_waiter_gets_the_freed_spot,
    messages_reach_email_and_push_once_with_retries,
    a_quote_prices_each_band_of_the_window,
    the_portal_needs_an_admin_sign_in,
    e_mail_and_push_go_out_over_verified_tls,
    admins_manage_lots_spots_and_inquiries_and_each_action_is_audited,
    every_text_a_user_sets_is_escaped_on_every_page,
);

async fn a_proposed_notification_is_stored_once_per_key(app: TestApp) {
    use parkflow_api::notifications::{NewNotification, NotificationKind, enqueue, unsent};
    let store = app.state.service.store();
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
    let now = app.state.service.now();
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

async fn concurrent_entries_never_share_a_spot(app: TestApp) {
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
