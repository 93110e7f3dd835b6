//! The jobs `parkflow serve` schedules, run on demand against a real store and lake.

use parkflow::Config;
use parkflow::{serve, steps};
use parkflow_api::{Clock, ManualClock};
use parkflow_jobs::RunStatus;
use std::sync::Arc;
use warehouse_schema::Table;
use warehouse_schema::lake::Lake;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_ingest_refresh_and_price() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let clock = ManualClock::new(chrono::Utc::now() - chrono::Duration::hours(2));
    let (state, metrics) = steps::open_api(&cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 2,
        ..Default::default()
    });
    let lots = steps::create_lots(&state, plans).await.unwrap();
    for (lot, _) in &lots {
        let req = parkflow_api::services::CheckInRequest {
            vehicle_type: warehouse_schema::VehicleType::Car,
            method: warehouse_schema::EntryMethod::Qr,
            plate: None,
            user_id: None,
        };
        state.services.gates().check_in(*lot, req).await.unwrap();
    }
    let scheduler = serve::schedule(&cfg, &state, &metrics).await.unwrap();
    let names: Vec<&str> = scheduler.jobs().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "ingest",
            "reservations",
            "notifications",
            "availability",
            "occupancy",
            "pricing",
            "forecast-training",
            "push-candidates",
            "report"
        ]
    );

    // Another API process on the same database takes a reservation: this process's
    // availability index learns of it through the "availability" job.
    let (lot, _) = lots[0];
    let window = parkflow_api::services::reservations::TimeRange::new(
        clock.now() + chrono::Duration::days(1),
        clock.now() + chrono::Duration::days(1) + chrono::Duration::hours(1),
    )
    .unwrap();
    let car = warehouse_schema::VehicleType::Car;
    let free_before = state
        .services
        .lots()
        .free_spots(lot, window, car, None)
        .await
        .unwrap();
    let (other, _) = steps::open_api(&cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let taken = other
        .services
        .reservations()
        .reserve(
            warehouse_schema::UserId::new(),
            parkflow_api::services::reservations::NewReservation::new(
                lot,
                window.start(),
                window.end(),
                car,
            ),
            "other-process",
        )
        .await
        .unwrap();
    let stale = state
        .services
        .lots()
        .free_spots(lot, window, car, None)
        .await
        .unwrap();
    assert_eq!(
        stale.len(),
        free_before.len(),
        "not yet seen by this process"
    );
    let run = scheduler.run_now("availability").await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);
    assert!(
        run.rows >= 1,
        "the other process's booking reached the index"
    );
    let fresh = state
        .services
        .lots()
        .free_spots(lot, window, car, None)
        .await
        .unwrap();
    assert_eq!(fresh.len(), free_before.len() - 1);
    assert!(fresh.iter().all(|s| s.spot_id != taken.spot_id));

    let run = scheduler.run_now("ingest").await.unwrap();
    assert_eq!(
        (run.status, run.rows),
        (RunStatus::Succeeded, 5),
        "2 lots registered, 2 check-ins, 1 reservation"
    );
    // Two hours later (the jobs read the API's clock).
    clock.set(clock.now() + chrono::Duration::hours(2));
    let run = scheduler.run_now("occupancy").await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);
    assert!(run.rows >= 2 * 4, "two hours of buckets for two lots");
    let lake = Lake::new(cfg.lake_dir());
    assert_eq!(
        lake.manifest(Table::DimLot.section())
            .unwrap()
            .rows_of(Table::DimLot),
        2
    );
    let run = scheduler.run_now("pricing").await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);
    assert_eq!(scheduler.history().len(), 4);
    // The API exports the ingest lag through the shared registry.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry).unwrap();
    assert!(text.contains("parkflow_ingest_events_total 5"), "{text}");
    assert!(
        text.contains("parkflow_ingest_outbox_lag_events 0"),
        "{text}"
    );
}

/// `parkflow jobs list` and `parkflow jobs run NAME`: the same jobs `serve` schedules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_and_run_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let listed = serve::list_jobs(&cfg).await.unwrap();
    for (job, schedule) in [
        ("ingest", "every 5 s"),
        ("reservations", "every 60 s"),
        ("notifications", "every 10 s"),
        ("availability", "every 1 s"),
        ("occupancy", "cron */15 * * * *"),
        ("pricing", "cron 30 0 * * *"),
        ("forecast-training", "cron 30 2 * * *"),
        ("push-candidates", "cron */5 * * * *"),
        ("report", "cron 0 3 1 * *"),
    ] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(job) && l.ends_with(schedule)),
            "{job} {schedule}:\n{listed}"
        );
    }
    let ran = serve::run_job(&cfg, "ingest").await.unwrap();
    assert!(ran.starts_with("ingest: succeeded on attempt 1"), "{ran}");
    let unknown = serve::run_job(&cfg, "nope").await.unwrap_err().to_string();
    assert!(
        unknown.contains("no job named `nope`") && unknown.contains("the jobs are: ingest"),
        "{unknown}"
    );
    // Every run is recorded on disk, for `parkflow jobs runs`.
    let runs = serve::recorded_runs(&cfg, 10).unwrap();
    assert!(
        runs.lines()
            .any(|l| l.contains("ingest") && l.contains("succeeded")),
        "{runs}"
    );
    let report = serve::run_job(&cfg, "report").await.unwrap();
    assert!(report.starts_with("report: succeeded"), "{report}");
    let last_month = (chrono::Utc::now().date_naive()
        - chrono::Duration::days(i64::from(chrono::Datelike::day(
            &chrono::Utc::now().date_naive(),
        ))))
    .format("%Y-%m");
    let html = dir.path().join(format!("reports/{last_month}/report.html"));
    assert!(html.exists(), "{}", html.display());

    // Schedules come from the configuration; a bad one or an unknown job name is refused.
    let mut custom = cfg.clone();
    custom
        .jobs
        .schedule
        .insert("occupancy".into(), "every 30s".into());
    let listed = serve::list_jobs(&custom).await.unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("occupancy") && l.ends_with("every 30 s")),
        "{listed}"
    );
    let mut bad = cfg.clone();
    bad.jobs.schedule.insert("pricing".into(), "at noon".into());
    let e = format!("{:#}", serve::list_jobs(&bad).await.unwrap_err());
    assert!(e.contains("jobs.schedule.pricing"), "{e}");
    let mut unknown = cfg.clone();
    unknown
        .jobs
        .schedule
        .insert("nightly-nap".into(), "0 1 * * *".into());
    let e = serve::list_jobs(&unknown).await.unwrap_err().to_string();
    assert!(e.contains("`nightly-nap`, which is not a job"), "{e}");
}
