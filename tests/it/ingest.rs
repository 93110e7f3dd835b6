//! Embedded ingest: crashes at every point of a batch, then resume; dead letters for bad rows.

use chrono::{DateTime, Duration, Utc};
use parkflow_api::services::CheckInRequest;
use parkflow_api::{ApiConfig, AppState, ManualClock};
use parkflow_ingest::{EmbeddedIngest, Error, FailPoint, IngestMetrics};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use warehouse_schema::lake::Lake;
use warehouse_schema::{EntryMethod, VehicleType};

struct World {
    _dir: tempfile::TempDir,
    state: AppState,
    lake: Lake,
}

/// A lot with traffic over two days (so batches span two date partitions), plus rows a broken
/// producer could have written: bad JSON, a missing field, an unknown lot.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let start: DateTime<Utc> = "2026-06-01T20:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let config = ApiConfig {
        database_url: format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        ..ApiConfig::default()
    };
    let state = AppState::open(&config, Arc::new(clock.clone()), Registry::default())
        .await
        .unwrap();
    let lot = state
        .services
        .lots()
        .create_lot(crate::support::test_lot("Test", 50))
        .await
        .unwrap();
    let pool = state.services.store().writer().clone();
    for i in 0..60i64 {
        clock.set(start + Duration::minutes(10 * i));
        let r = state
            .services
            .gates()
            .check_in(
                lot.id,
                CheckInRequest {
                    vehicle_type: VehicleType::Car,
                    method: EntryMethod::Qr,
                    plate: None,
                    user_id: None,
                },
            )
            .await
            .unwrap();
        clock.set(start + Duration::minutes(10 * i + 5));
        state
            .services
            .gates()
            .check_out(lot.id, r.session_id)
            .await
            .unwrap();
        if i % 20 == 7 {
            for payload in [
                "{not json".to_owned(),
                r#"{"event_id":"0190a5d2-0000-7000-8000-000000000001","schema_version":1,"type":"exit","occurred_at":"2026-06-01T21:00:00Z","lot_id":1}"#.to_owned(),
                format!(
                    r#"{{"event_id":"0190a5d2-0000-7000-8000-0000000000{i:02}","schema_version":1,"type":"lot_capacity_changed","occurred_at":"2026-06-01T21:00:00Z","lot_id":999,"capacity":3}}"#
                ),
            ] {
                sqlx::query("INSERT INTO outbox (event_id, lot_id, event_type, payload, created_at) VALUES (?, 0, 'x', ?, 0)")
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(payload)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    }
    let lake = Lake::new(dir.path().join("lake"));
    World {
        _dir: dir,
        state,
        lake,
    }
}

fn ingest(w: &World, batch: usize) -> EmbeddedIngest {
    EmbeddedIngest::new(
        w.state.services.store().outbox(),
        w.lake.clone(),
        batch,
        IngestMetrics::default(),
    )
    .unwrap()
}

async fn outbox_len(w: &World) -> usize {
    w.state.services.store().outbox_len().await.unwrap() as usize
}

#[tokio::test]
async fn crash_at_every_point_then_resume_loses_and_duplicates_nothing() {
    let w = world().await;
    let total = outbox_len(&w).await;
    let points = [
        FailPoint::AfterFiles(0),
        FailPoint::AfterFiles(1),
        FailPoint::BeforeCommit,
        FailPoint::AfterCommit,
        FailPoint::AfterFiles(0),
        FailPoint::BeforeCommit,
    ];
    // Batch sizes differ between restarts (as after a configuration change), so a resumed batch
    // does not simply overwrite the files the crashed one left behind.
    for (point, batch) in points.into_iter().zip([9, 5, 13, 7, 11, 6]) {
        // A fresh process: it recovers from whatever the last one left, ingests a little, and
        // then dies at `point` in some batch.
        let mut i = ingest(&w, batch);
        i.step().await.unwrap();
        i.sink_mut().fail_at(point);
        let crashed = loop {
            match i.step().await {
                Err(Error::Injected(p)) => break p,
                Ok(r) if r.batches == 0 => panic!("outbox drained before {point:?} was hit"),
                Ok(_) => continue,
                Err(e) => panic!("unexpected error {e}"),
            }
        };
        assert_eq!(crashed, point);
        drop(i);
    }
    let report = ingest(&w, 4).drain().await.unwrap();
    assert!(report.batches > 0);

    let (rows, ids) = crate::support::lake_event_ids(&w.lake);
    let reasons = crate::support::dead_letter_reasons(&w.lake);
    assert_eq!(rows, ids.len(), "no duplicate event ids");
    assert_eq!(
        rows + reasons.len(),
        total,
        "every outbox row is in the lake or a dead letter"
    );
    assert_eq!(reasons.len(), 9);
    for code in ["malformed_json", "missing_field", "unknown_lot"] {
        assert_eq!(
            reasons.iter().filter(|r| *r == code).count(),
            3,
            "{reasons:?}"
        );
    }
    // Orphan files of crashed batches were removed: every parquet file on disk is committed.
    let manifest = w
        .lake
        .manifest(warehouse_schema::tables::Section::Ingested)
        .unwrap();
    let listed: usize = manifest.files.values().map(Vec::len).sum();
    let on_disk = walk(w.lake.root());
    assert_eq!(on_disk, listed);
    // Running again finds nothing new.
    assert_eq!(ingest(&w, 9).drain().await.unwrap().events, 0);
}

#[tokio::test]
async fn resume_gives_the_same_lake_as_an_uninterrupted_run() {
    let w = world().await;
    ingest(&w, 1_000).drain().await.unwrap();
    let (rows, ids) = crate::support::lake_event_ids(&w.lake);
    assert_eq!(
        rows + crate::support::dead_letter_reasons(&w.lake).len(),
        outbox_len(&w).await
    );
    // The second day's events are in their own partition.
    let manifest = w
        .lake
        .manifest(warehouse_schema::tables::Section::Ingested)
        .unwrap();
    let files = manifest.files_of(warehouse_schema::Table::FactParkingEvent);
    assert!(files.iter().any(|f| f.contains("event_date=2026-06-01")));
    assert!(files.iter().any(|f| f.contains("event_date=2026-06-02")));
    assert_eq!(ids.len(), rows);
}

/// Beside a writer still recording (the demo's simulation), ingest takes whole batches only:
/// the rest waits for the drain at the end, so the batches are those of one drain.
#[tokio::test]
async fn catching_up_takes_whole_batches_and_leaves_the_rest_to_the_drain() {
    let w = world().await;
    let total = outbox_len(&w).await;
    let batch = 50;
    assert!(total > 2 * batch && total % batch != 0, "{total}");
    let mut i = ingest(&w, batch);
    let caught = i.catch_up().await.unwrap();
    assert_eq!(caught.batches as usize, total / batch);
    assert_eq!(caught.position as usize, total / batch * batch);
    assert_eq!(
        i.catch_up().await.unwrap().batches,
        0,
        "less than a batch waits"
    );
    let rest = i.drain().await.unwrap();
    assert_eq!((rest.batches, rest.position as usize), (1, total));
    let (rows, ids) = crate::support::lake_event_ids(&w.lake);
    assert_eq!(rows, ids.len());
    assert_eq!(
        rows + crate::support::dead_letter_reasons(&w.lake).len(),
        total
    );
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                walk(&p)
            } else {
                usize::from(p.extension().is_some_and(|e| e == "parquet"))
            }
        })
        .sum()
}
