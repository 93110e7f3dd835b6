//! The warehouse consumer: a member of a consumer group on the events topic that validates each
//! message, batches by size and time, makes the batch durable in every sink, and only then
//! commits the offsets to Kafka.
//!
//! Order of a batch: dead letters to the DLQ topic (acknowledged) → ClickHouse insert, with the
//! Parquet files written meanwhile → once the insert succeeded, the Parquet manifest (with the
//! next offset of every partition) → Kafka offset commit. A crash anywhere replays the batch
//! from the last Kafka commit: Parquet skips offsets its manifest already covers, ClickHouse
//! collapses the replayed `event_id`s, and a dead letter may be published twice (its consumers
//! key on the source offset carried in its headers).

mod batch;
mod report;

pub use report::{BatchTime, ConsumeReport};

use super::{KafkaConfig, position_key};
use crate::FailPoint;
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::sink::DeadLetter;
use crate::sink::clickhouse::ClickHouseSink;
use crate::sink::parquet::{ParquetSink, StagingThread};
use crate::validate::{Validated, Validator};
use batch::{HANDOVER, RECENT_FILES, Received, RecentIds};
use rdkafka::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use warehouse_schema::lake::Lake;

/// The longest a consumer waits to be given partitions before a batch counts as empty.
const JOIN_LIMIT: Duration = Duration::from_secs(60);

/// How often librdkafka reports the statistics the lag gauge is read from.
const LAG_EVERY_MS: u64 = 1_000;

/// Sets the consumer-lag gauge from librdkafka's statistics: per assigned partition of the
/// events topic, the high watermark the last fetch response carried minus the committed offset.
pub struct LagContext {
    topic: String,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        // librdkafka reports -1 for partitions it has no figure for (not assigned, nothing
        // fetched or committed yet); those are left out.
        let lag: i64 = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.gauge.set(lag);
    }
}

impl ConsumerContext for LagContext {}

