//! `parkflow bench …`: the benchmark subcommands, their options and checks.

use crate::{Config, bench, bench_api, bench_live, bench_occupancy};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Outbox → Parquet ingest throughput.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 50_000)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        lots: i64,
        /// Through Kafka (`kafka.brokers`) into Parquet, and ClickHouse when `clickhouse.url`
        /// is set, next to the raw consume rate of the same topic.
        #[arg(long)]
        kafka: bool,
    },
    /// The API over HTTP on loopback: availability queries, then concurrent reservations.
    Api {
        /// Store to test (`postgres://…` for production figures); default: a fresh SQLite file.
        #[arg(long, default_value = "")]
        database_url: String,
        #[arg(long, default_value_t = 200)]
        spots: u32,
        #[arg(long, default_value_t = 2_000)]
        reservations: usize,
        /// How long to run the availability load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 10_000)]
        reserve_requests: usize,
        #[arg(long, default_value_t = 32)]
        reserve_connections: usize,
        /// PostgreSQL: the store's pool (the API's default unless given).
        #[arg(long, default_value_t = parkflow_api::store::POSTGRES_CONNECTIONS)]
        database_connections: u32,
    },
    /// Live availability streams: many open streams, gate entries, the time until every
    /// watcher of the lot has the update.
    Live {
        /// Store to test; default: a fresh SQLite file.
        #[arg(long, default_value = "")]
        database_url: String,
        #[arg(long, default_value_t = 1_000)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        lots: usize,
        #[arg(long, default_value_t = 200)]
        entries: usize,
    },
    /// The occupancy job on a generated year-scale lake, next to DuckDB on the same files
    /// (`scripts/bench-occupancy` installs DuckDB and runs this).
    Occupancy {
        #[arg(long, default_value_t = 100_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1_000)]
        lots: i64,
        #[arg(long, default_value_t = 200)]
        spots: i64,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Where the lake is written (and reused by the next run with the same sizes).
        #[arg(long, default_value = "target/bench/occupancy")]
        dir: PathBuf,
        /// A Python that has the `duckdb` package.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// How far the free-spot chances (`GET /v1/lots/{id}/arrival`) can be trusted: the
    /// reliability table and the Brier score against climatology, on the lake by default, on an
    /// occupancy CSV, or on simulated weeks.
    Arrival {
        #[command(flatten)]
        from: crate::forecasting::SourceArgs,
        /// Days scored at the end of each series.
        #[arg(long, default_value_t = 7)]
        test_days: usize,
    },
    /// The occupancy job alone on a lake, as `bench occupancy` runs it: figures as JSON.
    #[command(hide = true)]
    OccupancyJob {
        #[arg(long)]
        lake: PathBuf,
        #[arg(long)]
        as_of: DateTime<Utc>,
    },
}

/// Run the benchmark `what` and print its figures.
pub async fn run(what: BenchWhat, cfg: &Config) -> anyhow::Result<()> {
    match what {
        BenchWhat::Arrival { from, test_days } => {
            anyhow::ensure!(test_days > 0, "--test-days must be positive");
            let source = from.source(cfg.lake_dir());
            let started = std::time::Instant::now();
            let (r, import) = crate::forecasting::reliability_source(&source, test_days).await?;
            if let Some(import) = import {
                println!("import: {import}");
            }
            print!("{}", r.table());
            println!("took {:.1} s", started.elapsed().as_secs_f64());
        }
        BenchWhat::Ingest {
            events,
            batch,
            lots,
            kafka,
        } => {
            anyhow::ensure!(
                events > 0 && batch > 0 && lots > 0,
                "--events, --batch and --lots must be positive"
            );
            if kafka {
                println!(
                    "{}",
                    bench::ingest_kafka(events, lots, &cfg.kafka, &cfg.clickhouse).await?
                );
            } else {
                println!("{}", bench::ingest(events, batch, lots).await?);
            }
        }
        BenchWhat::Api {
            database_url,
            spots,
            reservations,
            seconds,
            connections,
            reserve_requests,
            reserve_connections,
            database_connections,
        } => {
            anyhow::ensure!(
                (20..=5_000).contains(&spots)
                    && seconds > 0
                    && connections > 0
                    && reserve_connections > 0
                    && (1..=1_000).contains(&database_connections),
                "--spots must be 20 to 5000; --seconds and the connection counts must be \
                 positive, --database-connections at most 1000"
            );
            let opts = bench_api::ApiBench {
                database_url,
                spots,
                reservations,
                seconds,
                connections,
                reserve_requests,
                reserve_connections,
                database_connections,
            };
            println!("{}", bench_api::api(opts).await?);
        }
        BenchWhat::Live {
            database_url,
            streams,
            lots,
            entries,
        } => {
            anyhow::ensure!(
                streams > 0 && (1..=1_000).contains(&lots) && (1..=200 * lots).contains(&entries),
                "--streams must be positive, --lots 1 to 1000, --entries 1 to 200 per lot"
            );
            let opts = bench_live::LiveBench {
                database_url,
                streams,
                lots,
                entries,
            };
            println!("{}", bench_live::live(opts).await?);
        }
        BenchWhat::Occupancy {
            events,
            lots,
            spots,
            days,
            dir,
            python,
        } => {
            anyhow::ensure!(
                events > 0 && lots > 0 && spots > 0 && days > 0,
                "--events, --lots, --spots and --days must be positive"
            );
            let opts = bench_occupancy::OccupancyBench {
                events,
                lots,
                spots,
                days,
                dir,
                python,
            };
            println!("{}", bench_occupancy::occupancy(opts).await?);
        }
        BenchWhat::OccupancyJob { lake, as_of } => {
            println!("{}", bench_occupancy::job(&lake, as_of).await?);
        }
    }
    Ok(())
}
