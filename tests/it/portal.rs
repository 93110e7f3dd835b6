//! The admin portal end to end in headless Chromium (`tests/e2e/admin.mjs`, driven through
//! playwright-core): a real server on loopback, a real sign-in with an admin account, and the
//! store and the lake's report checked against what the browser did and saw.

use crate::support::{Browser, serve_on_loopback};
use chrono::{Duration, Utc};
use parkflow::report::LakeReports;
use parkflow::{Config, serve, steps};
use parkflow_api::ManualClock;
use parkflow_api::accounts::Credentials;
use parkflow_api::services::CheckInRequest;
use parkflow_api::services::admin::NewInquiry;
use parkflow_api::services::reservations::NewReservation;
use parkflow_jobs::RunStatus;
use std::sync::Arc;
use warehouse_schema::lake::Lake;
use warehouse_schema::{EntryMethod, LotId, VehicleType};

const ADMIN_EMAIL: &str = "lead@lots.example";
const DRIVER_EMAIL: &str = "commuter@example.com";
const PASSWORD: &str = "correct horse battery";

fn car() -> CheckInRequest {
    CheckInRequest {
        vehicle_type: VehicleType::Car,
        method: EntryMethod::Qr,
        plate: None,
        user_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_works_the_portal_in_headless_chromium() {
    let Some(browser) = Browser::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let today = Utc::now().date_naive();
    let yesterday = today - Duration::days(1);
    let morning = yesterday.and_hms_opt(8, 0, 0).unwrap().and_utc();
    let clock = ManualClock::new(morning);
    let (state, metrics) = steps::open_api(&cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let s = &state.services;

    // Yesterday's stays in two lots, in the lake for the report: 2 and 3 cars of 45, 90, … min.
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 2,
        ..Default::default()
    });
    let lots: Vec<LotId> = steps::create_lots(&state, plans)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for (i, lot) in lots.iter().enumerate() {
        clock.set(morning);
        let mut sessions = Vec::new();
        for _ in 0..i + 2 {
            sessions.push(s.gates().check_in(*lot, car()).await.unwrap().session_id);
        }
        for (k, session) in sessions.iter().enumerate() {
            clock.set(morning + Duration::minutes(45 * (k as i64 + 1)));
            s.gates().check_out(*lot, *session).await.unwrap();
        }
    }
    let now = Utc::now();
    clock.set(now);
    let scheduler = serve::schedule(&cfg, &state, &metrics).await.unwrap();
    for job in ["ingest", "occupancy"] {
        let run = scheduler.run_now(job).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{job}: {:?}", run.message);
    }

    // A driver with a reservation and a question about it; the admin account.
    let driver = state
        .accounts
        .register(Credentials {
            email: DRIVER_EMAIL.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let booking = NewReservation::new(
        lots[0],
        now + Duration::hours(2),
        now + Duration::hours(3),
        VehicleType::Car,
    );
    let reservation = s
        .reservations()
        .reserve(driver, booking, "e2e")
        .await
        .unwrap();
    let subject = "Receipt for my booking";
    s.admin()
        .open_inquiry(
            driver,
            NewInquiry {
                subject: subject.into(),
                message: "Where do I find the receipt?".into(),
                reservation_id: Some(reservation.id),
            },
        )
        .await
        .unwrap();
    state
        .accounts
        .register_admin(Credentials {
            email: ADMIN_EMAIL.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();

    // The report as `parkflow report` writes it, for the same days.
    let lake = Lake::new(cfg.lake_dir());
    let out = dir.path().join("report");
    let tomorrow = today + Duration::days(1);
    steps::usage_report(&lake, yesterday, tomorrow, None, &out)
        .await
        .unwrap();
    let lots_csv = std::fs::read_to_string(out.join("lots.csv")).unwrap();

    // Serve the portal on loopback, with the lake's report.
    let app_state = state.clone().with_reports(Arc::new(LakeReports { lake }));
    let (base, server) = serve_on_loopback(app_state).await;
    let gate_token = cfg.api_config().gate_token.expose().to_owned();
    let (live_lot, from, to) = (
        lots[1].0.to_string(),
        yesterday.to_string(),
        tomorrow.to_string(),
    );
    let (seen, _shots) = browser
        .run(
            "admin.mjs",
            "portal-e2e",
            &[
                ("PORTAL_URL", &base),
                ("ADMIN_EMAIL", ADMIN_EMAIL),
                ("ADMIN_PASSWORD", PASSWORD),
                ("GATE_TOKEN", &gate_token),
                ("LIVE_LOT", &live_lot),
                ("DRIVER_EMAIL", DRIVER_EMAIL),
                ("INQUIRY_SUBJECT", subject),
                ("REPORT_FROM", &from),
                ("REPORT_TO", &to),
            ],
        )
        .await;
    server.abort();

    // Live occupancy moved with the gate entry; the store agrees.
    assert_eq!(
        seen["live"]["after"].as_i64().unwrap(),
        seen["live"]["before"].as_i64().unwrap() + 1,
        "{seen}"
    );
    let live_lot = s.lots().lot(lots[1]).await.unwrap();
    assert_eq!(
        live_lot.capacity - live_lot.free_spots,
        seen["live"]["after"].as_i64().unwrap()
    );

    // The lot created in the browser, with its first spot closed.
    let new_lot = LotId(seen["newLot"].as_i64().unwrap());
    let created = s.lots().lot(new_lot).await.unwrap();
    assert_eq!(created.name, "E2E Garage");
    assert_eq!(created.capacity, 2, "3 spots, one closed");
    assert_eq!(seen["capacityAfterClose"], 2);
    let spots = s.admin().spots(new_lot).await.unwrap();
    let closed: Vec<&str> = spots
        .iter()
        .filter(|s| s.closed)
        .map(|s| s.label.as_str())
        .collect();
    assert_eq!(closed, ["C-001"]);

    // The search found the reservation; the answer reached the driver.
    assert_eq!(
        seen["searchHits"],
        serde_json::json!([reservation.id.0.to_string()])
    );
    assert!(
        seen["answer"]
            .as_str()
            .unwrap()
            .contains("Your receipt is in your e-mail.")
    );
    let mine = s.admin().inquiries_of(driver).await.unwrap();
    assert_eq!(
        mine[0].answer.as_deref(),
        Some("Your receipt is in your e-mail.")
    );

    // The audit log the browser showed, newest first: this admin's three changes after the
    // set-up's two lots (created with the static admin token).
    let audit: Vec<(String, String)> = seen["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[1].as_str().unwrap().to_owned(),
                row[2].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let admin = ADMIN_EMAIL.to_owned();
    assert_eq!(
        audit,
        [
            (admin.clone(), "inquiry.answer".to_owned()),
            (admin.clone(), "spot.close".to_owned()),
            (admin, "lot.create".to_owned()),
            ("admin-token".to_owned(), "lot.create".to_owned()),
            ("admin-token".to_owned(), "lot.create".to_owned()),
        ]
    );

    // The portal's report shows the figures of `parkflow report`: each lot's name, capacity,
    // stays and revenue as in lots.csv.
    let shown = seen["reportLots"].as_array().expect("a lots table");
    let mut rows = 0;
    for line in lots_csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (name, capacity, stays, revenue) = (f[1], f[2], f[3], f[5].parse::<i64>().unwrap());
        let row = shown
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name} is not in the portal's report: {seen}"));
        assert_eq!(row[1], capacity);
        assert_eq!(row[2], stays);
        // The lots charge dollars: the cell says so.
        assert_eq!(row[5], format!("${}.{:02}", revenue / 100, revenue % 100));
        rows += 1;
    }
    assert_eq!(rows, 2, "{lots_csv}");
    assert_eq!(shown.len(), 2);
    assert!(seen["reportCharts"].as_i64().unwrap() >= 1);

    assert_eq!(seen["afterSignOut"], "/admin/login");
}
