//! Warehouse sinks. Each takes validated events and dead letters and makes them durable together
//! with the source position they cover.

pub mod clickhouse;
pub mod parquet;

use chrono::{DateTime, Utc};
use warehouse_schema::Rejection;

/// An input the contract refused, kept with its reason and its original bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Where it came from, e.g. `outbox:42` or `kafka:parkflow.events.v1/3@1200`.
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub rejection: Rejection,
    pub payload: Vec<u8>,
}
