//! The chance of finding a free spot at a lot at a time: the occupancy forecast with its own
//! error distribution, and the backtest that says whether those chances can be trusted.
//!
//! A [`FreeSpotModel`] holds the occupancy [`LotModel`] and, per horizon, the errors the same
//! kind of model made on the week before (fitted on what came before that week, scored from
//! every origin in it, as a share of capacity). The chance that a slot `h` ahead has a free
//! spot is the share of those errors under which the forecast would leave at least one spot
//! free: no normal curve is assumed, and a lot whose forecasts run high or low is corrected by
//! its own history.
//!
//! "A spot was free" is the slot's value at most capacity − 1. The model is fitted on the series
//! it is given: for the lake and simulated weeks the most vehicles present in each hour
//! (`Measure::Peak`: in the lake at the hour's quarter-hour marks), so a chance is that of a
//! spot free throughout the hour; for an imported CSV the slot's reading.
//!
//! [`reliability`] scores the chances on the last days of each series: it bins them and reports,
//! per bin, how often a spot was in fact free (the reliability table), and the Brier score
//! against climatology — the share of slots with a free spot at the same slot of day and day
//! kind in the history before each test day.

use crate::model::LotModel;
use crate::series::Series;
use crate::{Error, Result};
use std::fmt::Write;

/// Days of forecast errors a model keeps: two weeks when the history has them…
pub const CALIBRATION_DAYS: usize = 14;
/// …one at least.
const MIN_CALIBRATION_DAYS: usize = 7;
/// Days before the calibration days that the model scored on them learns from, at least.
const LEARNING_DAYS: usize = 2;

/// A lot's occupancy forecast with its error distribution by how far ahead and how full the
/// forecast is.
#[derive(Debug, Clone)]
pub struct FreeSpotModel {
    model: LotModel,
    capacity: f64,
    slots_per_hour: usize,
    /// Per horizon group and forecast level: errors (actual − predicted) as a share of
    /// capacity, sorted; and per horizon group all of them (for a level seen too seldom).
    errors: Vec<[Vec<f64>; LEVELS.len()]>,
    pooled: Vec<Vec<f64>>,
    /// The history's share of slots with a free spot, per slot of day and day kind.
    climatology: Climatology,
}

/// How much of a chance is the forecast's; the rest is the history's base rate at that slot
/// of day and day kind. Half each: on simulated weeks the blend's Brier score ties
/// climatology's where the forecast alone is worse (BENCHMARKS.md).
const FORECAST_WEIGHT: f64 = 0.5;

/// Horizon groups, by the hour ahead they end with: 1 h, 2–3 h, 4–6 h, 7–12 h, 13–24 h.
const HORIZON_HOURS: [usize; 5] = [1, 3, 6, 12, 24];
/// Forecast levels, by the share of capacity they start at: an error depends on how full the
/// forecast is (a lot forecast full can only be emptier than forecast).
const LEVELS: [f64; 4] = [0.0, 0.5, 0.8, 0.95];
/// Fewer errors than this at a level and its horizon group's pooled errors are used.
const MIN_ERRORS: usize = 30;

fn horizon_group(h: usize, slots_per_hour: usize) -> usize {
    let hours = h.div_ceil(slots_per_hour.max(1));
    HORIZON_HOURS
        .iter()
        .position(|&end| hours <= end)
        .unwrap_or(HORIZON_HOURS.len() - 1)
}

fn level(share: f64) -> usize {
    LEVELS.iter().rposition(|&from| share >= from).unwrap_or(0)
}

