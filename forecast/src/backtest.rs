//! Rolling-origin backtest: every observed slot of the last `test_days` days is a forecast
//! origin; from each, the model (refitted at the start of each test day on everything before
//! it) forecasts every horizon up to a day ahead. Scored next to two baselines on exactly the
//! same (origin, target) pairs:
//! - persistence: the value at the origin;
//! - seasonal naive: the same slot one week before the target (one day before while the history
//!   is shorter than a week; the report counts how often).

use crate::model::LotModel;
use crate::series::{Measure, Series};
use crate::{Error, Result};
use std::fmt::Write;

/// Error figures of one method at one horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    pub n: usize,
    pub mae: f64,
    pub rmse: f64,
    /// MAE in percentage points of capacity.
    pub mae_pp: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: usize,
    abs: f64,
    sq: f64,
    pp: f64,
}

impl Sums {
    fn add(&mut self, error: f64, capacity: f64) {
        self.n += 1;
        self.abs += error.abs();
        self.sq += error * error;
        self.pp += 100.0 * error.abs() / capacity.max(1.0);
    }

    fn scores(&self) -> Scores {
        let n = self.n.max(1) as f64;
        Scores {
            n: self.n,
            mae: self.abs / n,
            rmse: (self.sq / n).sqrt(),
            mae_pp: self.pp / n,
        }
    }
}

/// The three methods at one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonRow {
    pub horizon_slots: usize,
    pub minutes: u32,
    pub model: Scores,
    pub persistence: Scores,
    pub seasonal: Scores,
}

impl HorizonRow {
    /// The better baseline by MAE.
    pub fn best_baseline(&self) -> (&'static str, Scores) {
        if self.persistence.mae <= self.seasonal.mae {
            ("persistence", self.persistence)
        } else {
            ("same slot last week", self.seasonal)
        }
    }

    /// Model MAE over the best baseline's (the goal is ≤ 0.8 at one hour ahead).
    pub fn ratio_to_best_baseline(&self) -> f64 {
        self.model.mae / self.best_baseline().1.mae.max(f64::EPSILON)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub measure: Measure,
    pub slot_minutes: u32,
    pub test_days: usize,
    pub lots: usize,
    /// Series left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Pairs whose seasonal baseline had to use the day before (less than a week of history).
    pub seasonal_fallbacks: usize,
    /// Every horizon from one slot to a day.
    pub rows: Vec<HorizonRow>,
}

impl Backtest {
    /// The name and scores of the better baseline at `row`, naming the day-before fallback when
    /// the history was too short for last week's figure.
    pub fn best_baseline(&self, row: &HorizonRow) -> (&'static str, Scores) {
        match row.best_baseline() {
            ("persistence", scores) => ("persistence", scores),
            (_, scores) if self.seasonal_fallbacks > 0 => (
                "same slot the day before: less than a week of history",
                scores,
            ),
            best => best,
        }
    }

    /// The row `minutes` ahead, if that is a whole number of slots.
    pub fn at_minutes(&self, minutes: u32) -> Option<&HorizonRow> {
        self.rows.iter().find(|r| r.minutes == minutes)
    }

    /// The report table: the usual horizons, three methods, MAE / RMSE / MAE in pp of capacity.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} per {}-minute slot: {} lots, last {} days, rolling origin (refit daily)",
            self.measure.name(),
            self.slot_minutes,
            self.lots,
            self.test_days
        );
        let _ = writeln!(
            s,
            "{:>8} {:>8} | {:>22} | {:>22} | {:>22} | {:>6}",
            "ahead",
            "pairs",
            "linfa model MAE/RMSE/pp",
            "persistence",
            "same slot last week",
            "ratio"
        );
        let cell = |x: Scores| format!("{:.2} / {:.2} / {:.1}", x.mae, x.rmse, x.mae_pp);
        for minutes in [30, 60, 180, 360, 720, 1440] {
            if let Some(r) = self.at_minutes(minutes) {
                let _ = writeln!(
                    s,
                    "{:>8} {:>8} | {:>22} | {:>22} | {:>22} | {:>6.2}",
                    ahead(minutes),
                    r.model.n,
                    cell(r.model),
                    cell(r.persistence),
                    cell(r.seasonal),
                    r.ratio_to_best_baseline()
                );
            }
        }
        if self.seasonal_fallbacks > 0 {
            let _ = writeln!(
                s,
                "(less than a week of history: {} pairs used the same slot the day before)",
                self.seasonal_fallbacks
            );
        }
        for (key, why) in &self.skipped {
            let _ = writeln!(s, "skipped {key}: {why}");
        }
        s
    }
}

