//! Pricing: turning observed occupancy into a rate schedule.
//!
//! The first policy is SFpark's demand-responsive step rule, applied per lot, time band and day
//! kind: keep occupancy inside a target band (60–80 % by default) by nudging the hourly rate
//! +$0.25 when above, −$0.25 when below, and −$0.50 when far below, between a floor and a cap.
//! Other vehicle types follow the car rate by a fixed factor. Publishing goes through the
//! [`RatesSink`] port (`publish.rs`): this crate decides, the sink delivers.

pub mod policy;
pub mod publish;

pub use policy::{
    BandDecision, BandInput, ForecastPolicy, PolicyTerms, PricingPolicy, StaticPricing,
};
pub use publish::{PublishError, RatesSink, publish_changes, rates_by_lot};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warehouse_schema::event::{RateBound, RateReason};
use warehouse_schema::outputs::BandOccupancy;
use warehouse_schema::{Cents, DayKind, LotId, TimeBand, VehicleType};

/// The step rule's parameters. Rates are cents per hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPolicy {
    /// Lower edge of the target band (inclusive).
    pub target_low: f64,
    /// Upper edge of the target band (inclusive).
    pub target_high: f64,
    /// Below this (exclusive), the rate drops by `step_down_far`.
    pub far_below: f64,
    pub step_up: i64,
    pub step_down: i64,
    pub step_down_far: i64,
    pub floor: i64,
    pub cap: i64,
    /// Buckets a band must have been observed for before its rate may move.
    pub min_buckets: u64,
    /// Pricing periods a rate must hold before it may move again.
    #[serde(default = "one")]
    pub min_periods_between_changes: u32,
}

fn one() -> u32 {
    1
}

impl Default for StepPolicy {
    fn default() -> Self {
        Self {
            target_low: 0.60,
            target_high: 0.80,
            far_below: 0.30,
            step_up: 25,
            step_down: 25,
            step_down_far: 50,
            floor: 50,
            cap: 800,
            min_buckets: 8,
            min_periods_between_changes: 1,
        }
    }
}

impl StepPolicy {
    /// The next car rate for a band with mean occupancy `occupancy` and current rate `current`.
    pub fn step(&self, occupancy: f64, current: i64) -> i64 {
        let step = if occupancy > self.target_high {
            self.step_up
        } else if occupancy >= self.target_low {
            0
        } else if occupancy >= self.far_below {
            -self.step_down
        } else {
            -self.step_down_far
        };
        (current + step).clamp(self.floor, self.cap)
    }
}

/// What a vehicle type pays relative to a car.
pub fn vehicle_factor(vt: VehicleType) -> f64 {
    match vt {
        VehicleType::Car | VehicleType::Ev => 1.0,
        VehicleType::Motorcycle => 0.5,
        VehicleType::Van => 1.5,
    }
}

/// Key of one rate: lot, band, day kind and vehicle type.
pub type RateKey = (LotId, TimeBand, DayKind, VehicleType);

/// A decided change, before publishing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateChange {
    pub lot_id: LotId,
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub vehicle_type: VehicleType,
    pub occupancy: f64,
    pub old_cents: i64,
    pub new_cents: i64,
    /// Why, as the rate will carry it.
    pub reason: RateReason,
}

/// The rates currently in force, with each lot's default for bands that have none.
#[derive(Debug, Clone, Default)]
pub struct CurrentRates {
    pub rates: BTreeMap<RateKey, i64>,
    pub defaults: BTreeMap<LotId, i64>,
}

impl CurrentRates {
    pub fn get(&self, key: RateKey) -> Option<i64> {
        self.rates
            .get(&key)
            .copied()
            .or_else(|| self.defaults.get(&key.0).copied())
    }
}

/// (lot, band, day kind): what a rate is published for (its car rate; other vehicles follow).
pub type BandKey = (LotId, TimeBand, DayKind);

/// The predicted occupancy ratio of each hour of a band in the next period at the current
/// rate, per band (empty: no forecast, as for the step rule).
pub type HourlyForecast = BTreeMap<BandKey, Vec<f64>>;

