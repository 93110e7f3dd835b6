//! `lots` and `spots`: a lot's settings and its spots (with positions). What a valid lot is
//! (time zone, name, capacity) is `crate::service::lots`'s.

use super::Db;
use crate::error::Result;
use warehouse_schema::LotId;

/// A new lot's row.
#[derive(Debug, Clone)]
pub struct NewLotRow<'a> {
    pub name: &'a str,
    pub time_zone: &'a str,
    pub latitude: f64,
    pub longitude: f64,
    pub currency: &'a str,
    pub default_cents_per_hour: i64,
    pub created_at: i64,
    pub ev_spots_open_to_cars: bool,
}

/// Insert a lot; its id.
pub async fn insert<'c>(db: impl Db<'c>, l: &NewLotRow<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO lots (name, time_zone, latitude, longitude, currency, default_cents_per_hour, created_at,
                           ev_spots_open_to_cars)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(l.name)
    .bind(l.time_zone)
    .bind(l.latitude)
    .bind(l.longitude)
    .bind(l.currency)
    .bind(l.default_cents_per_hour)
    .bind(l.created_at)
    .bind(i64::from(l.ev_spots_open_to_cars))
    .fetch_one(db)
    .await?)
}

/// Insert an open spot of `lot`.
pub async fn insert_spot<'c>(
    db: impl Db<'c>,
    lot: i64,
    label: &str,
    vehicle_type: &str,
    (latitude, longitude): (f64, f64),
) -> Result<()> {
    sqlx::query(
        "INSERT INTO spots (lot_id, label, vehicle_type, latitude, longitude) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(lot)
    .bind(label)
    .bind(vehicle_type)
    .bind(latitude)
    .bind(longitude)
    .execute(db)
    .await?;
    Ok(())
}

/// A lot with its open spots and the cars in it now.
#[derive(Debug, Clone)]
pub struct LotOverview {
    pub id: i64,
    pub name: String,
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    pub currency: String,
    pub default_cents_per_hour: i64,
    pub capacity: i64,
    pub occupied: i64,
}

from_row!(LotOverview {
    id,
    name,
    time_zone,
    latitude,
    longitude,
    currency,
    default_cents_per_hour,
    capacity,
    occupied
});

/// Every lot (or only `only`), by id.
pub async fn overview<'c>(db: impl Db<'c>, only: Option<LotId>) -> Result<Vec<LotOverview>> {
    Ok(sqlx::query_as(
        "SELECT l.id, l.name, l.time_zone, l.latitude, l.longitude, l.currency, l.default_cents_per_hour,
                (SELECT COUNT(*) FROM spots s WHERE s.lot_id = l.id AND s.closed = 0) AS capacity,
                (SELECT COUNT(*) FROM parking_sessions p WHERE p.lot_id = l.id AND p.exited_at IS NULL) AS occupied
         FROM lots l WHERE ($1 IS NULL OR l.id = $1) ORDER BY l.id",
    )
    .bind(only.map(|l| l.0))
    .fetch_all(db)
    .await?)
}

/// A lot's settings: what a stay, a booking (its rules) or a rate needs of its lot.
#[derive(Debug, Clone)]
pub struct LotSettings {
    pub time_zone: String,
    pub currency: String,
    pub default_cents_per_hour: i64,
    pub entry_grace_minutes: i64,
    pub drive_up_horizon_minutes: i64,
    pub ev_spots_open_to_cars: i64,
    pub booking_window_days: i64,
    pub min_reservation_minutes: i64,
    pub max_reservation_minutes: i64,
}

from_row!(LotSettings {
    time_zone,
    currency,
    default_cents_per_hour,
    entry_grace_minutes,
    drive_up_horizon_minutes,
    ev_spots_open_to_cars,
    booking_window_days,
    min_reservation_minutes,
    max_reservation_minutes,
});

pub async fn settings<'c>(db: impl Db<'c>, lot: LotId) -> Result<Option<LotSettings>> {
    Ok(sqlx::query_as(
        "SELECT time_zone, currency, default_cents_per_hour, entry_grace_minutes, drive_up_horizon_minutes,
                ev_spots_open_to_cars, booking_window_days, min_reservation_minutes,
                max_reservation_minutes
         FROM lots WHERE id = $1",
    )
    .bind(lot.0)
    .fetch_optional(db)
    .await?)
}

/// The currency `lot` charges in.
pub async fn currency<'c>(db: impl Db<'c>, lot: LotId) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT currency FROM lots WHERE id = $1")
            .bind(lot.0)
            .fetch_optional(db)
            .await?,
    )
}

/// The vehicle type of spot `spot` of `lot` (None: no such spot there).
pub async fn spot_kind<'c>(db: impl Db<'c>, lot: LotId, spot: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT vehicle_type FROM spots WHERE id = $1 AND lot_id = $2")
            .bind(spot)
            .bind(lot.0)
            .fetch_optional(db)
            .await?,
    )
}
