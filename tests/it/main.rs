//! Cross-crate integration tests: the demo loop end to end, ingest recovery from crashes, and
//! the jobs that `parkflow serve` schedules.

mod demo;
mod ingest;
mod serve;
mod services;
mod support;
