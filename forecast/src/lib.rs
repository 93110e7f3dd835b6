//! Arrival forecasting: a linfa linear regression of arrivals per lot-hour on calendar features
//! (hour of day × weekday/weekend) and yesterday's arrivals at the same hour, fitted per lot,
//! with a hold-out backtest next to the seasonal-naive baseline.
//!
//! The model is deliberately simple and cheap: it is the floor later models must beat. It knows
//! nothing of HTTP or storage; its input is the pipeline's hourly series.

use linfa::Dataset;
use linfa::prelude::*;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use ndarray::{Array1, Array2};
use std::collections::BTreeMap;
use warehouse_schema::LotId;
use warehouse_schema::outputs::LotHour;

/// Hours in a day and in a week: the seasonal lags.
const DAY: usize = 24;
const WEEK: usize = 7 * DAY;
/// 24 hour-of-day indicators for weekdays, 24 for weekends, and the same hour yesterday.
const FEATURES: usize = 2 * DAY + 1;
/// Ridge penalty. A short history leaves some calendar cells with one day of data or none; the
/// penalty keeps such a rank-deficient fit finite instead of trading huge opposite coefficients.
const RIDGE_LAMBDA: f64 = 0.1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not enough history: {0}")]
    NotEnoughHistory(String),
    #[error("model fit failed for lot {lot}: {message}")]
    Fit { lot: LotId, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One lot's hours in time order, with gaps filled by zero-arrival hours so that lags are
/// positional.
fn by_lot(series: &[LotHour]) -> BTreeMap<LotId, Vec<&LotHour>> {
    let mut out: BTreeMap<LotId, Vec<&LotHour>> = BTreeMap::new();
    for h in series {
        out.entry(h.lot_id).or_default().push(h);
    }
    for hours in out.values_mut() {
        hours.sort_by_key(|h| h.hour_start);
    }
    out
}

fn features(h: &LotHour, yesterday: f64) -> [f64; FEATURES] {
    let mut x = [0.0; FEATURES];
    let weekend = h.local_weekday >= 5;
    x[h.local_hour as usize % DAY + if weekend { DAY } else { 0 }] = 1.0;
    x[2 * DAY] = yesterday;
    x
}

/// Which baseline was used: a week of history allows the proper seasonal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    SameHourLastWeek,
    /// Fallback when there is less than a week before the test period.
    SameHourYesterday,
}

impl Baseline {
    pub fn describe(self) -> &'static str {
        match self {
            Self::SameHourLastWeek => "same hour last week",
            Self::SameHourYesterday => "same hour yesterday (less than 8 days of history)",
        }
    }
}

/// Errors of the model and the baseline on the held-out hours.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestReport {
    pub lots: usize,
    pub test_hours: usize,
    pub model_mae: f64,
    pub model_rmse: f64,
    pub baseline_mae: f64,
    pub baseline_rmse: f64,
    pub baseline: Baseline,
    /// Model MAE as a share of capacity, in percentage points.
    pub model_mae_pct_capacity: f64,
}

/// Fit on all but the last `test_days` days of each lot and score the held-out days.
pub fn backtest(series: &[LotHour], test_days: usize) -> Result<BacktestReport> {
    let test = test_days * DAY;
    let lots = by_lot(series);
    let shortest = lots.values().map(Vec::len).min().unwrap_or(0);
    if lots.is_empty() || shortest < test + 2 * DAY {
        return Err(Error::NotEnoughHistory(format!(
            "need at least {} hours per lot, shortest lot has {shortest}",
            test + 2 * DAY
        )));
    }
    let baseline = if shortest >= test + WEEK {
        Baseline::SameHourLastWeek
    } else {
        Baseline::SameHourYesterday
    };
    let lag = match baseline {
        Baseline::SameHourLastWeek => WEEK,
        Baseline::SameHourYesterday => DAY,
    };
    let (mut m_abs, mut m_sq, mut b_abs, mut b_sq, mut n, mut cap_pct) =
        (0.0, 0.0, 0.0, 0.0, 0usize, 0.0);
    for (lot, hours) in &lots {
        let split = hours.len() - test;
        let model = fit(*lot, &hours[..split])?;
        for i in split..hours.len() {
            let actual = hours[i].arrivals;
            let predicted = predict(&model, hours[i], hours[i - DAY].arrivals);
            let naive = hours[i - lag].arrivals;
            m_abs += (predicted - actual).abs();
            m_sq += (predicted - actual).powi(2);
            b_abs += (naive - actual).abs();
            b_sq += (naive - actual).powi(2);
            cap_pct += 100.0 * (predicted - actual).abs() / f64::from(hours[i].capacity.max(1));
            n += 1;
        }
    }
    let nf = n as f64;
    Ok(BacktestReport {
        lots: lots.len(),
        test_hours: n,
        model_mae: m_abs / nf,
        model_rmse: (m_sq / nf).sqrt(),
        baseline_mae: b_abs / nf,
        baseline_rmse: (b_sq / nf).sqrt(),
        baseline,
        model_mae_pct_capacity: cap_pct / nf,
    })
}

