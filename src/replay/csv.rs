//! The replay over an imported occupancy feed.

use super::{Figures, Pricer, Replay, judged_by};
use parkflow_pricing::PricingPolicy;
use std::collections::BTreeMap;
use warehouse_schema::{DayKind, TimeBand};

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
