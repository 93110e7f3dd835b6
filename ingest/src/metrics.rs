//! Metrics of the ingest path.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Default)]
pub struct IngestMetrics {
    pub batches: Counter,
    pub events: Counter,
    pub dead_letters: Counter,
    /// Outbox rows written but not yet committed to the lake.
    pub lag: Gauge,
    /// Outbox rows the relay has published to Kafka.
    pub relayed: Counter,
    /// Messages of the events topic not yet consumed into the warehouse (sum over partitions of
    /// high watermark minus committed position, as the broker reports them).
    pub consumer_lag: Gauge,
    /// Messages sent to the dead-letter topic.
    pub dlq_messages: Counter,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("parkflow_ingest");
        r.register(
            "batches",
            "Batches committed to the lake",
            m.batches.clone(),
        );
        r.register("events", "Events committed to the lake", m.events.clone());
        r.register(
            "dead_letters",
            "Inputs refused and kept as dead letters",
            m.dead_letters.clone(),
        );
        r.register(
            "outbox_lag_events",
            "Outbox rows not yet in the lake",
            m.lag.clone(),
        );
        r.register(
            "relayed",
            "Outbox rows published to Kafka",
            m.relayed.clone(),
        );
        r.register(
            "kafka_consumer_lag_messages",
            "Messages of the events topic not yet in the warehouse",
            m.consumer_lag.clone(),
        );
        r.register(
            "dlq_messages",
            "Messages sent to the dead-letter topic",
            m.dlq_messages.clone(),
        );
        m
    }
}
