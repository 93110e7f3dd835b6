//! Pricing policies behind one trait: given what a (lot, time band, day kind) saw in the last
//! period — and, for policies that use one, the occupancy forecast for the next period at the
//! current rate — the car rate for the next period. Rates are announced ahead: the caller
//! publishes them with an `effective_from` at the start of the next period.

use crate::StepPolicy;
use serde::{Deserialize, Serialize};

/// What a policy sees of one (lot, band, day kind).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandInput<'a> {
    /// Time-weighted mean occupancy ratio of the last period, 0..=1.
    pub observed: f64,
    /// 15-minute buckets behind `observed`.
    pub buckets: u64,
    /// Predicted mean occupancy ratio of the next period at the current rate.
    pub forecast: Option<f64>,
    /// Predicted occupancy ratio of each hour of the band in the next period at the current
    /// rate (empty when unknown): what the share of hours inside the target band is judged on.
    pub hourly_forecast: &'a [f64],
    /// The lot's standard rate (its default), when known: the revenue guard's reference.
    pub standard_cents: Option<i64>,
    /// Periods since this rate last changed (`u32::MAX`: never, or unknown).
    pub periods_since_change: u32,
}

impl BandInput<'_> {
    /// Whether a rate may move: enough evidence, and held long enough since its last change.
    pub fn may_change(&self, min_buckets: u64, min_periods_between_changes: u32) -> bool {
        self.buckets >= min_buckets && self.periods_since_change >= min_periods_between_changes
    }
}

/// What a policy's decisions are explained by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyTerms {
    /// The target band of occupancy.
    pub target: (f64, f64),
    pub floor: i64,
    pub cap: i64,
    /// The price elasticity of occupancy it assumes, if it uses one.
    pub elasticity: Option<f64>,
}

pub trait PricingPolicy {
    fn name(&self) -> &'static str;
    /// The terms its decisions are explained by.
    fn terms(&self) -> PolicyTerms;
    /// The car rate (cents per hour) for the next period.
    fn next_rate(&self, input: &BandInput<'_>, current: i64) -> i64;
    /// Revise the next rates of many bands together (each `next` from [`Self::next_rate`]), e.g.
    /// all of an operator's; by default they stand.
    fn balance(&self, _lot: &mut [BandDecision<'_>]) {}
}

/// One band's decision, before it is announced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandDecision<'a> {
    pub input: BandInput<'a>,
    pub current: i64,
    pub next: i64,
}

/// Prices never move: the yardstick.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticPricing;

impl PricingPolicy for StaticPricing {
    fn name(&self) -> &'static str {
        "static"
    }

    fn terms(&self) -> PolicyTerms {
        PolicyTerms {
            target: (0.0, 1.0),
            floor: 0,
            cap: i64::MAX,
            elasticity: None,
        }
    }

    fn next_rate(&self, _: &BandInput<'_>, current: i64) -> i64 {
        current
    }
}

impl PricingPolicy for StepPolicy {
    fn name(&self) -> &'static str {
        "SFpark step"
    }

    fn terms(&self) -> PolicyTerms {
        PolicyTerms {
            target: (self.target_low, self.target_high),
            floor: self.floor,
            cap: self.cap,
            elasticity: None,
        }
    }

    fn next_rate(&self, input: &BandInput<'_>, current: i64) -> i64 {
        if !input.may_change(self.min_buckets, self.min_periods_between_changes) {
            return current;
        }
        self.step(input.observed, current)
    }
}

/// Prices the next period on predicted occupancy. With an hourly forecast it takes, among the
/// rates within `max_step` of the current one (in `increment`s), the one under which the most
/// forecast hours fall inside the target band (less the hours that would be full), moving only
/// for a strict gain (ties: the smallest move). The forecast hours are moved to each candidate
/// rate by a constant price elasticity. Without hours it moves toward the rate that brings the
/// mean to the band's middle.
///
/// Revenue: demand is inelastic, so a cut fills a lot by less than it costs. The revenue guard
/// ([`PricingPolicy::balance`] over all the operator's bands) takes cuts back, deepest first,
/// until the predicted revenue is at least what the standard rates would earn; raises where
/// lots are full pay for cuts where they are empty. `min_vs_standard` is a stricter, per-band
/// floor.
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
    /// The lowest rate as a share of the lot's standard rate (`None`: only `floor`).
    pub min_vs_standard: Option<f64>,
    /// Keep the predicted revenue of the bands balanced together at least what their standard
    /// rates would earn: cuts below the standard rate are taken back, deepest first, until the
    /// raises pay for them.
    pub revenue_guard: bool,
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
            increment: 25,
            floor: step.floor,
            cap: step.cap,
            max_step: 200,
            min_vs_standard: None,
            revenue_guard: true,
            min_buckets: step.min_buckets,
            min_periods_between_changes: 1,
        }
    }
}

