//! Long histories without the API: the scenario's arrivals played against each lot's capacity
//! in memory, summed per hour as the pipeline's `LotHour` rows. The forecast backtest on
//! simulated data uses weeks of these; replaying weeks through the API would add nothing the
//! demo does not already prove.

use crate::scenario::{Arrival, LotPlan, SimConfig};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use warehouse_schema::LotId;
use warehouse_schema::outputs::LotHour;

/// What playing arrivals against capacity gave.
#[derive(Debug, Clone, Default)]
pub struct Played {
    /// Per lot and UTC hour of the period, in lot order then time order.
    pub hours: Vec<LotHour>,
    /// When each driver who found the lot full came.
    pub turned_away: Vec<DateTime<Utc>>,
    /// Entry time and charge of each admitted driver.
    pub charges: Vec<(DateTime<Utc>, i64)>,
}

/// Hourly arrivals (drivers who found room) and time-weighted mean occupancy per lot over the
/// whole period of `cfg`; a driver who finds the lot full is turned away and not counted.
pub fn lot_hours(cfg: &SimConfig, lots: &[(LotId, LotPlan)], arrivals: &[Arrival]) -> Vec<LotHour> {
    play(cfg, lots, arrivals, |_| 0).hours
}

/// Play `arrivals` against each lot's capacity over the period of `cfg`; `charge(arrival)` is
/// what an admitted driver pays.
pub fn play(
    cfg: &SimConfig,
    lots: &[(LotId, LotPlan)],
    arrivals: &[Arrival],
    mut charge: impl FnMut(&Arrival) -> i64,
) -> Played {
    let start = cfg.day_start(0);
    let hours = (cfg.end() - start).num_hours().max(0) as usize;
    let mut by_lot: BTreeMap<LotId, Vec<&Arrival>> = BTreeMap::new();
    for a in arrivals
        .iter()
        .filter(|a| a.at >= start && a.at < cfg.end())
    {
        by_lot.entry(a.lot_id).or_default().push(a);
    }
    let mut played = Played {
        hours: Vec::with_capacity(lots.len() * hours),
        ..Played::default()
    };
    for (lot, plan) in lots {
        let capacity = plan.capacity();
        let mut arrived = vec![0.0; hours];
        // Car-seconds parked per hour.
        let mut parked = vec![0.0; hours];
        let mut occupied = 0u32;
        let mut since = start;
        let mut departures: BinaryHeap<Reverse<DateTime<Utc>>> = BinaryHeap::new();
        // The most cars present in each hour.
        let mut peak = vec![0.0; hours];
        let mut advance = |to: DateTime<Utc>, occupied: u32, since: &mut DateTime<Utc>| {
            add_car_time(&mut parked, &mut peak, start, (*since, to), occupied);
            *since = to;
        };
        let mut lot_arrivals = by_lot.remove(lot).unwrap_or_default();
        lot_arrivals.sort_by_key(|a| (a.at, a.seq));
        for a in lot_arrivals {
            while let Some(Reverse(at)) = departures.peek().copied()
                && at <= a.at
            {
                departures.pop();
                advance(at, occupied, &mut since);
                occupied -= 1;
            }
            if occupied >= capacity {
                played.turned_away.push(a.at);
                continue;
            }
            advance(a.at, occupied, &mut since);
            occupied += 1;
            arrived[((a.at - start).num_hours()) as usize] += 1.0;
            played.charges.push((a.at, charge(a)));
            departures.push(Reverse(a.at + a.stay));
        }
        while let Some(Reverse(at)) = departures.pop() {
            let at = at.min(cfg.end());
            advance(at, occupied, &mut since);
            occupied -= 1;
        }
        for h in 0..hours {
            let hour_start = start + Duration::hours(h as i64);
            let local = hour_start.with_timezone(&plan.time_zone);
            played.hours.push(LotHour {
                lot_id: *lot,
                hour_start,
                local_hour: local.hour(),
                local_weekday: local.weekday().num_days_from_monday(),
                arrivals: arrived[h],
                mean_occupancy: parked[h] / 3600.0 / f64::from(capacity.max(1)),
                peak_present: peak[h],
                capacity: capacity as i32,
            });
        }
    }
    played
}

/// Add `occupied` cars parked from `from` to `to` to the hourly car-seconds, and to the most
/// present in each hour they span.
fn add_car_time(
    parked: &mut [f64],
    peak: &mut [f64],
    start: DateTime<Utc>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    occupied: u32,
) {
    if occupied == 0 || to <= from {
        return;
    }
    let mut t = from;
    while t < to {
        let h = (t - start).num_hours() as usize;
        let hour_end = start + Duration::hours(h as i64 + 1);
        let until = hour_end.min(to);
        if let Some(slot) = parked.get_mut(h) {
            *slot += f64::from(occupied) * (until - t).num_milliseconds() as f64 / 1000.0;
        }
        if let Some(most) = peak.get_mut(h) {
            *most = f64::max(*most, f64::from(occupied));
        }
        t = until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{arrivals, numbered_lots};

    #[test]
    fn hours_conserve_arrivals_and_never_exceed_capacity() {
        let cfg = SimConfig {
            lots: 3,
            days: 14,
            ..SimConfig::default()
        };
        let lots: Vec<(LotId, LotPlan)> = numbered_lots(&cfg);
        let (all, _, _) = arrivals(&cfg, &lots, |_, _, _| 200);
        let hours = lot_hours(&cfg, &lots, &all);
        assert_eq!(hours.len(), 3 * 14 * 24);
        let counted: f64 = hours.iter().map(|h| h.arrivals).sum();
        assert!(counted > 0.0 && counted <= all.len() as f64);
        assert!(
            hours
                .iter()
                .all(|h| (0.0..=1.0 + 1e-9).contains(&h.mean_occupancy))
        );
        // The most cars present in an hour is at least its mean and at most the capacity.
        assert!(hours.iter().all(|h| {
            let mean = h.mean_occupancy * f64::from(h.capacity);
            h.peak_present + 1e-9 >= mean && h.peak_present <= f64::from(h.capacity)
        }));
        assert!(hours.iter().any(|h| h.peak_present > 0.0));
        // Weekday mornings are busier than 03:00.
        let at = |hour: u32| -> f64 {
            hours
                .iter()
                .filter(|h| h.local_hour == hour && h.local_weekday < 5)
                .map(|h| h.arrivals)
                .sum()
        };
        assert!(at(8) > 5.0 * at(3), "{} vs {}", at(8), at(3));
    }
}
