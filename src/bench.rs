//! `parkflow bench …`: measured figures for BENCHMARKS.md, printed with how they were made.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use parkflow_api::store::Store;
use parkflow_ingest::{EmbeddedIngest, IngestMetrics};
use parkflow_outbox::append as append_event;
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
    let written = fill_outbox(&store, events, lots).await?;
    let fill_s = fill.elapsed().as_secs_f64();
    embedded(&store, dir.path(), written, batch, lots, fill_s).await
}

/// `events` synthetic events in the outbox: `lots` registrations, then check-ins and exits over
/// 30 days in the order they happened, as the API records them (until stop 28 they went in at
/// random times, so each batch spanned all 30 days and wrote ~31 small files). Returns how many
/// were written.
async fn fill_outbox(store: &Store, events: usize, lots: i64) -> anyhow::Result<usize> {
    let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().expect("valid time");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut written = 0usize;
    let mut tx = store.begin_change(start).await?;
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
        append_event(&mut *tx, &e).await?;
        written += 1;
    }
    let mut stays = Vec::with_capacity(events.saturating_sub(written));
    while written + stays.len() < events {
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
                monthly_pass_id: None,
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
        stays.push(check_in);
        stays.push(exit);
    }
    stays.sort_by_key(|e| e.occurred_at);
    for e in &stays {
        append_event(&mut *tx, e).await?;
        written += 1;
        if written.is_multiple_of(20_000) {
            tx.commit().await?;
            tx = store.begin_change(start).await?;
        }
    }
    tx.commit().await?;
    Ok(written)
}

async fn embedded(
    store: &Store,
    dir: &std::path::Path,
    written: usize,
    batch: usize,
    lots: i64,
    fill_s: f64,
) -> anyhow::Result<String> {
    let lake = Lake::new(dir.join("lake"));
    let mut ingest = EmbeddedIngest::new(
        store.outbox(),
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

/// Kafka → warehouse throughput: `events` synthetic events are relayed from the outbox to a fresh
/// topic, then read by (1) a plain consumer that only counts them — the ceiling — (2) the
/// warehouse consumer into Parquet, (3) the warehouse consumer into Parquet and ClickHouse.
pub async fn ingest_kafka(
    events: usize,
    lots: i64,
    kafka: &parkflow_ingest::kafka::KafkaConfig,
    clickhouse: &parkflow_ingest::sink::clickhouse::ClickHouseConfig,
) -> anyhow::Result<String> {
    use parkflow_ingest::kafka::consume::{WarehouseConsumer, count_messages};
    use parkflow_ingest::kafka::relay::Relay;
    use parkflow_ingest::sink::clickhouse::ClickHouseSink;
    anyhow::ensure!(
        kafka.is_enabled(),
        "set kafka.brokers (PARKFLOW__KAFKA__BROKERS)"
    );
    let run = uuid::Uuid::now_v7().simple().to_string();
    let kafka = parkflow_ingest::kafka::KafkaConfig {
        events_topic: format!("bench-events-{run}"),
        dlq_topic: format!("bench-dlq-{run}"),
        rates_topic: format!("bench-rates-{run}"),
        // Joins in a benchmark are not what is measured: the shortest session Kafka accepts.
        session_timeout_ms: 6_000,
        ..kafka.clone()
    };
    kafka.ensure_topics().await?;
    let dir = tempfile::tempdir().context("temp dir")?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await?;
    let written = fill_outbox(&store, events, lots).await?;
    let mut out = format!(
        "bench ingest --kafka: {written} events ({lots} lots) on topic {} ({} partitions), consumer batch {}\n",
        kafka.events_topic, kafka.partitions, kafka.batch_size
    );

    let relay = Relay::new(store.outbox(), &kafka, IngestMetrics::default())?;
    let t = Instant::now();
    let (relayed, relay_time) = relay.drain_timed().await?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(relayed == written, "relayed {relayed} of {written}");
    let relay_line = |raw: f64| {
        let rate = relayed as f64 / secs;
        format!(
            "relay outbox → Kafka: {relayed} in {secs:.2} s = {rate:.0} events/s ({:.0}% of raw)\n  where its rounds spent the time: {}\n",
            100.0 * rate / raw,
            relay_time.breakdown()
        )
    };

    let counted = count_messages(&kafka, &format!("bench-raw-{run}"), written).await?;
    anyhow::ensure!(
        counted.messages == written,
        "the plain consumer read {} of {written}",
        counted.messages
    );
    let raw = counted.rate();
    out += &format!(
        "raw consume (count only, the ceiling): joined in {:.2} s, then {} in {:.2} s = {raw:.0} events/s\n",
        counted.join.as_secs_f64(),
        counted.messages,
        counted.steady.as_secs_f64(),
    );
    out += &relay_line(raw);

    let mut sinks = vec![("Parquet", None)];
    if clickhouse.is_enabled() {
        let ch = ClickHouseSink::new(&parkflow_ingest::sink::clickhouse::ClickHouseConfig {
            database: format!("bench_{run}"),
            ..clickhouse.clone()
        })?;
        ch.migrate().await?;
        sinks.push(("Parquet + ClickHouse", Some(ch)));
    }
    for (name, ch) in sinks {
        let group = format!("bench-{}-{run}", name.len());
        let cfg = parkflow_ingest::kafka::KafkaConfig {
            group_id: group,
            ..kafka.clone()
        };
        let lake = Lake::new(dir.path().join(format!("lake-{}", name.len())));
        let created = Instant::now();
        let mut consumer =
            WarehouseConsumer::new(&cfg, lake.clone(), ch.clone(), IngestMetrics::default())?;
        let mut sum = parkflow_ingest::kafka::consume::ConsumeReport::default();
        while sum.events < written as u64 {
            let r = consumer.step(std::time::Duration::from_secs(10)).await?;
            anyhow::ensure!(
                r.messages > 0,
                "the topic ran dry after {} events",
                sum.events
            );
            sum.add(&r);
        }
        let total = sum.events;
        // From the first message on: the group join before it is printed on its own.
        let first = consumer.first_message_at().unwrap_or(created);
        let join = (first - created).as_secs_f64();
        let secs = first.elapsed().as_secs_f64();
        let rows = lake
            .manifest(Section::Ingested)?
            .rows_of(Table::FactParkingEvent);
        anyhow::ensure!(rows == written as u64, "{name}: lake has {rows} rows");
        if let Some(ch) = &ch {
            let (n, distinct) = ch.event_counts().await?;
            anyhow::ensure!(
                n == written as u64 && distinct == n,
                "ClickHouse has {n} rows, {distinct} distinct"
            );
        }
        let rate = total as f64 / secs;
        out += &format!(
            "Kafka → {name}: joined in {join:.2} s, then {total} in {secs:.2} s = {rate:.0} events/s ({:.0}% of raw)\n  where its batches spent the time: {}\n",
            100.0 * rate / raw,
            sum.time.breakdown()
        );
    }
    Ok(out)
}
