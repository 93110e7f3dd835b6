//! `parkflow forecast backtest`: the forecast's rolling-origin backtest on the lake, on an
//! imported occupancy CSV, or on weeks of simulated demand.

use anyhow::Context;
use parkflow_forecast::driver::{
    DriverArrival, DriverBacktest, DriverModelConfig, backtest_drivers,
};
use parkflow_forecast::import::import_occupancy_csv;
use parkflow_forecast::{Backtest, Measure, Series, backtest};
use parkflow_simulator::scenario::{arrivals, numbered_lots};
use parkflow_simulator::{LotPlan, SimConfig};
use std::path::PathBuf;
use warehouse_schema::LotId;
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::LotHour;

/// Where the history comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Lake(PathBuf),
    Csv(PathBuf),
    /// The simulator's demand at each lot's default price, played against capacity in memory.
    Simulated {
        weeks: u32,
        lots: usize,
        seed: u64,
    },
}

/// The backtest tables of one source.
pub struct Report {
    /// What the importer did, for a CSV.
    pub import: Option<String>,
    pub backtests: Vec<Backtest>,
    /// The driver-level backtest, where the history knows its drivers (not a CSV).
    pub drivers: Option<DriverBacktest>,
}

/// Push a driver when their probability of arriving in the next hour is at least this.
pub const PUSH_THRESHOLD: f64 = 0.5;

impl Report {
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(import) = &self.import {
            s += &format!("import: {import}\n\n");
        }
        for b in &self.backtests {
            s += &b.table();
            s += "\n";
        }
        if let Some(d) = &self.drivers {
            s += &d.table();
        }
        s
    }
}

fn csv_backtest(path: &std::path::Path, test_days: usize) -> anyhow::Result<Report> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let started = std::time::Instant::now();
    let (series, import) = import_occupancy_csv(std::io::BufReader::new(file))
        .with_context(|| format!("importing {}", path.display()))?;
    let took = started.elapsed().as_secs_f64();
    let b = backtest(&series, test_days).context("backtest")?;
    Ok(Report {
        import: Some(format!(
            "read and cleaned in {took:.2} s; {}",
            import.summary()
        )),
        backtests: vec![b],
        drivers: None,
    })
}

/// Run the backtest of `source` over its last `test_days` days.
pub async fn backtest_source(source: &Source, test_days: usize) -> anyhow::Result<Report> {
    match source {
        Source::Lake(dir) => {
            let hours = parkflow_pipeline::lot_hours(&Lake::new(dir.clone())).await?;
            if hours.is_empty() {
                anyhow::bail!(
                    "the lake at {} has no occupancy yet: run `parkflow report` after ingest",
                    dir.display()
                );
            }
            let entries =
                parkflow_pipeline::driver_entries(&Lake::new(dir.clone()), chrono::Utc::now())
                    .await?;
            let drivers: Vec<DriverArrival> =
                entries.into_iter().map(DriverArrival::from).collect();
            both_measures(&hours, &drivers, test_days)
        }
        Source::Csv(path) => {
            // Reading, polars and the fits are blocking work: off the async threads (polars
            // also refuses to block inside a single-threaded runtime).
            let path = path.clone();
            tokio::task::spawn_blocking(move || csv_backtest(&path, test_days))
                .await
                .context("the CSV backtest stopped")?
        }
        Source::Simulated { weeks, lots, seed } => {
            let (hours, drivers) = simulated_history(*weeks, *lots, *seed);
            both_measures(&hours, &drivers, test_days)
        }
    }
}

fn both_measures(
    hours: &[LotHour],
    drivers: &[DriverArrival],
    test_days: usize,
) -> anyhow::Result<Report> {
    let backtests = [Measure::Arrivals, Measure::Occupancy]
        .into_iter()
        .map(|m| backtest(&Series::from_lot_hours(hours, m), test_days))
        .collect::<Result<Vec<_>, _>>()
        .context("backtest")?;
    Ok(Report {
        import: None,
        backtests,
        drivers: backtest_drivers(
            drivers,
            test_days,
            PUSH_THRESHOLD,
            DriverModelConfig::default(),
        ),
    })
}

/// Hourly lot series of `weeks` of simulated demand for `lots` lots at their default prices.
pub fn simulated_hours(weeks: u32, lots: usize, seed: u64) -> Vec<LotHour> {
    simulated_history(weeks, lots, seed).0
}

/// The same simulated weeks: the lots' hourly series, and every arrival of a known driver in
/// the lot's local time.
pub fn simulated_history(weeks: u32, lots: usize, seed: u64) -> (Vec<LotHour>, Vec<DriverArrival>) {
    let cfg = SimConfig {
        seed,
        lots,
        days: weeks * 7,
        ..SimConfig::default()
    };
    let plans: Vec<(LotId, LotPlan)> = numbered_lots(&cfg);
    let defaults: Vec<i64> = plans.iter().map(|(_, p)| p.default_cents).collect();
    let (all, _, _) = arrivals(&cfg, &plans, |lot, _, _| defaults[(lot.0 - 1) as usize]);
    let drivers = all
        .iter()
        .filter_map(|a| {
            let user = a.user_id?;
            let tz = plans[(a.lot_id.0 - 1) as usize].1.time_zone;
            Some(DriverArrival {
                driver: user.0.to_string(),
                lot: a.lot_id,
                local: a.at.with_timezone(&tz).naive_local(),
            })
        })
        .collect();
    (
        parkflow_simulator::history::lot_hours(&cfg, &plans, &all),
        drivers,
    )
}