/// Apply `policy` to every observed band (the occupancy of `period`), then let it revise them
/// together (the forecast policy's revenue guard); returns only rates that actually change,
/// each with its reason. `hourly` is the occupancy forecast of each band's hours for policies
/// that use one.
pub fn propose(
    policy: &dyn PricingPolicy,
    observed: &[BandOccupancy],
    hourly: &HourlyForecast,
    current: &CurrentRates,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<RateChange> {
    let none = Vec::new();
    let mut bands = Vec::new();
    let mut decisions = Vec::new();
    for o in observed {
        let Some(car_now) = current.get((o.lot_id, o.band, o.day_kind, VehicleType::Car)) else {
            continue;
        };
        let hours = hourly.get(&(o.lot_id, o.band, o.day_kind)).unwrap_or(&none);
        let input = BandInput {
            observed: o.mean_occupancy,
            buckets: o.buckets,
            forecast: (!hours.is_empty()).then(|| hours.iter().sum::<f64>() / hours.len() as f64),
            hourly_forecast: hours,
            standard_cents: current.defaults.get(&o.lot_id).copied(),
            periods_since_change: u32::MAX,
        };
        decisions.push(BandDecision {
            input,
            current: car_now,
            next: policy.next_rate(&input, car_now),
        });
        bands.push(o);
    }
    let proposed: Vec<i64> = decisions.iter().map(|d| d.next).collect();
    policy.balance(&mut decisions);
    let terms = policy.terms();
    let mut changes = Vec::new();
    for ((o, d), first) in bands.into_iter().zip(&decisions).zip(proposed) {
        let bound = if d.next != first {
            Some(RateBound::RevenueGuard)
        } else if d.next == terms.floor && d.next <= d.current {
            Some(RateBound::Floor)
        } else if d.next == terms.cap && d.next >= d.current {
            Some(RateBound::Cap)
        } else {
            None
        };
        let forecast_at_new = terms.elasticity.zip(d.input.forecast).map(|(e, _)| {
            moved_mean(
                d.input.hourly_forecast,
                d.input.forecast,
                d.next,
                d.current,
                e,
            )
        });
        for vt in VehicleType::ALL {
            let factor = vehicle_factor(vt);
            let old = current
                .get((o.lot_id, o.band, o.day_kind, vt))
                .unwrap_or(d.current);
            let new = (d.next as f64 * factor).round() as i64;
            if new == old {
                continue;
            }
            let scaled = |cents: i64| Cents((cents as f64 * factor).round() as i64);
            changes.push(RateChange {
                lot_id: o.lot_id,
                band: o.band,
                day_kind: o.day_kind,
                vehicle_type: vt,
                occupancy: o.mean_occupancy,
                old_cents: old,
                new_cents: new,
                reason: RateReason {
                    policy: policy.name().to_owned(),
                    observed_occupancy: o.mean_occupancy.clamp(0.0, 1.0),
                    observed_from: period.0,
                    observed_to: period.1,
                    target_low: terms.target.0,
                    target_high: terms.target.1,
                    forecast_at_previous: d.input.forecast.map(|f| f.clamp(0.0, 1.0)),
                    forecast_at_new,
                    elasticity: terms.elasticity,
                    previous_cents: Cents(old),
                    step_cents: new - old,
                    floor_cents: scaled(terms.floor),
                    cap_cents: scaled(terms.cap.min(i64::MAX / 2)),
                    bound,
                },
            });
        }
    }
    changes
}

/// The mean forecast occupancy of a band moved from rate `current` to `next` by `elasticity`
/// (each hour capped at full), from its hours or, without them, its mean.
fn moved_mean(hours: &[f64], mean: Option<f64>, next: i64, current: i64, elasticity: f64) -> f64 {
    let factor = (next as f64 / current.max(1) as f64).powf(elasticity);
    let moved = |o: f64| (o * factor).clamp(0.0, 1.0);
    if hours.is_empty() {
        moved(mean.unwrap_or(0.0))
    } else {
        hours.iter().map(|&o| moved(o)).sum::<f64>() / hours.len() as f64
    }
}

/// Which policy prices production (`pricing.policy`): the forecast-aware one by default, as it
/// wins in `parkflow price evaluate` (BENCHMARKS.md), or the SFpark step rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    #[default]
    Forecast,
    Step,
}