impl ForecastPolicy {
    fn lowest(&self, input: &BandInput<'_>) -> i64 {
        match (self.min_vs_standard, input.standard_cents) {
            (Some(share), Some(standard)) => {
                self.floor.max((standard as f64 * share).round() as i64)
            }
            _ => self.floor,
        }
    }

    /// Predicted occupancy-hours × rate of a band at `rate`: its revenue, up to the lot's
    /// capacity as a factor.
    fn revenue(&self, d: &BandDecision<'_>, rate: i64) -> f64 {
        let factor = (rate as f64 / d.current.max(1) as f64).powf(self.elasticity);
        let occupied: f64 = if d.input.hourly_forecast.is_empty() {
            d.input.forecast.unwrap_or(d.input.observed)
        } else {
            d.input
                .hourly_forecast
                .iter()
                .map(|o| (o * factor).min(1.0))
                .sum()
        };
        rate as f64 * occupied
    }

    /// Forecast hours inside the band at rate `rate` (the forecast being at `current`).
    /// The score of rate `rate` for a band whose forecast hours are at `current`: hours inside
    /// the target band, less hours that would be full (drivers turned away).
    fn score(&self, hours: &[f64], current: i64, rate: i64) -> i64 {
        let factor = (rate as f64 / current.max(1) as f64).powf(self.elasticity);
        hours
            .iter()
            .map(|o| {
                let predicted = (o * factor).min(1.0);
                if (self.target_low..=self.target_high).contains(&predicted) {
                    1
                } else if predicted >= FULL {
                    -1
                } else {
                    0
                }
            })
            .sum()
    }
}

/// An hour at or above this occupancy counts as full.
const FULL: f64 = 0.98;

