//! The drivers' app end to end in headless Chromium (`tests/e2e/driver.mjs`): a new driver
//! signs up, finds the lot nearest to the phone, reserves, pays and opens the pass; the QR code
//! read back from a screenshot opens the gate page; a second driver's app sees the lot's free
//! count drop, pushed live; axe-core finds no serious or critical violation on any screen.

use crate::support::{Browser, serve_on_loopback};
use chrono::DurationRound;
use parkflow::{Config, steps};
use parkflow_api::SystemClock;
use std::sync::Arc;

const DRIVER: &str = "new.driver@example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_driver_books_pays_and_enters_with_the_app_in_headless_chromium() {
    let Some(browser) = Browser::available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    // The browser books at the real time: the server's clock is the system's.
    let (state, _metrics) = steps::open_api(&cfg, Arc::new(SystemClock)).await.unwrap();
    let s = &state.services;
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 3,
        ..Default::default()
    });
    let lots = steps::create_lots(&state, plans).await.unwrap();
    let (lot, _) = lots[1];
    let here = s.lots().lot(lot).await.unwrap();
    // Pricing has raised every car rate of the lot, with its reason: the app says why.
    let now = chrono::Utc::now();
    let raised = |band, day_kind| parkflow_api::services::Rate {
        reason: Some(parkflow_api::domain::rate_reason::RateReason {
            policy: "forecast-aware".into(),
            observed_occupancy: 0.91,
            observed_from: now - chrono::Duration::days(28),
            observed_to: now - chrono::Duration::days(7),
            target_low: 0.6,
            target_high: 0.8,
            forecast_at_previous: Some(0.9),
            forecast_at_new: Some(0.86),
            elasticity: Some(-0.3),
            previous_cents: 200,
            step_cents: 25,
            floor_cents: 50,
            cap_cents: 800,
            bound: None,
        }),
        ..parkflow_api::services::Rate::new(
            (band, day_kind, warehouse_schema::VehicleType::Car),
            225,
            Some(now - chrono::Duration::days(7)),
        )
    };
    let rates = warehouse_schema::TimeBand::ALL
        .into_iter()
        .flat_map(|b| warehouse_schema::DayKind::ALL.map(|d| raised(b, d)))
        .collect();
    s.lots().publish_rates(lot, rates).await.unwrap();
    // The forecast-training job's chances of a free spot for the next two days.
    let hour = now.duration_trunc(chrono::Duration::hours(1)).unwrap();
    let forecast: Vec<_> = (0..48)
        .map(|h| parkflow_api::services::lots::ForecastHour {
            hour_start: hour + chrono::Duration::hours(h),
            occupancy: 10.0,
            free_chance: 0.85,
        })
        .collect();
    s.lots()
        .publish_arrival_forecast(lot, now, &forecast)
        .await
        .unwrap();

    // A monthly pass on sale: every day, all day, cars, no spot kept.
    s.monthly_passes()
        .create_product(
            &parkflow_api::domain::Actor::admin_token(),
            lot,
            parkflow_api::services::monthly::NewProduct {
                name: "Any time".into(),
                days: parkflow_api::domain::monthly::DAY_NAMES
                    .map(String::from)
                    .to_vec(),
                from_hour: 0,
                until_hour: 24,
                vehicle_types: vec![warehouse_schema::VehicleType::Car],
                price_cents: 9_900,
                spots: 10,
                keeps_spot: false,
            },
        )
        .await
        .unwrap();
    let (base, server) = serve_on_loopback(state.clone()).await;
    let (lot_id, lat, lng) = (
        lot.0.to_string(),
        here.latitude.to_string(),
        here.longitude.to_string(),
    );
    let gate_token = cfg.api_config().gate_token.expose().to_owned();
    let (seen, shots) = browser
        .run(
            "driver.mjs",
            "app-e2e",
            &[
                ("APP_URL", &base),
                ("LOT", &lot_id),
                ("LATITUDE", &lat),
                ("LONGITUDE", &lng),
                ("DRIVER_EMAIL", DRIVER),
                ("WATCHER_EMAIL", "watcher@example.com"),
                ("GATE_TOKEN", &gate_token),
            ],
        )
        .await;
    server.abort();

    // Installable as an app: the service worker runs, the manifest says standalone.
    assert_eq!(
        seen["installable"],
        serde_json::json!({"worker": true, "display": "standalone", "start": "/#/lots"}),
        "{seen}"
    );

    // The phone stands at the lot: it is listed first, with its distance.
    assert_eq!(seen["firstLot"], lot.0.to_string(), "{seen}");
    assert!(
        seen["distance"].as_str().unwrap().contains("km away"),
        "{seen}"
    );

    // The booking is the store's, paid, with the quote the app showed.
    let id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(DRIVER)
        .fetch_one(s.store().pool())
        .await
        .expect("the driver signed up");
    let driver = warehouse_schema::UserId(id.parse().unwrap());
    let (mine, _) = s
        .reservations()
        .reservations_of(driver, 1, 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 3, "{seen}");
    let r = mine
        .iter()
        .find(|r| r.status.as_str() == "checked_in")
        .expect("the first booking entered");
    assert_eq!(r.lot_id, lot);
    assert!(seen["quote"].as_str().unwrap().contains(&format!(
        "{}",
        parkflow_api::domain::Money::from_cents(r.quote_cents)
    )));

    // The price shown before booking was the booking's, with the rate it is made of.
    let booked_price = seen["quote"].as_str().unwrap();
    assert!(
        booked_price.contains(seen["preview"].as_str().unwrap()),
        "{seen}"
    );
    let parts = seen["previewParts"].as_array().unwrap();
    assert!(!parts.is_empty(), "{seen}");
    assert!(
        parts
            .iter()
            .all(|p| p.as_str().unwrap().contains(" an hour")),
        "{seen}"
    );
    // Before booking, the chance of a free spot on arrival then.
    assert!(
        seen["chance"]
            .as_str()
            .unwrap()
            .starts_with("85 % chance of a free spot if you just drive up then (about 10 of "),
        "{seen}"
    );
    // Each stretch says why its rate is what it is.
    assert!(
        parts.iter().all(|p| {
            let p = p.as_str().unwrap();
            p.contains("were 91 % full from") && p.contains("above the 60–80 % target: +0.25")
        }),
        "{seen}"
    );

    // The QR code read off the screen is the pass, and it opened the gate.
    let pass = s.reservations().gate_pass(driver, r.id).await;
    // (Entered: the reservation no longer has a pass to give; the gate said OPEN.)
    assert!(pass.is_err(), "the pass was used at the gate");
    assert!(
        seen["decoded"].as_str().unwrap().starts_with("pf1."),
        "{seen}"
    );
    assert_eq!(seen["gate"]["verdict"], "open", "{seen}");
    assert!(
        seen["gate"]["why"]
            .as_str()
            .unwrap()
            .contains(&r.spot_label)
    );
    assert_eq!(
        seen["offlineWindow"], seen["window"],
        "the pass shows offline"
    );

    // The watcher saw the free count drop within a second, pushed.
    // The count as the card shows it: "83 free".
    let free = |field: &str| -> i64 {
        let shown = seen[field].as_str().unwrap();
        shown.split(' ').next().unwrap().parse().unwrap()
    };
    let (before, after) = (free("freeBefore"), free("freeAfter"));
    assert_eq!(after, before - 1, "{seen}");
    assert!(seen["watcherMs"].as_u64().unwrap() < 1_000, "{seen}");

    // A booking made elsewhere while the inbox was open appeared there, pushed.
    assert!(seen["inboxPushMs"].as_u64().unwrap() < 1_000, "{seen}");
    assert_eq!(seen["inboxNewest"], "Reservation confirmed", "{seen}");

    // The inbox has the confirmation; the bookings list shows it checked in.
    assert!(!seen["inbox"].as_array().unwrap().is_empty(), "{seen}");
    assert!(
        seen["status"].as_str().unwrap().contains("checked in"),
        "{seen}"
    );

    // The second booking, cancelled two days ahead: the policy gave everything back, and the
    // app said how much.
    // (Moved an hour later before that: the payment stays what was paid.)
    let second = mine
        .iter()
        .find(|r| r.status.as_str() == "cancelled")
        .expect("the second booking was cancelled");
    // It was booked with the car the driver saved on the Me screen.
    assert_eq!(second.plate.as_deref(), Some("BPF25"), "{seen}");
    assert_eq!(seen["vehicles"], serde_json::json!(["BPF25 (B) — Car"]));
    assert!(
        seen["workplace"].as_str().unwrap().starts_with("Saved at"),
        "{seen}"
    );
    assert!(
        seen["moved"].as_str().unwrap().starts_with("Moved: spot "),
        "{seen}"
    );
    // Extended by an hour after paying: the extra hour is due at the exit, and said so first.
    assert!(
        seen["extendConfirm"]
            .as_str()
            .unwrap()
            .contains("more (added to what you pay at the exit)?"),
        "{seen}"
    );
    assert!(
        seen["extended"]
            .as_str()
            .unwrap()
            .starts_with("Extended until "),
        "{seen}"
    );
    let paid = seen["secondQuote"].as_str().unwrap();
    let asked = seen["confirm"].as_str().unwrap();
    assert!(
        asked.contains(&format!("You get {paid} back (100%")),
        "the refund is shown before cancelling: {asked}"
    );
    let told = seen["cancelled"].as_str().unwrap();
    assert!(
        told.contains(&format!("Cancelled. {paid} is refunded")),
        "{told} (paid {paid})"
    );

    // A monthly pass bought in the app for the saved car: active, its code drawn, its renewal
    // stopped from the Me screen (it runs to its period's end).
    assert!(
        seen["passOffer"]
            .as_str()
            .unwrap()
            .contains("Any time mon–sun 00–24 h, any free spot · 10 left"),
        "{seen}"
    );
    assert!(
        seen["passBought"]
            .as_str()
            .unwrap()
            .starts_with("Your Any time pass is active until "),
        "{seen}"
    );
    let held = seen["monthlyPass"].as_str().unwrap();
    assert!(
        held.starts_with("Any time · BPF25 · mon–sun 00–24 h · active, renews "),
        "{seen}"
    );
    assert!(
        seen["monthlyPassCode"]
            .as_str()
            .unwrap()
            .starts_with("BPF25 · mon–sun 00–24 h free · until "),
        "{seen}"
    );
    assert!(
        seen["passStopped"]
            .as_str()
            .unwrap()
            .contains("active, ends "),
        "{seen}"
    );
    let passes = s.monthly_passes().passes_of(driver).await.unwrap();
    assert_eq!(passes.len(), 1);
    assert!(passes[0].status == parkflow_api::domain::PassStatus::Active && !passes[0].renews);

    // Signing out revoked the refresh token.
    assert_eq!(seen["refreshAfterSignOut"], 401, "{seen}");

    // No serious or critical accessibility violation on any screen; no script error.
    assert_eq!(seen["violations"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["pageErrors"], serde_json::json!([]), "{seen}");
    for shot in [
        "app-me-saved",
        "app-me-pass",
        "app-register",
        "app-lots",
        "app-lot",
        "app-quote",
        "app-pass",
        "app-bookings",
        "app-inbox",
        "app-me",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}");
    }
}
