//! Rows of the generated dimensions: date, time of day (15-minute grain) and vehicle type.

use crate::band::TimeBand;
use crate::tables::Table;
use crate::vehicle::VehicleType;
use arrow::array::{BooleanArray, Date32Array, Int32Array, RecordBatch, StringArray};
use chrono::{Datelike, NaiveDate};
use std::sync::Arc;

/// Minutes in one `dim_time` grain (and one occupancy bucket).
pub const TIME_GRAIN_MINUTES: i32 = 15;
/// Grains per day: keys run `0..96`.
pub const TIME_KEYS_PER_DAY: i32 = 24 * 60 / TIME_GRAIN_MINUTES;

/// `dim_time`: one row per 15 minutes of the day.
pub fn dim_time() -> RecordBatch {
    let keys: Vec<i32> = (0..TIME_KEYS_PER_DAY).collect();
    let minutes = |k: &i32| k * TIME_GRAIN_MINUTES;
    RecordBatch::try_new(
        Table::DimTime.schema(),
        vec![
            Arc::new(Int32Array::from(keys.clone())),
            Arc::new(keys.iter().map(|k| minutes(k) / 60).collect::<Int32Array>()),
            Arc::new(keys.iter().map(|k| minutes(k) % 60).collect::<Int32Array>()),
            Arc::new(
                keys.iter()
                    .map(|k| Some(TimeBand::of_local_hour((minutes(k) / 60) as u32).as_str()))
                    .collect::<StringArray>(),
            ),
        ],
    )
    .expect("dim_time matches its schema")
}

/// `dim_date`: one row per day of `[from, to]`.
pub fn dim_date(from: NaiveDate, to: NaiveDate) -> RecordBatch {
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let int = |f: &dyn Fn(&NaiveDate) -> i32| Arc::new(days.iter().map(f).collect::<Int32Array>());
    RecordBatch::try_new(
        Table::DimDate.schema(),
        vec![
            Arc::new(Date32Array::from(
                days.iter()
                    .map(|d| (*d - epoch).num_days() as i32)
                    .collect::<Vec<_>>(),
            )),
            int(&|d| d.year()),
            int(&|d| d.month() as i32),
            int(&|d| d.day() as i32),
            int(&|d| d.weekday().number_from_monday() as i32),
            int(&|d| d.iso_week().week() as i32),
            Arc::new(
                days.iter()
                    .map(|d| Some(d.weekday().number_from_monday() >= 6))
                    .collect::<BooleanArray>(),
            ),
        ],
    )
    .expect("dim_date matches its schema")
}

/// `dim_vehicle_type`: each type and the spot types it may use.
pub fn dim_vehicle_type() -> RecordBatch {
    let fits = |v: VehicleType| {
        v.preferred_spots()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    RecordBatch::try_new(
        Table::DimVehicleType.schema(),
        vec![
            Arc::new(
                VehicleType::ALL
                    .iter()
                    .map(|v| Some(v.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                VehicleType::ALL
                    .iter()
                    .map(|v| Some(fits(*v)))
                    .collect::<StringArray>(),
            ),
        ],
    )
    .expect("dim_vehicle_type matches its schema")
}
