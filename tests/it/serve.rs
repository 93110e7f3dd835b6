//! The jobs `parkflow serve` schedules, run on demand against a real store and lake.

use parkflow::Config;
use parkflow::{serve, steps};
use parkflow_api::ManualClock;
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
    let admin = steps::admin(&cfg, &state);
    let plans = parkflow_simulator::scenario(&parkflow_simulator::SimConfig {
        lots: 2,
        ..Default::default()
    });
    let lots = steps::create_lots(&admin, plans).await.unwrap();
    for (lot, _) in &lots {
        let req = parkflow_api::service::CheckInRequest {
            vehicle_type: warehouse_schema::VehicleType::Car,
            method: warehouse_schema::EntryMethod::Qr,
            plate: None,
            user_id: None,
        };
        state.service.check_in(*lot, req).await.unwrap();
    }
    let scheduler = serve::schedule(&cfg, &state, &metrics).unwrap();
    let names: Vec<&str> = scheduler.jobs().map(|(n, _)| n).collect();
    assert_eq!(names, ["ingest", "occupancy", "pricing"]);

    let run = scheduler.run_now("ingest").await.unwrap();
    assert_eq!(
        (run.status, run.rows),
        (RunStatus::Succeeded, 4),
        "2 lots registered, 2 check-ins"
    );
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
    assert_eq!(scheduler.history().len(), 3);
    // The API exports the ingest lag through the shared registry.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry).unwrap();
    assert!(text.contains("parkflow_ingest_events_total 4"), "{text}");
    assert!(
        text.contains("parkflow_ingest_outbox_lag_events 0"),
        "{text}"
    );
}
