//! `parkflow price evaluate`: pricing policies in a closed loop on simulated weeks. Each week the
//! simulator's demand meets the rates in force (visitors respond with elasticity −0.4,
//! commuters −0.1); at the week's end each policy sees the week's occupancy per (lot, time band,
//! day kind), hour by hour, and announces the next week's rates; a policy may then revise all
//! its decisions together (the forecast-aware policy's revenue guard). Stays pay each hour at
//! the rate in force then. The same demand draws serve every policy (common random numbers),
//! so differences come from the prices alone.

use chrono::{DateTime, Duration, DurationRound, Utc};
use parkflow_pricing::{
    BandDecision, BandInput, ForecastPolicy, PricingPolicy, StaticPricing, StepPolicy,
    vehicle_factor,
};
use parkflow_simulator::history::play;
use parkflow_simulator::scenario::{arrivals, numbered_lots};
use parkflow_simulator::{Arrival, LotPlan, SimConfig};
use std::collections::BTreeMap;
use std::fmt::Write;
use warehouse_schema::{DayKind, LotId, TimeBand};

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub weeks: u32,
    pub lots: usize,
    pub seed: u64,
}

/// One policy's outcome over the evaluated weeks (the first week, at default prices for every
/// policy, is left out).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyResult {
    pub policy: &'static str,
    /// Lot-hours from 07:00 to midnight (the priced bands; nights are left out).
    pub lot_hours: usize,
    /// Those with mean occupancy inside the 60–80 % band.
    pub in_band: usize,
    /// Drivers who came and found the lot full.
    pub turned_away: usize,
    pub revenue_cents: i64,
    /// Rate changes announced (car rates per lot, band and day kind).
    pub changes: usize,
    /// Mean absolute size of a change, in cents.
    pub mean_change_cents: f64,
}

impl PolicyResult {
    pub fn in_band_share(&self) -> f64 {
        self.in_band as f64 / self.lot_hours.max(1) as f64
    }
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub options: EvalOptions,
    pub results: Vec<PolicyResult>,
}

impl Evaluation {
    pub fn get(&self, policy: &str) -> Option<&PolicyResult> {
        self.results.iter().find(|r| r.policy == policy)
    }

    pub fn render(&self) -> String {
        let o = &self.options;
        let mut s = format!(
            "closed-loop pricing evaluation: {} lots, {} weeks (week 1 at default prices left out), seed {}\n",
            o.lots, o.weeks, o.seed
        );
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:>12} {:>14} {:>9} {:>12}",
            "policy", "time in band", "turn-aways", "revenue", "changes", "mean change"
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "{:<16} {:>11.1}% {:>12} {:>14} {:>9} {:>11.0}¢",
                r.policy,
                100.0 * r.in_band_share(),
                r.turned_away,
                format!("${:.2}", r.revenue_cents as f64 / 100.0),
                r.changes,
                r.mean_change_cents
            );
        }
        if let Some(base) = self.get("static") {
            for r in self.results.iter().filter(|r| r.policy != "static") {
                let _ = writeln!(
                    s,
                    "{}: time in band {:.2}× static, revenue {:+.1}% vs static, turn-aways {:+.1}%",
                    r.policy,
                    r.in_band_share() / base.in_band_share().max(f64::EPSILON),
                    100.0 * (r.revenue_cents - base.revenue_cents) as f64
                        / base.revenue_cents.max(1) as f64,
                    100.0 * (r.turned_away as f64 - base.turned_away as f64)
                        / (base.turned_away.max(1) as f64)
                );
            }
        }
        s
    }
}

type Key = (LotId, TimeBand, DayKind);

/// Static, SFpark step and forecast-aware pricing on the same simulated weeks.
pub fn evaluate(options: EvalOptions) -> Evaluation {
    let base = SimConfig {
        seed: options.seed,
        lots: options.lots,
        days: options.weeks * 7,
        ..SimConfig::default()
    };
    let plans: Vec<(LotId, LotPlan)> = numbered_lots(&base);
    let policies: [&dyn PricingPolicy; 3] = [
        &StaticPricing,
        &StepPolicy::default(),
        &ForecastPolicy::default(),
    ];
    let results = policies
        .into_iter()
        .map(|p| run(&base, &plans, p))
        .collect();
    Evaluation { options, results }
}

