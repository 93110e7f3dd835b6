//! The distributed path: the relay publishes outbox rows to Kafka ([`relay`]); a consumer group
//! moves them into the warehouse sinks ([`consume`]).
//!
//! Delivery is at least once at every hop; rows are exactly once because each sink is idempotent:
//! the Parquet manifest commits the consumed offsets with the files (a replayed offset below the
//! committed one is skipped), and ClickHouse collapses replays on `event_id`.

pub mod consume;
pub mod rates;
pub mod relay;

use crate::error::{Error, Result};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

/// Where the events go and how the consumer batches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`; empty means Kafka is not used (embedded mode).
    pub brokers: String,
    pub events_topic: String,
    pub dlq_topic: String,
    pub rates_topic: String,
    pub group_id: String,
    /// Partitions of topics parkflow creates (existing topics are used as they are).
    pub partitions: i32,
    /// Messages per consumer batch (one commit of every sink). 50,000 by default: each batch
    /// is one ClickHouse insert (ClickHouse asks for inserts of 10,000–100,000 rows; every
    /// insert makes a part to merge), one set of Parquet files and one Kafka commit. Against
    /// 20,000 it took → Parquet + ClickHouse from 159k to 189k events/s in the bench.
    pub batch_size: usize,
    /// Longest wait for a batch to fill before it is written anyway.
    pub batch_linger_ms: u64,
    /// Outbox rows per relay round (at most [`relay::MAX_ROUND`]).
    pub relay_batch: i64,
    /// Messages the producer may put in one record batch (`batch.num.messages`). The tests
    /// produce with the default too; nothing in parkflow asks the broker for a high watermark
    /// (ListOffsets), the lag comes from the consumer's fetch responses.
    pub producer_batch_messages: usize,
    /// How long the group waits for a silent member before rebalancing its partitions away
    /// (`session.timeout.ms`; Kafka brokers accept 6,000 and up by default). Shorter: a dead
    /// consumer's partitions move sooner, and joins are quicker on brokers that wait on it.
    pub session_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            events_topic: "parkflow.events.v1".into(),
            dlq_topic: "parkflow.events.dlq".into(),
            rates_topic: "parkflow.rates.v1".into(),
            group_id: "parkflow-warehouse".into(),
            partitions: 6,
            batch_size: 50_000,
            batch_linger_ms: 500,
            relay_batch: 20_000,
            producer_batch_messages: 10_000,
            session_timeout_ms: 10_000,
        }
    }
}

impl KafkaConfig {
    pub fn is_enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    fn client(&self) -> Result<ClientConfig> {
        if !self.is_enabled() {
            return Err(Error::Config("kafka.brokers is empty".into()));
        }
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("log_level", "4")
            .set("socket.keepalive.enable", "true");
        Ok(c)
    }

    /// [`client`](Self::client) for a consumer in `group`, committing its offsets itself.
    fn consumer_client(&self, group: &str) -> Result<ClientConfig> {
        let mut c = self.client()?;
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 5).max(100).to_string(),
            )
            // When a partition's prefetch queue is full, librdkafka postpones its next fetch by
            // this much (1 s by default): a consumer busy with a batch then came back to an
            // empty queue and waited, with both cores idle (stop 28: 3.5–5 s of a 9.4 s run).
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
        Ok(c)
    }

    /// Create the events, dead-letter and rates topics where missing (brokers that do not
    /// auto-create topics need this; existing topics are left alone).
    pub async fn ensure_topics(&self) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client()?.create()?;
        let topics: Vec<NewTopic<'_>> = [&self.events_topic, &self.dlq_topic, &self.rates_topic]
            .into_iter()
            .map(|t| NewTopic::new(t, self.partitions, TopicReplication::Fixed(1)))
            .collect();
        for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::Config(format!(
                        "cannot create topic {topic}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// How long a consumer's prefetch waits once its queue is full before fetching again.
const FETCH_QUEUE_BACKOFF_MS: u32 = 10;

/// The manifest key under which a partition's next offset is committed.
pub fn position_key(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}
