//! What a consumer's batches did and where their time went.

use crate::sink::parquet::WriteTime;
use std::time::Duration;

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
    /// Where the time went.
    pub time: BatchTime,
}

impl ConsumeReport {
    /// Add another batch's (or run's) counts and times to these.
    pub fn add(&mut self, r: &Self) {
        self.batches += r.batches;
        self.messages += r.messages;
        self.events += r.events;
        self.dead_letters += r.dead_letters;
        self.skipped += r.skipped;
        self.duplicates += r.duplicates;
        self.time.add(&r.time);
    }
}

/// Where a consumer's batches spent their time, phase by phase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchTime {
    /// Waiting for librdkafka with an empty queue (from the batch's first message on).
    pub receive: Duration,
    /// The rest of collecting the batch: each message taken from librdkafka's queue, decoded
    /// and validated (no clock is read per message).
    pub decode: Duration,
    /// Relay re-sends dropped by event id.
    pub dedup: Duration,
    /// Dead letters to the DLQ topic, acknowledged.
    pub dlq: Duration,
    /// The ClickHouse insert (rows encoded and sent by a task of its own): what it took
    /// beyond the Parquet files written meanwhile.
    pub clickhouse: Duration,
    /// The Parquet sink: Arrow build (while collecting), Parquet encode and files (on a thread
    /// of their own, beside the decoding), manifest.
    pub parquet: WriteTime,
    /// Waiting for the Parquet files once the batch was collected and its dead letters sent.
    pub parquet_wait: Duration,
    /// The offsets committed to Kafka.
    pub commit: Duration,
}

impl BatchTime {
    fn add(&mut self, o: &Self) {
        self.receive += o.receive;
        self.decode += o.decode;
        self.dedup += o.dedup;
        self.dlq += o.dlq;
        self.clickhouse += o.clickhouse;
        self.parquet.arrow += o.parquet.arrow;
        self.parquet.encode += o.parquet.encode;
        self.parquet.manifest += o.parquet.manifest;
        self.parquet_wait += o.parquet_wait;
        self.commit += o.commit;
    }

    /// Each phase's time and share of the total, in one line; the Parquet encoding, which
    /// runs beside the others, last and apart.
    pub fn breakdown(&self) -> String {
        let phases = [
            ("receive", self.receive),
            ("decode+validate", self.decode),
            ("dedup", self.dedup),
            ("arrow", self.parquet.arrow),
            ("dlq", self.dlq),
            ("waiting for parquet files", self.parquet_wait),
            ("clickhouse", self.clickhouse),
            ("manifest", self.parquet.manifest),
            ("commit", self.commit),
        ];
        let total: f64 = phases.iter().map(|(_, d)| d.as_secs_f64()).sum();
        let phases = phases
            .iter()
            .filter(|(_, d)| !d.is_zero())
            .map(|(name, d)| {
                format!(
                    "{name} {:.2} s ({:.0}%)",
                    d.as_secs_f64(),
                    100.0 * d.as_secs_f64() / total.max(1e-9)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{phases}; beside them, on the Parquet thread: encode+files {:.2} s",
            self.parquet.encode.as_secs_f64()
        )
    }
}
