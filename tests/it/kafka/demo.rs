//! The main job through the distributed path: the same seeded world run embedded and through
//! relay → Kafka → consumer group → Parquet + ClickHouse (rates back over the rates topic) tells
//! the same story — the same stays, revenue, occupancy peaks, forecast and rate changes — and
//! ClickHouse holds every event once.

use super::*;
use parkflow::Config;
use parkflow::demo::{self, DemoOptions, DemoOutcome};

fn options(dir: &std::path::Path) -> DemoOptions {
    DemoOptions {
        lots: 2,
        days: 2,
        seed: 23,
        data_dir: dir.to_owned(),
        progress: false,
        end: Some("2026-06-10T18:00:00Z".parse().unwrap()),
    }
}

/// What the two paths must agree on: everything but how the events travelled.
fn story(o: &DemoOutcome) -> DemoOutcome {
    DemoOutcome {
        ingest_path: String::new(),
        clickhouse_database: None,
        clickhouse_stays: None,
        clickhouse_peaks: None,
        ..o.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_through_kafka_and_clickhouse_tells_the_same_story_as_embedded() {
    let Some(brokers) = service("PARKFLOW_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Some(clickhouse_url) = service("PARKFLOW_TEST_CLICKHOUSE_URL") else {
        return;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (embedded, _) = demo::run(Config::default(), &options(a.path()))
        .await
        .unwrap();

    let cfg = Config {
        kafka: KafkaConfig {
            brokers,
            partitions: 3,
            session_timeout_ms: 6_000,
            ..KafkaConfig::default()
        },
        clickhouse: ClickHouseConfig {
            url: clickhouse_url.clone(),
            database: "pf_test".into(),
            // The test server is ClickHouse 18.16 (see SERVICES.md).
            validation: false,
            ..ClickHouseConfig::default()
        },
        ..Config::default()
    };
    let (distributed, _) = demo::run(cfg, &options(b.path())).await.unwrap();
    assert!(
        distributed.ingest_path.contains("Kafka topic"),
        "{}",
        distributed.ingest_path
    );
    assert!(embedded.ingest_path.contains("embedded"));

    // The same story, figure for figure.
    assert_eq!(
        distributed.summary, embedded.summary,
        "stays, revenue, peaks"
    );
    assert_eq!(
        distributed.pricing.changes, embedded.pricing.changes,
        "rates changed"
    );
    assert!(
        !embedded.pricing.changes.is_empty(),
        "the world changes some rates"
    );
    assert_eq!(distributed.outbox_events, embedded.outbox_events);
    assert_eq!(distributed.lake_events as i64, distributed.outbox_events);
    assert_eq!(story(&distributed), story(&embedded));

    // ClickHouse holds every event of the run, once.
    let database = distributed
        .clickhouse_database
        .clone()
        .expect("a ClickHouse run");
    let clickhouse = ClickHouseSink::new(&ClickHouseConfig {
        url: clickhouse_url,
        database,
        validation: false,
        ..ClickHouseConfig::default()
    })
    .unwrap();
    // ClickHouse answers each lot's occupancy peak as the lake does.
    let lake_peaks = embedded.lake_peaks();
    assert!(lake_peaks.iter().all(|p| p.1 > 0), "{lake_peaks:?}");
    assert_eq!(distributed.clickhouse_peaks, Some(lake_peaks));
    let (rows, ids) = clickhouse.event_counts().await.unwrap();
    assert_eq!(
        (rows, ids),
        (distributed.lake_events, distributed.lake_events)
    );
}
