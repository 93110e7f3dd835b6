//! `rates`: hourly rates per lot, time band, day kind and vehicle type, each from its
//! `effective_from` on (announced ahead, or in force). Which rate a stay pays is
//! `crate::tariff`'s; what a publication may contain is `crate::services::rates`'s.

use super::Db;
use crate::domain::error::Result;
use warehouse_schema::{LotId, VehicleType};

/// A rate as stored: band, day kind, vehicle type, cents per hour, effective from, and why
/// (the contract's reason as JSON text).
pub type RateRow = (String, String, String, i64, i64, Option<String>);

/// The rates of `lot` for `vt` that start by `until`: band, day kind, effective from, cents.
pub async fn of_vehicle<'c>(
    db: impl Db<'c>,
    lot: LotId,
    vt: VehicleType,
    until: i64,
) -> Result<Vec<(String, String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT band, day_kind, effective_from, cents_per_hour FROM rates
         WHERE lot_id = $1 AND vehicle_type = $2 AND effective_from <= $3",
    )
    .bind(lot.0)
    .bind(vt.as_str())
    .bind(until)
    .fetch_all(db)
    .await?)
}

/// The key of one rate: band, day kind, vehicle type, effective from.
#[derive(Debug, Clone, Copy)]
pub struct RateKey<'a> {
    pub band: &'a str,
    pub day_kind: &'a str,
    pub vehicle_type: &'a str,
    pub effective_from: i64,
}

/// [`of_vehicle`] with each rate's reason (the contract's JSON text; none for a rate set by
/// hand): what a quote needs to price a window and say why.
pub async fn of_vehicle_explained<'c>(
    db: impl Db<'c>,
    lot: LotId,
    vt: VehicleType,
    until: i64,
) -> Result<Vec<(String, String, i64, i64, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT band, day_kind, effective_from, cents_per_hour, reason FROM rates
         WHERE lot_id = $1 AND vehicle_type = $2 AND effective_from <= $3",
    )
    .bind(lot.0)
    .bind(vt.as_str())
    .bind(until)
    .fetch_all(db)
    .await?)
}

/// The latest rate for band, day kind and vehicle type of `key` in force at its
/// `effective_from`, with its start and its reason.
pub async fn in_force_explained<'c>(
    db: impl Db<'c>,
    lot: LotId,
    key: RateKey<'_>,
) -> Result<Option<(i64, i64, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT cents_per_hour, effective_from, reason FROM rates
         WHERE lot_id = $1 AND band = $2 AND day_kind = $3 AND vehicle_type = $4 AND effective_from <= $5
         ORDER BY effective_from DESC LIMIT 1",
    )
    .bind(lot.0)
    .bind(key.band)
    .bind(key.day_kind)
    .bind(key.vehicle_type)
    .bind(key.effective_from)
    .fetch_optional(db)
    .await?)
}

/// The rate stored under exactly `key`.
pub async fn exact<'c>(db: impl Db<'c>, lot: LotId, key: RateKey<'_>) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT cents_per_hour FROM rates
         WHERE lot_id = $1 AND band = $2 AND day_kind = $3 AND vehicle_type = $4 AND effective_from = $5",
    )
    .bind(lot.0)
    .bind(key.band)
    .bind(key.day_kind)
    .bind(key.vehicle_type)
    .bind(key.effective_from)
    .fetch_optional(db)
    .await?)
}

/// Store `cents_per_hour` under `key`, with its `reason` (replacing what was announced under
/// it).
pub async fn upsert<'c>(
    db: impl Db<'c>,
    lot: LotId,
    key: RateKey<'_>,
    (cents_per_hour, reason): (i64, Option<&str>),
    published_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rates (lot_id, band, day_kind, vehicle_type, effective_from, cents_per_hour, published_at, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (lot_id, band, day_kind, vehicle_type, effective_from)
         DO UPDATE SET cents_per_hour = excluded.cents_per_hour, published_at = excluded.published_at,
                       reason = excluded.reason",
    )
    .bind(lot.0)
    .bind(key.band)
    .bind(key.day_kind)
    .bind(key.vehicle_type)
    .bind(key.effective_from)
    .bind(cents_per_hour)
    .bind(published_at)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}

/// The rates of `lot` in force at `now` (the latest per band, day kind and vehicle type) and
/// those announced after it, in start order.
pub async fn schedule<'c>(db: impl Db<'c>, lot: LotId, now: i64) -> Result<Vec<RateRow>> {
    Ok(sqlx::query_as(
        "SELECT r.band, r.day_kind, r.vehicle_type, r.cents_per_hour, r.effective_from, r.reason
         FROM rates r
         WHERE r.lot_id = $1 AND (r.effective_from > $2 OR r.effective_from = (
             SELECT MAX(x.effective_from) FROM rates x
             WHERE x.lot_id = r.lot_id AND x.band = r.band AND x.day_kind = r.day_kind
               AND x.vehicle_type = r.vehicle_type AND x.effective_from <= $2))
         ORDER BY r.effective_from, r.band, r.day_kind, r.vehicle_type",
    )
    .bind(lot.0)
    .bind(now)
    .fetch_all(db)
    .await?)
}

/// Every rate ever published for `lot`, in start order.
pub async fn history<'c>(db: impl Db<'c>, lot: LotId) -> Result<Vec<RateRow>> {
    Ok(sqlx::query_as(
        "SELECT band, day_kind, vehicle_type, cents_per_hour, effective_from, reason FROM rates
         WHERE lot_id = $1 ORDER BY effective_from, band, day_kind, vehicle_type",
    )
    .bind(lot.0)
    .fetch_all(db)
    .await?)
}

/// The earliest rate of `lot` for `vt` announced to start after `now`: band, day kind, cents,
/// effective from.
pub async fn next_announced<'c>(
    db: impl Db<'c>,
    lot: LotId,
    vt: VehicleType,
    now: i64,
) -> Result<Option<(String, String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT band, day_kind, cents_per_hour, effective_from FROM rates
         WHERE lot_id = $1 AND vehicle_type = $2 AND effective_from > $3
         ORDER BY effective_from, band, day_kind LIMIT 1",
    )
    .bind(lot.0)
    .bind(vt.as_str())
    .bind(now)
    .fetch_optional(db)
    .await?)
}
