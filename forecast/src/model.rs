//! The forecast model of one lot: a calendar profile plus, per horizon, a linfa ridge regression
//! that corrects it with what the latest readings say.
//!
//! The value `h` slots after an origin `t` is regressed on five features:
//! 1. the profile of the target slot: the training mean of its slot of day, weekdays and
//!    weekends apart;
//! 2. the target slot's anomaly (value − profile) one week earlier;
//! 3. its anomaly one day earlier;
//! 4. the anomaly at the origin;
//! 5. the mean anomaly of the two hours up to the origin.
//!
//! One small model per horizon ("direct" multi-step forecasting): a 1-hour forecast leans on the
//! latest readings, a 24-hour one on the calendar, and the fit decides how much. Missing
//! readings make an anomaly 0 (no evidence either way).

use crate::series::{Series, Slot};
use crate::{Error, Result};
use linfa::Dataset;
use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};

const FEATURES: usize = 5;
/// Ridge penalty, as extra rows `sqrt(λ)·e_j → 0`: keeps a fit finite when a feature is constant
/// (no week of history yet makes feature 2 all zeros) at a negligible bias over thousands of rows.
const RIDGE_LAMBDA: f64 = 1.0;
/// Fewer training rows than this and the horizon uses the profile alone.
const MIN_ROWS: usize = 4 * FEATURES;

/// Mean value per (slot of day, weekday or weekend).
#[derive(Debug, Clone)]
pub struct Profile {
    slots_per_day: usize,
    cells: Vec<f64>,
}

impl Profile {
    /// From the observed slots before `until`. A cell never observed takes the same slot of the
    /// other day kind, then the overall mean.
    pub fn fit(series: &Series, until: usize) -> Self {
        let spd = series.slots_per_day;
        let mut sum = vec![0.0; 2 * spd];
        let mut n = vec![0usize; 2 * spd];
        for s in &series.slots[..until.min(series.slots.len())] {
            if let Some(v) = s.value {
                let c = cell(spd, s);
                sum[c] += v;
                n[c] += 1;
            }
        }
        let total: f64 = sum.iter().sum();
        let count: usize = n.iter().sum();
        let overall = if count > 0 { total / count as f64 } else { 0.0 };
        let mean = |c: usize| (n[c] > 0).then(|| sum[c] / n[c] as f64);
        let cells = (0..2 * spd)
            .map(|c| {
                let other = (c + spd) % (2 * spd);
                mean(c).or_else(|| mean(other)).unwrap_or(overall)
            })
            .collect();
        Self {
            slots_per_day: spd,
            cells,
        }
    }

    pub fn at(&self, slot: &Slot) -> f64 {
        self.cells[cell(self.slots_per_day, slot)]
    }
}

fn cell(slots_per_day: usize, s: &Slot) -> usize {
    (s.slot_of_day as usize % slots_per_day) + if s.is_weekend() { slots_per_day } else { 0 }
}

/// The label of slot `i`, also past the end of the series (the local clock stepped on).
pub(crate) fn label(series: &Series, i: usize) -> Slot {
    if let Some(s) = series.slots.get(i) {
        return *s;
    }
    let last = series.slots.last().copied().unwrap_or(Slot {
        slot_of_day: 0,
        weekday: 0,
        value: None,
    });
    let spd = series.slots_per_day;
    let ahead = i + 1 - series.slots.len();
    let local = last.slot_of_day as usize + ahead;
    Slot {
        slot_of_day: (local % spd) as u32,
        weekday: ((last.weekday as usize + local / spd) % 7) as u32,
        value: None,
    }
}

fn anomaly(series: &Series, profile: &Profile, i: Option<usize>) -> f64 {
    i.and_then(|i| Some(series.value(i)? - profile.at(&series.slots[i])))
        .unwrap_or(0.0)
}

