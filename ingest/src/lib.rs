//! Moving events from the outbox into the warehouse without losing or duplicating any.
//!
//! Embedded mode ([`embedded`]) reads the outbox directly into the Parquet lake. Sinks
//! ([`sink`]) make a batch and the source position it covers durable together; refused inputs
//! become dead letters with their reason. This crate computes no analytics.

pub mod embedded;
pub mod error;
pub mod kafka;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod validate;

pub use embedded::{EmbeddedIngest, IngestReport, OUTBOX_POSITION};
pub use error::{Error, Result};
pub use metrics::IngestMetrics;
pub use source::Outbox;

/// Where a batch may be stopped on purpose, to prove that recovery from a crash there is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After this many data files of the batch were written (none committed).
    AfterFiles(usize),
    /// All files written, manifest not yet replaced.
    BeforeCommit,
    /// Manifest replaced; the process dies before doing anything else.
    AfterCommit,
}
