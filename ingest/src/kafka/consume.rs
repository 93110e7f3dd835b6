//! The warehouse consumer: a member of a consumer group on the events topic that validates each
//! message, batches by size and time, makes the batch durable in every sink, and only then
//! commits the offsets to Kafka.
//!
//! Order of a batch: dead letters to the DLQ topic (acknowledged) → ClickHouse insert → Parquet
//! files and manifest (with the next offset of every partition) → Kafka offset commit. A crash
//! anywhere replays the batch from the last Kafka commit: Parquet skips offsets its manifest
//! already covers, ClickHouse collapses the replayed `event_id`s, and a dead letter may be
//! published twice (its consumers key on the source offset carried in its headers).

use super::{KafkaConfig, position_key};
use crate::FailPoint;
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::sink::DeadLetter;
use crate::sink::clickhouse::ClickHouseSink;
use crate::sink::parquet::ParquetSink;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use warehouse_schema::lake::Lake;

/// Totals of one or more batches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeReport {
    pub batches: u64,
    pub messages: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// Messages below an offset the Parquet manifest already covers (a replay after a crash).
    pub skipped: u64,
    /// Events already written under another offset (the relay sent them again).
    pub duplicates: u64,
}

/// Event ids written recently, oldest forgotten first.
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<uuid::Uuid>,
    order: VecDeque<uuid::Uuid>,
}

/// How many recent event ids the consumer remembers (relay retries come within seconds).
const RECENT_IDS: usize = 2_000_000;
/// Data files read at start-up to remember what the last batches wrote.
const RECENT_FILES: usize = 64;

impl RecentIds {
    fn contains(&self, id: &uuid::Uuid) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: uuid::Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > RECENT_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

pub struct WarehouseConsumer {
    consumer: StreamConsumer,
    dlq: FutureProducer,
    topic: String,
    dlq_topic: String,
    parquet: ParquetSink,
    clickhouse: Option<ClickHouseSink>,
    batch_size: usize,
    linger: Duration,
    metrics: IngestMetrics,
    /// Stop the next batch after the ClickHouse insert, before Parquet (recovery tests only).
    fail_after_clickhouse: bool,
    recent: RecentIds,
    /// When the lag gauge was last refreshed (it asks the broker, so not every batch).
    lag_checked: Option<Instant>,
}

impl std::fmt::Debug for WarehouseConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarehouseConsumer")
            .field("topic", &self.topic)
            .finish()
    }
}

impl WarehouseConsumer {
    /// Join the group and open the sinks (recovering the lake from any crash).
    pub fn new(
        cfg: &KafkaConfig,
        lake: Lake,
        clickhouse: Option<ClickHouseSink>,
        metrics: IngestMetrics,
    ) -> Result<Self> {
        let consumer: StreamConsumer = cfg
            .client()?
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("enable.partition.eof", "false")
            .create()?;
        consumer.subscribe(&[&cfg.events_topic])?;
        let parquet = ParquetSink::open(lake)?;
        let mut recent = RecentIds::default();
        for id in parquet.recent_event_ids(RECENT_FILES)? {
            recent.insert(id);
        }
        Ok(Self {
            consumer,
            dlq: super::relay::reliable_producer(cfg)?,
            topic: cfg.events_topic.clone(),
            dlq_topic: cfg.dlq_topic.clone(),
            parquet,
            clickhouse,
            batch_size: cfg.batch_size.max(1),
            linger: Duration::from_millis(cfg.batch_linger_ms.max(1)),
            metrics,
            fail_after_clickhouse: false,
            recent,
            lag_checked: None,
        })
    }

    /// Stop at `point` in the next batch, as a crash would (recovery tests only).
    pub fn fail_at(&mut self, point: FailPoint) {
        self.parquet.fail_at(point);
    }

    /// Stop the next batch between the ClickHouse insert and the Parquet commit.
    pub fn fail_after_clickhouse(&mut self) {
        self.fail_after_clickhouse = true;
    }

    pub fn parquet(&self) -> &ParquetSink {
        &self.parquet
    }