impl PolicyName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forecast => "forecast",
            Self::Step => "step",
        }
    }
}

/// The pricing settings: the policy in force, and the step rule's parameters (the forecast
/// policy takes its target band, floor, cap and evidence threshold from them). In a
/// configuration file they sit side by side in one table (`[pricing] policy = "step"`,
/// `cap = 600`); any other key is an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricingConfig {
    pub policy: PolicyName,
    /// Days between a pricing run and the day its new rates take effect: drivers are told
    /// ahead (and those with a habit at the lot and band get a message).
    pub notice_days: u32,
    #[serde(flatten)]
    pub step: StepPolicy,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            policy: PolicyName::default(),
            notice_days: DEFAULT_NOTICE_DAYS,
            step: StepPolicy::default(),
        }
    }
}

/// How far ahead new rates are announced by default.
pub const DEFAULT_NOTICE_DAYS: u32 = 7;

impl<'de> Deserialize<'de> for PricingConfig {
    /// `policy` (optional), then every other key as the step rule's (which refuses a key it
    /// does not know; serde's `flatten` would let it through).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let policy = match table.remove("policy") {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => PolicyName::default(),
        };
        let notice_days = match table.remove("notice_days") {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => DEFAULT_NOTICE_DAYS,
        };
        if notice_days > 90 {
            return Err(D::Error::custom("pricing.notice_days must be 0 to 90"));
        }
        let step =
            serde_json::from_value(serde_json::Value::Object(table)).map_err(D::Error::custom)?;
        Ok(Self {
            policy,
            notice_days,
            step,
        })
    }
}

impl PricingConfig {
    /// The forecast-aware policy under these settings.
    pub fn forecast_policy(&self) -> ForecastPolicy {
        ForecastPolicy {
            target_low: self.step.target_low,
            target_high: self.step.target_high,
            floor: self.step.floor,
            cap: self.step.cap,
            min_buckets: self.step.min_buckets,
            min_periods_between_changes: self.step.min_periods_between_changes,
            ..ForecastPolicy::default()
        }
    }

    /// When rates decided at `announced_at` take effect: `notice_days` later, at the top of
    /// that hour.
    pub fn effective_from(&self, announced_at: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::{DurationRound, TimeDelta};
        let at = announced_at + TimeDelta::days(i64::from(self.notice_days));
        at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
    }

    /// The policy in force.
    pub fn policy(&self) -> Box<dyn PricingPolicy + Send + Sync> {
        match self.policy {
            PolicyName::Forecast => Box::new(self.forecast_policy()),
            PolicyName::Step => Box::new(self.step.clone()),
        }
    }
}

