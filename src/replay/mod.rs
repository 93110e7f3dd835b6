//! `parkflow price replay`: what a pricing policy would have done over the lake's recorded
//! history.
//!
//! The stays recorded in `[from, to)` are played again week by week against each lot's
//! capacity. In the first week every band is at the rate that was actually in force; at each
//! week's end the policy sees the replayed week's occupancy per (lot, time band, day kind) and
//! sets the next week's car rates, as the pricing job would. A stay that entered when the
//! replayed rate differs from the recorded one is thinned (or grown) by the price elasticity:
//! it is kept `(replayed / recorded)^elasticity` times — the whole part always, the fraction
//! by a draw that depends only on the stay and its copy, so the same replay gives the same
//! answer — and pays its recorded amount scaled by the same rate ratio. A copy that finds its
//! lot full is turned away.
//!
//! "What actually happened" comes from the lake's own measures, not from this replay: the
//! occupancy job's lot-hours (time in band), the stays' recorded charges (revenue), and the
//! operational store's rate history (changes). Replaying the policy that ran — `static` on a
//! world whose rates did not move — must give the same figures; a test checks it.

//! `lake.rs` replays the lake; `csv.rs` an imported occupancy feed; both share the weekly
//! decisions (`Pricer`) and the figures here.

use crate::pricing_eval::Pricer;
use chrono::{DateTime, Utc};
use parkflow_pricing::{PricingPolicy, StaticPricing};
use std::fmt::Write;

mod csv;
mod lake;

pub use csv::replay_series;
pub use lake::replay;

/// Which policy a replay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayPolicy {
    /// Rates never move from those in force at the start.
    Static,
    /// The SFpark step rule (`pricing` settings).
    Step,
    /// The forecast-aware policy (`pricing` settings).
    Forecast,
}

/// One lot's figures (or all lots'), replayed or recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Lot-hours from 07:00 local (the priced bands), and those with mean occupancy inside the
    /// target band.
    pub lot_hours: usize,
    pub in_band: usize,
    /// Drivers who found the lot full (the record has none: a refused drive-up is no stay).
    pub turned_away: usize,
    pub revenue_cents: i64,
    /// Car rate changes and their summed size (cents).
    pub changes: usize,
    pub changed_cents: i64,
}

impl Figures {
    pub fn in_band_share(&self) -> f64 {
        self.in_band as f64 / self.lot_hours.max(1) as f64
    }

    fn mean_change(&self) -> f64 {
        self.changed_cents as f64 / self.changes.max(1) as f64
    }

    fn add(&mut self, o: &Figures) {
        self.lot_hours += o.lot_hours;
        self.in_band += o.in_band;
        self.turned_away += o.turned_away;
        self.revenue_cents += o.revenue_cents;
        self.changes += o.changes;
        self.changed_cents += o.changed_cents;
    }
}

/// A replay's outcome: per lot and overall, replayed next to recorded.
#[derive(Debug, Clone)]
pub struct Replay {
    pub policy: &'static str,
    /// The replayed period (none for a CSV: its whole series).
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Recorded stays replayed (slots with a reading, for a CSV).
    pub stays: usize,
    /// Per lot (or car park): replayed, recorded.
    pub lots: Vec<(String, Figures, Figures)>,
}

impl Replay {
    /// All lots together: (replayed, recorded).
    pub fn overall(&self) -> (Figures, Figures) {
        let (mut replayed, mut recorded) = (Figures::default(), Figures::default());
        for (_, r, a) in &self.lots {
            replayed.add(r);
            recorded.add(a);
        }
        (replayed, recorded)
    }

    pub fn render(&self) -> String {
        let mut s = match self.period {
            Some((from, to)) => format!(
                "replay of {} pricing over {} to {} ({} recorded stays, {} lots); recorded figures in brackets\n",
                self.policy,
                from.format("%Y-%m-%d %H:%M UTC"),
                to.format("%Y-%m-%d %H:%M UTC"),
                self.stays,
                self.lots.len()
            ),
            None => format!(
                "replay of {} pricing over an occupancy CSV ({} readings, {} car parks; lot-hours are slots from 07:00, turn-aways the demand above capacity); recorded figures in brackets\n",
                self.policy,
                self.stays,
                self.lots.len()
            ),
        };
        let _ = writeln!(
            s,
            "{:<14} {:>22} {:>20} {:>26} {:>16} {:>16}",
            "lot", "time in band", "turn-aways", "revenue", "changes", "mean change"
        );
        let row = |s: &mut String, name: &str, r: &Figures, a: &Figures| {
            let _ = writeln!(
                s,
                "{:<14} {:>8.1} % ({:>5.1} %) {:>10} ({:>6}) {:>12} ({:>11}) {:>7} ({:>6}) {:>7.0}¢ ({:>5.0}¢)",
                name,
                100.0 * r.in_band_share(),
                100.0 * a.in_band_share(),
                r.turned_away,
                a.turned_away,
                dollars(r.revenue_cents),
                dollars(a.revenue_cents),
                r.changes,
                a.changes,
                r.mean_change(),
                a.mean_change()
            );
        };
        for (lot, r, a) in &self.lots {
            row(&mut s, lot, r, a);
        }
        let (r, a) = self.overall();
        row(&mut s, "all", &r, &a);
        s
    }
}

fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

/// The target band a replay's time in band is judged on (the step rule's for `static`, which
/// has none), and the elasticity demand answers a replayed rate with (the forecast policy's
/// for policies that assume none).
fn judged_by(policy: &dyn PricingPolicy) -> ((f64, f64), f64) {
    let terms = policy.terms();
    let band = if policy.name() == StaticPricing.name() {
        let p = parkflow_pricing::StepPolicy::default();
        (p.target_low, p.target_high)
    } else {
        terms.target
    };
    let elasticity = terms
        .elasticity
        .unwrap_or(parkflow_pricing::ForecastPolicy::default().elasticity);
    (band, elasticity)
}
