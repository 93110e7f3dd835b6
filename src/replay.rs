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

use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use parkflow_api::http::AppState;
use parkflow_pricing::{BandDecision, BandInput, PricingPolicy, StaticPricing};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write;
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::RecordedStay;
use warehouse_schema::{DayKind, LotId, TimeBand, VehicleType};

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

type Key = (LotId, TimeBand, DayKind);
/// A lot's car rates by band and day kind: (effective from, cents), in start order.
type RateHistory = BTreeMap<(TimeBand, DayKind), Vec<(DateTime<Utc>, i64)>>;

/// A lot as the replay needs it.
struct LotInfo {
    capacity: u32,
    tz: Tz,
    default_cents: i64,
    history: RateHistory,
}

impl LotInfo {
    fn key(&self, lot: LotId, at: DateTime<Utc>) -> Key {
        (lot, TimeBand::at(at, self.tz), DayKind::at(at, self.tz))
    }

    /// The car rate actually in force at `at`.
    fn recorded_rate(&self, at: DateTime<Utc>) -> i64 {
        let key = (TimeBand::at(at, self.tz), DayKind::at(at, self.tz));
        self.history
            .get(&key)
            .and_then(|h| h.iter().rev().find(|(from, _)| *from <= at))
            .map_or(self.default_cents, |(_, c)| *c)
    }
}

/// A stay as played: when it arrives and leaves, and what it pays.
#[derive(Debug, Clone, Copy)]
struct Visit {
    lot: LotId,
    at: DateTime<Utc>,
    until: DateTime<Utc>,
    cents: i64,
}

/// Replay `policy` over the lake's stays in `[from, to)` (only `lot`, if given).
pub async fn replay(
    state: &AppState,
    lake: &Lake,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    only: Option<LotId>,
    policy: &dyn PricingPolicy,
) -> anyhow::Result<Replay> {
    anyhow::ensure!(from < to, "--from must be before --to");
    let from = from.duration_trunc(Duration::hours(1))?;
    let to = to.duration_trunc(Duration::hours(1))?;
    let ((low, high), elasticity) = judged_by(policy);

    let mut lots: BTreeMap<LotId, LotInfo> = BTreeMap::new();
    for l in state.services.lots().list().await? {
        if only.is_some_and(|o| o != l.id) {
            continue;
        }
        let default_cents = state
            .services
            .lots()
            .rate_schedule(l.id)
            .await?
            .default_cents_per_hour;
        let mut history = RateHistory::new();
        for r in state.services.lots().rate_history(l.id).await? {
            if r.vehicle_type == VehicleType::Car
                && let Some(at) = r.effective_from
            {
                history
                    .entry((r.band, r.day_kind))
                    .or_default()
                    .push((at, r.cents_per_hour));
            }
        }
        lots.insert(
            l.id,
            LotInfo {
                capacity: u32::try_from(l.capacity).unwrap_or(0).max(1),
                tz: l.time_zone.parse().unwrap_or(chrono_tz::UTC),
                default_cents,
                history,
            },
        );
    }
    if let Some(lot) = only {
        anyhow::ensure!(lots.contains_key(&lot), "no lot {lot}");
    }
    // Stays entering in the period, and those parked at its start (kept as they were).
    let all = parkflow_pipeline::recorded_stays(lake, from - Duration::days(7), to).await?;
    let stays: Vec<&RecordedStay> = all
        .iter()
        .filter(|s| lots.contains_key(&s.lot_id))
        .filter(|s| s.entered_at >= from || s.exited_at.is_none_or(|x| x > from))
        .collect();
    let in_period = stays.iter().filter(|s| s.entered_at >= from).count();

    // What actually happened, from the lake's own measures.
    let recorded = recorded_figures(lake, &lots, &stays, (from, to), (low, high)).await?;

    // The replay, week by week.
    let mut rates: BTreeMap<Key, i64> = BTreeMap::new();
    for (lot, info) in &lots {
        for band in TimeBand::ALL {
            for kind in DayKind::ALL {
                let at = info
                    .history
                    .get(&(band, kind))
                    .and_then(|h| h.iter().rev().find(|(f, _)| *f <= from))
                    .map_or(info.default_cents, |(_, c)| *c);
                rates.insert((*lot, band, kind), at);
            }
        }
    }
    let mut replayed: BTreeMap<LotId, Figures> =
        lots.keys().map(|l| (*l, Figures::default())).collect();
    let mut visits: Vec<Visit> = Vec::new();
    let mut pricer = Pricer::new(elasticity);
    let mut week_start = from;
    let mut played = Played::default();
    while week_start < to {
        let week_end = (week_start + Duration::days(7)).min(to);
        for (i, s) in stays.iter().enumerate() {
            let entered_here = s.entered_at >= week_start && s.entered_at < week_end;
            let carried = week_start == from && s.entered_at < from;
            if !(entered_here || carried) {
                continue;
            }
            let info = &lots[&s.lot_id];
            let until = s.exited_at.unwrap_or(to).min(to);
            let paid = if s.entered_at >= from {
                s.amount_cents.unwrap_or(0)
            } else {
                0
            };
            let (copies, ratio) = if carried {
                (1.0, 1.0)
            } else {
                let was = info.recorded_rate(s.entered_at).max(1) as f64;
                let now = rates[&info.key(s.lot_id, s.entered_at)] as f64;
                ((now / was).powf(elasticity), now / was)
            };
            let whole = copies.floor() as usize;
            let extra = usize::from(draw(i as u64, whole as u64) < copies - copies.floor());
            for _ in 0..whole + extra {
                visits.push(Visit {
                    lot: s.lot_id,
                    at: s.entered_at,
                    until,
                    cents: (paid as f64 * ratio).round() as i64,
                });
            }
        }
        played = play(&lots, &visits, (from, to));
        if week_end >= to {
            break;
        }
        // The week's occupancy per band, then next week's rates.
        let mut week_hours: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
        for (lot, hours) in &played.hours {
            let info = &lots[lot];
            for (h, share) in hours.iter().enumerate() {
                let at = from + Duration::hours(h as i64);
                if at >= week_start && at < week_end {
                    week_hours
                        .entry(info.key(*lot, at))
                        .or_default()
                        .push(*share);
                }
            }
        }
        for (k, old, new) in pricer.decide(policy, week_hours, &mut rates, |lot| {
            lots[&lot].default_cents
        }) {
            let f = replayed.get_mut(&k.0).expect("a known lot");
            f.changes += 1;
            f.changed_cents += (new - old).abs();
        }
        week_start = week_end;
    }
    for (lot, f) in &mut replayed {
        let info = &lots[lot];
        let hours = played.hours.get(lot).map_or(&[][..], Vec::as_slice);
        let (n, inside) = in_band(info, hours, from, (low, high));
        f.lot_hours = n;
        f.in_band = inside;
        f.turned_away = played.turned_away.get(lot).copied().unwrap_or(0);
        f.revenue_cents = played.revenue.get(lot).copied().unwrap_or(0);
    }
    Ok(Replay {
        policy: policy.name(),
        period: Some((from, to)),
        stays: in_period,
        lots: lots
            .keys()
            .map(|l| (l.to_string(), replayed[l], recorded[l]))
            .collect(),
    })
}