fn key(lot: LotId, at: DateTime<Utc>, cfg: &SimConfig) -> Key {
    (
        lot,
        TimeBand::at(at, cfg.time_zone),
        DayKind::at(at, cfg.time_zone),
    )
}

/// The occupancy the policy expects next week at the current rate: the mean of the band's last
/// three weeks, each moved to the current rate by the policy's assumed elasticity.
fn forecast(history: &[(f64, i64)], current: i64, elasticity: f64) -> Option<f64> {
    let recent = &history[history.len().saturating_sub(3)..];
    if recent.is_empty() {
        return None;
    }
    let sum: f64 = recent
        .iter()
        .map(|(occ, rate)| occ * (current as f64 / (*rate).max(1) as f64).powf(elasticity))
        .sum();
    Some((sum / recent.len() as f64).min(1.0))
}

/// Each hour of the band in the last three weeks, moved to the current rate by the policy's
/// assumed elasticity: the sample of hours the next week is expected to look like.
fn hourly_forecast(history: &[(Vec<f64>, i64)], current: i64, elasticity: f64) -> Vec<f64> {
    history[history.len().saturating_sub(3)..]
        .iter()
        .flat_map(|(hours, rate)| {
            let factor = (current as f64 / (*rate).max(1) as f64).powf(elasticity);
            hours.iter().map(move |o| (o * factor).min(1.0))
        })
        .collect()
}

/// A policy's weekly decisions over weeks played again (here, and in `parkflow price replay`):
/// what each band saw in the weeks before, moved to the current rate by the elasticity, and how
/// long each rate has held.
pub(crate) struct Pricer<K> {
    elasticity: f64,
    /// Per band: each past week's mean occupancy, and its hours, with the rate of that week.
    means: BTreeMap<K, Vec<(f64, i64)>>,
    hours: BTreeMap<K, Vec<(Vec<f64>, i64)>>,
    since_change: BTreeMap<K, u32>,
}

impl<K: Ord + Copy> Pricer<K> {
    pub(crate) fn new(elasticity: f64) -> Self {
        Self {
            elasticity,
            means: BTreeMap::new(),
            hours: BTreeMap::new(),
            since_change: BTreeMap::new(),
        }
    }

    /// The policy's next rates after a week whose hourly occupancy per band was `week` (each
    /// hour weighs four quarter-hour buckets): `rates` updated, the changes returned as (band,
    /// old, new). `standard` is a lot's standard rate, for the revenue guard.
    pub(crate) fn decide<L>(
        &mut self,
        policy: &dyn PricingPolicy,
        week: BTreeMap<K, Vec<f64>>,
        rates: &mut BTreeMap<K, i64>,
        standard: impl Fn(L) -> i64,
    ) -> Vec<(K, i64, i64)>
    where
        K: Into<(L, TimeBand, DayKind)>,
    {
        // Each band's forecast, then its next rate, then all rates together.
        let mut prepared = Vec::with_capacity(week.len());
        for (k, hours) in week {
            let current = rates[&k];
            let observed = hours.iter().sum::<f64>() / hours.len().max(1) as f64;
            let buckets = 4 * hours.len() as u64;
            let past = self.means.entry(k).or_default();
            past.push((observed, current));
            let mean_forecast = forecast(past, current, self.elasticity);
            let past_hours = self.hours.entry(k).or_default();
            past_hours.push((hours, current));
            let hours_forecast = hourly_forecast(past_hours, current, self.elasticity);
            prepared.push((k, current, observed, buckets, mean_forecast, hours_forecast));
        }
        let mut decisions: Vec<BandDecision<'_>> = prepared
            .iter()
            .map(
                |(k, current, observed, buckets, mean_forecast, hours_forecast)| {
                    let input = BandInput {
                        observed: *observed,
                        buckets: *buckets,
                        forecast: *mean_forecast,
                        hourly_forecast: hours_forecast,
                        standard_cents: Some(standard((*k).into().0)),
                        periods_since_change: *self.since_change.get(k).unwrap_or(&u32::MAX),
                    };
                    BandDecision {
                        input,
                        current: *current,
                        next: policy.next_rate(&input, *current),
                    }
                },
            )
            .collect();
        // The operator's revenue is guarded over all its lots at once.
        policy.balance(&mut decisions);
        let mut changes = Vec::new();
        for ((k, ..), d) in prepared.iter().zip(&decisions) {
            let since = self.since_change.entry(*k).or_insert(u32::MAX);
            if d.next == d.current {
                *since = since.saturating_add(1);
            } else {
                changes.push((*k, d.current, d.next));
                *since = 1;
                rates.insert(*k, d.next);
            }
        }
        changes
    }
}