/// The features for the value `h` slots after `origin`; `None` when the origin was not observed.
fn features(
    series: &Series,
    profile: &Profile,
    origin: usize,
    h: usize,
) -> Option<[f64; FEATURES]> {
    series.value(origin)?;
    let target = origin + h;
    let back = |lag: usize| target.checked_sub(lag);
    let recent = 2 * series.slots_per_hour();
    let (mut sum, mut n) = (0.0, 0);
    for i in origin.saturating_sub(recent - 1)..=origin {
        if series.value(i).is_some() {
            sum += anomaly(series, profile, Some(i));
            n += 1;
        }
    }
    Some([
        profile.at(&label(series, target)),
        anomaly(series, profile, back(series.week())),
        anomaly(series, profile, back(series.day())),
        anomaly(series, profile, Some(origin)),
        sum / n as f64,
    ])
}

/// Intercept and coefficients of one horizon.
#[derive(Debug, Clone, Copy)]
struct Linear {
    intercept: f64,
    coef: [f64; FEATURES],
}

impl Linear {
    /// The profile alone.
    const PROFILE: Self = Self {
        intercept: 0.0,
        coef: [1.0, 0.0, 0.0, 0.0, 0.0],
    };

    fn apply(&self, x: &[f64; FEATURES]) -> f64 {
        self.intercept + self.coef.iter().zip(x).map(|(c, x)| c * x).sum::<f64>()
    }
}

/// A fitted model of one lot: the profile and one regression per horizon (1..=a day of slots).
#[derive(Debug, Clone)]
pub struct LotModel {
    profile: Profile,
    horizons: Vec<Linear>,
    /// Forecasts are clipped to 0..=ceiling (capacity for occupancy).
    ceiling: f64,
}

impl LotModel {
    /// Fit on the slots before `until`.
    pub fn fit(series: &Series, until: usize) -> Result<Self> {
        let until = until.min(series.slots.len());
        let profile = Profile::fit(series, until);
        let horizons = (1..=series.day())
            .map(|h| fit_horizon(series, &profile, until, h))
            .collect::<Result<Vec<_>>>()?;
        let ceiling = match series.measure {
            crate::Measure::Occupancy | crate::Measure::Peak if series.capacity > 0.0 => {
                series.capacity
            }
            _ => f64::INFINITY,
        };
        Ok(Self {
            profile,
            horizons,
            ceiling,
        })
    }

    /// The value `h` slots (1..=a day) after `origin`; `None` if the origin was not observed.
    pub fn predict(&self, series: &Series, origin: usize, h: usize) -> Option<f64> {
        let x = features(series, &self.profile, origin, h)?;
        let model = self.horizons.get(h.checked_sub(1)?)?;
        Some(model.apply(&x).clamp(0.0, self.ceiling))
    }

    /// The next day of slots after the series' last one, labelled with where they fall in the
    /// local week; empty when the last slot was not observed (a forecast starts from an
    /// observed origin).
    pub fn next_day(&self, series: &Series) -> Vec<Slot> {
        if series.slots.last().is_none_or(|s| s.value.is_none()) {
            return Vec::new();
        }
        self.forecast_next_day(series)
            .into_iter()
            .map(|(i, v)| Slot {
                value: Some(v),
                ..label(series, i)
            })
            .collect()
    }

    /// The next day of slots after the last observed one: `(slot index, value)`.
    pub fn forecast_next_day(&self, series: &Series) -> Vec<(usize, f64)> {
        let Some(origin) = series.slots.iter().rposition(|s| s.value.is_some()) else {
            return Vec::new();
        };
        (1..=series.day())
            .filter_map(|h| Some((origin + h, self.predict(series, origin, h)?)))
            .collect()
    }
}

