//! Driver-level arrivals: the probability that a driver arrives at a lot in a given local hour,
//! from their own history, and a backtest that scores it by precision and recall.
//!
//! The model is a smoothed frequency, per driver and lot: of the recent days of the same kind
//! (weekday or weekend) since the driver first came to the lot, on how many did they arrive in
//! that hour? With `k` such days out of `n`, `p = (k + a) / (n + a + b)`: a driver seen once is
//! not yet a habit, and a habit that stops fades out of the window.

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, Timelike, Weekday};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use warehouse_schema::LotId;

/// One arrival of a known driver, in the lot's local time.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverArrival {
    /// The warehouse's pseudonymous user key.
    pub driver: String,
    pub lot: LotId,
    pub local: NaiveDateTime,
}

impl From<warehouse_schema::outputs::DriverEntry> for DriverArrival {
    fn from(e: warehouse_schema::outputs::DriverEntry) -> Self {
        Self {
            driver: e.user_key,
            lot: e.lot_id,
            local: e.entered_local,
        }
    }
}

/// How far back the model looks, and how strongly it doubts a short history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverModelConfig {
    pub window_days: u64,
    /// Pseudo-count of arrival days (`a`).
    pub prior_arrivals: f64,
    /// Pseudo-count of days without an arrival (`b`).
    pub prior_absences: f64,
}

impl Default for DriverModelConfig {
    fn default() -> Self {
        Self {
            window_days: 28,
            prior_arrivals: 0.1,
            prior_absences: 1.0,
        }
    }
}

/// Per driver and lot: the first day seen and the (day, hour) slots with an arrival.
#[derive(Debug, Clone, Default)]
pub struct DriverModel {
    config: DriverModelConfig,
    pairs: HashMap<(String, LotId), History>,
}

#[derive(Debug, Clone, Default)]
struct History {
    first_day: Option<NaiveDate>,
    slots: BTreeSet<(NaiveDate, u32)>,
}

fn weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

impl DriverModel {
    /// Index `arrivals` (any order). Only arrivals before the day asked about are ever used.
    pub fn fit(arrivals: &[DriverArrival], config: DriverModelConfig) -> Self {
        let mut pairs: HashMap<(String, LotId), History> = HashMap::new();
        for a in arrivals {
            let h = pairs.entry((a.driver.clone(), a.lot)).or_default();
            let day = a.local.date();
            h.first_day = Some(h.first_day.map_or(day, |f| f.min(day)));
            h.slots.insert((day, a.local.hour()));
        }
        Self { config, pairs }
    }

    /// Probability that `driver` arrives at `lot` on `day` in local hour `hour`, from the days
    /// before `day`. None for a driver never seen at the lot before `day`.
    pub fn probability(&self, driver: &str, lot: LotId, day: NaiveDate, hour: u32) -> Option<f64> {
        let h = self.pairs.get(&(driver.to_owned(), lot))?;
        self.probability_of(h, day, hour)
    }

    fn probability_of(&self, h: &History, day: NaiveDate, hour: u32) -> Option<f64> {
        let first = h.first_day.filter(|f| *f < day)?;
        let from = day
            .checked_sub_days(Days::new(self.config.window_days))?
            .max(first);
        let (mut n, mut k) = (0u32, 0u32);
        let mut d = from;
        while d < day {
            if weekend(d) == weekend(day) {
                n += 1;
                k += u32::from(h.slots.contains(&(d, hour)));
            }
            d = d.succ_opt()?;
        }
        let c = &self.config;
        Some(
            (f64::from(k) + c.prior_arrivals)
                / (f64::from(n) + c.prior_arrivals + c.prior_absences),
        )
    }

    /// Every (driver, lot) whose probability of arriving on `day` in `hour` is at least
    /// `threshold`, most likely first.
    pub fn likely(&self, day: NaiveDate, hour: u32, threshold: f64) -> Vec<(String, LotId, f64)> {
        let mut out: Vec<(String, LotId, f64)> = self
            .pairs
            .iter()
            .filter_map(|((driver, lot), h)| {
                let p = self.probability_of(h, day, hour)?;
                (p >= threshold).then(|| (driver.clone(), *lot, p))
            })
            .collect();
        out.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        out
    }

    fn arrived(&self, key: &(String, LotId), day: NaiveDate, hour: u32) -> bool {
        self.pairs
            .get(key)
            .is_some_and(|h| h.slots.contains(&(day, hour)))
    }
}

/// Precision and recall of one way of predicting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Confusion {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

impl Confusion {
    fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, true) => self.false_negatives += 1,
            (false, false) => {}
        }
    }

    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The driver-level backtest: every (driver, lot) known before each test day, every hour.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverBacktest {
    pub threshold: f64,
    pub test_days: Vec<NaiveDate>,
    /// (driver, lot, day, hour) cases scored.
    pub cases: u64,
    /// Cases with an arrival.
    pub arrivals: u64,
    pub model: Confusion,
    /// "Arrives in this hour if they did on the same weekday a week before."
    pub same_hour_last_week: Confusion,
}

