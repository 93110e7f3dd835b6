//! Outbox relay and warehouse sinks with exactly-once rows