fn fit_horizon(series: &Series, profile: &Profile, until: usize, h: usize) -> Result<Linear> {
    let mut rows: Vec<[f64; FEATURES]> = Vec::new();
    let mut y = Vec::new();
    for origin in 0..until.saturating_sub(h) {
        let Some(target) = series.value(origin + h) else {
            continue;
        };
        if let Some(x) = features(series, profile, origin, h) {
            rows.push(x);
            y.push(target);
        }
    }
    if rows.len() < MIN_ROWS {
        return Ok(Linear::PROFILE);
    }
    for j in 0..FEATURES {
        let mut penalty = [0.0; FEATURES];
        penalty[j] = RIDGE_LAMBDA.sqrt();
        rows.push(penalty);
        y.push(0.0);
    }
    let fit_error = |message: String| Error::Fit {
        lot: series.key.clone(),
        message,
    };
    let x = Array2::from_shape_vec((rows.len(), FEATURES), rows.concat())
        .map_err(|e| fit_error(e.to_string()))?;
    let fitted = LinearRegression::new()
        .fit(&Dataset::new(x, Array1::from(y)))
        .map_err(|e| fit_error(e.to_string()))?;
    let mut coef = [0.0; FEATURES];
    for (c, p) in coef.iter_mut().zip(fitted.params()) {
        *c = *p;
    }
    let model = Linear {
        intercept: fitted.intercept(),
        coef,
    };
    if model.intercept.is_finite() && coef.iter().all(|c| c.is_finite()) {
        Ok(model)
    } else {
        Ok(Linear::PROFILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Measure;

    fn hourly(days: usize, value: impl Fn(usize) -> Option<f64>) -> Series {
        Series {
            key: "t".into(),
            capacity: 100.0,
            slots_per_day: 24,
            measure: Measure::Arrivals,
            slots: (0..days * 24)
                .map(|i| Slot {
                    slot_of_day: (i % 24) as u32,
                    weekday: ((i / 24) % 7) as u32,
                    value: value(i),
                })
                .collect(),
        }
    }

    #[test]
    fn profile_separates_weekends_and_fills_unseen_cells() {
        // Weekdays 10 at every hour, weekends 2; hour 5 is never observed on weekends.
        let s = hourly(14, |i| {
            let weekend = (i / 24) % 7 >= 5;
            match (weekend, i % 24) {
                (true, 5) => None,
                (true, _) => Some(2.0),
                (false, _) => Some(10.0),
            }
        });
        let p = Profile::fit(&s, s.slots.len());
        let slot = |hour, weekday| Slot {
            slot_of_day: hour,
            weekday,
            value: None,
        };
        assert_eq!(p.at(&slot(3, 1)), 10.0);
        assert_eq!(p.at(&slot(3, 6)), 2.0);
        assert_eq!(p.at(&slot(5, 6)), 10.0, "falls back to the weekday cell");
    }

    #[test]
    fn labels_step_past_the_end_of_the_series() {
        let s = hourly(1, |_| Some(1.0)); // Monday 00..23
        let next = label(&s, 24);
        assert_eq!((next.slot_of_day, next.weekday), (0, 1));
        let later = label(&s, 24 + 24 * 6 + 3);
        assert_eq!((later.slot_of_day, later.weekday), (3, 0));
    }

    #[test]
    fn a_persistent_shift_is_followed_at_short_horizons() {
        // A flat 10 for three weeks, then every reading is 20 from day 21 on: an hour ahead the
        // model must follow the latest readings rather than the old profile.
        let s = hourly(28, |i| Some(if i >= 21 * 24 { 20.0 } else { 10.0 }));
        let mut fit_on = s.clone();
        // Train on data that contains shifts, so the anomaly features carry weight.
        for (i, slot) in fit_on.slots.iter_mut().enumerate() {
            if (i / 24) % 3 == 0 {
                slot.value = Some(15.0);
            }
        }
        let m = LotModel::fit(&fit_on, fit_on.slots.len()).unwrap();
        let origin = 22 * 24 + 10;
        let one_hour = m.predict(&s, origin, 1).unwrap();
        assert!(one_hour > 15.0, "{one_hour}");
        assert_eq!(m.forecast_next_day(&s).len(), 24);
        // The next day after Sunday 23:00 (day 27) is Monday, hour by hour, near the new level.
        let next = m.next_day(&s);
        assert_eq!(next.len(), 24);
        assert_eq!((next[0].slot_of_day, next[0].weekday), (0, 0));
        assert_eq!((next[23].slot_of_day, next[23].weekday), (23, 0));
        assert!(next[0].value.unwrap() > 15.0, "{:?}", next[0]);
        let mut unobserved = s.clone();
        unobserved.slots.last_mut().unwrap().value = None;
        assert!(m.next_day(&unobserved).is_empty());
    }
}
