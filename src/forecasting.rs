//! `parkflow forecast backtest`: the forecast's rolling-origin backtest on the lake, on an
//! imported occupancy CSV, or on weeks of simulated demand.

use anyhow::Context;
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
}

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
        s
    }
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
            both_measures(&hours, test_days)
        }
        Source::Csv(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let (series, import) = import_occupancy_csv(std::io::BufReader::new(file))
                .with_context(|| format!("importing {}", path.display()))?;
            let b = backtest(&series, test_days).context("backtest")?;
            Ok(Report {
                import: Some(import.summary()),
                backtests: vec![b],
            })
        }
        Source::Simulated { weeks, lots, seed } => {
            let hours = simulated_hours(*weeks, *lots, *seed);
            both_measures(&hours, test_days)
        }
    }
}

fn both_measures(hours: &[LotHour], test_days: usize) -> anyhow::Result<Report> {
    let backtests = [Measure::Arrivals, Measure::Occupancy]
        .into_iter()
        .map(|m| backtest(&Series::from_lot_hours(hours, m), test_days))
        .collect::<Result<Vec<_>, _>>()
        .context("backtest")?;
    Ok(Report {
        import: None,
        backtests,
    })
}

/// Hourly lot series of `weeks` of simulated demand for `lots` lots at their default prices.
pub fn simulated_hours(weeks: u32, lots: usize, seed: u64) -> Vec<LotHour> {
    let cfg = SimConfig {
        seed,
        lots,
        days: weeks * 7,
        ..SimConfig::default()
    };
    let plans: Vec<(LotId, LotPlan)> = numbered_lots(&cfg);
    let defaults: Vec<i64> = plans.iter().map(|(_, p)| p.default_cents).collect();
    let (all, _, _) = arrivals(&cfg, &plans, |lot, _, _| defaults[(lot.0 - 1) as usize]);
    parkflow_simulator::history::lot_hours(&cfg, &plans, &all)
}