fn ahead(minutes: u32) -> String {
    if minutes.is_multiple_of(60) {
        format!("{} h", minutes / 60)
    } else {
        format!("{minutes} min")
    }
}

/// Days to hold out when none are asked for: a week, so that every weekday is scored once and
/// the figure does not hang on the weekday the data happens to end on (one day is 24 origins a
/// lot, and which of the baselines wins it is a coin toss); fewer when even the longest series
/// cannot spare a week and keep the two days [`backtest`] learns from.
pub fn held_out_days(series: &[Series]) -> usize {
    let days = series
        .iter()
        .map(|s| s.slots.len() / s.day().max(1))
        .max()
        .unwrap_or(0);
    days.saturating_sub(2).clamp(1, 7)
}

/// Backtest every series (all of one measure and slot length) over its last `test_days` days.
pub fn backtest(series: &[Series], test_days: usize) -> Result<Backtest> {
    let Some(first) = series.first() else {
        return Err(Error::NotEnoughHistory("no series".into()));
    };
    let day = first.day();
    if test_days == 0 {
        return Err(Error::NotEnoughHistory(
            "test_days must be at least 1".into(),
        ));
    }
    let mut model = vec![Sums::default(); day];
    let mut persistence = vec![Sums::default(); day];
    let mut seasonal = vec![Sums::default(); day];
    let (mut lots, mut skipped, mut fallbacks) = (0, Vec::new(), 0);
    for s in series {
        if s.day() != day || s.measure != first.measure {
            return Err(Error::NotEnoughHistory(format!(
                "series {} differs in slot length or measure",
                s.key
            )));
        }
        let test = test_days * day;
        // At least two days to learn from before the first origin.
        if s.slots.len() < test + 2 * day {
            skipped.push((
                s.key.clone(),
                format!(
                    "{} days of slots, need {}",
                    s.slots.len() / day,
                    test_days + 2
                ),
            ));
            continue;
        }
        lots += 1;
        let split = s.slots.len() - test;
        for d in 0..test_days {
            let day_start = split + d * day;
            let fitted = LotModel::fit(s, day_start)?;
            // The last slot before the day is an origin too: it forecasts the day's first slot.
            for origin in day_start - 1..day_start + day - 1 {
                let Some(now) = s.value(origin) else {
                    continue;
                };
                for h in 1..=day {
                    let target = origin + h;
                    let Some(actual) = s.value(target) else {
                        continue;
                    };
                    let naive = target
                        .checked_sub(s.week())
                        .and_then(|i| s.value(i))
                        .map(|v| (v, false))
                        .or_else(|| s.value(target - day).map(|v| (v, true)));
                    let (Some((naive, fallback)), Some(predicted)) =
                        (naive, fitted.predict(s, origin, h))
                    else {
                        continue;
                    };
                    fallbacks += usize::from(fallback);
                    model[h - 1].add(predicted - actual, s.capacity);
                    persistence[h - 1].add(now - actual, s.capacity);
                    seasonal[h - 1].add(naive - actual, s.capacity);
                }
            }
        }
    }
    if lots == 0 {
        return Err(crate::none_long_enough(&skipped));
    }
    let slot_minutes = (24 * 60 / day) as u32;
    Ok(Backtest {
        measure: first.measure,
        slot_minutes,
        test_days,
        lots,
        skipped,
        seasonal_fallbacks: fallbacks,
        rows: (0..day)
            .map(|i| HorizonRow {
                horizon_slots: i + 1,
                minutes: (i as u32 + 1) * slot_minutes,
                model: model[i].scores(),
                persistence: persistence[i].scores(),
                seasonal: seasonal[i].scores(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Slot;

    /// Hourly arrivals with a weekday peak, quiet weekends and deterministic noise.
    fn series(first_weekday: usize, days: usize, noise: impl Fn(usize) -> f64) -> Series {
        Series {
            key: "1".into(),
            capacity: 100.0,
            slots_per_day: 24,
            measure: Measure::Arrivals,
            slots: (0..days * 24)
                .map(|i| {
                    let hour = (i % 24) as u32;
                    let weekday = ((first_weekday + i / 24) % 7) as u32;
                    let base = if weekday >= 5 {
                        2.0
                    } else if (7..10).contains(&hour) {
                        30.0
                    } else {
                        5.0
                    };
                    Slot {
                        slot_of_day: hour,
                        weekday,
                        value: Some((base + noise(i)).max(0.0)),
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn beats_both_baselines_on_a_noisy_weekly_pattern() {
        // Six weeks, the last one held out: the profile averages the noise away, while last
        // week's value carries last week's noise and persistence misses the morning ramp.
        let noise = |i: usize| ((i * 7919 + i * i * 31) % 11) as f64 - 5.0;
        let b = backtest(&[series(0, 42, noise)], 7).unwrap();
        let hour = b.at_minutes(60).unwrap();
        assert!(hour.model.n > 100, "{hour:?}");
        assert!(hour.ratio_to_best_baseline() < 0.8, "{}", b.table());
        assert_eq!(b.seasonal_fallbacks, 0);
        assert!(b.table().contains("1 h"), "{}", b.table());
    }

    #[test]
    fn a_short_history_falls_back_to_yesterday_and_says_so() {
        let b = backtest(&[series(1, 7, |_| 0.0)], 1).unwrap();
        assert!(b.seasonal_fallbacks > 0);
        assert!(b.table().contains("day before"), "{}", b.table());
        // Four identical weekdays: yesterday's figure is exact and names itself as such.
        let weekdays = backtest(&[series(0, 4, |_| 0.0)], 1).unwrap();
        let hour = weekdays.at_minutes(60).unwrap();
        let (name, scores) = weekdays.best_baseline(hour);
        assert!(name.starts_with("same slot the day before"), "{name}");
        assert!(scores.mae < 1e-9);
    }

    #[test]
    fn a_week_is_held_out_when_the_longest_history_can_spare_it() {
        let days = |lengths: &[usize]| {
            let all: Vec<Series> = lengths.iter().map(|&d| series(0, d, |_| 0.0)).collect();
            held_out_days(&all)
        };
        assert_eq!(days(&[28]), 7);
        assert_eq!(days(&[9]), 7);
        assert_eq!(days(&[8]), 6, "two days are left to learn from");
        assert_eq!(
            days(&[3, 28]),
            7,
            "the longest series decides; shorter ones are skipped"
        );
        assert_eq!(days(&[2]), 1, "the backtest then refuses it with a reason");
        assert_eq!(days(&[]), 1);
    }

    #[test]
    fn refuses_too_little_history_and_names_the_series() {
        let err = backtest(&[series(0, 2, |_| 0.0)], 1).unwrap_err();
        assert!(err.to_string().contains("1 ("), "{err}");
    }

    #[test]
    fn missing_slots_are_skipped_not_scored_as_zero() {
        let mut s = series(0, 21, |_| 0.0);
        for slot in s.slots.iter_mut().skip(20 * 24).take(12) {
            slot.value = None;
        }
        let b = backtest(&[s], 1).unwrap();
        // A perfectly repeating series: every scored pair is exact for the seasonal baseline.
        let hour = b.at_minutes(60).unwrap();
        assert!(hour.seasonal.mae < 1e-9, "{hour:?}");
        assert!(hour.model.n < 24, "origins without a reading are skipped");
    }
}