pub struct WarehouseConsumer {
    consumer: StreamConsumer<LagContext>,
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
    /// Decoded events handed on in pieces of this many ([`HANDOVER`]).
    handover: usize,
    /// When the first message arrived: before it, the consumer was joining its group.
    first_message_at: Option<Instant>,
    /// When the consumer was first seen with partitions assigned.
    joined_at: Option<Instant>,
    /// When the batch being collected got its first message.
    batch_started: Option<Instant>,
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
        let consumer: StreamConsumer<LagContext> = cfg
            .consumer_client(&cfg.group_id)?
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // The lag gauge comes from these statistics: the high watermark of each fetch
            // response against the committed offset (no ListOffsets round trip to the broker).
            .set("statistics.interval.ms", LAG_EVERY_MS.to_string())
            .create_with_context(LagContext {
                topic: cfg.events_topic.clone(),
                gauge: metrics.consumer_lag.clone(),
            })?;
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
            handover: HANDOVER,
            first_message_at: None,
            joined_at: None,
            batch_started: None,
        })
    }

    /// Stop at `point` in the next batch, as a crash would (recovery tests only).
    pub fn fail_at(&mut self, point: FailPoint) {
        self.parquet.fail_at(point);
    }

    /// Hand decoded events on in pieces of `events` (at least 1) instead of [`HANDOVER`]: tests
    /// use tiny pieces so that a batch of a few messages is written in several.
    pub fn hand_over_every(&mut self, events: usize) {
        self.handover = events.max(1);
    }

    /// Stop the next batch between the ClickHouse insert and the Parquet commit.
    pub fn fail_after_clickhouse(&mut self) {
        self.fail_after_clickhouse = true;
    }

    pub fn parquet(&self) -> &ParquetSink {
        &self.parquet
    }

    /// When the first message arrived (`None` before): the end of the group join, where a
    /// throughput figure starts.
    pub fn first_message_at(&self) -> Option<Instant> {
        self.first_message_at
    }

    /// The partitions of the events topic this consumer holds now (the group splits them
    /// between its members).
    pub fn assigned_partitions(&self) -> Vec<i32> {
        let mut partitions: Vec<i32> = self
            .consumer
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .filter(|e| e.topic() == self.topic)
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        partitions.sort_unstable();
        partitions
    }

    /// Wait up to `first_wait` for a message — counted from when the consumer has partitions,
    /// so a group join (seconds on some brokers) does not pass for an empty topic — then fill
    /// the batch for at most the linger time. Each message is validated as it arrives, straight
    /// from librdkafka's buffer; offsets the lake already holds (a replay) are skipped.
    async fn collect(&mut self, first_wait: Duration) -> Result<Received> {
        let Self {
            consumer,
            parquet,
            clickhouse,
            recent,
            handover,
            topic,
            batch_size,
            linger,
            joined_at,
            first_message_at,
            batch_started,
            ..
        } = self;
        *batch_started = None;
        // Events are taken from the validator in pieces of `handover`.
        let mut validator = Validator::new(parquet, (*handover).min(*batch_size));
        let mut received = Received::default();
        // The lake's position of each partition met in this batch.
        let mut committed: HashMap<i32, i64> = HashMap::new();
        let started = Instant::now();
        let mut deadline = started + first_wait;
        let mut linger_until: Option<Instant> = None;
        while received.messages < *batch_size as u64 {
            // A message librdkafka already holds is taken without a timer; only an empty
            // queue waits, until the linger time (or the first wait) is up.
            let mut next = std::pin::pin!(consumer.recv());
            let ready = next.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            let m = match ready {
                Poll::Ready(m) => m?,
                Poll::Pending => {
                    let joining = joined_at.is_none();
                    if joining {
                        if consumer.assignment().is_ok_and(|a| a.count() > 0) {
                            let now = Instant::now();
                            *joined_at = Some(now);
                            deadline = now + first_wait;
                        } else {
                            deadline = started + first_wait.max(JOIN_LIMIT);
                        }
                    }
                    let until = linger_until.unwrap_or(deadline);
                    let mut left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    if joining {
                        // Look at the assignment again soon: the join ends inside `recv`.
                        left = left.min(Duration::from_millis(100));
                    }
                    let waiting = Instant::now();
                    let m = tokio::time::timeout(left, next).await;
                    if batch_started.is_some() {
                        received.waiting += waiting.elapsed();
                    }
                    match m {
                        Ok(m) => m?,
                        Err(_) => continue,
                    }
                }
            };
            if batch_started.is_none() {
                let now = Instant::now();
                first_message_at.get_or_insert(now);
                *batch_started = Some(now);
                linger_until = Some(now + *linger);
            }
            received.messages += 1;
            let (partition, offset) = (m.partition(), m.offset());
            let next = received
                .next_offsets
                .entry(partition)
                .or_insert(offset.saturating_add(1));
            *next = (*next).max(offset.saturating_add(1));
            let committed = *committed.entry(partition).or_insert_with(|| {
                validator
                    .sink()
                    .position(&position_key(topic, partition))
                    .unwrap_or(0)
            });
            if offset < committed {
                received.skipped += 1;
                continue;
            }
            let source = || format!("{}@{offset}", position_key(topic, partition));
            if !validator.push(source, m.payload().unwrap_or_default()) {
                received
                    .dead_keys
                    .push(m.key().unwrap_or_default().to_vec());
            } else if validator.events_len() >= *handover {
                let events = validator.take_events();
                received.hand_over(events, recent, parquet, clickhouse.is_some())?;
            }
        }
        let Validated { events, dead } = validator.finish();
        if !events.is_empty() {
            received.hand_over(events, recent, parquet, clickhouse.is_some())?;
        }
        received.dead = dead;
        Ok(received)
    }

    /// Consume one batch (waiting up to `first_wait` for its first message) into every sink.
    pub async fn step(&mut self, first_wait: Duration) -> Result<ConsumeReport> {
        let Received {
            messages,
            skipped,
            kept,
            duplicates,
            batches,
            files,
            dead,
            dead_keys,
            next_offsets,
            waiting,
            dedup,
            arrow,
        } = self.collect(first_wait).await?;
        if messages == 0 {
            return Ok(ConsumeReport::default());
        }
        let collected = self.batch_started.map(|t| t.elapsed()).unwrap_or_default();
        let mut time = BatchTime {
            receive: waiting,
            decode: collected
                .saturating_sub(waiting)
                .saturating_sub(dedup)
                .saturating_sub(arrow),
            dedup,
            ..BatchTime::default()
        };
        let mut report = ConsumeReport {
            batches: 1,
            messages,
            skipped,
            duplicates,
            events: kept.len() as u64,
            dead_letters: dead.len() as u64,
            ..Default::default()
        };

        let t = Instant::now();
        self.publish_dead_letters(&dead, &dead_keys).await?;
        time.dlq = t.elapsed();
        // The ClickHouse insert is sent from a task of its own while the Parquet files are
        // finished; the files are committed only once the insert has succeeded (a replay of an
        // insert collapses, a file of an uncommitted batch is removed).
        let insert = self
            .clickhouse
            .clone()
            .map(|ch| tokio::spawn(async move { ch.insert_event_batches(&batches).await }));
        let t = Instant::now();
        let files = files.unwrap_or_else(|| StagingThread::start(self.parquet.staging()));
        let staged = files.finish(dead).await?;
        time.parquet_wait = t.elapsed();
        if let Some(insert) = insert {
            let t = Instant::now();
            insert.await??;
            time.clickhouse = t.elapsed();
        }
        if std::mem::take(&mut self.fail_after_clickhouse) {
            return Err(Error::Injected(FailPoint::BeforeCommit));
        }
        let positions = next_offsets
            .iter()
            .map(|(p, o)| (position_key(&self.topic, *p), *o))
            .collect();
        time.parquet = self.parquet.commit(staged, positions)?;
        time.parquet.arrow = arrow;

        let t = Instant::now();
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &next_offsets {
            offsets.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))?;
        }
        self.consumer.commit(&offsets, CommitMode::Sync)?;
        for id in kept {
            self.recent.insert(id);
        }
        time.commit = t.elapsed();
        report.time = time;

        self.metrics.batches.inc();
        self.metrics.events.inc_by(report.events);
        self.metrics.dead_letters.inc_by(report.dead_letters);
        Ok(report)
    }

    /// The original bytes of every refused message, with the reason in its headers.
    async fn publish_dead_letters(&self, dead: &[DeadLetter], keys: &[Vec<u8>]) -> Result<()> {
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
                .key(key.as_slice())
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

    /// Batches until `idle` passes with no message.
    pub async fn drain(&mut self, idle: Duration) -> Result<ConsumeReport> {
        let mut total = ConsumeReport::default();
        loop {
            let r = self.step(idle).await?;
            if r.messages == 0 {
                return Ok(total);
            }
            total.add(&r);
        }
    }
}

