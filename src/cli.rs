//! The `parkflow` command line: its arguments and what each command runs.

mod bench;

use crate::demo::{self, DemoOptions};
use crate::{Config, serve, steps};
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use warehouse_schema::lake::Lake;

#[derive(Parser)]
#[command(
    name = "parkflow",
    version,
    about = "Parking operations: API, event pipeline, warehouse, forecasting and pricing"
)]
struct Cli {
    /// TOML configuration file (defaults, then this file, then PARKFLOW__* environment variables).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (operational database and lake); overrides the configuration.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole loop on embedded defaults and print a management summary.
    Demo {
        #[arg(long, default_value_t = 20)]
        lots: usize,
        /// Whole days of history before today (today runs up to the current hour).
        #[arg(long, default_value_t = 28)]
        days: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where the simulated world ends (RFC 3339); by default the current hour, so the
        /// data is today's for `report`, `serve` and the portal.
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Serve the API with embedded ingest and the scheduled jobs.
    Serve,
    /// The jobs `serve` schedules: list them, or run one now.
    Jobs {
        #[command(subcommand)]
        what: JobsCommand,
    },
    /// Accounts of the admin portal (`/admin`).
    Admin {
        #[command(subcommand)]
        what: AdminCommand,
    },
    /// Create or upgrade the operational database.
    Migrate,
    /// Move events from the outbox into the warehouse.
    Ingest {
        #[command(subcommand)]
        mode: IngestMode,
    },
    /// The ClickHouse warehouse.
    Warehouse {
        #[command(subcommand)]
        what: WarehouseCommand,
    },
    /// Refresh the derived tables, print the usage summary, and write the usage report of a
    /// period (HTML with charts, and CSV) for every lot or one.
    Report {
        /// First UTC day of the period (default: 30 days before `--to`).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// The UTC day after the period (default: the day after `--as-of`).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        #[arg(long)]
        lot: Option<i64>,
        /// Where the files go (default: `<data_dir>/reports/<from>_<to>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The instant the derived tables are built as of: stays still open then count as
        /// parked up to it (default: the end of the data, the lake's last event; now for an
        /// empty lake).
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
    },
    /// The arrival and occupancy forecast.
    Forecast {
        #[command(subcommand)]
        what: ForecastCommand,
    },
    /// Price every lot on recent occupancy and publish the changes to the API; or evaluate the
    /// pricing policies in a closed loop (`price evaluate`).
    Price {
        #[command(subcommand)]
        what: Option<PriceCommand>,
    },
    /// Measure throughput; prints the figures recorded in BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account. The password comes from `PARKFLOW_ADMIN_PASSWORD`, else from
    /// the first line of standard input (never from the command line, where `ps` shows it).
    Add {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Each job and its schedule.
    List,
    /// Run one job now (with retries) and print its run record.
    Run { name: String },
    /// The last recorded runs (start, status, attempt, duration, rows).
    Runs {
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
}

#[derive(Subcommand)]
enum PriceCommand {
    /// Static, SFpark step and forecast-aware pricing on the same simulated weeks (elastic
    /// demand): time in the 60–80 % band, turn-aways, revenue and price volatility per policy.
    Evaluate {
        #[arg(long, default_value_t = 8)]
        weeks: u32,
        #[arg(long, default_value_t = 20)]
        lots: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// What a policy would have done over the lake's recorded stays (thinned or grown by the
    /// price elasticity where its rates differ), next to what happened: per lot and overall.
    Replay {
        #[arg(long, value_enum)]
        policy: crate::replay::ReplayPolicy,
        /// Start of the period (default: 28 days before `--to`).
        #[arg(long)]
        from: Option<chrono::DateTime<Utc>>,
        /// End of the period (default: the end of the lake's data).
        #[arg(long)]
        to: Option<chrono::DateTime<Utc>>,
        #[arg(long)]
        lot: Option<i64>,
        /// Replay over an occupancy CSV (`SystemCodeNumber,Capacity,Occupancy,LastUpdated`)
        /// instead of the lake.
        #[arg(long, conflicts_with_all = ["from", "to", "lot"])]
        csv: Option<PathBuf>,
        /// The CSV's hourly rate (it records none), in cents.
        #[arg(long, default_value_t = 200, requires = "csv")]
        cents_per_hour: i64,
    },
}

#[derive(Subcommand)]
enum ForecastCommand {
    /// Rolling-origin backtest against persistence and same-slot-last-week: on the lake by
    /// default, on an occupancy CSV (`SystemCodeNumber,Capacity,Occupancy,LastUpdated`), or on
    /// simulated weeks.
    Backtest {
        #[command(flatten)]
        from: crate::forecasting::SourceArgs,
        /// Days held out at the end (default: a week, fewer when the history is shorter than
        /// nine days).
        #[arg(long)]
        test_days: Option<usize>,
    },
}

#[derive(Subcommand)]
enum IngestMode {
    /// Drain the outbox into the Parquet lake once (embedded mode).
    Drain,
    /// Publish outbox rows to the Kafka events topic (`kafka.brokers` must be set).
    Relay {
        /// Publish what is there now and stop, instead of running until interrupted.
        #[arg(long)]
        once: bool,
    },
    /// Consume the events topic into the lake (and ClickHouse when `clickhouse.url` is set).
    Consume {
        /// Consume until the topic has been idle for two seconds, then stop.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum WarehouseCommand {
    /// Create the ClickHouse database and the star schema's tables where missing.
    Migrate,
    /// Rebuild fact_stay and the lot, spot and user dimensions from the events.
    Refresh,
}

/// The `parkflow` command: parse the arguments, run the command, and report a failure on stderr
/// with a non-zero exit. It lives in the library, not the binary, so that the release build
/// compiles the commands' futures once (a binary would instantiate them again).
#[tokio::main]
pub async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARKFLOW_LOG")
                .unwrap_or_else(|_| "warn,parkflow=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        cfg = cfg.with_data_dir(dir);
    }
    match cli.command {
        Command::Demo {
            lots,
            days,
            seed,
            until,
        } => {
            anyhow::ensure!(lots > 0 && days > 0, "--lots and --days must be at least 1");
            let opts = DemoOptions {
                lots,
                days,
                seed,
                data_dir: cfg.data_dir.clone(),
                progress: true,
                end: until,
            };
            eprintln!("parkflow demo: writing to {}", opts.data_dir.display());
            let (outcome, timings) = demo::run(cfg, &opts).await?;
            print!("{}", demo::render(&outcome, &timings, &opts.data_dir));
        }
        Command::Serve => serve::serve(cfg).await?,
        Command::Admin {
            what: AdminCommand::Add { email },
        } => {
            let password = match std::env::var("PARKFLOW_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let (state, _) = steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock)).await?;
            let credentials = parkflow_api::accounts::Credentials {
                email: email.clone(),
                password,
            };
            state.accounts.register_admin(credentials).await?;
            println!(
                "admin account {email} created: sign in at http://{}/admin",
                cfg.api.listen
            );
        }
        Command::Migrate => {
            let (state, _) = steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock)).await?;
            println!(
                "database {} is at the current schema ({} outbox events)",
                cfg.database_url(),
                state.services.store().outbox_len().await?
            );
        }
        Command::Ingest {
            mode: IngestMode::Drain,
        } => {
            let (state, metrics) =
                steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock)).await?;
            let mut ingest = steps::embedded_ingest(&cfg, &state, &metrics)?;
            let r = ingest.drain().await?;
            println!(
                "ingested {} events ({} dead letters) in {} batches; outbox position {}",
                r.events, r.dead_letters, r.batches, r.position
            );
        }
        Command::Ingest {
            mode: IngestMode::Relay { once },
        } => {
            let (state, metrics) =
                steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock)).await?;
            let relay = steps::relay(&cfg, &state, &metrics).await?;
            if once {
                println!("published {} outbox rows", relay.drain().await?);
            } else {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = stop.send(true);
                });
                relay
                    .run(std::time::Duration::from_millis(200), stopped)
                    .await?;
            }
        }
        Command::Ingest {
            mode: IngestMode::Consume { once },
        } => {
            let metrics = steps::Metrics {
                ingest: parkflow_ingest::IngestMetrics::default(),
            };
            let mut consumer = steps::warehouse_consumer(&cfg, &metrics).await?;
            let idle = std::time::Duration::from_secs(2);
            if once {
                let r = consumer.drain(idle).await?;
                println!(
                    "consumed {} messages: {} events, {} dead letters, {} replayed, {} duplicates, in {} batches",
                    r.messages, r.events, r.dead_letters, r.skipped, r.duplicates, r.batches
                );
            } else {
                loop {
                    tokio::select! {
                        r = consumer.step(idle) => { r?; }
                        _ = tokio::signal::ctrl_c() => break,
                    }
                }
            }
        }
        Command::Warehouse {
            what: WarehouseCommand::Migrate,
        } => {
            let sink = steps::required_clickhouse_sink(&cfg)?;
            sink.migrate().await?;
            println!(
                "ClickHouse database {} has the star schema",
                sink.database()
            );
        }
        Command::Warehouse {
            what: WarehouseCommand::Refresh,
        } => {
            let sink = steps::required_clickhouse_sink(&cfg)?;
            sink.refresh_derived().await?;
            println!(
                "{}: {} stays, {} lots",
                sink.database(),
                sink.rows(warehouse_schema::Table::FactStay).await?,
                sink.rows(warehouse_schema::Table::DimLot).await?
            );
        }
        Command::Report {
            from,
            to,
            lot,
            out,
            as_of,
        } => {
            let lake = Lake::new(cfg.lake_dir());
            let now = steps::report_as_of(&lake, as_of).await?;
            let r = parkflow_pipeline::refresh(&lake, now).await?;
            let s = parkflow_pipeline::usage_summary(&lake).await?;
            println!(
                "refreshed as of {}: {} stays ({} open), {} occupancy rows",
                r.as_of, r.stays, r.open_stays, r.occupancy_rows
            );
            println!("{}", serde_json::to_string_pretty(&s)?);
            let (from, to) = steps::report_days(now, from, to);
            anyhow::ensure!(from < to, "--from must be before --to");
            let lot = lot.map(warehouse_schema::LotId);
            let out =
                out.unwrap_or_else(|| cfg.data_dir.join("reports").join(format!("{from}_{to}")));
            let path = steps::usage_report(&lake, from, to, lot, &out).await?;
            println!("usage report: {}", path.display());
        }
        Command::Forecast {
            what: ForecastCommand::Backtest { from, test_days },
        } => {
            let source = from.source(cfg.lake_dir());
            let report = crate::forecasting::backtest_source(&source, test_days).await?;
            print!("{}", report.render());
        }
        Command::Jobs {
            what: JobsCommand::List,
        } => print!("{}", serve::list_jobs(&cfg).await?),
        Command::Jobs {
            what: JobsCommand::Run { name },
        } => print!("{}", serve::run_job(&cfg, &name).await?),
        Command::Jobs {
            what: JobsCommand::Runs { last },
        } => print!("{}", serve::recorded_runs(&cfg, last)?),
        Command::Price {
            what: Some(PriceCommand::Evaluate { weeks, lots, seed }),
        } => {
            if weeks < 3 {
                anyhow::bail!(
                    "--weeks must be at least 3 (one at default prices, then two priced)"
                );
            }
            let e = crate::pricing_eval::evaluate(crate::pricing_eval::EvalOptions {
                weeks,
                lots,
                seed,
            });
            print!("{}", e.render());
        }
        Command::Price {
            what:
                Some(PriceCommand::Replay {
                    policy,
                    from,
                    to,
                    lot,
                    csv,
                    cents_per_hour,
                }),
        } => {
            let chosen: Box<dyn parkflow_pricing::PricingPolicy + Send + Sync> = match policy {
                crate::replay::ReplayPolicy::Static => Box::new(parkflow_pricing::StaticPricing),
                crate::replay::ReplayPolicy::Step => Box::new(cfg.pricing.step.clone()),
                crate::replay::ReplayPolicy::Forecast => Box::new(cfg.pricing.forecast_policy()),
            };
            if let Some(path) = csv {
                let source = crate::forecasting::Source::Csv(path);
                let (series, _) = crate::forecasting::occupancy_series(&source).await?;
                let r = crate::replay::replay_series(&series, cents_per_hour, chosen.as_ref())?;
                print!("{}", r.render());
                return Ok(());
            }
            let (state, _) = steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock)).await?;
            let lake = Lake::new(cfg.lake_dir());
            let to = match to {
                Some(t) => t,
                None => parkflow_pipeline::data_end(&lake)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the lake has no events to replay"))?,
            };
            let from = from.unwrap_or(to - Duration::days(28));
            let r = crate::replay::replay(
                &state,
                &lake,
                (from, to),
                lot.map(warehouse_schema::LotId),
                chosen.as_ref(),
            )
            .await?;
            print!("{}", r.render());
        }
        Command::Price { what: None } => {
            let (state, _) = steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock)).await?;
            let lake = Lake::new(cfg.lake_dir());
            let now = Utc::now();
            let sink = steps::rates_sink(&cfg, &state)?;
            let priced = steps::price_and_publish(
                &cfg,
                &state,
                sink.as_ref(),
                &lake,
                (now - Duration::days(cfg.jobs.pricing_window_days), now),
                now,
            )
            .await?;
            println!(
                "policy {}: published {} rate changes",
                priced.policy.as_str(),
                priced.changes.len()
            );
            for c in priced.changes {
                println!(
                    "lot {} {} {} {}: occupancy {:.1} %, {} → {} cents/h",
                    c.lot_id,
                    c.band,
                    c.day_kind,
                    c.vehicle_type,
                    100.0 * c.occupancy,
                    c.old_cents,
                    c.new_cents
                );
            }
        }
        Command::Bench { what } => bench::run(what, &cfg).await?,
    }
    Ok(())
}
