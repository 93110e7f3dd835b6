//! The usage report from the lake: the figures of a small known day, and the HTML and CSV files.

use chrono::{DateTime, Duration, Utc};
use parkflow::{Config, serve, steps};
use parkflow_api::ManualClock;
use parkflow_api::services::CheckInRequest;
use parkflow_api::services::reservations::NewReservation;
use parkflow_api::services::reservations::lifecycle::ReservationTimers;
use parkflow_jobs::RunStatus;
use std::sync::Arc;
use warehouse_schema::lake::Lake;
use warehouse_schema::{EntryMethod, LotId, UserId, VehicleType};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_report_adds_up_and_is_written_as_html_and_csv() {
    let OneLot {
        dir,
        cfg,
        clock,
        state,
        metrics,
        lot,
    } = one_lot().await;
    let s = &state.services;
    // Three stays on Monday 2026-06-01: 20 min (car, QR), 90 min (EV, NFC), 5 h (car, QR).
    let mut stays = Vec::new();
    for (minutes, vt, method) in [
        (20, VehicleType::Car, EntryMethod::Qr),
        (90, VehicleType::Ev, EntryMethod::Nfc),
        (300, VehicleType::Car, EntryMethod::Qr),
    ] {
        clock.set(t("2026-06-01T08:00:00Z"));
        let r = s
            .gates()
            .check_in(
                lot,
                CheckInRequest {
                    vehicle_type: vt,
                    method,
                    plate: None,
                    user_id: None,
                },
            )
            .await
            .unwrap();
        stays.push((r.session_id, minutes));
    }
    for (session, minutes) in &stays {
        clock.set(t("2026-06-01T08:00:00Z") + Duration::minutes(*minutes));
        s.gates().check_out(lot, *session).await.unwrap();
    }
    // Reservations made at 07:00 (for 09:00) and at 06:00 (for two days later): one
    // cancelled, one a no-show.
    clock.set(t("2026-06-01T07:00:00Z"));
    let soon_owner = UserId::new();
    let soon = s
        .reservations()
        .reserve(
            soon_owner,
            NewReservation::new(
                lot,
                t("2026-06-01T09:00:00Z"),
                t("2026-06-01T10:00:00Z"),
                VehicleType::Car,
            ),
            "a",
        )
        .await
        .unwrap();
    let paid = s
        .payments()
        .pay_reservation(
            soon_owner,
            soon.id,
            parkflow_api::services::payments::PaymentMethod::Card {
                token: "tok_ok".into(),
                last4: "4242".into(),
            },
            "p",
        )
        .await;
    let paid = paid.unwrap();
    assert_eq!(paid.status.as_str(), "captured");
    let owner = UserId::new();
    let later = s
        .reservations()
        .reserve(
            owner,
            NewReservation::new(
                lot,
                t("2026-06-03T09:00:00Z"),
                t("2026-06-03T10:00:00Z"),
                VehicleType::Car,
            ),
            "b",
        )
        .await
        .unwrap();
    s.reservations()
        .cancel_reservation(owner, later.id)
        .await
        .unwrap();
    clock.set(t("2026-06-01T10:05:00Z"));
    let swept = s
        .reservations()
        .sweep_reservations(clock_now(s), &ReservationTimers::default())
        .await
        .unwrap();
    assert_eq!(swept.no_shows, 1, "{soon:?}");
    clock.set(t("2026-06-02T00:00:00Z"));
    let scheduler = serve::schedule(&cfg, &state, &metrics).await.unwrap();
    for job in ["ingest", "occupancy"] {
        let run = scheduler.run_now(job).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{job}: {:?}", run.message);
    }

    let lake = Lake::new(cfg.lake_dir());
    let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    let r = parkflow_pipeline::usage_report(
        &lake,
        t("2026-06-01T00:00:00Z"),
        t("2026-06-02T00:00:00Z"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.lots.len(), 1);
    let l = &r.lots[0];
    assert_eq!(l.stays, 3);
    assert!((l.mean_dwell_minutes - (20.0 + 90.0 + 300.0) / 3.0).abs() < 0.01);
    assert!((l.turnover - 3.0 / f64::from(l.capacity)).abs() < 1e-9);
    let dwell: Vec<u64> = r.dwell.iter().map(|(_, n)| *n).collect();
    assert_eq!(dwell, [1, 0, 1, 0, 1, 0, 0], "{:?}", r.dwell);
    let types: Vec<(&str, u64)> = r
        .by_vehicle_type
        .iter()
        .map(|(k, n, _)| (k.as_str(), *n))
        .collect();
    assert_eq!(types, [("car", 2), ("ev", 1)]);
    let methods: Vec<(&str, u64)> = r
        .by_method
        .iter()
        .map(|(k, n, _)| (k.as_str(), *n))
        .collect();
    assert_eq!(methods, [("nfc", 1), ("qr", 2)]);
    let revenue: i64 = r.by_vehicle_type.iter().map(|(_, _, c)| c).sum();
    assert_eq!(revenue, l.revenue_cents);
    assert!(revenue > 0);
    assert_eq!(
        (
            r.reservations.created,
            r.reservations.cancelled,
            r.reservations.no_shows
        ),
        (2, 1, 1)
    );
    assert_eq!(
        r.by_payment_method,
        [("card".to_owned(), 1, paid.amount_cents)],
        "payments by method"
    );
    let leads: Vec<u64> = r.lead_times.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        leads,
        [0, 1, 0, 1, 0],
        "2 h and 2 days ahead: {:?}",
        r.lead_times
    );
    let monday_8 = r
        .occupancy_by_hour
        .iter()
        .find(|c| c.weekday == 0 && c.hour == local_hour_of(&r, 8))
        .expect("a cell for the busy hour");
    assert!(monday_8.mean_occupancy > 0.0);
    assert_eq!(r.peaks.len(), 5);

    // The files: one HTML page with its charts, and the CSVs.
    let out = dir.path().join("report");
    let html = steps::usage_report(&lake, day("2026-06-01"), day("2026-06-02"), None, &out)
        .await
        .unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("<svg").count() >= 4, "charts inline");
    assert!(page.contains("Reservations") && page.contains("2 made, 1 cancelled (50.0%)"));
    let lots_csv = std::fs::read_to_string(out.join("lots.csv")).unwrap();
    assert_eq!(lots_csv.lines().count(), 2, "{lots_csv}");
    let dwell_csv = std::fs::read_to_string(out.join("dwell_times.csv")).unwrap();
    assert!(dwell_csv.contains("< 30 min,1"), "{dwell_csv}");
    // One lot only, and a lot that does not exist.
    let one = parkflow_pipeline::usage_report(
        &lake,
        t("2026-06-01T00:00:00Z"),
        t("2026-06-02T00:00:00Z"),
        Some(lot),
    )
    .await
    .unwrap();
    assert_eq!(one.lots.len(), 1);
    let e = steps::usage_report(
        &lake,
        day("2026-06-01"),
        day("2026-06-02"),
        Some(LotId(999)),
        &out,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("lot 999"), "{e}");
}

