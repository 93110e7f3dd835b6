//! `parkflow forecast backtest`: the forecast's rolling-origin backtest on the lake, on an
//! imported occupancy CSV, or on weeks of simulated demand.

use anyhow::Context;
use chrono::{DateTime, Utc};
use parkflow_forecast::driver::{
    DriverArrival, DriverBacktest, DriverModelConfig, backtest_drivers,
};
use parkflow_forecast::import::import_occupancy_csv;
use parkflow_forecast::{Backtest, LotModel, Measure, Series, Slot, backtest, held_out_days};
use parkflow_pricing::{BandKey, HourlyForecast};
use parkflow_simulator::scenario::{arrivals, numbered_lots};
use parkflow_simulator::{LotPlan, SimConfig};
use std::path::PathBuf;
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::LotHour;
use warehouse_schema::{DayKind, LotId, TimeBand};

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

/// Where a forecast command reads its history: the lake by default.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// An occupancy time-series CSV (`SystemCodeNumber,Capacity,Occupancy,LastUpdated`) to
    /// import and use instead of the lake.
    #[arg(long, conflicts_with = "simulate")]
    pub csv: Option<PathBuf>,
    /// Weeks of simulated demand instead of the lake.
    #[arg(long)]
    pub simulate: bool,
    /// Weeks to simulate.
    #[arg(long, default_value_t = 8, requires = "simulate")]
    pub weeks: u32,
    /// Lots to simulate.
    #[arg(long, default_value_t = 20, requires = "simulate")]
    pub lots: usize,
}

impl SourceArgs {
    /// The source these arguments name (simulated weeks with seed 42), or the lake at `lake`.
    pub fn source(self, lake: PathBuf) -> Source {
        match (self.csv, self.simulate) {
            (Some(path), _) => Source::Csv(path),
            (None, true) => Source::Simulated {
                weeks: self.weeks,
                lots: self.lots,
                seed: 42,
            },
            (None, false) => Source::Lake(lake),
        }
    }
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

fn csv_backtest(path: &std::path::Path, test_days: Option<usize>) -> anyhow::Result<Report> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let started = std::time::Instant::now();
    let (series, import) = import_occupancy_csv(std::io::BufReader::new(file))
        .with_context(|| format!("importing {}", path.display()))?;
    let took = started.elapsed().as_secs_f64();
    let test_days = test_days.unwrap_or_else(|| held_out_days(&series));
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

/// The occupancy series of `source`, with what the importer did for a CSV.
pub async fn occupancy_series(source: &Source) -> anyhow::Result<(Vec<Series>, Option<String>)> {
    series_of(source, Measure::Occupancy).await
}

/// The series of `source` that says whether a spot was free: for the lake and simulated weeks
/// the most vehicles present in each hour, for a CSV its readings.
pub async fn free_spot_series(source: &Source) -> anyhow::Result<(Vec<Series>, Option<String>)> {
    series_of(source, Measure::Peak).await
}

/// `measure` per lot-hour of the lake or simulated weeks; a CSV's readings whatever it is.
async fn series_of(
    source: &Source,
    measure: Measure,
) -> anyhow::Result<(Vec<Series>, Option<String>)> {
    match source {
        Source::Lake(dir) => {
            let hours = parkflow_pipeline::lot_hours(&Lake::new(dir.clone())).await?;
            anyhow::ensure!(
                !hours.is_empty(),
                "the lake at {} has no occupancy yet: run `parkflow report` after ingest",
                dir.display()
            );
            Ok((Series::from_lot_hours(&hours, measure), None))
        }
        Source::Csv(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let (series, import) = import_occupancy_csv(std::io::BufReader::new(file))
                    .with_context(|| format!("importing {}", path.display()))?;
                Ok((series, Some(import.summary())))
            })
            .await
            .context("the CSV import stopped")?
        }
        Source::Simulated { weeks, lots, seed } => {
            let (hours, _) = simulated_history(*weeks, *lots, *seed);
            Ok((Series::from_lot_hours(&hours, measure), None))
        }
    }
}

/// The reliability of the free-spot chances on `source`'s last `test_days` days.
pub async fn reliability_source(
    source: &Source,
    test_days: usize,
) -> anyhow::Result<(parkflow_forecast::Reliability, Option<String>)> {
    let (series, import) = free_spot_series(source).await?;
    let r = tokio::task::spawn_blocking(move || parkflow_forecast::reliability(&series, test_days))
        .await
        .context("the reliability backtest stopped")??;
    Ok((r, import))
}