impl FreeSpotModel {
    /// Fit on the slots before `until`: the errors from the last [`CALIBRATION_DAYS`] days
    /// before it, the model on all of them.
    pub fn fit(series: &Series, until: usize) -> Result<Self> {
        let day = series.day();
        let until = until.min(series.slots.len());
        if until < (MIN_CALIBRATION_DAYS + LEARNING_DAYS) * day || series.capacity < 1.0 {
            return Err(Error::NotEnoughHistory(format!(
                "{}: a free-spot model needs {} days and a capacity",
                series.key,
                MIN_CALIBRATION_DAYS + LEARNING_DAYS
            )));
        }
        // Half the history for errors (one to two weeks), the rest to learn from.
        let days = until / day;
        let calibration = (days / 2)
            .clamp(MIN_CALIBRATION_DAYS, CALIBRATION_DAYS)
            .min(days - LEARNING_DAYS)
            * day;
        let start = until - calibration;
        let scored = LotModel::fit(series, start)?;
        let sph = series.slots_per_hour();
        let mut errors: Vec<[Vec<f64>; LEVELS.len()]> =
            vec![Default::default(); HORIZON_HOURS.len()];
        for origin in start - 1..until - 1 {
            for h in 1..=day {
                let target = origin + h;
                if target >= until {
                    break;
                }
                if let (Some(actual), Some(predicted)) =
                    (series.value(target), scored.predict(series, origin, h))
                {
                    let cell = level(predicted / series.capacity);
                    errors[horizon_group(h, sph)][cell]
                        .push((actual - predicted) / series.capacity);
                }
            }
        }
        let mut pooled = Vec::new();
        for group in &mut errors {
            let mut all: Vec<f64> = group.iter().flatten().copied().collect();
            all.sort_by(f64::total_cmp);
            pooled.push(all);
            for e in group.iter_mut() {
                e.sort_by(f64::total_cmp);
            }
        }
        Ok(Self {
            model: LotModel::fit(series, until)?,
            capacity: series.capacity,
            slots_per_hour: sph,
            errors,
            pooled,
            climatology: Climatology::of(series, until),
        })
    }

    /// The chance that the slot `h` (1..=a day) after `origin` has a free spot: the forecast
    /// there with its error distribution, blended with the history's base rate at that slot;
    /// `None` when the origin was not observed or the slot is beyond the series' calendar.
    pub fn chance(&self, series: &Series, origin: usize, h: usize) -> Option<f64> {
        let predicted = self.model.predict(series, origin, h)?;
        let slot = crate::model::label(series, origin + h);
        let base = self.climatology.share[cell(self.climatology.spd, &slot)];
        Some(FORECAST_WEIGHT * self.chance_at(predicted, h) + (1.0 - FORECAST_WEIGHT) * base)
    }

    /// The forecast's own chance of a free spot when the forecast `h` slots ahead is `predicted` vehicles:
    /// the share of the past errors at that horizon and level that leave a spot free, with half
    /// a case added either way so that no chance is ever quite 0 or 1.
    pub fn chance_at(&self, predicted: f64, h: usize) -> f64 {
        let group = horizon_group(h, self.slots_per_hour);
        let at_level = &self.errors[group][level(predicted / self.capacity)];
        let errs = if at_level.len() >= MIN_ERRORS {
            at_level.as_slice()
        } else {
            self.pooled[group].as_slice()
        };
        // Free: predicted + e·capacity ≤ capacity − 1, i.e. e ≤ (capacity − 1 − predicted)/capacity.
        let limit = (self.capacity - 1.0 - predicted) / self.capacity;
        let free = errs.partition_point(|e| *e <= limit);
        (free as f64 + 0.5) / (errs.len() as f64 + 1.0)
    }

    /// The forecast (vehicles) `h` slots after `origin`.
    pub fn occupancy(&self, series: &Series, origin: usize, h: usize) -> Option<f64> {
        self.model.predict(series, origin, h)
    }
}

/// One bin of the reliability table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bin {
    /// The chances in `[low, high)` (the last bin includes 1).
    pub low: f64,
    pub high: f64,
    pub n: usize,
    /// The mean chance given in the bin.
    pub mean_chance: f64,
    /// How often a spot was in fact free.
    pub free_share: f64,
}

/// How far the chances can be trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    pub slot_minutes: u32,
    pub test_days: usize,
    pub lots: usize,
    /// Forecasts scored (every origin of the test days, every horizon up to a day).
    pub n: usize,
    /// How often a spot was free in the test days.
    pub base_rate: f64,
    pub bins: Vec<Bin>,
    /// Mean squared error of the chances (0 is perfect).
    pub brier: f64,
    /// The same for climatology: the history's share of free slots at that slot of day and day
    /// kind.
    pub brier_climatology: f64,
    /// Series too short to score, with why.
    pub skipped: Vec<(String, String)>,
}

impl Reliability {
    /// 1 − Brier / climatology's Brier: above 0, the chances beat the base rates.
    pub fn skill(&self) -> f64 {
        1.0 - self.brier / self.brier_climatology.max(f64::EPSILON)
    }

