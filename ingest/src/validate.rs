//! One validation of a batch for every ingest path (the embedded outbox drain and the Kafka
//! consumer): each payload parsed against the event contract and the lots the lake knows, plus
//! those registered earlier in the same batch; a refused payload becomes a dead letter with its
//! reason and its bytes as received.

use crate::sink::DeadLetter;
use crate::sink::parquet::ParquetSink;
use chrono::Utc;
use std::collections::HashSet;
use warehouse_schema::{Event, EventPayload};

/// A batch split into its events and its dead letters.
#[derive(Debug, Default)]
pub struct Validated {
    pub events: Vec<Event>,
    pub dead: Vec<DeadLetter>,
}

/// A batch being validated payload by payload, as its items arrive (the Kafka consumer
/// validates each message straight out of librdkafka's buffer, without a copy).
pub struct Validator<'s> {
    sink: &'s ParquetSink,
    pending_lots: HashSet<i64>,
    out: Validated,
}

impl<'s> Validator<'s> {
    /// A validator for a batch of about `expected` payloads.
    pub fn new(sink: &'s ParquetSink, expected: usize) -> Self {
        Self {
            sink,
            pending_lots: HashSet::new(),
            out: Validated {
                // A configured batch size is not trusted with an allocation of its own.
                events: Vec::with_capacity(expected.min(1 << 16)),
                dead: Vec::new(),
            },
        }
    }

    /// The lake the batch is validated against.
    pub fn sink(&self) -> &'s ParquetSink {
        self.sink
    }

    /// Validate one payload; `source` names where it came from (`outbox:42`,
    /// `kafka:topic/3@1200`) and is asked for only when it is refused. `false` when refused.
    pub fn push(&mut self, source: impl FnOnce() -> String, payload: &[u8]) -> bool {
        match Event::from_json(payload, &self.sink.known_lots(&self.pending_lots)) {
            Ok(event) => {
                if let EventPayload::LotRegistered(_) = event.payload {
                    self.pending_lots.insert(event.lot_id.0);
                }
                self.out.events.push(event);
                true
            }
            Err(rejection) => {
                let source = source();
                tracing::warn!(source = %source, reason = %rejection, "event sent to dead letters");
                self.out.dead.push(DeadLetter {
                    source,
                    received_at: Utc::now(),
                    rejection,
                    payload: payload.to_vec(),
                });
                false
            }
        }
    }

    /// The events accepted since the last take (dead letters stay until [`finish`](Self::finish)):
    /// the Kafka consumer hands a batch's events on in pieces while it decodes the rest.
    pub fn take_events(&mut self) -> Vec<Event> {
        let capacity = self.out.events.capacity();
        std::mem::replace(&mut self.out.events, Vec::with_capacity(capacity))
    }

    /// Events accepted and not yet taken.
    pub fn events_len(&self) -> usize {
        self.out.events.len()
    }

    pub fn finish(self) -> Validated {
        self.out
    }
}
