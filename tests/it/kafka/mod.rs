//! The distributed path against the real broker and ClickHouse that `scripts/test` starts: each
//! test has its own topics, consumer group, lake and ClickHouse database.

use chrono::{DateTime, Duration, Utc};
use parkflow_api::services::CheckInRequest;
use parkflow_api::{ApiConfig, AppState, ManualClock};
use parkflow_ingest::kafka::KafkaConfig;
use parkflow_ingest::kafka::consume::WarehouseConsumer;
use parkflow_ingest::kafka::relay::Relay;
use parkflow_ingest::sink::clickhouse::{ClickHouseConfig, ClickHouseSink};
use parkflow_ingest::{Error, FailPoint, IngestMetrics};
use prometheus_client::registry::Registry;
use rand::{Rng, SeedableRng};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as Wait;
use warehouse_schema::lake::Lake;
use warehouse_schema::{EntryMethod, VehicleType};

use crate::support::{dead_letter_reasons, lake_event_ids, service, test_lot};

mod demo;
mod group;
mod restart;

struct World {
    _dir: tempfile::TempDir,
    state: AppState,
    lake: Lake,
    kafka: KafkaConfig,
    clickhouse: ClickHouseSink,
    lot: warehouse_schema::LotId,
}

/// An API with one lot, fresh topics, group and ClickHouse database; None outside CI without
/// the servers.
async fn world() -> Option<World> {
    world_on(service("PARKFLOW_TEST_KAFKA_BROKERS")?).await
}

/// An API on a fresh SQLite file in `dir`, on a manual clock at `start`.
async fn sqlite_api(dir: &std::path::Path, start: DateTime<Utc>) -> (AppState, ManualClock) {
    let config = ApiConfig {
        database_url: format!("sqlite://{}", dir.join("db.sqlite").display()),
        ..ApiConfig::default()
    };
    let clock = ManualClock::new(start);
    let state = AppState::open(&config, Arc::new(clock.clone()), Registry::default())
        .await
        .unwrap();
    (state, clock)
}

async fn world_on(brokers: String) -> Option<World> {
    let clickhouse_url = service("PARKFLOW_TEST_CLICKHOUSE_URL")?;
    let (kafka, clickhouse) = fresh_path(
        KafkaConfig {
            brokers,
            partitions: 3,
            batch_size: 100,
            batch_linger_ms: 200,
            relay_batch: 250,
            // The producer batches as in production.
            ..KafkaConfig::default()
        },
        clickhouse_url,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let start: DateTime<Utc> = "2026-06-01T20:00:00Z".parse().unwrap();
    let (state, clock) = sqlite_api(dir.path(), start).await;
    let lot = state
        .services
        .lots()
        .create_lot(test_lot("Kafka", 500))
        .await
        .unwrap()
        .id;
    // Traffic across midnight: check-ins, and an exit for every other one.
    let mut open = Vec::new();
    for i in 0..200i64 {
        clock.set(start + Duration::minutes(3 * i));
        let r = state
            .services
            .gates()
            .check_in(
                lot,
                CheckInRequest {
                    vehicle_type: VehicleType::Car,
                    method: EntryMethod::Nfc,
                    plate: None,
                    user_id: None,
                },
            )
            .await
            .unwrap();
        open.push(r.session_id);
        if i % 2 == 1 {
            let s = open.remove(0);
            state.services.gates().check_out(lot, s).await.unwrap();
        }
    }
    Some(World {
        lake: Lake::new(dir.path().join("lake")),
        _dir: dir,
        state,
        kafka,
        clickhouse,
        lot,
    })
}

/// `kafka` on topics and a group of its own (created), with quick joins and rebalances after a
/// killed consumer; and a ClickHouse database of its own at `clickhouse_url` (migrated).
async fn fresh_path(kafka: KafkaConfig, clickhouse_url: String) -> (KafkaConfig, ClickHouseSink) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let kafka = KafkaConfig {
        events_topic: format!("events-{id}"),
        dlq_topic: format!("dlq-{id}"),
        rates_topic: format!("rates-{id}"),
        group_id: format!("group-{id}"),
        session_timeout_ms: 6_000,
        ..kafka
    };
    kafka.ensure_topics().await.unwrap();
    let clickhouse = ClickHouseSink::new(&ClickHouseConfig {
        url: clickhouse_url,
        database: format!("pf_test_{id}"),
        // The test server is ClickHouse 18.16 (see SERVICES.md).
        validation: false,
        ..ClickHouseConfig::default()
    })
    .unwrap();
    clickhouse.migrate().await.unwrap();
    (kafka, clickhouse)
}

