//! Rates back to the API over Kafka: pricing publishes a `RatesMessage` per lot to the rates
//! topic (key = lot id); every API process reads the topic in a group of its own and applies each
//! message through the same rate intake as `PUT /v1/lots/{id}/rates`. Applying is idempotent (an
//! identical rate is a no-op), so the HTTP path, the Kafka path, or both give the same table.
//!
//! A message that cannot be applied (bad JSON, unknown lot, invalid rate) goes to the dead-letter
//! topic with its reason and is committed past; a storage failure is returned and the message is
//! read again.

use super::KafkaConfig;
use crate::error::{Error, Result};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::future::Future;
use std::time::Duration;
use warehouse_schema::event::RatesMessage;

/// Why applying a message failed.
#[derive(Debug)]
pub enum ApplyError {
    /// The message itself is wrong (unknown lot, invalid rate): dead-letter it.
    Refused(String),
    /// Retry later (the database is down, …).
    Retry(String),
}

/// Publishes rate updates for the API to pick up.
pub struct RatesPublisher {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for RatesPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatesPublisher")
            .field("topic", &self.topic)
            .finish()
    }
}

impl RatesPublisher {
    pub fn new(cfg: &KafkaConfig) -> Result<Self> {
        Ok(Self {
            producer: super::relay::reliable_producer(cfg)?,
            topic: cfg.rates_topic.clone(),
        })
    }

    /// Publish `message` and wait for the broker's acknowledgement.
    pub async fn publish(&self, message: &RatesMessage) -> Result<()> {
        let payload = serde_json::to_string(message).expect("rates serialize");
        let key = message.lot_id.0.to_string();
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        Ok(())
    }
}

/// The API side: reads the rates topic and applies each message.
pub struct RatesConsumer {
    consumer: StreamConsumer,
    dlq: FutureProducer,
    topic: String,
    dlq_topic: String,
}

impl std::fmt::Debug for RatesConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatesConsumer")
            .field("topic", &self.topic)
            .finish()
    }
}

impl RatesConsumer {
    /// Join `group` (one per API deployment; each process reading every message is fine too,
    /// applying is idempotent) on the rates topic.
    pub fn new(cfg: &KafkaConfig, group: &str) -> Result<Self> {
        let consumer: StreamConsumer = cfg.consumer_client(group)?.create()?;
        consumer.subscribe(&[&cfg.rates_topic])?;
        Ok(Self {
            consumer,
            dlq: super::relay::reliable_producer(cfg)?,
            topic: cfg.rates_topic.clone(),
            dlq_topic: cfg.dlq_topic.clone(),
        })
    }

    /// Apply the messages that arrive within `wait`; returns how many were applied.
    pub async fn step<F, Fut>(&self, wait: Duration, mut apply: F) -> Result<usize>
    where
        F: FnMut(RatesMessage) -> Fut,
        Fut: Future<Output = std::result::Result<(), ApplyError>>,
    {
        let mut applied = 0;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(m) => m?,
                Err(_) => return Ok(applied),
            };
            let outcome =
                match serde_json::from_slice::<RatesMessage>(m.payload().unwrap_or_default()) {
                    Ok(message) => apply(message).await,
                    Err(e) => Err(ApplyError::Refused(format!("malformed_json: {e}"))),
                };
            match outcome {
                Ok(()) => applied += 1,
                Err(ApplyError::Refused(reason)) => {
                    tracing::warn!(kafka.offset = m.offset(), %reason, "rates message sent to the DLQ");
                    let source = format!("kafka:{}/{}@{}", self.topic, m.partition(), m.offset());
                    self.dlq
                        .send(
                            FutureRecord::to(&self.dlq_topic)
                                .key(m.key().unwrap_or_default())
                                .payload(m.payload().unwrap_or_default())
                                .headers(
                                    OwnedHeaders::new()
                                        .insert(Header {
                                            key: "reason",
                                            value: Some(reason.as_str()),
                                        })
                                        .insert(Header {
                                            key: "source",
                                            value: Some(source.as_str()),
                                        }),
                                ),
                            Duration::from_secs(30),
                        )
                        .await
                        .map_err(|(e, _)| Error::Kafka(e))?;
                }
                Err(ApplyError::Retry(reason)) => {
                    return Err(Error::Config(format!(
                        "rates not applied, will retry: {reason}"
                    )));
                }
            }
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(
                &self.topic,
                m.partition(),
                Offset::Offset(m.offset() + 1),
            )?;
            self.consumer.commit(&offsets, CommitMode::Sync)?;
        }
    }
}