    /// The table as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "free-spot chances: {} lots, {} test days, {} forecasts ({}-minute slots, 1 to 24 h ahead); a spot was free in {:.1} % of them",
            self.lots,
            self.test_days,
            self.n,
            self.slot_minutes,
            100.0 * self.base_rate
        );
        let _ = writeln!(s, "chance given    forecasts   mean chance   free in fact");
        for b in self.bins.iter().filter(|b| b.n > 0) {
            let _ = writeln!(
                s,
                "{:>4.0}–{:>3.0} %  {:>12}   {:>9.1} %   {:>10.1} %",
                100.0 * b.low,
                100.0 * b.high,
                b.n,
                100.0 * b.mean_chance,
                100.0 * b.free_share
            );
        }
        let _ = writeln!(
            s,
            "Brier score {:.4} against climatology {:.4}: skill {:+.3}",
            self.brier,
            self.brier_climatology,
            self.skill()
        );
        for (key, why) in &self.skipped {
            let _ = writeln!(s, "skipped {key}: {why}");
        }
        s
    }
}

/// Score the free-spot chances of every series over its last `test_days` days: each test day's
/// model is fitted on what came before it, and forecasts from every origin of the day, every
/// horizon up to a day ahead.
pub fn reliability(series: &[Series], test_days: usize) -> Result<Reliability> {
    const BINS: usize = 10;
    let Some(first) = series.first() else {
        return Err(Error::NotEnoughHistory("no series".into()));
    };
    if test_days == 0 {
        return Err(Error::NotEnoughHistory(
            "test_days must be at least 1".into(),
        ));
    }
    let day = first.day();
    let mut bins = vec![(0usize, 0.0f64, 0usize); BINS];
    let (mut brier, mut climate, mut n, mut free_n) = (0.0, 0.0, 0usize, 0usize);
    let (mut lots, mut skipped) = (0, Vec::new());
    for s in series {
        if s.day() != day {
            return Err(Error::NotEnoughHistory(format!(
                "series {} differs in slot length",
                s.key
            )));
        }
        let test = test_days * day;
        let need = test + (MIN_CALIBRATION_DAYS + LEARNING_DAYS) * day;
        if s.slots.len() < need || s.capacity < 1.0 {
            skipped.push((
                s.key.clone(),
                format!("{} days of slots, need {}", s.slots.len() / day, need / day),
            ));
            continue;
        }
        lots += 1;
        let split = s.slots.len() - test;
        for d in 0..test_days {
            let day_start = split + d * day;
            let model = FreeSpotModel::fit(s, day_start)?;
            let climatology = Climatology::of(s, day_start);
            for origin in day_start - 1..day_start + day - 1 {
                for h in 1..=day {
                    let target = origin + h;
                    let (Some(actual), Some(chance)) =
                        (s.value(target), model.chance(s, origin, h))
                    else {
                        continue;
                    };
                    let free = actual <= s.capacity - 1.0;
                    let outcome = f64::from(u8::from(free));
                    let base = climatology.at(s, target);
                    brier += (chance - outcome).powi(2);
                    climate += (base - outcome).powi(2);
                    n += 1;
                    free_n += usize::from(free);
                    let b = ((chance * BINS as f64) as usize).min(BINS - 1);
                    bins[b].0 += 1;
                    bins[b].1 += chance;
                    bins[b].2 += usize::from(free);
                }
            }
        }
    }
    if lots == 0 {
        return Err(crate::none_long_enough(&skipped));
    }
    let per = |sum: f64| sum / n.max(1) as f64;
    Ok(Reliability {
        slot_minutes: (24 * 60 / day) as u32,
        test_days,
        lots,
        n,
        base_rate: per(free_n as f64),
        bins: bins
            .iter()
            .enumerate()
            .map(|(i, &(count, sum, free))| Bin {
                low: i as f64 / BINS as f64,
                high: (i + 1) as f64 / BINS as f64,
                n: count,
                mean_chance: sum / count.max(1) as f64,
                free_share: free as f64 / count.max(1) as f64,
            })
            .collect(),
        brier: per(brier),
        brier_climatology: per(climate),
        skipped,
    })
}

