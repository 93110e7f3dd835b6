//! Row types of the pipeline's outputs that other crates consume (pricing, forecast, reports),
//! so those crates read plain values and never depend on the query engine.

use crate::band::{DayKind, TimeBand};
use crate::ids::LotId;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Mean occupancy of one lot in one time band and day kind over an observation window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandOccupancy {
    pub lot_id: LotId,
    pub band: TimeBand,
    pub day_kind: DayKind,
    /// Time-weighted mean occupancy ratio, 0..=1.
    pub mean_occupancy: f64,
    pub peak_occupancy: f64,
    /// Number of 15-minute buckets observed.
    pub buckets: u64,
}

/// Arrivals and occupancy of one lot in one UTC hour, with its local calendar position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotHour {
    pub lot_id: LotId,
    pub hour_start: DateTime<Utc>,
    /// 0..24 in the lot's time zone.
    pub local_hour: u32,
    /// 0 = Monday .. 6 = Sunday, in the lot's time zone.
    pub local_weekday: u32,
    pub arrivals: f64,
    pub mean_occupancy: f64,
    /// The most vehicles present in the hour: in the lake, at its quarter-hour marks (the
    /// occupancy job's `cars_present`); a spot was free throughout when this is below capacity.
    pub peak_present: f64,
    pub capacity: i32,
}

/// One recorded stay, as pricing's replay plays it again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedStay {
    pub lot_id: LotId,
    pub vehicle_type: String,
    pub entered_at: DateTime<Utc>,
    /// None while the car is still in.
    pub exited_at: Option<DateTime<Utc>>,
    /// What the stay was charged (none while open).
    pub amount_cents: Option<i64>,
}

/// One stay's entry by a known driver, in the lot's local time (driver-level forecasting).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverEntry {
    /// The pseudonymous user key (the warehouse never holds contact data).
    pub user_key: String,
    pub lot_id: LotId,
    pub entered_local: chrono::NaiveDateTime,
}

/// The figures management asks for first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    pub stays: u64,
    pub open_stays: u64,
    pub revenue_cents: i64,
    pub mean_stay_minutes: f64,
    pub mean_occupancy: f64,
    pub lots: Vec<LotPeak>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotPeak {
    pub lot_id: LotId,
    pub lot_name: String,
    pub capacity: i32,
    pub peak_occupancy: f64,
    /// Local date and time of the start of the peak bucket, e.g. `2026-06-02 08:45`.
    pub peak_local: String,
    pub mean_occupancy: f64,
    pub max_cars_present: i64,
    pub revenue_cents: i64,
}

/// Management's usage report over a period (and optionally one lot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub lot: Option<LotId>,
    /// Mean occupancy by local weekday (0 = Monday) and hour.
    pub occupancy_by_hour: Vec<HourCell>,
    /// The fullest 15-minute buckets.
    pub peaks: Vec<ReportPeak>,
    pub lots: Vec<LotUsage>,
    /// (vehicle type, stays, revenue in cents).
    pub by_vehicle_type: Vec<(String, u64, i64)>,
    /// (entry method, stays, revenue in cents).
    pub by_method: Vec<(String, u64, i64)>,
    /// (payment method, payments captured, cents captured) of online payments.
    pub by_payment_method: Vec<(String, u64, i64)>,
    /// (dwell bucket, closed stays), shortest first.
    pub dwell: Vec<(String, u64)>,
    pub reservations: ReservationStats,
    /// (lead-time bucket, reservations made), shortest first.
    pub lead_times: Vec<(String, u64)>,
    /// Monthly passes sold and renewed, what they brought in, and their holders' entries.
    pub monthly_passes: PassStats,
    /// The currencies the period's amounts are in (ISO 4217 codes from its stays and payments),
    /// in code order: one for an operator in one country.
    pub currencies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourCell {
    pub weekday: u32,
    pub hour: u32,
    pub mean_occupancy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportPeak {
    pub lot_id: LotId,
    /// Local date and time of the bucket's start.
    pub local: String,
    pub occupancy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotUsage {
    pub lot_id: LotId,
    pub lot_name: String,
    pub capacity: i32,
    pub stays: u64,
    /// Stays per spot per day of the period.
    pub turnover: f64,
    pub revenue_cents: i64,
    pub mean_dwell_minutes: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PassStats {
    pub purchased: u64,
    pub renewed: u64,
    /// Passes that ended (cancelled, lapsed, unpaid, erased).
    pub ended: u64,
    /// Cents of the periods sold (purchases and renewals).
    pub revenue_cents: i64,
    /// Entries of holders on their pass.
    pub entries: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReservationStats {
    pub created: u64,
    pub cancelled: u64,
    pub no_shows: u64,
}

impl ReservationStats {
    pub fn cancellation_rate(&self) -> f64 {
        self.cancelled as f64 / self.created.max(1) as f64
    }

    pub fn no_show_rate(&self) -> f64 {
        self.no_shows as f64 / self.created.max(1) as f64
    }
}