/// Ridge regression through linfa's least squares: the penalty enters as one extra row per
/// feature, `sqrt(λ)` on its column with target 0.
fn fit(lot: LotId, hours: &[&LotHour]) -> Result<FittedLinearRegression<f64>> {
    let mut rows: Vec<[f64; FEATURES]> = (DAY..hours.len())
        .map(|i| features(hours[i], hours[i - DAY].arrivals))
        .collect();
    let mut y: Vec<f64> = (DAY..hours.len()).map(|i| hours[i].arrivals).collect();
    for j in 0..FEATURES {
        let mut penalty = [0.0; FEATURES];
        penalty[j] = RIDGE_LAMBDA.sqrt();
        rows.push(penalty);
        y.push(0.0);
    }
    let y = Array1::from(y);
    let x =
        Array2::from_shape_vec((rows.len(), FEATURES), rows.concat()).map_err(|e| Error::Fit {
            lot,
            message: e.to_string(),
        })?;
    LinearRegression::new()
        .with_intercept(false)
        .fit(&Dataset::new(x, y))
        .map_err(|e| Error::Fit {
            lot,
            message: e.to_string(),
        })
}

fn predict(model: &FittedLinearRegression<f64>, h: &LotHour, yesterday: f64) -> f64 {
    let x =
        Array2::from_shape_vec((1, FEATURES), features(h, yesterday).to_vec()).expect("one row");
    model.predict(&x)[0].max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    fn series(first_weekday: usize, days: usize, noise: impl Fn(usize) -> f64) -> Vec<LotHour> {
        let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        (0..days * DAY)
            .map(|i| {
                let hour = (i % DAY) as u32;
                let weekday = ((first_weekday + i / DAY) % 7) as u32;
                let base = if weekday >= 5 {
                    2.0
                } else if (7..10).contains(&hour) {
                    30.0
                } else {
                    5.0
                };
                LotHour {
                    lot_id: LotId(1),
                    hour_start: start + Duration::hours(i as i64),
                    local_hour: hour,
                    local_weekday: weekday,
                    arrivals: (base + noise(i)).max(0.0),
                    mean_occupancy: 0.5,
                    capacity: 100,
                }
            })
            .collect()
    }

    #[test]
    fn learns_a_daily_profile_better_than_yesterday_on_a_monday() {
        // Tuesday to Monday: the test day is a Monday after a weekend, so "yesterday" (Sunday)
        // is a poor guess and there is no week of history yet.
        let s = series(1, 7, |i| ((i * 7919) % 5) as f64 - 2.0);
        let r = backtest(&s, 1).unwrap();
        assert_eq!(r.baseline, Baseline::SameHourYesterday);
        assert_eq!(r.test_hours, 24);
        assert!(r.model_mae < r.baseline_mae, "{r:?}");
    }

    #[test]
    fn uses_last_week_once_history_allows() {
        let s = series(0, 15, |_| 0.0);
        let r = backtest(&s, 1).unwrap();
        assert_eq!(r.baseline, Baseline::SameHourLastWeek);
        assert!(r.baseline_mae < 1e-9, "{r:?}");
        // Ridge shrinkage biases a perfectly repeating series slightly (arrivals are 2–30/h).
        assert!(r.model_mae < 0.5, "{r:?}");
    }

    #[test]
    fn refuses_too_little_history() {
        assert!(matches!(
            backtest(&series(0, 2, |_| 0.0), 1),
            Err(Error::NotEnoughHistory(_))
        ));
    }
}
