//! Cross-crate integration tests: the demo loop end to end, ingest recovery from crashes, the
//! distributed path through the real broker and ClickHouse, and the jobs `parkflow serve` runs.

mod app;
mod demo;
mod forecast;
mod gate;
mod ingest;
mod kafka;
mod layers;
mod portal;
mod pricing;
mod push;
mod report;
mod serve;
mod services;
mod support;
