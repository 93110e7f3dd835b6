//! Pricing policies behind one trait: given what a (lot, time band, day kind) saw in the last
//! period — and, for policies that use one, the occupancy forecast for the next period at the
//! current rate — the car rate for the next period. Rates are announced ahead: the caller
//! publishes them with an `effective_from` at the start of the next period.

use crate::StepPolicy;
use serde::{Deserialize, Serialize};

/// What a policy sees of one (lot, band, day kind).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandInput {
    /// Time-weighted mean occupancy ratio of the last period, 0..=1.
    pub observed: f64,
    /// 15-minute buckets behind `observed`.
    pub buckets: u64,
    /// Predicted mean occupancy ratio of the next period at the current rate.
    pub forecast: Option<f64>,
    /// Periods since this rate last changed (`u32::MAX`: never, or unknown).
    pub periods_since_change: u32,
}

impl BandInput {
    /// Whether a rate may move: enough evidence, and held long enough since its last change.
    pub fn may_change(&self, min_buckets: u64, min_periods_between_changes: u32) -> bool {
        self.buckets >= min_buckets && self.periods_since_change >= min_periods_between_changes
    }
}

pub trait PricingPolicy {
    fn name(&self) -> &'static str;
    /// The car rate (cents per hour) for the next period.
    fn next_rate(&self, input: &BandInput, current: i64) -> i64;
}

/// Prices never move: the yardstick.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticPricing;

impl PricingPolicy for StaticPricing {
    fn name(&self) -> &'static str {
        "static"
    }

    fn next_rate(&self, _: &BandInput, current: i64) -> i64 {
        current
    }
}

impl PricingPolicy for StepPolicy {
    fn name(&self) -> &'static str {
        "SFpark step"
    }

    fn next_rate(&self, input: &BandInput, current: i64) -> i64 {
        if !input.may_change(self.min_buckets, self.min_periods_between_changes) {
            return current;
        }
        self.step(input.observed, current)
    }
}

/// Prices the next period on predicted occupancy: when the forecast at the current rate falls
/// outside the band, the rate moves toward the one that would bring it to the band's middle
/// under a constant price elasticity of occupancy, by at most `max_step`, in `increment`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastPolicy {
    pub target_low: f64,
    pub target_high: f64,
    /// Elasticity of occupancy to price (negative; visitors ≈ −0.4, commuters much less).
    pub elasticity: f64,
    pub max_step: i64,
    pub increment: i64,
    pub floor: i64,
    pub cap: i64,
    pub min_buckets: u64,
    pub min_periods_between_changes: u32,
}

impl Default for ForecastPolicy {
    fn default() -> Self {
        let step = StepPolicy::default();
        Self {
            target_low: step.target_low,
            target_high: step.target_high,
            elasticity: -0.3,
            max_step: 100,
            increment: 25,
            floor: step.floor,
            cap: step.cap,
            min_buckets: step.min_buckets,
            min_periods_between_changes: 1,
        }
    }
}

impl PricingPolicy for ForecastPolicy {
    fn name(&self) -> &'static str {
        "forecast-aware"
    }

    fn next_rate(&self, input: &BandInput, current: i64) -> i64 {
        if !input.may_change(self.min_buckets, self.min_periods_between_changes) {
            return current;
        }
        let predicted = input.forecast.unwrap_or(input.observed);
        if (self.target_low..=self.target_high).contains(&predicted) {
            return current;
        }
        let target = (self.target_low + self.target_high) / 2.0;
        let ideal = current as f64 * (target / predicted.max(0.05)).powf(1.0 / self.elasticity);
        let step = (ideal - current as f64).clamp(-(self.max_step as f64), self.max_step as f64);
        let step = (step / self.increment as f64).round() as i64 * self.increment;
        (current + step).clamp(self.floor, self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(observed: f64, forecast: Option<f64>) -> BandInput {
        BandInput {
            observed,
            buckets: 100,
            forecast,
            periods_since_change: u32::MAX,
        }
    }

    #[test]
    fn static_never_moves_and_step_waits_its_interval() {
        assert_eq!(StaticPricing.next_rate(&input(0.99, None), 300), 300);
        let step = StepPolicy {
            min_periods_between_changes: 2,
            ..StepPolicy::default()
        };
        let just_changed = BandInput {
            periods_since_change: 1,
            ..input(0.99, None)
        };
        assert_eq!(step.next_rate(&just_changed, 300), 300);
        assert_eq!(step.next_rate(&input(0.99, None), 300), 325);
    }

    #[test]
    fn forecast_policy_prices_the_prediction_not_the_past() {
        let p = ForecastPolicy::default();
        // Last period was full, but the forecast is inside the band: no change.
        assert_eq!(p.next_rate(&input(0.98, Some(0.7)), 300), 300);
        // Forecast 90 %: toward the price that gives 70 % at elasticity −0.3, capped at +$1.
        assert_eq!(p.next_rate(&input(0.7, Some(0.9)), 300), 400);
        // Forecast 65 %... inside; 50 %: down by (0.7/0.5)^(1/−0.3) ≈ ×0.33, capped at −$1.
        assert_eq!(p.next_rate(&input(0.7, Some(0.5)), 300), 200);
        // A small correction is rounded to the 25-cent increment: at elasticity −1, 82 % asks
        // for ×0.82/0.70 ≈ 1.17, +51¢ → +50¢.
        let elastic = ForecastPolicy {
            elasticity: -1.0,
            ..ForecastPolicy::default()
        };
        assert_eq!(elastic.next_rate(&input(0.7, Some(0.82)), 300), 350);
        assert_eq!(p.next_rate(&input(0.0, Some(0.0)), 100), 50, "floor");
        assert_eq!(p.next_rate(&input(1.0, Some(1.0)), 780), 800, "cap");
    }
}
