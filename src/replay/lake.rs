//! The replay over the lake's recorded stays and the operational store's rate history.

use super::{Figures, Pricer, Replay, judged_by};
use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use parkflow_api::http::AppState;
use parkflow_pricing::PricingPolicy;
use std::collections::{BTreeMap, BinaryHeap};
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::RecordedStay;
use warehouse_schema::{DayKind, LotId, TimeBand, VehicleType};

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