/// The share of `hours` (occupancy ratios) inside the target band `low..=high`, or `None`
/// without hours.
pub fn in_band_share(hours: impl IntoIterator<Item = f64>, (low, high): (f64, f64)) -> Option<f64> {
    let (mut inside, mut all) = (0usize, 0usize);
    for h in hours {
        all += 1;
        inside += usize::from((low..=high).contains(&h));
    }
    (all > 0).then(|| inside as f64 / all as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_rule_at_band_edges() {
        let p = StepPolicy::default();
        // Inside the band, edges included: no change.
        assert_eq!(p.step(0.60, 300), 300);
        assert_eq!(p.step(0.70, 300), 300);
        assert_eq!(p.step(0.80, 300), 300);
        // Just above the band: up a step.
        assert_eq!(p.step(0.8001, 300), 325);
        assert_eq!(p.step(1.0, 300), 325);
        // Just below: down a step; far below (under 30 %): down two.
        assert_eq!(p.step(0.5999, 300), 275);
        assert_eq!(p.step(0.30, 300), 275);
        assert_eq!(p.step(0.2999, 300), 250);
        assert_eq!(p.step(0.0, 300), 250);
    }

    #[test]
    fn floor_and_cap_hold() {
        let p = StepPolicy::default();
        assert_eq!(p.step(0.0, 60), 50);
        assert_eq!(p.step(0.0, 50), 50);
        assert_eq!(p.step(0.95, 790), 800);
        assert_eq!(p.step(0.95, 800), 800);
    }

    /// The observed period of the tests' pricing runs.
    fn week() -> (DateTime<Utc>, DateTime<Utc>) {
        let to = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        (to - chrono::Duration::days(7), to)
    }

    fn obs(lot: i64, band: TimeBand, occ: f64, buckets: u64) -> BandOccupancy {
        BandOccupancy {
            lot_id: LotId(lot),
            band,
            day_kind: DayKind::Weekday,
            mean_occupancy: occ,
            peak_occupancy: occ,
            buckets,
        }
    }

    #[test]
    fn proposes_changes_only_outside_the_band() {
        let current = CurrentRates {
            rates: BTreeMap::new(),
            defaults: BTreeMap::from([(LotId(1), 200)]),
        };
        let observed = [
            obs(1, TimeBand::Morning, 0.92, 16),
            obs(1, TimeBand::Midday, 0.70, 16),
            obs(1, TimeBand::Night, 0.05, 28),
            obs(1, TimeBand::Evening, 0.99, 2), // too little evidence
        ];
        let changes = propose(
            &StepPolicy::default(),
            &observed,
            &HourlyForecast::new(),
            &current,
            week(),
        );
        let car = |band| {
            changes
                .iter()
                .find(|c| c.band == band && c.vehicle_type == VehicleType::Car)
        };
        assert_eq!(car(TimeBand::Morning).unwrap().new_cents, 225);
        // Each change says why, and the reason checks out against its rate.
        let why = &car(TimeBand::Morning).unwrap().reason;
        assert_eq!(why.policy, "SFpark step");
        assert_eq!(
            (why.observed_occupancy, why.target_low, why.target_high),
            (0.92, 0.6, 0.8)
        );
        assert_eq!((why.previous_cents.0, why.step_cents), (200, 25));
        assert_eq!((why.observed_from, why.observed_to), week());
        assert_eq!(why.bound, None);
        for c in &changes {
            assert_eq!(c.reason.check(c.new_cents), Ok(()), "{c:?}");
        }
        assert!(car(TimeBand::Midday).is_none());
        assert_eq!(car(TimeBand::Night).unwrap().new_cents, 150);
        assert!(car(TimeBand::Evening).is_none());
        let moto = changes
            .iter()
            .find(|c| c.band == TimeBand::Morning && c.vehicle_type == VehicleType::Motorcycle)
            .unwrap();
        assert_eq!((moto.old_cents, moto.new_cents), (200, 113));
    }

    #[test]
    fn the_policy_in_force_is_chosen_by_name_and_forecasts_reach_it() {
        let cfg = PricingConfig::default();
        assert_eq!(
            cfg.policy,
            PolicyName::Forecast,
            "the evaluated winner by default"
        );
        assert_eq!(cfg.policy().name(), ForecastPolicy::default().name());
        let step = PricingConfig {
            policy: PolicyName::Step,
            ..PricingConfig::default()
        };
        assert_eq!(step.policy().name(), "SFpark step");
        // A busy morning forecast to stay busy: the forecast policy raises it; with no
        // forecast it still moves on what was observed.
        let current = CurrentRates {
            rates: BTreeMap::new(),
            defaults: BTreeMap::from([(LotId(1), 200)]),
        };
        let observed = [obs(1, TimeBand::Morning, 0.95, 16)];
        let hourly = HourlyForecast::from([(
            (LotId(1), TimeBand::Morning, DayKind::Weekday),
            vec![0.97; 12],
        )]);
        let changes = propose(cfg.policy().as_ref(), &observed, &hourly, &current, week());
        let car = changes
            .iter()
            .find(|c| c.vehicle_type == VehicleType::Car)
            .expect("a change");
        assert!(car.new_cents > 200, "{car:?}");
        // The forecast policy says what it expects at the old and the new rate.
        let why = &car.reason;
        assert_eq!(why.elasticity, Some(-0.3));
        let (before, after) = (
            why.forecast_at_previous.unwrap(),
            why.forecast_at_new.unwrap(),
        );
        assert!(after < before, "a raise lowers the forecast: {why:?}");
        assert_eq!(in_band_share([0.5, 0.7, 0.8, 0.9], (0.6, 0.8)), Some(0.5));
        assert_eq!(in_band_share([], (0.6, 0.8)), None);
    }
}
