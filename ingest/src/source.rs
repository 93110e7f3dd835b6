//! The outbox as an ordered source: rows after a position, in position order. The table and
//! its statements belong to the `parkflow-outbox` crate, shared with the API that writes it.

pub use parkflow_outbox::{Outbox, OutboxRow, Unpublished};
