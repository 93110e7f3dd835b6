//! Regular time series of one lot: fixed-length slots labelled with their local slot of the day
//! and weekday, each observed or missing. Both the lake (hourly arrivals and occupancy) and the
//! CSV importer produce them; the model and the backtest only see this shape.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use warehouse_schema::outputs::LotHour;

/// One slot: where it falls in the local week, and its value if one was observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// 0..slots_per_day, in local time.
    pub slot_of_day: u32,
    /// 0 = Monday .. 6 = Sunday, in local time.
    pub weekday: u32,
    pub value: Option<f64>,
}

impl Slot {
    pub fn is_weekend(&self) -> bool {
        self.weekday >= 5
    }
}

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Vehicles arriving during the slot.
    Arrivals,
    /// Vehicles parked (mean over the slot, or the reading nearest to its start).
    Occupancy,
    /// The most vehicles present in the slot (a spot was free throughout when it is below
    /// capacity).
    Peak,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Self::Arrivals => "arrivals",
            Self::Occupancy => "occupancy",
            Self::Peak => "peak occupancy",
        }
    }
}

/// A lot's regular series, oldest slot first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The lot: its id, or the car park code of an imported file.
    pub key: String,
    pub capacity: f64,
    pub slots_per_day: usize,
    pub measure: Measure,
    pub slots: Vec<Slot>,
}

impl Series {
    pub fn slots_per_hour(&self) -> usize {
        (self.slots_per_day / 24).max(1)
    }

    pub fn day(&self) -> usize {
        self.slots_per_day
    }

    pub fn week(&self) -> usize {
        7 * self.slots_per_day
    }

    pub fn value(&self, i: usize) -> Option<f64> {
        self.slots.get(i).and_then(|s| s.value)
    }

    pub fn observed(&self) -> usize {
        self.slots.iter().filter(|s| s.value.is_some()).count()
    }

    /// Hourly series of `measure` per lot from the pipeline's lot-hours; hours missing from the
    /// input (no bucket at all) are missing slots, labelled by stepping the local clock on.
    pub fn from_lot_hours(hours: &[LotHour], measure: Measure) -> Vec<Series> {
        let mut by_lot: BTreeMap<_, Vec<&LotHour>> = BTreeMap::new();
        for h in hours {
            by_lot.entry(h.lot_id).or_default().push(h);
        }
        by_lot
            .into_iter()
            .map(|(lot, mut hs)| {
                hs.sort_by_key(|h| h.hour_start);
                let capacity = f64::from(hs.iter().map(|h| h.capacity).max().unwrap_or(0));
                let mut slots = Vec::with_capacity(hs.len());
                let mut prev: Option<(&LotHour, DateTime<Utc>)> = None;
                for h in hs {
                    if let Some((p, at)) = prev {
                        // Hours without a row: labels follow the previous local hour.
                        let gap = (h.hour_start - at).num_hours().max(1);
                        for k in 1..gap {
                            let local = p.local_hour as i64 + k;
                            slots.push(Slot {
                                slot_of_day: (local % 24) as u32,
                                weekday: ((i64::from(p.local_weekday) + local / 24) % 7) as u32,
                                value: None,
                            });
                        }
                    }
                    let value = match measure {
                        Measure::Arrivals => h.arrivals,
                        Measure::Occupancy => h.mean_occupancy * f64::from(h.capacity),
                        Measure::Peak => h.peak_present,
                    };
                    slots.push(Slot {
                        slot_of_day: h.local_hour,
                        weekday: h.local_weekday,
                        value: Some(value),
                    });
                    prev = Some((h, h.hour_start));
                }
                Series {
                    key: lot.to_string(),
                    capacity,
                    slots_per_day: 24,
                    measure,
                    slots,
                }
            })
            .collect()
    }
}