/// Replay `policy` over the car parks of an occupancy CSV (the importer's series). A CSV knows
/// no prices: every band starts at `cents_per_hour`, and revenue is vehicles × time × rate. A
/// slot's demand under a replayed rate is its recorded occupancy moved by the elasticity; what
/// exceeds the capacity is turned away (vehicles, summed over slots). "Lot-hours" count slots
/// from 07:00 here. The record is the same series at the constant rate: no changes, nobody
/// counted as turned away.
pub fn replay_series(
    series: &[parkflow_forecast::Series],
    cents_per_hour: i64,
    policy: &dyn PricingPolicy,
) -> anyhow::Result<Replay> {
    use parkflow_forecast::Slot;
    anyhow::ensure!(
        (1..=100_000).contains(&cents_per_hour),
        "--cents-per-hour must be 1 to 100000"
    );
    let ((low, high), elasticity) = judged_by(policy);
    type SlotKey = (usize, TimeBand, DayKind);
    let key = |i: usize, s: &parkflow_forecast::Series, slot: &Slot| -> SlotKey {
        let hour = slot.slot_of_day / s.slots_per_hour() as u32;
        let kind = if slot.is_weekend() {
            DayKind::Weekend
        } else {
            DayKind::Weekday
        };
        (i, TimeBand::of_local_hour(hour), kind)
    };
    let mut rates: BTreeMap<SlotKey, i64> = BTreeMap::new();
    for (i, _) in series.iter().enumerate() {
        for band in TimeBand::ALL {
            for kind in DayKind::ALL {
                rates.insert((i, band, kind), cents_per_hour);
            }
        }
    }
    let mut pricer = Pricer::new(elasticity);
    let mut replayed = vec![Figures::default(); series.len()];
    let mut recorded = vec![Figures::default(); series.len()];
    let mut excess = vec![0.0f64; series.len()];
    let mut readings = 0;
    let weeks = series
        .iter()
        .map(|s| s.slots.len().div_ceil(s.week()))
        .max()
        .unwrap_or(0);
    for w in 0..weeks {
        let mut week: BTreeMap<SlotKey, Vec<f64>> = BTreeMap::new();
        for (i, s) in series.iter().enumerate() {
            let capacity = s.capacity.max(1.0);
            let slot_hours = 24.0 / s.slots_per_day as f64;
            let span = (w * s.week()).min(s.slots.len())..((w + 1) * s.week()).min(s.slots.len());
            for slot in &s.slots[span] {
                let Some(v) = slot.value else {
                    continue;
                };
                readings += 1;
                let k = key(i, s, slot);
                let rate = rates[&k];
                let demand = v * (rate as f64 / cents_per_hour as f64).powf(elasticity);
                let occupied = demand.min(capacity);
                excess[i] += (demand - capacity).max(0.0);
                let daytime = slot.slot_of_day / s.slots_per_hour() as u32 >= 7;
                for (f, occ, cents) in [
                    (&mut replayed[i], occupied, rate),
                    (&mut recorded[i], v.min(capacity), cents_per_hour),
                ] {
                    f.revenue_cents += (occ * slot_hours * cents as f64).round() as i64;
                    if daytime {
                        f.lot_hours += 1;
                        f.in_band += usize::from((low..=high).contains(&(occ / capacity)));
                    }
                }
                week.entry(k).or_default().push(occupied / capacity);
            }
        }
        if w + 1 == weeks {
            break;
        }
        for ((i, ..), old, new) in
            pricer.decide(policy, week, &mut rates, |_: usize| cents_per_hour)
        {
            replayed[i].changes += 1;
            replayed[i].changed_cents += (new - old).abs();
        }
    }
    for (f, e) in replayed.iter_mut().zip(&excess) {
        f.turned_away = *e as usize;
    }
    Ok(Replay {
        policy: policy.name(),
        period: None,
        stays: readings,
        lots: series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key.clone(), replayed[i], recorded[i]))
            .collect(),
    })
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