    /// Wait up to `first_wait` for a message, then fill the batch for at most the linger time.
    async fn collect(&self, first_wait: Duration) -> Result<Vec<OwnedMessage>> {
        let mut batch = Vec::new();
        let deadline = Instant::now() + first_wait;
        let mut linger_until: Option<Instant> = None;
        while batch.len() < self.batch_size {
            let until = linger_until.unwrap_or(deadline);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    batch.push(m.detach());
                    linger_until.get_or_insert_with(|| Instant::now() + self.linger);
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Consume one batch (waiting up to `first_wait` for its first message) into every sink.
    pub async fn step(&mut self, first_wait: Duration) -> Result<ConsumeReport> {
        let messages = self.collect(first_wait).await?;
        if messages.is_empty() {
            self.update_lag();
            return Ok(ConsumeReport::default());
        }
        let mut report = ConsumeReport {
            batches: 1,
            messages: messages.len() as u64,
            ..Default::default()
        };
        let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let mut fresh = Vec::with_capacity(messages.len());
        for m in &messages {
            let (partition, offset) = (m.partition(), m.offset());
            let next = next_offsets.entry(partition).or_insert(offset + 1);
            *next = (*next).max(offset + 1);
            let committed = self
                .parquet
                .position(&position_key(&self.topic, partition))
                .unwrap_or(0);
            if offset < committed {
                report.skipped += 1;
                continue;
            }
            fresh.push(m);
        }
        let crate::validate::Validated {
            mut events,
            dead,
            dead_at,
        } = crate::validate::validate_batch(
            &self.parquet,
            fresh.iter().map(|m| {
                (
                    format!("kafka:{}/{}@{}", self.topic, m.partition(), m.offset()),
                    m.payload().unwrap_or_default(),
                )
            }),
        );
        // The key of each dead letter's message, so the DLQ keeps the partitioning by lot.
        let dead_keys: Vec<&[u8]> = dead_at
            .iter()
            .map(|&i| fresh[i].key().unwrap_or_default())
            .collect();
        // An event the relay sent again (inside this batch or after an earlier one) counts once.
        let before = events.len();
        let mut seen = HashSet::with_capacity(events.len());
        events.retain(|e| !self.recent.contains(&e.event_id.0) && seen.insert(e.event_id.0));
        report.duplicates = (before - events.len()) as u64;

        self.publish_dead_letters(&dead, &dead_keys).await?;
        if let Some(ch) = &self.clickhouse {
            ch.insert_events(&events).await?;
        }
        if std::mem::take(&mut self.fail_after_clickhouse) {
            return Err(Error::Injected(FailPoint::BeforeCommit));
        }
        let positions = next_offsets
            .iter()
            .map(|(p, o)| (position_key(&self.topic, *p), *o))
            .collect();
        self.parquet.write(&events, &dead, positions)?;

        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &next_offsets {
            offsets.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))?;
        }
        self.consumer.commit(&offsets, CommitMode::Sync)?;
        for e in &events {
            self.recent.insert(e.event_id.0);
        }

        report.events = events.len() as u64;
        report.dead_letters = dead.len() as u64;
        self.metrics.batches.inc();
        self.metrics.events.inc_by(report.events);
        self.metrics.dead_letters.inc_by(report.dead_letters);
        self.update_lag();
        Ok(report)
    }

    /// The original bytes of every refused message, with the reason in its headers.
    async fn publish_dead_letters(&self, dead: &[DeadLetter], keys: &[&[u8]]) -> Result<()> {
        let mut pending = Vec::with_capacity(dead.len());
        for (d, key) in dead.iter().zip(keys) {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "reason",
                    value: Some(d.rejection.reason.code()),
                })
                .insert(Header {
                    key: "detail",
                    value: Some(d.rejection.detail.as_str()),
                })
                .insert(Header {
                    key: "source",
                    value: Some(d.source.as_str()),
                });
            let record = FutureRecord::to(&self.dlq_topic)
                .key(*key)
                .payload(&d.payload)
                .headers(headers);
            let delivery = self
                .dlq
                .send_result(record)
                .map_err(|(e, _)| Error::Kafka(e))?;
            pending.push(delivery);
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {
                    self.metrics.dlq_messages.inc();
                }
                Ok(Err((e, _))) => return Err(Error::Kafka(e)),
                Err(_) => {
                    return Err(Error::Config("the DLQ producer was shut down".into()));
                }
            }
        }
        Ok(())
    }

    /// Consumer lag as the broker reports it: high watermark minus this consumer's position, per
    /// assigned partition, at most every five seconds (each refresh asks the broker).
    fn update_lag(&mut self) {
        const EVERY: Duration = Duration::from_secs(5);
        if self.lag_checked.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.lag_checked = Some(Instant::now());
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut lag = 0i64;
        for e in positions.elements() {
            let Ok((_, high)) = self.consumer.fetch_watermarks(
                e.topic(),
                e.partition(),
                Duration::from_millis(500),
            ) else {
                return;
            };
            let position = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            lag += (high - position).max(0);
        }
        self.metrics.consumer_lag.set(lag);
    }

    /// Batches until `idle` passes with no message.
    pub async fn drain(&mut self, idle: Duration) -> Result<ConsumeReport> {
        let mut total = ConsumeReport::default();
        loop {
            let r = self.step(idle).await?;
            if r.messages == 0 {
                return Ok(total);
            }
            total.batches += r.batches;
            total.messages += r.messages;
            total.events += r.events;
            total.dead_letters += r.dead_letters;
            total.skipped += r.skipped;
            total.duplicates += r.duplicates;
        }
    }
}

/// Read `expected` messages of the events topic with a plain consumer in `group` that does
/// nothing but count them: the ceiling a warehouse consumer is measured against.
pub async fn count_messages(cfg: &KafkaConfig, group: &str, expected: usize) -> Result<usize> {
    let consumer: StreamConsumer = cfg
        .client()?
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&cfg.events_topic])?;
    let mut n = 0;
    while n < expected {
        match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Ok(Ok(m)) => {
                n += usize::from(m.payload().is_some());
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(n)
}