fn run(base: &SimConfig, plans: &[(LotId, LotPlan)], policy: &dyn PricingPolicy) -> PolicyResult {
    let elasticity = ForecastPolicy::default().elasticity;
    let mut rates: BTreeMap<Key, i64> = BTreeMap::new();
    for (lot, plan) in plans {
        for band in TimeBand::ALL {
            for kind in DayKind::ALL {
                rates.insert((*lot, band, kind), plan.default_cents);
            }
        }
    }
    let mut weekly_rates = Vec::new();
    let mut pricer = Pricer::new(elasticity);
    let standard: BTreeMap<LotId, i64> = plans.iter().map(|(l, p)| (*l, p.default_cents)).collect();
    let mut all: Vec<Arrival> = Vec::new();
    let (mut changes, mut moved) = (0usize, 0i64);
    for week in 0..base.weeks() {
        weekly_rates.push(rates.clone());
        let cfg = SimConfig {
            seed: base.seed.wrapping_add(u64::from(week) * 1_000_003),
            start: base.start + Duration::days(7 * i64::from(week)),
            days: 7,
            ..base.clone()
        };
        let (week_arrivals, _, _) = arrivals(&cfg, plans, |lot, vt, at| {
            (rates[&key(lot, at, base)] as f64 * vehicle_factor(vt)).round() as i64
        });
        all.extend(week_arrivals);
        if week + 1 == base.weeks() {
            break;
        }
        // The week's occupancy per band, then next week's rates.
        let so_far = SimConfig {
            days: 7 * (week + 1),
            ..base.clone()
        };
        let week_start = cfg.day_start(0);
        let mut week_hours: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
        for h in play(&so_far, plans, &all, |_| 0).hours {
            if h.hour_start >= week_start {
                week_hours
                    .entry(key(h.lot_id, h.hour_start, base))
                    .or_default()
                    .push(h.mean_occupancy);
            }
        }
        for (_, old, new) in pricer.decide(policy, week_hours, &mut rates, |lot| standard[&lot]) {
            changes += 1;
            moved += (new - old).abs();
        }
    }
    let evaluated_from = base.day_start(7);
    // A stay pays each hour at the rate in force then (as the API's tariff charges across
    // bands): band and week boundaries fall on whole hours.
    let played = play(base, plans, &all, |a| {
        let end = a.at + a.stay;
        let mut t = a.at;
        let mut cents = 0.0;
        while t < end {
            let hour = t.duration_trunc(Duration::hours(1)).unwrap_or(t);
            let until = (hour + Duration::hours(1)).min(end);
            let week = ((t - base.day_start(0)).num_days().max(0) / 7) as usize;
            let rate = weekly_rates[week.min(weekly_rates.len() - 1)][&key(a.lot_id, t, base)];
            cents += rate as f64 * (until - t).num_seconds() as f64 / 3600.0;
            t = until;
        }
        (cents * vehicle_factor(a.vehicle_type)).ceil() as i64
    });
    let priced: Vec<_> = played
        .hours
        .iter()
        .filter(|h| h.hour_start >= evaluated_from && h.local_hour >= 7)
        .collect();
    PolicyResult {
        policy: policy.name(),
        lot_hours: priced.len(),
        in_band: priced
            .iter()
            .filter(|h| (0.6..=0.8).contains(&h.mean_occupancy))
            .count(),
        turned_away: played
            .turned_away
            .iter()
            .filter(|t| **t >= evaluated_from)
            .count(),
        revenue_cents: played
            .charges
            .iter()
            .filter(|(t, _)| *t >= evaluated_from)
            .map(|(_, c)| c)
            .sum(),
        changes,
        mean_change_cents: moved as f64 / changes.max(1) as f64,
    }
}
