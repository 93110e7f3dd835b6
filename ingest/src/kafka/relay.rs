//! The relay: outbox rows not yet published go to the events topic, keyed by lot id (so one
//! lot's events stay in one partition, in order), and are marked published only after the broker
//! acknowledged them (acks=all, idempotent producer).
//!
//! A round enqueues every row, then awaits the acknowledgements in outbox order and marks the
//! acknowledged prefix; a failure stops the round there, and the rest is sent again next round.
//! Rows are marked by id, never by range: on PostgreSQL a lower id may commit after a higher one,
//! and a range would mark a row that was never sent.

use super::KafkaConfig;
use crate::error::Result;
use crate::metrics::IngestMetrics;
use chrono::Utc;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

/// What one relay round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    /// Rows whose delivery failed this round (they are retried).
    pub failed: usize,
    /// Where the round spent its time.
    pub time: RelayTime,
}

/// Where relay rounds spend their time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayTime {
    /// Reading the unpublished rows from the outbox.
    pub fetch: std::time::Duration,
    /// Handing the records to the producer's queue.
    pub produce: std::time::Duration,
    /// Waiting for the broker's acknowledgements.
    pub acks: std::time::Duration,
    /// Marking the acknowledged rows published.
    pub mark: std::time::Duration,
}

impl RelayTime {
    pub fn add(&mut self, o: &Self) {
        self.fetch += o.fetch;
        self.produce += o.produce;
        self.acks += o.acks;
        self.mark += o.mark;
    }

    /// Each phase's time in one line.
    pub fn breakdown(&self) -> String {
        format!(
            "fetch {:.2} s, produce {:.2} s, acks {:.2} s, mark published {:.2} s",
            self.fetch.as_secs_f64(),
            self.produce.as_secs_f64(),
            self.acks.as_secs_f64(),
            self.mark.as_secs_f64()
        )
    }
}

pub struct Relay {
    outbox: crate::source::Outbox,
    producer: FutureProducer,
    topic: String,
    batch: i64,
    metrics: IngestMetrics,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("topic", &self.topic).finish()
    }
}

/// A producer that waits for every in-sync replica, never duplicates within a session, and keeps
/// retrying through a broker restart for up to five minutes.
pub(crate) fn reliable_producer(cfg: &KafkaConfig) -> Result<FutureProducer> {
    Ok(cfg
        .client()?
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", "300000")
        .set("linger.ms", "5")
        .set(
            "batch.num.messages",
            cfg.producer_batch_messages.clamp(1, 1_000_000).to_string(),
        )
        .set("queue.buffering.max.messages", "500000")
        .create()?)
}

impl Relay {
    pub fn new(
        outbox: crate::source::Outbox,
        cfg: &KafkaConfig,
        metrics: IngestMetrics,
    ) -> Result<Self> {
        Ok(Self {
            outbox,
            producer: reliable_producer(cfg)?,
            topic: cfg.events_topic.clone(),
            batch: cfg.relay_batch.max(1),
            metrics,
        })
    }

    /// Publish one round of unpublished rows; `published == 0` means the outbox is caught up.
    pub async fn step(&self) -> Result<RelayReport> {
        let mut time = RelayTime::default();
        let t = std::time::Instant::now();
        let rows = self.outbox.unpublished(self.batch).await?;
        time.fetch = t.elapsed();
        let t = std::time::Instant::now();
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = row.lot_id.to_string();
            let record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&row.payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "event_id",
                    value: Some(row.event_id.as_str()),
                }));
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((row.position, delivery)),
                // The local queue is full: send what is queued, the rest next round.
                Err((e, _)) => {
                    tracing::warn!(error = %e, "relay queue full; finishing the round early");
                    break;
                }
            }
        }
        time.produce = t.elapsed();
        let t = std::time::Instant::now();
        let mut acknowledged = Vec::with_capacity(pending.len());
        let mut failed = 0;
        for (id, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) if failed == 0 => acknowledged.push(id),
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    if failed == 0 {
                        tracing::warn!(error = %e, outbox.position = id, "delivery failed; the rest is sent again");
                    }
                    failed += 1;
                }
                Err(_) => failed += 1,
            }
        }
        time.acks = t.elapsed();
        let t = std::time::Instant::now();
        self.outbox
            .mark_published(&acknowledged, Utc::now().timestamp_millis())
            .await?;
        time.mark = t.elapsed();
        self.metrics.relayed.inc_by(acknowledged.len() as u64);
        Ok(RelayReport {
            published: acknowledged.len(),
            failed,
            time,
        })
    }

    /// Rounds until nothing is left to publish (or a round fails to deliver anything).
    pub async fn drain(&self) -> Result<usize> {
        Ok(self.drain_timed().await?.0)
    }

    /// [`drain`](Self::drain), with where its rounds spent their time.
    pub async fn drain_timed(&self) -> Result<(usize, RelayTime)> {
        let (mut total, mut time) = (0, RelayTime::default());
        loop {
            let r = self.step().await?;
            total += r.published;
            time.add(&r.time);
            if r.published == 0 {
                return Ok((total, time));
            }
        }
    }

    /// Publish forever, pausing `idle` when caught up, until `shutdown` turns true.
    pub async fn run(
        &self,
        idle: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        while !*shutdown.borrow() {
            let r = self.step().await?;
            if r.published == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        Ok(())
    }
}
