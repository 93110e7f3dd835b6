//! The contracts every parkflow crate agrees on: the event types of topic `parkflow.events.v1`,
//! their validation, the star schema of the warehouse as Arrow schemas and ClickHouse DDL, and
//! the layout of the Parquet lake. This crate depends on no other parkflow crate.

pub mod band;
pub mod clickhouse;
pub mod convert;
pub mod event;
pub mod ids;
pub mod lake;
pub mod outputs;
pub mod star;
pub mod tables;
pub mod vehicle;

pub use band::{DayKind, TimeBand};
pub use event::{Cents, Event, EventPayload, LotDirectory, RejectReason, Rejection};
pub use ids::{EventId, LotId, MonthlyPassId, PaymentId, ReservationId, SessionId, SpotId, UserId};
pub use tables::Table;
pub use vehicle::{EntryMethod, VehicleType};

/// Kafka topic of the event stream (key = lot id).
pub const EVENTS_TOPIC: &str = "parkflow.events.v1";
/// Kafka topic of malformed events, with the reason.
pub const DEAD_LETTER_TOPIC: &str = "parkflow.events.dlq";
/// Kafka topic of published rates.
pub const RATES_TOPIC: &str = "parkflow.rates.v1";
