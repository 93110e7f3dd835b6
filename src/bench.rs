//! `parkflow bench …`: measured figures for BENCHMARKS.md, printed with how they were made.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use parkflow_api::store::{Store, append_event};
use parkflow_ingest::{EmbeddedIngest, IngestMetrics, Outbox};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use warehouse_schema::event::{CheckIn, Exit, LotRegistered};
use warehouse_schema::lake::Lake;
use warehouse_schema::tables::Section;
use warehouse_schema::{
    Cents, EntryMethod, Event, EventPayload, LotId, SessionId, SpotId, Table, VehicleType,
};

/// Outbox → Parquet throughput of the embedded ingest on `events` synthetic events.
pub async fn ingest(events: usize, batch: usize, lots: i64) -> anyhow::Result<String> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await?;

    let fill = Instant::now();
    let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("valid time");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut written = 0usize;
    let mut tx = store.begin_write().await?;
    for lot in 1..=lots {
        let e = Event::new(
            start,
            LotId(lot),
            EventPayload::LotRegistered(LotRegistered {
                name: format!("Bench lot {lot}"),
                time_zone: "UTC".into(),
                latitude: 0.0,
                longitude: 0.0,
                capacity: 200,
            }),
        );
        append_event(&mut tx, &e).await?;
        written += 1;
    }
    while written < events {
        let lot = LotId(rng.random_range(1..=lots));
        let session = SessionId::new();
        let entry = start + Duration::seconds(rng.random_range(0..30 * 86_400));
        let stay = rng.random_range(600..36_000);
        let check_in = Event::new(
            entry,
            lot,
            EventPayload::CheckIn(CheckIn {
                session_id: session,
                user_id: None,
                reservation_id: None,
                spot_id: Some(SpotId(rng.random_range(1..=200))),
                vehicle_type: VehicleType::Car,
                method: EntryMethod::Qr,
            }),
        );
        let exit = Event::new(
            entry + Duration::seconds(stay),
            lot,
            EventPayload::Exit(Exit {
                session_id: session,
                duration_s: stay,
                amount_cents: Cents(stay / 12),
                currency: "USD".into(),
            }),
        );
        append_event(&mut tx, &check_in).await?;
        append_event(&mut tx, &exit).await?;
        written += 2;
        if written % 20_000 < 2 {
            tx.commit().await?;
            tx = store.begin_write().await?;
        }
    }
    tx.commit().await?;
    let fill_s = fill.elapsed().as_secs_f64();

    let lake = Lake::new(dir.path().join("lake"));
    let mut ingest = EmbeddedIngest::new(
        Outbox::new(store.pool().clone()),
        lake.clone(),
        batch,
        IngestMetrics::default(),
    )?;
    let t = Instant::now();
    let report = ingest.drain().await?;
    let secs = t.elapsed().as_secs_f64();
    let manifest = lake.manifest(Section::Ingested)?;
    anyhow::ensure!(
        manifest.rows_of(Table::FactParkingEvent) == written as u64,
        "lake has {} rows, outbox {written}",
        manifest.rows_of(Table::FactParkingEvent)
    );
    let bytes: u64 = manifest
        .files_of(Table::FactParkingEvent)
        .iter()
        .map(|f| {
            std::fs::metadata(lake.absolute(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    Ok(format!(
        "bench ingest: {written} events ({lots} lots, 30 days) outbox → Parquet, batch {batch}\n\
         filled outbox in {fill_s:.1} s\n\
         ingested {} events in {} batches, {} files, in {secs:.2} s = {:.0} events/s\n\
         lake size {:.1} MB ({:.1} bytes/event)",
        report.events,
        report.batches,
        manifest.files_of(Table::FactParkingEvent).len(),
        report.events as f64 / secs,
        bytes as f64 / 1e6,
        bytes as f64 / written as f64,
    ))
}