/// A data directory with the API open on it, one simulated lot, and a manual clock at Monday
/// 2026-06-01 05:00 UTC.
struct OneLot {
    dir: tempfile::TempDir,
    cfg: Config,
    clock: ManualClock,
    state: parkflow_api::AppState,
    metrics: steps::Metrics,
    lot: LotId,
}

async fn one_lot() -> OneLot {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let clock = ManualClock::new(t("2026-06-01T05:00:00Z"));
    let (state, metrics) = steps::open_api(&cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 1,
        ..Default::default()
    });
    let lot: LotId = steps::create_lots(&state, plans).await.unwrap()[0].0;
    OneLot {
        dir,
        cfg,
        clock,
        state,
        metrics,
        lot,
    }
}

fn clock_now(s: &parkflow_api::Services) -> DateTime<Utc> {
    s.now()
}

/// The local hour of 08:00 UTC in the scenario's zone.
fn local_hour_of(_r: &warehouse_schema::outputs::UsageReport, utc_hour: u32) -> u32 {
    use chrono::Timelike;
    let tz = parkflow_simulator::SimConfig::default().time_zone;
    t(&format!("2026-06-01T{utc_hour:02}:00:00Z"))
        .with_timezone(&tz)
        .hour()
}

/// A pass bought and renewed, and its holder's entry, reach the lake as events and the report
/// as its monthly-pass figures (the HTML page and the CSV too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_passes_reach_the_lake_and_the_report() {
    use parkflow_api::accounts::{Credentials, NewVehicle};
    use parkflow_api::services::monthly::{BuyPass, NewProduct};
    use parkflow_api::services::payments::PaymentMethod;
    let OneLot {
        dir,
        cfg,
        clock,
        state,
        metrics,
        lot,
    } = one_lot().await;
    let s = &state.services;
    let product = s
        .monthly_passes()
        .create_product(
            &parkflow_api::domain::Actor::admin_token(),
            lot,
            NewProduct {
                name: "Every day".into(),
                days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .map(String::from)
                    .to_vec(),
                from_hour: 0,
                until_hour: 24,
                vehicle_types: vec![VehicleType::Car],
                price_cents: 12_000,
                spots: 5,
                keeps_spot: false,
            },
        )
        .await
        .unwrap();
    let user = state
        .accounts
        .register(Credentials {
            email: "holder@example.com".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap();
    let car = state
        .accounts
        .add_vehicle(
            user,
            NewVehicle {
                plate: "M PF 7".into(),
                region: "M".into(),
                vehicle_type: VehicleType::Car,
            },
        )
        .await
        .unwrap();
    let card = PaymentMethod::Card {
        token: "tok_ok".into(),
        last4: "4242".into(),
    };
    let pass = s
        .monthly_passes()
        .buy(
            user,
            BuyPass {
                product_id: product.id,
                vehicle_id: car.id,
                payment: card,
            },
            "k",
        )
        .await
        .unwrap();
    // Its holder parks two hours, free; a month later it renews.
    clock.set(t("2026-06-01T08:00:00Z"));
    let entry = s
        .gates()
        .enter(
            lot,
            serde_json::from_value(serde_json::json!({"method": "plate", "plate": "M PF 7"}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(entry.monthly_pass_id, Some(pass.id));
    clock.set(t("2026-06-01T10:00:00Z"));
    let exit = s.gates().check_out(lot, entry.session_id).await.unwrap();
    assert_eq!(exit.amount_cents, 0);
    clock.set(t("2026-07-01T05:00:00Z"));
    let swept = s.monthly_passes().sweep_passes(s.now()).await.unwrap();
    assert_eq!(swept.renewed, 1, "{swept:?}");
    clock.set(t("2026-07-02T00:00:00Z"));
    let scheduler = serve::schedule(&cfg, &state, &metrics).await.unwrap();
    let run = scheduler.run_now("ingest").await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);

    let lake = Lake::new(cfg.lake_dir());
    let r = parkflow_pipeline::usage_report(
        &lake,
        t("2026-06-01T00:00:00Z"),
        t("2026-07-02T00:00:00Z"),
        None,
    )
    .await
    .unwrap();
    let p = &r.monthly_passes;
    assert_eq!((p.purchased, p.renewed, p.entries), (1, 1, 1), "{p:?}");
    assert_eq!(p.revenue_cents, 24_000);
    let out = dir.path().join("report");
    let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    let html = steps::usage_report(&lake, day("2026-06-01"), day("2026-07-02"), None, &out)
        .await
        .unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("1 bought, 1 renewed, 0 ended"), "{page}");
    let csv = std::fs::read_to_string(out.join("monthly_passes.csv")).unwrap();
    assert_eq!(csv.lines().nth(1), Some("1,1,0,24000,1"), "{csv}");
}
