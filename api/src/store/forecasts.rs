//! `arrival_forecasts`: per lot and coming hour, the occupancy forecast and the chance of a free
//! spot, as the forecast-training job last wrote them.

use super::Db;
use crate::domain::error::Result;
use warehouse_schema::LotId;

/// One hour of a lot's forecast: hour start (epoch ms), vehicles forecast, chance of a free
/// spot.
pub type ForecastHour = (i64, f64, f64);

/// Drop `lot`'s forecast from `from` on (the hours a new training covers afresh).
pub async fn clear_from<'c>(db: impl Db<'c>, lot: LotId, from: i64) -> Result<()> {
    sqlx::query("DELETE FROM arrival_forecasts WHERE lot_id = $1 AND hour_start >= $2")
        .bind(lot.0)
        .bind(from)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn insert<'c>(
    db: impl Db<'c>,
    lot: LotId,
    (hour, occupancy, chance): ForecastHour,
    trained_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO arrival_forecasts (lot_id, hour_start, occupancy, free_chance, trained_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(lot.0)
    .bind(hour)
    .bind(occupancy)
    .bind(chance)
    .bind(trained_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The forecast hour of `lot` that starts at `hour` (epoch ms), with when it was trained.
pub async fn hour<'c>(db: impl Db<'c>, lot: LotId, hour: i64) -> Result<Option<(f64, f64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT occupancy, free_chance, trained_at FROM arrival_forecasts
         WHERE lot_id = $1 AND hour_start = $2",
    )
    .bind(lot.0)
    .bind(hour)
    .fetch_optional(db)
    .await?)
}

/// The first and last hour start of `lot`'s forecast, if it has one.
pub async fn span<'c>(db: impl Db<'c>, lot: LotId) -> Result<Option<(i64, i64)>> {
    let row: (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT MIN(hour_start), MAX(hour_start) FROM arrival_forecasts WHERE lot_id = $1",
    )
    .bind(lot.0)
    .fetch_one(db)
    .await?;
    Ok(row.0.zip(row.1))
}