/// Run the backtest of `source` over its last `test_days` days; `None`: a week, or what a short
/// history allows ([`held_out_days`]).
pub async fn backtest_source(source: &Source, test_days: Option<usize>) -> anyhow::Result<Report> {
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
    test_days: Option<usize>,
) -> anyhow::Result<Report> {
    let [arrivals, occupancy] =
        [Measure::Arrivals, Measure::Occupancy].map(|m| Series::from_lot_hours(hours, m));
    let test_days = test_days.unwrap_or_else(|| held_out_days(&arrivals));
    let backtests = [arrivals, occupancy]
        .iter()
        .map(|series| backtest(series, test_days))
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

/// How many weeks of hours make a band's sample where the model gives no forecast.
const SAMPLE_WEEKS: i64 = 3;

/// The observed days a lot needs before its next day is the model's: its weekly profile has
/// then seen every weekday twice.
const MODEL_MIN_DAYS: usize = 14;

/// The hourly occupancy forecast the forecast pricing policy prices on, made at `until`.
pub struct BandForecast {
    /// Each (lot, band, day kind)'s predicted occupancy ratio per hour.
    pub hourly: HourlyForecast,
    /// Lots whose next day comes from the linfa model (the rest: their recent weeks only).
    pub model_lots: usize,
    pub lots: usize,
}

/// The (lot, band, day kind) a local hour of a lot is priced in.
pub fn band_key(lot: LotId, local_hour: u32, local_weekday: u32) -> BandKey {
    (
        lot,
        TimeBand::of_local_hour(local_hour),
        // 0 = Monday, as chrono numbers them.
        u8::try_from(local_weekday)
            .ok()
            .and_then(|d| chrono::Weekday::try_from(d).ok())
            .map_or(DayKind::Weekday, DayKind::of),
    )
}

/// Each band's hours over the coming period, from the lake's lot-hours before `until`: the
/// linfa model's forecast of each lot's next 24 hours for the bands of that day's kind, and
/// for the other bands (and lots with less than two weeks observed, or where the fit fails)
/// the hours of the last three weeks as the sample the period is expected to look like.
pub fn band_forecast(hours: &[LotHour], until: DateTime<Utc>) -> BandForecast {
    let history: Vec<LotHour> = hours
        .iter()
        .filter(|h| h.hour_start < until)
        .cloned()
        .collect();
    let since = until - chrono::Duration::weeks(SAMPLE_WEEKS);
    let mut hourly = HourlyForecast::new();
    for h in history.iter().filter(|h| h.hour_start >= since) {
        hourly
            .entry(band_key(h.lot_id, h.local_hour, h.local_weekday))
            .or_default()
            .push(h.mean_occupancy);
    }
    let series = Series::from_lot_hours(&history, Measure::Occupancy);
    let mut model_lots = 0;
    for s in &series {
        let enough = s.observed() >= MODEL_MIN_DAYS * s.day();
        let (Ok(lot), true, true) = (s.key.parse().map(LotId), s.capacity > 0.0, enough) else {
            continue;
        };
        let Ok(model) = LotModel::fit(s, s.slots.len()) else {
            continue;
        };
        let next: Vec<Slot> = model.next_day(s);
        if next.is_empty() {
            continue;
        }
        let mut predicted = HourlyForecast::new();
        for slot in next {
            predicted
                .entry(band_key(lot, slot.slot_of_day, slot.weekday))
                .or_default()
                .push((slot.value.unwrap_or(0.0) / s.capacity).clamp(0.0, 1.0));
        }
        hourly.extend(predicted);
        model_lots += 1;
    }
    BandForecast {
        hourly,
        model_lots,
        lots: series.len(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_forecasts_the_next_day_and_the_recent_weeks_the_rest() {
        let mut hours = simulated_hours(4, 2, 7);
        // Lot 3 has two days of history: too little for the model, so its bands keep their sample.
        let young: Vec<LotHour> = hours
            .iter()
            .filter(|h| h.lot_id == LotId(1))
            .rev()
            .take(48)
            .map(|h| LotHour {
                lot_id: LotId(3),
                ..h.clone()
            })
            .collect();
        hours.extend(young);
        let until = hours.iter().map(|h| h.hour_start).max().unwrap() + chrono::Duration::hours(1);
        let f = band_forecast(&hours, until);
        assert_eq!((f.model_lots, f.lots), (2, 3));

        // Lot 1's next day: 24 forecast hours over the bands of its kind, each a ratio.
        let last = hours
            .iter()
            .filter(|h| h.lot_id == LotId(1))
            .max_by_key(|h| h.hour_start)
            .unwrap();
        let next_kind = band_key(LotId(1), 0, (last.local_weekday + 1) % 7).2;
        let of = |lot: LotId, kind: DayKind| -> Vec<&Vec<f64>> {
            f.hourly
                .iter()
                .filter(|((l, _, k), _)| *l == lot && *k == kind)
                .map(|(_, v)| v)
                .collect()
        };
        let predicted = of(LotId(1), next_kind);
        assert_eq!(predicted.iter().map(|v| v.len()).sum::<usize>(), 24);
        assert!(
            predicted
                .iter()
                .flat_map(|v| v.iter())
                .all(|o| (0.0..=1.0).contains(o))
        );
        assert!(
            predicted.iter().flat_map(|v| v.iter()).any(|o| *o > 0.1),
            "a busy hour"
        );
        // The other day kind: the recent weeks' hours.
        let other = if next_kind == DayKind::Weekday {
            DayKind::Weekend
        } else {
            DayKind::Weekday
        };
        assert!(of(LotId(1), other).iter().map(|v| v.len()).sum::<usize>() > 24);
        // The young lot: only its own two days, unforecast.
        assert_eq!(
            of(LotId(3), DayKind::Weekday)
                .iter()
                .chain(&of(LotId(3), DayKind::Weekend))
                .map(|v| v.len())
                .sum::<usize>(),
            48
        );
    }
}