impl PricingPolicy for ForecastPolicy {
    fn name(&self) -> &'static str {
        "forecast-aware"
    }

    fn terms(&self) -> PolicyTerms {
        PolicyTerms {
            target: (self.target_low, self.target_high),
            floor: self.floor,
            cap: self.cap,
            elasticity: Some(self.elasticity),
        }
    }

    fn next_rate(&self, input: &BandInput<'_>, current: i64) -> i64 {
        if !input.may_change(self.min_buckets, self.min_periods_between_changes) {
            return current;
        }
        let (lowest, highest) = (self.lowest(input), self.cap.max(self.lowest(input)));
        if !input.hourly_forecast.is_empty() {
            let hours = input.hourly_forecast;
            let mut best = (self.score(hours, current, current), current);
            let steps = self.max_step / self.increment.max(1);
            for k in 1..=steps {
                for rate in [current + k * self.increment, current - k * self.increment] {
                    if !(lowest..=highest).contains(&rate) {
                        continue;
                    }
                    let n = self.score(hours, current, rate);
                    if n > best.0 {
                        best = (n, rate);
                    }
                }
            }
            // A rate below the guard (an older, lower rate) comes up to it.
            return best.1.clamp(lowest, highest);
        }
        let predicted = input.forecast.unwrap_or(input.observed);
        if (self.target_low..=self.target_high).contains(&predicted) {
            return current.clamp(lowest, highest);
        }
        let target = (self.target_low + self.target_high) / 2.0;
        let ideal = current as f64 * (target / predicted.max(0.05)).powf(1.0 / self.elasticity);
        let step = (ideal - current as f64).clamp(-(self.max_step as f64), self.max_step as f64);
        let step = (step / self.increment as f64).round() as i64 * self.increment;
        (current + step).clamp(lowest, highest)
    }

    fn balance(&self, lot: &mut [BandDecision<'_>]) {
        if !self.revenue_guard {
            return;
        }
        let standard = |d: &BandDecision<'_>| d.input.standard_cents.unwrap_or(d.current);
        let reference: f64 = lot.iter().map(|d| self.revenue(d, standard(d))).sum();
        let mut planned: f64 = lot.iter().map(|d| self.revenue(d, d.next)).sum();
        while planned < reference {
            let deepest = lot
                .iter()
                .enumerate()
                .filter(|(_, d)| d.next < standard(d))
                .min_by(|(_, a), (_, b)| {
                    let ratio = |d: &BandDecision<'_>| d.next as f64 / standard(d) as f64;
                    ratio(a).total_cmp(&ratio(b))
                })
                .map(|(i, _)| i);
            let Some(i) = deepest else {
                break;
            };
            let d = &mut lot[i];
            let up = (d.next + self.increment).min(standard(d));
            planned += self.revenue(d, up) - self.revenue(d, d.next);
            d.next = up;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(observed: f64, forecast: Option<f64>) -> BandInput<'static> {
        BandInput {
            observed,
            buckets: 100,
            forecast,
            hourly_forecast: &[],
            standard_cents: None,
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
        // Without an hourly forecast: toward the band's middle, at most a dollar a period.
        let p = ForecastPolicy {
            max_step: 100,
            ..ForecastPolicy::default()
        };
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
            ..p.clone()
        };
        assert_eq!(elastic.next_rate(&input(0.7, Some(0.82)), 300), 350);
        assert_eq!(p.next_rate(&input(0.0, Some(0.0)), 100), 50, "floor");
        assert_eq!(p.next_rate(&input(1.0, Some(1.0)), 780), 800, "cap");
    }

    fn hourly<'a>(hours: &'a [f64], standard: i64) -> BandInput<'a> {
        BandInput {
            hourly_forecast: hours,
            standard_cents: Some(standard),
            ..input(0.0, None)
        }
    }

    #[test]
    fn with_hours_the_rate_that_puts_the_most_hours_in_band_wins() {
        let p = ForecastPolicy::default();
        // Two full hours and two at 75 %: a raise takes the full hours out of "full" (each full
        // hour counts against a rate) while the others stay in band, so it scores better.
        let hours = [1.0, 1.0, 0.75, 0.75];
        let next = p.next_rate(&hourly(&hours, 200), 200);
        assert!(next > 200, "{next}");
        let score = |rate: i64| p.score(&hours, 200, rate);
        assert!(score(next) > score(200), "{next}");
        // Already the best: no move (and no move for a tie).
        let in_band = [0.7, 0.65, 0.75];
        assert_eq!(p.next_rate(&hourly(&in_band, 200), 200), 200);
        // An empty band is cut toward the band, within the step and never under the floor.
        let empty = [0.5, 0.52, 0.55];
        let cut = p.next_rate(&hourly(&empty, 200), 200);
        assert!((50..200).contains(&cut), "{cut}");
        assert!(p.score(&empty, 200, cut) > 0, "{cut}");
    }

    #[test]
    fn the_revenue_guard_takes_back_the_deepest_cuts_until_raises_pay_for_them() {
        let p = ForecastPolicy::default();
        const FULL_HOURS: [f64; 4] = [1.0; 4];
        const EMPTY_HOURS: [f64; 4] = [0.3; 4];
        let (full, empty) = (&FULL_HOURS, &EMPTY_HOURS);
        let decision = |hours: &'static [f64], next: i64| BandDecision {
            input: hourly(hours, 200),
            current: 200,
            next,
        };
        // A raise where full and a small cut where empty: the raise pays; both stand.
        let mut paid = [decision(full, 300), decision(empty, 175)];
        p.balance(&mut paid);
        assert_eq!((paid[0].next, paid[1].next), (300, 175));
        // Deep cuts with no raise to pay for them are taken back to the standard rate.
        let mut unpaid = [decision(empty, 100), decision(empty, 150)];
        p.balance(&mut unpaid);
        assert_eq!((unpaid[0].next, unpaid[1].next), (200, 200));
        // Without the guard they stand.
        let off = ForecastPolicy {
            revenue_guard: false,
            ..ForecastPolicy::default()
        };
        let mut kept = [decision(empty, 100)];
        off.balance(&mut kept);
        assert_eq!(kept[0].next, 100);
    }
}
