//! The relay: outbox rows not yet published go to the events topic, keyed by lot id (so one
//! lot's events stay in one partition, in order), and are marked published only after the broker
//! acknowledged them (acks=all, idempotent producer).
//!
//! A round enqueues every row, then awaits the acknowledgements in outbox order and marks the
//! acknowledged prefix; a failure stops the round there, and the rest is sent again next round.
//! The next round's rows are read while the broker acknowledges a round (see
//! [`Relay::drain_timed`]).
//! Rows are marked by id, never by range: on PostgreSQL a lower id may commit after a higher one,
//! and a range would mark a row that was never sent.

use super::KafkaConfig;
use crate::error::Result;
use crate::metrics::IngestMetrics;
use crate::source::Unpublished;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// What one relay round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RelayReport {
    /// Rows handed to the producer.
    sent: usize,
    published: usize,
    /// Rows whose delivery failed this round (they are retried).
    failed: usize,
    /// Where the round spent its time.
    time: RelayTime,
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

    /// Each phase's time in one line. Reading a round overlaps the acknowledgements and the
    /// marking of the round before, so the phases add up to more than the wall time.
    pub fn breakdown(&self) -> String {
        format!(
            "fetch {:.2} s (beside acks and marks), produce {:.2} s, acks {:.2} s, mark published {:.2} s",
            self.fetch.as_secs_f64(),
            self.produce.as_secs_f64(),
            self.acks.as_secs_f64(),
            self.mark.as_secs_f64()
        )
    }
}

/// The most outbox rows a round reads, whatever `kafka.relay_batch` says: a round is read as one
/// row of aggregates (`parkflow_outbox::Unpublished`), and SQLite and PostgreSQL cap one text
/// at 1 GB: 20,000 events stay under it up to 50 KB each (the API bounds every text it takes,
/// the longest at 4,000 characters).
pub const MAX_ROUND: i64 = 20_000;

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
            batch: cfg.relay_batch.clamp(1, MAX_ROUND),
            metrics,
        })
    }

    /// Rounds until nothing is left to publish (or a round fails to deliver anything).
    pub async fn drain(&self) -> Result<usize> {
        Ok(self.drain_timed().await?.0)
    }

    /// [`drain`](Self::drain), with where its rounds spent their time.
    ///
    /// Rounds overlap: while the broker acknowledges one round and its rows are marked, the
    /// next round's rows are read; they are sent once the round before is settled, so at most
    /// one round is in flight and a lot's events keep their order. A failed delivery stops the
    /// pipeline: the rows read meanwhile are dropped and everything from the first
    /// unacknowledged row is read and sent again.
    pub async fn drain_timed(&self) -> Result<(usize, RelayTime)> {
        self.pipeline(|| false).await
    }

    /// Publish until caught up, pausing `idle` each time, until `shutdown` turns true.
    pub async fn run(
        &self,
        idle: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        while !*shutdown.borrow() {
            let (published, _) = self.pipeline(|| *shutdown.borrow()).await?;
            if published == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        Ok(())
    }

    /// The rounds of [`drain_timed`](Self::drain_timed); no new round starts once `stop` says
    /// so (the round in flight is settled first).
    async fn pipeline(&self, stop: impl Fn() -> bool) -> Result<(usize, RelayTime)> {
        let (mut total, mut time) = (0, RelayTime::default());
        let mut in_flight = Round::default();
        loop {
            let (first, last) = in_flight.range();
            let fetch = async {
                let t = std::time::Instant::now();
                let rows = self
                    .outbox
                    .unpublished_outside(first, last, self.batch)
                    .await;
                (rows, t.elapsed())
            };
            let ((rows, fetch_time), settled) =
                tokio::join!(fetch, self.settle(std::mem::take(&mut in_flight)));
            let settled = settled?;
            time.add(&settled.time);
            time.fetch += fetch_time;
            total += settled.published;
            if settled.failed > 0 {
                if settled.published == 0 {
                    return Ok((total, time));
                }
                continue;
            }
            let rows = rows?;
            if rows.is_empty() || stop() {
                if settled.sent == 0 {
                    return Ok((total, time));
                }
                continue;
            }
            let t = std::time::Instant::now();
            in_flight = self.send(&rows);
            time.produce += t.elapsed();
        }
    }

    /// Hand `rows` to the producer, in order; stops early when its queue is full (the rest is
    /// read again next round).
    fn send(&self, rows: &Unpublished) -> Round {
        let mut round = Round::default();
        for row in rows.iter() {
            let record = FutureRecord::to(&self.topic)
                .key(row.lot_id)
                .payload(row.payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "event_id",
                    value: Some(row.event_id),
                }));
            match self.producer.send_result(record) {
                Ok(delivery) => round.pending.push((row.position, delivery)),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "relay queue full; finishing the round early");
                    break;
                }
            }
        }
        round
    }

    /// Await a round's acknowledgements in outbox order and mark the acknowledged prefix.
    async fn settle(&self, round: Round) -> Result<RelayReport> {
        let mut time = RelayTime::default();
        let sent = round.pending.len();
        let t = std::time::Instant::now();
        let mut acknowledged = Vec::with_capacity(sent);
        let mut failed = 0;
        for (id, delivery) in round.pending {
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
        self.outbox.mark_published(&acknowledged).await?;
        time.mark = t.elapsed();
        self.metrics.relayed.inc_by(acknowledged.len() as u64);
        Ok(RelayReport {
            sent,
            published: acknowledged.len(),
            failed,
            time,
        })
    }
}

/// Rows handed to the producer, waiting for the broker's acknowledgements.
#[derive(Default)]
struct Round {
    pending: Vec<(i64, DeliveryFuture)>,
}

impl Round {
    /// The first and last outbox positions in flight; `(1, 0)`, an empty range, when none are.
    fn range(&self) -> (i64, i64) {
        match (self.pending.first(), self.pending.last()) {
            (Some((first, _)), Some((last, _))) => (*first, *last),
            _ => (1, 0),
        }
    }
}
