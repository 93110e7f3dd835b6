//! API tests: the real router with `oneshot`, each test on its own fresh database — once on
//! SQLite and once on PostgreSQL (`PARKFLOW_TEST_POSTGRES_URL`, required in CI) — and one test
//! against a real server on port 0.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
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
mod basics;
mod defects;
mod delivery;
mod gates;
mod payments;
mod portal;
mod races;
mod reservations;
use accounts::{
    a_driver_exports_then_erases_their_data, accounts_sessions_and_refresh,
    drivers_reserve_over_http_and_see_only_their_own,
    reminders_warnings_and_no_shows_reach_the_inbox_once,
};
use basics::{
    a_proposed_notification_is_stored_once_per_key, bad_input_gets_the_envelope_never_a_500,
    check_in_and_out_charge_the_rates_in_force_during_the_stay,
    concurrent_entries_never_share_a_spot, full_lot_refuses_entry_and_respects_spot_types,
    full_server_on_port_zero_serves_health_and_metrics, lot_creation_writes_lot_spots_and_event,
    rate_schedule_separates_current_and_upcoming,
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
use races::{
    an_entry_that_keeps_losing_its_spot_still_gets_one,
    first_top_ups_at_once_all_credit_one_balance, lost_races_are_told_apart_from_other_failures,
    two_answers_to_one_inquiry_keep_one,
};
use reservations::{
    a_process_with_a_stale_index_still_books_right, a_quote_prices_each_band_of_the_window,
    back_to_back_windows_are_allowed_overlaps_are_not, booking_rules_are_enforced,
    idempotency_key_returns_the_first_answer, store_agrees_with_a_brute_force_oracle,
    two_hundred_concurrent_requests_for_one_spot_book_it_once,
};

on_both_stores!(
    two_answers_to_one_inquiry_keep_one,
    first_top_ups_at_once_all_credit_one_balance,
    an_entry_that_keeps_losing_its_spot_still_gets_one,
    lost_races_are_told_apart_from_other_failures,
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

/// Every scenario (`pub async fn name(app: TestApp)` in a module of this suite) is registered
/// with `on_both_stores!`: a scenario written but not listed would never run.
#[test]
fn every_scenario_runs_on_both_stores() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let registered: std::collections::BTreeSet<&str> = main
        .split(concat!("on_both_stores", "!("))
        .nth(1)
        .expect("main.rs registers the scenarios")
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let mut files = vec![dir.clone()];
    let mut scenarios = Vec::new();
    while let Some(d) = files.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path != dir.join("main.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("pub async fn ").skip(1) {
                    if let Some((name, rest)) = part.split_once('(')
                        && rest.trim_start().starts_with("app: TestApp")
                    {
                        scenarios.push(name.trim().to_owned());
                    }
                }
            }
        }
    }
    assert!(scenarios.len() > 40, "{scenarios:?}");
    let missing: Vec<&String> = scenarios
        .iter()
        .filter(|s| !registered.contains(s.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in on_both_stores!: {missing:?}");
}

/// `v` with what is random in it named by first appearance: each UUID becomes `[id N]` and
/// each gate pass `[pass N]`, the same value the same name, so a snapshot still shows which
/// fields refer to the same record.
fn stable_ids(v: &Value) -> Value {
    fn walk(v: &Value, seen: &mut Vec<String>) -> Value {
        match v {
            Value::String(s) => {
                let kind = if s.parse::<uuid::Uuid>().is_ok() {
                    "id"
                } else if s.starts_with("pf1.") {
                    "pass"
                } else {
                    return v.clone();
                };
                let n = seen.iter().position(|x| x == s).unwrap_or_else(|| {
                    seen.push(s.clone());
                    seen.len() - 1
                });
                Value::String(format!("[{kind} {}]", n + 1))
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, seen)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), walk(v, seen)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(v, &mut Vec::new())
}
