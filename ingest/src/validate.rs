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
    /// The index in the batch of each dead letter's payload (the Kafka path keeps the
    /// message's key with it).
    pub dead_at: Vec<usize>,
}

/// Validate `batch`: each item is where the payload came from (`outbox:42`,
/// `kafka:topic/3@1200`) and its bytes.
pub fn validate_batch<'a>(
    sink: &ParquetSink,
    batch: impl IntoIterator<Item = (String, &'a [u8])>,
) -> Validated {
    let mut pending_lots = HashSet::new();
    let mut out = Validated::default();
    for (index, (source, payload)) in batch.into_iter().enumerate() {
        match Event::from_json(payload, &sink.known_lots(&pending_lots)) {
            Ok(event) => {
                if let EventPayload::LotRegistered(_) = event.payload {
                    pending_lots.insert(event.lot_id.0);
                }
                out.events.push(event);
            }
            Err(rejection) => {
                tracing::warn!(source = %source, reason = %rejection, "event sent to dead letters");
                out.dead.push(DeadLetter {
                    source,
                    received_at: Utc::now(),
                    rejection,
                    payload: payload.to_vec(),
                });
                out.dead_at.push(index);
            }
        }
    }
    out
}
