//! The parkflow binary's wiring: configuration, the commands, and the steps they share. Business
//! logic lives in the workspace crates; this crate only connects them.

pub mod bench;
pub mod bench_api;
pub mod bench_live;
pub mod bench_occupancy;
pub mod bench_reference;
pub mod cli;
pub mod config;
pub mod demo;
pub mod forecasting;
pub mod pricing_eval;
pub mod replay;
pub mod report;
pub mod serve;
pub mod steps;

pub use config::Config;
