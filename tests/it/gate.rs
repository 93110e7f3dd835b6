//! The gate page end to end in headless Chromium (`tests/e2e/gate.mjs`): a real server on
//! loopback, a driver's booked pass scanned at the entrance and then at the exit, and the
//! verdicts the attendant reads checked against the store.

use crate::support::{Browser, serve_on_loopback};
use chrono::{Duration, Utc};
use parkflow::{Config, steps};
use parkflow_api::ManualClock;
use parkflow_api::accounts::Credentials;
use parkflow_api::services::reservations::NewReservation;
use std::sync::Arc;
use warehouse_schema::VehicleType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attendant_scans_passes_at_the_gate_page_in_headless_chromium() {
    let Some(browser) = Browser::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let now = Utc::now();
    let clock = ManualClock::new(now);
    let (state, _metrics) = steps::open_api(&cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let s = &state.services;
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 1,
        ..Default::default()
    });
    let lot = steps::create_lots(&state, plans).await.unwrap()[0].0;
    let driver = state
        .accounts
        .register(Credentials {
            email: "gate.driver@example.com".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap();
    // Booked from ten minutes from now: inside the entry window (start ± 15 min) already.
    let booking = NewReservation::new(
        lot,
        now + Duration::minutes(10),
        now + Duration::minutes(70),
        VehicleType::Car,
    );
    let reservation = s
        .reservations()
        .reserve(driver, booking, "gate-e2e")
        .await
        .unwrap();
    let pass = s
        .reservations()
        .gate_pass(driver, reservation.id)
        .await
        .unwrap()
        .pass;

    // A second driver's booking, whose pass the camera reads.
    let second = state
        .accounts
        .register(Credentials {
            email: "camera.driver@example.com".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap();
    let booking = NewReservation::new(
        lot,
        now + Duration::minutes(5),
        now + Duration::minutes(65),
        VehicleType::Car,
    );
    let seen_by_camera = s
        .reservations()
        .reserve(second, booking, "gate-e2e-camera")
        .await
        .unwrap();
    let camera_pass = s
        .reservations()
        .gate_pass(second, seen_by_camera.id)
        .await
        .unwrap()
        .pass;

    let (base, server) = serve_on_loopback(state.clone()).await;
    let lot_id = lot.0.to_string();
    let gate_token = cfg.api_config().gate_token.expose().to_owned();
    let (seen, shots) = browser
        .run(
            "gate.mjs",
            "gate-e2e",
            &[
                ("GATE_URL", &base),
                ("LOT", &lot_id),
                ("PASS", &pass),
                ("CAMERA_PASS", &camera_pass),
                ("GATE_TOKEN", &gate_token),
            ],
        )
        .await;
    server.abort();

    // The pass opened the entrance, to the spot the store gave the stay.
    assert_eq!(seen["entry"]["verdict"], "open", "{seen}");
    assert_eq!(seen["entry"]["word"], "OPEN");
    let stays = s
        .reservations()
        .reservation_of(driver, reservation.id)
        .await;
    let booked = stays.unwrap();
    let spot = booked.spot_label.clone();
    assert_eq!(
        seen["entry"]["why"].as_str().unwrap(),
        format!("Go to spot {spot}"),
        "{seen}"
    );
    // The scanner's input keeps the focus for the next car.
    assert_eq!(seen["entry"]["focused"], "pass");

    // Scanned again, or something that is no pass: refused, with the reason in words.
    for refused in ["again", "garbage"] {
        let r = &seen[refused];
        assert_eq!(r["verdict"], "refused", "{refused}: {seen}");
        assert_eq!(r["word"], "REFUSED");
        let why = r["why"].as_str().unwrap();
        assert!(
            why.len() > 10 && !why.contains('{') && !why.contains("\"code\""),
            "{refused}: a reason in words, not JSON: {why}"
        );
    }

    // At the exit the same pass opens; the booking was not paid ahead, so the whole charge is
    // due there; the stay is closed in the store.
    assert_eq!(seen["exit"]["verdict"], "open", "{seen}");
    assert!(
        seen["exit"]["why"].as_str().unwrap().starts_with("Due "),
        "{seen}"
    );
    let done = s
        .reservations()
        .reservation_of(driver, reservation.id)
        .await
        .unwrap();
    assert_eq!(done.status.to_string(), "completed");

    // A gate with a wrong token is told so; the token never reaches lasting storage.
    assert_eq!(seen["badToken"]["verdict"], "refused");
    assert!(
        seen["badToken"]["why"]
            .as_str()
            .unwrap()
            .contains("token was refused"),
        "{seen}"
    );
    assert_eq!(seen["lasting"], "{}");
    // axe-core: no serious or critical accessibility violation, set up, open or refused.
    assert_eq!(seen["violations"], serde_json::json!([]), "{seen}");
    // The camera read the second pass and the gate opened for it.
    assert_eq!(seen["cameraButton"], true, "{seen}");
    assert_eq!(seen["camera"]["streaming"], true, "{seen}");
    assert_eq!(seen["camera"]["verdict"], "open", "{seen}");
    let entered = s
        .reservations()
        .reservation_of(second, seen_by_camera.id)
        .await
        .unwrap();
    assert_eq!(entered.status.as_str(), "checked_in");
    for shot in [
        "gate-open.png",
        "gate-refused.png",
        "gate-exit.png",
        "gate-camera.png",
    ] {
        assert!(shots.join(shot).exists(), "{shot}");
    }
}
