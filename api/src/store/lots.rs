//! `lots` and `spots`: a lot's settings and its spots (with positions). What a valid lot is
//! (time zone, name, capacity) is `crate::services::lots`'s.

use super::Db;
use crate::domain::error::Result;
use warehouse_schema::{LotId, VehicleType};

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

/// The columns of `lots` a [`LotSettings`] is read from.
macro_rules! settings_columns {
    () => {
        "time_zone, currency, default_cents_per_hour, entry_grace_minutes,
         drive_up_horizon_minutes, ev_spots_open_to_cars, booking_window_days,
         min_reservation_minutes, max_reservation_minutes"
    };
}

pub async fn settings<'c>(db: impl Db<'c>, lot: LotId) -> Result<Option<LotSettings>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        settings_columns!(),
        " FROM lots WHERE id = $1"
    ))
    .bind(lot.0)
    .fetch_optional(db)
    .await?)
}

/// `lot`'s settings and the rates of `vt` that start by `until` (band, day kind, effective
/// from, cents), from one read: what a booking checks and prices its window by. `None`: no such
/// lot.
pub async fn settings_and_rates<'c>(
    db: impl Db<'c>,
    lot: LotId,
    vt: VehicleType,
    until: i64,
) -> Result<Option<(LotSettings, Vec<(String, String, i64, i64)>)>> {
    use sqlx::{FromRow, Row};
    // No column this selects is in both tables: each is read by its own name.
    let rows = sqlx::query(concat!(
        "SELECT ",
        settings_columns!(),
        ", band, day_kind, effective_from, cents_per_hour
         FROM lots l LEFT JOIN rates r
           ON r.lot_id = l.id AND r.vehicle_type = $2 AND r.effective_from <= $3
         WHERE l.id = $1"
    ))
    .bind(lot.0)
    .bind(vt.as_str())
    .bind(until)
    .fetch_all(db)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let settings = LotSettings::from_row(first)?;
    let mut rates = Vec::new();
    for row in &rows {
        // A lot without such rates is one row whose rate columns are all null.
        if let Some(band) = row.try_get::<Option<String>, _>("band")? {
            rates.push((
                band,
                row.try_get("day_kind")?,
                row.try_get("effective_from")?,
                row.try_get("cents_per_hour")?,
            ));
        }
    }
    Ok(Some((settings, rates)))
}

/// [`settings_unless_freed`]'s statement: `$1` the lot, `$2` the outbox position, `freeing`
/// the event types that free a spot.
pub fn settings_unless_freed_sql(freeing: &[&str]) -> String {
    format!(
        concat!(
            "SELECT ",
            settings_columns!(),
            ", {} AS freed FROM lots l WHERE l.id = $1"
        ),
        parkflow_outbox::recorded_after("l.id", "$2", freeing)
    )
}

/// `lot`'s settings, and whether an event of the `freeing` types about it was recorded after
/// outbox position `after`: what a booking the availability index found no spot for reads
/// (`services::reservations`). `None`: no such lot.
pub async fn settings_unless_freed<'c>(
    db: impl Db<'c>,
    lot: LotId,
    after: i64,
    freeing: &[&str],
) -> Result<Option<(LotSettings, bool)>> {
    use sqlx::{FromRow, Row};
    let row = sqlx::query(sqlx::AssertSqlSafe(settings_unless_freed_sql(freeing)))
        .bind(lot.0)
        .bind(after)
        .fetch_optional(db)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some((LotSettings::from_row(&row)?, row.try_get("freed")?)))
}

/// The name of `lot`.
pub async fn name<'c>(db: impl Db<'c>, lot: LotId) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT name FROM lots WHERE id = $1")
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

/// An admin's change of a lot; `None` keeps the stored value.
#[derive(Debug, Clone, Copy)]
pub struct LotEdit<'a> {
    pub name: Option<&'a str>,
    pub default_cents_per_hour: Option<i64>,
    pub ev_spots_open_to_cars: Option<bool>,
}

pub async fn edit<'c>(db: impl Db<'c>, lot: LotId, e: LotEdit<'_>) -> Result<()> {
    sqlx::query(
        "UPDATE lots SET name = COALESCE($1, name),
                default_cents_per_hour = COALESCE($2, default_cents_per_hour),
                ev_spots_open_to_cars = COALESCE($3, ev_spots_open_to_cars)
         WHERE id = $4",
    )
    .bind(e.name)
    .bind(e.default_cents_per_hour)
    .bind(e.ev_spots_open_to_cars.map(i64::from))
    .bind(lot.0)
    .execute(db)
    .await?;
    Ok(())
}

/// A spot as the admins see it: closed or not, a car in it or not, and how many
/// reservations that have not ended hold it.
#[derive(Debug, Clone)]
pub struct SpotStateRow {
    pub id: i64,
    pub label: String,
    pub vehicle_type: String,
    pub closed: i64,
    pub occupied: i64,
    pub upcoming: i64,
}

from_row!(SpotStateRow {
    id,
    label,
    vehicle_type,
    closed,
    occupied,
    upcoming
});

/// Every spot of `lot` by label, with its state at `now`.
pub async fn spot_states<'c>(db: impl Db<'c>, lot: LotId, now: i64) -> Result<Vec<SpotStateRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT s.id, s.label, s.vehicle_type, s.closed,
                (SELECT COUNT(*) FROM parking_sessions p WHERE p.spot_id = s.id AND p.exited_at IS NULL) AS occupied,
                (SELECT COUNT(*) FROM reservations r WHERE r.spot_id = s.id AND r.end_at > $2 AND ",
        holding!("r"),
        ") AS upcoming
         FROM spots s WHERE s.lot_id = $1 ORDER BY s.label"
    ))
    .bind(lot.0)
    .bind(now)
    .fetch_all(db)
    .await?)
}

/// The label of `spot` in `lot` and whether it is closed.
pub async fn spot<'c>(db: impl Db<'c>, lot: LotId, spot: i64) -> Result<Option<(String, bool)>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT label, closed FROM spots WHERE id = $1 AND lot_id = $2")
            .bind(spot)
            .bind(lot.0)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(label, closed)| (label, closed != 0)))
}

/// How many reservations that end after `now` hold `spot`.
pub async fn holds_on_spot<'c>(db: impl Db<'c>, spot: i64, now: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM reservations WHERE spot_id = $1 AND end_at > $2 AND ",
        holding!()
    ))
    .bind(spot)
    .bind(now)
    .fetch_one(db)
    .await?)
}

pub async fn set_spot_closed<'c>(db: impl Db<'c>, spot: i64, closed: bool) -> Result<()> {
    sqlx::query("UPDATE spots SET closed = $1 WHERE id = $2")
        .bind(i64::from(closed))
        .bind(spot)
        .execute(db)
        .await?;
    Ok(())
}

/// How many spots of `lot` are open.
pub async fn open_spot_count<'c>(db: impl Db<'c>, lot: LotId) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM spots WHERE lot_id = $1 AND closed = 0")
            .bind(lot.0)
            .fetch_one(db)
            .await?,
    )
}

/// `id, label, vehicle_type, latitude, longitude` of a spot.
pub type SpotColumns = (i64, String, String, Option<f64>, Option<f64>);

/// The open spots of `lot`, by id.
pub async fn open_spots<'c>(db: impl Db<'c>, lot: LotId) -> Result<Vec<SpotColumns>> {
    Ok(sqlx::query_as(
        "SELECT id, label, vehicle_type, latitude, longitude FROM spots
         WHERE lot_id = $1 AND closed = 0 ORDER BY id",
    )
    .bind(lot.0)
    .fetch_all(db)
    .await?)
}
