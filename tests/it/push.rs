//! Forecast push messages: the nightly training learns a commuter's habit from the lake, and the
//! push job proposes one message per driver, lot and hour to the notification outbox.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};
use parkflow::{Config, serve, steps};
use parkflow_api::ManualClock;
use parkflow_api::notifications::unsent;
use parkflow_api::services::CheckInRequest;
use parkflow_jobs::RunStatus;
use parkflow_push::{ForecastFile, PushReport, push_candidates, train};
use std::sync::Arc;
use warehouse_schema::lake::Lake;
use warehouse_schema::{EntryMethod, UserId, VehicleType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commuter_is_pushed_once_before_their_usual_hour() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 1,
        ..Default::default()
    });
    let tz = plans[0].time_zone;
    let first = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let local = |d: u64, h: u32, m: u32| -> DateTime<Utc> {
        let day = first + Days::new(d);
        tz.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    };
    let clock = ManualClock::new(local(0, 0, 0));
    let (state, metrics) = steps::open_api(&cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let lots = steps::create_lots(&state, plans).await.unwrap();
    let (lot, _) = lots[0];
    let (commuter, visitor) = (UserId::new(), UserId::new());
    let enter = |user: UserId| CheckInRequest {
        vehicle_type: VehicleType::Car,
        method: EntryMethod::Qr,
        plate: None,
        user_id: Some(user),
    };
    // Three weeks: the commuter comes every weekday at 08:10; a visitor once at 08:20.
    for d in 0..21 {
        if matches!(
            (first + Days::new(d)).weekday(),
            Weekday::Sat | Weekday::Sun
        ) {
            continue;
        }
        clock.set(local(d, 8, 10));
        let stay = state
            .services
            .gates()
            .check_in(lot, enter(commuter))
            .await
            .unwrap();
        let once = if d == 3 {
            clock.set(local(d, 8, 20));
            Some(
                state
                    .services
                    .gates()
                    .check_in(lot, enter(visitor))
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        clock.set(local(d, 17, 0));
        state
            .services
            .gates()
            .check_out(lot, stay.session_id)
            .await
            .unwrap();
        if let Some(v) = once {
            state
                .services
                .gates()
                .check_out(lot, v.session_id)
                .await
                .unwrap();
        }
    }
    let scheduler = serve::schedule(&cfg, &state, &metrics).await.unwrap();
    for job in ["ingest", "occupancy"] {
        let run = scheduler.run_now(job).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{job}: {:?}", run.message);
    }
    // Before the first training there is nothing to push: a healthy server's run succeeds
    // (it used to fail, and log an error, every five minutes).
    assert!(ForecastFile::load(dir.path()).unwrap().is_none());
    let idle = scheduler.run_now("push-candidates").await.unwrap();
    assert_eq!(idle.status, RunStatus::Succeeded, "{:?}", idle.message);

    // Monday of the fourth week, 06:30: the nightly training's view of the day ahead.
    let now = local(21, 6, 30);
    let lake = Lake::new(cfg.lake_dir());
    let forecast = train(&lake, now, 0.5).await.unwrap();
    let monday = first + Days::new(21);
    let likely: Vec<_> = forecast
        .drivers
        .iter()
        .filter(|d| d.local_date == monday)
        .collect();
    assert_eq!(likely.len(), 1, "{:?}", forecast.drivers);
    assert_eq!(
        (
            likely[0].user_key.as_str(),
            likely[0].lot_id,
            likely[0].local_hour
        ),
        (commuter.0.to_string().as_str(), lot, 8)
    );
    assert!(likely[0].probability > 0.9);
    forecast.save(dir.path()).unwrap();
    let loaded = ForecastFile::load(dir.path()).unwrap().unwrap();
    assert_eq!(
        (loaded.trained_at, loaded.lots.len(), loaded.drivers.len()),
        (now, forecast.lots.len(), 2),
        "this Monday and tomorrow at 08:00"
    );
    assert_eq!(loaded.drivers[0].user_key, likely[0].user_key);

    // At 05:05 the coming hour is 06:00: nobody to push. At 07:05 and again at 07:35 it is
    // 08:00: the commuter, once.
    let quiet = push_candidates(&state.services, &forecast, local(21, 5, 5))
        .await
        .unwrap();
    assert_eq!(quiet, PushReport::default());
    let pushed = push_candidates(&state.services, &forecast, local(21, 7, 5))
        .await
        .unwrap();
    assert_eq!(
        pushed,
        PushReport {
            candidates: 1,
            enqueued: 1
        }
    );
    let again = push_candidates(&state.services, &forecast, local(21, 7, 35))
        .await
        .unwrap();
    assert_eq!(again.enqueued, 0, "one message per driver, lot and hour");
    let messages = unsent(state.services.store(), 10).await.unwrap();
    assert_eq!(messages.len(), 1);
    let lot_row = state.services.lots().lot(lot).await.unwrap();
    assert_eq!(messages[0].user_id, commuter.0.to_string());
    assert_eq!(
        messages[0].body,
        format!("{}: {} spaces left", lot_row.name, lot_row.free_spots),
        "too little history to forecast the lot filling"
    );

    // The jobs do the same from the schedule: training writes the file the push job reads.
    let run = scheduler.run_now("forecast-training").await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);
    assert!(ForecastFile::load(dir.path()).unwrap().is_some());
    let run = scheduler.run_now("push-candidates").await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);
}