impl DriverBacktest {
    pub fn table(&self) -> String {
        let row = |name: &str, c: &Confusion| {
            format!(
                "{name:<24} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>7} {:>7}\n",
                c.precision(),
                c.recall(),
                c.f1(),
                c.true_positives,
                c.false_positives,
                c.false_negatives
            )
        };
        let mut s = format!(
            "driver arrivals in the next hour: {} test days, {} driver-lot-hours, {} with an arrival; push when p ≥ {:.2}\n",
            self.test_days.len(),
            self.cases,
            self.arrivals,
            self.threshold
        );
        s += &format!(
            "{:<24} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7}\n",
            "method", "precision", "recall", "F1", "TP", "FP", "FN"
        );
        s += &row("model", &self.model);
        s += &row("same hour last week", &self.same_hour_last_week);
        s
    }
}

/// Score the model on the last `test_days` days of `arrivals`: for each test day, the model
/// sees only the days before it.
pub fn backtest_drivers(
    arrivals: &[DriverArrival],
    test_days: usize,
    threshold: f64,
    config: DriverModelConfig,
) -> Option<DriverBacktest> {
    let last = arrivals.iter().map(|a| a.local.date()).max()?;
    let first_test = last.checked_sub_days(Days::new(test_days.saturating_sub(1) as u64))?;
    let model = DriverModel::fit(arrivals, config);
    let mut days = BTreeMap::new();
    let mut out = DriverBacktest {
        threshold,
        test_days: Vec::new(),
        cases: 0,
        arrivals: 0,
        model: Confusion::default(),
        same_hour_last_week: Confusion::default(),
    };
    let mut day = first_test;
    while day <= last {
        let week_before = day.checked_sub_days(Days::new(7))?;
        for (key, h) in &model.pairs {
            if h.first_day.is_none_or(|f| f >= day) {
                continue;
            }
            for hour in 0..24 {
                let actual = model.arrived(key, day, hour);
                let p = model.probability_of(h, day, hour).unwrap_or(0.0);
                out.cases += 1;
                out.arrivals += u64::from(actual);
                out.model.add(p >= threshold, actual);
                out.same_hour_last_week
                    .add(h.slots.contains(&(week_before, hour)), actual);
            }
        }
        days.insert(day, ());
        day = day.succ_opt()?;
    }
    out.test_days = days.into_keys().collect();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: NaiveDate, h: u32, m: u32) -> NaiveDateTime {
        day.and_hms_opt(h, m, 0).unwrap()
    }

    fn monday() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    #[test]
    fn a_weekday_habit_is_likely_and_a_one_off_is_not() {
        let mut arrivals = Vec::new();
        for d in 0..21 {
            let day = monday() + Days::new(d);
            if !weekend(day) {
                arrivals.push(DriverArrival {
                    driver: "commuter".into(),
                    lot: LotId(1),
                    local: at(day, 8, 10),
                });
            }
        }
        arrivals.push(DriverArrival {
            driver: "visitor".into(),
            lot: LotId(1),
            local: at(monday() + Days::new(3), 8, 30),
        });
        let m = DriverModel::fit(&arrivals, DriverModelConfig::default());
        let next_monday = monday() + Days::new(21);
        let p = m.probability("commuter", LotId(1), next_monday, 8).unwrap();
        assert!(p > 0.9, "{p}");
        assert!(m.probability("commuter", LotId(1), next_monday, 9).unwrap() < 0.1);
        let saturday = monday() + Days::new(26);
        assert!(m.probability("commuter", LotId(1), saturday, 8).unwrap() < 0.1);
        assert!(m.probability("visitor", LotId(1), next_monday, 8).unwrap() < 0.2);
        assert_eq!(m.probability("nobody", LotId(1), next_monday, 8), None);
        assert_eq!(
            m.likely(next_monday, 8, 0.5),
            vec![("commuter".to_owned(), LotId(1), p)]
        );
    }

    #[test]
    fn only_days_before_the_one_asked_count() {
        let arrivals: Vec<DriverArrival> = (0..5)
            .map(|d| DriverArrival {
                driver: "x".into(),
                lot: LotId(2),
                local: at(monday() + Days::new(d), 7, 0),
            })
            .collect();
        let m = DriverModel::fit(&arrivals, DriverModelConfig::default());
        assert_eq!(
            m.probability("x", LotId(2), monday(), 7),
            None,
            "nothing before"
        );
        let tuesday = m
            .probability("x", LotId(2), monday() + Days::new(1), 7)
            .unwrap();
        let friday = m
            .probability("x", LotId(2), monday() + Days::new(4), 7)
            .unwrap();
        assert!(tuesday < friday, "more evidence, more confidence");
    }

    #[test]
    fn the_backtest_scores_a_habit_better_than_last_week() {
        // Attends 4 weekdays of 5, rotating the day off: "last week" is wrong on the days that
        // differ; the frequency stays high on all of them.
        let mut arrivals = Vec::new();
        for d in 0..42u64 {
            let day = monday() + Days::new(d);
            if !weekend(day) && d % 6 != 0 {
                arrivals.push(DriverArrival {
                    driver: "c".into(),
                    lot: LotId(1),
                    local: at(day, 8, 0),
                });
            }
        }
        let b = backtest_drivers(&arrivals, 14, 0.5, DriverModelConfig::default()).unwrap();
        assert_eq!(b.cases, 14 * 24);
        assert!(b.model.recall() > b.same_hour_last_week.recall());
        assert!(b.model.f1() > b.same_hour_last_week.f1(), "{}", b.table());
    }
}