/// What a plain consumer that only counts messages managed: the ceiling a warehouse consumer
/// is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawConsume {
    /// From subscribing to the first message (joining the group, the first fetch).
    pub join: Duration,
    pub messages: usize,
    /// From the first message to the last.
    pub steady: Duration,
}

impl RawConsume {
    /// Messages per second after the first one.
    pub fn rate(&self) -> f64 {
        self.messages.saturating_sub(1) as f64 / self.steady.as_secs_f64().max(1e-9)
    }
}

/// Read `expected` messages of the events topic with a plain consumer in `group` that does
/// nothing but count them, with the warehouse consumer's client settings.
pub async fn count_messages(cfg: &KafkaConfig, group: &str, expected: usize) -> Result<RawConsume> {
    let consumer: StreamConsumer = cfg
        .consumer_client(group)?
        .set("enable.partition.eof", "false")
        .create()?;
    let subscribed = Instant::now();
    consumer.subscribe(&[&cfg.events_topic])?;
    let (mut n, mut first, mut last) = (0, None, subscribed);
    while n < expected {
        match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Ok(Ok(m)) => {
                last = Instant::now();
                first.get_or_insert(last);
                n += usize::from(m.payload().is_some());
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    let first = first.unwrap_or(last);
    Ok(RawConsume {
        join: first - subscribed,
        messages: n,
        steady: last - first,
    })
}