/// A policy's weekly decisions over replayed weeks: what each band saw in the weeks before
/// (moved to the current rate by the elasticity), and how long each rate has held.
struct Pricer<K> {
    elasticity: f64,
    past: BTreeMap<K, Vec<(Vec<f64>, i64)>>,
    since_change: BTreeMap<K, u32>,
}

impl<K: Ord + Copy> Pricer<K> {
    fn new(elasticity: f64) -> Self {
        Self {
            elasticity,
            past: BTreeMap::new(),
            since_change: BTreeMap::new(),
        }
    }

    /// The policy's next rates after a week whose occupancy (shares, each `hours` of a band a
    /// quarter-hour bucket's weight of 4) was `week`: `rates` updated, the changes returned as
    /// (band, old, new). `standard` is a lot's standard rate, for the revenue guard.
    fn decide<L>(
        &mut self,
        policy: &dyn PricingPolicy,
        week: BTreeMap<K, Vec<f64>>,
        rates: &mut BTreeMap<K, i64>,
        standard: impl Fn(L) -> i64,
    ) -> Vec<(K, i64, i64)>
    where
        K: Into<(L, TimeBand, DayKind)>,
    {
        let mut prepared = Vec::new();
        for (k, hours) in week {
            let current = rates[&k];
            let observed = hours.iter().sum::<f64>() / hours.len().max(1) as f64;
            let history = self.past.entry(k).or_default();
            history.push((hours.clone(), current));
            let e = self.elasticity;
            let sample: Vec<f64> = history[history.len().saturating_sub(3)..]
                .iter()
                .flat_map(|(hs, rate)| {
                    let f = (current as f64 / (*rate).max(1) as f64).powf(e);
                    hs.iter().map(move |o| (o * f).min(1.0))
                })
                .collect();
            let mean =
                (!sample.is_empty()).then(|| sample.iter().sum::<f64>() / sample.len() as f64);
            prepared.push((k, current, observed, 4 * hours.len() as u64, mean, sample));
        }
        let mut decisions: Vec<BandDecision<'_>> = prepared
            .iter()
            .map(|(k, current, observed, buckets, mean, sample)| {
                let input = BandInput {
                    observed: *observed,
                    buckets: *buckets,
                    forecast: *mean,
                    hourly_forecast: sample,
                    standard_cents: Some(standard((*k).into().0)),
                    periods_since_change: *self.since_change.get(k).unwrap_or(&u32::MAX),
                };
                BandDecision {
                    input,
                    current: *current,
                    next: policy.next_rate(&input, *current),
                }
            })
            .collect();
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

/// Lot-hours from 07:00 local among `hours` (shares of capacity from `from` on), and those in
/// the band.
fn in_band(
    info: &LotInfo,
    hours: &[f64],
    from: DateTime<Utc>,
    (low, high): (f64, f64),
) -> (usize, usize) {
    let mut n = 0;
    let mut inside = 0;
    for (h, share) in hours.iter().enumerate() {
        let at = from + Duration::hours(h as i64);
        if local_hour(at, info.tz) >= 7 {
            n += 1;
            inside += usize::from((low..=high).contains(share));
        }
    }
    (n, inside)
}

fn local_hour(at: DateTime<Utc>, tz: Tz) -> u32 {
    use chrono::Timelike;
    at.with_timezone(&tz).hour()
}

/// The record: time in band from the occupancy job's lot-hours, revenue from the stays'
/// charges, changes from the rate history.
async fn recorded_figures(
    lake: &Lake,
    lots: &BTreeMap<LotId, LotInfo>,
    stays: &[&RecordedStay],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    (low, high): (f64, f64),
) -> anyhow::Result<BTreeMap<LotId, Figures>> {
    let mut out: BTreeMap<LotId, Figures> = lots.keys().map(|l| (*l, Figures::default())).collect();
    for h in parkflow_pipeline::lot_hours(lake).await? {
        let Some(f) = out.get_mut(&h.lot_id) else {
            continue;
        };
        if h.hour_start >= from && h.hour_start < to && h.local_hour >= 7 {
            f.lot_hours += 1;
            f.in_band += usize::from((low..=high).contains(&h.mean_occupancy));
        }
    }
    for s in stays.iter().filter(|s| s.entered_at >= from) {
        if let Some(f) = out.get_mut(&s.lot_id) {
            f.revenue_cents += s.amount_cents.unwrap_or(0);
        }
    }
    for (lot, info) in lots {
        let f = out.get_mut(lot).expect("a known lot");
        for history in info.history.values() {
            let mut before = info.default_cents;
            for (at, cents) in history {
                if *at >= from && *at < to && *cents != before {
                    f.changes += 1;
                    f.changed_cents += (cents - before).abs();
                }
                before = *cents;
            }
        }
    }
    Ok(out)
}

/// What playing visits against capacity gave, per lot.
#[derive(Default)]
struct Played {
    /// Mean occupancy (share of capacity) of each hour from the period's start.
    hours: BTreeMap<LotId, Vec<f64>>,
    turned_away: BTreeMap<LotId, usize>,
    revenue: BTreeMap<LotId, i64>,
}

/// Play `visits` against each lot's capacity over `[from, to)`, in arrival order.
fn play(
    lots: &BTreeMap<LotId, LotInfo>,
    visits: &[Visit],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Played {
    use std::cmp::Reverse;
    let n_hours = (to - from).num_hours().max(0) as usize;
    let mut by_lot: BTreeMap<LotId, Vec<&Visit>> = BTreeMap::new();
    for v in visits {
        by_lot.entry(v.lot).or_default().push(v);
    }
    let mut played = Played::default();
    for (lot, info) in lots {
        let mut seconds = vec![0.0f64; n_hours];
        let mut visits = by_lot.remove(lot).unwrap_or_default();
        visits.sort_by_key(|v| (v.at, v.until));
        let mut inside: BinaryHeap<Reverse<DateTime<Utc>>> = BinaryHeap::new();
        let (mut turned, mut revenue) = (0usize, 0i64);
        for v in visits {
            while inside.peek().is_some_and(|Reverse(t)| *t <= v.at) {
                inside.pop();
            }
            if inside.len() >= info.capacity as usize {
                turned += usize::from(v.at >= from);
                continue;
            }
            inside.push(Reverse(v.until));
            revenue += v.cents;
            // Car time inside the period, hour by hour.
            let (mut t, end) = (v.at.max(from), v.until.min(to));
            while t < end {
                let h = ((t - from).num_seconds() / 3600) as usize;
                let next = (from + Duration::hours(h as i64 + 1)).min(end);
                if let Some(s) = seconds.get_mut(h) {
                    *s += (next - t).num_milliseconds() as f64 / 1000.0;
                }
                t = next;
            }
        }
        let capacity = f64::from(info.capacity);
        played.hours.insert(
            *lot,
            seconds.iter().map(|s| s / 3600.0 / capacity).collect(),
        );
        played.turned_away.insert(*lot, turned);
        played.revenue.insert(*lot, revenue);
    }
    played
}

/// A draw in [0, 1) that depends only on a stay and its copy (SplitMix64).
fn draw(stay: u64, copy: u64) -> f64 {
    let mut z = stay
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(copy.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