/// The history's share of slots with a free spot, per slot of day and day kind.
#[derive(Debug, Clone)]
struct Climatology {
    spd: usize,
    share: Vec<f64>,
}

impl Climatology {
    fn of(s: &Series, until: usize) -> Self {
        let spd = s.slots_per_day;
        let (mut free, mut all) = (vec![0usize; 2 * spd], vec![0usize; 2 * spd]);
        for slot in &s.slots[..until] {
            if let Some(v) = slot.value {
                let c = cell(spd, slot);
                all[c] += 1;
                free[c] += usize::from(v <= s.capacity - 1.0);
            }
        }
        let overall = free.iter().sum::<usize>() as f64 / all.iter().sum::<usize>().max(1) as f64;
        let share = (0..2 * spd)
            .map(|c| {
                if all[c] > 0 {
                    free[c] as f64 / all[c] as f64
                } else {
                    overall
                }
            })
            .collect();
        Self { spd, share }
    }

    fn at(&self, s: &Series, i: usize) -> f64 {
        self.share[cell(self.spd, &crate::model::label(s, i))]
    }
}

fn cell(spd: usize, s: &crate::series::Slot) -> usize {
    s.slot_of_day as usize + if s.is_weekend() { spd } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{Measure, Slot};

    /// An hourly lot of 10 spots that fills to 10 from 9 to 16 on most weekdays (two in three,
    /// drawn per day; Mondays always) and stands at 3 otherwise, with a little noise, from a
    /// fixed generator.
    fn busy_weekdays(days: usize) -> Series {
        let mut state = 7u64;
        let mut draw = move |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let busy_day: Vec<bool> = (0..days).map(|d| d % 7 == 0 || draw(3) > 0).collect();
        let slots = (0..days * 24)
            .map(|i| {
                let (hour, weekday) = ((i % 24) as u32, ((i / 24) % 7) as u32);
                let noise = draw(3) as f64 - 1.0;
                let busy = weekday < 5 && busy_day[i / 24] && (9..16).contains(&hour);
                let v = if busy { 10.0 } else { (3.0 + noise).max(0.0) };
                Slot {
                    slot_of_day: hour,
                    weekday,
                    value: Some(v),
                }
            })
            .collect();
        Series {
            key: "busy".into(),
            capacity: 10.0,
            slots_per_day: 24,
            measure: Measure::Occupancy,
            slots,
        }
    }

    #[test]
    fn a_full_hour_has_a_low_chance_and_a_quiet_one_a_high_one() {
        let s = busy_weekdays(28);
        let until = s.slots.len();
        let m = FreeSpotModel::fit(&s, until).unwrap();
        // The series ends with Sunday 23:00: 11 slots on is Monday 10:00 (full), 4 slots on is
        // Monday 03:00 (quiet).
        let origin = until - 1;
        assert_eq!(s.slots[origin].weekday, 6);
        let busy = m.chance(&s, origin, 11).unwrap();
        let quiet = m.chance(&s, origin, 4).unwrap();
        assert!(busy < 0.5, "busy hour: {busy}");
        assert!(quiet > 0.8, "quiet hour: {quiet}");
        assert!(m.chance_at(0.0, 1) > 0.9 && m.chance_at(10.0, 1) < 0.2);
    }

    #[test]
    fn the_reliability_table_bins_chances_and_says_how_often_a_spot_was_free() {
        let s = busy_weekdays(35);
        let r = reliability(&[s], 7).unwrap();
        assert_eq!(r.lots, 1);
        assert_eq!(r.bins.len(), 10);
        assert_eq!(r.bins.iter().map(|b| b.n).sum::<usize>(), r.n);
        assert!(r.n > 7 * 24 * 20, "{}", r.n);
        // A regular pattern is forecast well: low chances where it was full, high where not.
        // Where the chances are many, they say how often a spot was free.
        for b in r.bins.iter().filter(|b| b.n >= 200) {
            assert!(
                (b.free_share - b.mean_chance).abs() < 0.1,
                "{b:?}\n{}",
                r.table()
            );
        }
        assert!(r.bins[9].n > r.n / 2, "{}", r.table());
        assert!(r.brier < 0.1 && r.brier_climatology > 0.0, "{}", r.table());
        assert!(r.table().contains("Brier score"));
        assert!(reliability(&[busy_weekdays(5)], 7).is_err());
    }
}