impl World {
    async fn outbox_len(&self) -> usize {
        self.state.services.store().outbox_len().await.unwrap() as usize
    }

    fn relay(&self) -> Relay {
        Relay::new(
            self.state.services.store().outbox(),
            &self.kafka,
            IngestMetrics::default(),
        )
        .unwrap()
    }

    fn consumer(&self, metrics: IngestMetrics) -> WarehouseConsumer {
        WarehouseConsumer::new(
            &self.kafka,
            self.lake.clone(),
            Some(self.clickhouse.clone()),
            metrics,
        )
        .unwrap()
    }

    /// Exactly `n` events in both sinks, no event id twice.
    async fn assert_exactly(&self, n: usize) {
        let (rows, ids) = lake_event_ids(&self.lake);
        assert_eq!((rows, ids.len()), (n, n), "lake rows and distinct ids");
        let (ch_rows, ch_ids) = self.clickhouse.event_counts().await.unwrap();
        assert_eq!(
            (ch_rows, ch_ids),
            (n as u64, n as u64),
            "ClickHouse rows (FINAL) and distinct ids"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_events_reach_parquet_and_clickhouse_exactly_once() {
    let Some(w) = world().await else { return };
    let n = w.outbox_len().await;
    assert_eq!(w.relay().drain().await.unwrap(), n);
    // The relay marked everything: another round publishes nothing.
    assert_eq!(w.relay().drain().await.unwrap(), 0);
    let mut registry = Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let mut consumer = w.consumer(metrics.clone());
    // One batch in, the rest waiting: the lag the next statistics report (the fetch-side high
    // watermark against the committed offsets) is what is left.
    let first = consumer.step(Wait::from_secs(10)).await.unwrap();
    assert_eq!(first.events, 100, "{first:?}");
    tokio::time::sleep(Wait::from_millis(1_500)).await;
    let second = consumer.step(Wait::from_secs(10)).await.unwrap();
    let lag = metrics.consumer_lag.get();
    assert!(
        lag > 0 && lag <= (n - 100) as i64,
        "lag {lag} after 100 of {n} events"
    );
    let r = consumer.drain(Wait::from_secs(3)).await.unwrap();
    assert_eq!(
        (first.events + second.events + r.events) as usize,
        n,
        "{r:?}"
    );
    assert_eq!(r.dead_letters, 0);
    w.assert_exactly(n).await;
    assert_eq!(metrics.consumer_lag.get(), 0, "all consumed and committed");
    // fact_stay and the dimensions follow from the events, also when refreshed twice.
    w.clickhouse.refresh_derived().await.unwrap();
    w.clickhouse.refresh_derived().await.unwrap();
    let count = |t: &str| {
        let pool = w.state.services.store().pool().clone();
        let sql = format!("SELECT COUNT(*) FROM outbox WHERE event_type = '{t}'");
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap() as u64
        }
    };
    let (check_ins, exits) = (count("check_in").await, count("exit").await);
    use warehouse_schema::Table;
    assert_eq!(w.clickhouse.rows(Table::FactStay).await.unwrap(), check_ins);
    let open: u64 = w
        .clickhouse
        .client()
        .query(&format!(
            "SELECT count() FROM {}.fact_stay FINAL WHERE is_open = 1",
            w.clickhouse.database()
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(open, check_ins - exits);
    assert_eq!(w.clickhouse.rows(Table::DimLot).await.unwrap(), 1);
    assert!(w.clickhouse.rows(Table::DimSpot).await.unwrap() >= 100);
    assert_eq!(w.clickhouse.rows(Table::DimVehicleType).await.unwrap(), 4);
    assert_eq!(w.clickhouse.rows(Table::DimTime).await.unwrap(), 96);
    // The traffic runs from 1 June 20:00 across midnight.
    assert_eq!(w.clickhouse.rows(Table::DimDate).await.unwrap(), 2);
    // Per lot, in outbox order: one partition holds the lot's events in the order they happened.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("parkflow_ingest_kafka_consumer_lag_messages"),
        "{text}"
    );
    assert!(
        text.contains(&format!("parkflow_ingest_events_total {n}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_killed_twenty_times_and_relay_resends_lose_and_duplicate_nothing() {
    let Some(mut w) = world().await else { return };
    let n = w.outbox_len().await;
    assert_eq!(w.relay().drain().await.unwrap(), n);
    // The relay crashed after delivery but before marking a third of the rows: they go again,
    // under new offsets.
    sqlx::query("INSERT INTO outbox_unpublished (id) SELECT id FROM outbox WHERE id % 3 = 0")
        .execute(w.state.services.store().writer())
        .await
        .unwrap();
    let resent = w.relay().drain().await.unwrap();
    assert!(resent >= n / 3 - 1, "{resent}");

    // Small batches, so twenty crashes land in different places of the stream.
    w.kafka.batch_size = 7;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let mut crashes = 0;
    for _ in 0..20 {
        let mut consumer = w.consumer(IngestMetrics::default());
        // Each batch's events reach the Parquet thread in pieces of three, so a re-sent event
        // is met in another piece than its first copy, and a crash can stop a file half-fed.
        consumer.hand_over_every(3);
        for _ in 0..rng.random_range(0..2) {
            consumer.step(Wait::from_secs(10)).await.unwrap();
        }
        match rng.random_range(0..5) {
            0 => consumer.fail_at(FailPoint::AfterFiles(0)),
            1 => consumer.fail_at(FailPoint::AfterFiles(1)),
            2 => consumer.fail_at(FailPoint::BeforeCommit),
            3 => consumer.fail_at(FailPoint::AfterCommit),
            _ => consumer.fail_after_clickhouse(),
        }
        // The fail point fires when a batch reaches it (a one-file batch never reaches the
        // second file): step until it does.
        for _ in 0..5 {
            match consumer.step(Wait::from_secs(10)).await {
                Ok(r) if r.messages == 0 => break,
                Ok(_) => {}
                Err(Error::Injected(_)) => {
                    crashes += 1;
                    break;
                }
                Err(e) => panic!("unexpected failure: {e}"),
            }
        }
        drop(consumer);
    }
    assert!(crashes >= 15, "only {crashes} crashes were injected");
    let mut consumer = w.consumer(IngestMetrics::default());
    consumer.drain(Wait::from_secs(3)).await.unwrap();
    w.assert_exactly(n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dlq_with_reasons_and_the_rest_flows() {
    let Some(w) = world().await else { return };
    let n = w.outbox_len().await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &w.kafka.brokers)
        .create()
        .unwrap();
    let lot = w.lot.0.to_string();
    let good: String =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = 'exit' LIMIT 1")
            .fetch_one(w.state.services.store().pool())
            .await
            .unwrap();
    let good: serde_json::Value = serde_json::from_str(&good).unwrap();
    let variant = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        v["event_id"] = serde_json::json!(uuid::Uuid::now_v7());
        f(&mut v);
        v.to_string()
    };
    let poison = [
        ("malformed_json", "{not json".to_owned()),
        (
            "unknown_type",
            variant(&|v| v["type"] = "teleported".into()),
        ),
        (
            "missing_field",
            variant(&|v| {
                v.as_object_mut().unwrap().remove("session_id");
            }),
        ),
        (
            "invalid_value",
            variant(&|v| v["amount_cents"] = (-5).into()),
        ),
        ("unknown_lot", variant(&|v| v["lot_id"] = 999_999.into())),
        (
            "unsupported_version",
            variant(&|v| v["schema_version"] = 99.into()),
        ),
    ];
    // The first half of the traffic (the lot is registered), then the poison, then the second
    // half: the consumer must go past the poison.
    let pool = w.state.services.store().writer().clone();
    let half = (n / 2) as i64;
    sqlx::query("DELETE FROM outbox_unpublished WHERE id > $1")
        .bind(half)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(w.relay().drain().await.unwrap(), half as usize);
    for (_, payload) in &poison {
        producer
            .send(
                FutureRecord::to(&w.kafka.events_topic)
                    .key(&lot)
                    .payload(payload),
                Wait::from_secs(10),
            )
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO outbox_unpublished (id) SELECT id FROM outbox WHERE id > $1")
        .bind(half)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(w.relay().drain().await.unwrap(), n - half as usize);
    let mut consumer = w.consumer(IngestMetrics::default());
    let r = consumer.drain(Wait::from_secs(3)).await.unwrap();
    assert_eq!(
        (r.events as usize, r.dead_letters),
        (n, poison.len() as u64),
        "{r:?}"
    );
    w.assert_exactly(n).await;
    let mut reasons = dead_letter_reasons(&w.lake);
    reasons.sort();
    let mut expected: Vec<String> = poison.iter().map(|(r, _)| (*r).to_owned()).collect();
    expected.sort();
    assert_eq!(reasons, expected);

    // The DLQ topic holds each poison message's original bytes with its reason.
    let dlq: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &w.kafka.brokers)
        .set("group.id", format!("{}-dlq-reader", w.kafka.group_id))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&[&w.kafka.dlq_topic]).unwrap();
    let mut seen = BTreeMap::new();
    while seen.len() < poison.len() {
        let m = tokio::time::timeout(Wait::from_secs(20), dlq.recv())
            .await
            .expect("DLQ message")
            .unwrap();
        let headers = m.headers().expect("DLQ headers");
        let reason = headers
            .iter()
            .find(|h| h.key == "reason")
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap();
        seen.insert(reason, m.payload().unwrap().to_vec());
    }
    for (reason, payload) in &poison {
        assert_eq!(seen[*reason], payload.as_bytes(), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_over_kafka_give_the_same_table_as_over_http_once() {
    use parkflow_ingest::kafka::rates::{RatesConsumer, RatesPublisher};
    use warehouse_schema::event::{RatePublished, RatesMessage};
    use warehouse_schema::{Cents, DayKind, TimeBand};
    let Some(w) = world().await else { return };
    // A second API (its own database, the same lot) that takes its rates from Kafka only.
    let dir = tempfile::tempdir().unwrap();
    let other = AppState::open(
        &ApiConfig {
            database_url: format!("sqlite://{}", dir.path().join("other.sqlite").display()),
            ..ApiConfig::default()
        },
        Arc::new(ManualClock::new("2026-06-01T20:00:00Z".parse().unwrap())),
        Registry::default(),
    )
    .await
    .unwrap();
    let lot = other
        .services
        .lots()
        .create_lot(test_lot("Kafka", 500))
        .await
        .unwrap()
        .id;
    assert_eq!(lot, w.lot);
    // Announced ahead: upcoming on both APIs (their clocks differ by hours).
    let from: DateTime<Utc> = "2026-06-05T00:00:00Z".parse().unwrap();
    let rates: Vec<RatePublished> = [(TimeBand::Morning, 225), (TimeBand::Evening, 175)]
        .into_iter()
        .map(|(band, cents)| RatePublished {
            band,
            day_kind: DayKind::Weekday,
            vehicle_type: VehicleType::Car,
            cents_per_hour: Cents(cents),
            effective_from: from,
            reason: None,
        })
        .collect();
    let message = RatesMessage {
        lot_id: lot,
        rates: rates.clone(),
        published_at: from,
    };
    // The first API over HTTP's intake.
    let as_http: Vec<parkflow_api::services::Rate> =
        rates.iter().cloned().map(Into::into).collect();
    assert_eq!(
        w.state
            .services
            .lots()
            .publish_rates(w.lot, as_http.clone())
            .await
            .unwrap(),
        2
    );
    // Sent twice over Kafka, plus a message for a lot that does not exist.
    let publisher = RatesPublisher::new(&w.kafka).unwrap();
    publisher.publish(&message).await.unwrap();
    publisher.publish(&message).await.unwrap();
    publisher
        .publish(&RatesMessage {
            lot_id: warehouse_schema::LotId(424_242),
            ..message.clone()
        })
        .await
        .unwrap();
    let consumer = RatesConsumer::new(&w.kafka, &format!("{}-rates", w.kafka.group_id)).unwrap();
    let mut applied = 0;
    for _ in 0..10 {
        applied += consumer
            .step(Wait::from_secs(3), |m| {
                let other = other.clone();
                async move { parkflow::steps::apply_rates_message(&other, m).await }
            })
            .await
            .unwrap();
        if applied == 2 {
            break;
        }
    }
    assert_eq!(
        applied, 2,
        "both copies applied (the second changes nothing)"
    );
    let a = w.state.services.lots().rate_schedule(w.lot).await.unwrap();
    let b = other.services.lots().rate_schedule(lot).await.unwrap();
    assert_eq!(
        (a.current, a.upcoming),
        (b.current.clone(), b.upcoming.clone())
    );
    assert_eq!(b.upcoming.len(), 2);
    let published: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_type = 'rate_published'")
            .fetch_one(other.services.store().pool())
            .await
            .unwrap();
    assert_eq!(
        published, 2,
        "the repeated message published no second event"
    );
    // The same rates again over HTTP change nothing either.
    assert_eq!(
        w.state
            .services
            .lots()
            .publish_rates(w.lot, as_http)
            .await
            .unwrap(),
        0
    );
}

/// A ClickHouse database made before a column was added gains it when migrated (twice is
/// harmless), and takes events carrying it: a pass holder's entry keeps its pass there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_clickhouse_table_gains_the_columns_added_since() {
    use warehouse_schema::event::CheckIn;
    use warehouse_schema::{Event, EventPayload, LotId, MonthlyPassId, SessionId};
    let Some(url) = service("PARKFLOW_TEST_CLICKHOUSE_URL") else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let sink = ClickHouseSink::new(&ClickHouseConfig {
        url,
        database: format!("pf_test_{id}"),
        validation: false,
        ..ClickHouseConfig::default()
    })
    .unwrap();
    let db = sink.database().to_owned();
    let run = |sql: String| {
        let sink = sink.clone();
        async move { sink.client().query(&sql).execute().await.unwrap() }
    };
    // The table as first released: without the columns added since.
    run(format!("CREATE DATABASE {db}")).await;
    let first = warehouse_schema::clickhouse::ddl(&db)[0]
        .replace(",\n    monthly_pass_id Nullable(String)", "");
    assert!(first.contains("fact_parking_event") && !first.contains("monthly_pass_id"));
    run(first).await;
    sink.migrate().await.unwrap();
    sink.migrate().await.unwrap();
    let entry = Event::new(
        Utc::now(),
        LotId(1),
        EventPayload::CheckIn(CheckIn {
            session_id: SessionId::new(),
            user_id: None,
            reservation_id: None,
            spot_id: None,
            vehicle_type: VehicleType::Car,
            method: EntryMethod::Plate,
            monthly_pass_id: Some(MonthlyPassId::new()),
        }),
    );
    sink.insert_events(&[entry]).await.unwrap();
    let with_pass: u64 = sink
        .client()
        .query(&format!(
            "SELECT count() FROM {db}.fact_parking_event WHERE monthly_pass_id IS NOT NULL"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(with_pass, 1);
}
